//! A real OpenSSH server (Debian's `openssh-server`) on 127.0.0.1 at a free port, with key
//! authentication only, letting in one account: the second local account `credd-remote`
//! that `tests/run.sh` creates, standing for the remote user. What `credd ssh` is tested
//! against.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The remote user's account.
pub const REMOTE_USER: &str = "credd-remote";

pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Sshd {
    /// Starts sshd with its keys and config in `dir`.
    pub fn start(dir: &Path) -> Sshd {
        assert!(
            crate::running_as_root(),
            "the SSH tests start sshd and log in as `{REMOTE_USER}`, so they run as root (as CI does)"
        );
        assert!(
            Command::new("id")
                .arg(REMOTE_USER)
                .output()
                .is_ok_and(|o| o.status.success()),
            "the account `{REMOTE_USER}` is missing; the README's test command (tests/run.sh) creates it"
        );
        let dir = dir.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        for key in ["host_key", "client_key"] {
            crate::peers::run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(dir.join(key)),
                "ssh-keygen",
            );
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // sshd's privilege separation needs its empty directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = crate::peers::free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nAllowUsers {REMOTE_USER}\n\
                 AllowStreamLocalForwarding yes\nPermitTTY yes\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("start sshd (openssh-server; the README's test command installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd { child, port, dir }
    }

    /// What `credd ssh` and `ssh` are given to reach it: the destination and the options.
    pub fn destination(&self) -> String {
        format!("{REMOTE_USER}@127.0.0.1")
    }

    pub fn options(&self) -> Vec<String> {
        [
            "-F",
            "/dev/null",
            "-p",
            &self.port.to_string(),
            "-i",
            &self.dir.join("client_key").display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Runs `script` on the remote in a plain ssh session (no forward); (exit code, stdout,
    /// stderr).
    pub fn run(&self, script: &str) -> (i32, String, String) {
        let out = Command::new("ssh")
            .args(self.options())
            .arg(self.destination())
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The remote user's home directory.
pub fn remote_home() -> PathBuf {
    PathBuf::from(format!("/home/{REMOTE_USER}"))
}

/// A directory of the remote user's own named `name` under its home (a test's HOME there),
/// holding the `credd` under test in `bin/`.
pub fn remote_workdir(name: &str) -> PathBuf {
    let dir = remote_home().join(name);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(crate::bin("credd"), dir.join("bin/credd")).unwrap();
    crate::peers::run_ok(
        Command::new("chown")
            .args(["-R", &format!("{REMOTE_USER}:")])
            .arg(&dir),
        "chown",
    );
    dir
}
