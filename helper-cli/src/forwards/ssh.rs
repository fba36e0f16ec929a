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
use std::process::{Child, Command, Stdio};

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
    let (forward, proxied) = super::pick(forward)?;
    for socket in [&forward.socket, &forward.proxy_socket] {
        ours(Path::new(socket))?;
    }
    let control_dir = control_dir()?;
    let control = control_dir.path.join("ssh");
    let ssh = |extra: &[&str]| {
        let mut cmd = Command::new("ssh");
        cmd.arg("-S").arg(&control).args(options).args(extra);
        cmd
    };
    // One authentication: a master the rest goes through, which ends with this process.
    let mut master = Master::start(
        ssh(&["-M", "-n", "-N", "-o", "ControlPersist=no", "--", host]),
        &control,
        host,
        options,
    )?;
    let session = format!("{}-{}", forward.name, std::process::id());
    let prepare = format!(
        "umask 077 && mkdir -p \"$HOME/{REMOTE_BASE}\" && chmod 700 \"$HOME/.credd\" \"$HOME/{REMOTE_BASE}\" && d=\"$HOME/{REMOTE_BASE}/{session}\" && rm -rf \"$d\" && mkdir \"$d\" && cat > \"$d/{AWS_CONFIG_FILE}\" && printf %s \"$d\""
    );
    let aws_config = forward.aws_config.clone().unwrap_or_default();
    let remote_dir = remote_output(ssh(&["--", host, &prepare]), aws_config.as_bytes())?;
    let expected_end = format!("/{REMOTE_BASE}/{session}");
    if !remote_dir.starts_with('/')
        || !remote_dir.ends_with(&expected_end)
        || remote_dir.chars().any(|c| c.is_control() || c == '\'')
    {
        return Err(Failure::new(
            Exit::Unreachable,
            format!("the remote did not make a directory for the forward (it said `{remote_dir}`)"),
        ));
    }
    master.remote_dir = Some(remote_dir.clone());
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
        return Err(Failure::new(
            Exit::Unreachable,
            format!(
                "ssh could not forward the sockets to {host} ({forwarded}); the server may forbid it (`AllowStreamLocalForwarding` in its sshd_config)"
            ),
        ));
    }
    let remote_command = remote_command(&forward, proxied, &remote_dir, command);
    let tty = if terminal() { "-t" } else { "-T" };
    let status = ssh(&[tty, "--", host, &remote_command])
        .status()
        .map_err(|e| cannot_run_ssh(&e))?;
    drop(master);
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}

/// Checks that `socket`, which ssh is to carry, is a socket of this user's (the daemon's),
/// not a link or a file someone put there.
fn ours(socket: &Path) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::symlink_metadata(socket).map_err(|e| {
            Failure::new(
                Exit::Unreachable,
                format!("cannot look at {}: {e}", socket.display()),
            )
        })?;
        if !meta.file_type().is_socket() || meta.uid() != credd_proto::paths::effective_uid() {
            return Err(Failure::new(
                Exit::Unreachable,
                format!(
                    "{} is not credd-daemon's socket; not forwarding it",
                    socket.display()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = socket;
    Ok(())
}

/// The command line the remote's shell runs: the environment, then COMMAND (joined as ssh
/// joins it) or a login shell.
fn remote_command(
    forward: &ForwardStatus,
    proxied: bool,
    remote_dir: &str,
    command: &[String],
) -> String {
    let exports: Vec<String> = environment(forward, proxied, remote_dir)
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

/// The control master, a child of this process: when it is dropped (the session over, or an
/// error on the way), the session's directory on the remote is removed and the connection
/// closed; and it dies with this process whatever ends it (`PR_SET_PDEATHSIG` on Linux), so a
/// forward never outlives its `credd ssh`.
struct Master {
    child: Child,
    control: PathBuf,
    host: String,
    options: Vec<String>,
    remote_dir: Option<String>,
}

impl Master {
    /// Starts `cmd` (`ssh -M ...`) and waits until the connection is up (the person may be
    /// typing a password meanwhile).
    fn start(
        mut cmd: Command,
        control: &Path,
        host: &str,
        options: &[String],
    ) -> Result<Master, Failure> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent's.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().map_err(|e| cannot_run_ssh(&e))?;
        let mut master = Master {
            child,
            control: control.to_path_buf(),
            host: host.to_string(),
            options: options.to_vec(),
            remote_dir: None,
        };
        loop {
            if let Ok(Some(status)) = master.child.try_wait() {
                return Err(Failure::new(
                    Exit::Unreachable,
                    format!("ssh could not connect to {host} ({status}); see its message above"),
                ));
            }
            if master.quiet(&["-O", "check"]).is_ok_and(|s| s.success()) {
                return Ok(master);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `ssh -S CONTROL OPTIONS EXTRA -- HOST [COMMAND]`, quietly.
    fn quiet(&self, extra: &[&str]) -> std::io::Result<std::process::ExitStatus> {
        self.quiet_with(extra, None)
    }

    fn quiet_with(
        &self,
        extra: &[&str],
        command: Option<&str>,
    ) -> std::io::Result<std::process::ExitStatus> {
        Command::new("ssh")
            .arg("-S")
            .arg(&self.control)
            .args(&self.options)
            .args(extra)
            .arg("--")
            .arg(&self.host)
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        if let Some(dir) = &self.remote_dir {
            let _ = self.quiet_with(&[], Some(&format!("rm -rf '{dir}'")));
        }
        let _ = self.quiet(&["-O", "exit"]);
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let (forward, proxied) = super::pick(forward)?;
    let home = match remote_home {
        Some(home) => home.trim_end_matches('/').to_string(),
        None => default_remote_home(host),
    };
    let dir = format!("{home}/{REMOTE_BASE}/{}", forward.name);
    let env: Vec<String> = environment(&forward, proxied, &dir)
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
