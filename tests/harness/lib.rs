//! The end-to-end test harness: the real `credd` and `credd-daemon` binaries in an isolated
//! world (their own HOME, socket, config and temp dir), plus the peers they are tested against.
//!
//! Nothing here touches the real user's files: every path lives under a fresh temp dir.

pub mod container;
pub mod desktop;
pub mod entra;
pub mod fault_proxy;
pub mod flood;
pub mod google;
pub mod http;
pub mod model_api;
pub mod oidc;
pub mod other_daemon;
pub mod other_user;
pub mod peers;
pub mod signin;
pub mod sigv4;
pub mod sshd;
pub mod sso_stub;
pub mod sts_check;
pub mod world;

use std::path::{Path, PathBuf};

pub use world::{Daemon, Output, World};

/// The directory holding the built `credd` and `credd-daemon` (`CREDD_BIN_DIR`, else the target
/// directory this test binary was built into).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CREDD_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// A built binary; `CREDD_CLIENT_BIN` points at another build of `credd` (the benchmark uses
/// the `client` profile, as installed).
pub fn bin(name: &str) -> PathBuf {
    let path = match std::env::var_os("CREDD_CLIENT_BIN") {
        Some(client) if name == "credd" => PathBuf::from(client),
        _ => bin_dir().join(name),
    };
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build --workspace --bins` first (or the README's test command)",
        path.display()
    );
    // Not while unwinding (a world's Drop stops its daemon): a second panic would abort
    // every test in the binary.
    if std::env::var_os("CREDD_BIN_DIR").is_none() && !std::thread::panicking() {
        assert_fresh(name, &path);
    }
    path
}

/// Fails when `binary` (built in this workspace) is older than a source it is built from: the
/// tests would otherwise run yesterday's daemon against today's expectations and pass or fail
/// for the wrong reason. (Cargo.lock is left out: adding a dependency to the tests rewrites it
/// without changing these binaries.) `CREDD_BIN_DIR` (another build, on purpose) skips the check.
fn assert_fresh(name: &str, binary: &Path) {
    static CHECKED: [std::sync::OnceLock<()>; 2] = [const { std::sync::OnceLock::new() }; 2];
    let (crate_dir, checked) = match name {
        "credd" => ("helper-cli", &CHECKED[0]),
        "credd-daemon" => ("daemon", &CHECKED[1]),
        // This package's own binaries: cargo builds them for its tests.
        _ => return,
    };
    checked.get_or_init(|| check_fresh(crate_dir, binary));
}

fn check_fresh(crate_dir: &str, binary: &Path) {
    let built = std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .expect("binary mtime");
    let root = workspace_root();
    let mut inputs = vec![
        root.join(crate_dir).join("src"),
        root.join(crate_dir).join("Cargo.toml"),
        root.join("proto/src"),
        root.join("proto/Cargo.toml"),
    ];
    if crate_dir == "daemon" {
        inputs.extend([root.join("sources/src"), root.join("sources/Cargo.toml")]);
    }
    let mut newer = Vec::new();
    for input in &inputs {
        collect_newer(input, built, &mut newer);
    }
    assert!(
        newer.is_empty(),
        "{} is older than its sources ({}); run `cargo build --workspace --bins` (or the README's test command) so the tests run the code you changed",
        binary.display(),
        newer
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn collect_newer(path: &Path, than: std::time::SystemTime, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            collect_newer(&entry.path(), than, out);
        }
    } else if meta.modified().is_ok_and(|m| m > than) {
        out.push(path.to_path_buf());
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The wall clock in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Where the test command installs npm peers (`CREDD_PEERS_DIR`, else `target/peers`).
pub fn peers_dir() -> PathBuf {
    std::env::var_os("CREDD_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/peers"))
}

/// The Claude Code binary installed from npm by the test command (`CREDD_CLAUDE_BIN` overrides).
pub fn claude_bin() -> PathBuf {
    let path = std::env::var_os("CREDD_CLAUDE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/peers/node_modules/.bin/claude"));
    assert!(
        path.exists(),
        "Claude Code is not installed at {}; run the README's test command (tests/run.sh), which installs @anthropic-ai/claude-code from npm",
        path.display()
    );
    path
}

/// Runs `claude -p "say hi"` in `world`, from `cwd`, with the environment Claude Code needs to
/// run offline plus `env`; returns its stdout and fails the test if it fails.
pub fn claude_say_hi(world: &World, cwd: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(claude_bin());
    cmd.args(["-p", "say hi"]);
    run_claude(world, cmd, cwd, env)
}

/// Runs `claude -p PROMPT ARGS...` (offline) in `world` with `env` added; returns stdout.
pub fn claude_print(
    world: &World,
    cwd: &std::path::Path,
    prompt: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> String {
    let mut cmd = std::process::Command::new(claude_bin());
    cmd.args(["-p", prompt]).args(args);
    run_claude(world, cmd, cwd, env)
}

/// The same, started as a person's shell starts it: `~/.bashrc` read first (where `credd
/// setup --shell-profile bash` puts `credd env`'s line), nothing else added to the environment.
pub fn claude_say_hi_from_a_shell(world: &World, cwd: &std::path::Path) -> String {
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-c", r#". "$HOME/.bashrc" && exec "$0" -p "say hi""#])
        .arg(claude_bin());
    run_claude(world, cmd, cwd, &[])
}

/// Runs `cmd` (Claude Code, or a shell that starts it) offline in `world`; its stdout.
fn run_claude(
    world: &World,
    mut cmd: std::process::Command,
    cwd: &std::path::Path,
    env: &[(&str, &str)],
) -> String {
    world.isolate(&mut cmd);
    let out = cmd
        .current_dir(cwd)
        .env("TERM", "dumb")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run claude");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "claude failed ({}): stdout {stdout} stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether process `pid` has ended (it is gone, or a zombie waiting to be reaped).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `pid (comm) S ...`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Whether the tests run as root (as CI does), so they can act as a second local user.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
