//! `ANTHROPIC_UNIX_SOCKET` where Claude Code reads it: the environment it starts in. Claude
//! Code takes the proxy socket's path from there only (it drops the variable from every
//! settings file, managed settings included), so a proxy route needs one line in the shell's
//! profile, `eval "$(credd env)"`, which `setup` adds when asked to (`--shell-profile`, or yes
//! at its question on a terminal), and otherwise only names. It is added once, at the end of
//! the file, never through a symbolic link, and never without being asked.

use std::io::Write as _;
use std::path::Path;

use crate::cli::Shell;

/// What the line is for, written above it.
const COMMENT: &str =
    "# credd: Claude Code's proxy socket (ANTHROPIC_UNIX_SOCKET) and SDK endpoints";

/// Makes sure a shell started from now on exports `ANTHROPIC_UNIX_SOCKET=socket`, as far as
/// asked to; what to print.
pub fn offer(
    socket: &str,
    chosen: Option<Shell>,
    credd: &str,
    dry_run: bool,
) -> Result<String, String> {
    let shell = chosen.unwrap_or_else(Shell::from_env);
    let line = shell.profile_line(credd);
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .ok_or("HOME is not set, so there is no shell profile to name")?;
    let profile = home.join(shell.profile());
    let shown = profile.display();
    if holds_credd_env(&profile) {
        let now = if std::env::var("ANTHROPIC_UNIX_SOCKET").as_deref() == Ok(socket) {
            ""
        } else {
            " (in shells started from now on)"
        };
        return Ok(format!(
            "{shown} exports ANTHROPIC_UNIX_SOCKET through `credd env`{now}.\n"
        ));
    }
    let how = "Claude Code finds the proxy socket only through ANTHROPIC_UNIX_SOCKET in the environment it starts in (not through settings.json):";
    let add = match chosen {
        Some(_) => true,
        None if dry_run => false,
        None => {
            crate::terminal::confirm(&format!("{how} add `{line}` to {shown}?"))?.unwrap_or(false)
        }
    };
    if !add {
        return Ok(format!(
            "{how} add this line to {shown} (or run setup again with --shell-profile {}):\n  {line}\n",
            clap::ValueEnum::to_possible_value(&shell)
                .map(|name| name.get_name().to_string())
                .unwrap_or_default()
        ));
    }
    if dry_run {
        return Ok(format!("Would add to {shown}:\n  {line}\n"));
    }
    append(&profile, &format!("\n{COMMENT}\n{line}\n"))
        .map_err(|e| format!("cannot add to {shown} ({e}); add this line yourself:\n  {line}"))?;
    Ok(format!(
        "Added to {shown}:\n  {line}\nStart Claude Code from a new shell (or run `{line}` here first).\n"
    ))
}

/// Whether `profile` runs `credd env` already (this line, or one of the person's own).
fn holds_credd_env(profile: &Path) -> bool {
    read_unlinked(profile).is_ok_and(|text| {
        text.lines().any(|line| {
            let line = line.trim_start();
            !line.starts_with('#') && line.contains("credd") && line.contains(" env")
        })
    })
}

/// The file's text, never through a symbolic link.
fn read_unlinked(path: &Path) -> std::io::Result<String> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    std::io::read_to_string(options.open(path)?)
}

/// Appends `text` to `path` (made if missing, 0644 as shells' profiles are), never through a
/// symbolic link: a profile that is one (into a dotfiles repository, say) is the person's to
/// edit.
fn append(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(std::io::Error::other("it is a symbolic link"));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    }
    options.open(path)?.write_all(text.as_bytes())
}
