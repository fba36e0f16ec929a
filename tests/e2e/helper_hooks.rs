//! Claude Code's other helper hooks: HTTP headers for MCP servers' `headersHelper` and
//! `otelHeadersHelper`, `{"token", "headers"}` for `inferenceCredentialHelper` (which signs in
//! only when `CLAUDE_HELPER_CONTEXT` says a person is there), and the one-line status for its
//! `statusLine`, written by `credd setup claude-code --statusline`.

use std::time::{Duration, Instant};

use credd_tests::World;
use credd_tests::entra::EntraUpstream;
use credd_tests::peers::TestCa;
use serde_json::{Value, json};

use crate::entra_source::{self, CLIENT_ID};
use crate::gateway_world;

#[test]
fn headers_carry_the_token_in_the_header_asked_for() {
    let world = gateway_world("sk-gateway-token");
    let _daemon = world.start_daemon();
    let headers = world
        .credd(&["get", "gateway", "--format", "headers"])
        .json();
    assert_eq!(headers, json!({"Authorization": "Bearer sk-gateway-token"}));
    let headers = world
        .credd(&[
            "get",
            "gateway",
            "--format",
            "headers",
            "--header",
            "x-api-key",
            "--header-prefix",
            "",
        ])
        .json();
    assert_eq!(headers, json!({"x-api-key": "sk-gateway-token"}));
    let answer = world
        .credd(&["get", "gateway", "--format", "helper-json"])
        .json();
    assert_eq!(answer, json!({"token": "sk-gateway-token", "headers": {}}));
    // A header that would split the request is refused, and nothing is printed.
    let out = world.credd(&[
        "get",
        "gateway",
        "--format",
        "headers",
        "--header",
        "X-A: b\r\nX-Evil",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "a credential was printed");
    assert!(
        out.stderr.contains("not an HTTP header name"),
        "{}",
        out.stderr
    );
    assert_eq!(
        world.runs("gw"),
        1,
        "one run of the command for every format"
    );
}

fn device_code_world(dir: &tempfile::TempDir) -> (EntraUpstream, World) {
    let ca = TestCa::create(dir.path());
    let upstream = EntraUpstream::start(&ca);
    upstream.register_public(CLIENT_ID);
    let world = entra_source::entra_world(&ca, &upstream, "device-code", "")
        .with_env("CREDD_NO_BROWSER", "1");
    (upstream, world)
}

#[test]
fn an_inference_helper_signs_in_only_when_a_person_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, world) = device_code_world(&dir);
    let _daemon = world.start_daemon();
    for context in [None, Some("background"), Some("mid-session-refresh")] {
        let started = Instant::now();
        let mut cmd = world.credd_command(&["get", "foundry", "--format", "helper-json"]);
        if let Some(context) = context {
            cmd.env("CLAUDE_HELPER_CONTEXT", context);
        }
        let out: credd_tests::Output = cmd.output().unwrap().into();
        // Stdout is left out of the messages: it would hold a token.
        assert_eq!(out.code, 5, "{context:?}: {}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "{context:?}: a credential was printed"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{context:?}");
    }
    assert_eq!(upstream.calls("devicecode"), 0, "a login began unasked");

    let out: credd_tests::Output = world
        .credd_command(&["get", "foundry", "--format", "helper-json"])
        .env("CLAUDE_HELPER_CONTEXT", "interactive")
        .output()
        .unwrap()
        .into();
    // Stdout is the answer alone; what the person must do went to stderr.
    let answer: Value = serde_json::from_str(out.ok()).unwrap();
    let token = answer["token"].as_str().unwrap().to_string();
    assert!(
        upstream.issued().contains(&token),
        "not a token Entra issued"
    );
    assert_eq!(answer["headers"], json!({}));
    assert!(
        out.stderr.contains("https://microsoft.com/devicelogin"),
        "{}",
        out.stderr
    );
    assert_eq!(upstream.calls("devicecode"), 1);
}

#[test]
fn the_short_status_is_one_line_and_never_starts_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, world) = device_code_world(&dir);
    let world_config = std::fs::read_to_string(&world.config).unwrap();
    world.write_config(&format!(
        "{world_config}\n{}",
        crate::exec_config(
            "gateway",
            &world.counting_command("gw", "sk-short"),
            "ttl = \"1h\""
        )
    ));

    // No daemon: it says so, starts none, and a status line shows it without an error.
    let out = world.credd(&["status", "--short"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "credd: not running\n");
    assert!(!world.socket.exists(), "the status line started a daemon");

    let _daemon = world.start_daemon();
    assert_eq!(
        world.credd(&["status", "--short"]).ok(),
        "credd: nothing fetched yet\n"
    );
    world.credd(&["get", "gateway"]).ok();
    assert_eq!(world.credd(&["get", "foundry"]).code, 5);
    let line = world.credd(&["status", "--short"]).ok().to_string();
    // An hour's credential, asked for a moment ago.
    assert!(
        ["1h00m", "59m"]
            .iter()
            .any(|left| line == format!("foundry needs login · gateway {left}\n")),
        "{line:?}"
    );
}

#[test]
fn setup_writes_the_status_line_but_never_replaces_ones_own() {
    let world = gateway_world("sk-gateway-token");
    let settings = world.home.join(".claude/settings.json");
    let out = world.credd(&["setup", "claude-code", "--statusline"]);
    assert!(out.ok().contains("+ statusLine"), "{}", out.stdout);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(written["statusLine"]["type"], "command");
    let command = written["statusLine"]["command"].as_str().unwrap();
    assert!(command.ends_with("credd status --short"), "{command}");
    // Run as Claude Code runs it: through the shell, with the session's JSON on stdin.
    let shown = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("echo '{{\"session_id\":\"s\"}}' | {command}"),
        ])
        .envs(world.env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        "credd: not running\n"
    );
    // Again: nothing to do.
    let again = world.credd(&["setup", "claude-code", "--statusline"]);
    assert!(again.ok().contains("nothing to do"), "{}", again.stdout);

    let own = json!({"statusLine": {"type": "command", "command": "~/bin/my-line"}});
    std::fs::write(&settings, own.to_string()).unwrap();
    let out = world.credd(&["setup", "claude-code", "--statusline"]);
    assert!(out.ok().contains("Kept the statusLine"), "{}", out.stdout);
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(kept, own);
}

#[test]
fn a_token_claude_code_would_refuse_from_its_api_key_helper_is_named_with_why() {
    let long = "k".repeat(16_385);
    let world = crate::gateway_world(&long);
    // Claude Code sets its entrypoint for everything it runs.
    let out = world
        .credd_command(&["get", "gateway"])
        .env("CLAUDE_CODE_ENTRYPOINT", "cli")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning")
            && stderr.contains("16385 characters")
            && stderr.contains("at most 16384"),
        "{stderr}"
    );
    assert!(!stderr.contains("kkkk"), "the token reached the message");
    // Printed all the same (a command the agent runs may want it), and without a word
    // outside Claude Code.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), long);
    let plain = world.credd(&["get", "gateway"]);
    assert_eq!(plain.ok().trim(), long);
    assert!(plain.stderr.is_empty(), "{}", plain.stderr);
}
