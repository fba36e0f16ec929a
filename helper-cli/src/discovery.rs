//! The sign-ins this machine already has, found without signing in, calling an upstream or
//! keeping a secret: `~/.aws/config` profiles (what kind each is, from its keys' names), the
//! gcloud Application Default Credentials file (its `type`), an `az login` (the CLI's own profile
//! file), and what Claude Code is set up for. `credd status` lists
//! them when the config has no sources yet, and `credd init` turns them into one.
//!
//! A file that cannot be read or parsed is named with what is wrong, and nothing of it is used.

use std::path::{Path, PathBuf};

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

impl Discovery {
    /// The bytes of `path`; `None` when it is not there, or (noted as a problem) cannot be
    /// read.
    fn read(&mut self, path: &Path) -> Option<Vec<u8>> {
        match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                self.problems
                    .push((path.display().to_string(), format!("cannot be read: {e}")));
                None
            }
        }
    }

    /// `text`, the contents of `path`, as JSON; `None` (noted as a problem) when it is not.
    fn json<T: serde::de::DeserializeOwned>(&mut self, path: &Path, text: &str) -> Option<T> {
        match serde_json::from_str(text) {
            Ok(value) => Some(value),
            Err(e) => {
                self.problems.push((
                    path.display().to_string(),
                    format!("is not valid JSON ({e})"),
                ));
                None
            }
        }
    }

    /// Adds `found` under a name no other has, its description on one line.
    fn add(&mut self, mut found: Found) {
        found.what = one_line(&found.what);
        let base = found.name.clone();
        let mut n = 1;
        while self.found.iter().any(|f| f.name == found.name) {
            n += 1;
            found.name = format!("{base}-{n}");
        }
        self.found.push(found);
    }
}

pub fn discover() -> Discovery {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut d = Discovery::default();
    aws(&home, &mut d);
    gcloud(&home, &mut d);
    azure(&home, &mut d);
    claude(&home, &mut d);
    d
}

fn env_path(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or(default)
}

/// A source name from a profile's: letters, digits, `-` and `_` (no `.`, which a TOML table
/// header would read as nesting).
fn source_name(profile: &str) -> String {
    let name: String = profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "aws".to_string()
    } else {
        name
    }
}

/// `text` on one line, for a person and for a `#` comment of the config: no control
/// character (a newline from a file or a tool's output would start a TOML line of its own),
/// whitespace squeezed.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` as a TOML basic string's contents.
fn toml_escaped(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
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
        "region",
        "sso_account_id",
        "sso_role_name",
    ];
    let Some(bytes) = d.read(&config) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
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
        } else if keys.iter().any(|(k, _)| k == "credential_process") {
            "a credential_process".to_string()
        } else if get("aws_access_key_id").is_some() || keyed.contains(&profile) {
            "long-term keys".to_string()
        } else {
            continue;
        };
        d.add(Found {
            table: format!("kind = \"aws\"\nprofile = \"{}\"\n", toml_escaped(&profile)),
            what: format!("AWS profile `{profile}`: {what}"),
            name: source_name(&profile),
            kind: "aws",
        });
    }
}

fn gcloud(home: &Path, d: &mut Discovery) {
    let dir = env_path("CLOUDSDK_CONFIG", home.join(".config/gcloud"));
    let adc = dir.join("application_default_credentials.json");
    let Some(bytes) = d.read(&adc) else {
        return;
    };
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let Some(Kind { kind }) = d.json::<Kind>(&adc, &String::from_utf8_lossy(&bytes)) else {
        return;
    };
    let Some(kind) = kind else {
        d.problems
            .push((adc.display().to_string(), "has no `type`".into()));
        return;
    };
    let what = match kind.as_str() {
        "authorized_user" => "your gcloud login (`gcloud auth application-default login`)",
        "service_account" => "a service account key",
        "impersonated_service_account" => "a service account impersonated with your gcloud login",
        "external_account" => "workload identity federation",
        "external_account_authorized_user" => {
            "your workforce identity login (`gcloud auth application-default login --login-config`)"
        }
        other => {
            d.problems.push((
                adc.display().to_string(),
                format!("is of type `{other}`, which credd does not read yet"),
            ));
            return;
        }
    };
    d.add(Found {
        name: "gcp".into(),
        what: format!("Google Application Default Credentials: {what}"),
        table: "kind = \"gcp\"\n".into(),
        kind: "gcp",
    });
}

/// An `az login`: the Azure CLI's own profile file (`azureProfile.json`, where `az account
/// show` reads the default subscription), read here rather than running `az`, which is slow
/// to start and may send telemetry.
fn azure(home: &Path, d: &mut Discovery) {
    let path = env_path("AZURE_CONFIG_DIR", home.join(".azure")).join("azureProfile.json");
    let Some(bytes) = d.read(&path) else {
        return;
    };
    // The CLI writes it with a byte-order mark.
    let text = String::from_utf8_lossy(&bytes);
    let Some(profile) = d.json::<Value>(&path, text.trim_start_matches('\u{feff}')) else {
        return;
    };
    let subscriptions = profile["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(account) = subscriptions
        .iter()
        .find(|s| s["isDefault"] == true)
        .or(subscriptions.first())
    else {
        return;
    };
    let user = account["user"]["name"].as_str().unwrap_or("someone");
    let tenant = account["tenantId"].as_str().unwrap_or_default();
    let tenant_ok = !tenant.is_empty()
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    d.add(Found {
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

fn claude(home: &Path, d: &mut Discovery) {
    let path = env_path("CLAUDE_CONFIG_DIR", home.join(".claude")).join("settings.json");
    let Some(bytes) = d.read(&path) else {
        return;
    };
    let Some(settings) = d.json::<Value>(&path, &String::from_utf8_lossy(&bytes)) else {
        return;
    };
    let env = &settings["env"];
    let on = |var: &str| match &env[var] {
        Value::Bool(on) => *on,
        Value::Number(n) => n.as_u64().is_some_and(|n| n != 0),
        Value::String(v) => matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
        _ => false,
    };
    let Some((provider, kind)) = credd_proto::claude_code::PROVIDERS
        .into_iter()
        .find(|p| on(p.selection))
        .map(|p| (p.title, p.source_kind))
    else {
        return;
    };
    // The source for it: the AWS profile it names (none, when that one was not found), else
    // `default`, else the first of its kind.
    let of_kind = || d.found.iter().filter(|f| f.kind == kind);
    let source = match env["AWS_PROFILE"].as_str().filter(|_| kind == "aws") {
        Some(profile) => {
            let named = one_line(&format!("AWS profile `{profile}`:"));
            of_kind().find(|f| f.what.starts_with(&named))
        }
        None => of_kind()
            .find(|f| f.name == "default")
            .or_else(|| of_kind().next()),
    }
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
        assert_eq!(source_name("team.dev"), "team-dev");
    }

    #[test]
    fn nothing_found_can_add_a_line_or_a_table_to_the_config() {
        let mut d = Discovery::default();
        for (name, what) in [
            ("a", "x\n[forwards.f]\nsources = [\"a\"]"),
            ("a", "y\r\u{1b}[2J"),
        ] {
            d.add(Found {
                name: name.into(),
                what: what.into(),
                table: format!(
                    "kind = \"aws\"\nprofile = \"{}\"\n",
                    toml_escaped("p\"\n[x]")
                ),
                kind: "aws",
            });
        }
        let text = config_text(&d.found.iter().collect::<Vec<_>>());
        let tables: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(tables, ["[sources.a]", "[sources.a-2]"], "{text}");
        assert!(text.contains(r#"profile = "p\"\u000A[x]""#), "{text}");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
    }
}
