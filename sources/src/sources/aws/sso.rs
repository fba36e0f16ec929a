//! IAM Identity Center (SSO) sessions: finding the session a profile uses, keeping its access
//! token fresh with its refresh token, and the device-authorization login (one per session at a
//! time, whichever profile asked).
//!
//! Tokens live where the AWS CLI keeps them, `~/.aws/sso/cache/<sha1>.json`, in the CLI's own
//! format, so a login done by `aws sso login` serves credd and a login done by credd serves the
//! AWS CLI and SDKs. credd writes that file atomically; a file it cannot read is reported and
//! left in place, never deleted.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_ssooidc::operation::create_token::CreateTokenError;
use credd_proto::LoginPrompt;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::clock::Clock;
use crate::sources::SourceError;
use crate::sources::flow::Flows;
use crate::sources::upstream::{self, Verdict};

use crate::policy::SSO_REFRESH_WINDOW as REFRESH_WINDOW;
/// A client registration this close to its end is replaced at the next login.
const REGISTRATION_MARGIN: Duration = Duration::from_secs(60 * 60);
const DEFAULT_SCOPE: &str = "sso:account:access";

/// The SSO session behind a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSession {
    /// `sso_session` name, or `None` for a legacy profile (`sso_start_url` in the profile).
    pub name: Option<String>,
    pub start_url: String,
    pub region: String,
    pub scopes: Vec<String>,
}

impl SsoSession {
    /// How the AWS CLI names the token file: the session's name, or a legacy profile's start URL.
    fn cache_key(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.start_url)
    }

    pub fn cache_path(&self) -> PathBuf {
        let digest = Sha1::digest(self.cache_key().as_bytes());
        crate::files::home_dir()
            .join(".aws/sso/cache")
            .join(format!("{}.json", hex::encode(digest)))
    }

    pub fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("SSO session `{name}` ({})", self.start_url),
            None => format!("SSO start URL {}", self.start_url),
        }
    }
}

/// The SSO session at the root of `profile`'s `source_profile` chain, if it has one.
pub fn session_for_profile(
    set: &aws_config::profile::ProfileSet,
    profile: &str,
) -> Result<Option<SsoSession>, String> {
    let mut name = profile.to_string();
    let mut seen = Vec::new();
    loop {
        let Some(p) = set.get_profile(&name) else {
            return Ok(None);
        };
        if seen.contains(&name) {
            return Ok(None); // a cycle; the SDK reports it
        }
        seen.push(name.clone());
        if let Some(session_name) = p.get("sso_session") {
            let section = set.sso_session(session_name).ok_or_else(|| {
                format!("profile `{name}` names sso_session `{session_name}`, which is not defined")
            })?;
            let get = |key: &str| {
                section
                    .get(key)
                    .map(str::to_string)
                    .ok_or_else(|| format!("sso-session `{session_name}` has no `{key}`"))
            };
            let scopes = section
                .get("sso_registration_scopes")
                .map(|s| {
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_else(|| vec![DEFAULT_SCOPE.to_string()]);
            return Ok(Some(SsoSession {
                name: Some(session_name.to_string()),
                start_url: get("sso_start_url")?,
                region: get("sso_region")?,
                scopes,
            }));
        }
        if let Some(start_url) = p.get("sso_start_url") {
            return Ok(Some(SsoSession {
                name: None,
                start_url: start_url.to_string(),
                region: p.get("sso_region").unwrap_or("us-east-1").to_string(),
                scopes: vec![DEFAULT_SCOPE.to_string()],
            }));
        }
        match p.get("source_profile") {
            Some(next) if p.get("role_arn").is_some() => name = next.to_string(),
            _ => return Ok(None),
        }
    }
}

/// A token file in the AWS CLI's format.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedToken {
    pub access_token: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_url: Option<String>,
}

impl CachedToken {
    fn expires(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(self.expires_at.trim_end_matches('Z'))
            .or_else(|_| humantime::parse_rfc3339(&self.expires_at))
            .ok()
    }

    fn registration(&self, now: SystemTime) -> Option<(&str, &str)> {
        let expires = self
            .registration_expires_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())?;
        (expires > now + REGISTRATION_MARGIN)
            .then_some(())
            .and(Some((
                self.client_id.as_deref()?,
                self.client_secret.as_deref()?,
            )))
    }
}

/// What is in a session's token file.
pub enum Cached {
    Missing,
    /// The file exists but is not a token file; it is left alone.
    Unreadable(String),
    Token(CachedToken),
}

pub fn read_cache(session: &SsoSession) -> Cached {
    let path = session.cache_path();
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Cached::Missing,
        Err(e) => Cached::Unreadable(format!("cannot read {}: {e}", path.display())),
        Ok(bytes) => parse_cache(&bytes, &path),
    }
}

/// Reads a token file's bytes (`path` is for messages).
pub fn parse_cache(bytes: &[u8], path: &std::path::Path) -> Cached {
    match serde_json::from_slice::<CachedToken>(bytes) {
        Ok(token) if token.expires().is_some() => Cached::Token(token),
        Ok(_) => Cached::Unreadable(format!("{} has an unreadable expiresAt", path.display())),
        Err(e) => Cached::Unreadable(format!(
            "{} is not an SSO token file (line {}, column {}); it was left as is",
            path.display(),
            e.line(),
            e.column()
        )),
    }
}

fn write_cache(session: &SsoSession, token: &CachedToken) -> Result<(), SourceError> {
    let path = session.cache_path();
    let bytes = serde_json::to_vec_pretty(token).expect("token serializes");
    crate::files::write_private(&path, &bytes, false)
        .map_err(|e| SourceError::Upstream(format!("cannot write {}: {e}", path.display())))
}

fn oidc_client(session: &SsoSession, sdk: &SdkConfig) -> aws_sdk_ssooidc::Client {
    let config = aws_sdk_ssooidc::config::Builder::from(sdk)
        .region(aws_config::Region::new(session.region.clone()))
        .build();
    aws_sdk_ssooidc::Client::from_conf(config)
}

fn needs_login(session: &SsoSession, why: &str) -> SourceError {
    SourceError::NeedsLogin(format!("{} {why}", session.describe()))
}

/// Makes sure the session's token file holds an access token with more than
/// [`REFRESH_WINDOW`] left, renewing it with its refresh token when it can. Never interactive.
/// The file is read under its [`super::file_lock`] (profiles on one `sso_session` share the file
/// and its refresh token, which the first renewal may rotate), so a caller that waited for another's
/// renewal finds the renewed token and makes no call of its own.
pub async fn ensure_fresh(
    session: &SsoSession,
    sdk: &SdkConfig,
    now: SystemTime,
) -> Result<(), SourceError> {
    let lock = super::file_lock(&session.cache_path());
    let _renewing = lock.lock().await;
    let token = match read_cache(session) {
        Cached::Missing => return Err(needs_login(session, "has no cached token")),
        Cached::Unreadable(why) => {
            return Err(needs_login(session, &format!("cannot be used: {why}")));
        }
        Cached::Token(token) => token,
    };
    let expires = token.expires().unwrap_or(SystemTime::UNIX_EPOCH);
    if expires > now + REFRESH_WINDOW {
        return Ok(());
    }
    let (Some(refresh_token), Some((client_id, client_secret))) =
        (token.refresh_token.as_deref(), token.registration(now))
    else {
        return if expires > now {
            Ok(()) // cannot renew it, but it still works
        } else {
            Err(needs_login(session, "has expired"))
        };
    };
    let result = oidc_client(session, sdk)
        .create_token()
        .client_id(client_id)
        .client_secret(client_secret)
        .grant_type("refresh_token")
        .refresh_token(refresh_token)
        .send()
        .await;
    match result {
        Ok(out) => {
            let renewed = CachedToken {
                access_token: out.access_token().unwrap_or_default().to_string(),
                expires_at: rfc3339(now + Duration::from_secs(out.expires_in().max(0) as u64)),
                refresh_token: out
                    .refresh_token()
                    .map(str::to_string)
                    .or(token.refresh_token.clone()),
                ..token
            };
            write_cache(session, &renewed)?;
            tracing::info!(session = %session.describe(), expires_at = %renewed.expires_at, "SSO access token renewed with its refresh token");
            Ok(())
        }
        Err(e) => {
            let invalid_grant = matches!(
                e.as_service_error(),
                Some(
                    CreateTokenError::InvalidGrantException(_)
                        | CreateTokenError::ExpiredTokenException(_)
                )
            );
            if invalid_grant {
                Err(needs_login(
                    session,
                    "has ended (its refresh token was refused)",
                ))
            } else if expires > now {
                tracing::warn!(session = %session.describe(), "renewing the SSO access token failed; it is still valid: {}", super::service_error(&e));
                Ok(())
            } else {
                Err(SourceError::Upstream(format!(
                    "renewing the token of {} failed: {}",
                    session.describe(),
                    super::service_error(&e)
                )))
            }
        }
    }
}

/// The device-authorization login of `session`, one at a time: a profile on a session whose
/// login is in progress (another source's `credd login`) joins it and shows the same code, so
/// the person approves once. On success the token file is written.
pub async fn shared_device_login(
    session: &SsoSession,
    sdk: &SdkConfig,
    clock: &Arc<Clock>,
    deadline: SystemTime,
    report: impl FnOnce(LoginPrompt),
) -> Result<(), SourceError> {
    static RUNNING: LazyLock<Flows<PathBuf>> = LazyLock::new(Flows::default);
    let (owned, sdk, clock) = (session.clone(), sdk.clone(), clock.clone());
    let flow = RUNNING.join_or_start(session.cache_path(), move |io| async move {
        device_login(&owned, &sdk, &clock, deadline, io.report).await
    });
    if let Some(prompt) = flow.prompt().await {
        report(prompt);
    }
    flow.done().await
}

/// The device-authorization login: registers a client (or reuses the cached registration),
/// starts the authorization, reports the prompt, and polls until the person approves, the code
/// expires or `deadline` passes. On success the token file is written.
async fn device_login(
    session: &SsoSession,
    sdk: &SdkConfig,
    clock: &Clock,
    deadline: SystemTime,
    report: impl FnOnce(LoginPrompt),
) -> Result<(), SourceError> {
    let client = oidc_client(session, sdk);
    let failed = |what: &str, e: &dyn std::error::Error| {
        SourceError::Upstream(format!(
            "SSO {what} for {} failed: {}",
            session.describe(),
            super::service_error(e)
        ))
    };
    let now = clock.now();
    let cached = match read_cache(session) {
        Cached::Token(t) => Some(t),
        _ => None,
    };
    let (client_id, client_secret, registration_expires_at) =
        match cached.as_ref().and_then(|t| t.registration(now)) {
            Some((id, secret)) => (
                id.to_string(),
                secret.to_string(),
                cached
                    .as_ref()
                    .and_then(|t| t.registration_expires_at.clone()),
            ),
            None => {
                let reg = client
                    .register_client()
                    .client_name("credd")
                    .client_type("public")
                    .set_scopes(Some(session.scopes.clone()))
                    .grant_types("urn:ietf:params:oauth:grant-type:device_code")
                    .grant_types("refresh_token")
                    .send()
                    .await
                    .map_err(|e| failed("RegisterClient", &e))?;
                let expires = crate::policy::expires_at_unix(
                    clock.now(),
                    reg.client_secret_expires_at().max(0) as u64,
                    "the SSO client registration",
                );
                (
                    reg.client_id().unwrap_or_default().to_string(),
                    reg.client_secret().unwrap_or_default().to_string(),
                    Some(rfc3339(expires)),
                )
            }
        };
    let auth = client
        .start_device_authorization()
        .client_id(&client_id)
        .client_secret(&client_secret)
        .start_url(&session.start_url)
        .send()
        .await
        .map_err(|e| failed("StartDeviceAuthorization", &e))?;
    report(LoginPrompt::Device {
        verification_uri: auth
            .verification_uri_complete()
            .or(auth.verification_uri())
            .unwrap_or_default()
            .to_string(),
        user_code: auth.user_code().unwrap_or_default().to_string(),
        expires_in_secs: auth.expires_in().max(0) as u64,
    });
    let code_expires = clock.now() + Duration::from_secs(auth.expires_in().max(0) as u64);
    let deadline = deadline.min(code_expires);
    let device_code = auth.device_code().unwrap_or_default();
    let (client_id, client_secret) = (client_id.as_str(), client_secret.as_str());
    let out = upstream::poll_device_code(
        clock,
        Duration::from_secs(auth.interval().clamp(1, 30) as u64),
        deadline,
        || {
            needs_login(
                session,
                "login was not approved in time; run `credd login` again",
            )
        },
        || {
            let client = &client;
            async move {
                client
                    .create_token()
                    .client_id(client_id)
                    .client_secret(client_secret)
                    .grant_type("urn:ietf:params:oauth:grant-type:device_code")
                    .device_code(device_code)
                    .send()
                    .await
                    .map_err(|e| match e.as_service_error() {
                        Some(CreateTokenError::AuthorizationPendingException(_)) => {
                            Verdict::Pending
                        }
                        Some(CreateTokenError::SlowDownException(_)) => Verdict::SlowDown,
                        Some(CreateTokenError::ExpiredTokenException(_)) => Verdict::Failed(
                            needs_login(session, "login code expired before it was approved"),
                        ),
                        Some(CreateTokenError::AccessDeniedException(_)) => {
                            Verdict::Failed(needs_login(session, "login was denied"))
                        }
                        _ => Verdict::Failed(failed("CreateToken", &e)),
                    })
            }
        },
    )
    .await?;
    let token = CachedToken {
        access_token: out.access_token().unwrap_or_default().to_string(),
        expires_at: rfc3339(clock.now() + Duration::from_secs(out.expires_in().max(0) as u64)),
        refresh_token: out.refresh_token().map(str::to_string),
        client_id: Some(client_id.to_string()),
        client_secret: Some(client_secret.to_string()),
        registration_expires_at,
        region: Some(session.region.clone()),
        start_url: Some(session.start_url.clone()),
    };
    write_cache(session, &token)?;
    tracing::info!(session = %session.describe(), "SSO login approved");
    Ok(())
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
