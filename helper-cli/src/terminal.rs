//! Asking the person for a code (an MFA code) where they can answer: never on stdin, which
//! belongs to whoever ran us (Claude Code leaves it open forever). On the controlling terminal
//! only when nothing else reads it: a person typing `credd login`, not a hook that Claude Code
//! runs while its own interface owns the terminal (keys typed there go to Claude Code, and a
//! prompt would wait until it is killed). Otherwise in a desktop prompt (zenity or kdialog on a
//! graphical Linux session, osascript on macOS). With neither, the caller says what to run and
//! exits at once.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credd_proto::claude_code::{ENTRYPOINT_ENV, HELPER_CONTEXT_ENV, LOGIN_BOUND};

/// Asks `prompt` where the person can answer and returns the code typed, trimmed.
pub fn read_code(prompt: &str) -> Result<String, String> {
    let code = match terminal_of_our_own()? {
        Some(tty) => ask_on_terminal(&tty, prompt)?,
        None => match desktop_prompt(prompt) {
            Some(mut command) => ask_on_desktop(&mut command)?,
            None => {
                return Err(
                    "there is no terminal to ask on that nothing else reads, and no desktop to show a prompt on"
                        .into(),
                );
            }
        },
    };
    let code = code.trim().to_string();
    if code.is_empty() {
        return Err("no code was typed".into());
    }
    Ok(code)
}

/// Asks a yes-or-no `question` on the terminal, when a person at it is waiting for us; `None`
/// when there is nobody to ask (a script, a hook, CI).
pub fn confirm(question: &str) -> Result<Option<bool>, String> {
    let Some(tty) = terminal_of_our_own()? else {
        return Ok(None);
    };
    let answer = ask_on_terminal(&tty, &format!("{question} [y/N] "))?;
    Ok(Some(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    )))
}

/// Asks `question` on the terminal, when a person at it is waiting for us, and returns the
/// line typed; `None` when there is nobody to ask.
pub fn ask_line(question: &str) -> Result<Option<String>, String> {
    let Some(tty) = terminal_of_our_own()? else {
        return Ok(None);
    };
    ask_on_terminal(&tty, question).map(Some)
}

/// The controlling terminal, when a person at it is waiting for us: not when Claude Code runs
/// us (its variables are in our environment), and only when our process group is the
/// terminal's foreground group and the terminal reads whole lines (a full-screen program such
/// as Claude Code puts it in raw mode).
fn terminal_of_our_own() -> Result<Option<std::fs::File>, String> {
    if [ENTRYPOINT_ENV, HELPER_CONTEXT_ENV]
        .iter()
        .any(|var| std::env::var_os(var).is_some())
    {
        return Ok(None);
    }
    let tty_path = if cfg!(windows) { "CONIN$" } else { "/dev/tty" };
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tty_path)
    else {
        return Ok(None);
    };
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd as _;
        let fd = tty.as_raw_fd();
        // SAFETY: `fd` is open for as long as `tty` lives; both calls only read terminal state
        // into values owned here.
        let (foreground, line_mode) = unsafe {
            let mut attrs: libc::termios = std::mem::zeroed();
            (
                libc::tcgetpgrp(fd) == libc::getpgrp(),
                libc::tcgetattr(fd, &mut attrs) == 0 && attrs.c_lflag & libc::ICANON != 0,
            )
        };
        if !(foreground && line_mode) {
            return Ok(None);
        }
    }
    Ok(Some(tty))
}

fn ask_on_terminal(tty: &std::fs::File, prompt: &str) -> Result<String, String> {
    let mut writer = tty;
    writer
        .write_all(prompt.as_bytes())
        .and_then(|()| writer.flush())
        .map_err(|e| format!("writing to the terminal failed: {e}"))?;
    let mut line = String::new();
    BufReader::new(tty)
        .read_line(&mut line)
        .map_err(|e| format!("reading the terminal failed: {e}"))?;
    Ok(line)
}

/// The command that shows `prompt` in a desktop dialog with a hidden entry and prints what is
/// typed, when this session has a desktop and a program to show it.
fn desktop_prompt(prompt: &str) -> Option<Command> {
    let title = "credd";
    if cfg!(target_os = "macos") {
        let quoted = prompt.replace('\\', "\\\\").replace('"', "\\\"");
        let mut command = Command::new("osascript");
        command.args([
            "-e",
            &format!(
                "text returned of (display dialog \"{quoted}\" default answer \"\" with hidden answer with title \"{title}\")"
            ),
        ]);
        return Some(command);
    }
    let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
    if !graphical {
        return None;
    }
    // Both read their text as markup (Pango, Qt rich text): it is escaped to show as written.
    let text = prompt
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if let Some(zenity) = on_path("zenity") {
        let mut command = Command::new(zenity);
        command.args(["--entry", "--hide-text", "--title", title, "--text", &text]);
        return Some(command);
    }
    if let Some(kdialog) = on_path("kdialog") {
        let mut command = Command::new(kdialog);
        command.args(["--title", title, "--password", &text]);
        return Some(command);
    }
    None
}

/// Runs a desktop prompt to its answer, or until a login's time is up.
fn ask_on_desktop(command: &mut Command) -> Result<String, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("the desktop prompt could not be shown ({e})"))?;
    let deadline = Instant::now() + LOGIN_BOUND;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) => return Err("the desktop prompt was closed without a code".into()),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("nobody answered the desktop prompt in time".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for the desktop prompt failed: {e}")),
        }
    }
    let mut typed = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        std::io::Read::read_to_string(&mut stdout, &mut typed)
            .map_err(|e| format!("reading the desktop prompt's answer failed: {e}"))?;
    }
    Ok(typed)
}

/// `program`'s path, when it is on `PATH`.
fn on_path(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
