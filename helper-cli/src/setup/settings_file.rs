//! A Claude Code settings file as `setup` handles it: read (an invalid one is refused), merged
//! key by key, compared for the lines to print, and written atomically with a backup.
//!
//! Never read or written through a symbolic link (see [`refuse_links`]): a repository that
//! ships `.claude/settings.json` as a link to
//! `~/.config/gcloud/application_default_credentials.json` would otherwise have setup read
//! that file, merge into it, and leave its refresh token in a file of the project's, for git
//! to show and `git add .` to take.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// Refuses, before anything is read, moved or printed, a settings file at `path` that is a
/// symbolic link, and its directory when it is one and `in_project` (a project's `.claude`).
/// A repository's own files are never trusted to point elsewhere; the user's own `~/.claude`
/// may be a link (into a dotfiles repository, say), since their home is theirs, but the files
/// in it may not. (Reading and writing refuse a link at the file's name again, without
/// following it, in case one is put there meanwhile.)
pub fn refuse_links(path: &Path, in_project: bool) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if in_project && is_link(dir) {
        return Err(format!(
            "{} is a symbolic link; credd writes a project's settings only into its own `.claude` directory, never where the repository points it. Make it a real directory (or remove it), then run this again",
            dir.display()
        ));
    }
    if is_link(path) {
        return Err(linked(path));
    }
    Ok(())
}

/// Whether `path` itself is a symbolic link (never followed to tell).
fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Why the settings file at `path`, a symbolic link, is left alone, and what to do.
fn linked(path: &Path) -> String {
    format!(
        "{} is a symbolic link; credd never reads or writes settings through one (it could point at a file of credentials). Remove it, or replace it with a regular file of settings, then run this again",
        path.display()
    )
}

/// The whole of the file at `path`, opened without following a symbolic link at its name
/// (one there is an error, [`is_link_error`]).
fn read_unlinked(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    std::io::read_to_string(file)
}

/// Whether `error` is what opening with `O_NOFOLLOW` says of a symbolic link.
fn is_link_error(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(libc::ELOOP)
}

/// Reads the settings file; a missing file is an empty one, an invalid one is refused, and so
/// is a symbolic link (never followed).
pub fn read_settings(path: &Path) -> Result<Map<String, Value>, String> {
    match read_unlinked(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) if is_link_error(&e) => Err(linked(path)),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        Ok(text) if text.trim().is_empty() => Ok(Map::new()),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(format!(
                "{} is not a JSON object; fix or move it, then run this again",
                path.display()
            )),
            Err(e) => Err(format!(
                "{} is not valid JSON (line {}, column {}): {e}; it was left untouched",
                path.display(),
                e.line(),
                e.column()
            )),
        },
    }
}

/// `settings` with `owned` merged in: top-level keys replaced, `env` merged key by key, and a
/// key owned as `null` removed.
pub fn merge(mut settings: Map<String, Value>, owned: Map<String, Value>) -> Map<String, Value> {
    for (key, value) in owned {
        match (key.as_str(), value) {
            ("env", Value::Object(new_env)) => {
                let env = settings.entry("env").or_insert_with(|| json!({}));
                if !env.is_object() {
                    *env = json!({});
                }
                let env = env.as_object_mut().expect("made an object above");
                for (name, value) in new_env {
                    if value.is_null() {
                        env.remove(&name);
                    } else {
                        env.insert(name, value);
                    }
                }
            }
            (_, Value::Null) => {
                settings.remove(&key);
            }
            (_, value) => {
                settings.insert(key, value);
            }
        }
    }
    settings
}

/// `hooks` with every command that is not credd's shown as hidden.
fn commands_hidden(hooks: &Value) -> Value {
    match hooks {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value.as_str()) {
                        ("command", Some(command)) if !crate::claude_env::runs_credd(command) => {
                            json!("<hidden>")
                        }
                        _ => commands_hidden(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(commands_hidden).collect()),
        other => other.clone(),
    }
}

/// One line per changed key: `+` added, `-` removed, `~` changed. Secrets are shown hidden
/// (see [`shown`]); whether a value changed is decided on the value itself.
pub fn diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut flat_old = Vec::new();
    let mut flat_new = Vec::new();
    flatten("", old, &mut flat_old);
    flatten("", new, &mut flat_new);
    for (key, value) in &flat_new {
        match flat_old.iter().find(|(k, _)| k == key) {
            None => lines.push(format!("+ {key} = {}", shown(key, value))),
            Some((_, before)) if before != value => lines.push(format!(
                "~ {key} = {} (was {})",
                shown(key, value),
                shown(key, before)
            )),
            Some(_) => {}
        }
    }
    for (key, value) in &flat_old {
        if !flat_new.iter().any(|(k, _)| k == key) {
            lines.push(format!("- {key} = {}", shown(key, value)));
        }
    }
    lines
}

fn flatten<'a>(prefix: &str, map: &'a Map<String, Value>, out: &mut Vec<(String, &'a Value)>) {
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if key == "env" && prefix.is_empty() => flatten(&path, inner, out),
            other => out.push((path, other)),
        }
    }
}

/// What is printed for the setting at `key`: its value, but with every header's value hidden
/// in `ANTHROPIC_CUSTOM_HEADERS` (the proxy's caller secret is one, and a person's own headers
/// often carry tokens), the whole value of a variable named like a secret, a hook command
/// that is not credd's (`echo sk-…` is one), and a URL's user and password. What `setup`
/// prints ends up in terminals, scrollback and CI logs.
fn shown(key: &str, value: &Value) -> String {
    const HIDDEN: &str = "<hidden>";
    let Some(text) = value.as_str() else {
        // Hooks hold commands of the person's own, which may hold tokens.
        return match key {
            "hooks" => commands_hidden(value).to_string(),
            _ => value.to_string(),
        };
    };
    let hidden = || Value::from(HIDDEN).to_string();
    let Some(name) = key.strip_prefix("env.") else {
        let hook = matches!(
            key,
            "apiKeyHelper" | "awsCredentialExport" | "awsAuthRefresh" | "gcpAuthRefresh"
        );
        return if hook && !crate::claude_env::runs_credd(text) {
            hidden()
        } else {
            value.to_string()
        };
    };
    if name == "ANTHROPIC_CUSTOM_HEADERS" {
        let lines: Vec<String> = text
            .lines()
            .map(|line| match line.split_once(':') {
                Some((header, _)) => format!("{header}: {HIDDEN}"),
                None => HIDDEN.to_string(),
            })
            .collect();
        return Value::from(lines.join("\n")).to_string();
    }
    let upper = name.to_ascii_uppercase();
    let secret_name = ["TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"]
        .iter()
        .any(|word| upper.contains(word))
        || upper.ends_with("_KEY");
    let names_a_place = ["_FILE", "_URI", "_URL", "_PATH"]
        .iter()
        .any(|end| upper.ends_with(end));
    if secret_name && !names_a_place {
        return hidden();
    }
    // A URL's `user:password@`.
    if let Some((scheme, rest)) = text.split_once("://") {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return Value::from(format!("{scheme}://{HIDDEN}@{}", &rest[at + 1..])).to_string();
        }
    }
    value.to_string()
}

/// Where the file at `path` is kept before it is replaced: under credd's state directory, at
/// the file's own absolute path (`~/.local/state/credd/backups/home/you/src/app/.claude/…`).
/// Never beside it: the old file may hold the proxy's caller secret, and a project's
/// `.claude/` is where `git add .` would take it from.
///
/// With `make`, the directory it goes in is made private (0700, as every directory made on the
/// way there).
pub fn backup_path(path: &Path, make: bool) -> std::io::Result<PathBuf> {
    let root = credd_proto::paths::state_dir().join("backups");
    // (The settings file's directory exists by now: it is made before the backup is taken.)
    let dir = path.parent().unwrap_or(Path::new(".")).canonicalize()?;
    let absolute = dir.join(path.file_name().unwrap_or_default());
    let relative: PathBuf = absolute
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    let backup = root.join(relative);
    if make && let Some(dir) = backup.parent() {
        credd_proto::paths::ensure_private_dir(dir).map_err(std::io::Error::other)?;
    }
    Ok(backup)
}

/// A backup an older credd left beside `path` (`settings.json.bak`), when it holds a caller
/// secret: moved under credd's state directory with the others, out of the project. What to
/// print.
pub fn move_old_backup(path: &Path, dry_run: bool) -> Result<String, String> {
    let old = path.with_extension("json.bak");
    let is_file = std::fs::symlink_metadata(&old).is_ok_and(|m| m.file_type().is_file());
    let Some(text) = is_file.then(|| read_unlinked(&old).ok()).flatten() else {
        return Ok(String::new());
    };
    if !text
        .to_ascii_lowercase()
        .contains(credd_proto::PROXY_SECRET_HEADER)
    {
        return Ok(String::new());
    }
    let fail = |e: std::io::Error| format!("cannot move {}: {e}", old.display());
    let kept = backup_path(path, !dry_run).map_err(fail)?;
    let kept = kept.with_file_name(old.file_name().unwrap_or_default());
    if !dry_run {
        credd_proto::private_file::replace(&kept, text.as_bytes()).map_err(fail)?;
        std::fs::remove_file(&old).map_err(fail)?;
    }
    Ok(format!(
        "{} {} (an older credd's backup, which holds a caller secret) to {}\n",
        if dry_run { "Would move" } else { "Moved" },
        old.display(),
        kept.display()
    ))
}

/// Writes `settings` over the file at `path` (a symbolic link there is refused, never
/// followed nor replaced), after a copy of the old file is kept; where that copy is.
pub fn write_settings(
    path: &Path,
    settings: &Map<String, Value>,
) -> Result<Option<PathBuf>, String> {
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    let existing = std::fs::symlink_metadata(path).ok();
    if existing
        .as_ref()
        .is_some_and(|m| m.file_type().is_symlink())
    {
        return Err(linked(path));
    }
    if existing
        .as_ref()
        .is_some_and(|m| m.permissions().readonly())
    {
        return Err(format!(
            "{} is read-only; make it writable if credd should change it",
            path.display()
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of", e))?;
    // The backup and the new file are written to files made new for this run (never through a
    // symbolic link left at their names), then renamed into place: a rename replaces what is
    // at the name, and never writes where a link there points.
    let backup = if existing.is_some() {
        let backup = backup_path(path, true).map_err(|e| fail("back up", e))?;
        let copy = read_unlinked(path).map_err(|e| {
            if is_link_error(&e) {
                linked(path)
            } else {
                fail("back up", e)
            }
        })?;
        credd_proto::private_file::replace(&backup, copy.as_bytes())
            .map_err(|e| fail("back up", e))?;
        Some(backup)
    } else {
        None
    };
    let mut text =
        serde_json::to_string_pretty(&Value::Object(settings.clone())).expect("settings serialize");
    text.push('\n');
    credd_proto::private_file::replace(path, text.as_bytes()).map_err(|e| fail("write", e))?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn the_lines_printed_show_no_secret() {
        let old = map(json!({"env": {
            "ANTHROPIC_CUSTOM_HEADERS": "X-Team: blue-team-token",
            "ANTHROPIC_AUTH_TOKEN": "sk-old-token",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/home/u/.local/state/credd/c.token",
        }}));
        let new = map(json!({"env": {
            "ANTHROPIC_CUSTOM_HEADERS": "X-Team: blue-team-token\nX-Credd-Proxy-Secret: 0badc0de",
            "ANTHROPIC_API_KEY": "sk-new-key",
            "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "300000",
        }}));
        let lines = diff(&old, &new).join("\n");
        for (i, secret) in ["blue-team-token", "0badc0de", "sk-old-token", "sk-new-key"]
            .iter()
            .enumerate()
        {
            assert!(!lines.contains(secret), "secret {i} is shown");
        }
        // What changed is still told, and settings that are no secret are shown as they are.
        assert!(
            lines.contains(
                "~ env.ANTHROPIC_CUSTOM_HEADERS = \"X-Team: <hidden>\\nX-Credd-Proxy-Secret: <hidden>\" (was \"X-Team: <hidden>\")"
            ),
            "{lines}"
        );
        assert!(
            lines.contains("+ env.ANTHROPIC_API_KEY = \"<hidden>\""),
            "{lines}"
        );
        assert!(
            lines.contains("- env.ANTHROPIC_AUTH_TOKEN = \"<hidden>\""),
            "{lines}"
        );
        assert!(
            lines.contains("\"/home/u/.local/state/credd/c.token\""),
            "{lines}"
        );
        let hooks = diff(
            &map(json!({"apiKeyHelper": "echo sk-own-helper-key"})),
            &map(json!({
                "apiKeyHelper": "/usr/local/bin/credd get gateway",
                "env": {"ANTHROPIC_BASE_URL": "https://me:pa55word@gateway.example/v1"},
            })),
        )
        .join("\n");
        assert!(
            !hooks.contains("sk-own-helper-key"),
            "a helper's secret is shown"
        );
        let posing = diff(
            &Map::new(),
            &map(json!({"apiKeyHelper": "/x/credd get s; echo sk-posing-key"})),
        );
        assert!(
            !posing.join("").contains("sk-posing-key"),
            "a helper's secret is shown"
        );
        assert!(!hooks.contains("pa55word"), "a URL's password is shown");
        // Hooks of the person's own, beside the one credd adds: their commands are hidden.
        let session_hooks = diff(
            &Map::new(),
            json!({"hooks": {"SessionStart": [{"hooks": [
                {"type": "command", "command": "notify-send sk-hook-token"},
                {"type": "command", "command": "/usr/bin/credd start"},
            ]}]}})
            .as_object()
            .unwrap(),
        )
        .join("\n");
        assert!(
            !session_hooks.contains("sk-hook-token"),
            "a hook's command is shown"
        );
        assert!(
            session_hooks.contains("/usr/bin/credd start"),
            "{session_hooks}"
        );
        assert!(
            hooks.contains(
                "~ apiKeyHelper = \"/usr/local/bin/credd get gateway\" (was \"<hidden>\")"
            ),
            "{hooks}"
        );
        assert!(
            hooks.contains("\"https://<hidden>@gateway.example/v1\""),
            "{hooks}"
        );
        assert!(
            lines.contains("+ env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS = \"300000\""),
            "{lines}"
        );
    }

    #[test]
    fn a_settings_file_that_is_a_link_is_neither_read_nor_written() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("application_default_credentials.json");
        std::fs::write(
            &credentials,
            r#"{"refresh_token": "1//unit-refresh-token"}"#,
        )
        .unwrap();
        let claude = dir.path().join(".claude");
        std::fs::create_dir(&claude).unwrap();
        let link = claude.join("settings.json");
        std::os::unix::fs::symlink(&credentials, &link).unwrap();
        for (i, refused) in [
            refuse_links(&link, false),
            read_settings(&link).map(drop),
            write_settings(&link, &Map::new()).map(drop),
        ]
        .into_iter()
        .enumerate()
        {
            assert!(
                refused.is_err_and(
                    |e| e.contains("is a symbolic link") && !e.contains("unit-refresh-token")
                ),
                "call {i} went through the link"
            );
        }
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            std::fs::read_to_string(&credentials)
                .unwrap()
                .contains("unit-refresh-token")
        );
        // A project's `.claude` that is a link is refused; the user's own may be one.
        std::fs::remove_file(&link).unwrap();
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&claude, &linked).unwrap();
        let inside = linked.join("settings.json");
        assert!(
            refuse_links(&inside, true).is_err_and(|e| e.contains("linked is a symbolic link"))
        );
        assert_eq!(refuse_links(&inside, false), Ok(()));
    }

    #[test]
    fn a_new_secret_alone_is_a_change() {
        let old = map(json!({"env": {"ANTHROPIC_CUSTOM_HEADERS": "X-Credd-Proxy-Secret: aa"}}));
        let new = map(json!({"env": {"ANTHROPIC_CUSTOM_HEADERS": "X-Credd-Proxy-Secret: bb"}}));
        assert_eq!(diff(&old, &new).len(), 1);
        assert!(diff(&new, &new).is_empty());
    }
}
