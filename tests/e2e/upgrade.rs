//! A newer `credd` meeting an older `credd-daemon` (and the other way round): the older daemon
//! is replaced and the caller gets its credential from this release's daemon, or the caller
//! gets a clear error and exit code 6; never a garbled answer.

use credd_tests::World;
use credd_tests::other_daemon::{OnStop, OtherDaemon, refusal};

use crate::gateway_world;

const OLDER: u32 = credd_proto::PROTOCOL_VERSION - 1;
const NEWER: u32 = credd_proto::PROTOCOL_VERSION + 1;

/// How many daemons the clients started that went on to serve (the autostart log is appended
/// to by each).
fn new_daemons(world: &World) -> usize {
    world
        .autostart_log()
        .lines()
        .filter(|l| l.contains("credd-daemon serving"))
        .count()
}

fn world_with_source() -> World {
    gateway_world("tok-upgrade")
}

/// Asserts `credd get` failed with the version exit code, nothing on stdout, and a message
/// naming each of `says`.
fn assert_version_failure(out: &credd_tests::Output, says: &[&str]) {
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(out.stdout, "");
    for words in says {
        assert!(
            out.stderr.contains(words),
            "no `{words}` in: {}",
            out.stderr
        );
    }
}

#[test]
fn an_older_daemon_is_replaced_and_answers_come_from_this_release() {
    let world = world_with_source();
    let old = OtherDaemon::start(&world.socket, OLDER, OnStop::Go, |_| refusal(OLDER));
    let out = world.credd(&["get", "gateway"]);
    assert_eq!(out.ok(), "tok-upgrade\n");
    assert_eq!(out.stderr, "", "a replacement is silent on success");
    assert_eq!(old.stops(), 1);
    assert_eq!(world.runs("gw"), 1);
    assert_eq!(new_daemons(&world), 1, "{}", world.autostart_log());
    // This release's daemon now serves, started by the client.
    let status = world.status();
    assert_eq!(
        status["daemon_version"],
        credd_proto::CREDD_VERSION,
        "{status}"
    );
    assert!(world.autostart_log().contains("credd-daemon serving"));
}

#[test]
fn a_burst_of_newer_clients_replaces_the_older_daemon_once() {
    let world = world_with_source();
    let old = OtherDaemon::start(&world.socket, OLDER, OnStop::Go, |_| refusal(OLDER));
    let outs = world.credd_concurrently(8, &["get", "gateway"]);
    for out in &outs {
        assert_eq!(out.ok(), "tok-upgrade\n", "{out:?}");
    }
    // Each client may have asked the old one to stop; the replacement started once.
    assert!(old.stops() >= 1);
    // One new daemon, one upstream call for all eight.
    assert_eq!(new_daemons(&world), 1, "{}", world.autostart_log());
    assert_eq!(world.runs("gw"), 1);
}

#[test]
fn an_older_daemon_that_will_not_stop_is_named() {
    let world = world_with_source();
    let old = OtherDaemon::start(&world.socket, OLDER, OnStop::Stay, |_| refusal(OLDER));
    let out = world.credd(&["get", "gateway"]);
    assert_version_failure(&out, &[&format!("protocol {OLDER}"), "asked to stop"]);
    assert_eq!(old.stops(), 1, "asked once, not in a loop");
    assert_eq!(world.runs("gw"), 0);
}

#[test]
fn a_newer_daemon_is_left_alone() {
    let world = world_with_source();
    let newer = OtherDaemon::start(&world.socket, NEWER, OnStop::Go, |_| refusal(NEWER));
    let out = world.credd(&["get", "gateway"]);
    assert_version_failure(&out, &[&format!("protocol {NEWER}"), "newer"]);
    assert_eq!(newer.stops(), 0);
    // `credd stop` is understood by every version, so the person can act on the advice.
    assert_eq!(world.credd(&["stop"]).code, 0);
    assert_eq!(newer.stops(), 1);
    // Like a real daemon, it answers first and then removes its socket.
    world.eventually(std::time::Duration::from_secs(5), "the socket goes", || {
        !world.socket.exists()
    });
}

#[test]
fn without_autostart_the_older_daemon_is_named_not_replaced() {
    let world = world_with_source().with_env("CREDD_NO_AUTOSTART", "1");
    let old = OtherDaemon::start(&world.socket, OLDER, OnStop::Go, |_| refusal(OLDER));
    let out = world.credd(&["get", "gateway"]);
    assert_version_failure(&out, &[&format!("protocol {OLDER}"), "credd stop"]);
    assert_eq!(old.stops(), 0);
    assert_eq!(old.requests(), 1);
}

#[test]
fn this_daemon_obeys_a_stop_from_another_version_on_the_refused_connection() {
    use credd_proto::frame;
    use serde_json::{Value, json};
    use std::io::{Read, Write};
    let world = world_with_source();
    let mut daemon = world.start_daemon();
    let mut stream = std::os::unix::net::UnixStream::connect(&world.socket).unwrap();
    let send = |stream: &mut std::os::unix::net::UnixStream, frame: Value| {
        stream.write_all(&frame::encode(&frame)).unwrap();
        serde_json::from_slice::<Value>(&frame::read_frame(stream).unwrap()).unwrap()
    };
    let refused = send(
        &mut stream,
        json!({"version": 7, "request": {"op": "get", "name": "x"}}),
    );
    assert_eq!(
        refused["response"]["kind"], "unsupported_version",
        "{refused}"
    );
    assert_eq!(refused["version"], credd_proto::PROTOCOL_VERSION);
    let stopped = send(
        &mut stream,
        json!({"version": 7, "request": {"op": "stop"}}),
    );
    assert_eq!(stopped["response"]["result"], "done", "{stopped}");
    // The connection ends after a stop, and so does the daemon.
    assert_eq!(stream.read(&mut [0u8; 1]).unwrap(), 0);
    assert_eq!(daemon.wait(), Some(0));
    assert!(!world.socket.exists());
}

#[test]
fn a_get_whose_daemon_stops_before_answering_is_answered_by_the_next() {
    let world = world_with_source();
    let stopping = OtherDaemon::start(
        &world.socket,
        credd_proto::PROTOCOL_VERSION,
        OnStop::Go,
        |_| serde_json::Value::Null,
    );
    let out = world.credd(&["get", "gateway"]);
    assert_eq!(out.ok(), "tok-upgrade\n");
    assert_eq!(out.stderr, "");
    assert_eq!(stopping.requests(), 1);
    assert_eq!(world.runs("gw"), 1);
}
