//! The `gcp` source: an OAuth access token from Google Application Default Credentials (or a
//! named credential file) of any type Google documents, optionally impersonating a service
//! account, with the expiry the token endpoint stated, so that the cache refreshes it on time.
//!
//! Why not a Google auth crate: `google-cloud-auth` covers these types but hands out only the
//! token string (its expiry is crate-private) and refreshes on its own timer, out of reach of
//! credd's refresh policy, backoff and clock; `yup-oauth2` and `gcp_auth` hard-code the
//! `authorized_user` token URL and lack executable-sourced accounts. So the exchanges live in
//! [`exchange`], built on `reqwest` and `jsonwebtoken`.

pub mod adc;
pub mod exchange;
pub mod id_token;
pub mod spec;
mod subject_token;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use credd_proto::{CredentialFacts, LoginPrompt};
use futures_util::future::BoxFuture;

use self::adc::{CredentialFile, Located};
pub use self::spec::{GCP_DEFAULT_SCOPE, GcpSpec};
use super::{Fetched, LoginIo, LoginOutcome, Source, SourceError, Token, outside_login};
use crate::filewatch::Target;

/// What `credd login` runs for gcloud's Application Default Credentials.
pub use credd_proto::login_tools::GCLOUD_LOGIN;

pub struct GcpSource {
    spec: GcpSpec,
    /// The `oidc` source of a workforce identity, among the others.
    others: std::sync::Arc<dyn super::OtherSources>,
    /// Where the credential file is, resolved once from the config and the environment.
    credentials: Located,
    /// The project the environment names (`GOOGLE_CLOUD_PROJECT`, ...), read once.
    env_project: Option<String>,
    http: crate::net::LazyOAuthClient,
    clock: std::sync::Arc<crate::clock::Clock>,
}

/// Where Google's libraries look for the project when nothing else names it, in their order.
const PROJECT_VARIABLES: [&str; 3] = [
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "CLOUDSDK_CORE_PROJECT",
];

impl GcpSource {
    pub fn new(
        spec: GcpSpec,
        clock: std::sync::Arc<crate::clock::Clock>,
        others: std::sync::Arc<dyn super::OtherSources>,
    ) -> Self {
        GcpSource {
            clock,
            others,
            http: crate::net::LazyOAuthClient::new(spec.ca_bundle.clone(), spec.timeout),
            credentials: adc::intended(spec.credentials_file.as_deref()),
            env_project: PROJECT_VARIABLES
                .iter()
                .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty())),
            spec,
        }
    }

    fn http(&self) -> Result<&reqwest::Client, SourceError> {
        self.http.get().map_err(SourceError::Upstream)
    }

    async fn fetch_token(&self, now: SystemTime) -> Result<Fetched, SourceError> {
        if let Some(workforce) = &self.spec.workforce {
            return self.workforce_token(workforce, now).await;
        }
        let located = self.credentials.existing()?;
        let file = adc::read(&located.path)?;
        let http = self.http()?;
        let (mut token, mut account) = self.token_for(http, &file, &self.spec.scopes, now).await?;
        if let Some(target) = &self.spec.impersonate {
            // The token that impersonates needs the IAM scope, whatever the caller wants.
            let (source, _) = self
                .token_for(http, &file, &[GCP_DEFAULT_SCOPE.to_string()], now)
                .await?;
            token = self.impersonate(http, target, &source, now).await?;
            account = Some(target.clone());
        }
        Ok(Fetched::bearer(token, self.facts(located, &file, account)))
    }

    /// A token for the service account `target` (the config's `impersonate`), made with
    /// `source` (which has the IAM scope).
    async fn impersonate(
        &self,
        http: &reqwest::Client,
        target: &str,
        source: &Token,
        now: SystemTime,
    ) -> Result<Token, SourceError> {
        let url = exchange::impersonation_url(&self.spec.iam_endpoint, target);
        exchange::generate_access_token(
            http,
            &url,
            source,
            &self.spec.scopes,
            &self.spec.delegates,
            exchange::IMPERSONATED_LIFETIME,
            now,
        )
        .await
    }

    /// Workforce identity federation: the `oidc` source's ID token exchanged at Google's STS
    /// for the workforce pool provider's token (billed to `user_project`), then a service
    /// account impersonated with it when the config says so.
    async fn workforce_token(
        &self,
        workforce: &spec::WorkforceSpec,
        now: SystemTime,
    ) -> Result<Fetched, SourceError> {
        let oidc = &workforce.oidc;
        let (subject, id) = super::signed_in_token(&*self.others, oidc).await?;
        let http = self.http()?;
        let impersonating = self.spec.impersonate.as_ref();
        let sts_scopes = [GCP_DEFAULT_SCOPE.to_string()];
        let exchange = exchange::Exchange {
            token_url: &workforce.token_url,
            audience: &workforce.audience,
            subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
            scopes: if impersonating.is_some() {
                &sts_scopes
            } else {
                &self.spec.scopes
            },
            client: None,
            workforce_pool_user_project: Some(&workforce.user_project),
        };
        let mut token = exchange::sts_exchange(http, &exchange, subject.expose(), now).await?;
        let mut account = id.subject.clone();
        if let Some(target) = impersonating {
            token = self.impersonate(http, target, &token, now).await?;
            account = Some(target.clone());
        }
        let facts = CredentialFacts {
            credential_type: Some("workforce_identity".into()),
            scopes: self.spec.scopes.clone(),
            account,
            project: self
                .spec
                .project
                .clone()
                .or_else(|| Some(workforce.user_project.clone())),
            quota_project: self
                .spec
                .quota_project
                .clone()
                .or_else(|| Some(workforce.user_project.clone())),
            issuer: id.issuer.clone(),
            ..CredentialFacts::default()
        };
        Ok(Fetched::bearer(token, facts))
    }

    /// A token made with the credential `file` describes, and the account it acts as when
    /// known.
    fn token_for<'a>(
        &'a self,
        http: &'a reqwest::Client,
        file: &'a CredentialFile,
        scopes: &'a [String],
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(Token, Option<String>), SourceError>> {
        Box::pin(async move {
            match file {
                CredentialFile::AuthorizedUser(user) => {
                    let token_uri = user.token_uri.as_deref().unwrap_or(adc::DEFAULT_TOKEN_URI);
                    let token = exchange::refresh_grant(
                        http,
                        token_uri,
                        (&user.client_id, &user.client_secret),
                        exchange::ClientAuth::Form,
                        &user.refresh_token,
                        now,
                    )
                    .await?;
                    Ok((token, user.account.clone()))
                }
                CredentialFile::ServiceAccount(key) => {
                    let token = exchange::jwt_bearer_grant(http, key, scopes, now).await?;
                    Ok((token, Some(key.client_email.clone())))
                }
                CredentialFile::ExternalAccount(ext) => {
                    let subject =
                        subject_token::fetch(http, ext, self.spec.allow_executables, now).await?;
                    let impersonating = ext.service_account_impersonation_url.as_deref();
                    let sts_scopes = [GCP_DEFAULT_SCOPE.to_string()];
                    let exchange = exchange::Exchange {
                        token_url: ext
                            .token_url
                            .as_deref()
                            .unwrap_or("https://sts.googleapis.com/v1/token"),
                        audience: &ext.audience,
                        subject_token_type: &ext.subject_token_type,
                        scopes: if impersonating.is_some() {
                            &sts_scopes
                        } else {
                            scopes
                        },
                        client: ext.client_id.as_deref().zip(ext.client_secret.as_deref()),
                        workforce_pool_user_project: ext.workforce_pool_user_project.as_deref(),
                    };
                    let federated = exchange::sts_exchange(http, &exchange, &subject, now).await?;
                    match impersonating {
                        None => Ok((federated, None)),
                        Some(url) => {
                            let lifetime = ext
                                .service_account_impersonation
                                .as_ref()
                                .and_then(|o| o.token_lifetime_seconds)
                                .map_or(exchange::IMPERSONATED_LIFETIME, Duration::from_secs);
                            let token = exchange::generate_access_token(
                                http,
                                url,
                                &federated,
                                scopes,
                                &[],
                                lifetime,
                                now,
                            )
                            .await?;
                            Ok((
                                token,
                                exchange::impersonated_account(url).map(str::to_string),
                            ))
                        }
                    }
                }
                CredentialFile::ExternalAccountAuthorizedUser(user) => {
                    let token = exchange::refresh_grant(
                        http,
                        &user.token_url,
                        (&user.client_id, &user.client_secret),
                        exchange::ClientAuth::Basic,
                        &user.refresh_token,
                        now,
                    )
                    .await?;
                    Ok((token, None))
                }
                CredentialFile::ImpersonatedServiceAccount(imp) => {
                    let (source, _) = self
                        .token_for(
                            http,
                            &imp.source_credentials,
                            &[GCP_DEFAULT_SCOPE.to_string()],
                            now,
                        )
                        .await?;
                    let token = exchange::generate_access_token(
                        http,
                        &imp.service_account_impersonation_url,
                        &source,
                        scopes,
                        &imp.delegates,
                        exchange::IMPERSONATED_LIFETIME,
                        now,
                    )
                    .await?;
                    let account =
                        exchange::impersonated_account(&imp.service_account_impersonation_url)
                            .map(str::to_string);
                    Ok((token, account))
                }
            }
        })
    }

    /// What `status`, `--format json` and the metadata endpoint show of a token made from
    /// `file`.
    fn facts(
        &self,
        located: &Located,
        file: &CredentialFile,
        account: Option<String>,
    ) -> CredentialFacts {
        CredentialFacts {
            credential_type: Some(file.type_name().into()),
            credentials_file: Some(located.path.display().to_string()),
            scopes: self.spec.scopes.clone(),
            account,
            project: self.project(file),
            quota_project: self
                .spec
                .quota_project
                .clone()
                .or_else(|| file.quota_project().map(str::to_string)),
            ..CredentialFacts::default()
        }
    }

    /// The project: the config's, the file's, then the environment's, as Google's libraries
    /// look for it.
    fn project(&self, file: &CredentialFile) -> Option<String> {
        self.spec
            .project
            .clone()
            .or_else(|| file.project().map(str::to_string))
            .or_else(|| self.env_project.clone())
    }

    /// The login: show how to log in (gcloud's ADC login, or replacing a named file), then wait
    /// until the credential file changes and yields a token, which is the login's outcome.
    async fn login(&self, deadline: SystemTime, io: LoginIo) -> Result<Fetched, SourceError> {
        let watched = self.credentials.path.clone();
        let prompt = login_prompt(&watched, self.spec.credentials_file.is_some());
        (io.report)(prompt);
        let unfinished = format!("no new credentials appeared in {}", watched.display());
        outside_login::wait(
            &self.clock,
            deadline,
            &unfinished,
            outside_login::Watched::files(vec![watched]),
            |now| self.fetch_token(now),
        )
        .await
    }
}

/// How to get new credentials into `file`: gcloud writes `application_default_credentials.json`
/// in its config directory, so a file of that name anywhere is one `CLOUDSDK_CONFIG` away;
/// `GOOGLE_APPLICATION_CREDENTIALS` and other named files are replaced by the person.
fn login_prompt(file: &std::path::Path, configured: bool) -> LoginPrompt {
    let env_named = !configured
        && std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").is_some_and(|p| !p.is_empty());
    let gcloud_writes_it = file.file_name() == Some(adc::ADC_FILE_NAME.as_ref()) && !env_named;
    if !gcloud_writes_it {
        return LoginPrompt::Command {
            command: Vec::new(),
            env: Vec::new(),
            instructions: format!(
                "The credential file {} is missing or was refused; replace it with a valid one (a new key, or a new login) and credd picks it up by itself.",
                file.display()
            ),
        };
    }
    let mut env = Vec::new();
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    if dir != adc::gcloud_config_dir() {
        env.push(format!("CLOUDSDK_CONFIG={}", dir.display()));
    }
    LoginPrompt::Command {
        command: GCLOUD_LOGIN.iter().map(|s| s.to_string()).collect(),
        instructions: format!(
            "Log in with `{}{}` (it writes {}); credd picks the new credentials up by itself.",
            env.first().map(|e| format!("{e} ")).unwrap_or_default(),
            GCLOUD_LOGIN.join(" "),
            file.display()
        ),
        env,
    }
}

impl Source for GcpSource {
    fn kind(&self) -> &'static str {
        "gcp"
    }

    fn fetch(&self, now: SystemTime) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_token(now))
    }

    fn login(&self, deadline: SystemTime, io: LoginIo) -> Option<BoxFuture<'_, LoginOutcome>> {
        // A workforce identity signs in where its `oidc` source does (the daemon sends the
        // login there).
        self.spec.workforce.is_none().then(|| {
            Box::pin(async move { GcpSource::login(self, deadline, io).await.map(Some) })
                as BoxFuture<'_, LoginOutcome>
        })
    }

    fn watched_files(&self) -> Vec<Target> {
        if self.spec.workforce.is_some() {
            return Vec::new();
        }
        adc::watched_files(self.spec.credentials_file.as_deref())
            .iter()
            .map(|p: &PathBuf| Target::file(p))
            .collect()
    }
}
