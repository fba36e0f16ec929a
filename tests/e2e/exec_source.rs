//! The `exec` source: the formats it reads, one run for many callers, and clear errors for a
//! command that fails, hangs or prints garbage.

use credd_tests::World;

use crate::exec_config;

#[test]
fn two_hundred_concurrent_gets_on_a_cold_source_run_the_command_once() {
    let world = World::new();
    let cmd = world.counting_command("gw", "tok-single-flight");
    // A slow upstream widens the window in which the callers overlap.
    std::fs::write(world.path("gw.sleep"), "0.5").unwrap();
    world.write_config(&exec_config("gateway", &cmd, ""));
    let _daemon = world.start_daemon();
    for out in world.credd_concurrently(200, &["get", "gateway"]) {
        assert_eq!(out.ok(), "tok-single-flight\n");
    }
    assert_eq!(world.runs("gw"), 1, "the command ran more than once");
    assert_eq!(world.source_status("gateway")["upstream_calls"], 1);
}

/// An RFC 3339 time `ahead` from now, to the second.
fn in_(ahead: std::time::Duration) -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now() + ahead).to_string()
}

/// Seconds from now to an RFC 3339 time.
fn seconds_until(time: &serde_json::Value) -> i64 {
    let at = humantime::parse_rfc3339(time.as_str().expect("a time")).expect("RFC 3339");
    match at.duration_since(std::time::SystemTime::now()) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    }
}

#[test]
fn token_json_output_sets_the_expiry() {
    let world = World::new();
    let expiry = in_(std::time::Duration::from_secs(2 * 3600));
    let cmd = world.counting_command(
        "gw",
        &format!(r#"{{"token": "tok-json-1", "expires_at": "{expiry}"}}"#),
    );
    world.write_config(&exec_config("gateway", &cmd, ""));
    let out = world.credd(&["get", "gateway", "--format", "json"]).json();
    assert_eq!(out["token"], "tok-json-1");
    assert_eq!(out["expires_at"], expiry.as_str());
    assert_eq!(out["type"], "token");
}

#[test]
fn an_expiry_past_a_day_is_capped_like_a_stated_lifetime() {
    let world = World::new();
    let cmd = world.counting_command(
        "gw",
        r#"{"token": "tok-json-far", "expires_at": "9999-01-01T00:00:00Z"}"#,
    );
    world.write_config(&exec_config("gateway", &cmd, ""));
    let out = world.credd(&["get", "gateway", "--format", "json"]).json();
    let left = seconds_until(&out["expires_at"]);
    assert!(
        (23 * 3600..=24 * 3600 + 60).contains(&left),
        "an expiry in year 9999 was kept for {left}s"
    );
}

#[test]
fn credential_process_output_serves_every_aws_format() {
    let world = World::new();
    let expiry = in_(std::time::Duration::from_secs(2 * 3600));
    let cmd = world.counting_command(
        "aws",
        &format!(
            r#"{{"Version": 1, "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "sec-ret-key", "SessionToken": "sess-tok", "Expiration": "{expiry}"}}"#
        ),
    );
    world.write_config(&exec_config("dev", &cmd, ""));

    let export = world.credd(&["get", "dev", "--format", "aws"]).json();
    assert_eq!(export["Credentials"]["AccessKeyId"], "ASIAEXAMPLE");
    assert_eq!(export["Credentials"]["SecretAccessKey"], "sec-ret-key");
    assert_eq!(export["Credentials"]["SessionToken"], "sess-tok");
    assert_eq!(export["Credentials"]["Expiration"], expiry.as_str());

    let process = world
        .credd(&["get", "dev", "--format", "aws-process"])
        .json();
    assert_eq!(process["Version"], 1);
    assert_eq!(process["Expiration"], expiry.as_str());

    let env = world.credd(&["get", "dev", "--format", "env"]);
    assert!(
        env.ok().contains("export AWS_SESSION_TOKEN='sess-tok'\n"),
        "{}",
        env.stdout
    );
    assert!(
        env.ok()
            .contains(&format!("export AWS_CREDENTIAL_EXPIRATION='{expiry}'\n"))
    );

    let token = world.credd(&["get", "dev"]);
    assert_eq!(token.code, 2);
    assert_eq!(token.stdout, "");
    assert!(token.stderr.contains("--format aws"), "{}", token.stderr);
    assert_eq!(world.runs("aws"), 1);
}

#[test]
fn credential_process_output_works_for_boto3() {
    // boto3 itself runs `credd get --format aws-process` as a profile's credential_process.
    let world = World::new();
    let cmd = world.counting_command(
        "aws",
        r#"{"Version": 1, "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "exec-secret-4f1", "SessionToken": "exec-session-9c2", "Expiration": "2099-01-01T00:00:00Z"}"#,
    );
    world.write_config(&exec_config("dev", &cmd, ""));
    let aws_config = world.path("aws-config");
    std::fs::write(
        &aws_config,
        format!(
            "[profile dev]\ncredential_process = {} get dev --format aws-process\n",
            credd_tests::bin("credd").display()
        ),
    )
    .unwrap();
    let script = r#"
import boto3
c = boto3.Session(profile_name="dev").get_credentials().get_frozen_credentials()
print(c.access_key, c.secret_key, c.token)
"#;
    let printed = credd_tests::peers::run_python(script, &[], |cmd| {
        world.isolate(cmd);
        cmd.env("AWS_CONFIG_FILE", &aws_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", world.path("none"));
    });
    assert_eq!(
        printed.trim(),
        "ASIAEXAMPLE exec-secret-4f1 exec-session-9c2"
    );
    assert_eq!(world.runs("aws"), 1);
}

#[test]
fn a_failing_command_is_reported_with_its_stderr_summarised() {
    let world = World::new();
    let cmd = world.counting_command("gw", "tok-never-seen");
    std::fs::write(world.path("gw.fail"), "").unwrap();
    std::fs::write(
        world.path("gw.err"),
        "op: signing in...\n[ERROR] vault item not found (key sk-live-0123456789abcdefghij)\n",
    )
    .unwrap();
    world.write_config(&exec_config("gateway", &cmd, ""));
    let out = world.credd(&["get", "gateway"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("vault item not found"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("exit status: 3"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("sk-live-0123456789abcdefghij"),
        "a secret leaked: {}",
        out.stderr
    );
    let status = world.source_status("gateway");
    assert_eq!(status["state"], "failing");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("vault item not found")
    );
}

#[test]
fn a_hanging_command_is_killed_at_its_timeout_with_all_its_children() {
    let world = World::new();
    // A shell that starts a child of its own and waits for it, noting both pids.
    let pids = world.path("hang.pids");
    let script = world.script(
        "hang.sh",
        &format!(
            "echo $$ > '{0}.tmp'\nsleep 30 &\necho $! >> '{0}.tmp'\nmv '{0}.tmp' '{0}'\nwait\n",
            pids.display()
        ),
    );
    world.write_config(&exec_config(
        "gateway",
        &[script.display().to_string()],
        "timeout = \"1s\"",
    ));
    let started = std::time::Instant::now();
    let out = world.credd(&["get", "gateway"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("did not finish within 1s"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The shell and its `sleep` are both gone: the whole process group was killed.
    let pids: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    world.eventually(
        std::time::Duration::from_secs(5),
        "the command and its child to be gone",
        || pids.iter().all(|&pid| credd_tests::process_gone(pid)),
    );
}

#[test]
fn garbage_output_is_refused_without_being_quoted() {
    let world = World::new();
    let cmd = world.counting_command(
        "gw",
        "Welcome to the vault!\nYour key is below\nsk-garbage-1\n",
    );
    world.write_config(&exec_config("gateway", &cmd, ""));
    let out = world.credd(&["get", "gateway"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("printed 3 lines"), "{}", out.stderr);
    assert!(!out.stderr.contains("sk-garbage-1") && !out.stderr.contains("Welcome"));
}

#[test]
fn a_missing_program_is_named_as_a_misconfiguration_not_retried_in_a_loop() {
    let world = World::new();
    world.write_config(&exec_config(
        "gateway",
        &["/nonexistent/op".to_string()],
        "",
    ));
    let out = world.credd(&["get", "gateway"]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr.contains("cannot run `/nonexistent/op`")
            && out.stderr.contains("is misconfigured"),
        "{}",
        out.stderr
    );
    // No backoff loop: the next try by itself is a quarter of an hour away.
    let status = world.settled("gateway");
    let now = world.status()["now"].as_i64().unwrap();
    let next = status["next_refresh_at"].as_i64().unwrap();
    assert!(
        next >= now + 14 * 60,
        "retries at {next}, now {now}: {status}"
    );
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot run `/nonexistent/op`"),
        "{status}"
    );
    // Asked explicitly, it tries again at once.
    assert_eq!(world.credd(&["refresh", "gateway"]).code, 8);
}

#[test]
fn unknown_source_lists_the_known_ones() {
    let world = World::new();
    let cmd = world.counting_command("gw", "tok");
    world.write_config(&exec_config("gateway", &cmd, ""));
    let out = world.credd(&["get", "gatewya"]);
    assert_eq!(out.code, 4);
    assert!(out.stderr.contains("gateway"), "{}", out.stderr);
}

#[test]
fn refresh_fetches_a_new_credential_now() {
    let world = World::new();
    let cmd = world.counting_command("gw", "tok-before");
    world.write_config(&exec_config("gateway", &cmd, ""));
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-before\n");
    std::fs::write(world.path("gw.out"), "tok-after").unwrap();
    assert_eq!(
        world.credd(&["get", "gateway"]).ok(),
        "tok-before\n",
        "cached value expected"
    );
    assert!(
        world
            .credd(&["refresh", "gateway"])
            .ok()
            .contains("refreshed `gateway`")
    );
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-after\n");
    assert_eq!(world.runs("gw"), 2);
}
