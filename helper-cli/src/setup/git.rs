//! Keeps credd's settings for this machine (the path to credd, the proxy's socket or caller
//! secret) out of git history. `--project` writes them to `.claude/settings.local.json`, which
//! Claude Code means to be ignored; but a project may track that file, or ignore it nowhere
//! (Claude Code adds the ignore rule only when it makes the file itself), and then `git add .`
//! takes them. A home directory kept in git
//! (dotfiles) may track `~/.claude/settings.json` too.
//!
//! git is asked with its file-system monitor off, so that a repository's own configuration
//! runs nothing, and never pointed elsewhere by the caller's `GIT_DIR`; with no git, or
//! outside a work tree, there is nothing to keep the secret out of. When git cannot tell
//! (a repository it distrusts, say), nothing is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The rule that ignores the file, as Claude Code writes it to the global ignore file.
pub const IGNORE_RULE: &str = "**/.claude/settings.local.json";

/// Variables that would point git at another repository than the one around the file (set
/// inside a git hook, or for a dotfiles repository): never passed on.
const REPOSITORY_VARS: [&str; 7] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
];

/// Where a settings file stands with git.
#[derive(Debug, PartialEq)]
pub enum Standing {
    /// Not in a git work tree, or git is not installed.
    NotInGit,
    /// Ignored already.
    Ignored,
    /// Untracked and not ignored: the rule belongs in this repository's `info/exclude`.
    Unguarded { exclude: PathBuf },
    /// Committed or staged: whatever is written to it would be committed next.
    Tracked,
}

/// What git answered: whether it exited 0, 1 (a "no"), or otherwise, and what it printed.
struct Answer {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// git run in `dir`, or `None` when there is no git to run.
fn git(dir: &Path, args: &[&str]) -> Option<Answer> {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(["-c", "core.fsmonitor=false"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        // Its messages untranslated: "not a git repository" is read below.
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    for var in REPOSITORY_VARS {
        command.env_remove(var);
    }
    // No git installed is no repository to guard; git that cannot start is no answer.
    let out = match command.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(Answer {
                code: None,
                stdout: String::new(),
                stderr: format!("cannot run git: {e}"),
            });
        }
    };
    let first = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    Some(Answer {
        code: out.status.code(),
        stdout: first(&out.stdout),
        stderr: first(&out.stderr),
    })
}

/// Where the settings file at `file` stands with git, asked in the nearest directory above it
/// that exists (a project's `.claude/` may not yet), resolved (see [`resolved_base`]). (A
/// project's `.claude` that is a symbolic link never gets here: `setup` refuses it first, with
/// every other link it will not write through, in `settings_file::refuse_links`.)
pub fn standing(file: &Path) -> Result<Standing, String> {
    let unsure = |why: &str| {
        format!(
            "git cannot tell whether {} would be committed ({why}); credd's settings are not written there until it can",
            file.display()
        )
    };
    let resolved =
        resolved_base(file).map_err(|e| unsure(&format!("cannot resolve its directory: {e}")))?;
    let Some((base, relative)) = resolved else {
        return Ok(Standing::NotInGit);
    };
    let base = base.as_path();
    let relative = relative
        .to_str()
        .ok_or_else(|| unsure("its path is not UTF-8"))?;
    let Some(inside) = git(base, &["rev-parse", "--is-inside-work-tree"]) else {
        return Ok(Standing::NotInGit);
    };
    match inside.code {
        Some(0) if inside.stdout == "true" => {}
        // A bare repository's directory, or outside any repository.
        Some(0) => return Ok(Standing::NotInGit),
        _ if inside.stderr.contains("not a git repository") => return Ok(Standing::NotInGit),
        _ => return Err(unsure(&inside.stderr)),
    }
    let ask = |args: &[&str]| git(base, args).ok_or_else(|| unsure("git stopped answering"));
    let tracked = ask(&[
        // The name as it is, never a pattern (`a[1]` would match `a1`).
        "--literal-pathspecs",
        "ls-files",
        "--error-unmatch",
        "--",
        relative,
    ])?;
    match tracked.code {
        Some(0) => return Ok(Standing::Tracked),
        Some(1) => {}
        _ => return Err(unsure(&tracked.stderr)),
    }
    let ignored = ask(&["check-ignore", "-q", "--", relative])?;
    match ignored.code {
        Some(0) => return Ok(Standing::Ignored),
        Some(1) => {}
        _ => return Err(unsure(&ignored.stderr)),
    }
    // (Relative to `base`; an old git that does not know an option prints it back instead, so
    // only a path that ends as asked is taken.)
    let exclude = ask(&["rev-parse", "--git-path", "info/exclude"])?;
    match exclude.code {
        Some(0) if exclude.stdout.ends_with("info/exclude") => {
            let exclude = base.join(exclude.stdout);
            // Shown to the person: without the `..` of a path from a subdirectory.
            let exclude = match exclude.parent().map(Path::canonicalize) {
                Some(Ok(dir)) => dir.join("exclude"),
                _ => exclude,
            };
            Ok(Standing::Unguarded { exclude })
        }
        _ => Err(unsure(&exclude.stderr)),
    }
}

/// The directory git is asked in about `file`: the nearest one above it that exists, with every
/// symbolic link in it resolved, and `file`'s path from there (its last part never followed).
/// A user's `~/.claude` may be a link into a dotfiles repository, and then that repository,
/// where the file really is, is the one that would commit it. `None` when no directory above
/// it exists.
fn resolved_base(file: &Path) -> std::io::Result<Option<(PathBuf, PathBuf)>> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let Some(base) = dir.ancestors().find(|d| d.is_dir()) else {
        return Ok(None);
    };
    // (Below `base` no directory exists yet: nothing there to resolve.)
    let relative = file.strip_prefix(base).unwrap_or(file).to_path_buf();
    Ok(Some((base.canonicalize()?, relative)))
}

/// Adds [`IGNORE_RULE`] to the repository's `info/exclude` (which is not committed), on a line
/// of its own, unless it is there already. Never through a symbolic link at that name.
pub fn ignore(exclude: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    if let Some(dir) = exclude.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(exclude)?;
    let mut before = String::new();
    std::io::Read::read_to_string(&mut file, &mut before)?;
    if before.lines().any(|line| line.trim() == IGNORE_RULE) {
        return Ok(());
    }
    if !before.is_empty() && !before.ends_with('\n') {
        file.write_all(b"\n")?;
    }
    writeln!(
        file,
        "# credd: its settings (its path, the proxy's socket or caller secret) stay on this machine\n{IGNORE_RULE}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_is_asked_where_the_file_really_is() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/claude");
        std::fs::create_dir_all(&real).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::symlink(&real, home.join(".claude")).unwrap();
        let (base, relative) = resolved_base(&home.join(".claude/settings.json"))
            .unwrap()
            .unwrap();
        assert_eq!(base, real.canonicalize().unwrap());
        assert_eq!(relative, Path::new("settings.json"));
        // A project not made yet: from the nearest directory that is.
        let (base, relative) = resolved_base(&home.join("app/.claude/settings.local.json"))
            .unwrap()
            .unwrap();
        assert_eq!(base, home.canonicalize().unwrap());
        assert_eq!(relative, Path::new("app/.claude/settings.local.json"));
    }

    #[test]
    fn the_rule_is_added_once_on_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let exclude = dir.path().join("info/exclude");
        std::fs::create_dir_all(exclude.parent().unwrap()).unwrap();
        std::fs::write(&exclude, "*.swp").unwrap();
        ignore(&exclude).unwrap();
        ignore(&exclude).unwrap();
        let rules = std::fs::read_to_string(&exclude).unwrap();
        assert!(rules.starts_with("*.swp\n"), "{rules}");
        assert_eq!(rules.matches(IGNORE_RULE).count(), 1, "{rules}");
        // Never through a symbolic link at its name.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "").unwrap();
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
        assert!(ignore(&linked).is_err());
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "");
    }
}
