//! The config file: named sources, each with a `kind` and that kind's settings.
//!
//! ```toml
//! [sources.gateway]
//! kind = "exec"
//! command = ["op", "read", "op://team/litellm/key"]   # argv, no shell
//! ttl = "1h"        # used when the output carries no expiry
//! timeout = "30s"
//! ```
//!
//! Parsing never half-applies: a file either yields a whole [`Config`] or a [`ConfigError`] that
//! names the file, line and column, and the caller keeps the config it had.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Environment variable that overrides the config path.
pub const CONFIG_ENV: &str = "CREDD_CONFIG";

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub sources: BTreeMap<String, SourceSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    Exec(ExecSpec),
    Aws(AwsSpec),
    Gcp(GcpSpec),
    Entra(EntraSpec),
}

/// The scope Microsoft Foundry (Azure AI) tokens are asked for by default.
pub const ENTRA_DEFAULT_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// How an `entra` source gets its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntraMethod {
    /// The user's `az login`, through `az account get-access-token`.
    AzureCli,
    /// A service principal's client secret.
    ClientSecret,
    /// A service principal's certificate (a signed client assertion).
    ClientCertificate,
    /// A federated token file (AKS workload identity, CI).
    WorkloadIdentity,
    /// The Azure host's managed identity.
    ManagedIdentity,
    /// An interactive device-code login through `credd login`.
    DeviceCode,
}

/// Microsoft Entra ID tokens (Microsoft Foundry, Entra-protected gateways).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraSpec {
    pub method: EntraMethod,
    /// The tenant; defaults to `AZURE_TENANT_ID`.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The application (client) ID; defaults to `AZURE_CLIENT_ID`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// One scope, or
    #[serde(default)]
    pub scope: Option<String>,
    /// several; by default Foundry's.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The Microsoft identity platform's host; defaults to `AZURE_AUTHORITY_HOST`, then
    /// `https://login.microsoftonline.com`.
    #[serde(default)]
    pub authority: Option<String>,
    /// `client-secret`: a file holding the secret; defaults to `AZURE_CLIENT_SECRET`.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// `client-certificate`: a PEM file with the certificate and its private key; defaults to
    /// `AZURE_CLIENT_CERTIFICATE_PATH`.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// `workload-identity`: the federated token file; defaults to `AZURE_FEDERATED_TOKEN_FILE`.
    #[serde(default)]
    pub federated_token_file: Option<PathBuf>,
    /// How long one upstream call may take.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Serve this source on an Azure managed-identity endpoint too (`IDENTITY_ENDPOINT`).
    #[serde(default)]
    pub identity_endpoint: Option<EndpointSpec>,
    /// A PEM file of CA certificates to trust for this source's upstreams, besides the system's.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
}

impl EntraSpec {
    /// The scopes asked for: `scope`, `scopes`, or Foundry's.
    pub fn scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = self.scope.iter().cloned().collect();
        scopes.extend(self.scopes.iter().cloned());
        if scopes.is_empty() {
            scopes.push(ENTRA_DEFAULT_SCOPE.to_string());
        }
        scopes
    }
}

/// The scope Google's client libraries ask for by default; it covers Vertex AI.
pub const GCP_DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Google Application Default Credentials, resolved the way Google's libraries do, or a named
/// credential file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpSpec {
    /// A credential file to use instead of Application Default Credentials.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// OAuth scopes of the access token.
    #[serde(default = "default_gcp_scopes")]
    pub scopes: Vec<String>,
    /// A service account to impersonate with the credentials found (IAM Credentials API).
    #[serde(default)]
    pub impersonate: Option<String>,
    /// Service accounts in the delegation chain for `impersonate`.
    #[serde(default)]
    pub delegates: Vec<String>,
    /// Where the IAM Credentials API is reached for `impersonate` (a Private Service Connect
    /// endpoint, say).
    #[serde(default = "default_iam_endpoint")]
    pub iam_endpoint: String,
    /// The project billed for quota; defaults to the credential file's `quota_project_id`.
    #[serde(default)]
    pub quota_project: Option<String>,
    /// The project reported to callers (the metadata endpoint's `project-id`); defaults to the
    /// credential file's project, then `GOOGLE_CLOUD_PROJECT`.
    #[serde(default)]
    pub project: Option<String>,
    /// Lets `external_account` files with an `executable` source run their command, as
    /// `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1` does for Google's libraries.
    #[serde(default)]
    pub allow_executables: bool,
    /// How long one upstream call may take.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Serve this source on a GCE metadata endpoint too (`GCE_METADATA_HOST`).
    #[serde(default)]
    pub metadata_endpoint: Option<EndpointSpec>,
    /// A PEM file of CA certificates to trust for this source's upstreams, besides the system's.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
}

fn default_gcp_scopes() -> Vec<String> {
    vec![GCP_DEFAULT_SCOPE.to_string()]
}

fn default_iam_endpoint() -> String {
    "https://iamcredentials.googleapis.com".to_string()
}

/// AWS credentials for a profile of `~/.aws/config`, resolved the way the AWS CLI does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSpec {
    /// The profile's name in the AWS config files.
    pub profile: String,
    /// Region for STS; defaults to the profile's `region`, then `AWS_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    /// Lifetime asked of STS for session credentials made from long-term keys, and assumed for
    /// credentials that state no expiry.
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub duration: Duration,
    /// How long one refresh (every STS and SSO call it makes) may take.
    #[serde(default = "default_aws_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Serve this source on the AWS container-credentials endpoint too.
    #[serde(default)]
    pub container_endpoint: Option<EndpointSpec>,
    /// A PEM file of CA certificates to trust for this source's upstreams, besides the
    /// system's (a corporate TLS-inspecting proxy's CA, say).
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
}

/// A local HTTP endpoint for a source (127.0.0.1 only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// The port; by default one derived from the source's name, so it stays the same across
    /// restarts.
    #[serde(default)]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// The program and its arguments; run directly, never through a shell.
    pub command: Vec<String>,
    /// Lifetime of a credential whose output states no expiry.
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub ttl: Duration,
    /// How long the command may run before it is killed.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}

fn default_aws_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({e}); write it like \"90s\", \"10m\" or \"1h\""
        ))
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The config path: `CREDD_CONFIG`, else `credd/config.toml` in the user's config directory.
pub fn default_path() -> PathBuf {
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    directories::ProjectDirs::from("", "", "credd")
        .map(|d| d.config_dir().join("config.toml"))
        .unwrap_or_else(|| PathBuf::from("credd.toml"))
}

/// Reads the config file. A missing file is an empty config: the daemon runs and says which
/// file to write when a source is asked for.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(ConfigError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }),
    }
}

pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let at = |offset: usize, message: String| {
        let (line, column) = line_column(text, offset);
        ConfigError {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let config: Config = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        at(offset, e.message().trim().to_string())
    })?;
    for (name, spec) in &config.sources {
        let table = text.find(&format!("[sources.{name}]")).unwrap_or(0);
        if !valid_name(name) {
            return Err(at(
                table,
                format!("source name `{name}` may use only letters, digits, `-`, `_` and `.`"),
            ));
        }
        match spec {
            SourceSpec::Exec(exec) => {
                if exec.command.first().is_none_or(|p| p.is_empty()) {
                    return Err(at(
                        table,
                        format!("source `{name}`: `command` must name a program"),
                    ));
                }
                if exec.ttl.is_zero() || exec.timeout.is_zero() {
                    return Err(at(
                        table,
                        format!("source `{name}`: `ttl` and `timeout` must be longer than zero"),
                    ));
                }
            }
            SourceSpec::Gcp(gcp) => {
                if gcp.scopes.is_empty() || gcp.scopes.iter().any(|s| s.trim().is_empty()) {
                    return Err(at(
                        table,
                        format!("source `{name}`: `scopes` must name at least one scope"),
                    ));
                }
                if gcp.impersonate.as_ref().is_some_and(|sa| !sa.contains('@')) {
                    return Err(at(
                        table,
                        format!("source `{name}`: `impersonate` must be a service account's email"),
                    ));
                }
                if gcp.timeout.is_zero() {
                    return Err(at(
                        table,
                        format!("source `{name}`: `timeout` must be longer than zero"),
                    ));
                }
            }
            SourceSpec::Entra(entra) => {
                if entra.scope.is_some() && !entra.scopes.is_empty() {
                    return Err(at(
                        table,
                        format!("source `{name}`: give `scope` or `scopes`, not both"),
                    ));
                }
                if entra.scopes().iter().any(|s| s.trim().is_empty()) {
                    return Err(at(table, format!("source `{name}`: a scope is empty")));
                }
                if entra.timeout.is_zero() {
                    return Err(at(
                        table,
                        format!("source `{name}`: `timeout` must be longer than zero"),
                    ));
                }
            }
            SourceSpec::Aws(aws) => {
                if aws.profile.trim().is_empty() {
                    return Err(at(
                        table,
                        format!("source `{name}`: `profile` must name an AWS profile"),
                    ));
                }
                if aws.timeout.is_zero() {
                    return Err(at(
                        table,
                        format!("source `{name}`: `timeout` must be longer than zero"),
                    ));
                }
                if !(900..=129_600).contains(&aws.duration.as_secs()) {
                    return Err(at(
                        table,
                        format!(
                            "source `{name}`: `duration` must be between 15m and 36h, as STS accepts"
                        ),
                    ));
                }
            }
        }
    }
    Ok(config)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl SourceSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Exec(_) => "exec",
            SourceSpec::Aws(_) => "aws",
            SourceSpec::Gcp(_) => "gcp",
            SourceSpec::Entra(_) => "entra",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("config.toml"), text)
    }

    #[test]
    fn reads_an_exec_source() {
        let c = parse_str(
            r#"
[sources.gateway]
kind = "exec"
command = ["op", "read", "op://team/litellm/key"]
ttl = "1h"
timeout = "30s"
"#,
        )
        .unwrap();
        let SourceSpec::Exec(e) = &c.sources["gateway"] else {
            panic!("not an exec source")
        };
        assert_eq!(e.command[0], "op");
        assert_eq!(e.ttl, Duration::from_secs(3600));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse_str("[sources.gateway]\nkind = \"exec\"\ncommand = [\"a\"\n").unwrap_err();
        assert_eq!(err.path, Path::new("config.toml"));
        assert!(err.line >= 3, "{err}");
        assert!(err.to_string().starts_with("config.toml:"), "{err}");
    }

    #[test]
    fn bad_durations_and_unknown_kinds_are_explained() {
        let err = parse_str("[sources.g]\nkind = \"exec\"\ncommand = [\"a\"]\nttl = \"soon\"\n")
            .unwrap_err();
        assert!(err.message.contains("not a duration"), "{err}");
        let err = parse_str("[sources.g]\nkind = \"carrier-pigeon\"\n").unwrap_err();
        assert!(err.message.contains("carrier-pigeon"), "{err}");
    }

    #[test]
    fn empty_command_is_refused_at_its_table() {
        let err = parse_str("\n\n[sources.g]\nkind = \"exec\"\ncommand = []\n").unwrap_err();
        assert_eq!(err.line, 3, "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            parse_str("[sources.g]\nkind = \"exec\"\ncommand = [\"a\"]\ncomand = 1\n").unwrap_err();
        assert!(err.message.contains("comand"), "{err}");
    }
}
