//! The AWS container-credentials endpoint, used by boto3 with no helper hook at all, and the
//! requests it must refuse.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use credd_tests::World;
use credd_tests::peers::{self, Moto, free_port};

fn endpoint_world(moto: &Moto, port: u16) -> World {
    let world = World::new().with_aws(
        "[profile base]\nregion = us-east-1\n\n[profile app]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/app\nsource_profile = base\nrole_session_name = credd-app\n",
        "[base]\naws_access_key_id = AKIACREDDLONGTERM003\naws_secret_access_key = long-term-secret\n",
        &moto.url(),
    );
    world.write_config(&format!(
        "[sources.app]\nkind = \"aws\"\nprofile = \"app\"\ncontainer_endpoint = {{ port = {port} }}\n"
    ));
    world
}

fn raw_get(port: u16, host: &str, authorization: Option<&str>) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /aws/credentials HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// moto, and a daemon serving the `app` source on its container endpoint; returns them with
/// the endpoint's port and the env lines `credd status` prints for it.
fn serving_endpoint() -> (Moto, World, credd_tests::Daemon, u16, Vec<(String, String)>) {
    let moto = Moto::start();
    let port = free_port();
    let world = endpoint_world(&moto, port);
    let daemon = world.start_daemon();
    peers::wait_for_port(
        port,
        std::time::Duration::from_secs(10),
        "the container endpoint",
    );
    let env = world.endpoint_env("app", "aws-container");
    (moto, world, daemon, port, env)
}

#[test]
fn boto3_gets_credentials_from_the_container_endpoint() {
    let (moto, world, _daemon, port, env) = serving_endpoint();
    let human = world.credd(&["status"]);
    assert!(
        human.ok().contains(&format!(
            "export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:{port}/aws/credentials"
        )),
        "{}",
        human.stdout
    );

    let script = r#"
import sys, boto3
session = boto3.Session(region_name="us-east-1")
assert session.get_credentials().method == "container-role", session.get_credentials().method
print(session.client("sts", endpoint_url=sys.argv[1]).get_caller_identity()["Arn"])
"#;
    let out = Command::new(peers::python())
        .args(["-c", script, &moto.url()])
        .env_clear()
        .env("HOME", &world.home)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let arn = String::from_utf8_lossy(&out.stdout);
    assert!(arn.contains(":assumed-role/app/credd-app"), "{arn}");
}

#[test]
fn the_endpoint_refuses_wrong_tokens_and_foreign_hosts() {
    let (_moto, world, _daemon, port, env) = serving_endpoint();
    let token_file = &env
        .iter()
        .find(|(k, _)| k == "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        .unwrap()
        .1;
    let mode = std::fs::metadata(token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    let token = std::fs::read_to_string(token_file).unwrap();
    let host = format!("127.0.0.1:{port}");

    let missing = raw_get(port, &host, None);
    assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
    let wrong = raw_get(port, &host, Some("not-the-token"));
    assert!(wrong.starts_with("HTTP/1.1 403"), "{wrong}");
    let rebinding = raw_get(port, &format!("attacker.example:{port}"), Some(&token));
    assert!(rebinding.starts_with("HTTP/1.1 403"), "{rebinding}");
    for refused in [&missing, &wrong, &rebinding] {
        assert!(!refused.contains("AccessKeyId"), "{refused}");
    }
    let ok = raw_get(port, &host, Some(&token));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(
        ok.contains("\"AccessKeyId\"") && ok.contains("\"Token\"") && ok.contains("\"Expiration\""),
        "{ok}"
    );

    // `credd doctor` asks as boto3 does, with the token file's token; a file that no longer
    // holds the endpoint's token is found, and nothing secret is printed either way.
    let check = "endpoint aws-container of app";
    let (verdict, detail, _) = world.doctor_check(check);
    assert_eq!(
        (verdict.as_str(), detail.contains("answers")),
        ("ok", true),
        "{detail}"
    );
    std::fs::write(token_file, "a-token-from-before").unwrap();
    let (verdict, detail, report) = world.doctor_check(check);
    assert_eq!(verdict, "fail", "{report}");
    assert!(
        detail.contains("answered 403") && detail.contains("wrong Authorization token"),
        "{detail}"
    );
    for secret in [token.trim(), "a-token-from-before", "AccessKeyId"] {
        assert!(!report.contains(secret), "doctor printed {secret}");
    }
}
