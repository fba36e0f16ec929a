//! Starting, finding and stopping the daemon: autostart, one daemon per socket, stale sockets,
//! signals, private paths.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use credd_tests::World;

use crate::gateway_world;

fn world_with_gateway() -> World {
    gateway_world("tok-lifecycle-1")
}

#[test]
fn first_get_starts_the_daemon_and_later_gets_reuse_it() {
    let world = world_with_gateway();
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-lifecycle-1\n");
    let pid = world.status()["pid"].as_u64().unwrap();
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-lifecycle-1\n");
    assert_eq!(
        world.status()["pid"].as_u64().unwrap(),
        pid,
        "a second daemon was started"
    );
    assert_eq!(world.runs("gw"), 1);
}

#[test]
fn socket_is_private() {
    let world = world_with_gateway();
    let _daemon = world.start_daemon();
    let dir_mode = std::fs::metadata(world.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    let sock_mode = std::fs::metadata(&world.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    assert_eq!(sock_mode & 0o777, 0o600);
}

#[test]
fn without_autostart_a_missing_daemon_is_a_clear_error() {
    let world = world_with_gateway().with_env("CREDD_NO_AUTOSTART", "1");
    let out = world.credd(&["get", "gateway"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("CREDD_NO_AUTOSTART"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn a_second_daemon_refuses_to_start() {
    let world = world_with_gateway();
    let _first = world.start_daemon();
    let out = std::process::Command::new(credd_tests::bin("credd-daemon"))
        .env("CREDD_SOCKET", &world.socket)
        .env("CREDD_CONFIG", &world.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already serving"), "{stderr}");
    // The first one still answers.
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-lifecycle-1\n");
}

#[test]
fn sigterm_stops_the_daemon_and_removes_the_socket() {
    let world = world_with_gateway();
    let mut daemon = world.start_daemon();
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait(), Some(0));
    assert!(!world.socket.exists(), "socket left behind");
}

#[test]
fn credd_stop_stops_the_daemon() {
    let world = world_with_gateway();
    let mut daemon = world.start_daemon();
    let out = world.credd(&["stop"]);
    assert!(out.ok().contains("stopping"));
    assert_eq!(daemon.wait(), Some(0));
    assert!(!world.socket.exists());
    assert_eq!(world.credd(&["stop"]).ok(), "no credd-daemon is running\n");
}

#[test]
fn a_stop_lets_the_answers_in_progress_finish() {
    let world = world_with_gateway();
    // The command takes a second: the get is in progress when the stop comes.
    std::fs::write(world.path("gw.sleep"), "1").unwrap();
    let mut daemon = world.start_daemon();
    // No autostart: only the daemon being stopped can answer this get.
    let get = world.spawn_credd(&["get", "gateway"], |cmd| {
        cmd.env("CREDD_NO_AUTOSTART", "1");
    });
    world.eventually(Duration::from_secs(5), "the command to start", || {
        world.runs("gw") == 1
    });
    assert!(world.credd(&["stop"]).ok().contains("stopping"));
    let out = credd_tests::Output::of(get);
    assert_eq!(
        out.ok(),
        "tok-lifecycle-1\n",
        "the answer in progress was cut off"
    );
    assert_eq!(daemon.wait(), Some(0));
    assert!(!world.socket.exists());
}

#[test]
fn after_sigkill_the_next_get_replaces_the_stale_socket() {
    let world = world_with_gateway();
    let mut daemon = world.start_daemon();
    world.credd(&["get", "gateway"]).ok();
    daemon.signal(libc::SIGKILL);
    daemon.wait();
    assert!(
        world.socket.exists(),
        "a killed daemon leaves its socket file"
    );
    let out = world.credd(&["get", "gateway"]);
    assert_eq!(out.ok(), "tok-lifecycle-1\n");
    assert!(
        world.autostart_log().contains("replaced a stale socket"),
        "{}",
        world.autostart_log()
    );
}

#[test]
fn concurrent_first_calls_start_exactly_one_daemon() {
    let world = world_with_gateway();
    for out in world.credd_concurrently(20, &["get", "gateway"]) {
        assert_eq!(out.ok(), "tok-lifecycle-1\n");
    }
    let log = world.autostart_log();
    assert_eq!(log.matches("credd-daemon serving").count(), 1, "{log}");
    assert!(
        !log.contains("already serving"),
        "a second daemon was started: {log}"
    );
}

#[test]
fn client_never_reads_stdin() {
    // Claude Code leaves the helper's stdin open forever; credd must not wait on it.
    let world = world_with_gateway();
    let mut child = world
        .credd_command(&["get", "gateway"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take(); // held open, never written
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "credd waited on stdin"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_writer_killed_mid_write_leaves_the_old_file_or_the_new_one_never_a_torn_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sso/cache/token.json");
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..40u64 {
        let mut writer = std::process::Command::new(credd_tests::bin("write-loop"))
            .arg(&path)
            .spawn()
            .unwrap();
        // Not a wait for something to happen: the kill lands at a different moment of the
        // write in each round, which is the point.
        std::thread::sleep(std::time::Duration::from_millis(3 + (round * 7) % 40));
        writer.kill().unwrap();
        writer.wait().unwrap();
        let Ok(bytes) = std::fs::read(&path) else {
            continue; // killed before the first rename
        };
        let file: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("round {round}: a torn file ({} bytes): {e}", bytes.len()));
        assert_eq!(file["padding"].as_str().unwrap().len(), 256 * 1024);
        seen.insert(file["generation"].as_u64().unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(
        seen.len() > 1,
        "the writer was killed at different moments: {seen:?}"
    );
    // Temporary files of killed writers do not pile up.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.len() <= 1, "{leftovers:?}");
}
