//! Where credentials come from: one module per source kind, behind the [`Source`] trait.
//!
//! A source knows how to ask its upstream for a fresh credential and nothing else: caching,
//! single-flight, scheduling and backoff live in `cache` and `policy`.

pub mod aws;
pub mod entra;
pub mod exec;
pub mod flow;
pub mod gcp;
pub mod oauth;
pub mod oidc;
pub mod outside_login;
pub mod spec;
pub mod upstream;

use std::sync::Arc;
use std::time::SystemTime;

use credd_proto::{CredentialFacts, CredentialSecret, LoginPrompt, Secret};
use futures_util::future::BoxFuture;

use serde::Deserialize;

use crate::clock::Clock;

use spec::ProxySpec;

/// A credential as an upstream handed it out.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub secret: CredentialSecret,
    /// On credd's clock (see [`crate::upstream_clock`]).
    pub expires_at: SystemTime,
    pub metadata: CredentialFacts,
    /// How far the upstream's clock was ahead of credd's (negative: behind), in seconds, when
    /// `expires_at` had to be corrected for it.
    pub clock_offset_secs: Option<i64>,
}

/// A bearer token (an access or ID token) as every token endpoint credd asks hands it out,
/// whichever source asked: the token, when it runs out on credd's clock, and the correction
/// that needed.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    /// On credd's clock (see [`crate::upstream_clock`]).
    pub expires_at: SystemTime,
    /// How far the upstream's clock was ahead of credd's, in seconds, when `expires_at` was
    /// corrected for it; `None` for a stated lifetime, which no clock difference affects.
    pub clock_offset_secs: Option<i64>,
}

impl Fetched {
    /// A bearer token with what is known about it.
    pub fn bearer(token: Token, metadata: CredentialFacts) -> Self {
        Fetched {
            secret: CredentialSecret::Token {
                token: token.secret,
            },
            expires_at: token.expires_at,
            metadata,
            clock_offset_secs: token.clock_offset_secs,
        }
    }
}

/// Why an upstream call failed. The message is for a person and never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Upstream(String),
    /// Only an interactive login can help.
    #[error("{0}")]
    NeedsLogin(String),
    /// The upstream asked us to wait (HTTP 429 with `Retry-After`): the next try waits at
    /// least that long.
    #[error("{0}")]
    Throttled(String, std::time::Duration),
    /// The source's settings are missing or wrong: retrying is pointless until they change.
    #[error("{0}")]
    Misconfigured(String),
    /// A bug in credd met while fetching (a panic): retried like an upstream failure.
    #[error("{0}")]
    Internal(String),
}

impl SourceError {
    /// The same error with its message made one bounded line ([`crate::redact::one_line`]):
    /// what `status`, replies and the log get.
    pub fn one_line(self) -> Self {
        let line = |m: String| crate::redact::one_line(&m);
        match self {
            SourceError::Upstream(m) => SourceError::Upstream(line(m)),
            SourceError::NeedsLogin(m) => SourceError::NeedsLogin(line(m)),
            SourceError::Throttled(m, wait) => SourceError::Throttled(line(m), wait),
            SourceError::Misconfigured(m) => SourceError::Misconfigured(line(m)),
            SourceError::Internal(m) => SourceError::Internal(line(m)),
        }
    }

    /// What the wait before the next try makes of this error.
    pub fn retry_kind(&self) -> crate::policy::Failure {
        use crate::policy::Failure;
        match self {
            SourceError::Throttled(_, asked) => Failure::Throttled(*asked),
            SourceError::Misconfigured(_) => Failure::Misconfigured,
            _ => Failure::Transient,
        }
    }

    /// The error as a caller is told it while the source backs off for `wait_secs` more: an
    /// upstream's or credd's own failure says when the next try is; the others need the
    /// person, so no wait is theirs to mention.
    pub fn retrying_in(self, wait_secs: u64) -> Self {
        match self {
            SourceError::Upstream(m) | SourceError::Throttled(m, _) => {
                SourceError::Upstream(format!("{m} (retrying in {wait_secs}s)"))
            }
            SourceError::Internal(m) => {
                SourceError::Internal(format!("{m} (retrying in {wait_secs}s)"))
            }
            other => other,
        }
    }

    /// The kind of failure a caller is told (and its exit code).
    pub fn kind(&self) -> credd_proto::ErrorKind {
        use credd_proto::ErrorKind;
        match self {
            SourceError::Upstream(_) | SourceError::Throttled(..) => ErrorKind::Upstream,
            SourceError::NeedsLogin(_) => ErrorKind::NeedsLogin,
            SourceError::Misconfigured(_) => ErrorKind::Misconfigured,
            SourceError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The message for whoever asked for `source` (the socket's callers and the endpoints
    /// alike): what failed and what to do about it.
    pub fn present(&self, source: &str) -> String {
        match self {
            SourceError::NeedsLogin(m) => {
                format!("source `{source}` needs a login: {m}; run `credd login {source}`")
            }
            SourceError::Misconfigured(m) => {
                format!(
                    "source `{source}` is misconfigured: {m}; fix its settings (see `credd status`)"
                )
            }
            SourceError::Upstream(m) | SourceError::Throttled(m, _) => {
                format!("source `{source}`: {m}; see `credd status`")
            }
            SourceError::Internal(m) => {
                format!("source `{source}`: {m}; see the daemon log")
            }
        }
    }
}

pub trait Source: Send + Sync {
    /// The kind named in the config (`exec`, `aws`, ...).
    fn kind(&self) -> &'static str;

    /// Asks the upstream for a fresh credential. `now` is the daemon's clock, for lifetimes the
    /// upstream leaves to us.
    fn fetch(&self, now: SystemTime) -> BoxFuture<'_, Result<Fetched, SourceError>>;

    /// The interactive login, for kinds that have one: reports the prompt to show as soon as it
    /// is known, and finishes when the person has approved (or the login failed or `deadline`
    /// passed), with the credential the login obtained when it obtained one (the cache takes
    /// it as it is: no second upstream call), or `None` when a fetch makes it now (a login
    /// that left a file or session behind). `None` when the kind has no interactive login.
    fn login(&self, _deadline: SystemTime, _io: LoginIo) -> Option<BoxFuture<'_, LoginOutcome>> {
        None
    }

    /// Forgets the source's own login (in memory and in the secret store), for `credd
    /// logout`, with what stays signed in elsewhere (a session another tool keeps), if
    /// anything. `None` for kinds that keep no login of their own.
    fn logout(&self) -> Option<BoxFuture<'_, Result<Option<String>, SourceError>>> {
        None
    }

    /// Where the source keeps its login, for `status`, when it is told to keep it.
    fn persistence(&self) -> Option<String> {
        None
    }

    /// What is wrong with the source's settings, found when it was built (a setting that
    /// neither the config nor the environment gives): `status` shows it before any fetch.
    fn settings_problem(&self) -> Option<SourceError> {
        None
    }

    /// Files whose change may end a failure (a login done elsewhere, a rotated key): the source
    /// is retried at once when one changes.
    fn watched_files(&self) -> Vec<crate::filewatch::Target> {
        Vec::new()
    }
}

/// What a login ends with: the credential it obtained, if it obtained one.
pub type LoginOutcome = Result<Option<Fetched>, SourceError>;

/// How a login talks to the person through `credd login`.
pub struct LoginIo {
    /// Shows what to do; called once.
    pub report: Box<dyn FnOnce(LoginPrompt) + Send>,
    /// The code the person typed, when the prompt asked for one.
    pub code: tokio::sync::oneshot::Receiver<Secret>,
}

/// Other sources' credentials, as the daemon's cache serves them (fresh, one fetch for all who
/// ask, a login shared): for a source that stands on another's sign-in, such as an `aws` role
/// assumed with an `oidc` source's ID token.
pub trait OtherSources: Send + Sync {
    /// Source `name`'s credential, valid for at least `min_valid`.
    fn credential(
        &self,
        name: &str,
        min_valid: std::time::Duration,
    ) -> BoxFuture<'_, Result<Arc<credd_proto::Credential>, SourceError>>;
}

/// How long a sign-in's ID token must still be good when another source hands it on (to STS).
const ID_TOKEN_MIN_VALID: std::time::Duration = std::time::Duration::from_secs(60);

/// The ID token of the `oidc` source `name` that another source stands on, and what is known of
/// who signed in. A sign-in that ended needs a login (of the source that asked, which the daemon
/// sends to `name`).
pub async fn signed_in_token(
    others: &dyn OtherSources,
    name: &str,
) -> Result<(Secret, CredentialFacts), SourceError> {
    let id = others
        .credential(name, ID_TOKEN_MIN_VALID)
        .await
        .map_err(|e| match e {
            SourceError::NeedsLogin(_) => {
                SourceError::NeedsLogin(format!("the sign-in of `{name}` has ended"))
            }
            other => SourceError::Upstream(format!(
                "no ID token from `{name}`: {}",
                other.present(name)
            )),
        })?;
    match &id.secret {
        CredentialSecret::Token { token } => Ok((token.clone(), (*id.metadata).clone())),
        _ => Err(SourceError::Misconfigured(format!(
            "`{name}` serves no token to sign in with"
        ))),
    }
}

/// No other sources, for a source built alone (a test, a fuzz target): every ask is refused.
pub struct NoOtherSources;

impl OtherSources for NoOtherSources {
    fn credential(
        &self,
        name: &str,
        _: std::time::Duration,
    ) -> BoxFuture<'_, Result<Arc<credd_proto::Credential>, SourceError>> {
        let message = format!("no source `{name}` is known here");
        Box::pin(async move { Err(SourceError::Misconfigured(message)) })
    }
}

/// Builds the source a config entry named `name` describes; `others` serves the sources it
/// stands on.
pub fn build(
    name: &crate::source_name::SourceName,
    spec: &SourceSpec,
    clock: &Arc<Clock>,
    others: &Arc<dyn OtherSources>,
) -> Box<dyn Source> {
    let clock = clock.clone();
    match spec {
        SourceSpec::Exec(exec) => Box::new(exec::ExecSource::new(exec.clone())),
        SourceSpec::Aws(aws) => match &aws.web_identity {
            Some(web) => Box::new(aws::web_identity::WebIdentitySource::new(
                aws.clone(),
                web.clone(),
                others.clone(),
            )),
            None => Box::new(aws::AwsSource::new(name, aws.clone(), clock)),
        },
        SourceSpec::Gcp(gcp) => Box::new(gcp::GcpSource::new(gcp.clone(), clock, others.clone())),
        SourceSpec::Entra(entra) => Box::new(entra::EntraSource::new(name, entra.clone(), clock)),
        SourceSpec::Oidc(oidc) => Box::new(oidc::OidcSource::new(name, oidc.clone(), clock)),
    }
}

/// The source of ID tokens for `audience` a config entry describes, for the kinds that mint
/// them (`gcp`); `None` for the others.
pub fn build_id_token(
    spec: &SourceSpec,
    audience: &str,
    clock: &Arc<Clock>,
    others: &Arc<dyn OtherSources>,
) -> Option<Box<dyn Source>> {
    match spec {
        SourceSpec::Gcp(gcp) => Some(Box::new(gcp::id_token::GcpIdTokenSource::new(
            gcp::GcpSource::new(gcp.clone(), clock.clone(), others.clone()),
            audience.to_string(),
        ))),
        SourceSpec::Exec(_) | SourceSpec::Aws(_) | SourceSpec::Entra(_) | SourceSpec::Oidc(_) => {
            None
        }
    }
}

/// A source's table: its `kind`, and that kind's settings, whose spec lives beside the source
/// that reads them (`sources::<kind>`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    Exec(exec::ExecSpec),
    Aws(aws::AwsSpec),
    Gcp(gcp::GcpSpec),
    Entra(entra::EntraSpec),
    Oidc(oidc::OidcSpec),
}

impl SourceSpec {
    /// What is wrong with the table beyond its syntax, for the config error.
    pub fn check(&self) -> Result<(), String> {
        match self {
            SourceSpec::Exec(exec) => exec.check(),
            SourceSpec::Aws(aws) => aws.check(),
            SourceSpec::Gcp(gcp) => gcp.check(),
            SourceSpec::Entra(entra) => entra.check(),
            SourceSpec::Oidc(oidc) => oidc.check(),
        }?;
        if let Some(proxy) = self.proxy() {
            proxy.check()?;
            if proxy.auth.is_some() && !matches!(self, SourceSpec::Aws(_)) {
                return Err("proxy `auth` applies to aws sources (Bedrock) only".into());
            }
            match self {
                SourceSpec::Aws(_) => proxy.check_provider(true, aws::spec::is_region_name)?,
                SourceSpec::Gcp(_) => proxy.check_provider(false, gcp::spec::is_location_name)?,
                _ if proxy.provider.is_some()
                    || proxy.workspace.is_some()
                    || proxy.location.is_some()
                    || !proxy.failover.is_empty()
                    || !proxy.model_regions.is_empty() =>
                {
                    return Err("proxy `provider`, `workspace`, `location`, `failover` and `model_regions` apply to aws and gcp sources".into());
                }
                _ => {}
            }
            if proxy.send_as.is_some() && !matches!(self, SourceSpec::Exec(_) | SourceSpec::Oidc(_))
            {
                return Err(
                    "proxy `send_as` applies to gateways (exec and oidc sources) only".into(),
                );
            }
        }
        Ok(())
    }

    /// The source's authenticating proxy, when its table asks for one.
    pub fn proxy(&self) -> Option<&ProxySpec> {
        match self {
            SourceSpec::Exec(exec) => exec.proxy.as_ref(),
            SourceSpec::Aws(aws) => aws.proxy.as_ref(),
            SourceSpec::Gcp(gcp) => gcp.proxy.as_ref(),
            SourceSpec::Entra(entra) => entra.proxy.as_ref(),
            SourceSpec::Oidc(oidc) => oidc.proxy.as_ref(),
        }
    }

    /// The CA bundle the source's upstreams (and its proxy's) are trusted with, if it names one.
    pub fn ca_bundle(&self) -> Option<&std::path::Path> {
        match self {
            SourceSpec::Exec(_) => None,
            SourceSpec::Aws(aws) => aws.ca_bundle.as_deref(),
            SourceSpec::Gcp(gcp) => gcp.ca_bundle.as_deref(),
            SourceSpec::Entra(entra) => entra.ca_bundle.as_deref(),
            SourceSpec::Oidc(oidc) => oidc.ca_bundle.as_deref(),
        }
    }

    /// The source whose sign-in this one stands on: `credd login` of this one signs in there.
    pub fn signs_in_with(&self) -> Option<&str> {
        match self {
            SourceSpec::Aws(aws) => aws.web_identity.as_ref().map(|web| web.oidc.as_str()),
            SourceSpec::Gcp(gcp) => gcp.workforce.as_ref().map(|w| w.oidc.as_str()),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Exec(_) => "exec",
            SourceSpec::Aws(_) => "aws",
            SourceSpec::Gcp(_) => "gcp",
            SourceSpec::Entra(_) => "entra",
            SourceSpec::Oidc(_) => "oidc",
        }
    }
}
