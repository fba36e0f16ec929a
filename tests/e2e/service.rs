//! Running credd-daemon as a user service: the unit files systemd accepts, socket activation on
//! a socket the daemon did not create, and the launchd plist.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use credd_tests::World;

use crate::exec_config;

/// A `systemctl` that records its arguments and fails as it does without a user manager, so
/// the test never touches the machine's real services.
fn fake_systemctl(world: &World) -> String {
    let bin = world.path("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = world.path("systemctl.log");
    std::fs::write(
        bin.join("systemctl"),
        format!("#!/bin/sh\necho \"$@\" >> '{}'\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

#[test]
fn service_install_writes_units_systemd_accepts_and_uninstall_removes_them() {
    let world = World::new();
    let path = fake_systemctl(&world);
    let mut install = world.credd_command(&["service", "install"]);
    let out = install.env("PATH", &path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "systemctl --user daemon-reload && systemctl --user enable --now credd.socket"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("undo with: credd service uninstall"),
        "{stdout}"
    );
    let calls = std::fs::read_to_string(world.path("systemctl.log")).unwrap();
    assert!(calls.contains("--user daemon-reload"), "{calls}");

    let units = world.home.join(".config/systemd/user");
    let service = std::fs::read_to_string(units.join("credd.service")).unwrap();
    let daemon = credd_tests::bin("credd-daemon").canonicalize().unwrap();
    assert!(
        service.contains(&format!("ExecStart={}\n", daemon.display())),
        "{service}"
    );

    let runtime = world.path("xdg-runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    credd_tests::peers::run_ok(
        Command::new("systemd-analyze")
            .args(["verify", "--user"])
            .arg(units.join("credd.socket"))
            .arg(units.join("credd.service"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("HOME", &world.home),
        "systemd-analyze verify (Debian's systemd package)",
    );

    let status = world
        .credd_command(&["service", "status"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("installed:"));
    let out = world
        .credd_command(&["service", "uninstall"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!units.join("credd.socket").exists() && !units.join("credd.service").exists());
}

#[test]
fn the_daemon_serves_a_socket_systemd_activated() {
    let world = World::new();
    let cmd = world.counting_command("gw", "tok-activated");
    world.write_config(&exec_config("gateway", &cmd, ""));
    let run = world.socket.parent().unwrap();
    std::fs::create_dir_all(run).unwrap();
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = world.path("activate.log");
    let mut activator = Command::new("systemd-socket-activate");
    activator
        .arg("-l")
        .arg(&world.socket)
        .arg("-E")
        .arg(format!("CREDD_CONFIG={}", world.config.display()))
        .arg("-E")
        .arg(format!("CREDD_SOCKET={}", world.socket.display()))
        .arg(credd_tests::bin("credd-daemon"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut activator = activator.spawn().expect(
        "systemd-socket-activate (Debian's systemd package) is installed by the test command",
    );
    world.eventually(Duration::from_secs(10), "the activator's socket", || {
        world.socket.exists()
    });

    let out = world
        .credd_command(&["get", "gateway"])
        .env("CREDD_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tok-activated\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("serving the socket systemd handed over"),
        "{logged}"
    );

    world.credd(&["stop"]).ok();
    // The activator execs the daemon: its exit is the daemon's.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while activator.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        world.socket.exists(),
        "the daemon removed a socket that belongs to systemd"
    );
    let _ = activator.kill();
    let _ = activator.wait();
}

#[test]
fn the_launchd_plist_is_valid() {
    let path = credd_tests::workspace_root().join("packaging/launchd/dev.credd.daemon.plist");
    let value = plist::Value::from_file(&path).expect("the plist parses");
    let dict = value.as_dictionary().unwrap();
    assert_eq!(dict["Label"].as_string(), Some("dev.credd.daemon"));
    let args = dict["ProgramArguments"].as_array().unwrap();
    assert!(args[0].as_string().unwrap().ends_with("/credd-daemon"));
    assert_eq!(dict["RunAtLoad"].as_boolean(), Some(true));
}

#[test]
fn the_first_model_request_on_the_proxy_socket_starts_the_daemon_systemd_activated() {
    let api = credd_tests::model_api::ModelApi::start();
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-activated");
    world.write_config(&exec_config(
        "gateway",
        &cmd,
        &format!("proxy = {{ upstream = \"{}\" }}", api.url()),
    ));
    let run = world.socket.parent().unwrap();
    std::fs::create_dir_all(run).unwrap();
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let proxy_socket = credd_proto::paths::proxy_socket(&world.socket);
    let log = world.path("activate.log");
    // As credd.socket lists them: the main socket, then the proxy's.
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&world.socket)
        .arg("-l")
        .arg(&proxy_socket)
        .arg("-E")
        .arg(format!("CREDD_CONFIG={}", world.config.display()))
        .arg("-E")
        .arg(format!("CREDD_SOCKET={}", world.socket.display()))
        .arg(credd_tests::bin("credd-daemon"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect(
            "systemd-socket-activate (Debian's systemd package) is installed by the test command",
        );
    world.eventually(Duration::from_secs(10), "the activator's sockets", || {
        proxy_socket.exists()
    });
    // No daemon runs yet: the request itself starts it, and is answered.
    let (status, _) = crate::proxy::exchange_on_socket(
        &proxy_socket,
        "POST /v1/messages HTTP/1.1\r\nHost: gateway.credd.localhost:0\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert_eq!(status, 200, "{}", std::fs::read_to_string(&log).unwrap());
    assert_eq!(api.messages()[0].header("x-api-key"), Some("sk-activated"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("activated=true"), "{logged}");
    world.credd(&["stop"]).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while activator.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        proxy_socket.exists(),
        "the daemon removed a proxy socket that belongs to systemd"
    );
}

#[test]
fn a_proxy_port_systemd_holds_is_served_and_outlives_a_reload() {
    let api = credd_tests::model_api::ModelApi::start();
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-held-port");
    let port = credd_tests::peers::free_port();
    let config = |ttl: &str| {
        exec_config(
            "gateway",
            &cmd,
            &format!(
                "ttl = \"{ttl}\"\nproxy = {{ port = {port}, upstream = \"{}\" }}",
                api.url()
            ),
        )
    };
    world.write_config(&config("1h"));
    let run = world.socket.parent().unwrap();
    std::fs::create_dir_all(run).unwrap();
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let proxy_socket = credd_proto::paths::proxy_socket(&world.socket);
    let log = world.path("activate.log");
    // As `credd service install` writes the unit for this config: credd's sockets and the
    // proxy's port, all held from login on.
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&world.socket)
        .arg("-l")
        .arg(&proxy_socket)
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-E")
        .arg(format!("CREDD_CONFIG={}", world.config.display()))
        .arg("-E")
        .arg(format!("CREDD_SOCKET={}", world.socket.display()))
        .arg("-E")
        .arg(format!("HOME={}", world.home.display()))
        .arg(credd_tests::bin("credd-daemon"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect(
            "systemd-socket-activate (Debian's systemd package) is installed by the test command",
        );
    world.eventually(Duration::from_secs(10), "the activator's sockets", || {
        proxy_socket.exists()
    });
    // Held before any daemon runs: nobody else can take it.
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_err(),
        "the port was free before the daemon ran"
    );
    let post = || {
        let (url, secret) = crate::proxy::proxy_of(&world, "gateway");
        let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        std::io::Write::write_all(
            &mut stream,
            format!(
                "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Credd-Proxy-Secret: {secret}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
        answer
    };
    let answer = post();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A config edit rebuilds the proxy: it serves the same port, which systemd still holds.
    world.write_config(&config("2h"));
    world.eventually(Duration::from_secs(10), "the edit is read", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("source changed"))
    });
    world.eventually(Duration::from_secs(10), "the rebuilt proxy serves", || {
        post().starts_with("HTTP/1.1 200")
    });
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("serving the port systemd handed over"),
        "{logged}"
    );
    world.credd(&["stop"]).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while activator.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
