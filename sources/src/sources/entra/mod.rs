//! The `entra` source: Microsoft Entra ID access tokens for Microsoft Foundry and
//! Entra-protected gateways. `azure_identity` does every flow it offers (Azure CLI, client
//! secret, client assertion, workload identity, managed identity), over credd's own HTTP client
//! (proxy, CA bundles) and with its retries off, since credd's cache does the backing off and
//! honours `Retry-After`; the device-code flow, which it lacks, lives in [`super::oauth`].
//!
//! A fresh `azure_identity` credential is built for every fetch, so its own token cache never
//! stands between credd's refresh policy and the upstream.

mod certificate;
mod spec;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use credd_proto::{CredentialFacts, LoginPrompt, Secret};
use futures_util::future::BoxFuture;

pub use self::spec::{ENTRA_DEFAULT_SCOPE, EntraMethod, EntraSpec};
use self::transport::RecordingClient;
use super::oauth::session::KeptSession;
use super::oauth::{self, Endpoints, Grant};
use super::{Fetched, LoginIo, LoginOutcome, Source, SourceError, Token, upstream};
use crate::redact;

/// What Entra's sign-ins keep: the refresh token.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Session {
    refresh_token: Secret,
}

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// The client that device-code logins use when the config names none: the Azure CLI's public
/// client, which may ask for tokens for Azure services in any tenant.
const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

pub struct EntraSource {
    spec: EntraSpec,
    settings: Settings,
    http: crate::net::LazyOAuthClient,
    /// The device-code or browser sign-in's refresh token.
    session: KeptSession<Session>,
    clock: std::sync::Arc<crate::clock::Clock>,
}

impl EntraSource {
    pub fn new(
        name: &crate::source_name::SourceName,
        spec: EntraSpec,
        clock: std::sync::Arc<crate::clock::Clock>,
    ) -> Self {
        EntraSource {
            clock,
            http: crate::net::LazyOAuthClient::new(spec.ca_bundle.clone(), spec.timeout),
            settings: Settings::resolve(&spec),
            session: KeptSession::new(name, spec.persist),
            spec,
        }
    }

    fn http(&self) -> Result<&reqwest::Client, SourceError> {
        self.http.get().map_err(SourceError::Upstream)
    }

    fn authority(&self) -> String {
        self.settings.authority.clone()
    }

    fn tenant(&self) -> Option<String> {
        self.settings.tenant.clone()
    }

    fn client_id(&self) -> Option<String> {
        self.settings.client_id.clone()
    }

    /// A setting the method needs; resolved (and found present) when the source was built.
    fn required(&self, what: Option<String>, key: &str, var: &str) -> Result<String, SourceError> {
        what.ok_or_else(|| missing(self.spec.method, key, var))
    }

    /// The options every `azure_identity` credential gets: credd's HTTP client, no retries,
    /// the authority.
    fn client_options(&self, http: &RecordingClient) -> ClientOptions {
        let mut cloud = azure_core::cloud::CustomConfiguration::default();
        cloud.authority_host = self.authority();
        ClientOptions {
            transport: Some(Transport::new(Arc::new(http.clone()))),
            retry: RetryOptions::none(),
            cloud: Some(Arc::new(cloud.into())),
            ..Default::default()
        }
    }

    async fn fetch_token(&self, now: SystemTime) -> Result<Fetched, SourceError> {
        if let Some(problem) = self.settings.problem(self.spec.method) {
            return Err(problem);
        }
        let scopes = self.spec.scopes();
        let token = match self.spec.method {
            EntraMethod::DeviceCode | EntraMethod::Browser => {
                self.device_code_refresh(&scopes, now).await?
            }
            method => {
                let http = RecordingClient::new(self.http()?.clone());
                let (credential, secrets) = self.credential(&http)?;
                let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
                let token = credential
                    .get_token(&scope_refs, None)
                    .await
                    .map_err(|e| self.error(&e, Some(&http), &secrets))?;
                // Counted from credd's clock, so that a lifetime means the same to the cache.
                let lifetime = (token.expires_on - azure_core::time::OffsetDateTime::now_utc())
                    .whole_seconds()
                    .max(0) as u64;
                let counted = crate::policy::expires_after(now, lifetime, "Entra");
                // Token endpoints state a lifetime (`expires_in`); a managed-identity endpoint
                // states `expires_on`, by its own clock.
                let (expires_at, clock_offset_secs) = match method {
                    EntraMethod::ManagedIdentity => {
                        match http.dates().to_local(token.expires_on.into(), now) {
                            (corrected, Some(offset)) => (corrected, Some(offset)),
                            (_, None) => (counted, None),
                        }
                    }
                    _ => (counted, None),
                };
                Token {
                    secret: Secret::new(token.token.secret()),
                    expires_at,
                    clock_offset_secs,
                }
            }
        };
        Ok(self.fetched(token, &scopes))
    }

    /// A token as the cache takes it, with what `status` and the endpoints show of it.
    fn fetched(&self, token: Token, scopes: &[String]) -> Fetched {
        let facts = CredentialFacts {
            method: Some(method_name(self.spec.method).into()),
            scopes: scopes.to_vec(),
            tenant: self.tenant(),
            client_id: self.client_id(),
            ..CredentialFacts::default()
        };
        Fetched::bearer(token, facts)
    }

    /// The `azure_identity` credential for the configured method, and the secrets it was given
    /// (to scrub from its errors).
    fn credential(
        &self,
        http: &RecordingClient,
    ) -> Result<(Arc<dyn TokenCredential>, Vec<String>), SourceError> {
        let build = |e: azure_core::Error| self.error(&e, None, &[]);
        Ok(match self.spec.method {
            EntraMethod::AzureCli => {
                let options = azure_identity::AzureCliCredentialOptions {
                    tenant_id: self.spec.tenant_id.clone(),
                    ..Default::default()
                };
                (
                    azure_identity::AzureCliCredential::new(Some(options)).map_err(build)?,
                    Vec::new(),
                )
            }
            EntraMethod::ClientSecret => {
                let tenant = self.required(self.tenant(), "tenant_id", "AZURE_TENANT_ID")?;
                let client = self.required(self.client_id(), "client_id", "AZURE_CLIENT_ID")?;
                let secret = self.client_secret()?;
                let options = azure_identity::ClientSecretCredentialOptions {
                    client_options: self.client_options(http),
                };
                let credential = azure_identity::ClientSecretCredential::new(
                    &tenant,
                    client,
                    azure_core::credentials::Secret::new(secret.clone()),
                    Some(options),
                )
                .map_err(build)?;
                (credential, vec![secret])
            }
            EntraMethod::ClientCertificate => {
                let tenant = self.required(self.tenant(), "tenant_id", "AZURE_TENANT_ID")?;
                let client = self.required(self.client_id(), "client_id", "AZURE_CLIENT_ID")?;
                let path = self.settings.certificate.clone().ok_or_else(|| {
                    missing(
                        self.spec.method,
                        "certificate",
                        "AZURE_CLIENT_CERTIFICATE_PATH",
                    )
                })?;
                let audience = format!("{}/{tenant}/oauth2/v2.0/token", self.authority());
                let assertion =
                    certificate::CertificateAssertion::load(&path, audience, client.clone())
                        .map_err(SourceError::Upstream)?;
                let options = azure_identity::ClientAssertionCredentialOptions {
                    client_options: self.client_options(http),
                };
                (
                    azure_identity::ClientAssertionCredential::new(
                        tenant,
                        client,
                        assertion,
                        Some(options),
                    )
                    .map_err(build)?,
                    Vec::new(),
                )
            }
            EntraMethod::WorkloadIdentity => {
                let token_file = self.settings.federated_token_file.clone().ok_or_else(|| {
                    missing(
                        self.spec.method,
                        "federated_token_file",
                        "AZURE_FEDERATED_TOKEN_FILE",
                    )
                })?;
                if !token_file.exists() {
                    return Err(SourceError::Upstream(format!(
                        "the federated token file {} does not exist",
                        token_file.display()
                    )));
                }
                let secrets = std::fs::read_to_string(&token_file)
                    .map(|t| vec![t.trim().to_string()])
                    .unwrap_or_default();
                let options = azure_identity::WorkloadIdentityCredentialOptions {
                    credential_options: azure_identity::ClientAssertionCredentialOptions {
                        client_options: self.client_options(http),
                    },
                    client_id: Some(self.required(
                        self.client_id(),
                        "client_id",
                        "AZURE_CLIENT_ID",
                    )?),
                    tenant_id: Some(self.required(
                        self.tenant(),
                        "tenant_id",
                        "AZURE_TENANT_ID",
                    )?),
                    token_file_path: Some(token_file),
                };
                (
                    azure_identity::WorkloadIdentityCredential::new(Some(options))
                        .map_err(build)?,
                    secrets,
                )
            }
            EntraMethod::ManagedIdentity => {
                let options = azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: self
                        .spec
                        .client_id
                        .clone()
                        .map(azure_identity::UserAssignedId::ClientId),
                    client_options: self.client_options(http),
                };
                (
                    azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(build)?,
                    Vec::new(),
                )
            }
            EntraMethod::DeviceCode | EntraMethod::Browser => {
                unreachable!("credd's own sign-ins are not azure_identity flows")
            }
        })
    }

    fn client_secret(&self) -> Result<String, SourceError> {
        match &self.spec.client_secret_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|e| {
                    SourceError::Upstream(format!(
                        "cannot read the client secret file {}: {e}",
                        path.display()
                    ))
                }),
            None => env("AZURE_CLIENT_SECRET").ok_or_else(|| {
                SourceError::Upstream(
                    "method `client-secret` needs `client_secret_file` in the config (or AZURE_CLIENT_SECRET)".into(),
                )
            }),
        }
    }

    /// The tenant's v2.0 endpoints the device-code sign-in uses.
    fn endpoints(&self) -> Endpoints {
        let (host, tenant, _) = self.device_authority();
        let url = |endpoint: &str| format!("{host}/{tenant}/oauth2/v2.0/{endpoint}");
        Endpoints {
            token: url("token"),
            device_authorization: Some(url("devicecode")),
            host,
        }
    }

    fn device_authority(&self) -> (String, String, String) {
        (
            self.authority(),
            self.tenant().unwrap_or_else(|| "organizations".into()),
            self.client_id()
                .unwrap_or_else(|| AZURE_CLI_CLIENT_ID.to_string()),
        )
    }

    /// Whom a kept sign-in belongs to: this authority, tenant and client (the fields Entra's
    /// kept logins have always had).
    fn owner(&self) -> serde_json::Value {
        let (authority, tenant, client_id) = self.device_authority();
        serde_json::json!({ "authority": authority, "tenant": tenant, "client_id": client_id })
    }

    async fn device_code_refresh(
        &self,
        scopes: &[String],
        now: SystemTime,
    ) -> Result<Token, SourceError> {
        let epoch = self.session.epoch();
        let session = self.session.current(&self.owner()).await?;
        let (_, _, client) = self.device_authority();
        let tokens = oauth::refresh(
            self.http()?,
            &self.endpoints(),
            &client,
            &session.refresh_token,
            Some(&with_offline_access(scopes)),
            now,
        )
        .await;
        match tokens {
            Ok(tokens) => Ok(self.keep(tokens, epoch).await),
            Err(e @ SourceError::NeedsLogin(_)) => {
                // Refused: it will never work again, here or after a restart.
                let _ = self.session.forget().await;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps the refresh token a grant handed out (see [`KeptSession::keep`]) and returns the
    /// access token.
    async fn keep(
        &self,
        Grant {
            access, refresh, ..
        }: Grant,
        epoch: u64,
    ) -> Token {
        if let Some(refresh_token) = refresh {
            self.session
                .keep(Session { refresh_token }, &self.owner(), epoch)
                .await;
        }
        access
    }

    /// The device-code flow; its access token is the login's outcome, its refresh token is
    /// kept for the refreshes after it.
    async fn device_code_login(
        &self,
        deadline: SystemTime,
        io: LoginIo,
    ) -> Result<Fetched, SourceError> {
        let epoch = self.session.epoch();
        let (_, _, client) = self.device_authority();
        let tokens = oauth::device_login(
            self.http()?,
            &self.endpoints(),
            &client,
            &with_offline_access(&self.spec.scopes()),
            &self.clock,
            deadline,
            io.report,
        )
        .await?;
        Ok(self.fetched(self.keep(tokens, epoch).await, &self.spec.scopes()))
    }

    /// The browser sign-in: authorization code with PKCE at the tenant's v2.0 `authorize`
    /// endpoint, the answer on this machine's loopback; its access token is the login's
    /// outcome, its refresh token is kept as a device code's is.
    async fn browser_login(
        &self,
        deadline: SystemTime,
        io: LoginIo,
    ) -> Result<Fetched, SourceError> {
        let epoch = self.session.epoch();
        let (host, tenant, client) = self.device_authority();
        let scopes = self.spec.scopes();
        let authorize = format!("{host}/{tenant}/oauth2/v2.0/authorize");
        let request = oauth::redirect::AuthorizationRequest {
            endpoint: &authorize,
            client_id: &client,
            scope: with_offline_access(&scopes),
            redirect_host: "localhost",
            redirect_port: self.spec.redirect_port,
            redirect_path: "/",
            extra: Vec::new(),
        };
        let (grant, _) = oauth::browser_sign_in(
            self.http()?,
            &self.endpoints(),
            request,
            &self.clock,
            deadline,
            None,
            io.report,
        )
        .await?;
        Ok(self.fetched(self.keep(grant, epoch).await, &scopes))
    }

    /// `az login` is the Azure CLI's own: show it (the client runs it when `az` is installed),
    /// then wait until a token can be had, which is the login's outcome.
    async fn azure_cli_login(
        &self,
        deadline: SystemTime,
        io: LoginIo,
    ) -> Result<Fetched, SourceError> {
        let mut command: Vec<String> = credd_proto::login_tools::AZ_LOGIN
            .map(String::from)
            .to_vec();
        if let Some(tenant) = &self.spec.tenant_id {
            command.extend(["--tenant".to_string(), tenant.clone()]);
        }
        (io.report)(LoginPrompt::Command {
            instructions: format!(
                "Log in with `{}`; credd uses the Azure CLI's login from then on.",
                command.join(" ")
            ),
            command,
            env: Vec::new(),
        });
        // `az` is asked once its files changed (or at the retry pace, where none is where the
        // Azure CLI keeps them by default).
        let config_dir = std::env::var_os("AZURE_CONFIG_DIR")
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| crate::files::home_dir().join(".azure"));
        let files = vec![
            config_dir.join("msal_token_cache.json"),
            config_dir.join("azureProfile.json"),
        ];
        super::outside_login::wait(
            &self.clock,
            deadline,
            "`az login` did not finish",
            super::outside_login::Watched::files_or_elsewhere(files),
            |now| self.fetch_token(now),
        )
        .await
    }
}

impl Source for EntraSource {
    fn kind(&self) -> &'static str {
        "entra"
    }

    fn settings_problem(&self) -> Option<SourceError> {
        self.settings.problem(self.spec.method)
    }

    fn fetch(&self, now: SystemTime) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_token(now))
    }

    fn logout(&self) -> Option<BoxFuture<'_, Result<Option<String>, SourceError>>> {
        self.spec.method.signs_in_here().then(|| {
            Box::pin(async move {
                self.session.forget().await.map(|()| None).map_err(|e| {
                    SourceError::Upstream(format!(
                        "the login is forgotten here, but the OS secret store kept it ({e}); it would come back at the next start"
                    ))
                })
            }) as BoxFuture<'_, _>
        })
    }

    fn persistence(&self) -> Option<String> {
        self.session.persistence()
    }

    fn login(&self, deadline: SystemTime, io: LoginIo) -> Option<BoxFuture<'_, LoginOutcome>> {
        match self.spec.method {
            EntraMethod::DeviceCode => Some(Box::pin(async move {
                self.device_code_login(deadline, io).await.map(Some)
            })),
            EntraMethod::Browser => Some(Box::pin(async move {
                self.browser_login(deadline, io).await.map(Some)
            })),
            EntraMethod::AzureCli => Some(Box::pin(async move {
                self.azure_cli_login(deadline, io).await.map(Some)
            })),
            _ => None,
        }
    }
}

pub fn method_name(method: EntraMethod) -> &'static str {
    match method {
        EntraMethod::AzureCli => "azure-cli",
        EntraMethod::ClientSecret => "client-secret",
        EntraMethod::ClientCertificate => "client-certificate",
        EntraMethod::WorkloadIdentity => "workload-identity",
        EntraMethod::ManagedIdentity => "managed-identity",
        EntraMethod::DeviceCode => "device-code",
        EntraMethod::Browser => "browser",
    }
}

/// The scopes of a device-code sign-in, with the refresh token that keeps it.
fn with_offline_access(scopes: &[String]) -> String {
    let mut scope = scopes.join(" ");
    if !scopes.iter().any(|s| s == "offline_access") {
        scope.push_str(" offline_access");
    }
    scope
}

/// Entra's descriptions run on with trace and correlation ids; the first line says it.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn missing(method: EntraMethod, key: &str, var: &str) -> SourceError {
    SourceError::Misconfigured(format!(
        "method `{}` needs `{key}` in the config (or {var})",
        method_name(method)
    ))
}

/// The source's settings with their environment fallbacks, read once when it is built (the
/// daemon's environment does not change under it).
struct Settings {
    authority: String,
    tenant: Option<String>,
    client_id: Option<String>,
    certificate: Option<PathBuf>,
    federated_token_file: Option<PathBuf>,
}

impl Settings {
    fn resolve(spec: &EntraSpec) -> Self {
        Settings {
            authority: spec
                .authority
                .clone()
                .or_else(|| env("AZURE_AUTHORITY_HOST"))
                .unwrap_or_else(|| DEFAULT_AUTHORITY.to_string())
                .trim_end_matches('/')
                .to_string(),
            tenant: spec.tenant_id.clone().or_else(|| env("AZURE_TENANT_ID")),
            client_id: spec.client_id.clone().or_else(|| env("AZURE_CLIENT_ID")),
            certificate: spec
                .certificate
                .clone()
                .or_else(|| env("AZURE_CLIENT_CERTIFICATE_PATH").map(PathBuf::from)),
            federated_token_file: spec
                .federated_token_file
                .clone()
                .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from)),
        }
    }

    /// The first setting `method` needs and does not have: the app's tenant and client id,
    /// and for two methods one more.
    fn problem(&self, method: EntraMethod) -> Option<SourceError> {
        let third = match method {
            EntraMethod::ClientSecret => None,
            EntraMethod::ClientCertificate => Some((
                "certificate",
                "AZURE_CLIENT_CERTIFICATE_PATH",
                self.certificate.is_some(),
            )),
            EntraMethod::WorkloadIdentity => Some((
                "federated_token_file",
                "AZURE_FEDERATED_TOKEN_FILE",
                self.federated_token_file.is_some(),
            )),
            _ => return None,
        };
        [
            ("tenant_id", "AZURE_TENANT_ID", self.tenant.is_some()),
            ("client_id", "AZURE_CLIENT_ID", self.client_id.is_some()),
        ]
        .into_iter()
        .chain(third)
        .find(|(_, _, present)| !present)
        .map(|(key, var, _)| missing(method, key, var))
    }
}

impl EntraSource {
    /// An `azure_identity` error, as credd reports it: what the host that answered said (Entra's
    /// AADSTS code names the problem: an expired secret, an unknown tenant or client), scrubbed
    /// of `secrets`; 429 becomes [`SourceError::Throttled`] with the upstream's `Retry-After`;
    /// a timeout or a refused connection says so; the Azure CLI's "run az login" needs a login.
    fn error(
        &self,
        error: &azure_core::Error,
        http: Option<&RecordingClient>,
        secrets: &[String],
    ) -> SourceError {
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let host = http
            .and_then(RecordingClient::last_origin)
            .unwrap_or_else(|| self.authority());
        if let Some(failure) = http.and_then(RecordingClient::last_failure) {
            return match upstream::classify(
                &host,
                failure.status,
                failure.refusal.as_ref(),
                failure.retry_after,
                &secrets,
            ) {
                upstream::Verdict::Failed(e) => e,
                _ => SourceError::Upstream(format!("{host} answered HTTP {}", failure.status)),
            };
        }
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(err) = current {
            if let Some(http) = err.downcast_ref::<reqwest::Error>() {
                let why = if http.is_timeout() {
                    "did not answer in time (timed out)"
                } else if http.is_connect() {
                    "cannot be reached"
                } else {
                    "failed"
                };
                return SourceError::Upstream(format!("{host} {why}"));
            }
            current = err.source();
        }
        let message = redact::redact(&first_line(&error.to_string()), &secrets);
        if self.spec.method == EntraMethod::AzureCli && message.contains("az login") {
            return SourceError::NeedsLogin(message);
        }
        SourceError::Upstream(message)
    }
}
