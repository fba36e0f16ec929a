//! A second local user (uid 65534) for the security tests: the tests run as root (CI does, and
//! says so), and act as that user through `setuid` in the child. A test that needs it fails
//! when it cannot have it; `CREDD_TESTS_ONE_USER=1` is the explicit, visible way to run the
//! rest of the suite as a normal user.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const NOBODY: u32 = 65534;

/// Whether the second user is here: true as root; a failure otherwise, unless the suite was
/// told (`CREDD_TESTS_ONE_USER=1`) that it runs as one user, and then false.
pub fn available(test: &str) -> bool {
    if crate::running_as_root() {
        return true;
    }
    assert!(
        std::env::var_os("CREDD_TESTS_ONE_USER").is_some_and(|v| v == "1"),
        "{test} acts as a second local user and must run as root (as CI does); set CREDD_TESTS_ONE_USER=1 to leave it out knowingly"
    );
    eprintln!("LEFT OUT (CREDD_TESTS_ONE_USER=1): {test}");
    false
}

/// `program` as uid/gid 65534, with nothing of the test's environment but PATH.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .uid(NOBODY)
        .gid(NOBODY);
    cmd
}

/// A directory in `under` that every user may create files in (mode 1777, like /tmp), with
/// `under` itself made passable (0711) so the other user can reach it.
pub fn shared_dir(under: &Path) -> PathBuf {
    std::fs::set_permissions(under, std::fs::Permissions::from_mode(0o711)).unwrap();
    let shared = under.join("shared-tmp");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    shared
}

/// The `impostor` helper running as the other user; killed when dropped.
pub struct Impostor {
    child: Child,
}

impl Impostor {
    /// Starts `impostor ARGS...` as uid 65534 and waits until it is in place.
    pub fn start(args: &[&str]) -> Impostor {
        let mut child = command(crate::bin("impostor"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the impostor");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the impostor did not start: {args:?}");
        Impostor { child }
    }

    /// Waits for a flood to end; what it printed.
    pub fn finish(mut self) -> String {
        let mut out = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut out).unwrap();
        let _ = self.child.wait();
        out
    }

    /// Stops it now (it lets go of its socket or port).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
