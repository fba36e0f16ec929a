//! The real Claude Code (`@anthropic-ai/claude-code` from npm) using `credd get` as its
//! `apiKeyHelper` against a stub of the Messages API.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credd_tests::World;
use credd_tests::model_api::{self, ModelApi};

use crate::exec_config;

/// Runs `claude -p "say hi"` in `world` with `settings` as the user's settings; returns stdout.
fn claude_say_hi(world: &World, api: &ModelApi) -> String {
    let mut cmd = Command::new(credd_tests::claude_bin());
    world.isolate(&mut cmd);
    cmd.args(["-p", "say hi"])
        .env("TERM", "dumb")
        .env("ANTHROPIC_BASE_URL", api.url())
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .current_dir(world.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("run claude");
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "claude failed ({}): stdout {stdout} stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn write_settings(world: &World) {
    let settings = world.home.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let helper = format!("{} get gateway", credd_tests::bin("credd").display());
    std::fs::write(
        &settings,
        serde_json::json!({ "apiKeyHelper": helper }).to_string(),
    )
    .unwrap();
}

#[test]
fn claude_code_sends_the_token_from_the_exec_source() {
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-gateway-token-first");
    world.write_config(&exec_config("gateway", &cmd, "ttl = \"1h\""));
    write_settings(&world);
    let api = ModelApi::start();

    let reply = claude_say_hi(&world, &api);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let messages = api.messages();
    assert!(!messages.is_empty(), "Claude Code sent no message request");
    for m in &messages {
        assert_eq!(
            m.header("x-api-key"),
            Some("sk-gateway-token-first"),
            "{m:?}"
        );
        assert_eq!(
            m.header("authorization"),
            Some("Bearer sk-gateway-token-first"),
            "{m:?}"
        );
    }
    // A second session reuses the daemon's cache: no new upstream call.
    claude_say_hi(&world, &api);
    assert_eq!(world.runs("gw"), 1);
}

#[test]
fn after_a_401_claude_code_retries_with_the_rotated_token() {
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-gateway-token-old");
    world.write_config(&exec_config("gateway", &cmd, "ttl = \"1h\""));
    write_settings(&world);
    let api = ModelApi::start();

    // Warm the cache with the old token, then rotate it upstream and reject the old one once.
    assert_eq!(
        world.credd(&["get", "gateway"]).ok(),
        "sk-gateway-token-old\n"
    );
    std::fs::write(world.path("gw.out"), "sk-gateway-token-new").unwrap();
    api.reject_next(1);

    let reply = claude_say_hi(&world, &api);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let messages = api.messages();
    assert!(messages.len() >= 2, "no retry after the 401: {messages:?}");
    assert_eq!(
        messages[0].header("x-api-key"),
        Some("sk-gateway-token-old")
    );
    let last = messages.last().unwrap();
    assert_eq!(
        last.header("x-api-key"),
        Some("sk-gateway-token-new"),
        "{last:?}"
    );
    assert_eq!(
        last.header("authorization"),
        Some("Bearer sk-gateway-token-new")
    );
    assert_eq!(world.runs("gw"), 2, "one forced refresh, no more");
}
