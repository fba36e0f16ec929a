//! What an `entra` source's table in the config holds, and what makes it invalid.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::sources::spec::EndpointSpec;

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
    /// An interactive browser sign-in through `credd login` (authorization code with PKCE, as
    /// a public client), for tenants whose Conditional Access blocks the device code.
    Browser,
}

impl EntraMethod {
    /// Whether the person signs in through credd (and credd keeps the refresh token).
    pub fn signs_in_here(self) -> bool {
        matches!(self, EntraMethod::DeviceCode | EntraMethod::Browser)
    }
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
    #[serde(
        default = "crate::sources::spec::default_timeout",
        deserialize_with = "crate::sources::spec::duration"
    )]
    pub timeout: Duration,
    /// Serve this source on an Azure managed-identity endpoint too (`IDENTITY_ENDPOINT`).
    #[serde(default)]
    pub identity_endpoint: Option<EndpointSpec>,
    /// A PEM file of CA certificates to trust for this source's upstreams, besides the system's.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// `device-code` and `browser`: keep the login's refresh token in the OS secret store, so
    /// the login survives a restart.
    #[serde(default)]
    pub persist: Option<crate::sources::spec::Persist>,
    /// `browser`: a fixed port for the `http://localhost` redirect, for an app registered with
    /// one; any free port by default (Entra matches loopback redirects on any port).
    #[serde(default)]
    pub redirect_port: Option<u16>,
    /// Serve this source through the authenticating proxy too (see `endpoints::proxy`).
    #[serde(default)]
    pub proxy: Option<crate::sources::spec::ProxySpec>,
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

impl EntraSpec {
    /// What is wrong with the table, for the config error.
    pub fn check(&self) -> Result<(), String> {
        if self.scope.is_some() && !self.scopes.is_empty() {
            return Err("give `scope` or `scopes`, not both".into());
        }
        if self.scopes().iter().any(|s| s.trim().is_empty()) {
            return Err("a scope is empty".into());
        }
        if self.timeout.is_zero() {
            return Err("`timeout` must be longer than zero".into());
        }
        if self.proxy.as_ref().is_some_and(|p| p.upstream.is_none()) {
            return Err(
                "`proxy` needs `upstream`: the Foundry resource's URL (https://RESOURCE.services.ai.azure.com/anthropic)"
                    .into(),
            );
        }
        if self.persist.is_some() && !self.method.signs_in_here() {
            return Err(
                "`persist` keeps a device-code or browser sign-in; other methods keep nothing of their own"
                    .into(),
            );
        }
        if self.redirect_port.is_some() && self.method != EntraMethod::Browser {
            return Err("`redirect_port` applies to `method = \"browser\"` only".into());
        }
        if self.redirect_port == Some(0) {
            return Err("`redirect_port` must not be 0; leave it out for any free port".into());
        }
        Ok(())
    }
}
