//! The GCE metadata endpoint: Python's google-auth and Claude Code on Vertex AI (Node's
//! google-auth-library) get credd's cached token through `GCE_METADATA_HOST` with no helper
//! hook, and the requests it must refuse are refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use credd_tests::google::{self, GoogleUpstream};
use credd_tests::model_api::{self, ModelApi};
use credd_tests::peers::{self, free_port};
use credd_tests::{Daemon, World};

use crate::gcp_source::{REFRESH_TOKEN, authorized_user, gcp_world};

/// A daemon serving `vertex` on a metadata endpoint; returns the endpoint's env lines.
fn serving(upstream: &GoogleUpstream) -> (World, Daemon, u16, Vec<(String, String)>) {
    let port = free_port();
    let world = gcp_world(
        &authorized_user(upstream, REFRESH_TOKEN),
        &format!("project = \"credd-vertex\"\nmetadata_endpoint = {{ port = {port} }}\n"),
    );
    let daemon = world.start_daemon();
    peers::wait_for_port(port, Duration::from_secs(10), "the metadata endpoint");
    let env = world.endpoint_env("vertex", "gce-metadata");
    (world, daemon, port, env)
}

pub fn raw_get(port: u16, path: &str, headers: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn google_auth_gets_credds_token_and_project_from_the_metadata_endpoint() {
    let upstream = GoogleUpstream::start();
    let (world, _daemon, port, env) = serving(&upstream);
    assert_eq!(
        env,
        vec![
            ("GCE_METADATA_HOST".to_string(), format!("127.0.0.1:{port}")),
            ("GCE_METADATA_IP".to_string(), format!("127.0.0.1:{port}")),
        ]
    );
    let human = world.credd(&["status"]);
    assert!(
        human
            .ok()
            .contains(&format!("export GCE_METADATA_HOST=127.0.0.1:{port}")),
        "{}",
        human.stdout
    );
    let script = "import google.auth, google.auth.transport.requests as tr\n\
        for _ in range(3):\n\
        \x20   creds, project = google.auth.default()\n\
        \x20   creds.refresh(tr.Request())\n\
        print(type(creds).__module__, project, creds.service_account_email, creds.token, sep='\\n')\n";
    let out = peers::run_python(script, &[], |cmd| {
        world.isolate(cmd);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "google.auth.compute_engine.credentials", "{out}");
    assert_eq!(lines[1], "credd-vertex");
    assert_eq!(
        lines[2], "default",
        "an authorized_user has no service account email"
    );
    assert_eq!(upstream.issued(), vec![lines[3].to_string()]);
    assert_eq!(
        upstream.calls(google::REFRESH),
        1,
        "three google-auth refreshes cost one upstream call"
    );
}

#[test]
fn requests_without_the_flavor_header_for_another_host_or_forwarded_are_refused() {
    let upstream = GoogleUpstream::start();
    let (world, daemon, port, _) = serving(&upstream);
    // What google-auth sends is let in: `credd doctor` asks the same.
    let (verdict, detail, _) = world.doctor_check("endpoint gce-metadata of vertex");
    assert_eq!(verdict, "ok", "{detail}");
    let token_path = "/computeMetadata/v1/instance/service-accounts/default/token";
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    let flavor = "Metadata-Flavor: Google\r\n";

    let ok = raw_get(port, token_path, &format!("{host}{flavor}"));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(
        ok.to_ascii_lowercase().contains("metadata-flavor: google"),
        "{ok}"
    );
    let token = upstream.issued()[0].clone();
    assert!(ok.contains(&token));

    for (what, headers) in [
        ("no flavor", host.clone()),
        (
            "wrong flavor",
            format!("{host}Metadata-Flavor: google-ish\r\n"),
        ),
        (
            "foreign Host",
            format!("Host: metadata.attacker.example\r\n{flavor}"),
        ),
        (
            "forwarded",
            format!("{host}{flavor}X-Forwarded-For: 10.0.0.9\r\n"),
        ),
    ] {
        let refused = raw_get(port, token_path, &headers);
        assert!(refused.starts_with("HTTP/1.1 403"), "{what}: {refused}");
        assert!(!refused.contains(&token), "{what}: the token leaked");
    }
    let scoped = raw_get(
        port,
        &format!("{token_path}?scopes=https://www.googleapis.com/auth/gmail.send"),
        &format!("{host}{flavor}"),
    );
    assert!(scoped.starts_with("HTTP/1.1 400"), "{scoped}");
    assert!(!scoped.contains(&token));
    assert!(
        daemon.log().contains("without Metadata-Flavor"),
        "{}",
        daemon.log()
    );
    assert_eq!(upstream.calls(google::REFRESH), 1);
}

#[test]
fn another_local_user_is_refused_by_the_metadata_endpoint() {
    if !credd_tests::other_user::available("another_local_user_is_refused_by_the_metadata_endpoint")
    {
        return;
    }
    use std::os::unix::process::CommandExt;
    let upstream = GoogleUpstream::start();
    let (_world, daemon, port, _) = serving(&upstream);
    let request = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\nMetadata-Flavor: Google\\r\\nConnection: close\\r\\n\\r\\n' >&3; cat <&3"
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &request])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    // Closed before a byte of the request is read: no answer at all.
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.is_empty(), "another user was answered: {answer}");
    assert!(
        upstream.issued().is_empty(),
        "nothing was fetched for the other user"
    );
    assert!(
        daemon.log().contains("the client runs as uid 65534"),
        "{}",
        daemon.log()
    );
}

#[test]
fn claude_code_on_vertex_uses_the_metadata_endpoint_as_setup_configures_it() {
    let upstream = GoogleUpstream::start();
    let (world, _daemon, port, _env) = serving(&upstream);
    let out = world.credd(&["setup", "claude-code", "vertex", "--region", "us-east5"]);
    assert!(out.ok().contains("gcpAuthRefresh"), "{}", out.stdout);
    let settings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(world.home.join(".claude/settings.json")).unwrap(),
    )
    .unwrap();
    let env = &settings["env"];
    assert_eq!(env["CLAUDE_CODE_USE_VERTEX"], "1", "{settings}");
    assert_eq!(env["ANTHROPIC_VERTEX_PROJECT_ID"], "credd-vertex");
    assert_eq!(env["CLOUD_ML_REGION"], "us-east5");
    assert_eq!(env["GCE_METADATA_HOST"], format!("127.0.0.1:{port}"));
    assert!(
        settings["gcpAuthRefresh"]
            .as_str()
            .unwrap()
            .ends_with("credd login vertex"),
        "{settings}"
    );

    // Claude Code with those settings, and the Vertex endpoint pointed at a local stub.
    let api = ModelApi::start();
    let base = api.url();
    let reply = credd_tests::claude_say_hi(
        &world,
        world.dir.path(),
        &[("ANTHROPIC_VERTEX_BASE_URL", base.as_str())],
    );
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let messages = api.messages();
    assert!(
        !messages.is_empty(),
        "Claude Code sent no request to the Vertex stub"
    );
    let token = upstream.issued();
    assert_eq!(token.len(), 1, "one upstream token for the whole session");
    for m in &messages {
        assert!(
            m.path
                .contains("/projects/credd-vertex/locations/us-east5/")
                && m.path.contains("Predict"),
            "{}",
            m.path
        );
        assert_eq!(
            m.header("authorization"),
            Some(format!("Bearer {}", token[0]).as_str()),
        );
    }
    assert_eq!(upstream.calls(google::REFRESH), 1);
}

#[test]
fn setup_and_doctor_warn_when_gclouds_file_would_hide_the_endpoint_from_claude_code() {
    // Claude Code's Google library reads gcloud's ADC file before it asks a metadata server, so
    // with that file in HOME the endpoint would never be used.
    let upstream = GoogleUpstream::start();
    let port = free_port();
    let world = World::new();
    let adc = world
        .home
        .join(".config/gcloud/application_default_credentials.json");
    std::fs::create_dir_all(adc.parent().unwrap()).unwrap();
    std::fs::write(&adc, authorized_user(&upstream, REFRESH_TOKEN).to_string()).unwrap();
    world.write_config(&format!(
        "[sources.vertex]\nkind = \"gcp\"\nproject = \"p\"\nmetadata_endpoint = {{ port = {port} }}\n"
    ));
    let _daemon = world.start_daemon();
    let setup = world.credd(&["setup", "claude-code", "vertex"]);
    assert!(
        setup.ok().contains("Claude Code reads") && setup.stdout.contains("credentials_file"),
        "{}",
        setup.stdout
    );
    let doctor = world.credd(&["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    let warned =
        report.as_array().unwrap().iter().any(|c| {
            c["verdict"] == "warn" && c["detail"].as_str().unwrap().contains("never asked")
        });
    assert!(warned, "{report}");
}
