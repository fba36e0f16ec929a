//! The daemon keeps to itself, as ssh-agent and gpg-agent do: an autostarted daemon leaves its
//! caller's session, directory and open files behind and takes no core dumps; it never removes
//! a file of the user's at its socket path; and its endpoints hold up under another user's
//! flood of connections, within a cap on connections, header time and header size.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use credd_tests::flood::{self, metadata_world};
use credd_tests::other_user::{self, Impostor};
use credd_tests::peers;

use crate::gateway_world;

/// The pid in the daemon's lock file beside `socket`.
fn daemon_pid(socket: &std::path::Path) -> u32 {
    let lock = credd_proto::paths::sibling(socket, ".lock");
    std::fs::read_to_string(&lock)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads a valid rlimit.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn an_autostarted_daemon_leaves_its_callers_session_directory_and_files() {
    let world = gateway_world("tok-detached");
    let cwd = world.path("caller-cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let inherited = std::fs::File::create(world.path("inherited-by-the-caller")).unwrap();
    let raw = inherited.as_raw_fd();
    let mut cmd = world.credd_command(&["get", "gateway"]);
    cmd.current_dir(&cwd);
    // SAFETY: only async-signal-safe calls (setrlimit, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // A shell that allows core dumps, and a descriptor left open for its children.
            set_limit(libc::RLIMIT_CORE, libc::RLIM_INFINITY, libc::RLIM_INFINITY)?;
            if libc::dup2(raw, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tok-detached\n");

    let pid = daemon_pid(&world.socket);
    let proc = format!("/proc/{pid}");
    let stat = std::fs::read_to_string(format!("{proc}/stat")).unwrap();
    // Fields after the command name: state ppid pgrp session ...
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        pid.to_string(),
        "the daemon leads no session of its own: {stat}"
    );
    assert_eq!(
        std::fs::read_link(format!("{proc}/cwd")).unwrap(),
        std::path::PathBuf::from("/")
    );
    for fd in std::fs::read_dir(format!("{proc}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert!(
            !target.to_string_lossy().contains("inherited-by-the-caller"),
            "the daemon kept the caller's descriptor"
        );
    }
    let limits = std::fs::read_to_string(format!("{proc}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );
}

#[test]
fn a_file_at_the_socket_path_is_never_removed() {
    let world = gateway_world("tok-file");
    let dir = world.socket.parent().unwrap();
    credd_proto::paths::ensure_private_dir(dir).unwrap();
    std::fs::write(&world.socket, "the user's notes").unwrap();

    let mut cmd = std::process::Command::new(credd_tests::bin("credd-daemon"));
    world.isolate(&mut cmd);
    let mut daemon = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = daemon.kill();
    let out = credd_tests::Output::of(daemon);
    assert_ne!(out.code, -1, "credd-daemon replaced the file and served");
    assert!(out.stderr.contains("is not a socket"), "{}", out.stderr);
    // A client finds no daemon there, and starting one fails the same way.
    let got = world.credd(&["get", "gateway"]);
    assert_eq!(got.code, 3, "{got:?}");
    assert!(got.stderr.contains("is not a socket"), "{}", got.stderr);
    assert_eq!(
        std::fs::read_to_string(&world.socket).unwrap(),
        "the user's notes"
    );
}

#[test]
fn another_users_flood_takes_neither_the_daemons_descriptors_nor_its_answers() {
    if !other_user::available(
        "another_users_flood_takes_neither_the_daemons_descriptors_nor_its_answers",
    ) {
        return;
    }
    let (world, port) = metadata_world();
    // A daemon started where the soft limit is the common 1024.
    let daemon = world.start_daemon_with(|cmd| flood::with_open_file_limit(cmd, 1024, 4096));
    peers::wait_for_port(port, Duration::from_secs(10), "the metadata endpoint");
    let pid = daemon.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        open_files[3..5],
        ["4096", "4096"],
        "the soft limit was not raised to the hard one"
    );

    let flooding = Impostor::start(&["flood", &port.to_string(), "1500", "4"]);
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        most = most.max(flood::descriptors(pid));
        let (status, _) = flood::metadata_index(port);
        assert!(
            status.contains(" 200"),
            "this user's request failed under the flood: {status:?}; the daemon said: {}",
            daemon
                .log()
                .lines()
                .filter(|l| l.contains("refused"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(world.credd(&["refresh", "gateway"]).code, 0);
    let reopened = flooding.finish();
    assert!(
        most < 512,
        "the daemon held {most} descriptors under the flood"
    );
    assert!(
        reopened
            .trim()
            .trim_start_matches("reopened ")
            .parse::<u64>()
            .unwrap()
            >= 1500,
        "the other user's connections were not closed: {reopened}"
    );
    assert!(
        daemon.log().contains("the client runs as uid 65534"),
        "{}",
        daemon.log()
    );
}

#[test]
fn an_endpoint_caps_connections_header_time_and_header_size() {
    let (world, port) = metadata_world();
    let _daemon = world.start_daemon();
    peers::wait_for_port(port, Duration::from_secs(10), "the metadata endpoint");
    // Silent connections of this user's own: the cap's worth stay open, the rest are closed.
    let held: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let closed = || {
        held.iter()
            .filter(|stream| {
                stream.set_nonblocking(true).unwrap();
                let gone = matches!((&**stream).read(&mut [0u8; 1]), Ok(0));
                stream.set_nonblocking(false).unwrap();
                gone
            })
            .count()
    };
    // Those over the cap are closed at once; the rest wait out their 3 s header timeout, so
    // counting as soon as the first are closed sees whether more were.
    world.eventually(
        Duration::from_secs(2),
        "the connections over the cap closed",
        || closed() >= 80 - credd_daemon::endpoints::MAX_CONNECTIONS,
    );
    let closed = closed();
    assert!(
        (80 - credd_daemon::endpoints::MAX_CONNECTIONS
            ..=80 - credd_daemon::endpoints::MAX_CONNECTIONS + 8)
            .contains(&closed),
        "{closed} of 80 connections were closed at once"
    );
    // Silent ones are closed once their headers are late.
    let started = Instant::now();
    for stream in &held {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = (&*stream).read(&mut [0u8; 1]);
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    drop(held);
    let (status, _) = flood::metadata_index(port);
    assert!(status.contains(" 200"), "{status}");

    // Headers larger than the buffer are refused, not buffered.
    let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let filler = "a".repeat(40 * 1024);
    let _ = write!(
        big,
        "GET /computeMetadata/v1/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nMetadata-Flavor: Google\r\nX-Filler: {filler}\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{}",
        answer.lines().next().unwrap_or("")
    );
}

#[test]
fn a_relative_socket_path_is_refused_and_nothing_is_left_in_the_callers_directory() {
    let world = gateway_world("tok-relative");
    let cwd = world.path("caller-cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = world
        .credd_command(&["get", "gateway"])
        .env("CREDD_SOCKET", "credd.sock")
        .current_dir(&cwd)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("CREDD_SOCKET must be an absolute path"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "files left in the caller's directory"
    );
}
