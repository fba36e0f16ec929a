//! A forward on a remote, over OpenSSH: `credd ssh HOST` opens one connection (a control
//! master, so the person authenticates once), makes a private directory for this session on
//! the remote, forwards the forward's two sockets into it with OpenSSH's Unix-socket
//! forwarding (`-O forward -R remote:local`), copies the forward's AWS config beside them (it
//! holds no secret), and runs the person's shell or COMMAND with the environment that points
//! at them. When it ends, the remote directory is removed and the connection closed: a client
//! left running there then says the forward is gone.
//!
//! Nothing needs changing on the server: no `AcceptEnv` (the environment is set in the
//! command), no `StreamLocalBindUnlink` (each session's directory is new). `credd ssh-config`
//! prints the static alternative for `~/.ssh/config`, which does need both.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use credd_proto::ForwardStatus;
use credd_proto::forward::{AWS_CONFIG_FILE, PROXY_SOCKET_FILE, SOCKET_FILE};

use super::{environment, shell_quote};
use crate::{Exit, Failure};

/// Where sessions' directories go on the remote, under its home.
const REMOTE_BASE: &str = ".credd/forward";

/// `credd ssh`: the exit code of the remote command (or shell).
pub fn run(
    forward: Option<&str>,
    host: &str,
    options: &[String],
    command: &[String],
) -> Result<u8, Failure> {
    let forward = super::pick(forward)?;
    let control_dir = control_dir()?;
    let control = control_dir.path.join("ssh");
    let ssh = |extra: &[&str]| {
        let mut cmd = Command::new("ssh");
        cmd.arg("-S").arg(&control).args(options).args(extra);
        cmd
    };
    // One authentication: a master in the background that the rest goes through.
    let status = ssh(&["-M", "-f", "-N", "-o", "ControlPersist=no", "--", host])
        .stdin(Stdio::inherit())
        .status()
        .map_err(|e| cannot_run_ssh(&e))?;
    if !status.success() {
        return Err(Failure::new(
            Exit::Unreachable,
            format!("ssh could not connect to {host} ({status}); see its message above"),
        ));
    }
    let master = Master {
        control: control.clone(),
        host: host.to_string(),
        options: options.to_vec(),
    };
    let session = format!("{}-{}", forward.name, std::process::id());
    let prepare = format!(
        "umask 077 && mkdir -p \"$HOME/{REMOTE_BASE}\" && chmod 700 \"$HOME/.credd\" \"$HOME/{REMOTE_BASE}\" && d=\"$HOME/{REMOTE_BASE}/{session}\" && rm -rf \"$d\" && mkdir \"$d\" && cat > \"$d/{AWS_CONFIG_FILE}\" && printf %s \"$d\""
    );
    let aws_config =
        std::fs::read(Path::new(&forward.dir).join(AWS_CONFIG_FILE)).unwrap_or_default();
    let remote_dir = remote_output(ssh(&["--", host, &prepare]), &aws_config)?;
    if remote_dir.is_empty() || remote_dir.chars().any(|c| c.is_control() || c == '\'') {
        return Err(Failure::new(
            Exit::Unreachable,
            format!("the remote did not make a directory for the forward (it said `{remote_dir}`)"),
        ));
    }
    let forwarded = ssh(&[
        "-O",
        "forward",
        "-R",
        &format!("{remote_dir}/{SOCKET_FILE}:{}", forward.socket),
        "-R",
        &format!("{remote_dir}/{PROXY_SOCKET_FILE}:{}", forward.proxy_socket),
        "--",
        host,
    ])
    .stdout(Stdio::null())
    .status()
    .map_err(|e| cannot_run_ssh(&e))?;
    if !forwarded.success() {
        master.clean(&remote_dir);
        return Err(Failure::new(
            Exit::Unreachable,
            format!(
                "ssh could not forward the sockets to {host} ({forwarded}); the server may forbid it (`AllowStreamLocalForwarding` in its sshd_config)"
            ),
        ));
    }
    let remote_command = remote_command(&forward, &remote_dir, command);
    let tty = if terminal() { "-t" } else { "-T" };
    let status = ssh(&[tty, "--", host, &remote_command])
        .status()
        .map_err(|e| cannot_run_ssh(&e))?;
    master.clean(&remote_dir);
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}

/// The command line the remote's shell runs: the environment, then COMMAND (joined as ssh
/// joins it) or a login shell.
fn remote_command(forward: &ForwardStatus, remote_dir: &str, command: &[String]) -> String {
    let exports: Vec<String> = environment(forward, remote_dir)
        .into_iter()
        .map(|(name, value)| format!("{name}={}", shell_quote(&value)))
        .collect();
    let run = if command.is_empty() {
        "exec \"${SHELL:-/bin/sh}\" -l".to_string()
    } else {
        command.join(" ")
    };
    format!("export {}; {run}", exports.join(" "))
}

/// The control master; [`Master::clean`] removes the session's directory and closes it.
struct Master {
    control: PathBuf,
    host: String,
    options: Vec<String>,
}

impl Master {
    fn clean(&self, remote_dir: &str) {
        let ssh = |extra: &[&str]| {
            let mut cmd = Command::new("ssh");
            cmd.arg("-S")
                .arg(&self.control)
                .args(&self.options)
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            cmd
        };
        let _ = ssh(&["--", &self.host, &format!("rm -rf '{remote_dir}'")]).status();
        let _ = ssh(&["-O", "exit", "--", &self.host]).status();
    }
}

/// A private directory for the control socket, removed when dropped.
struct ControlDir {
    path: PathBuf,
}

impl Drop for ControlDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn control_dir() -> Result<ControlDir, Failure> {
    let socket = credd_proto::paths::socket_path();
    let base = credd_proto::paths::socket_dir(&socket)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| std::env::temp_dir());
    let path = base.join(format!("ssh-{}", std::process::id()));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&path).map_err(|e| {
        Failure::new(
            Exit::Unreachable,
            format!("cannot make {}: {e}", path.display()),
        )
    })?;
    Ok(ControlDir { path })
}

/// What `cmd` prints (trimmed), with `input` on its stdin.
fn remote_output(mut cmd: Command, input: &[u8]) -> Result<String, Failure> {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| cannot_run_ssh(&e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().map_err(|e| cannot_run_ssh(&e))?;
    if !out.status.success() {
        return Err(Failure::new(
            Exit::Unreachable,
            format!(
                "preparing the remote failed ({}); see ssh's message above",
                out.status
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn cannot_run_ssh(e: &std::io::Error) -> Failure {
    Failure::new(
        Exit::Unreachable,
        format!("cannot run ssh ({e}); install OpenSSH's client"),
    )
}

fn terminal() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// `credd ssh-config HOST`: the lines for `~/.ssh/config` that forward the sockets on every
/// connection to HOST, and what the server needs for them.
pub fn config(
    forward: Option<&str>,
    host: &str,
    remote_home: Option<&str>,
) -> Result<String, Failure> {
    let forward = super::pick(forward)?;
    let home = match remote_home {
        Some(home) => home.trim_end_matches('/').to_string(),
        None => default_remote_home(host),
    };
    let dir = format!("{home}/{REMOTE_BASE}/{}", forward.name);
    let env: Vec<String> = environment(&forward, &dir)
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    Ok(format!(
        "# credd: the forward `{name}` on every connection to {host}. The server needs, in its\n\
         # sshd_config: `StreamLocalBindUnlink yes` (a socket left by an earlier connection is\n\
         # replaced) and `AcceptEnv CREDD_SOCKET CREDD_FORWARD ANTHROPIC_UNIX_SOCKET AWS_CONFIG_FILE`\n\
         # (without it, put those four in the remote's ~/.profile). Make the directory once:\n\
         #   ssh {host} 'mkdir -p -m 700 {dir}'\n\
         # `credd ssh {host}` needs none of this.\n\
         Host {host}\n    \
             RemoteForward {dir}/{SOCKET_FILE} {socket}\n    \
             RemoteForward {dir}/{PROXY_SOCKET_FILE} {proxy}\n    \
             SetEnv {env}\n",
        name = forward.name,
        socket = forward.socket,
        proxy = forward.proxy_socket,
        env = env.join(" "),
    ))
}

/// The remote user's home, as `ssh -G` names the user: `/root` or `/home/USER`.
fn default_remote_home(host: &str) -> String {
    let user = Command::new("ssh")
        .args(["-G", "--", host])
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("user ").map(str::to_string))
        })
        .unwrap_or_else(|| std::env::var("USER").unwrap_or_default());
    if user == "root" {
        "/root".into()
    } else {
        format!("/home/{user}")
    }
}
