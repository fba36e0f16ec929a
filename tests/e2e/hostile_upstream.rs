//! An upstream that is broken or hostile cannot wedge a source, steal a secret, balloon the
//! daemon's memory or leave processes behind: absurd lifetimes, redirects to another origin,
//! huge answers, floods of stderr, hanging `credential_process` commands, and two profiles
//! renewing one SSO session at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use credd_tests::World;
use credd_tests::google::{self, GoogleUpstream};
use credd_tests::http::{HttpStub, Response};
use serde_json::json;

use crate::{aws_sso, exec_config, gcp_source};

/// The daemon's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// `world` with an AWS profile `tool` whose credential_process is a script of `body` (no AWS
/// endpoint is reachable: the process is all there is).
fn with_process_profile(world: World, body: &str) -> World {
    let process = world.script("process.sh", body);
    world.with_aws(
        &format!(
            "[profile tool]\nregion = us-east-1\ncredential_process = {}\n",
            process.display()
        ),
        "",
        "http://127.0.0.1:9",
    )
}

/// Every process whose pid a hanging script wrote to `pids` (at least `at_least` of them) is
/// gone within five seconds.
fn assert_all_gone(world: &World, pids: &std::path::Path, at_least: usize) {
    let pids: Vec<u32> = std::fs::read_to_string(pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(pids.len() >= at_least, "{pids:?}");
    world.eventually(Duration::from_secs(5), "every process gone", || {
        pids.iter().all(|&pid| credd_tests::process_gone(pid))
    });
}

/// A user's login whose token endpoint is `token_uri`.
fn user_login_at(upstream: &GoogleUpstream, token_uri: &str) -> serde_json::Value {
    let mut file = gcp_source::authorized_user(upstream, gcp_source::REFRESH_TOKEN);
    file["token_uri"] = json!(token_uri);
    file
}

#[test]
fn an_absurd_lifetime_is_capped_and_the_source_recovers() {
    let upstream = GoogleUpstream::start();
    // u64::MAX seconds: once a panic that left the source "refreshing" for good.
    upstream.set_expires_in(u64::MAX);
    let world = gcp_source::gcp_world(
        &gcp_source::authorized_user(&upstream, gcp_source::REFRESH_TOKEN),
        "",
    );
    let daemon = world.start_daemon();
    let before = credd_tests::unix_now();
    let first = world.credd(&["get", "vertex"]).ok().trim().to_string();
    let status = world.settled("vertex");
    let expires = status["expires_at"].as_i64().unwrap();
    assert!(
        expires <= before + 24 * 3600 + 5 && expires >= before + 24 * 3600 - 5,
        "a stated lifetime past a day is kept as a day: {status}"
    );
    assert!(daemon.log().contains("treated as 24 h"), "{}", daemon.log());

    // A sane upstream again: the next refresh is an ordinary one.
    upstream.set_expires_in(3600);
    let before = credd_tests::unix_now();
    world.credd(&["refresh", "vertex"]).ok();
    let second = world.credd(&["get", "vertex"]).ok().trim().to_string();
    // Compared, never printed: a failure must not show the tokens.
    assert!(
        upstream.issued().last() == Some(&second),
        "not the newest token"
    );
    assert!(upstream.issued().contains(&first));
    let status = world.settled("vertex");
    assert_eq!(status["state"], "fresh");
    let expires = status["expires_at"].as_i64().unwrap();
    assert!(
        (before + 3595..=before + 3605).contains(&expires),
        "an hour: {expires}"
    );
    assert_eq!(upstream.calls(google::REFRESH), 2);
}

#[test]
fn an_absurd_expiry_from_entra_does_not_wedge_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, upstream, world) = crate::entra_source::secret_world(&dir, "");
    // Far past what any clock holds; the Azure SDK's own arithmetic may fail on it.
    upstream.set_expires_in(1_000_000_000_000_000);
    let _daemon = world.start_daemon();
    let _ = world.credd(&["get", "foundry"]);
    let status = world.settled("foundry");
    assert_ne!(status["state"], "refreshing", "{status}");

    upstream.set_expires_in(3599);
    world.eventually(Duration::from_secs(30), "the source serving again", || {
        world.advance_clock(60);
        world.credd(&["get", "foundry"]).code == 0
    });
    let token = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert!(
        upstream.issued().last() == Some(&token),
        "not the newest token"
    );
}

#[test]
fn a_redirect_to_another_origin_is_not_followed() {
    let upstream = GoogleUpstream::start();
    let elsewhere_calls = Arc::new(AtomicUsize::new(0));
    let counted = elsewhere_calls.clone();
    let elsewhere = HttpStub::start(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Response::json(200, json!({"access_token": "stolen", "expires_in": 3600}))
    });
    let target = format!("{}/token", elsewhere.url());
    let redirector = HttpStub::start(move |_| {
        Response::new(307, "text/plain", "moved").with_header("location", &target)
    });
    let world = gcp_source::gcp_world(
        &user_login_at(&upstream, &format!("{}/token", redirector.url())),
        "",
    );
    let daemon = world.start_daemon();
    let out = world.credd(&["get", "vertex"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("307"), "{}", out.stderr);
    assert_eq!(redirector.requests().len(), 1);
    assert_eq!(
        elsewhere_calls.load(Ordering::SeqCst),
        0,
        "the form (client secret, refresh token) was sent on to another origin"
    );
    assert!(!daemon.log().contains(gcp_source::CLIENT_SECRET));
}

#[test]
fn a_huge_answer_is_refused_without_holding_it() {
    let upstream = GoogleUpstream::start();
    let huge = HttpStub::start(|_| {
        let mut body = b"{\"access_token\": \"".to_vec();
        body.resize(64 * 1024 * 1024, b'a');
        body.extend_from_slice(b"\", \"expires_in\": 3600}");
        Response::new(200, "application/json", body)
    });
    let world = gcp_source::gcp_world(
        &user_login_at(&upstream, &format!("{}/token", huge.url())),
        "",
    );
    let daemon = world.start_daemon();
    let out = world.credd(&["get", "vertex"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("larger than 1024 KiB"),
        "{}",
        out.stderr
    );
    let peak = peak_rss_kib(daemon.pid());
    assert!(
        peak < 64 * 1024,
        "the daemon peaked at {peak} KiB reading a 64 MiB answer"
    );
}

#[test]
fn a_huge_answer_to_the_aws_sdk_is_refused_without_holding_it() {
    // STS answering GetSessionToken (a profile of long-term keys) with 64 MiB.
    let huge = HttpStub::start(|_| {
        let mut body = b"<GetSessionTokenResponse><SessionToken>".to_vec();
        body.resize(64 * 1024 * 1024, b'a');
        Response::new(200, "text/xml", body)
    });
    let world = World::new()
        .with_aws(
            "[profile dev]\nregion = us-east-1\n",
            "[dev]\naws_access_key_id = AKIACREDDLONGTERM009\naws_secret_access_key = long-term-secret\n",
            &huge.url(),
        );
    world.write_config("[sources.dev]\nkind = \"aws\"\nprofile = \"dev\"\n");
    let daemon = world.start_daemon();
    let out = world.credd(&["get", "dev", "--format", "aws"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("sent an answer larger than 1024 KiB"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
    let peak = peak_rss_kib(daemon.pid());
    assert!(
        peak < 64 * 1024,
        "the daemon peaked at {peak} KiB while the SDK read a 64 MiB answer"
    );
}

#[test]
fn floods_of_stderr_and_tokens_with_slashes_stay_out_of_status() {
    let world = World::new();
    // A token with `//` inside, as about one base64 token in five has.
    let slashed = format!("{}//{}", "Zm9vYmFy".repeat(6), "QUJDRA1234xyz".repeat(4));
    assert!(slashed.len() >= 100);
    let script = world.script(
        "noisy.sh",
        &format!("echo 'upstream rejected {slashed}' >&2\nexit 2\n"),
    );
    // An AWS profile whose credential_process fails with 2000 lines of stderr holding a
    // secret.
    let secret = "procSECRET0123456789abcdefXYZ";
    let world = with_process_profile(
        world,
        &format!(
            "i=0\nwhile [ $i -lt 2000 ]; do echo \"line $i token={secret}\" >&2; i=$((i+1)); done\nexit 1\n"
        ),
    );
    world.write_config(
        &[
            exec_config("noisy", &[script.display().to_string()], ""),
            "[sources.tool]\nkind = \"aws\"\nprofile = \"tool\"\n".to_string(),
        ]
        .concat(),
    );
    let daemon = world.start_daemon();
    let noisy = world.credd(&["get", "noisy"]);
    let tool = world.credd(&["get", "tool"]);
    assert_ne!(noisy.code, 0);
    assert_ne!(tool.code, 0);
    let status = world.credd(&["status"]);
    let status_json = world.credd(&["status", "--json"]);
    let doctor = world.credd(&["doctor"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.len() < 8 * 1024,
        "status printed {} bytes",
        status.stdout.len()
    );
    status_json.json();
    for (what, secret) in [
        ("the slashed token", slashed.as_str()),
        ("the secret", secret),
    ] {
        for (name, text) in [
            ("get", &noisy.stderr),
            ("get", &tool.stderr),
            ("status", &status.stdout),
            ("status --json", &status_json.stdout),
            ("doctor", &doctor.stdout),
            ("doctor", &doctor.stderr),
            ("the log", &daemon.log()),
        ] {
            assert!(
                !text.contains(secret),
                "{what} is in {name}: {}",
                text.replace(secret, "<SECRET>")
            );
        }
    }
}

#[test]
fn a_hanging_credential_process_leaves_no_process_behind() {
    let world = World::new().with_env("CREDD_TEST_CLOCK", "1");
    let pids = world.path("hang.pids");
    let world = with_process_profile(
        world,
        &format!(
            "echo $$ >> '{0}'\nsleep 60 &\necho $! >> '{0}'\nwait\n",
            pids.display()
        ),
    );
    world.write_config("[sources.tool]\nkind = \"aws\"\nprofile = \"tool\"\ntimeout = \"2s\"\n");
    let _daemon = world.start_daemon();
    for _ in 0..3 {
        let out = world.credd(&["refresh", "tool"]);
        assert_ne!(out.code, 0, "{out:?}");
    }
    assert_all_gone(&world, &pids, 6);
}

#[test]
fn a_hanging_credential_process_at_a_role_chains_root_leaves_no_process_behind() {
    let world = World::new().with_env("CREDD_TEST_CLOCK", "1");
    let pids = world.path("hang.pids");
    let process = world.script(
        "process.sh",
        &format!(
            "echo $$ >> '{0}'\nsleep 60 &\necho $! >> '{0}'\nwait\n",
            pids.display()
        ),
    );
    let world = world.with_aws(
        &format!(
            "[profile vault]\nregion = us-east-1\ncredential_process = {}\n\n\
             [profile app]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/app\nsource_profile = vault\n",
            process.display()
        ),
        "",
        "http://127.0.0.1:9",
    );
    world.write_config("[sources.app]\nkind = \"aws\"\nprofile = \"app\"\ntimeout = \"2s\"\n");
    let _daemon = world.start_daemon();
    for _ in 0..2 {
        let out = world.credd(&["refresh", "app"]);
        assert_ne!(out.code, 0, "{out:?}");
    }
    assert_all_gone(&world, &pids, 4);
}

#[test]
fn two_profiles_on_one_sso_session_renew_it_once_each_time() {
    let t = aws_sso::sso_world();
    t.world.write_config(
        "[sources.dev]\nkind = \"aws\"\nprofile = \"dev\"\n\n[sources.prod]\nkind = \"aws\"\nprofile = \"prod\"\n",
    );
    // Refresh tokens are single-use, as rotated ones are: a second use of one is refused.
    t.sso.rotate_refresh_tokens();
    let issued = t.sso.issue_session();
    aws_sso::write_cli_cache(
        &t.world,
        &issued.access_token,
        &issued.refresh_token,
        Duration::from_secs(120),
    );
    let _daemon = t.world.start_daemon();
    for round in 1..=20 {
        let outs = [
            t.world.spawn_credd(&["refresh", "dev"], |_| {}),
            t.world.spawn_credd(&["refresh", "prod"], |_| {}),
        ]
        .map(credd_tests::Output::of);
        for out in &outs {
            assert_eq!(out.code, 0, "round {round}: {out:?}");
        }
        assert_eq!(
            t.sso.calls("CreateToken:refresh_token"),
            round,
            "round {round}: one renewal of the shared session"
        );
        // The renewed token expires soon again, so the next round renews once more.
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(aws_sso::cache_file(&t.world)).unwrap()).unwrap();
        aws_sso::write_cli_cache(
            &t.world,
            file["accessToken"].as_str().unwrap(),
            file["refreshToken"].as_str().unwrap(),
            Duration::from_secs(120),
        );
    }
}
