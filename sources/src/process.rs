//! Running a helper program with a deadline: argv (never a shell), stdin closed, stdout and
//! stderr collected up to a bound, and its whole process group killed when the deadline passes.
//! Shared by the `exec` source and executable-sourced GCP credentials.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Output beyond this is not a credential; reading stops there.
const MAX_OUTPUT: u64 = 256 * 1024;

/// What a program left behind when it exited.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("reading the output of `{program}` failed: {source}")]
    Read {
        program: String,
        source: std::io::Error,
    },
    #[error("`{program}` did not finish within {}; it was stopped", humantime::format_duration(*.timeout))]
    TimedOut { program: String, timeout: Duration },
}

/// Runs `argv` with `env` added to the daemon's environment.
pub async fn run(
    argv: &[String],
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<Finished, RunError> {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let mut command = tokio::process::Command::new(program);
    command
        .args(argv.iter().skip(1))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so a timeout kills whatever it started too.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        program: program.to_string(),
        source,
    })?;
    let pgid = child.id();
    // Whatever ends this call early (the deadline here, or a caller's own timeout dropping
    // it) takes the whole group down, not only the program itself.
    let mut group = GroupGuard(pgid);

    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let collect = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdout = (&mut stdout).take(MAX_OUTPUT);
        let mut stderr = (&mut stderr).take(MAX_OUTPUT);
        let (o, e) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        o.and(e)?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>(Finished {
            status,
            stdout: out,
            stderr: err,
        })
    };
    let outcome = tokio::time::timeout(timeout, collect).await;
    if matches!(outcome, Ok(Ok(_))) {
        group.0 = None;
    }
    match outcome {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(source)) => Err(RunError::Read {
            program: program.to_string(),
            source,
        }),
        Err(_) => {
            drop(group);
            Err(RunError::TimedOut {
                program: program.to_string(),
                timeout,
            })
        }
    }
}

/// Kills the process group it holds when dropped, unless disarmed (set to `None`).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0.take());
    }
}

#[cfg(unix)]
fn kill_group(pgid: Option<u32>) {
    if let Some(pgid) = pgid.and_then(|p| libc::pid_t::try_from(p).ok()) {
        // SAFETY: kill has no memory-safety preconditions; the group is the child's own.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

#[cfg(not(unix))]
fn kill_group(_pgid: Option<u32>) {}
