//! The device-code flow and refresh-token grant of the Microsoft identity platform
//! (`/{tenant}/oauth2/v2.0/devicecode` and `/token`), which `azure_identity` does not offer.
//! Two documented form POSTs and a polling loop; errors are read from Entra's error JSON.

use std::time::{Duration, SystemTime};

use credd_proto::{LoginPrompt, Secret};
use serde::Deserialize;

use crate::redact;
use crate::sources::SourceError;

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Where a tenant's endpoints are.
pub struct Authority<'a> {
    pub host: &'a str,
    pub tenant: &'a str,
}

impl Authority<'_> {
    fn url(&self, endpoint: &str) -> String {
        format!(
            "{}/{}/oauth2/v2.0/{endpoint}",
            self.host.trim_end_matches('/'),
            self.tenant
        )
    }
}

/// Tokens from the flow: the access token, its expiry, and the refresh token to keep.
pub struct Tokens {
    pub access_token: Secret,
    pub expires_at: SystemTime,
    pub refresh_token: Option<Secret>,
}

#[derive(Deserialize)]
struct DeviceCodeResponse {
    device_code: String,
    user_code: String,
    verification_uri: String,
    expires_in: u64,
    #[serde(default = "default_interval")]
    interval: u64,
}

fn default_interval() -> u64 {
    5
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Runs the flow: shows the code through `report`, polls until the person approves, the code
/// expires or `deadline` passes.
pub async fn login(
    http: &reqwest::Client,
    authority: &Authority<'_>,
    client_id: &str,
    scopes: &[String],
    deadline: SystemTime,
    report: Box<dyn FnOnce(LoginPrompt) + Send>,
) -> Result<Tokens, SourceError> {
    let scope = with_offline_access(scopes);
    let response = http
        .post(authority.url("devicecode"))
        .form(&[("client_id", client_id), ("scope", &scope)])
        .send()
        .await
        .map_err(|e| unreachable_error(authority, &e))?;
    let device: DeviceCodeResponse = read(response, authority, &[]).await?;
    report(LoginPrompt::Device {
        verification_uri: device.verification_uri.clone(),
        user_code: device.user_code.clone(),
        expires_in_secs: device.expires_in,
    });
    let expires =
        crate::policy::expires_after(SystemTime::now(), device.expires_in, "a device code");
    let mut interval = Duration::from_secs(device.interval.max(1));
    loop {
        tokio::time::sleep(interval).await;
        let now = SystemTime::now();
        if now >= deadline || now >= expires {
            return Err(SourceError::NeedsLogin(
                "the device code was not approved in time".into(),
            ));
        }
        let response = http
            .post(authority.url("token"))
            .form(&[
                ("grant_type", DEVICE_CODE_GRANT),
                ("client_id", client_id),
                ("device_code", device.device_code.as_str()),
            ])
            .send()
            .await
            .map_err(|e| unreachable_error(authority, &e))?;
        match read::<TokenResponse>(response, authority, &[&device.device_code]).await {
            Ok(tokens) => return Ok(tokens.into_tokens(now)),
            Err(Polled::Pending) => {}
            Err(Polled::SlowDown) => interval += Duration::from_secs(5),
            Err(Polled::Failed(e)) => return Err(e),
        }
    }
}

/// Trades the refresh token for a new access token (and usually a new refresh token).
pub async fn refresh(
    http: &reqwest::Client,
    authority: &Authority<'_>,
    client_id: &str,
    refresh_token: &Secret,
    scopes: &[String],
    now: SystemTime,
) -> Result<Tokens, SourceError> {
    let scope = with_offline_access(scopes);
    let response = http
        .post(authority.url("token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token.expose()),
            ("scope", &scope),
        ])
        .send()
        .await
        .map_err(|e| unreachable_error(authority, &e))?;
    match read::<TokenResponse>(response, authority, &[refresh_token.expose()]).await {
        Ok(tokens) => Ok(tokens.into_tokens(now)),
        Err(Polled::Failed(e)) => Err(e),
        Err(_) => Err(SourceError::Upstream(
            "the token endpoint answered a refresh with a device-code status".into(),
        )),
    }
}

impl TokenResponse {
    fn into_tokens(self, now: SystemTime) -> Tokens {
        Tokens {
            access_token: Secret::new(self.access_token),
            expires_at: crate::policy::expires_after(now, self.expires_in, "Entra"),
            refresh_token: self.refresh_token.map(Secret::new),
        }
    }
}

fn with_offline_access(scopes: &[String]) -> String {
    let mut scope = scopes.join(" ");
    if !scopes.iter().any(|s| s == "offline_access") {
        scope.push_str(" offline_access");
    }
    scope
}

enum Polled {
    Pending,
    SlowDown,
    Failed(SourceError),
}

impl From<Polled> for SourceError {
    fn from(polled: Polled) -> Self {
        match polled {
            Polled::Failed(e) => e,
            _ => SourceError::Upstream("unexpected device-code status".into()),
        }
    }
}

async fn read<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    authority: &Authority<'_>,
    secrets: &[&str],
) -> Result<T, Polled> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = match crate::net::read_text(response).await {
        Ok(text) => text,
        Err(e) => {
            return Err(Polled::Failed(SourceError::Upstream(format!(
                "{} {e}",
                authority.host
            ))));
        }
    };
    if status.is_success() {
        return serde_json::from_str(&text).map_err(|_| {
            Polled::Failed(SourceError::Upstream(format!(
                "{} answered with something that is not a token response",
                authority.host
            )))
        });
    }
    let error: Option<ErrorResponse> = serde_json::from_str(&text).ok();
    let code = error.as_ref().map(|e| e.error.as_str()).unwrap_or_default();
    let said = error
        .as_ref()
        .and_then(|e| e.error_description.as_deref())
        .map(|d| first_line(&redact::redact(d, secrets)))
        .unwrap_or_default();
    match code {
        "authorization_pending" => Err(Polled::Pending),
        "slow_down" => Err(Polled::SlowDown),
        "invalid_grant" | "expired_token" | "access_denied" | "interaction_required" => {
            Err(Polled::Failed(SourceError::NeedsLogin(format!(
                "{} refused: {code} {said}",
                authority.host
            ))))
        }
        _ if status.as_u16() == 429 => Err(Polled::Failed(SourceError::Throttled(
            format!("{} is throttling requests (HTTP 429)", authority.host),
            Duration::from_secs(retry_after.unwrap_or(30)),
        ))),
        _ => Err(Polled::Failed(SourceError::Upstream(format!(
            "{} answered HTTP {}{}",
            authority.host,
            status.as_u16(),
            if said.is_empty() {
                String::new()
            } else {
                format!(" ({code}: {said})")
            }
        )))),
    }
}

/// Entra's descriptions run on with trace and correlation ids; the first line says it.
pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

fn unreachable_error(authority: &Authority<'_>, e: &reqwest::Error) -> SourceError {
    let why = if e.is_timeout() {
        "did not answer in time"
    } else {
        "cannot be reached"
    };
    SourceError::Upstream(format!("{} {why}", authority.host))
}
