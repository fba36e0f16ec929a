//! What a `gcp` source's table in the config holds, and what makes it invalid.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::sources::spec::EndpointSpec;

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
    #[serde(
        default = "crate::sources::spec::default_timeout",
        deserialize_with = "crate::sources::spec::duration"
    )]
    pub timeout: Duration,
    /// Serve this source on a GCE metadata endpoint too (`GCE_METADATA_HOST`).
    #[serde(default)]
    pub metadata_endpoint: Option<EndpointSpec>,
    /// A PEM file of CA certificates to trust for this source's upstreams, besides the system's.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// Serve this source through the authenticating proxy too (see `endpoints::proxy`).
    #[serde(default)]
    pub proxy: Option<crate::sources::spec::ProxySpec>,
    /// Workforce identity federation from an `oidc` source's sign-in, instead of a credential
    /// file: its ID token exchanged at Google's STS.
    #[serde(default)]
    pub workforce: Option<WorkforceSpec>,
}

/// `[sources.NAME.workforce]`: the workforce pool provider that trusts an `oidc` source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkforceSpec {
    /// The `oidc` source whose ID token is exchanged.
    pub oidc: String,
    /// The provider's audience:
    /// `//iam.googleapis.com/locations/global/workforcePools/POOL/providers/PROVIDER`.
    pub audience: String,
    /// The project billed for the calls (workforce identities belong to no project).
    pub user_project: String,
    /// Google's STS token endpoint.
    #[serde(default = "default_sts_token_url")]
    pub token_url: String,
}

fn default_sts_token_url() -> String {
    "https://sts.googleapis.com/v1/token".to_string()
}

fn default_gcp_scopes() -> Vec<String> {
    vec![GCP_DEFAULT_SCOPE.to_string()]
}

fn default_iam_endpoint() -> String {
    "https://iamcredentials.googleapis.com".to_string()
}

impl GcpSpec {
    /// What is wrong with the table, for the config error.
    pub fn check(&self) -> Result<(), String> {
        if self.scopes.is_empty() || self.scopes.iter().any(|s| s.trim().is_empty()) {
            return Err("`scopes` must name at least one scope".into());
        }
        if self
            .impersonate
            .as_ref()
            .is_some_and(|sa| !sa.contains('@'))
        {
            return Err("`impersonate` must be a service account's email".into());
        }
        if self.timeout.is_zero() {
            return Err("`timeout` must be longer than zero".into());
        }
        if let Some(workforce) = &self.workforce {
            if self.credentials_file.is_some() {
                return Err("give `credentials_file` or `workforce`, not both".into());
            }
            if !workforce
                .audience
                .starts_with("//iam.googleapis.com/locations/")
                || !workforce.audience.contains("/workforcePools/")
                || !workforce.audience.contains("/providers/")
            {
                return Err("`workforce.audience` must be a workforce pool provider's: //iam.googleapis.com/locations/global/workforcePools/POOL/providers/PROVIDER".into());
            }
            if workforce.user_project.trim().is_empty() {
                return Err("`workforce.user_project` must name the project billed".into());
            }
            crate::sources::spec::check_upstream(&workforce.token_url, "`workforce.token_url`")?;
        }
        Ok(())
    }
}

/// Whether `location` can name a Google Cloud location (`global`, `us-east5`, `eu`). It becomes
/// part of a host name and a path, so only lowercase letters, digits and `-` will do.
pub fn is_location_name(location: &str) -> bool {
    !location.is_empty()
        && location.len() <= 32
        && location
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workforce_table_names_a_workforce_provider_and_a_billed_project() {
        let check = |extra: &str| {
            toml::from_str::<GcpSpec>(extra)
                .map_err(|e| e.to_string())
                .and_then(|spec| spec.check())
        };
        let table = |audience: &str, project: &str| {
            format!(
                "[workforce]\noidc = \"corp\"\naudience = \"{audience}\"\nuser_project = \"{project}\"\n"
            )
        };
        let good = "//iam.googleapis.com/locations/global/workforcePools/p/providers/q";
        assert!(check(&table(good, "billed")).is_ok());
        let workload =
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q";
        assert!(
            check(&table(workload, "billed"))
                .unwrap_err()
                .contains("workforce pool provider")
        );
        assert!(
            check(&table(good, " "))
                .unwrap_err()
                .contains("user_project")
        );
        let both = format!("credentials_file = \"/f\"\n{}", table(good, "billed"));
        assert!(check(&both).unwrap_err().contains("not both"));
    }
}
