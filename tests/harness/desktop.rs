//! A desktop for the tests of credd's desktop prompts, notifications and secret store: a real X
//! server (Xvfb) on a display of its own, a person at it (xdotool) who types into the window
//! that asks, and on demand a session D-Bus with a notification server (dunst) and a Secret
//! Service (gnome-keyring). Installed by `tests/run.sh` from Debian's packages, with zenity, the
//! prompt credd shows.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Desktop {
    display: String,
    server: Child,
    /// The session bus and what serves on it, when started.
    session: Option<Session>,
}

struct Session {
    address: String,
    bus_pid: u32,
    services: Vec<Child>,
}

impl Desktop {
    pub fn start() -> Self {
        require(&["Xvfb", "xdotool", "zenity"]);
        // Xvfb picks a display no other server has and says which on stdout.
        let mut server = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(server.stdout.take().unwrap()),
            &mut line,
        )
        .expect("read Xvfb's display");
        let number: u32 = line.trim().parse().expect("Xvfb printed its display");
        let display = format!(":{number}");
        let socket = format!("/tmp/.X11-unix/X{number}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() {
            assert!(Instant::now() < deadline, "Xvfb did not start on {display}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Desktop {
            display,
            server,
            session: None,
        }
    }

    /// The value of `DISPLAY` for programs on this desktop.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Waits (up to `timeout`) for a window titled `title` and types `text` and Enter into it,
    /// as a person would; `false` when no such window appeared.
    pub fn type_into(&self, title: &str, text: &str, timeout: Duration) -> bool {
        let xdotool = |args: &[&str]| {
            Command::new("xdotool")
                .args(args)
                .env("DISPLAY", &self.display)
                .output()
                .expect("run xdotool")
        };
        let deadline = Instant::now() + timeout;
        let window = loop {
            let found = xdotool(&["search", "--name", &format!("^{title}$")]);
            if let Some(id) = String::from_utf8_lossy(&found.stdout).lines().next() {
                break id.trim().to_string();
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // The window is mapped before it takes keys; focus it, then type.
        std::thread::sleep(Duration::from_millis(300));
        xdotool(&["windowfocus", "--sync", &window]);
        xdotool(&["type", "--delay", "20", text]);
        xdotool(&["key", "Return"]);
        true
    }

    /// Whether a window titled `title` is on the desktop.
    pub fn has_window(&self, title: &str) -> bool {
        let found = Command::new("xdotool")
            .args(["search", "--name", &format!("^{title}$")])
            .env("DISPLAY", &self.display)
            .output()
            .expect("run xdotool");
        !found.stdout.is_empty()
    }
}

impl Desktop {
    /// Starts a session D-Bus on this desktop with a notification server (dunst) on it.
    pub fn with_session_bus(mut self) -> Self {
        require(&["dbus-daemon", "dunst", "dunstctl"]);
        let out = Command::new("dbus-daemon")
            .args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
            .output()
            .expect("start a session bus");
        let printed = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = printed.lines();
        let address = lines.next().expect("the bus's address").trim().to_string();
        let bus_pid = lines
            .next()
            .and_then(|p| p.trim().parse().ok())
            .expect("the bus's pid");
        let dunst = Command::new("dunst")
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dunst");
        self.session = Some(Session {
            address,
            bus_pid,
            services: vec![dunst],
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.dunstctl(&["is-paused"]).status.success() {
            assert!(Instant::now() < deadline, "dunst did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        self
    }

    /// `DBUS_SESSION_BUS_ADDRESS` for programs in this session.
    pub fn bus_address(&self) -> &str {
        &self
            .session
            .as_ref()
            .expect("with_session_bus first")
            .address
    }

    fn dunstctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("dunstctl")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", self.bus_address())
            .output()
            .expect("run dunstctl")
    }

    /// The notifications shown so far, as (application, summary, body), oldest first: the
    /// ones on screen are closed into the history, which is then read.
    pub fn notifications(&self) -> Vec<(String, String, String)> {
        self.dunstctl(&["close-all"]);
        let history = self.dunstctl(&["history"]);
        let value: serde_json::Value =
            serde_json::from_slice(&history.stdout).unwrap_or(serde_json::Value::Null);
        let field = |n: &serde_json::Value, key: &str| {
            n[key]["data"].as_str().unwrap_or_default().to_string()
        };
        let mut shown: Vec<(String, String, String)> = value["data"][0]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|n| (field(n, "appname"), field(n, "summary"), field(n, "body")))
                    .collect()
            })
            .unwrap_or_default();
        // The history is newest first.
        shown.reverse();
        shown
    }

    /// Starts a Secret Service (gnome-keyring) on the session bus, its keyrings under
    /// `data_home`, with an unlocked login keyring.
    pub fn start_secret_service(&mut self, data_home: &Path) {
        let address = self.bus_address().to_string();
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("XDG_DATA_HOME", data_home)
            .env("HOME", data_home)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            use std::io::Write as _;
            let mut stdin = keyring.stdin.take().unwrap();
            stdin.write_all(b"credd-test-keyring").unwrap();
        }
        self.session.as_mut().unwrap().services.push(keyring);
        // Up when it owns its name on the bus.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let owner = Command::new("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &address)
                .output()
                .expect("run dbus-send");
            if String::from_utf8_lossy(&owner.stdout).contains("boolean true") {
                break;
            }
            assert!(Instant::now() < deadline, "gnome-keyring did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The secrets stored under `attributes` (as `secret-tool lookup` finds them).
    pub fn secret(&self, attributes: &[(&str, &str)]) -> Option<String> {
        let mut cmd = Command::new("secret-tool");
        cmd.arg("lookup");
        for (k, v) in attributes {
            cmd.args([k, v]);
        }
        let out = cmd
            .env("DBUS_SESSION_BUS_ADDRESS", self.bus_address())
            .output()
            .expect("run secret-tool");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }
}

/// Fails the test, saying how to get them, unless `programs` are all installed.
fn require(programs: &[&str]) {
    for program in programs {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "{program} is missing; run the README's test command (tests/run.sh), which installs it"
        );
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        if let Some(session) = &mut self.session {
            for service in &mut session.services {
                let _ = service.kill();
                let _ = service.wait();
            }
            // SAFETY: kill(2) on the bus daemon this desktop started.
            unsafe {
                libc::kill(session.bus_pid as i32, libc::SIGTERM);
            }
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
