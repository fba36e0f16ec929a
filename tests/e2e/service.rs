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

/// `systemd-socket-activate` holding `listens` for a credd-daemon of `world`, as the user's
/// systemd does with `credd.socket`: the daemon starts on the first connection to any of them.
struct Activator {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Activator {
    fn start(world: &World, listens: &[String]) -> Activator {
        let run = world.socket.parent().unwrap();
        std::fs::create_dir_all(run).unwrap();
        std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o700)).unwrap();
        let log = world.path("activate.log");
        let mut command = Command::new("systemd-socket-activate");
        for listen in listens {
            command.arg("-l").arg(listen);
        }
        for (name, value) in [
            ("CREDD_CONFIG", &world.config),
            ("CREDD_SOCKET", &world.socket),
            ("HOME", &world.home),
        ] {
            command.arg("-E").arg(format!("{name}={}", value.display()));
        }
        let child = command
            .arg(credd_tests::bin("credd-daemon"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect(
                "systemd-socket-activate (Debian's systemd package) is installed by the test command",
            );
        let activator = Activator { child, log };
        // It says "Listening on …" once each socket is open.
        world.eventually(Duration::from_secs(10), "the activator's sockets", || {
            activator.log().matches("Listening on").count() == listens.len()
        });
        activator
    }

    /// What the daemon logged.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `credd stop`, and the daemon gone (the activator execs it: its exit is the daemon's).
    fn stop(mut self, world: &World) {
        world.credd(&["stop"]).ok();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon did not stop"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Activator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path_of(path: &std::path::Path) -> String {
    path.display().to_string()
}

#[test]
fn the_daemon_serves_a_socket_systemd_activated() {
    let world = World::new();
    let cmd = world.counting_command("gw", "tok-activated");
    world.write_config(&exec_config("gateway", &cmd, ""));
    let activator = Activator::start(&world, &[path_of(&world.socket)]);

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
    let logged = activator.log();
    assert!(
        logged.contains("serving the socket systemd handed over"),
        "{logged}"
    );
    activator.stop(&world);
    assert!(
        world.socket.exists(),
        "the daemon removed a socket that belongs to systemd"
    );
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
    let proxy_socket = credd_proto::paths::proxy_socket(&world.socket);
    // As credd.socket lists them: the main socket, then the proxy's.
    let activator = Activator::start(&world, &[path_of(&world.socket), path_of(&proxy_socket)]);
    // No daemon runs yet: the request itself starts it, and is answered.
    let (status, answer) = crate::proxy::post_on_socket(
        &proxy_socket,
        "gateway.credd.localhost:0",
        "/v1/messages",
        "",
    );
    assert_eq!(status, 200, "{answer}\n{}", activator.log());
    assert_eq!(api.messages()[0].header("x-api-key"), Some("sk-activated"));
    let logged = activator.log();
    assert!(logged.contains("activated=true"), "{logged}");
    activator.stop(&world);
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
    // As `credd service install` writes the unit for this config: credd's sockets and the
    // proxy's port, all held from login on.
    let proxy_socket = credd_proto::paths::proxy_socket(&world.socket);
    let activator = Activator::start(
        &world,
        &[
            path_of(&world.socket),
            path_of(&proxy_socket),
            format!("127.0.0.1:{port}"),
        ],
    );
    // Held before any daemon runs: nobody else can take it.
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_err(),
        "the port was free before the daemon ran"
    );
    let post = || {
        let (url, secret) = crate::proxy::proxy_of(&world, "gateway");
        crate::proxy::raw_request(&url, &crate::proxy::post(&url, &secret, "/v1/messages")).0
    };
    assert_eq!(post(), 200);
    // A config edit rebuilds the proxy: it serves the same port, which systemd still holds.
    world.write_config(&config("2h"));
    world.eventually(Duration::from_secs(10), "the edit is read", || {
        activator.log().contains("source changed")
    });
    world.eventually(Duration::from_secs(10), "the rebuilt proxy serves", || {
        post() == 200
    });
    let logged = activator.log();
    assert!(
        logged.contains("serving the port systemd handed over"),
        "{logged}"
    );
    activator.stop(&world);
}
