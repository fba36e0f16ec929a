//! A real container for the forward tests: Podman (Debian's package, with runc) running the
//! Debian root filesystem `tests/run.sh` builds with mmdebstrap (no image registry needed),
//! with no network, so whatever the container gets it gets through the forward's sockets.

use std::path::PathBuf;
use std::process::Command;

/// The root filesystem the test command built.
pub fn rootfs() -> PathBuf {
    let path = std::env::var_os("CREDD_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target/peers/rootfs"));
    assert!(
        path.join(".credd-rootfs-1").exists(),
        "the container tests' root filesystem is not at {}; run the README's test command (tests/run.sh), which builds it with mmdebstrap",
        path.display()
    );
    path
}

/// `podman run` with no network, removed when done; `options` go before the root
/// filesystem, `command` after it. runc rather than crun: it runs where the cgroup layout is
/// a hybrid one (as in CI's sandbox), and the limits are set within the sandbox's own.
pub fn podman_run(options: &[String], command: &[&str]) -> Command {
    run(options, rootfs().display().to_string(), command)
}

/// [`podman_run`] with what the container writes to its root filesystem kept in a throwaway
/// overlay (`--rootfs DIR:O`), for an image build step.
pub fn podman_run_over(options: &[String], command: &[&str]) -> Command {
    run(options, format!("{}:O", rootfs().display()), command)
}

fn run(options: &[String], rootfs: String, command: &[&str]) -> Command {
    let mut cmd = Command::new("podman");
    cmd.args([
        "run",
        "--runtime",
        "runc",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1000:1000",
    ])
    .args(options)
    .arg("--rootfs")
    .arg(rootfs)
    .args(command);
    cmd
}
