//! A desktop for the tests of credd's desktop prompts: a real X server (Xvfb) on a display of
//! its own, and a person at it (xdotool) who types into the window that asks. Installed by
//! `tests/run.sh` from Debian's packages, with zenity, the prompt credd shows.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Desktop {
    display: String,
    server: Child,
}

impl Desktop {
    pub fn start() -> Self {
        for program in ["Xvfb", "xdotool", "zenity"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {program}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                "{program} is missing; run the README's test command (tests/run.sh), which installs it"
            );
        }
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
        Desktop { display, server }
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

impl Drop for Desktop {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
