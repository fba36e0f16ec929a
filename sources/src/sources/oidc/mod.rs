//! The `oidc` source: a person's sign-in with the company's OpenID Provider (Okta, Entra ID,
//! Auth0, Keycloak, Google...), as credd's one OpenID Connect client on the machine. One
//! browser sign-in (authorization code with PKCE, [`redirect`]) or device sign-in
//! ([`crate::sources::oauth`]) however many callers ask; then the refresh token (rotated by
//! the provider at each use, kept in memory or the OS secret store) renews the tokens with no
//! browser until the provider ends the session. Every ID token is validated ([`id_token`])
//! before anything of it is kept or served.
//!
//! It serves the ID token (default) or the access token, to a gateway: `apiKeyHelper`, the
//! proxy's `Bearer`.

mod discovery;
mod id_token;
mod spec;

use std::time::SystemTime;

use credd_proto::{CredentialFacts, Secret};
use futures_util::future::BoxFuture;

pub use self::spec::{OidcMethod, OidcSpec, ServedToken};
use super::oauth::session::KeptSession;
use super::oauth::{self, Grant, redirect};
use super::{Fetched, LoginIo, LoginOutcome, Source, SourceError, Token};

/// A sign-in that holds: the refresh token that renews it, and who signed in.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Session {
    refresh_token: Secret,
    subject: String,
    email: Option<String>,
}

pub struct OidcSource {
    spec: OidcSpec,
    http: crate::net::LazyOAuthClient,
    provider: discovery::Provider,
    session: KeptSession<Session>,
    clock: std::sync::Arc<crate::clock::Clock>,
}

impl OidcSource {
    pub fn new(
        name: &crate::source_name::SourceName,
        spec: OidcSpec,
        clock: std::sync::Arc<crate::clock::Clock>,
    ) -> Self {
        OidcSource {
            http: crate::net::LazyOAuthClient::new(spec.ca_bundle.clone(), spec.timeout),
            session: KeptSession::new(name, spec.persist),
            provider: discovery::Provider::default(),
            clock,
            spec,
        }
    }

    fn http(&self) -> Result<&reqwest::Client, SourceError> {
        self.http.get().map_err(SourceError::Upstream)
    }

    /// Whom a kept session belongs to: this issuer and client.
    fn owner(&self) -> serde_json::Value {
        serde_json::json!({ "issuer": self.spec.issuer(), "client_id": self.spec.client_id })
    }

    async fn metadata(&self) -> Result<discovery::Metadata, SourceError> {
        self.provider
            .metadata(self.http()?, self.spec.issuer())
            .await
    }

    /// Renews the tokens with the refresh token, validating the ID token that comes back.
    async fn refresh(&self, now: SystemTime) -> Result<Fetched, SourceError> {
        let epoch = self.session.epoch();
        let session = self.session.current(&self.owner()).await?;
        let metadata = self.metadata().await?;
        let grant = oauth::refresh(
            self.http()?,
            &metadata.endpoints(),
            &self.spec.client_id,
            &session.refresh_token,
            None,
            now,
        )
        .await;
        let grant = match grant {
            Ok(grant) => grant,
            Err(e @ SourceError::NeedsLogin(_)) => {
                // Refused (ended, revoked, or already used): it never works again.
                let _ = self.session.forget().await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let subject = session.subject.clone();
        let expected = id_token::Expected {
            issuer: &metadata.issuer,
            client_id: &self.spec.client_id,
            nonce: None,
            subject: Some(&subject),
            now,
        };
        self.accept(grant, &metadata, &expected, Some(session), epoch)
            .await
    }

    /// Validates a grant's ID token, keeps its session (unless a logout came between), and
    /// makes the credential served. `previous` is the session a refresh continues: its
    /// refresh token stays when the provider does not rotate it.
    async fn accept(
        &self,
        grant: Grant,
        metadata: &discovery::Metadata,
        expected: &id_token::Expected<'_>,
        previous: Option<Session>,
        epoch: u64,
    ) -> Result<Fetched, SourceError> {
        let identity = match &grant.id_token {
            Some(token) => Some(
                id_token::validate(&self.provider, self.http()?, metadata, token, expected).await?,
            ),
            None => None,
        };
        // Who signed in: the new ID token says, else (a refresh without one) the session does.
        let (subject, email) = match (&identity, &previous) {
            (Some(identity), _) => (identity.subject.clone(), identity.email.clone()),
            (None, Some(previous)) => (previous.subject.clone(), previous.email.clone()),
            (None, None) => {
                return Err(SourceError::Upstream(format!(
                    "{} answered the sign-in with no ID token; does the client allow the `openid` scope?",
                    self.spec.issuer()
                )));
            }
        };
        let token = match self.spec.token {
            ServedToken::Access => grant.access,
            ServedToken::Id => match (grant.id_token, &identity) {
                (Some(token), Some(identity)) => Token {
                    secret: token,
                    expires_at: crate::policy::expires_at_unix(
                        expected.now,
                        identity.expires_at_unix,
                        "an ID token",
                    ),
                    clock_offset_secs: None,
                },
                _ => {
                    return Err(SourceError::Upstream(format!(
                        "{} renewed the sign-in without a new ID token; set `token = \"access\"` to serve its access token",
                        self.spec.issuer()
                    )));
                }
            },
        };
        if let Some(refresh_token) = grant.refresh.or(previous.map(|p| p.refresh_token)) {
            let session = Session {
                refresh_token,
                subject: subject.clone(),
                email: email.clone(),
            };
            self.session.keep(session, &self.owner(), epoch).await;
        }
        let facts = CredentialFacts {
            method: Some(method_name(self.spec.method).into()),
            client_id: Some(self.spec.client_id.clone()),
            issuer: Some(self.spec.issuer().to_string()),
            subject: Some(email.unwrap_or(subject)),
            scopes: self.spec.scopes(),
            ..CredentialFacts::default()
        };
        Ok(Fetched::bearer(token, facts))
    }

    /// The browser sign-in: the listener, the page, the code, the exchange.
    async fn browser_login(
        &self,
        deadline: SystemTime,
        io: LoginIo,
    ) -> Result<Fetched, SourceError> {
        let epoch = self.session.epoch();
        let metadata = self.metadata().await?;
        let request = redirect::AuthorizationRequest {
            endpoint: &metadata.authorization_endpoint,
            client_id: &self.spec.client_id,
            scope: self.spec.scopes().join(" "),
            redirect_host: "127.0.0.1",
            redirect_port: self.spec.redirect_port,
            redirect_path: &self.spec.redirect_path,
            extra: self
                .spec
                .authorization_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        };
        let (grant, nonce) = oauth::browser_sign_in(
            self.http()?,
            &metadata.endpoints(),
            request,
            &self.clock,
            deadline,
            Some(self.spec.issuer()),
            io.report,
        )
        .await?;
        self.accept_sign_in(grant, &metadata, Some(&nonce), epoch)
            .await
    }

    /// Validates and keeps what a sign-in brought (`nonce`: the one its request carried).
    async fn accept_sign_in(
        &self,
        grant: Grant,
        metadata: &discovery::Metadata,
        nonce: Option<&str>,
        epoch: u64,
    ) -> Result<Fetched, SourceError> {
        let expected = id_token::Expected {
            issuer: &metadata.issuer,
            client_id: &self.spec.client_id,
            nonce,
            subject: None,
            now: self.clock.now(),
        };
        self.accept(grant, metadata, &expected, None, epoch).await
    }

    /// The device sign-in, for machines no browser can send an answer to.
    async fn device_login(
        &self,
        deadline: SystemTime,
        io: LoginIo,
    ) -> Result<Fetched, SourceError> {
        let epoch = self.session.epoch();
        let metadata = self.metadata().await?;
        let grant = oauth::device_login(
            self.http()?,
            &metadata.endpoints(),
            &self.spec.client_id,
            &self.spec.scopes().join(" "),
            &self.clock,
            deadline,
            io.report,
        )
        .await?;
        // The device grant sends no nonce.
        self.accept_sign_in(grant, &metadata, None, epoch).await
    }

    /// Asks the provider to revoke `refresh` (RFC 7009); whether it did.
    async fn revoke(&self, refresh: &Secret) -> bool {
        let Ok(metadata) = self.metadata().await else {
            return false;
        };
        let (Some(url), Ok(http)) = (&metadata.revocation_endpoint, self.http()) else {
            return false;
        };
        let request = http.post(url).form(&[
            ("token", refresh.expose()),
            ("token_type_hint", "refresh_token"),
            ("client_id", &self.spec.client_id),
        ]);
        matches!(super::upstream::send(request, self.spec.issuer()).await, Ok(reply) if reply.is_success())
    }
}

impl Source for OidcSource {
    fn kind(&self) -> &'static str {
        "oidc"
    }

    fn fetch(&self, now: SystemTime) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.refresh(now))
    }

    fn login(&self, deadline: SystemTime, io: LoginIo) -> Option<BoxFuture<'_, LoginOutcome>> {
        Some(Box::pin(async move {
            // A sign-in reads the provider's metadata and keys afresh.
            self.provider.forget();
            match self.spec.method {
                OidcMethod::Browser => self.browser_login(deadline, io).await,
                OidcMethod::DeviceCode => self.device_login(deadline, io).await,
            }
            .map(Some)
        }))
    }

    fn logout(&self) -> Option<BoxFuture<'_, Result<Option<String>, SourceError>>> {
        Some(Box::pin(async move {
            let session = self.session.current(&self.owner()).await.ok();
            let forgotten = self.session.forget().await;
            let revoked = match session {
                Some(session) => self.revoke(&session.refresh_token).await,
                None => true,
            };
            forgotten.map(|()| {
                let mut elsewhere = format!(
                    "the session at {} may still be open in the browser",
                    self.spec.issuer()
                );
                if !revoked {
                    elsewhere.push_str(", and the provider did not revoke the refresh token");
                }
                Some(elsewhere)
            }).map_err(|e| {
                SourceError::Upstream(format!(
                    "the sign-in is forgotten here, but the OS secret store kept it ({e}); it would come back at the next start"
                ))
            })
        }))
    }

    fn persistence(&self) -> Option<String> {
        self.session.persistence()
    }
}

pub fn method_name(method: OidcMethod) -> &'static str {
    match method {
        OidcMethod::Browser => "browser",
        OidcMethod::DeviceCode => "device-code",
    }
}
