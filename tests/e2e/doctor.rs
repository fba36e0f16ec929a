//! `credd doctor` finds each misconfiguration it promises to find, in a world that has it.

use credd_tests::World;
use serde_json::{Value, json};

use crate::exec_config;

fn doctor(world: &World, extra_env: &[(&str, &str)]) -> (i32, Vec<Value>, String) {
    let mut cmd = world.credd_command(&["doctor", "--json"]);
    cmd.current_dir(world.dir.path());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let checks: Vec<Value> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (out.status.code().unwrap_or(-1), checks, stdout)
}

fn failing<'a>(checks: &'a [Value], what: &str) -> Vec<&'a Value> {
    checks
        .iter()
        .filter(|c| c["verdict"] != "ok" && c["what"].as_str().unwrap().contains(what))
        .collect()
}

fn settings(world: &World, value: Value) {
    let path = world.home.join(".claude/settings.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, value.to_string()).unwrap();
}

/// A gateway source, and the user's settings with credd as its apiKeyHelper.
fn helper_world() -> World {
    let world = World::new();
    let cmd = world.counting_command("gw", "tok-doctor");
    world.write_config(&exec_config("gateway", &cmd, "ttl = \"1h\""));
    let credd = credd_tests::bin("credd");
    settings(
        &world,
        json!({"apiKeyHelper": format!("{} get gateway", credd.display())}),
    );
    world
}

#[test]
fn a_healthy_setup_passes_every_check() {
    let world = helper_world();
    let (code, checks, out) = doctor(&world, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(checks.iter().all(|c| c["verdict"] == "ok"), "{out}");
    for what in [
        "daemon",
        "config",
        "source gateway",
        "claude code settings",
        "proxy",
    ] {
        assert!(
            checks.iter().any(|c| c["what"] == what),
            "no {what} check: {out}"
        );
    }
}

#[test]
fn doctor_finds_each_misconfiguration() {
    let world = World::new();
    let short = world.counting_command("short", "tok-short");
    let broken = world.counting_command("broken", "x");
    std::fs::write(world.path("broken.fail"), "").unwrap();
    std::fs::write(world.path("broken.err"), "vault is sealed").unwrap();
    world.write_config(
        &[
            exec_config("gateway", &short, "ttl = \"5m\""),
            exec_config("broken", &broken, ""),
        ]
        .concat(),
    );
    let credd = credd_tests::bin("credd");
    settings(
        &world,
        json!({
            "apiKeyHelper": format!("{} get gateway", credd.display()),
            "awsCredentialExport": format!("{} get gateway --format aws", credd.display()),
            "awsAuthRefresh": format!("{} login gateway", credd.display()),
            "env": {"CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "600000"}
        }),
    );
    let (code, checks, out) = doctor(
        &world,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("HTTPS_PROXY", "http://me:proxy-password@127.0.0.1:3128"),
        ],
    );
    assert_eq!(code, 1, "{out}");
    let broken = failing(&checks, "source broken");
    assert!(
        broken.len() == 1
            && broken[0]["detail"]
                .as_str()
                .unwrap()
                .contains("vault is sealed"),
        "{out}"
    );
    let settings_problems: Vec<String> = failing(&checks, "claude code settings")
        .iter()
        .map(|c| c["detail"].as_str().unwrap().to_string())
        .collect();
    assert!(
        settings_problems
            .iter()
            .any(|d| d.contains("awsCredentialExport") && d.contains("holds a token")),
        "{out}"
    );
    assert!(
        settings_problems
            .iter()
            .any(|d| d.contains("CLAUDE_CODE_API_KEY_HELPER_TTL_MS") && d.contains("longer than")),
        "{out}"
    );
    assert!(
        settings_problems
            .iter()
            .any(|d| d.contains("awsAuthRefresh") && d.contains("never run")),
        "{out}"
    );
    let proxy = checks.iter().find(|c| c["what"] == "proxy").unwrap();
    assert!(
        proxy["detail"]
            .as_str()
            .unwrap()
            .contains("HTTPS_PROXY=http://***@127.0.0.1:3128"),
        "{out}"
    );
    assert!(
        !out.contains("proxy-password"),
        "a proxy password was printed"
    );

    // An invalid config edit is found too.
    world.write_config("[sources.gateway]\nkind = \"exec\"\ncommand = [\n");
    world.eventually(std::time::Duration::from_secs(10), "config error", || {
        world.status()["config_error"].is_string()
    });
    let (_, checks, out) = doctor(&world, &[]);
    assert_eq!(failing(&checks, "config").len(), 1, "{out}");
}

#[test]
fn doctor_notices_a_daemon_of_another_version() {
    use credd_tests::other_daemon::{OnStop, OtherDaemon};
    let world = World::new();
    // An older credd-daemon of the same protocol: answers hello with its own version.
    let protocol = credd_proto::PROTOCOL_VERSION;
    let _old = OtherDaemon::start(&world.socket, protocol, OnStop::Go, move |request| {
        if request["request"]["op"] == "hello" {
            json!({"result": "hello", "daemon_version": "0.0.1", "protocol": protocol, "pid": 4242})
        } else {
            json!({"result": "error", "kind": "internal", "message": "old daemon"})
        }
    });
    let (code, checks, out) = doctor(&world, &[("CREDD_NO_AUTOSTART", "1")]);
    assert_eq!(code, 1, "{out}");
    let daemon = failing(&checks, "daemon");
    assert_eq!(daemon.len(), 1, "{out}");
    assert!(
        daemon[0]["detail"].as_str().unwrap().contains("0.0.1"),
        "{out}"
    );
    assert!(
        daemon[0]["fix"].as_str().unwrap().contains("credd stop"),
        "{out}"
    );
}

#[test]
fn settings_of_an_older_credd_that_send_a_port_the_proxy_left_are_failed() {
    // An older credd served the proxy on a port derived from the source's name and wrote it,
    // with a caller secret, into the settings; the proxy now listens on its socket.
    let api = credd_tests::model_api::ModelApi::start();
    let world = World::new();
    let cmd = world.counting_command("gw", "tok-doctor");
    world.write_config(&exec_config(
        "gateway",
        &cmd,
        &format!("proxy = {{ upstream = \"{}\" }}", api.url()),
    ));
    let _daemon = world.start_daemon();
    settings(
        &world,
        json!({"env": {
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:47321",
            "ANTHROPIC_CUSTOM_HEADERS": format!("X-Credd-Proxy-Secret: {}", "ab".repeat(32)),
        }}),
    );
    let (code, checks, out) = doctor(&world, &[]);
    assert_eq!(code, 1, "{out}");
    let stale = failing(&checks, "claude code settings");
    assert!(
        stale.iter().any(|c| c["detail"]
            .as_str()
            .is_some_and(|d| d.contains("where no credd proxy of the config listens"))
            && c["fix"]
                .as_str()
                .is_some_and(|f| f.contains("--via proxy`: the proxy listens on a Unix socket"))),
        "{out}"
    );
    // Moved to the socket by setup: the old port and its secret leave the settings.
    world
        .credd(&["setup", "claude-code", "gateway", "--via", "proxy"])
        .ok();
    let written = std::fs::read_to_string(world.home.join(".claude/settings.json")).unwrap();
    assert!(
        !written.contains("47321") && !written.contains("X-Credd-Proxy-Secret"),
        "the old route stayed"
    );
}

#[test]
fn doctor_names_a_credential_that_wins_over_credds_and_where_it_is_set() {
    let world = helper_world();
    let warned = |checks: &[Value]| -> Vec<String> {
        failing(checks, "claude code settings")
            .iter()
            .map(|c| c["detail"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // In the environment Claude Code starts in.
    let (_, checks, out) = doctor(&world, &[("ANTHROPIC_AUTH_TOKEN", "sk-stray")]);
    let said = warned(&checks);
    assert!(
        said.iter().any(|d| d.starts_with("ANTHROPIC_AUTH_TOKEN, set in the environment Claude Code starts in, wins over apiKeyHelper")),
        "{out}"
    );
    assert!(!out.contains("sk-stray"), "the value was printed");
    // In the project's local settings, which win over the environment.
    let local = world.dir.path().join(".claude/settings.local.json");
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    std::fs::write(
        &local,
        json!({"env": {"ANTHROPIC_API_KEY": "sk-local"}}).to_string(),
    )
    .unwrap();
    let (_, checks, out) = doctor(&world, &[]);
    assert!(
        warned(&checks).iter().any(|d| d.starts_with(&format!(
            "ANTHROPIC_API_KEY, set in {}, wins over apiKeyHelper",
            local.display()
        ))),
        "{out}"
    );
    // Foundry: a key anywhere wins over credd's identity endpoint.
    std::fs::write(
        &local,
        json!({"env": {"CLAUDE_CODE_USE_FOUNDRY": "1", "IDENTITY_ENDPOINT": "http://127.0.0.1:47300/x"}})
            .to_string(),
    )
    .unwrap();
    let (_, checks, out) = doctor(&world, &[("ANTHROPIC_FOUNDRY_API_KEY", "k")]);
    assert!(
        warned(&checks).iter().any(|d| d.starts_with("ANTHROPIC_FOUNDRY_API_KEY, set in the environment Claude Code starts in, wins over DefaultAzureCredential")),
        "{out}"
    );
    // Nothing stray: no warning.
    std::fs::remove_file(&local).unwrap();
    let (code, checks, out) = doctor(&world, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(warned(&checks).is_empty(), "{out}");
}

/// Where a variable is set, for the matrix below: Claude Code's settings scopes and its
/// environment, each with what doctor calls it (None: the file's path).
#[derive(Clone, Copy, Debug)]
enum Scope {
    Environment,
    User,
    Project,
    Local,
}

#[test]
fn doctor_names_each_overlapping_variable_in_each_scope_it_is_set() {
    let credd = credd_tests::bin("credd").display().to_string();
    let export = format!("{credd} get aws --format aws");
    let helper = json!({"apiKeyHelper": format!("{credd} get gateway")});
    let aws = |provider: &str| json!({"awsCredentialExport": export, "env": {provider: "1"}});
    let foundry = json!({"env": {"CLAUDE_CODE_USE_FOUNDRY": "1", "IDENTITY_ENDPOINT": "http://127.0.0.1:47300/x"}});
    // credd's settings in the user's file, and the variable that wins over them.
    let cases: [(Value, &str, &str); 8] = [
        (
            helper.clone(),
            "ANTHROPIC_AUTH_TOKEN",
            "wins over apiKeyHelper",
        ),
        (helper, "ANTHROPIC_API_KEY", "wins over apiKeyHelper"),
        (
            aws("CLAUDE_CODE_USE_BEDROCK"),
            "AWS_BEARER_TOKEN_BEDROCK",
            "wins over awsCredentialExport",
        ),
        (
            aws("CLAUDE_CODE_USE_MANTLE"),
            "AWS_BEARER_TOKEN_BEDROCK",
            "wins over awsCredentialExport",
        ),
        (
            aws("CLAUDE_CODE_USE_ANTHROPIC_AWS"),
            "ANTHROPIC_AWS_API_KEY",
            "wins over awsCredentialExport",
        ),
        (
            foundry.clone(),
            "ANTHROPIC_FOUNDRY_AUTH_TOKEN",
            "wins over DefaultAzureCredential",
        ),
        (
            foundry,
            "ANTHROPIC_FOUNDRY_API_KEY",
            "wins over DefaultAzureCredential",
        ),
        // Claude Code picks Bedrock before Mantle, whatever credd set up.
        (
            aws("CLAUDE_CODE_USE_MANTLE"),
            "CLAUDE_CODE_USE_BEDROCK",
            "wins over CLAUDE_CODE_USE_MANTLE: Claude Code uses Amazon Bedrock",
        ),
    ];
    let world = World::new();
    let project = world.dir.path().join(".claude");
    std::fs::create_dir_all(&project).unwrap();
    for (credds, name, says) in cases {
        for scope in [
            Scope::Environment,
            Scope::User,
            Scope::Project,
            Scope::Local,
        ] {
            let mut user = credds.clone();
            let mut env = Vec::new();
            let _ = std::fs::remove_file(project.join("settings.json"));
            let _ = std::fs::remove_file(project.join("settings.local.json"));
            let place = match scope {
                Scope::Environment => {
                    env.push((name, "stray-value"));
                    "the environment Claude Code starts in".to_string()
                }
                Scope::User => {
                    user["env"][name] = "stray-value".into();
                    world
                        .home
                        .join(".claude/settings.json")
                        .display()
                        .to_string()
                }
                Scope::Project | Scope::Local => {
                    let file = project.join(match scope {
                        Scope::Project => "settings.json",
                        _ => "settings.local.json",
                    });
                    std::fs::write(&file, json!({"env": {name: "stray-value"}}).to_string())
                        .unwrap();
                    file.display().to_string()
                }
            };
            settings(&world, user);
            let (_, checks, out) = doctor(&world, &env);
            let wanted = format!("{name}, set in {place}, {says}");
            assert!(
                failing(&checks, "claude code settings")
                    .iter()
                    .any(|c| c["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with(&wanted)),
                "{scope:?}: wanted `{wanted}` in {out}"
            );
            assert!(!out.contains("stray-value"), "the value was printed");
        }
    }
}

#[test]
fn setup_warns_of_a_variable_that_would_win_over_what_it_writes() {
    let world = World::new();
    let cmd = world.counting_command("gw", "tok-doctor");
    world.write_config(&exec_config("gateway", &cmd, "ttl = \"1h\""));
    let mut setup = world.credd_command(&["setup", "claude-code", "gateway"]);
    setup.env("ANTHROPIC_API_KEY", "sk-stray");
    let out = setup.output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("Warning: ANTHROPIC_API_KEY, set in the environment Claude Code starts in, wins over apiKeyHelper"),
        "{said}"
    );
    assert!(!said.contains("sk-stray"), "the value was printed");
}

#[test]
fn doctor_checks_what_each_newer_provider_needs() {
    let world = World::new();
    let cmd = world.counting_command("gw", "tok-doctor");
    world.write_config(&exec_config("gateway", &cmd, "proxy = {}"));
    let _daemon = world.start_daemon();
    let details = |checks: &[Value]| -> String {
        failing(checks, "claude code settings")
            .iter()
            .map(|c| c["detail"].as_str().unwrap_or_default().to_string() + "\n")
            .collect()
    };
    settings(
        &world,
        json!({"env": {"CLAUDE_CODE_USE_ANTHROPIC_AWS": "1", "AWS_REGION": "us-east-1"}}),
    );
    let (code, checks, out) = doctor(&world, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        details(&checks).contains(
            "Claude Platform on AWS is chosen, but ANTHROPIC_AWS_WORKSPACE_ID is not set"
        ),
        "{out}"
    );
    // Through a proxy route the workspace is the proxy's business.
    let (_, checks, out) = doctor(&world, &[("CLAUDE_CODE_SKIP_ANTHROPIC_AWS_AUTH", "1")]);
    assert!(!details(&checks).contains("is chosen"), "{out}");

    settings(
        &world,
        json!({"env": {"CLAUDE_CODE_USE_ANTHROPIC_GOOGLE_CLOUD": "1"}}),
    );
    let (_, checks, out) = doctor(&world, &[("GOOGLE_CLOUD_PROJECT", "p")]);
    let said = details(&checks);
    assert!(
        said.contains("ANTHROPIC_GOOGLE_CLOUD_WORKSPACE_ID is not set")
            && !said.contains("ANTHROPIC_GOOGLE_CLOUD_PROJECT is not set"),
        "{out}"
    );

    // Mantle's requests sent to a route that speaks another API.
    settings(
        &world,
        json!({"env": {
            "CLAUDE_CODE_USE_MANTLE": "1",
            "ANTHROPIC_BEDROCK_MANTLE_BASE_URL": "http://gateway.credd.localhost:0",
            "CLAUDE_CODE_SKIP_MANTLE_AUTH": "1",
        }}),
    );
    let (_, checks, out) = doctor(&world, &[]);
    assert!(
        details(&checks).contains(
            "ANTHROPIC_BEDROCK_MANTLE_BASE_URL sends Claude Code's Bedrock's Anthropic API (Mantle) requests to the proxy route of `gateway`, which is a gateway's"
        ),
        "{out}"
    );
}
