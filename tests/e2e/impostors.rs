//! Another local user posing as credd gets nothing: not by making the socket's directory first
//! in a shared temporary directory, not by serving a socket the client reaches, and not by
//! holding an endpoint's port (while it is held, and after it is given back). The other user is
//! uid 65534, running the `impostor` helper.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use credd_proto::{Credential, CredentialSecret, LoginPrompt, Response, Secret, frame};
use credd_tests::World;
use credd_tests::entra::EntraUpstream;
use credd_tests::other_user::{self, Impostor};
use credd_tests::peers::{self, Moto, TestCa, free_port};

use crate::entra_source::{CLIENT_ID, CLIENT_SECRET};
use crate::gateway_world;

/// What the impostor answers: a token of its own to `get`, a command to run to `login`.
fn impostor_answer(login: bool, pwned: &Path) -> Vec<u8> {
    let response = if login {
        Response::LoginPrompt(LoginPrompt::Command {
            command: vec![
                "sh".into(),
                "-c".into(),
                format!("touch {}", pwned.display()),
            ],
            env: Vec::new(),
            instructions: "Signing you in...".into(),
        })
    } else {
        Response::Credential(Credential {
            source: "gateway".into(),
            secret: CredentialSecret::Token {
                token: Secret::new("impostor-token"),
            },
            issued_at: 0,
            expires_at: 4_102_444_800,
            metadata: Default::default(),
        })
    };
    frame::encode_response(response)
}

/// The impostor serving `socket`, answering with `shared/reply` and noting what it receives in
/// the log returned.
fn serve_as_impostor(shared: &Path, socket: &Path) -> (Impostor, std::path::PathBuf) {
    let log = shared.join("impostor.log");
    std::fs::write(shared.join("reply"), b"").unwrap();
    let impostor = Impostor::start(&[
        "unix",
        &socket.display().to_string(),
        &shared.join("reply").display().to_string(),
        &log.display().to_string(),
    ]);
    (impostor, log)
}

/// Runs `credd get` and `credd login` against `socket` (served by the impostor) and checks
/// that each failed with exit code 3 naming `why`, printed nothing, and ran nothing.
fn assert_refused(world: &World, socket: &Path, shared: &Path, why: &str) {
    let pwned = shared.join("pwned");
    for login in [false, true] {
        std::fs::write(shared.join("reply"), impostor_answer(login, &pwned)).unwrap();
        let args = if login {
            ["login", "gateway"]
        } else {
            ["get", "gateway"]
        };
        let out = world
            .credd_command(&args)
            .env("CREDD_SOCKET", socket)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{args:?} printed {stdout}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert!(!stderr.contains("impostor-token"), "{stderr}");
    }
    assert!(!pwned.exists(), "credd ran the impostor's command");
}

#[test]
fn a_socket_directory_made_first_by_another_user_is_never_used() {
    if !other_user::available("a_socket_directory_made_first_by_another_user_is_never_used") {
        return;
    }
    let world = gateway_world("tok-real");
    let shared = other_user::shared_dir(world.dir.path());
    // On a shared /tmp, the other user makes the directory credd's fallback would use, first.
    let squatted = shared.join(format!("credd-{}", credd_proto::paths::effective_uid()));
    let made = other_user::command("mkdir")
        .args(["-m", "755"])
        .arg(&squatted)
        .status()
        .unwrap();
    assert!(made.success());
    let socket = squatted.join("credd.sock");
    let (_impostor, log) = serve_as_impostor(&shared, &socket);

    assert_refused(
        &world,
        &socket,
        &shared,
        &format!("{} belongs to uid 65534", squatted.display()),
    );
    // With no runtime directory, credd's own socket is under the user's home, never in the
    // shared temporary directory the impostor waits in.
    let fallback = world
        .credd_command(&["get", "gateway"])
        .env_remove("CREDD_SOCKET")
        .env("TMPDIR", &shared)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&fallback.stdout),
        "tok-real\n",
        "{}",
        String::from_utf8_lossy(&fallback.stderr)
    );
    let own = world.home.join(".local/state/credd/credd.sock");
    assert!(own.exists(), "no socket at {}", own.display());
    let stopped = world
        .credd_command(&["stop"])
        .env_remove("CREDD_SOCKET")
        .env("TMPDIR", &shared)
        .output()
        .unwrap();
    assert!(stopped.status.success());
    let noted = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(noted.is_empty(), "the impostor was reached: {noted}");
}

#[test]
fn a_server_of_another_user_on_the_socket_is_sent_nothing() {
    if !other_user::available("a_server_of_another_user_on_the_socket_is_sent_nothing") {
        return;
    }
    let world = gateway_world("tok-real");
    let shared = other_user::shared_dir(world.dir.path());
    let theirs = shared.join("impostor.sock");
    let (_impostor, log) = serve_as_impostor(&shared, &theirs);
    // Its socket, moved into this user's own private directory: the directory passes every
    // check, so only the server's uid tells.
    credd_proto::paths::ensure_private_dir(world.socket.parent().unwrap()).unwrap();
    std::fs::rename(&theirs, &world.socket).unwrap();

    assert_refused(&world, &world.socket, &shared, "runs as uid 65534");
    // The impostor notes a connection once it has closed, which may be after the client exits.
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    world.eventually(Duration::from_secs(10), "both connections noted", || {
        read_log().lines().count() >= 2
    });
    let noted = read_log();
    assert!(
        noted.lines().count() >= 2 && noted.lines().all(|l| l == "connection, received 0 bytes"),
        "the impostor received bytes: {noted}"
    );
}

/// A GET with `header`, and the status line and body of the answer.
fn get(port: u16, target: &str, header: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{header}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

const MSI: &str = "/msi/token?api-version=2019-08-01&resource=https://cognitiveservices.azure.com";

#[test]
fn an_endpoint_port_held_by_another_user_is_taken_back_with_new_secrets() {
    if !other_user::available(
        "an_endpoint_port_held_by_another_user_is_taken_back_with_new_secrets",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let ca = TestCa::create(dir.path());
    let entra = EntraUpstream::start(&ca);
    entra.register_secret(CLIENT_ID, CLIENT_SECRET, false);
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, CLIENT_SECRET).unwrap();
    let (aws_port, mi_port) = (free_port(), free_port());
    let world = World::new()
        .with_aws(
            "[profile app]\nregion = us-east-1\n",
            "[app]\naws_access_key_id = AKIACREDDSQUATTED01\naws_secret_access_key = long-term-secret\n",
            &moto.url(),
        )
        .with_env("SSL_CERT_FILE", &ca.ca_pem.display().to_string());
    world.write_config(&format!(
        "[sources.app]\nkind = \"aws\"\nprofile = \"app\"\ncontainer_endpoint = {{ port = {aws_port} }}\n\n\
         [sources.foundry]\nkind = \"entra\"\nmethod = \"client-secret\"\nauthority = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\nidentity_endpoint = {{ port = {mi_port} }}\n",
        entra.authority(),
        credd_tests::entra::TENANT,
        secret_file.display(),
    ));
    let shared = other_user::shared_dir(world.dir.path());
    let daemon = world.start_daemon();
    for port in [aws_port, mi_port] {
        peers::wait_for_port(port, Duration::from_secs(10), "an endpoint");
    }
    let token_file = world.endpoint_env("app", "aws-container")[1].1.clone();
    let identity_file = world
        .home
        .join(".local/state/credd/identity-foundry.secret");
    let (old_token, old_identity) = (
        std::fs::read_to_string(&token_file).unwrap(),
        std::fs::read_to_string(&identity_file).unwrap(),
    );
    drop(daemon);

    // While credd is down, the other user takes both ports; an SDK of this user's sends it
    // the secrets it has.
    let logs = [shared.join("aws.log"), shared.join("mi.log")];
    let squatters: Vec<Impostor> = [aws_port, mi_port]
        .iter()
        .zip(&logs)
        .map(|(port, log)| Impostor::start(&["tcp", &port.to_string(), &log.display().to_string()]))
        .collect();
    get(mi_port, MSI, &format!("X-IDENTITY-HEADER: {old_identity}"));
    get(
        aws_port,
        "/aws/credentials",
        &format!("Authorization: {old_token}"),
    );
    let captured = std::fs::read_to_string(&logs[1]).unwrap();
    // (Failure messages name no secret: test output is no place for one either.)
    assert!(
        captured.contains(&old_identity),
        "the impostor captured no identity header ({} lines)",
        captured.lines().count()
    );

    let mut daemon = world.start_daemon();
    world.eventually(
        Duration::from_secs(10),
        "the endpoints say who holds their ports",
        || {
            ["app", "foundry"].iter().all(|source| {
                world.source_status(source)["endpoints"][0]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("held by ANOTHER USER (uid 65534)"))
            })
        },
    );
    assert!(
        !Path::new(&token_file).exists() && !identity_file.exists(),
        "a secret file is there for SDKs to send to the impostor"
    );
    let doctor = world.credd(&["doctor"]);
    assert_eq!(doctor.code, 1, "{}{}", doctor.stdout, doctor.stderr);
    assert!(doctor.stdout.contains("uid 65534"), "{}", doctor.stdout);

    for squatter in squatters {
        squatter.stop();
    }
    world.eventually(
        Duration::from_secs(30),
        "the endpoints take their ports back",
        || {
            ["app", "foundry"]
                .iter()
                .all(|source| world.source_status(source)["endpoints"][0]["error"].is_null())
        },
    );
    let (new_token, new_identity) = (
        std::fs::read_to_string(&token_file).unwrap(),
        std::fs::read_to_string(&identity_file).unwrap(),
    );
    assert_ne!(new_token, old_token);
    assert_ne!(new_identity, old_identity);
    // What the impostor captured is worthless now; the new secrets work.
    let (replayed, _) = get(mi_port, MSI, &format!("X-IDENTITY-HEADER: {old_identity}"));
    assert!(replayed.contains(" 401"), "{replayed}");
    let (replayed, _) = get(
        aws_port,
        "/aws/credentials",
        &format!("Authorization: {old_token}"),
    );
    assert!(replayed.contains(" 403"), "{replayed}");
    let (fresh, body) = get(mi_port, MSI, &format!("X-IDENTITY-HEADER: {new_identity}"));
    assert!(
        fresh.contains(" 200") && body.contains("access_token"),
        "{fresh}"
    );
    let (fresh, body) = get(
        aws_port,
        "/aws/credentials",
        &format!("Authorization: {new_token}"),
    );
    assert!(
        fresh.contains(" 200") && body.contains("AKIA") | body.contains("ASIA"),
        "{fresh}"
    );
    let doctor = world.credd(&["doctor"]);
    assert!(!doctor.stdout.contains("uid 65534"), "{}", doctor.stdout);
    daemon.signal(libc::SIGTERM);
    daemon.wait();
    assert!(
        daemon.log().contains("took the port back"),
        "{}",
        daemon.log()
    );
}

#[test]
fn doctor_sends_no_secret_to_a_port_another_user_holds() {
    if !other_user::available("doctor_sends_no_secret_to_a_port_another_user_holds") {
        return;
    }
    let world = World::new();
    let shared = other_user::shared_dir(world.dir.path());
    let port = free_port();
    let log = shared.join("doctor.log");
    let _squatter = Impostor::start(&["tcp", &port.to_string(), &log.display().to_string()]);
    // A daemon whose status says the endpoint is its own (as one would after a crash let the
    // port go), with a secret file beside it.
    let secret = world.path("identity.secret");
    std::fs::write(&secret, "the-identity-secret-4f1a").unwrap();
    let endpoint = credd_proto::EndpointStatus {
        kind: "azure-managed-identity".into(),
        url: format!("http://127.0.0.1:{port}/msi/token"),
        env: vec![
            format!("IDENTITY_ENDPOINT=http://127.0.0.1:{port}/msi/token"),
            format!("IDENTITY_HEADER=$(cat '{}')", secret.display()),
        ],
        error: None,
        secret_file: Some(secret.display().to_string()),
        socket: None,
        server: None,
        listening: false,
    };
    let mut source: credd_proto::SourceStatus = serde_json::from_value(serde_json::json!({
        "name": "foundry", "kind": "entra", "state": "fresh",
        "consecutive_failures": 0, "upstream_calls": 1,
    }))
    .unwrap();
    source.endpoints.push(endpoint);
    let status = serde_json::to_value(Response::Status(credd_proto::StatusReport {
        daemon_version: credd_proto::CREDD_VERSION.into(),
        protocol: credd_proto::PROTOCOL_VERSION,
        pid: std::process::id(),
        uptime_secs: 1,
        now: credd_tests::unix_now(),
        socket: world.socket.display().to_string(),
        config_path: world.config.display().to_string(),
        config_error: None,
        sources: vec![source],
        forwards: Vec::new(),
    }))
    .unwrap();
    let _daemon = credd_tests::other_daemon::OtherDaemon::start(
        &world.socket,
        credd_proto::PROTOCOL_VERSION,
        credd_tests::other_daemon::OnStop::Stay,
        move |request| match request["request"]["op"].as_str() {
            Some("hello") => serde_json::to_value(Response::Hello(credd_proto::DaemonInfo {
                daemon_version: credd_proto::CREDD_VERSION.into(),
                protocol: credd_proto::PROTOCOL_VERSION,
                pid: std::process::id(),
            }))
            .unwrap(),
            _ => status.clone(),
        },
    );
    let doctor = world.credd(&["doctor"]);
    assert_eq!(doctor.code, 1, "{}{}", doctor.stdout, doctor.stderr);
    assert!(
        doctor
            .stdout
            .contains(&format!("127.0.0.1:{port} is held by uid 65534")),
        "{}",
        doctor.stdout
    );
    let seen = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !seen.contains("the-identity-secret"),
        "doctor sent the identity header to the impostor"
    );
}
