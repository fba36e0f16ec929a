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
    settings
        .iter()
        .find(|(_, s)| s["env"][name].as_str().is_some_and(|v| !v.is_empty()))
        .map(|(path, _)| path.display().to_string())
        .or_else(|| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(|_| "the environment Claude Code starts in".to_string())
        })
}
