//! Bad input on the socket: every malformed, oversized, foreign or silent client gets a clear
//! answer (or is dropped) and never disturbs the others.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use credd_proto::frame;
use credd_tests::World;
use serde_json::Value;

use crate::gateway_world;

fn served_world() -> (World, credd_tests::Daemon) {
    let world = gateway_world("tok-protocol");
    let daemon = world.start_daemon();
    (world, daemon)
}

fn reply(bytes: &[u8]) -> Value {
    assert!(bytes.len() > 4, "no reply frame");
    let len = frame::body_len(bytes[..4].try_into().unwrap()).unwrap();
    serde_json::from_slice(&bytes[4..4 + len]).unwrap()
}

fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn malformed_frame_gets_a_bad_request_reply() {
    let (world, _daemon) = served_world();
    let r = reply(&world.raw_exchange(&frame_of(b"{this is not json")));
    assert_eq!(r["response"]["kind"], "bad_request", "{r}");
    let unknown_op = format!(
        r#"{{"version":{},"request":{{"op":"teleport"}}}}"#,
        credd_proto::PROTOCOL_VERSION
    );
    let r = reply(&world.raw_exchange(&frame_of(unknown_op.as_bytes())));
    assert_eq!(r["response"]["kind"], "bad_request", "{r}");
    // The daemon still serves.
    assert!(
        world.credd(&["get", "gateway"]).ok() == "tok-protocol\n",
        "the token was not served (compared, never printed)"
    );
}

#[test]
fn oversized_frame_is_refused_without_reading_it() {
    let (world, _daemon) = served_world();
    let header = (16u32 * 1024 * 1024).to_be_bytes();
    let r = reply(&world.raw_exchange(&header));
    assert_eq!(r["response"]["kind"], "bad_request");
    assert!(
        r["response"]["message"].as_str().unwrap().contains("limit"),
        "{r}"
    );
    assert!(
        world.credd(&["get", "gateway"]).ok() == "tok-protocol\n",
        "the token was not served (compared, never printed)"
    );
}

#[test]
fn unknown_protocol_version_is_named() {
    let (world, _daemon) = served_world();
    let r = reply(&world.raw_exchange(&frame_of(br#"{"version":99,"request":{"op":"status"}}"#)));
    assert_eq!(r["response"]["kind"], "unsupported_version");
    let message = r["response"]["message"].as_str().unwrap();
    assert!(
        message.contains("99") && message.contains("credd stop"),
        "{message}"
    );
}

#[test]
fn truncated_frame_gets_an_answer() {
    let (world, _daemon) = served_world();
    let mut stream = UnixStream::connect(&world.socket).unwrap();
    stream.write_all(&100u32.to_be_bytes()).unwrap();
    stream.write_all(b"{\"version\":1").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut out).unwrap();
    assert_eq!(reply(&out)["response"]["kind"], "bad_request");
}

#[test]
fn a_silent_client_does_not_delay_others() {
    let (world, _daemon) = served_world();
    let silent: Vec<UnixStream> = (0..50)
        .map(|_| UnixStream::connect(&world.socket).unwrap())
        .collect();
    let started = Instant::now();
    for _ in 0..5 {
        assert!(
            world.credd(&["get", "gateway"]).ok() == "tok-protocol\n",
            "the token was not served (compared, never printed)"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "others were held up by silent clients: {:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn a_peer_of_another_user_is_refused() {
    use credd_tests::other_user;
    use std::os::unix::fs::PermissionsExt;
    if !other_user::available("a_peer_of_another_user_is_refused") {
        return;
    }
    let (world, daemon) = served_world();
    // Open the way to the socket, as a careless chmod would: the peer check must still refuse.
    for dir in [world.dir.path(), world.socket.parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&world.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // The other user's own credd will not use a directory it does not own...
    let mut cmd = world.credd_command(&["get", "gateway"]);
    cmd.env("CREDD_NO_AUTOSTART", "1");
    std::os::unix::process::CommandExt::uid(&mut cmd, other_user::NOBODY);
    std::os::unix::process::CommandExt::gid(&mut cmd, other_user::NOBODY);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty(), "another user was served");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("belongs to uid 0"), "{stderr}");
    // ...and a client of its own making that connects anyway is refused by the daemon.
    let frame = world.path("get.frame");
    std::fs::write(
        &frame,
        credd_proto::frame::encode_request(credd_proto::Request::Get {
            source: "gateway".into(),
            min_valid_secs: Some(60),
            caller: None,
            audience: None,
        }),
    )
    .unwrap();
    std::fs::set_permissions(&frame, std::fs::Permissions::from_mode(0o644)).unwrap();
    let asked = other_user::command(credd_tests::bin("impostor"))
        .args([
            "ask",
            &world.socket.display().to_string(),
            &frame.display().to_string(),
        ])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&asked.stdout);
    assert!(
        answer.contains("serves only the user it runs as"),
        "{answer}{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    assert!(!answer.contains("tok-protocol"), "{answer}");
    assert!(
        daemon
            .log()
            .contains("refused a connection on the socket: the client runs as uid 65534"),
        "{}",
        daemon.log()
    );
    assert_eq!(world.runs("gw"), 0);
}
