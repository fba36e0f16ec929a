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

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use credd_proto::{CredentialFacts, LoginPrompt, Secret};
use futures_util::future::BoxFuture;

pub use self::spec::{OidcMethod, OidcSpec, ServedToken};
use super::oauth::{self, Grant, redirect};
use super::{Fetched, LoginIo, LoginOutcome, Source, SourceError, Token};

/// A sign-in that holds: the refresh token that renews it, and who signed in.
#[derive(Clone)]
struct Session {
    refresh: Secret,
    subject: String,
    email: Option<String>,
}

pub struct OidcSource {
    spec: OidcSpec,
    name: crate::source_name::SourceName,
    http: crate::net::LazyOAuthClient,
    provider: discovery::Provider,
    /// In memory, and in the OS secret store with `persist = "keyring"` (never in a file).
    session: Mutex<Option<Session>>,
    kept: Option<crate::secret_store::Kept>,
    /// Bumped by every logout: a grant asked for before one keeps nothing it brings back.
    logouts: AtomicU64,
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
            kept: spec
                .persist
                .map(|crate::sources::spec::Persist::Keyring| crate::secret_store::Kept::new(name)),
            name: name.clone(),
            provider: discovery::Provider::default(),
            session: Mutex::new(None),
            logouts: AtomicU64::new(0),
            clock,
            spec,
        }
    }

    fn http(&self) -> Result<&reqwest::Client, SourceError> {
        self.http.get().map_err(SourceError::Upstream)
    }

    fn session(&self) -> Option<Session> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn metadata(&self) -> Result<discovery::Metadata, SourceError> {
        self.provider
            .metadata(self.http()?, self.spec.issuer())
            .await
    }

    /// Renews the tokens with the refresh token, validating the ID token that comes back.
    async fn refresh(&self, now: SystemTime) -> Result<Fetched, SourceError> {
        self.restore().await;
        let epoch = self.logouts.load(Ordering::SeqCst);
        let session = self.session().ok_or_else(|| {
            SourceError::NeedsLogin(if self.kept.is_some() {
                "no sign-in kept".into()
            } else {
                "no sign-in since the daemon started".into()
            })
        })?;
        let metadata = self.metadata().await?;
        let grant = oauth::refresh(
            self.http()?,
            &metadata.endpoints(),
            &self.spec.client_id,
            &session.refresh,
            None,
            now,
        )
        .await;
        let grant = match grant {
            Ok(grant) => grant,
            Err(e @ SourceError::NeedsLogin(_)) => {
                // Refused (ended, revoked, or already used): it never works again.
                let _ = self.forget().await;
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
            None if previous.is_none() => {
                return Err(SourceError::Upstream(format!(
                    "{} answered the sign-in with no ID token; does the client allow the `openid` scope?",
                    self.spec.issuer()
                )));
            }
            None => None,
        };
        let (subject, email) = match (&identity, &previous) {
            (Some(identity), _) => (identity.subject.clone(), identity.email.clone()),
            (None, Some(previous)) => (previous.subject.clone(), previous.email.clone()),
            (None, None) => unreachable!("a sign-in without an ID token was refused above"),
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
        if let Some(refresh) = grant.refresh.or(previous.map(|p| p.refresh))
            && self.logouts.load(Ordering::SeqCst) == epoch
        {
            let session = Session {
                refresh,
                subject: subject.clone(),
                email: email.clone(),
            };
            if let Some(kept) = &self.kept {
                kept.save(&self.as_kept(&session)).await;
            }
            *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
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
        let epoch = self.logouts.load(Ordering::SeqCst);
        let metadata = self.metadata().await?;
        let pending = redirect::Pending::start(redirect::AuthorizationRequest {
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
        })
        .await?;
        let expires_in_secs = deadline
            .duration_since(self.clock.now())
            .unwrap_or_default()
            .as_secs();
        (io.report)(LoginPrompt::Browser {
            url: pending.url.clone(),
            expires_in_secs,
        });
        let redirect_uri = pending.redirect_uri.clone();
        let verifier = pending.verifier.clone();
        let nonce = pending.nonce.clone();
        let code = pending
            .code(&self.clock, deadline, Some(self.spec.issuer()))
            .await?;
        let now = self.clock.now();
        let grant = oauth::exchange_code(
            self.http()?,
            &metadata.endpoints(),
            &self.spec.client_id,
            &code,
            &verifier,
            &redirect_uri,
            now,
        )
        .await?;
        let expected = id_token::Expected {
            issuer: &metadata.issuer,
            client_id: &self.spec.client_id,
            nonce: Some(&nonce),
            subject: None,
            now,
        };
        self.accept(grant, &metadata, &expected, None, epoch).await
    }

    /// The device sign-in, for machines no browser can send an answer to.
    async fn device_login(
        &self,
        deadline: SystemTime,
        io: LoginIo,
    ) -> Result<Fetched, SourceError> {
        let epoch = self.logouts.load(Ordering::SeqCst);
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
        let expected = id_token::Expected {
            issuer: &metadata.issuer,
            client_id: &self.spec.client_id,
            // The device grant sends no nonce.
            nonce: None,
            subject: None,
            now: self.clock.now(),
        };
        self.accept(grant, &metadata, &expected, None, epoch).await
    }

    /// Brings back the session the secret store kept, once per daemon.
    async fn restore(&self) {
        let Some(kept) = &self.kept else { return };
        kept.restore_once(
            |stored| match stored.and_then(|stored| self.kept_session(&stored)) {
                Some(session) => {
                    tracing::info!("a sign-in was kept from before; renewing with it");
                    *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
                }
                None => tracing::debug!("no sign-in kept for this issuer and client"),
            },
        )
        .await;
    }

    /// The session as the secret store keeps it: with the issuer and client it belongs to,
    /// so a changed config never sends its refresh token elsewhere.
    fn as_kept(&self, session: &Session) -> Secret {
        Secret::new(
            serde_json::json!({
                "issuer": self.spec.issuer(),
                "client_id": self.spec.client_id,
                "refresh_token": session.refresh.expose(),
                "subject": session.subject,
                "email": session.email,
            })
            .to_string(),
        )
    }

    fn kept_session(&self, stored: &Secret) -> Option<Session> {
        let kept: serde_json::Value = serde_json::from_str(stored.expose()).ok()?;
        if kept["issuer"] != self.spec.issuer() || kept["client_id"] != self.spec.client_id.as_str()
        {
            return None;
        }
        Some(Session {
            refresh: Secret::new(kept["refresh_token"].as_str()?),
            subject: kept["subject"].as_str()?.to_string(),
            email: kept["email"].as_str().map(str::to_string),
        })
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

    /// Drops the session, from memory and the secret store (which may still hold one from
    /// before `persist` was turned off).
    async fn forget(&self) -> Result<(), crate::secret_store::Unavailable> {
        self.logouts.fetch_add(1, Ordering::SeqCst);
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match &self.kept {
            Some(kept) => kept.delete().await,
            None => {
                let _ = crate::secret_store::Entry::new(&self.name).delete().await;
                Ok(())
            }
        }
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
            let session = self.session();
            let forgotten = self.forget().await;
            let revoked = match session {
                Some(session) => self.revoke(&session.refresh).await,
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
        self.kept.as_ref().map(crate::secret_store::Kept::describe)
    }
}

pub fn method_name(method: OidcMethod) -> &'static str {
    match method {
        OidcMethod::Browser => "browser",
        OidcMethod::DeviceCode => "device-code",
    }
}
