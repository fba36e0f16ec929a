//! `credd login SOURCE`: starts (or joins) the source's login in the daemon and plays the
//! person's part of it: show a device code and open the page, read an MFA code from the
//! terminal, or run the cloud's own login tool (gcloud, az) with its output on our stdout,
//! which is what Claude Code shows from `awsAuthRefresh` / `gcpAuthRefresh`.
//!
//! Several callers at once (Claude Code sessions whose credentials ran out together) run a login
//! tool once, the others waiting for it and sharing its outcome, and open a device login's page
//! once.
//!
//! Nothing here waits longer than Claude Code's three minutes.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credd_proto::login_lock::LoginLock;
use credd_proto::{LoginPrompt, Request, Response, Secret, login_tools, paths};

use crate::{Exit, Failure, ask, done, terminal};

use credd_proto::claude_code::LOGIN_BOUND;

pub fn run(source: String) -> Result<String, Failure> {
    login(source, Instant::now() + LOGIN_BOUND)
}

/// Whether what the person is shown goes to stderr: when stdout is a helper's answer
/// (`credd get --format helper-json`), which must hold nothing else.
static ON_STDERR: AtomicBool = AtomicBool::new(false);

/// The login for a helper whose stdout is its answer: everything the person is shown goes to
/// stderr instead.
pub fn run_beside_an_answer(source: String) -> Result<(), Failure> {
    ON_STDERR.store(true, Ordering::Relaxed);
    run(source).map(drop)
}

fn login(source: String, deadline: Instant) -> Result<String, Failure> {
    let request = Request::Login {
        source: source.clone(),
    };
    match ask(request, true)? {
        Response::LoginPrompt(LoginPrompt::MfaCode { mfa_serial }) => {
            let code = terminal::read_code(&format!("MFA code for `{source}` ({mfa_serial}): "))
                .map_err(|e| {
                    Failure::new(
                        Exit::NeedsLogin,
                        format!("`{source}` needs an MFA code, but {e}; run `credd login {source}` in a terminal, or give the source an `mfa_process` that prints the code (see docs/sources.md in credd's repository)"),
                    )
                })?;
            let code = Secret::new(code);
            done(ask(Request::LoginCode { source, code }, false)?)
        }
        Response::LoginPrompt(LoginPrompt::Device {
            verification_uri,
            user_code,
            expires_in_secs,
        }) => {
            say(&format!(
                "To sign in to `{source}`, open this page and confirm the code {user_code}:\n  {verification_uri}\nWaiting for approval (the code expires in {} minutes)...",
                expires_in_secs.div_ceil(60)
            ));
            show_page_and_wait(source, &verification_uri)
        }
        Response::LoginPrompt(LoginPrompt::Browser {
            url,
            expires_in_secs,
        }) => {
            say(&format!(
                "To sign in to `{source}`, sign in on this page in your browser:\n  {url}\nWaiting for the sign-in (for {} minutes at most)...",
                expires_in_secs.div_ceil(60)
            ));
            show_page_and_wait(source, &url)
        }
        Response::LoginPrompt(LoginPrompt::Command {
            command,
            env,
            instructions,
        }) => {
            say(&instructions);
            if !command.is_empty() {
                login_tools::known_login_tool(&command, &env)
                    .map_err(|e| Failure::new(Exit::Refused, e))?;
            }
            let lock = (!command.is_empty())
                .then(|| LoginLock::open(&paths::socket_path(), (&command, &env)))
                .flatten();
            if let Some(lock) = lock.as_ref().filter(|lock| !lock.take()) {
                say(&format!(
                    "Another `credd login` is running `{}`; waiting for it to finish...",
                    command.join(" ")
                ));
                let other_succeeded = lock.wait(deadline).ok_or_else(|| {
                    Failure::new(
                        Exit::NeedsLogin,
                        format!(
                            "the other login did not finish within {} minutes; `{source}` is not logged in",
                            LOGIN_BOUND.as_secs().div_ceil(60)
                        ),
                    )
                })?;
                if other_succeeded {
                    return done(ask(Request::LoginWait { source }, false)?);
                }
                // Its tool failed or was stopped: this caller runs it.
                return login(source, deadline);
            }
            run_login_tool(&source, &command, &env, deadline)?;
            if let Some(lock) = &lock {
                lock.succeeded();
            }
            // The lock is held until the daemon has seen the outcome.
            let answer = ask(Request::LoginWait { source }, false);
            drop(lock);
            done(answer?)
        }
        other => done(other),
    }
}

/// Opens a login's page (once however many callers show it: the first to take the page's lock
/// opens it, holds the lock until the login ends, and removes it; each login has a page of its
/// own), then waits for the daemon to see the login end.
fn show_page_and_wait(source: String, page: &str) -> Result<String, Failure> {
    let mut held = None;
    let forwarded = credd_proto::forward::Forwarded::from_env();
    if let Some(forwarded) = &forwarded {
        // The daemon opens it where the person is.
        say(&format!(
            "(credd opens it in the browser on {}.)",
            forwarded.host
        ));
    } else if !login_tools::openable_page(page) {
        say("(Not opening that page in the browser: credd opens only https: pages.)");
    } else if std::env::var_os("CREDD_NO_BROWSER").is_none() {
        // Without a lock file, every caller opens it.
        let lock = LoginLock::open(&paths::socket_path(), page);
        if lock.as_ref().is_none_or(LoginLock::take) {
            let _ = login_tools::open_page(page);
            held = lock;
        }
    }
    let answer = ask(Request::LoginWait { source }, false);
    if let Some(lock) = held {
        lock.remove();
    }
    done(answer?)
}

/// Runs the cloud's login tool with its output on our stdout, stopping it at `deadline`.
fn run_login_tool(
    source: &str,
    command: &[String],
    env: &[String],
    deadline: Instant,
) -> Result<(), Failure> {
    let needs_login = |message: String| Failure::new(Exit::NeedsLogin, message);
    let Some(program) = command.first() else {
        return Err(needs_login(format!(
            "`{source}` needs new credentials; see above"
        )));
    };
    say(&format!("Running `{}`...", command.join(" ")));
    let mut child = Command::new(program)
        .args(&command[1..])
        .envs(env.iter().filter_map(|line| line.split_once('=')))
        .stdin(Stdio::null())
        .stdout(shown_as_stdio())
        .stderr(shown_as_stdio())
        .spawn()
        .map_err(|e| {
            needs_login(format!(
                "cannot run `{program}` ({e}); install it, or run the login above yourself, then `credd login {source}` again"
            ))
        })?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(needs_login(format!(
                    "`{}` failed ({status}); `{source}` is not logged in",
                    command.join(" ")
                )));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(needs_login(format!(
                    "`{}` did not finish within {} minutes and was stopped",
                    command.join(" "),
                    LOGIN_BOUND.as_secs().div_ceil(60)
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(needs_login(format!("waiting for `{program}` failed: {e}"))),
        }
    }
}

/// Where the login tool's output goes: both its streams to ours that the person is shown
/// (stdout: Claude Code shows a helper's stdout only, and that is where gcloud and az print the
/// URL to open).
fn shown_as_stdio() -> Stdio {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        let fd = if ON_STDERR.load(Ordering::Relaxed) {
            std::io::stderr().as_fd().try_clone_to_owned()
        } else {
            std::io::stdout().as_fd().try_clone_to_owned()
        };
        if let Ok(fd) = fd {
            return Stdio::from(fd);
        }
    }
    Stdio::inherit()
}

/// A line for the person, at once.
fn say(text: &str) {
    if ON_STDERR.load(Ordering::Relaxed) {
        eprintln!("{text}");
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}
