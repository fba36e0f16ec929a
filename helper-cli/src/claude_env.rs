//! What Claude Code makes of the settings and environment it starts with, where `setup` (which
//! writes them) and `doctor` (which checks them) must agree: one reading of each, below both.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The caller secret a line of `ANTHROPIC_CUSTOM_HEADERS` sends to a credd proxy, if it is
/// that header's line.
pub fn proxy_secret_in(line: &str) -> Option<&str> {
    line.split_once(':')
        .filter(|(name, _)| {
            name.trim()
                .eq_ignore_ascii_case(credd_proto::PROXY_SECRET_HEADER)
        })
        .map(|(_, value)| value.trim())
}

/// A credential file Google's libraries would use before asking the metadata server:
/// `GOOGLE_APPLICATION_CREDENTIALS` (in Claude Code's `env` or ours), or gcloud's ADC file in
/// the place Node's google-auth-library looks (it does not honour `CLOUDSDK_CONFIG`).
pub fn adc_file_ahead_of_metadata(settings_env: &Value) -> Option<PathBuf> {
    if let Some(path) = settings_env["GOOGLE_APPLICATION_CREDENTIALS"]
        .as_str()
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
    {
        return Some(path);
    }
    let home = std::env::var_os("HOME")?;
    let adc = Path::new(&home).join(".config/gcloud/application_default_credentials.json");
    adc.exists().then_some(adc)
}

/// Whether a hook's command is one credd writes: `/path/to/credd WORD...` with plain words
/// (`get SOURCE --format aws`, `start`), so nothing in it can be a secret.
pub fn runs_credd(command: &str) -> bool {
    let mut words = command.split(' ');
    words
        .next()
        .is_some_and(|program| program == "credd" || program.ends_with("/credd"))
        && words.all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

/// The Claude Code settings files that apply in `project` (or no project): the user's, then
/// the project's shared and local ones; those that exist.
pub fn settings_files(project: Option<&Path>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        files.push(Path::new(&home).join(".claude/settings.json"));
    }
    if let Some(dir) = project {
        for name in ["settings.json", "settings.local.json"] {
            files.push(dir.join(".claude").join(name));
        }
    }
    files.into_iter().filter(|f| f.is_file()).collect()
}

/// Every settings file Claude Code would read in `project`, parsed, in its order of
/// precedence (managed first, the user's last); a file that cannot be read counts as empty.
pub fn settings_by_precedence(project: Option<&Path>) -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = settings_files(project);
    files.reverse();
    files.insert(0, managed_settings_file());
    files
        .into_iter()
        .filter(|f| f.is_file())
        .map(|f| {
            let parsed = read_settings_file(&f).unwrap_or(Value::Null);
            (f, parsed)
        })
        .collect()
}

/// The value Claude Code started here would have for `name`: the first settings file of its
/// order that sets it, else the environment.
pub fn value_of(name: &str, settings: &[(PathBuf, Value)]) -> Option<String> {
    set_at(name, settings).map(|(_, value)| value)
}

/// Where Claude Code started here would find `name` set, and its value (see [`where_set`]).
fn set_at(name: &str, settings: &[(PathBuf, Value)]) -> Option<(String, String)> {
    settings
        .iter()
        .find_map(|(path, s)| {
            let value = s["env"][name].as_str().filter(|v| !v.is_empty())?;
            Some((path.display().to_string(), value.to_string()))
        })
        .or_else(|| {
            let value = std::env::var(name).ok().filter(|v| !v.is_empty())?;
            Some(("the environment Claude Code starts in".to_string(), value))
        })
}

/// A settings file's JSON, as Claude Code reads it (through a link, as a dotfile manager makes
/// them), unless what it names is no regular file or is larger than any settings file (1 MiB):
/// a repository's may point at a device or a huge file. Only names and paths from it are ever
/// printed.
fn read_settings_file(path: &Path) -> Option<Value> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// A variable Claude Code takes before what credd gives it.
#[derive(Debug, PartialEq, Eq)]
pub struct Override {
    /// The variable that wins.
    pub name: &'static str,
    /// Where it is set ([`where_set`]).
    pub place: String,
    /// What it wins over, and what comes of it.
    pub over: String,
}

/// The variables set in `settings` (as [`settings_by_precedence`] reads them) or the
/// environment that Claude Code takes before credd's settings: a token or key over
/// `apiKeyHelper` or `awsCredentialExport`, a Foundry token or key over DefaultAzureCredential
/// (credd's identity endpoint), and a provider chosen ahead of credd's.
pub fn overrides(settings: &[(PathBuf, Value)]) -> Vec<Override> {
    use credd_proto::claude_code::{self as cc, PROVIDERS};
    let set = |name: &str| where_set(name, settings);
    // The first file of the order that sets `key` to a credd command, and that file.
    let credds = |key: &str| {
        settings.iter().find_map(|(path, s)| {
            s[key]
                .as_str()
                .filter(|c| runs_credd(c))
                .map(|_| path.display().to_string())
        })
    };
    let chosen: Vec<(cc::Provider, String)> = PROVIDERS
        .into_iter()
        .filter_map(|p| Some((p, set(p.selection)?)))
        .collect();
    let provider = chosen.first().map(|(p, _)| *p);
    let mut found = Vec::new();
    let mut wins = |names: &[&'static str], over: &dyn Fn(&str) -> String| {
        for name in names {
            if let Some(place) = set(name) {
                found.push(Override {
                    name,
                    place,
                    over: over(name),
                });
            }
        }
    };
    if let Some(file) = credds("apiKeyHelper") {
        wins(&["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"], &|_| {
            format!("apiKeyHelper in {file}: Claude Code sends it, not credd's token")
        });
    }
    if let Some(file) = credds("awsCredentialExport") {
        let keys: &[&'static str] = match provider {
            Some(cc::BEDROCK | cc::MANTLE) => &["AWS_BEARER_TOKEN_BEDROCK"],
            Some(cc::ANTHROPIC_AWS) => &["ANTHROPIC_AWS_API_KEY"],
            _ => &[],
        };
        wins(keys, &|_| {
            format!(
                "awsCredentialExport in {file}: Claude Code sends that key and never signs with credd's credentials"
            )
        });
    }
    if provider == Some(cc::FOUNDRY) && set("IDENTITY_ENDPOINT").is_some() {
        wins(
            &["ANTHROPIC_FOUNDRY_AUTH_TOKEN", "ANTHROPIC_FOUNDRY_API_KEY"],
            &|_| {
                "DefaultAzureCredential: Claude Code sends it to Foundry and never asks credd's identity endpoint".to_string()
            },
        );
    }
    if let [(first, place), rest @ ..] = chosen.as_slice() {
        for (other, _) in rest {
            found.push(Override {
                name: first.selection,
                place: place.clone(),
                over: format!(
                    "{}: Claude Code uses {}, not {}",
                    other.selection, first.title, other.title
                ),
            });
        }
    }
    found
}

/// Claude Code's managed settings file, which wins over every other.
pub fn managed_settings_file() -> PathBuf {
    if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/ClaudeCode/managed-settings.json")
    } else {
        PathBuf::from("/etc/claude-code/managed-settings.json")
    }
}

/// Where Claude Code started here would find `name` set, the first place of its order:
/// managed settings, the project's local settings, its shared settings, the user's settings
/// (each one's `env`), then the environment it starts in. `settings` are the files that exist,
/// with their parsed contents, in that order.
pub fn where_set(name: &str, settings: &[(PathBuf, Value)]) -> Option<String> {
    set_at(name, settings).map(|(place, _)| place)
}
