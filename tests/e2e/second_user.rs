//! Another local user gets nothing from credd: not from the socket (see `protocol`), and not
//! from any local endpoint, even with every directory on the way opened up. (The tests run as
//! root in CI and act as uid 65534. Even with a secret in hand, as if one had leaked, another
//! user's connection is closed before it is read.)

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use credd_tests::World;
use credd_tests::entra::EntraUpstream;
use credd_tests::google::GoogleUpstream;
use credd_tests::peers::{self, Moto, TestCa, free_port};

use crate::entra_source::{CLIENT_ID, CLIENT_SECRET};
use crate::gcp_source::{REFRESH_TOKEN, authorized_user};

const NOBODY: u32 = 65534;

/// Runs a bash script as uid 65534; returns (exit code, stdout + stderr).
fn as_other_user(script: &str) -> (i32, String) {
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn http_get(port: u16, target: &str, headers: &str) -> String {
    format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'GET {target} HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\n{headers}Connection: close\\r\\n\\r\\n' >&3; cat <&3"
    )
}

#[test]
fn another_user_gets_nothing_from_any_endpoint_or_secret_file() {
    if !credd_tests::other_user::available(
        "another_user_gets_nothing_from_any_endpoint_or_secret_file",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let google = GoogleUpstream::start();
    let ca = TestCa::create(dir.path());
    let entra = EntraUpstream::start(&ca);
    entra.register_secret(CLIENT_ID, CLIENT_SECRET, false);
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, CLIENT_SECRET).unwrap();
    let (aws_port, gce_port, mi_port) = (free_port(), free_port(), free_port());
    let proxy_port = free_port();

    let world = World::new()
        .with_aws(
            "[profile app]\nregion = us-east-1\n",
            "[app]\naws_access_key_id = AKIACREDDSECONDUSER1\naws_secret_access_key = long-term-secret\n",
            &moto.url(),
        )
        .with_env("SSL_CERT_FILE", &ca.ca_pem.display().to_string());
    let adc = world.path("adc.json");
    std::fs::write(&adc, authorized_user(&google, REFRESH_TOKEN).to_string()).unwrap();
    world.write_config(&format!(
        "[sources.app]\nkind = \"aws\"\nprofile = \"app\"\ncontainer_endpoint = {{ port = {aws_port} }}\nproxy = {{ port = {proxy_port}, upstream = \"http://127.0.0.1:9\" }}\n\n\
         [sources.vertex]\nkind = \"gcp\"\ncredentials_file = \"{}\"\nmetadata_endpoint = {{ port = {gce_port} }}\n\n\
         [sources.foundry]\nkind = \"entra\"\nmethod = \"client-secret\"\nauthority = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\nidentity_endpoint = {{ port = {mi_port} }}\n",
        adc.display(),
        entra.authority(),
        credd_tests::entra::TENANT,
        secret_file.display(),
    ));
    let daemon = world.start_daemon();
    for port in [aws_port, gce_port, mi_port, proxy_port] {
        peers::wait_for_port(port, Duration::from_secs(10), "an endpoint");
    }
    // The owner is served by each, so the endpoints work and have tokens cached.
    world.credd(&["get", "app", "--format", "aws"]).ok();
    world.credd(&["get", "vertex"]).ok();
    world.credd(&["get", "foundry"]).ok();
    let container_token_file = world.endpoint_env("app", "aws-container")[1].1.clone();
    let identity_secret_file = world.source_status("foundry")["endpoints"][0]["env"][1]
        .as_str()
        .unwrap()
        .trim_start_matches("IDENTITY_HEADER=$(cat '")
        .trim_end_matches("')")
        .to_string();
    let proxy_secret_file = world.source_status("app")["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "proxy-port")
        .unwrap()["secret_file"]
        .as_str()
        .unwrap()
        .to_string();

    // Open every directory on the way, as a careless chmod would: the files' own modes and
    // the endpoints' checks must still hold.
    let mut opened = vec![dir.path().to_path_buf(), world.dir.path().to_path_buf()];
    for file in [
        &container_token_file,
        &identity_secret_file,
        &proxy_secret_file,
    ] {
        let mut p = std::path::Path::new(file).parent();
        while let Some(d) = p.filter(|d| d.starts_with(world.dir.path())) {
            opened.push(d.to_path_buf());
            p = d.parent();
        }
    }
    for d in &opened {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let calls_before = (google.total_calls(), entra.total_calls());

    for file in [
        &container_token_file,
        &identity_secret_file,
        &proxy_secret_file,
    ] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
        let (code, said) = as_other_user(&format!("cat {file}"));
        assert_ne!(code, 0, "another user read {file}");
        assert!(said.contains("Permission denied"), "{said}");
    }
    // Every endpoint closes another user's connection before reading it, secret or not.
    let container_token = std::fs::read_to_string(&container_token_file).unwrap();
    let (_, container) = as_other_user(&http_get(
        aws_port,
        "/aws/credentials",
        &format!("Authorization: {container_token}\\r\\n"),
    ));
    let (_, metadata) = as_other_user(&http_get(
        gce_port,
        "/computeMetadata/v1/instance/service-accounts/default/token",
        "Metadata-Flavor: Google\\r\\n",
    ));
    let identity_secret = std::fs::read_to_string(&identity_secret_file).unwrap();
    let (_, identity) = as_other_user(&http_get(
        mi_port,
        "/msi/token?api-version=2019-08-01&resource=https://cognitiveservices.azure.com",
        &format!("X-IDENTITY-HEADER: {identity_secret}\\r\\n"),
    ));
    let proxy_secret = std::fs::read_to_string(&proxy_secret_file).unwrap();
    let (_, proxied) = as_other_user(&http_get(
        proxy_port,
        "/model/anthropic.claude/invoke",
        &format!("X-Credd-Proxy-Secret: {proxy_secret}\\r\\n"),
    ));
    for answer in [&container, &metadata, &identity, &proxied] {
        assert!(
            !answer.contains("HTTP/1.1"),
            "another user was answered: {answer}"
        );
    }
    assert_eq!((google.total_calls(), entra.total_calls()), calls_before);
    let log = daemon.log();
    assert!(log.contains("the client runs as uid 65534"), "{log}");
    for kind in [
        "aws-container",
        "gce-metadata",
        "azure-managed-identity",
        "proxy",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(kind) && l.contains("the client runs as uid 65534")),
            "{kind}: {log}"
        );
    }
}
