//! A Claude Code settings file as `setup` handles it: read (an invalid one is refused), merged
//! key by key, compared for the lines to print, and written atomically with a backup.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// Reads the settings file; a missing file is an empty one, an invalid one is refused.
pub fn read_settings(path: &Path) -> Result<Map<String, Value>, String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
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

/// One line per changed key: `+` added, `-` removed, `~` changed.
pub fn diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut flat_old = Vec::new();
    let mut flat_new = Vec::new();
    flatten("", old, &mut flat_old);
    flatten("", new, &mut flat_new);
    for (key, value) in &flat_new {
        match flat_old.iter().find(|(k, _)| k == key) {
            None => lines.push(format!("+ {key} = {value}")),
            Some((_, before)) if before != value => {
                lines.push(format!("~ {key} = {value} (was {before})"))
            }
            Some(_) => {}
        }
    }
    for (key, value) in &flat_old {
        if !flat_new.iter().any(|(k, _)| k == key) {
            lines.push(format!("- {key} = {value}"));
        }
    }
    lines
}

fn flatten(prefix: &str, map: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if key == "env" && prefix.is_empty() => flatten(&path, inner, out),
            other => out.push((path, other.to_string())),
        }
    }
}

pub fn write_settings(
    path: &Path,
    settings: &Map<String, Value>,
) -> Result<Option<PathBuf>, String> {
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().readonly()
    {
        return Err(format!(
            "{} is read-only; make it writable if credd should change it",
            path.display()
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of", e))?;
    // The backup and the new file are written to files made new for this run (never through a
    // symbolic link left at their names), then renamed into place.
    let backup = if path.exists() {
        let backup = path.with_extension("json.bak");
        let copy = std::fs::read(path).map_err(|e| fail("back up", e))?;
        credd_proto::private_file::replace(&backup, &copy).map_err(|e| fail("back up", e))?;
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
