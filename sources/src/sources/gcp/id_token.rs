//! ID tokens for one audience (`credd get S --audience A`, the metadata server's `identity`
//! path), for services that take Google-signed OIDC tokens: Cloud Run, IAP, an LLM gateway
//! behind either. Google signs them for a service account only, so they come from a
//! `service_account` key (the JWT-bearer grant with `target_audience`) or by impersonating one
//! (`generateIdToken`): an `impersonated_service_account` file, or `impersonate` in the config
//! with any credential as the source. A source of its own, so each audience is cached and kept
//! fresh by the same policy as the access token.

use std::time::SystemTime;

use credd_proto::CredentialFacts;
use futures_util::future::BoxFuture;

use super::GCP_DEFAULT_SCOPE;
use super::adc::{self, CredentialFile};
use super::{GcpSource, exchange};
use crate::sources::{Fetched, Source, SourceError};

pub struct GcpIdTokenSource {
    base: GcpSource,
    audience: String,
}

impl GcpIdTokenSource {
    pub fn new(base: GcpSource, audience: String) -> Self {
        GcpIdTokenSource { base, audience }
    }

    async fn fetch_id_token(&self, now: SystemTime) -> Result<Fetched, SourceError> {
        let spec = &self.base.spec;
        let located = self.base.credentials.existing()?;
        let file = adc::read(&located.path)?;
        let http = self.base.http()?;
        // The token that asks IAM needs the IAM scope, whatever the source's scopes are.
        let iam_scope = [GCP_DEFAULT_SCOPE.to_string()];
        let (token, account) = match (&spec.impersonate, &file) {
            (Some(target), _) => {
                let (source, _) = self.base.token_for(http, &file, &iam_scope, now).await?;
                let url = exchange::id_token_url(&spec.iam_endpoint, target);
                let token = exchange::generate_id_token(
                    http,
                    &url,
                    &source,
                    &self.audience,
                    &spec.delegates,
                    now,
                )
                .await?;
                (token, target.clone())
            }
            (None, CredentialFile::ServiceAccount(key)) => {
                let token = exchange::jwt_bearer_id_token(http, key, &self.audience, now).await?;
                (token, key.client_email.clone())
            }
            (None, CredentialFile::ImpersonatedServiceAccount(imp)) => {
                let url = exchange::id_token_url_beside(&imp.service_account_impersonation_url)
                    .ok_or_else(|| {
                        SourceError::Upstream(format!(
                            "the service_account_impersonation_url in {} does not end in :generateAccessToken, so credd cannot tell where to ask for ID tokens",
                            located.path.display()
                        ))
                    })?;
                let (source, _) = self
                    .base
                    .token_for(http, &imp.source_credentials, &iam_scope, now)
                    .await?;
                let token = exchange::generate_id_token(
                    http,
                    &url,
                    &source,
                    &self.audience,
                    &imp.delegates,
                    now,
                )
                .await?;
                let account = exchange::impersonated_account(&url).unwrap_or_default();
                (token, account.to_string())
            }
            (None, other) => {
                return Err(SourceError::Misconfigured(format!(
                    "Google signs ID tokens only for service accounts, and {} holds `{}` credentials: set `impersonate = \"SERVICE_ACCOUNT_EMAIL\"` for this source in credd's config (the account needs roles/iam.serviceAccountTokenCreator on it), or use a service-account key",
                    located.path.display(),
                    other.type_name()
                )));
            }
        };
        let facts = CredentialFacts {
            credential_type: Some(file.type_name().into()),
            credentials_file: Some(located.path.display().to_string()),
            audience: Some(self.audience.clone()),
            account: Some(account),
            ..CredentialFacts::default()
        };
        Ok(Fetched::bearer(token, facts))
    }
}

impl Source for GcpIdTokenSource {
    fn kind(&self) -> &'static str {
        "gcp"
    }

    fn fetch(&self, now: SystemTime) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_id_token(now))
    }

    fn watched_files(&self) -> Vec<crate::filewatch::Target> {
        self.base.watched_files()
    }
}
