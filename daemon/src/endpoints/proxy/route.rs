//! A proxied source's route: where its requests go and how each is authorized. One [`Route`]
//! holds every difference between the kinds of source the proxy serves: it is made from the
//! source's table once ([`Route::of`]), and knows its upstream (the configured one, else the
//! model API's own host), how it puts the credential on a request, and the environment that
//! sends Claude Code to it (for `status`, `setup` and `credd env`).

use std::sync::Arc;

use credd_proto::{Credential, CredentialSecret};
use hyper::body::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::bedrock;
use crate::sources::SourceSpec;
use crate::sources::spec::{ProxyAuth, SendAs};

/// The first-party Anthropic API, where a gateway route without an upstream goes.
const ANTHROPIC_API: &str = "https://api.anthropic.com";

/// Vertex AI's global host, and the health path's for Vertex routes.
const VERTEX_GLOBAL: &str = "https://aiplatform.googleapis.com";

/// Where the proxy sends a source's requests, and how it authorizes them.
#[derive(Debug, Clone)]
pub enum Route {
    /// An Anthropic-API gateway or the first-party API: the token as `x-api-key`, as
    /// `Authorization: Bearer`, or both.
    Gateway {
        upstream: String,
        x_api_key: bool,
        bearer: bool,
    },
    /// Microsoft Foundry: `Authorization: Bearer` to the resource's URL.
    Foundry { upstream: String },
    /// Vertex AI: `Authorization: Bearer`, to the regional host the request's path names
    /// (`.../locations/REGION/...`), unless an upstream is configured.
    Vertex { upstream: Option<String> },
    /// Bedrock: SigV4 with the cached AWS credentials, service `bedrock`, in the configured
    /// region (else the profile's); to the configured upstream, else the region's runtime.
    Bedrock {
        upstream: Option<String>,
        region: Option<String>,
        /// `Authorization: Bearer` with a short-term Bedrock API key instead of a signature.
        api_key: bool,
    },
}

/// A request on its way upstream, authorized by [`Route::authorize`].
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Route {
    /// The route a source's table asks for; `None` when it has no `proxy` table. The table was
    /// checked when the config was read (an `entra` proxy names its upstream).
    pub fn of(spec: &SourceSpec) -> Option<Route> {
        let proxy = spec.proxy()?;
        let upstream = proxy.upstream.clone();
        Some(match spec {
            SourceSpec::Aws(aws) => Route::Bedrock {
                upstream: upstream.or_else(crate::sources::aws::spec::bedrock_runtime_from_env),
                api_key: proxy.auth == Some(ProxyAuth::ApiKey),
                region: aws.region.clone().or_else(|| {
                    ["AWS_REGION", "AWS_DEFAULT_REGION"]
                        .iter()
                        .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
                }),
            },
            SourceSpec::Gcp(_) => Route::Vertex { upstream },
            SourceSpec::Entra(_) => Route::Foundry {
                upstream: upstream?,
            },
            SourceSpec::Exec(_) | SourceSpec::Oidc(_) => {
                let send_as = proxy.send_as.unwrap_or(SendAs::Both);
                Route::Gateway {
                    upstream: upstream.unwrap_or_else(|| ANTHROPIC_API.into()),
                    x_api_key: send_as != SendAs::Bearer,
                    bearer: send_as != SendAs::XApiKey,
                }
            }
        })
    }

    /// The base URL a request for `path` goes to with `credential` (`None`: the health path,
    /// which asks the model API's host whether it answers at all).
    pub fn upstream(&self, path: Option<&str>, credential: &Credential) -> Result<String, Refusal> {
        Ok(match self {
            Route::Gateway { upstream, .. } | Route::Foundry { upstream } => upstream.clone(),
            Route::Vertex {
                upstream: Some(upstream),
            }
            | Route::Bedrock {
                upstream: Some(upstream),
                ..
            } => upstream.clone(),
            Route::Vertex { upstream: None } => match path {
                None => VERTEX_GLOBAL.to_string(),
                Some(path) => vertex_host(path).ok_or(Refusal::BadRequest(
                    "a Vertex AI request names its location (/v1/projects/P/locations/L/...)",
                ))?,
            },
            Route::Bedrock {
                upstream: None,
                region,
                ..
            } => format!(
                "https://bedrock-runtime.{}.amazonaws.com",
                bedrock::region(region.as_deref(), credential).map_err(Refusal::Internal)?
            ),
        })
    }

    /// Puts `credential` on `request` as its upstream takes it. The caller's own
    /// authorization headers were dropped already.
    pub fn authorize(
        &self,
        request: &mut Outgoing<'_>,
        credential: &Arc<Credential>,
        keys: &bedrock::KeyCache,
        now_unix: i64,
    ) -> Result<(), Refusal> {
        let headers = &mut request.headers;
        match self {
            Route::Foundry { .. } | Route::Vertex { .. } => {
                insert(
                    headers,
                    AUTHORIZATION,
                    format!("Bearer {}", token(credential)?),
                )?;
            }
            Route::Gateway {
                x_api_key, bearer, ..
            } => {
                let token = token(credential)?;
                if *x_api_key {
                    insert(
                        headers,
                        HeaderName::from_static("x-api-key"),
                        token.to_string(),
                    )?;
                }
                if *bearer {
                    insert(headers, AUTHORIZATION, format!("Bearer {token}"))?;
                }
            }
            Route::Bedrock {
                region,
                api_key: true,
                ..
            } => {
                let region =
                    bedrock::region(region.as_deref(), credential).map_err(Refusal::Internal)?;
                let key = keys
                    .key(credential, &region, now_unix)
                    .map_err(Refusal::Internal)?;
                insert(headers, AUTHORIZATION, format!("Bearer {key}"))?;
            }
            Route::Bedrock { region, .. } => {
                let region =
                    bedrock::region(region.as_deref(), credential).map_err(Refusal::Internal)?;
                let signed = bedrock::sign(
                    request.method,
                    &request.url,
                    headers,
                    &request.body,
                    credential,
                    &region,
                )
                .map_err(|e| match e {
                    bedrock::SignError::Unsignable => {
                        Refusal::BadRequest("the request cannot be signed")
                    }
                    bedrock::SignError::Signer(message) => Refusal::Internal(message),
                })?;
                for (name, text) in signed {
                    insert(headers, HeaderName::from_static(name), text)?;
                }
            }
        }
        Ok(())
    }

    /// The environment that sends Claude Code's model requests to `base`, its own
    /// authentication skipped.
    pub fn env_lines(&self, base: &str) -> Vec<String> {
        match self {
            Route::Bedrock { region, .. } => {
                let mut lines = vec![
                    "CLAUDE_CODE_USE_BEDROCK=1".to_string(),
                    format!("ANTHROPIC_BEDROCK_BASE_URL={base}"),
                    "CLAUDE_CODE_SKIP_BEDROCK_AUTH=1".to_string(),
                ];
                lines.extend(region.as_ref().map(|r| format!("AWS_REGION={r}")));
                lines
            }
            Route::Vertex { .. } => vec![
                "CLAUDE_CODE_USE_VERTEX=1".to_string(),
                format!("ANTHROPIC_VERTEX_BASE_URL={base}/v1"),
                "CLAUDE_CODE_SKIP_VERTEX_AUTH=1".to_string(),
            ],
            Route::Foundry { .. } => vec![
                "CLAUDE_CODE_USE_FOUNDRY=1".to_string(),
                format!("ANTHROPIC_FOUNDRY_BASE_URL={base}"),
                "CLAUDE_CODE_SKIP_FOUNDRY_AUTH=1".to_string(),
            ],
            // Claude Code will not start without some key: a placeholder, which the proxy
            // replaces (it is no secret).
            Route::Gateway { .. } => vec![
                format!("ANTHROPIC_BASE_URL={base}"),
                format!("ANTHROPIC_AUTH_TOKEN={}", super::PLACEHOLDER),
            ],
        }
    }
}

/// Why a request could not be routed or authorized: the caller's fault (400) or the source's
/// (500); either way the message holds no secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    BadRequest(&'static str),
    Internal(String),
}

/// The bearer token a token source holds.
fn token(credential: &Credential) -> Result<&str, Refusal> {
    match &credential.secret {
        CredentialSecret::Token { token } => Ok(token.expose()),
        CredentialSecret::Aws { .. } => Err(Refusal::Internal(
            "this source holds AWS credentials; only a Bedrock route can use them".into(),
        )),
    }
}

/// Sets a header that carries a credential: marked sensitive, so no debug print shows it.
fn insert(headers: &mut HeaderMap, name: HeaderName, text: String) -> Result<(), Refusal> {
    let mut value = HeaderValue::from_str(&text)
        .map_err(|_| Refusal::Internal("the credential cannot go in a header".into()))?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

/// Vertex AI's host for the location the request's path names.
fn vertex_host(path: &str) -> Option<String> {
    let location = path.split("/locations/").nth(1)?.split('/').next()?;
    let valid = !location.is_empty()
        && location
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return None;
    }
    Some(if location == "global" {
        VERTEX_GLOBAL.to_string()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vertex_requests_go_to_the_host_of_their_location() {
        assert_eq!(
            vertex_host(
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/m:streamRawPredict"
            )
            .as_deref(),
            Some("https://us-east5-aiplatform.googleapis.com")
        );
        assert_eq!(
            vertex_host("/v1/projects/p/locations/global/publishers/anthropic/models/m:rawPredict")
                .as_deref(),
            Some("https://aiplatform.googleapis.com")
        );
        for bad in [
            "/v1/messages",
            "/v1/projects/p/locations/evil.example%2F/x",
            "/v1/projects/p/locations//x",
            "/v1/projects/p/locations/a.b/x",
        ] {
            assert_eq!(vertex_host(bad), None, "{bad}");
        }
    }
}
