//! Keeps the proxy's caller secret out of a project's git history. `--via proxy --project`
//! writes it to `.claude/settings.local.json`, which Claude Code means to be ignored; but a
//! project may track that file, or ignore it nowhere (Claude Code adds the ignore rule only
//! when it makes the file itself), and then `git add .` takes the secret.
//!
//! git is asked with its file-system monitor off, so that a repository's own configuration
//! runs nothing; with no git, or outside a work tree, there is nothing to keep it out of.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The rule that ignores the file, as Claude Code writes it to the global ignore file.
pub const IGNORE_RULE: &str = "**/.claude/settings.local.json";

/// Where a project's `settings.local.json` stands with git.
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

/// git run in `project` with its answer's exit status and first line of output, or `None`
/// when git cannot be run at all.
fn git(project: &Path, args: &[&str]) -> Option<(bool, String)> {
    let out = Command::new("git")
        .arg("-C")
        .arg(project)
        .args(["-c", "core.fsmonitor=false"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    Some((out.status.success(), first))
}

/// Where `file` (relative to `project`) stands with git.
pub fn standing(project: &Path, file: &str) -> Standing {
    match git(project, &["rev-parse", "--is-inside-work-tree"]) {
        Some((true, inside)) if inside == "true" => {}
        _ => return Standing::NotInGit,
    }
    if let Some((true, _)) = git(project, &["ls-files", "--error-unmatch", "--", file]) {
        return Standing::Tracked;
    }
    if let Some((true, _)) = git(project, &["check-ignore", "-q", "--", file]) {
        return Standing::Ignored;
    }
    match git(project, &["rev-parse", "--git-path", "info/exclude"]) {
        Some((true, exclude)) if !exclude.is_empty() => Standing::Unguarded {
            exclude: project.join(exclude),
        },
        _ => Standing::NotInGit,
    }
}

/// Adds [`IGNORE_RULE`] to the repository's `info/exclude` (which is not committed), on a line
/// of its own.
pub fn ignore(exclude: &Path) -> std::io::Result<()> {
    use std::io::Write;

    if let Some(dir) = exclude.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let before = std::fs::read(exclude).unwrap_or_default();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(exclude)?;
    if !before.is_empty() && !before.ends_with(b"\n") {
        file.write_all(b"\n")?;
    }
    writeln!(
        file,
        "# credd: the proxy's caller secret stays on this machine\n{IGNORE_RULE}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git is installed")
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn a_settings_file_git_would_take_is_found_and_then_ignored() {
        const FILE: &str = ".claude/settings.local.json";
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path();
        assert_eq!(standing(project, FILE), Standing::NotInGit);
        run(project, &["init", "-q"]);
        std::fs::create_dir_all(project.join(".claude")).unwrap();
        std::fs::write(project.join(FILE), "{}").unwrap();
        // An exclude file without a final newline keeps its last rule whole.
        std::fs::write(project.join(".git/info/exclude"), "*.swp").unwrap();
        let Standing::Unguarded { exclude } = standing(project, FILE) else {
            panic!("{:?}", standing(project, FILE));
        };
        ignore(&exclude).unwrap();
        assert_eq!(standing(project, FILE), Standing::Ignored);
        let rules = std::fs::read_to_string(&exclude).unwrap();
        assert!(rules.starts_with("*.swp\n"), "{rules}");
        // From a subdirectory of the repository, too.
        let sub = project.join("service");
        std::fs::create_dir_all(sub.join(".claude")).unwrap();
        assert_eq!(standing(&sub, FILE), Standing::Ignored);

        run(project, &["add", "-f", FILE]);
        assert_eq!(standing(project, FILE), Standing::Tracked);
    }
}
