//! The device-code flow and refresh-token grant of the Microsoft identity platform
//! (`/{tenant}/oauth2/v2.0/devicecode` and `/token`), which `azure_identity` does not offer.
//! Two documented form POSTs and a polling loop; errors are read from Entra's error JSON.

use std::time::{Duration, SystemTime};

use credd_proto::{LoginPrompt, Secret};
use serde::Deserialize;

use crate::sources::upstream::{self, Verdict};
use crate::sources::{SourceError, Token};

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Lifetime assumed when a token answer states none (Entra's state one; an hour is its
/// shortest).
const ASSUMED_LIFETIME: Duration = Duration::from_secs(3600);

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

/// What the flow yields: the access token, and the refresh token to keep when one came.
pub type Tokens = (Token, Option<Secret>);

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

/// Runs the flow: shows the code through `report`, polls until the person approves, the code
/// expires or `deadline` passes.
pub async fn login(
    http: &reqwest::Client,
    authority: &Authority<'_>,
    client_id: &str,
    scopes: &[String],
    clock: &crate::clock::Clock,
    deadline: SystemTime,
    report: Box<dyn FnOnce(LoginPrompt) + Send>,
) -> Result<Tokens, SourceError> {
    let scope = with_offline_access(scopes);
    let request = http
        .post(authority.url("devicecode"))
        .form(&[("client_id", client_id), ("scope", &scope)]);
    let reply = upstream::send(request, authority.host).await?;
    let device: DeviceCodeResponse = read(&reply, authority, &[]).map_err(failure)?;
    report(LoginPrompt::Device {
        verification_uri: device.verification_uri.clone(),
        user_code: device.user_code.clone(),
        expires_in_secs: device.expires_in,
    });
    let expires = crate::policy::expires_after(clock.now(), device.expires_in, "a device code");
    let device_code = device.device_code.as_str();
    upstream::poll_device_code(
        clock,
        Duration::from_secs(device.interval.max(1)),
        deadline.min(expires),
        || SourceError::NeedsLogin("the device code was not approved in time".into()),
        || async move {
            let now = clock.now();
            let request = http.post(authority.url("token")).form(&[
                ("grant_type", DEVICE_CODE_GRANT),
                ("client_id", client_id),
                ("device_code", device_code),
            ]);
            let reply = upstream::send(request, authority.host)
                .await
                .map_err(Verdict::Failed)?;
            tokens(&reply, authority, &[device_code], now)
        },
    )
    .await
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
    let request = http.post(authority.url("token")).form(&[
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", refresh_token.expose()),
        ("scope", &scope),
    ]);
    let reply = upstream::send(request, authority.host).await?;
    tokens(&reply, authority, &[refresh_token.expose()], now).map_err(failure)
}

/// The tokens of a successful answer, or the verdict on a refusal.
fn tokens(
    reply: &upstream::Reply,
    authority: &Authority<'_>,
    secrets: &[&str],
    now: SystemTime,
) -> Result<Tokens, Verdict> {
    if !reply.is_success() {
        return Err(reply.verdict(authority.host, secrets));
    }
    upstream::read_token(&reply.body, authority.host, ASSUMED_LIFETIME, now)
        .map_err(Verdict::Failed)
}

fn with_offline_access(scopes: &[String]) -> String {
    let mut scope = scopes.join(" ");
    if !scopes.iter().any(|s| s == "offline_access") {
        scope.push_str(" offline_access");
    }
    scope
}

/// A verdict outside a polling loop: device-code states there are an upstream's confusion.
fn failure(verdict: Verdict) -> SourceError {
    match verdict {
        Verdict::Failed(e) => e,
        _ => SourceError::Upstream(
            "the token endpoint answered with a device-code status where none was pending".into(),
        ),
    }
}

/// The JSON of a successful answer, or the verdict on a refusal.
fn read<T: serde::de::DeserializeOwned>(
    reply: &upstream::Reply,
    authority: &Authority<'_>,
    secrets: &[&str],
) -> Result<T, Verdict> {
    if !reply.is_success() {
        return Err(reply.verdict(authority.host, secrets));
    }
    serde_json::from_str(&reply.body).map_err(|_| {
        Verdict::Failed(SourceError::Upstream(format!(
            "{} answered with something that is not a token response",
            authority.host
        )))
    })
}

/// Entra's descriptions run on with trace and correlation ids; the first line says it.
pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}
