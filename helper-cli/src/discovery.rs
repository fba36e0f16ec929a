//! The sign-ins this machine already has, found without signing in, calling an upstream or
//! keeping a secret: `~/.aws/config` profiles (what kind each is, from its keys' names), the
//! gcloud Application Default Credentials file (its `type`), an `az login` (`az account show`,
//! which reads the CLI's own files), and what Claude Code is set up for. `credd status` lists
//! them when the config has no sources yet, and `credd init` turns them into one.
//!
//! A file that cannot be read or parsed is named with what is wrong, and nothing of it is used.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One sign-in found, as a source it would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The source's name in the config it would get.
    pub name: String,
    /// What it is, for a person.
    pub what: String,
    /// Its `[sources.NAME]` table's lines.
    pub table: String,
    /// The kind of the source (`aws`, `gcp`, `entra`).
    pub kind: &'static str,
}

/// Everything found, and what could not be read.
#[derive(Debug, Default)]
pub struct Discovery {
    pub found: Vec<Found>,
    /// `(file or tool, what is wrong)`.
    pub problems: Vec<(String, String)>,
    /// What Claude Code's user settings set it up for: `(provider, the source for it)`.
    pub claude: Option<(String, Option<String>)>,
}

pub fn discover() -> Discovery {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut d = Discovery::default();
    aws(&home, &mut d);
    gcloud(&home, &mut d);
    azure(&mut d);
    claude(&home, &mut d);
    d
}

fn env_path(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or(default)
}

/// A source name from a profile's: the characters a source name may hold.
fn source_name(profile: &str) -> String {
    profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

/// A section's name, and its keys with the values kept.
type Section = (String, Vec<(String, String)>);

/// The sections of an INI file (`[name]`) and, for each, its keys and the values of the keys
/// in `keep` (never a secret's); an error names the first line that is neither.
fn ini_sections(text: &str, keep: &[&str]) -> Result<Vec<Section>, String> {
    let mut sections: Vec<Section> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let Some(name) = header.strip_suffix(']') else {
                return Err(format!("line {}: a section header without its `]`", n + 1));
            };
            sections.push((name.trim().to_string(), Vec::new()));
            continue;
        }
        // A nested value (`s3 =` and its indented lines) belongs to the key above it.
        if line.starts_with([' ', '\t']) && sections.last().is_some_and(|s| !s.1.is_empty()) {
            continue;
        }
        let (Some((key, value)), Some(section)) = (trimmed.split_once('='), sections.last_mut())
        else {
            return Err(format!(
                "line {}: neither a `[section]` nor a `key = value`",
                n + 1
            ));
        };
        let key = key.trim().to_ascii_lowercase();
        let value = if keep.contains(&key.as_str()) {
            value.trim().to_string()
        } else {
            String::new()
        };
        section.1.push((key, value));
    }
    Ok(sections)
}

fn aws(home: &Path, d: &mut Discovery) {
    let config = env_path("AWS_CONFIG_FILE", home.join(".aws/config"));
    let keep = [
        "sso_session",
        "sso_start_url",
        "role_arn",
        "source_profile",
        "credential_source",
        "login_session",
        "credential_process",
        "region",
        "sso_account_id",
        "sso_role_name",
    ];
    let text = match std::fs::read_to_string(&config) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            d.problems
                .push((config.display().to_string(), format!("cannot be read: {e}")));
            return;
        }
    };
    let sections = match ini_sections(&text, &keep) {
        Ok(sections) => sections,
        Err(e) => {
            d.problems.push((config.display().to_string(), e));
            return;
        }
    };
    // Static keys may be in the credentials file: only its sections' key names are looked at.
    let credentials = env_path("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"));
    let keyed: Vec<String> = std::fs::read_to_string(&credentials)
        .ok()
        .and_then(|text| ini_sections(&text, &[]).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, keys)| keys.iter().any(|(k, _)| k == "aws_access_key_id"))
        .map(|(name, _)| name)
        .collect();
    for (section, keys) in sections {
        let profile = match section.as_str() {
            "default" => "default".to_string(),
            other => match other.strip_prefix("profile ") {
                Some(name) => name.trim().to_string(),
                None => continue,
            },
        };
        let get = |key: &str| keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let what = if let Some(session) = get("sso_session") {
            format!("SSO through the session `{session}`")
        } else if get("sso_start_url").is_some() {
            "SSO (legacy, with its start URL in the profile)".to_string()
        } else if let Some(role) = get("role_arn") {
            match get("source_profile").or(get("credential_source")) {
                Some(from) => format!("the role {role}, from `{from}`"),
                None => format!("the role {role}"),
            }
        } else if let Some(session) = get("login_session") {
            format!("an `aws login` session ({session})")
        } else if get("credential_process").is_some() {
            "a credential_process".to_string()
        } else if get("aws_access_key_id").is_some() || keyed.contains(&profile) {
            "long-term keys".to_string()
        } else {
            continue;
        };
        let name = source_name(&profile);
        d.found.push(Found {
            table: format!("kind = \"aws\"\nprofile = \"{profile}\"\n"),
            what: format!("AWS profile `{profile}`: {what}"),
            name,
            kind: "aws",
        });
    }
}

fn gcloud(home: &Path, d: &mut Discovery) {
    let dir = env_path("CLOUDSDK_CONFIG", home.join(".config/gcloud"));
    let adc = dir.join("application_default_credentials.json");
    let bytes = match std::fs::read(&adc) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            d.problems
                .push((adc.display().to_string(), format!("cannot be read: {e}")));
            return;
        }
    };
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let kind = match serde_json::from_slice::<Kind>(&bytes) {
        Ok(Kind { kind: Some(kind) }) => kind,
        Ok(_) => {
            d.problems
                .push((adc.display().to_string(), "has no `type`".into()));
            return;
        }
        Err(e) => {
            d.problems.push((
                adc.display().to_string(),
                format!("is not valid JSON ({e})"),
            ));
            return;
        }
    };
    let what = match kind.as_str() {
        "authorized_user" => "your gcloud login (`gcloud auth application-default login`)",
        "service_account" => "a service account key",
        "impersonated_service_account" => "a service account impersonated with your gcloud login",
        "external_account" => "workload identity federation",
        other => {
            d.problems.push((
                adc.display().to_string(),
                format!("is of type `{other}`, which credd does not read yet"),
            ));
            return;
        }
    };
    d.found.push(Found {
        name: "gcp".into(),
        what: format!("Google Application Default Credentials: {what}"),
        table: "kind = \"gcp\"\n".into(),
        kind: "gcp",
    });
}

fn azure(d: &mut Discovery) {
    let Some(out) = run_bounded(
        Command::new("az").args(["account", "show", "--output", "json"]),
        Duration::from_secs(20),
    ) else {
        return;
    };
    let Ok(account) = serde_json::from_slice::<Value>(&out) else {
        return;
    };
    let (Some(user), Some(tenant)) = (
        account["user"]["name"].as_str(),
        account["tenantId"].as_str(),
    ) else {
        return;
    };
    let tenant_ok = tenant
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    d.found.push(Found {
        name: "azure".into(),
        what: format!("the Azure CLI, signed in as {user} (tenant {tenant})"),
        table: if tenant_ok {
            format!("kind = \"entra\"\nmethod = \"azure-cli\"\ntenant_id = \"{tenant}\"\n")
        } else {
            "kind = \"entra\"\nmethod = \"azure-cli\"\n".into()
        },
        kind: "entra",
    });
}

/// What `cmd` prints when it succeeds within `bound`; `None` when it is not installed, fails
/// (not signed in) or takes longer.
fn run_bounded(cmd: &mut Command, bound: Duration) -> Option<Vec<u8>> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + bound;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut child.stdout.take()?, &mut out).ok()?;
                return Some(out);
            }
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn claude(home: &Path, d: &mut Discovery) {
    let path = env_path("CLAUDE_CONFIG_DIR", home.join(".claude")).join("settings.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            d.problems
                .push((path.display().to_string(), format!("cannot be read: {e}")));
            return;
        }
    };
    let settings: Value = match serde_json::from_str(&text) {
        Ok(settings) => settings,
        Err(e) => {
            d.problems.push((
                path.display().to_string(),
                format!("is not valid JSON ({e})"),
            ));
            return;
        }
    };
    let env = &settings["env"];
    let on = |var: &str| env[var].as_str().is_some_and(|v| v == "1" || v == "true");
    let (provider, kind) = if on("CLAUDE_CODE_USE_BEDROCK") {
        ("Bedrock", "aws")
    } else if on("CLAUDE_CODE_USE_VERTEX") {
        ("Vertex AI", "gcp")
    } else if on("CLAUDE_CODE_USE_FOUNDRY") {
        ("Microsoft Foundry", "entra")
    } else {
        return;
    };
    // The source for it: the AWS profile it names, else the first of its kind found.
    let profile = env["AWS_PROFILE"].as_str().map(source_name);
    let source = d
        .found
        .iter()
        .filter(|f| f.kind == kind)
        .find(|f| profile.as_deref().is_none_or(|p| f.name == p))
        .or_else(|| d.found.iter().find(|f| f.kind == kind))
        .map(|f| f.name.clone());
    d.claude = Some((provider.to_string(), source));
}

/// The config `credd init` writes for `chosen`: commented, no secret (profiles and kinds).
pub fn config_text(chosen: &[&Found]) -> String {
    let mut text = String::from(
        "# credd's config, written by `credd init` from the sign-ins this machine has.\n\
         # Each [sources.NAME] is what `credd get NAME` serves; see docs/sources.md for every\n\
         # setting. Edit freely: credd-daemon reloads it when it changes.\n",
    );
    for found in chosen {
        text.push_str(&format!(
            "\n# {}\n[sources.{}]\n{}",
            found.what, found.name, found.table
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_told_apart_by_their_keys_and_secrets_are_not_kept() {
        let sections = ini_sections(
            "[default]\nregion = us-east-1\n[profile dev]\nsso_session = corp\n[profile k]\naws_secret_access_key = SECRET\ns3 =\n  max = 1\n",
            &["sso_session", "region"],
        )
        .unwrap();
        assert_eq!(sections.len(), 3);
        assert_eq!(
            sections[1].1,
            [("sso_session".to_string(), "corp".to_string())]
        );
        assert_eq!(
            sections[2].1[0],
            ("aws_secret_access_key".to_string(), String::new())
        );
        assert!(
            ini_sections("[profile x\n", &[])
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            ini_sections("[a]\nnonsense\n", &[])
                .unwrap_err()
                .contains("line 2")
        );
        assert_eq!(source_name("team/dev prod"), "team-dev-prod");
    }
}
