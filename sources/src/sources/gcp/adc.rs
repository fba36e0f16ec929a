//! Finding and reading Google credential files: Application Default Credentials are looked for
//! where Google's libraries look (`GOOGLE_APPLICATION_CREDENTIALS`, then the file
//! `gcloud auth application-default login` writes), and every credential type Google documents
//! for ADC is parsed into [`CredentialFile`].
//!
//! Errors name the file and what is wrong with it, never a value from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sources::SourceError;

pub const ADC_FILE_NAME: &str = "application_default_credentials.json";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Where the credentials come from, and why that file.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    pub origin: &'static str,
}

/// The directory gcloud keeps its config in: `CLOUDSDK_CONFIG`, else `~/.config/gcloud`
/// (`%APPDATA%\gcloud` on Windows).
pub fn gcloud_config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLOUDSDK_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if cfg!(windows)
        && let Some(appdata) = std::env::var_os("APPDATA")
    {
        return PathBuf::from(appdata).join("gcloud");
    }
    crate::files::home_dir().join(".config").join("gcloud")
}

/// The gcloud ADC file, whether or not it exists.
pub fn gcloud_adc_file() -> PathBuf {
    gcloud_config_dir().join(ADC_FILE_NAME)
}

impl Located {
    /// The file, when it exists: a missing one means nobody has logged in yet.
    pub fn existing(&self) -> Result<&Located, SourceError> {
        if !self.path.exists() {
            return Err(SourceError::NeedsLogin(format!(
                "no Google credentials: {} ({}) does not exist",
                self.path.display(),
                self.origin
            )));
        }
        Ok(self)
    }
}

/// Where the credential file is looked for, whether or not it exists: the configured one, else
/// `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's ADC file.
pub fn intended(configured: Option<&Path>) -> Located {
    if let Some(path) = configured {
        Located {
            path: path.to_path_buf(),
            origin: "credentials_file in the config",
        }
    } else if let Some(path) =
        std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty())
    {
        Located {
            path: PathBuf::from(path),
            origin: "GOOGLE_APPLICATION_CREDENTIALS",
        }
    } else {
        Located {
            path: gcloud_adc_file(),
            origin: "gcloud's Application Default Credentials",
        }
    }
}

/// Every file the credentials may come from, for the file watch.
pub fn watched_files(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut files = vec![gcloud_adc_file()];
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty())
    {
        files.push(PathBuf::from(path));
    }
    files.extend(configured.map(Path::to_path_buf));
    files
}

/// A credential file, by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CredentialFile {
    AuthorizedUser(AuthorizedUser),
    ServiceAccount(ServiceAccount),
    ExternalAccount(Box<ExternalAccount>),
    ExternalAccountAuthorizedUser(ExternalAccountAuthorizedUser),
    ImpersonatedServiceAccount(ImpersonatedServiceAccount),
}

/// What `gcloud auth application-default login --login-config` writes for a workforce
/// identity: a refresh token of Google's STS, renewed at `token_url` with the client's
/// credentials.
#[derive(Debug, Clone, Deserialize)]
pub struct ExternalAccountAuthorizedUser {
    #[serde(default)]
    pub audience: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub token_url: String,
    #[serde(default)]
    pub quota_project_id: Option<String>,
}

/// What `gcloud auth application-default login` writes.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizedUser {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    #[serde(default)]
    pub token_uri: Option<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
}

/// A service account key file.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
}

/// Workload or workforce identity federation.
#[derive(Debug, Clone, Deserialize)]
pub struct ExternalAccount {
    pub audience: String,
    pub subject_token_type: String,
    #[serde(default)]
    pub token_url: Option<String>,
    pub credential_source: CredentialSource,
    #[serde(default)]
    pub service_account_impersonation_url: Option<String>,
    #[serde(default)]
    pub service_account_impersonation: Option<ImpersonationOptions>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
    #[serde(default)]
    pub workforce_pool_user_project: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImpersonationOptions {
    #[serde(default)]
    pub token_lifetime_seconds: Option<u64>,
}

/// Where an external account's subject token comes from.
#[derive(Debug, Clone, Deserialize)]
pub struct CredentialSource {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    #[serde(default)]
    pub executable: Option<Executable>,
    #[serde(default)]
    pub environment_id: Option<String>,
    #[serde(default)]
    pub format: Option<SubjectTokenFormat>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubjectTokenFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub subject_token_field_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Executable {
    pub command: String,
    #[serde(default)]
    pub timeout_millis: Option<u64>,
    #[serde(default)]
    pub output_file: Option<PathBuf>,
}

/// A service account impersonated with another credential (`gcloud auth
/// application-default login --impersonate-service-account`).
#[derive(Debug, Clone, Deserialize)]
pub struct ImpersonatedServiceAccount {
    pub service_account_impersonation_url: String,
    pub source_credentials: Box<CredentialFile>,
    #[serde(default)]
    pub delegates: Vec<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
}

impl CredentialFile {
    pub fn type_name(&self) -> &'static str {
        match self {
            CredentialFile::AuthorizedUser(_) => "authorized_user",
            CredentialFile::ServiceAccount(_) => "service_account",
            CredentialFile::ExternalAccount(_) => "external_account",
            CredentialFile::ExternalAccountAuthorizedUser(_) => "external_account_authorized_user",
            CredentialFile::ImpersonatedServiceAccount(_) => "impersonated_service_account",
        }
    }

    pub fn quota_project(&self) -> Option<&str> {
        match self {
            CredentialFile::AuthorizedUser(f) => f.quota_project_id.as_deref(),
            CredentialFile::ServiceAccount(f) => f.quota_project_id.as_deref(),
            CredentialFile::ExternalAccount(f) => f.quota_project_id.as_deref(),
            CredentialFile::ExternalAccountAuthorizedUser(f) => f.quota_project_id.as_deref(),
            CredentialFile::ImpersonatedServiceAccount(f) => f.quota_project_id.as_deref(),
        }
    }

    /// The project the file belongs to, where it says.
    pub fn project(&self) -> Option<&str> {
        match self {
            CredentialFile::ServiceAccount(f) => f.project_id.as_deref(),
            CredentialFile::ExternalAccount(f) => f.workforce_pool_user_project.as_deref(),
            CredentialFile::AuthorizedUser(_)
            | CredentialFile::ExternalAccountAuthorizedUser(_)
            | CredentialFile::ImpersonatedServiceAccount(_) => None,
        }
        .or(self.quota_project())
    }
}

/// Reads and parses a credential file.
pub fn read(path: &Path) -> Result<CredentialFile, SourceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SourceError::Upstream(format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(|why| SourceError::Upstream(format!("{}: {why}", path.display())))
}

/// Parses a credential file. The error says what is wrong without quoting the file, which holds
/// secrets.
pub fn parse(text: &str) -> Result<CredentialFile, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "not a JSON credential file (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let Some(kind) = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_string)
    else {
        return Err("not a Google credential file: it has no `type`".into());
    };
    const KNOWN: [&str; 5] = [
        "authorized_user",
        "service_account",
        "external_account",
        "external_account_authorized_user",
        "impersonated_service_account",
    ];
    if !KNOWN.contains(&kind.as_str()) {
        // `kind` is a short word chosen by whoever wrote the file; anything else (a damaged
        // file can put any text there) is not quoted.
        let word = kind.len() <= 40
            && kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let named = if word {
            format!(" `{kind}`")
        } else {
            String::new()
        };
        return Err(format!(
            "credential type{named} is not supported (credd reads {})",
            KNOWN.join(", ")
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        // Serde's "missing field" names a field; its other messages can quote a value.
        if message.starts_with("missing field") {
            format!("`{kind}` credential file: {message}")
        } else {
            format!("`{kind}` credential file has a field of the wrong type")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_type_parses() {
        let user = r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","token_uri":"http://127.0.0.1:9/token"}"#;
        match parse(user).unwrap() {
            CredentialFile::AuthorizedUser(u) => {
                assert_eq!(u.token_uri.as_deref(), Some("http://127.0.0.1:9/token"))
            }
            other => panic!("{other:?}"),
        }
        let sa =
            r#"{"type":"service_account","client_email":"a@b","private_key":"k","project_id":"p"}"#;
        assert_eq!(parse(sa).unwrap().project(), Some("p"));
        let ext = r#"{"type":"external_account","audience":"a","subject_token_type":"t","token_url":"u","credential_source":{"file":"/f","format":{"type":"json","subject_token_field_name":"id_token"}}}"#;
        assert_eq!(parse(ext).unwrap().type_name(), "external_account");
        let workforce = r#"{"type":"external_account_authorized_user","audience":"//iam.googleapis.com/locations/global/workforcePools/p/providers/q","client_id":"c","client_secret":"s","refresh_token":"r","token_url":"https://sts.googleapis.com/v1/oauthtoken","quota_project_id":"billed"}"#;
        assert_eq!(parse(workforce).unwrap().quota_project(), Some("billed"));
        let imp = format!(
            r#"{{"type":"impersonated_service_account","service_account_impersonation_url":"u","source_credentials":{user},"delegates":[]}}"#
        );
        assert_eq!(
            parse(&imp).unwrap().type_name(),
            "impersonated_service_account"
        );
    }

    #[test]
    fn errors_name_the_problem_but_never_a_value() {
        let err =
            parse("{\"type\": \"authorized_user\", \"refresh_token\": \"1//secret\"").unwrap_err();
        assert!(err.contains("not a JSON credential file"), "{err}");
        let err = parse(r#"{"type":"gdch_service_account"}"#).unwrap_err();
        assert!(
            err.contains("`gdch_service_account` is not supported"),
            "{err}"
        );
        let err =
            parse(r#"{"type":"authorized_user","client_id":"c","client_secret":"s"}"#).unwrap_err();
        assert!(err.contains("missing field `refresh_token`"), "{err}");
        let err = parse(
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":{"x":"1//secret"}}"#,
        )
        .unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        assert!(
            parse(r#"{"client_id":"c"}"#)
                .unwrap_err()
                .contains("no `type`")
        );
    }
}
