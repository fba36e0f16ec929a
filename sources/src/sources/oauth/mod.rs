//! The OAuth 2.0 grants credd runs itself at a token endpoint it was told of: the device
//! authorization grant (RFC 8628), the refresh-token grant, and the authorization-code grant's
//! exchange (RFC 6749 4.1.3, with PKCE's `code_verifier`). Entra's device-code sign-in
//! (`/{tenant}/oauth2/v2.0/devicecode`, which `azure_identity` does not offer) and every OpenID
//! Provider's use them alike: a few documented form POSTs and a polling loop, errors read from
//! the OAuth error JSON. The browser's part of the authorization-code grant, on this machine,
//! is [`redirect`].

pub mod redirect;
pub mod session;

use std::time::{Duration, SystemTime};

use credd_proto::{LoginPrompt, Secret};
use serde::Deserialize;

use crate::sources::SourceError;
use crate::sources::upstream::{self, Verdict};

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Lifetime assumed when a token answer states none (Entra's and most providers' state one;
/// an hour is the usual).
const ASSUMED_LIFETIME: Duration = Duration::from_secs(3600);

/// Where an authorization server's endpoints are.
pub struct Endpoints {
    /// Its origin, for messages.
    pub host: String,
    pub token: String,
    /// The device authorization endpoint, where it has one.
    pub device_authorization: Option<String>,
}

pub use crate::sources::upstream::Grant;

#[derive(Deserialize)]
struct DeviceCodeResponse {
    device_code: String,
    user_code: String,
    /// RFC 8628 names it `verification_uri`; Entra's v2.0 endpoint too.
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
pub async fn device_login(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    scope: &str,
    clock: &crate::clock::Clock,
    deadline: SystemTime,
    report: Box<dyn FnOnce(LoginPrompt) + Send>,
) -> Result<Grant, SourceError> {
    let Some(device_url) = &endpoints.device_authorization else {
        return Err(SourceError::Misconfigured(format!(
            "{} offers no device sign-in (no device authorization endpoint)",
            endpoints.host
        )));
    };
    let request = http
        .post(device_url)
        .form(&[("client_id", client_id), ("scope", scope)]);
    let reply = upstream::send(request, &endpoints.host).await?;
    let device: DeviceCodeResponse = read(&reply, endpoints, &[]).map_err(failure)?;
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
            let request = http.post(&endpoints.token).form(&[
                ("grant_type", DEVICE_CODE_GRANT),
                ("client_id", client_id),
                ("device_code", device_code),
            ]);
            let reply = upstream::send(request, &endpoints.host)
                .await
                .map_err(Verdict::Failed)?;
            grant(&reply, endpoints, &[device_code], now)
        },
    )
    .await
}

/// Trades the refresh token for a new access token (and usually a new refresh token: a
/// provider that rotates them has just made the old one worthless). `scope`, when given, asks
/// for the same scopes again (Entra wants them; OpenID Providers keep the grant's).
pub async fn refresh(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    refresh_token: &Secret,
    scope: Option<&str>,
    now: SystemTime,
) -> Result<Grant, SourceError> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", refresh_token.expose()),
    ];
    form.extend(scope.map(|scope| ("scope", scope)));
    let request = http.post(&endpoints.token).form(&form);
    let reply = upstream::send(request, &endpoints.host).await?;
    grant(&reply, endpoints, &[refresh_token.expose()], now).map_err(failure)
}

/// The browser sign-in, start to finish: the loopback listener and the provider's page (shown
/// through `report`), the answer, and its code redeemed with the PKCE verifier. Returns the
/// grant and the nonce the request carried, for the ID token's check. `issuer`, when known, is
/// what the answer's `iss` must say.
pub async fn browser_sign_in(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    request: redirect::AuthorizationRequest<'_>,
    clock: &crate::clock::Clock,
    deadline: SystemTime,
    issuer: Option<&str>,
    report: Box<dyn FnOnce(LoginPrompt) + Send>,
) -> Result<(Grant, String), SourceError> {
    let client_id = request.client_id.to_string();
    let pending = redirect::Pending::start(request).await?;
    let expires_in_secs = deadline
        .duration_since(clock.now())
        .unwrap_or_default()
        .as_secs();
    report(LoginPrompt::Browser {
        url: pending.url.clone(),
        expires_in_secs,
    });
    let redirect_uri = pending.redirect_uri.clone();
    let verifier = pending.verifier.clone();
    let nonce = pending.nonce.clone();
    let code = pending.code(clock, deadline, issuer).await?;
    let grant = exchange_code(
        http,
        endpoints,
        &client_id,
        &code,
        &verifier,
        &redirect_uri,
        clock.now(),
    )
    .await?;
    Ok((grant, nonce))
}

/// Trades an authorization code for tokens, proving with `verifier` (PKCE) that this is the
/// client that asked for it; `redirect_uri` must be the one the code was sent to.
pub async fn exchange_code(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    code: &Secret,
    verifier: &Secret,
    redirect_uri: &str,
    now: SystemTime,
) -> Result<Grant, SourceError> {
    let request = http.post(&endpoints.token).form(&[
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code.expose()),
        ("code_verifier", verifier.expose()),
        ("redirect_uri", redirect_uri),
    ]);
    let reply = upstream::send(request, &endpoints.host).await?;
    grant(&reply, endpoints, &[code.expose(), verifier.expose()], now).map_err(failure)
}

/// The tokens of a successful answer, or the verdict on a refusal.
fn grant(
    reply: &upstream::Reply,
    endpoints: &Endpoints,
    secrets: &[&str],
    now: SystemTime,
) -> Result<Grant, Verdict> {
    if !reply.is_success() {
        return Err(reply.verdict(&endpoints.host, secrets));
    }
    upstream::read_grant(&reply.body, &endpoints.host, ASSUMED_LIFETIME, now)
        .map_err(Verdict::Failed)
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
    endpoints: &Endpoints,
    secrets: &[&str],
) -> Result<T, Verdict> {
    if !reply.is_success() {
        return Err(reply.verdict(&endpoints.host, secrets));
    }
    serde_json::from_str(&reply.body).map_err(|_| {
        Verdict::Failed(SourceError::Upstream(format!(
            "{} answered with something that is not a device authorization response",
            endpoints.host
        )))
    })
}
