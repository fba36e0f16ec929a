//! The Azure managed-identity endpoint: Python's azure-identity and Claude Code on Microsoft
//! Foundry (`@azure/identity`) get credd's cached token through `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` with no helper hook; Claude Code with `apiKeyHelper` too; and the
//! requests the endpoint must refuse are refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use credd_tests::entra::EntraUpstream;
use credd_tests::model_api::{self, ModelApi};
use credd_tests::peers::{self, TestCa, free_port};
use credd_tests::{Daemon, World};

use crate::entra_source::secret_world;

/// A daemon serving `foundry` on a managed-identity endpoint; returns the env it prints, with
/// the secret read from its file.
fn serving(
    dir: &tempfile::TempDir,
) -> (
    TestCa,
    EntraUpstream,
    World,
    Daemon,
    u16,
    Vec<(String, String)>,
) {
    let port = free_port();
    let (ca, upstream, world) =
        secret_world(dir, &format!("identity_endpoint = {{ port = {port} }}\n"));
    let daemon = world.start_daemon();
    peers::wait_for_port(
        port,
        Duration::from_secs(10),
        "the managed-identity endpoint",
    );
    let env = world.endpoint_env("foundry", "azure-managed-identity");
    (ca, upstream, world, daemon, port, env)
}

fn raw_get(port: u16, target: &str, headers: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn azure_identity_gets_credds_token_from_the_managed_identity_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, upstream, world, daemon, port, env) = serving(&dir);
    assert_eq!(
        env[0],
        (
            "IDENTITY_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{port}/msi/token")
        )
    );
    let secret = env[1].1.clone();
    assert_eq!(secret.len(), 64);
    let status = world.credd(&["status"]).ok().to_string();
    assert!(status.contains("export IDENTITY_HEADER=$(cat "), "{status}");
    assert!(
        !status.contains(&secret),
        "status prints the endpoint secret"
    );

    let script = "import azure.identity as ai\n\
        scope = 'https://cognitiveservices.azure.com/.default'\n\
        a = ai.ManagedIdentityCredential().get_token(scope)\n\
        b = ai.DefaultAzureCredential().get_token(scope)\n\
        print(a.token, b.token, a.expires_on, sep='\\n')\n";
    let out = peers::run_python(script, &[], |cmd| {
        world.isolate(cmd);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(upstream.issued(), vec![lines[0].to_string()]);
    assert_eq!(
        lines[1], lines[0],
        "DefaultAzureCredential takes the same token"
    );
    let expires_on: u64 = lines[2].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expires_on > now + 3000, "{expires_on}");
    assert_eq!(upstream.calls("client_secret"), 1);
    assert!(!daemon.log().contains(&secret));
}

#[test]
fn wrong_or_missing_identity_headers_foreign_hosts_and_other_resources_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, upstream, world, daemon, port, env) = serving(&dir);
    let secret = &env[1].1;
    // `credd doctor` sends the identity header from its file, and is let in.
    let (verdict, detail, report) =
        world.doctor_check("endpoint azure-managed-identity of foundry");
    assert_eq!(verdict, "ok", "{detail}");
    assert!(
        !report.contains(secret.as_str()),
        "doctor printed the identity header"
    );
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    let good = "/msi/token?api-version=2019-08-01&resource=https://cognitiveservices.azure.com";
    let ok = raw_get(
        port,
        good,
        &format!("{host}X-IDENTITY-HEADER: {secret}\r\n"),
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let token = upstream.issued()[0].clone();
    assert!(
        ok.contains(&token) && ok.contains("\"token_type\":\"Bearer\""),
        "{ok}"
    );

    for (what, target, headers, status) in [
        ("no secret", good, host.clone(), "401"),
        (
            "wrong secret",
            good,
            format!("{host}X-IDENTITY-HEADER: {}\r\n", "0".repeat(64)),
            "401",
        ),
        (
            "foreign Host",
            good,
            format!("Host: evil.example\r\nX-IDENTITY-HEADER: {secret}\r\n"),
            "403",
        ),
        (
            "another resource",
            "/msi/token?api-version=2019-08-01&resource=https://management.azure.com",
            format!("{host}X-IDENTITY-HEADER: {secret}\r\n"),
            "400",
        ),
        (
            "old api-version",
            "/msi/token?api-version=2017-09-01&resource=https://cognitiveservices.azure.com",
            format!("{host}X-IDENTITY-HEADER: {secret}\r\n"),
            "400",
        ),
    ] {
        let refused = raw_get(port, target, &headers);
        assert!(
            refused.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {refused}"
        );
        assert!(!refused.contains(&token), "{what}: the token leaked");
    }
    assert!(daemon.log().contains("wrong or missing X-IDENTITY-HEADER"));
    assert_eq!(upstream.calls("client_secret"), 1);
}

fn foundry_reply(
    world: &World,
    api: &ModelApi,
    env: &[(&str, &str)],
) -> Vec<credd_tests::http::Request> {
    let reply = credd_tests::claude_say_hi(world, world.dir.path(), env);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let messages = api.messages();
    assert!(
        !messages.is_empty(),
        "Claude Code sent nothing to the Foundry stub"
    );
    messages
}

#[test]
fn claude_code_on_foundry_through_the_endpoint_and_an_entra_gateway_through_api_key_helper() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, upstream, world, _daemon, _port, env) = serving(&dir);
    let api = ModelApi::start();
    let base = format!("{}/anthropic", api.url());
    // Through the endpoint: `setup` writes the Foundry settings and says which lines to export
    // (Claude Code's Azure library reads them before settings.json's env applies).
    let setup = world.credd(&[
        "setup",
        "claude-code",
        "foundry",
        "--via",
        "endpoint",
        "--base-url",
        &base,
    ]);
    let said = setup.ok();
    assert!(
        said.contains("export IDENTITY_ENDPOINT=http://127.0.0.1:"),
        "{said}"
    );
    assert!(said.contains("export IDENTITY_HEADER=$(cat "), "{said}");
    let settings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(world.home.join(".claude/settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        settings["env"]["CLAUDE_CODE_USE_FOUNDRY"], "1",
        "{settings}"
    );
    assert_eq!(settings["env"]["ANTHROPIC_FOUNDRY_BASE_URL"], base.as_str());
    assert!(
        settings["env"]["IDENTITY_HEADER"].is_null(),
        "no secret in settings.json"
    );
    let exported: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for m in foundry_reply(&world, &api, &exported) {
        assert!(m.path.starts_with("/anthropic/v1/messages"), "{}", m.path);
        assert_eq!(
            m.header("authorization"),
            Some(format!("Bearer {}", upstream.issued()[0]).as_str())
        );
    }

    // An Entra-protected gateway through apiKeyHelper, with nothing exported. (Claude Code's
    // Foundry client takes no apiKeyHelper token: it asks DefaultAzureCredential only.)
    let gateway = ModelApi::start();
    std::fs::remove_file(world.home.join(".claude/settings.json")).unwrap();
    let setup = world.credd(&[
        "setup",
        "claude-code",
        "foundry",
        "--via",
        "helper",
        "--base-url",
        &gateway.url(),
    ]);
    assert!(setup.ok().contains("apiKeyHelper"), "{}", setup.stdout);
    for m in foundry_reply(&world, &gateway, &[]) {
        let token = upstream.issued()[0].clone();
        assert_eq!(
            m.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
    }
    assert_eq!(
        upstream.calls("client_secret"),
        1,
        "both sessions used the cached token"
    );
}

#[test]
fn the_managed_identity_method_reads_an_app_service_endpoint() {
    // credd on one side serves the App Service protocol; a second credd whose source uses the
    // `managed-identity` method (azure_identity's ManagedIdentityCredential) reads it.
    let dir = tempfile::tempdir().unwrap();
    let (_ca, upstream, _world, _daemon, _port, env) = serving(&dir);
    let mut consumer = World::new();
    for (k, v) in &env {
        consumer = consumer.with_env(k, v);
    }
    consumer.write_config("[sources.mi]\nkind = \"entra\"\nmethod = \"managed-identity\"\n");
    let _consumer_daemon = consumer.start_daemon();
    let token = consumer.credd(&["get", "mi"]).ok().trim().to_string();
    assert_eq!(upstream.issued(), vec![token]);
}

/// A managed-identity endpoint whose clock is ten minutes off either way states `expires_on` by
/// that clock: the consuming credd moves it onto its own by the endpoint's `Date`. (A proxy in
/// front of credd's own App Service endpoint plays the host whose clock is off.)
#[test]
fn a_managed_identity_endpoint_clock_ten_minutes_off_is_corrected() {
    use credd_tests::http::{HttpStub, forward};
    let dir = tempfile::tempdir().unwrap();
    let (_ca, _upstream, world, _daemon, port, env) = serving(&dir);
    let serving_expiry = || world.source_status("foundry")["expires_at"].as_i64();
    for offset in [600i64, -600] {
        let proxy = HttpStub::start(move |request| {
            // credd's endpoint checks the Host it is addressed by.
            let mut request = request.clone();
            for (k, v) in &mut request.headers {
                if k == "host" {
                    *v = format!("127.0.0.1:{port}");
                }
            }
            let mut answer = forward(port, &request);
            let mut body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            if let Some(on) = body["expires_on"]
                .as_str()
                .and_then(|t| t.parse::<i64>().ok())
            {
                body["expires_on"] = serde_json::json!((on + offset).to_string());
            }
            answer.body = body.to_string().into_bytes();
            answer.dated(offset)
        });
        let mut consumer = World::new();
        for (k, v) in &env {
            let v = v.replace(&format!(":{port}/"), &format!(":{}/", proxy.port));
            consumer = consumer.with_env(k, &v);
        }
        consumer.write_config("[sources.mi]\nkind = \"entra\"\nmethod = \"managed-identity\"\n");
        let _consumer_daemon = consumer.start_daemon();
        consumer.credd(&["get", "mi"]).ok();
        let status = consumer.source_status("mi");
        let expires = status["expires_at"].as_i64().unwrap();
        // The token the endpoint serves expires when the serving credd says it does.
        let truth = serving_expiry().unwrap();
        assert!(
            (truth - 5..=truth).contains(&expires),
            "clock {offset:+}s: {expires} vs {truth}"
        );
        let seen = status["upstream_clock_offset_secs"].as_i64().unwrap();
        assert!((offset - 5..=offset + 5).contains(&seen), "{status}");
    }
}
