//! The calls that turn a Google credential into an access token, each against the endpoint the
//! credential file names: the OAuth 2.0 refresh-token grant (`authorized_user`), the JWT-bearer
//! grant with an RS256 assertion signed by `jsonwebtoken` (`service_account`), the RFC 8693
//! token exchange at Google's STS (`external_account`), and the IAM Credentials
//! `generateAccessToken` call (impersonation). ID tokens for an audience come from the same
//! JWT-bearer grant (with `target_audience`) and from IAM Credentials `generateIdToken`.
//!
//! Upstream error bodies are reduced to their documented `error` / `error_description` (or
//! `error.message`) fields, with every secret of the request scrubbed from them.

use std::time::{Duration, SystemTime};

use credd_proto::Secret;
use serde::{Deserialize, Serialize};

use super::adc::{DEFAULT_TOKEN_URI, ServiceAccount};
use crate::sources::{SourceError, Token, upstream};
use crate::upstream_clock::DateProbe;

/// Lifetime assumed when a token response states none (Google's tokens live an hour).
const ASSUMED_LIFETIME: Duration = Duration::from_secs(3600);

/// Lifetime of a service-account assertion, as Google's libraries use.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// Lifetime asked of `generateAccessToken` unless the file says otherwise.
pub const IMPERSONATED_LIFETIME: Duration = Duration::from_secs(3600);

const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How a refresh-token grant's client proves itself.
#[derive(Clone, Copy)]
pub enum ClientAuth {
    /// In the form, as an `authorized_user` file's refresh is sent to Google's OAuth endpoint.
    Form,
    /// With HTTP Basic, as Google's libraries send an `external_account_authorized_user`
    /// file's refresh to Google's STS (`token_url`).
    Basic,
}

/// The refresh-token grant of an `authorized_user` or `external_account_authorized_user`
/// file.
pub async fn refresh_grant(
    http: &reqwest::Client,
    token_uri: &str,
    (client_id, client_secret): (&str, &str),
    auth: ClientAuth,
    refresh_token: &str,
    now: SystemTime,
) -> Result<Token, SourceError> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let mut request = http.post(token_uri);
    match auth {
        ClientAuth::Form => {
            form.extend([("client_id", client_id), ("client_secret", client_secret)]);
        }
        ClientAuth::Basic => request = request.basic_auth(client_id, Some(client_secret)),
    }
    let request = request.form(&form);
    token_call(request, token_uri, &[client_secret, refresh_token], now).await
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// Asks for an ID token for this audience instead of an access token.
    #[serde(skip_serializing_if = "Option::is_none")]
    target_audience: Option<&'a str>,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// The JWT-bearer grant of a `service_account` key file.
pub async fn jwt_bearer_grant(
    http: &reqwest::Client,
    key: &ServiceAccount,
    scopes: &[String],
    now: SystemTime,
) -> Result<Token, SourceError> {
    let token_uri = key.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI);
    let assertion = sign_assertion(key, Some(scopes.join(" ")), None, now)?;
    let form = [("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)];
    let request = http.post(token_uri).form(&form);
    token_call(request, token_uri, &[&assertion], now).await
}

/// An ID token for `audience`, signed by Google for the service account of a key file: the
/// JWT-bearer grant with a `target_audience` claim.
pub async fn jwt_bearer_id_token(
    http: &reqwest::Client,
    key: &ServiceAccount,
    audience: &str,
    now: SystemTime,
) -> Result<Token, SourceError> {
    let token_uri = key.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI);
    let assertion = sign_assertion(key, None, Some(audience), now)?;
    let form = [("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)];
    let request = http.post(token_uri).form(&form);
    let answer = send(request, token_uri, &[&assertion]).await?;
    #[derive(Deserialize)]
    struct IdTokenResponse {
        id_token: String,
    }
    let response: IdTokenResponse = answer.read(token_uri, "an ID token response")?;
    id_token(response.id_token, &answer, token_uri, now)
}

/// The assertion a service account signs with its key: for an access token with `scope`, or
/// for an ID token with `target_audience`.
fn sign_assertion(
    key: &ServiceAccount,
    scope: Option<String>,
    target_audience: Option<&str>,
    now: SystemTime,
) -> Result<String, SourceError> {
    let iat = crate::clock::unix_secs(now);
    let claims = AssertionClaims {
        iss: &key.client_email,
        scope,
        target_audience,
        aud: key.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI),
        iat,
        exp: iat + ASSERTION_LIFETIME.as_secs() as i64,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let signing_key =
        jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes()).map_err(|_| {
            SourceError::Upstream(format!(
                "the private key of service account {} is not a PEM RSA key",
                key.client_email
            ))
        })?;
    jsonwebtoken::encode(&header, &claims, &signing_key).map_err(|e| {
        SourceError::Upstream(format!(
            "cannot sign the assertion for {}: {e}",
            key.client_email
        ))
    })
}

/// What an STS token exchange needs besides the subject token.
pub struct Exchange<'a> {
    pub token_url: &'a str,
    pub audience: &'a str,
    pub subject_token_type: &'a str,
    pub scopes: &'a [String],
    pub client: Option<(&'a str, &'a str)>,
    pub workforce_pool_user_project: Option<&'a str>,
}

/// The RFC 8693 token exchange of an `external_account` file.
pub async fn sts_exchange(
    http: &reqwest::Client,
    exchange: &Exchange<'_>,
    subject_token: &str,
    now: SystemTime,
) -> Result<Token, SourceError> {
    let scope = exchange.scopes.join(" ");
    let options = match (exchange.workforce_pool_user_project, exchange.client) {
        (Some(project), None) => Some(serde_json::json!({ "userProject": project }).to_string()),
        _ => None,
    };
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("audience", exchange.audience),
        ("scope", &scope),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", subject_token),
        ("subject_token_type", exchange.subject_token_type),
    ];
    if let Some(options) = &options {
        form.push(("options", options));
    }
    let mut request = http.post(exchange.token_url).form(&form);
    let mut secrets = vec![subject_token];
    if let Some((id, secret)) = exchange.client {
        request = request.basic_auth(id, Some(secret));
        secrets.push(secret);
    }
    token_call(request, exchange.token_url, &secrets, now).await
}

#[derive(Serialize)]
struct GenerateAccessTokenRequest<'a> {
    scope: &'a [String],
    delegates: Vec<String>,
    lifetime: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateAccessTokenResponse {
    access_token: String,
    expire_time: String,
}

/// `generateAccessToken` of the IAM Credentials API: a token for the service account `url`
/// names, made with `source` (which needs the cloud-platform scope).
pub async fn generate_access_token(
    http: &reqwest::Client,
    url: &str,
    source: &Token,
    scopes: &[String],
    delegates: &[String],
    lifetime: Duration,
    now: SystemTime,
) -> Result<Token, SourceError> {
    let body = GenerateAccessTokenRequest {
        scope: scopes,
        delegates: delegate_names(delegates),
        lifetime: format!("{}s", lifetime.as_secs()),
    };
    let request = http
        .post(url)
        .bearer_auth(source.secret.expose())
        .json(&body);
    let answer = send(request, url, &[source.secret.expose()]).await?;
    let response: GenerateAccessTokenResponse =
        answer.read(url, "a generateAccessToken response")?;
    let expire_time = humantime::parse_rfc3339_weak(&response.expire_time).map_err(|_| {
        SourceError::Upstream(format!(
            "{} answered with an unreadable expireTime",
            host(url)
        ))
    })?;
    // An absolute time, by the IAM service's clock.
    let (expires_at, clock_offset_secs) = answer.dates.to_local(expire_time, now);
    Ok(Token {
        secret: Secret::new(response.access_token),
        expires_at,
        clock_offset_secs,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateIdTokenRequest<'a> {
    audience: &'a str,
    delegates: Vec<String>,
    include_email: bool,
}

/// `generateIdToken` of the IAM Credentials API: an ID token for `audience`, signed by Google
/// for the service account `url` names, asked with `source` (which needs the cloud-platform
/// scope).
pub async fn generate_id_token(
    http: &reqwest::Client,
    url: &str,
    source: &Token,
    audience: &str,
    delegates: &[String],
    now: SystemTime,
) -> Result<Token, SourceError> {
    let body = GenerateIdTokenRequest {
        audience,
        delegates: delegate_names(delegates),
        include_email: true,
    };
    let request = http
        .post(url)
        .bearer_auth(source.secret.expose())
        .json(&body);
    let answer = send(request, url, &[source.secret.expose()]).await?;
    #[derive(Deserialize)]
    struct GenerateIdTokenResponse {
        token: String,
    }
    let response: GenerateIdTokenResponse = answer.read(url, "a generateIdToken response")?;
    id_token(response.token, &answer, url, now)
}

/// Delegates as the IAM Credentials API names them.
fn delegate_names(delegates: &[String]) -> Vec<String> {
    delegates
        .iter()
        .map(|d| {
            if d.starts_with("projects/") {
                d.clone()
            } else {
                format!("projects/-/serviceAccounts/{d}")
            }
        })
        .collect()
}

/// An ID token as an upstream answered it, with the expiry its own `exp` claim states (by the
/// upstream's clock, so corrected by the answer's `Date`).
fn id_token(
    token: String,
    answer: &Answer,
    url: &str,
    now: SystemTime,
) -> Result<Token, SourceError> {
    #[derive(Deserialize)]
    struct Expiry {
        exp: u64,
    }
    // Only the expiry is read: the token is Google's to sign and the audience's to verify.
    let exp = jsonwebtoken::dangerous::insecure_decode_claims::<Expiry>(&token)
        .map_err(|_| {
            SourceError::Upstream(format!(
                "{} answered with an ID token that is not a JWT with an expiry",
                host(url)
            ))
        })?
        .exp;
    let stated = crate::policy::expires_at_unix(now, exp, "an ID token's exp");
    let (expires_at, clock_offset_secs) = answer.dates.to_local(stated, now);
    Ok(Token {
        secret: Secret::new(token),
        expires_at,
        clock_offset_secs,
    })
}

/// The IAM Credentials URL that impersonates `service_account`.
pub fn impersonation_url(iam_endpoint: &str, service_account: &str) -> String {
    iam_credentials_url(iam_endpoint, service_account, "generateAccessToken")
}

/// The IAM Credentials URL that mints ID tokens for `service_account`.
pub fn id_token_url(iam_endpoint: &str, service_account: &str) -> String {
    iam_credentials_url(iam_endpoint, service_account, "generateIdToken")
}

fn iam_credentials_url(iam_endpoint: &str, service_account: &str, method: &str) -> String {
    format!(
        "{}/v1/projects/-/serviceAccounts/{service_account}:{method}",
        iam_endpoint.trim_end_matches('/')
    )
}

/// The `generateIdToken` URL beside a credential file's `generateAccessToken` URL.
pub fn id_token_url_beside(impersonation_url: &str) -> Option<String> {
    impersonation_url
        .strip_suffix(":generateAccessToken")
        .map(|base| format!("{base}:generateIdToken"))
}

/// The service account an impersonation URL names.
pub fn impersonated_account(url: &str) -> Option<&str> {
    let tail = url.rsplit_once("serviceAccounts/")?.1;
    Some(tail.split_once(':').map_or(tail, |(account, _)| account))
}

async fn token_call(
    request: reqwest::RequestBuilder,
    url: &str,
    secrets: &[&str],
    now: SystemTime,
) -> Result<Token, SourceError> {
    let answer = send(request, url, secrets).await?;
    // A refresh token that comes along is not kept: Google's stay the same.
    let (token, _) = upstream::read_token(&answer.body, &host(url), ASSUMED_LIFETIME, now)?;
    Ok(token)
}

/// A successful answer: its body, and the upstream's clock when it answered.
struct Answer {
    body: String,
    dates: DateProbe,
}

impl Answer {
    /// The body as the JSON of `what` (for the message when it is not), from `url`.
    fn read<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, SourceError> {
        serde_json::from_str(&self.body).map_err(|_| {
            SourceError::Upstream(format!(
                "{} answered with something that is not {what}",
                host(url)
            ))
        })
    }
}

/// Sends a request through the upstream layer and returns a successful answer; anything else
/// becomes the error [`upstream::classify`] makes of it, scrubbed of `secrets`.
async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
    secrets: &[&str],
) -> Result<Answer, SourceError> {
    let host = host(url);
    let reply = upstream::send(request, &host).await?;
    let dates = DateProbe::default();
    dates.record(reply.date.as_deref());
    if reply.is_success() {
        return Ok(Answer {
            body: reply.body,
            dates,
        });
    }
    Err(match reply.verdict(&host, secrets) {
        upstream::Verdict::Failed(e) => e,
        // A device-code state from a token endpoint that runs no device flow.
        _ => SourceError::Upstream(format!("{host} answered HTTP {}", reply.status)),
    })
}

/// `scheme://host[:port]` of a URL, for messages: the path and query stay out of them.
pub fn host(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => "the upstream".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_urls_name_their_account() {
        let url = impersonation_url("https://iam.example/", "sa@p.iam.gserviceaccount.com");
        assert_eq!(
            url,
            "https://iam.example/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken"
        );
        assert_eq!(
            impersonated_account(&url),
            Some("sa@p.iam.gserviceaccount.com")
        );
        let id_url = id_token_url("https://iam.example/", "sa@p.iam.gserviceaccount.com");
        assert_eq!(
            id_url,
            "https://iam.example/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateIdToken"
        );
        assert_eq!(id_token_url_beside(&url).as_deref(), Some(id_url.as_str()));
        assert_eq!(id_token_url_beside("https://iam.example/v1/other"), None);
    }

    #[test]
    fn hosts_leave_paths_out() {
        assert_eq!(
            host("http://127.0.0.1:8080/token?x=1"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(host("not a url"), "the upstream");
    }
}
