//! The authenticating proxy: Claude Code talks to it with its own authentication skipped
//! (`CLAUDE_CODE_SKIP_{BEDROCK,VERTEX,FOUNDRY}_AUTH=1`, or a gateway's base URL), and it adds
//! the source's credential to each request on its way to the model API. No credential enters
//! Claude Code's process or the environment of what it runs, and no stale one reaches the
//! model API: every request gets the cache's current credential, and one the upstream refuses
//! (401 or 403, before any byte of the answer reached the caller) is retried once with a
//! freshly refreshed one.
//!
//! Callers reach it on its Unix socket ([`socket`], the default: private, routed by `Host`,
//! no secret needed) or, where a tool cannot use a socket, on a TCP port the config names,
//! served with the other endpoints' checks (127.0.0.1, the peer's uid, the `Host` header, caps
//! on connections and headers) and more: there a request must carry the caller secret (a
//! browser page cannot send it, and `OPTIONS` is refused, so no preflight can be passed).
//! Either way, its body is read whole and bounded, and answers stream back as they come
//! (Server-Sent Events and AWS event-stream alike).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use credd_proto::{Credential, CredentialSecret, Secret};
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use http_body_util::BodyExt as _;
use hyper::body::{Bytes, Frame, Incoming};

use super::secret::EndpointSecret;
use super::{Body, Endpoint, EndpointRequest, EndpointResponse};
use crate::cache::Slot;
use crate::policy::DEFAULT_MIN_VALID;

use credd_proto::PROXY_SECRET_HEADER as SECRET_HEADER;

#[cfg(unix)]
pub mod socket;

/// How a caller reached the proxy, and so what it must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// On the TCP port: the caller secret (anyone on the machine can connect to a port).
    Port,
    /// On the private Unix socket: the kernel vouched for the peer's uid already.
    Socket,
}

/// What Claude Code is given as its API key on a gateway route, where it insists on one: the
/// proxy replaces it.
pub const PLACEHOLDER: &str = credd_proto::PROXY_PLACEHOLDER_KEY;

/// The largest request body passed on; a Messages request with images stays well below.
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// Requests the proxy carries at once (each answer may stream for minutes).
pub const MAX_STREAMS: usize = 512;

/// How long connecting to the upstream may take; an answer may stream for as long as it needs.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the health path waits for the model API to answer at all.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a caller may take to send a request's body once its headers are in.
const MAX_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Bedrock API keys the proxy sends live this long, and each is sent for at most
/// [`API_KEY_REUSE`] of it: a key caught on its way lasts minutes, not the credentials' life.
const API_KEY_LIFETIME: Duration = Duration::from_secs(15 * 60);
const API_KEY_REUSE: Duration = Duration::from_secs(10 * 60);

/// Headers that belong to one connection (RFC 9110 section 7.6.1), never passed on.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Where the proxy sends requests, and how it signs them.
#[derive(Debug, Clone)]
pub enum Route {
    /// `Authorization: Bearer` (Vertex AI, Microsoft Foundry, a gateway that takes it).
    Bearer { upstream: String },
    /// An Anthropic-API gateway or the first-party API: the token as `x-api-key`, as
    /// `Authorization: Bearer`, or both.
    ApiKey {
        upstream: String,
        x_api_key: bool,
        bearer: bool,
    },
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

pub struct Proxy {
    slot: Arc<Slot>,
    /// The source's name, as the socket's route names it.
    source: String,
    route: Route,
    secret: EndpointSecret,
    http: reqwest::Client,
    /// How long the upstream may stay silent (before its answer and between its pieces), and
    /// (up to [`MAX_BODY_TIMEOUT`]) the caller while it sends a body: an upstream or caller
    /// that goes quiet is given up on, so nothing waits on it forever.
    timeout: Duration,
    /// Requests refused for a wrong secret, for the log.
    refusals: super::peer::RefusalLog,
    /// The Bedrock API key last made, for [`Route::Bedrock`] with `api_key`.
    api_key: std::sync::Mutex<Option<MintedKey>>,
}

/// A Bedrock API key, and what it was made from.
struct MintedKey {
    credential: Arc<Credential>,
    region: String,
    made: SystemTime,
    key: Secret,
}

impl Proxy {
    pub fn new(
        slot: Arc<Slot>,
        source: &str,
        route: Route,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Self {
        Proxy {
            slot,
            source: source.to_string(),
            route,
            secret: EndpointSecret::stable(
                credd_proto::paths::state_dir().join(format!("proxy-{source}.secret")),
            ),
            http,
            timeout,
            refusals: Default::default(),
            api_key: std::sync::Mutex::new(None),
        }
    }

    /// A Bedrock API key made from `credential` for `region`: the one made last while it is
    /// young enough, else a new one.
    fn bedrock_api_key(
        &self,
        credential: &Arc<Credential>,
        region: &str,
    ) -> Result<String, EndpointResponse> {
        let now = SystemTime::now();
        let mut kept = self.api_key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(minted) = &*kept
            && Arc::ptr_eq(&minted.credential, credential)
            && minted.region == region
            && now
                .duration_since(minted.made)
                .is_ok_and(|age| age < API_KEY_REUSE)
        {
            return Ok(minted.key.expose().to_string());
        }
        let left =
            Duration::from_secs((credential.expires_at - self.slot.now_unix()).max(0) as u64);
        let key = crate::sources::aws::api_key::mint(
            &credential.secret,
            region,
            left.min(API_KEY_LIFETIME),
            now,
        )
        .map_err(|e| EndpointResponse::error(500, e))?;
        *kept = Some(MintedKey {
            credential: credential.clone(),
            region: region.to_string(),
            made: now,
            key: Secret::new(key.clone()),
        });
        Ok(key)
    }

    /// Serves a request that came in on the proxy's Unix socket.
    pub fn serve_local(
        &self,
        request: hyper::Request<Incoming>,
    ) -> BoxFuture<'_, hyper::Response<Body>> {
        Box::pin(self.proxy(request, Caller::Socket))
    }

    async fn proxy(
        &self,
        request: hyper::Request<Incoming>,
        caller: Caller,
    ) -> hyper::Response<Body> {
        match self.try_proxy(request, caller).await {
            Ok(response) => response,
            Err(refused) => refusal(refused),
        }
    }

    async fn try_proxy(
        &self,
        request: hyper::Request<Incoming>,
        caller: Caller,
    ) -> Result<hyper::Response<Body>, EndpointResponse> {
        let refuse = |status, message: &str| EndpointResponse::error(status, message.to_string());
        if request.method() == hyper::Method::OPTIONS {
            return Err(refuse(403, "the proxy answers no preflight"));
        }
        // A model API is asked with GET, POST and the like on a path: nothing tunnels through
        // the proxy, nothing echoes its headers back, and no target names another host.
        if matches!(
            *request.method(),
            hyper::Method::CONNECT | hyper::Method::TRACE
        ) {
            return Err(refuse(405, "the proxy passes on API requests only"));
        }
        if request.uri().scheme().is_some()
            || request.uri().authority().is_some()
            || !request.uri().path().starts_with('/')
        {
            return Err(refuse(400, "the request target must be a path"));
        }
        let given = request
            .headers()
            .get(SECRET_HEADER)
            .and_then(|v| v.to_str().ok());
        match given {
            _ if caller == Caller::Socket => {}
            None => {
                return Err(refuse(
                    401,
                    "the proxy needs its caller secret in X-Credd-Proxy-Secret (see `credd status`)",
                ));
            }
            Some(given) if !self.secret.matches(given) => {
                // Once a minute at most: where the system cannot tell who connects, anyone
                // may try.
                self.refusals.refused("proxy", "a wrong caller secret");
                return Err(refuse(403, "wrong caller secret"));
            }
            Some(_) => {}
        }
        if request.uri().path() == credd_proto::PROXY_HEALTH_PATH {
            return Ok(super::plain_response(self.health().await));
        }
        let (parts, body) = request.into_parts();
        let body_timeout = self.timeout.min(MAX_BODY_TIMEOUT);
        let body = tokio::time::timeout(
            body_timeout,
            http_body_util::Limited::new(body, MAX_BODY).collect(),
        )
        .await
        .map_err(|_| {
            refuse(
                408,
                &format!(
                    "the request's body did not arrive within {}s",
                    body_timeout.as_secs()
                ),
            )
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                refuse(
                    413,
                    &format!("the request is larger than {} MiB", MAX_BODY >> 20),
                )
            } else {
                refuse(400, "the request's body could not be read")
            }
        })?
        .to_bytes();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let credential = self.credential().await?;
        let answer = self
            .send(&parts, &path_and_query, &body, &credential)
            .await?;
        let answer = if matches!(answer.status().as_u16(), 401 | 403) {
            // Refused before any byte reached the caller: once more with a new credential,
            // when the cache can have one.
            match self.slot.rejected(&credential).await {
                Some(fresh) => {
                    tracing::info!(source = %self.slot.name(), status = answer.status().as_u16(), "the upstream refused the credential; retrying once with a new one");
                    self.send(&parts, &path_and_query, &body, &fresh).await?
                }
                None => answer,
            }
        } else {
            answer
        };
        if answer.status().is_redirection() {
            // Claude Code would follow it with the caller secret, and a 307 or 308 with the
            // request: to wherever the upstream points.
            tracing::warn!(
                endpoint = "proxy",
                status = answer.status().as_u16(),
                "the upstream answered with a redirect, which is not passed on"
            );
            return Err(refuse(
                502,
                "the model API answered with a redirect, which the proxy does not pass on",
            ));
        }
        Ok(stream_back(answer, self.timeout))
    }

    /// For `credd doctor`: whether a credential can be had, and whether the model API answers
    /// at all (any HTTP status will do: nothing is asked of the model).
    async fn health(&self) -> EndpointResponse {
        let credential = match self.credential().await {
            Ok(credential) => credential,
            Err(refusal) => return refusal,
        };
        let base = match &self.route {
            Route::Bearer { upstream } | Route::ApiKey { upstream, .. } => upstream.clone(),
            Route::Vertex { upstream } => upstream
                .clone()
                .unwrap_or_else(|| "https://aiplatform.googleapis.com".into()),
            Route::Bedrock {
                upstream: Some(upstream),
                ..
            } => upstream.clone(),
            Route::Bedrock {
                upstream: None,
                region,
                ..
            } => match bedrock_region(region, &credential) {
                Ok(region) => format!("https://bedrock-runtime.{region}.amazonaws.com"),
                Err(refusal) => return refusal,
            },
        };
        let asked = tokio::time::timeout(HEALTH_TIMEOUT, self.http.head(&base).send()).await;
        match asked {
            Err(_) => EndpointResponse::error(
                504,
                format!("{base} did not answer within {}s", HEALTH_TIMEOUT.as_secs()),
            ),
            Ok(Ok(answer)) => EndpointResponse::json(
                200,
                serde_json::json!({
                    "credential": format!("valid until {}", humantime::format_rfc3339_seconds(crate::clock::from_unix_secs(credential.expires_at))),
                    "upstream": format!("{base} answers (HTTP {})", answer.status().as_u16()),
                }),
            ),
            Ok(Err(e)) => EndpointResponse::error(
                502,
                format!(
                    "{base} cannot be reached: {}",
                    crate::redact::one_line(&e.without_url().to_string())
                ),
            ),
        }
    }

    async fn credential(&self) -> Result<Arc<Credential>, EndpointResponse> {
        self.slot.get(DEFAULT_MIN_VALID, None).await.map_err(|e| {
            // What the socket's callers are told, advice included.
            EndpointResponse::error(503, e.present(self.slot.name()))
        })
    }

    /// Sends the request upstream with `credential`; the answer's body is not read yet.
    async fn send(
        &self,
        parts: &hyper::http::request::Parts,
        path_and_query: &str,
        body: &Bytes,
        credential: &Arc<Credential>,
    ) -> Result<reqwest::Response, EndpointResponse> {
        let region = match &self.route {
            Route::Bedrock { region, .. } => Some(bedrock_region(region, credential)?),
            _ => None,
        };
        let base = match &self.route {
            Route::Bearer { upstream } | Route::ApiKey { upstream, .. } => upstream.clone(),
            Route::Bedrock { upstream, .. } => upstream.clone().unwrap_or_else(|| {
                format!(
                    "https://bedrock-runtime.{}.amazonaws.com",
                    region.as_deref().unwrap_or_default()
                )
            }),
            Route::Vertex {
                upstream: Some(upstream),
            } => upstream.clone(),
            Route::Vertex { upstream: None } => vertex_host(path_and_query).ok_or_else(|| {
                EndpointResponse::error(
                    400,
                    "a Vertex AI request names its location (/v1/projects/P/locations/L/...)",
                )
            })?,
        };
        let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
        let mut headers = reqwest::header::HeaderMap::new();
        let hop_by_hop = connection_listed(&parts.headers);
        for (name, value) in &parts.headers {
            let name_str = name.as_str();
            let dropped = HOP_BY_HOP.contains(&name_str)
                || hop_by_hop.iter().any(|h| h == name_str)
                || matches!(
                    name_str,
                    "host" | "content-length" | "authorization" | "x-api-key" | SECRET_HEADER
                )
                || name_str.starts_with("x-amz-");
            if !dropped {
                headers.append(name.clone(), value.clone());
            }
        }
        let token = |credential: &Credential| match &credential.secret {
            CredentialSecret::Token { token } => Ok(token.expose().to_string()),
            CredentialSecret::Aws { .. } => Err(EndpointResponse::error(
                500,
                "this source holds AWS credentials; only a Bedrock route can use them",
            )),
        };
        let value = |text: String| {
            reqwest::header::HeaderValue::from_str(&text).map(|mut v| {
                v.set_sensitive(true);
                v
            })
        };
        let bad_token = |_| EndpointResponse::error(500, "the credential cannot go in a header");
        match &self.route {
            Route::Bearer { .. } | Route::Vertex { .. } => {
                let bearer = value(format!("Bearer {}", token(credential)?)).map_err(bad_token)?;
                headers.insert(reqwest::header::AUTHORIZATION, bearer);
            }
            Route::ApiKey {
                x_api_key, bearer, ..
            } => {
                let token = token(credential)?;
                if *x_api_key {
                    headers.insert("x-api-key", value(token.clone()).map_err(bad_token)?);
                }
                if *bearer {
                    let bearer = value(format!("Bearer {token}")).map_err(bad_token)?;
                    headers.insert(reqwest::header::AUTHORIZATION, bearer);
                }
            }
            Route::Bedrock { api_key: true, .. } => {
                let key =
                    self.bedrock_api_key(credential, region.as_deref().unwrap_or_default())?;
                let bearer = value(format!("Bearer {key}")).map_err(bad_token)?;
                headers.insert(reqwest::header::AUTHORIZATION, bearer);
            }
            Route::Bedrock { .. } => {
                let signed = sign_bedrock(
                    parts.method.as_str(),
                    &url,
                    &headers,
                    body,
                    credential,
                    region.as_deref().unwrap_or_default(),
                )?;
                for (name, text) in signed {
                    headers.insert(
                        reqwest::header::HeaderName::from_static(name),
                        value(text).map_err(bad_token)?,
                    );
                }
            }
        }
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
            .map_err(|_| EndpointResponse::error(405, "an unknown method"))?;
        let sent = self
            .http
            .request(method, &url)
            .headers(headers)
            .body(body.clone())
            .send();
        tokio::time::timeout(self.timeout, sent)
            .await
            .map_err(|_| {
                tracing::warn!(
                    endpoint = "proxy",
                    "the upstream sent no answer within {}s",
                    self.timeout.as_secs()
                );
                EndpointResponse::error(504, "the model API did not answer in time")
            })?
            .map_err(|e| {
                if let Some(refused) = crate::loopback_owner::refusal_in(&e) {
                    tracing::warn!(endpoint = "proxy", "the upstream was refused: {refused}");
                    return EndpointResponse::error(502, format!("the model API: {refused}"));
                }
                let why = if e.is_timeout() || e.is_connect() {
                    "cannot be reached"
                } else {
                    "failed"
                };
                tracing::warn!(
                    endpoint = "proxy",
                    "the upstream {why}: {}",
                    e.without_url()
                );
                EndpointResponse::error(502, format!("the model API {why} through the proxy"))
            })
    }
}

/// A refusal, on a connection that ends with it: it holds none of the proxy's places.
fn refusal(refusal: EndpointResponse) -> hyper::Response<Body> {
    let mut response = super::plain_response(refusal);
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

/// The region a Bedrock request is signed for and sent to: the configured one, else the
/// profile's. It becomes part of a host name, so only a region's name will do.
fn bedrock_region(
    configured: &Option<String>,
    credential: &Credential,
) -> Result<String, EndpointResponse> {
    let region = configured
        .clone()
        .or_else(|| credential.metadata.region.clone())
        .ok_or_else(|| {
            EndpointResponse::error(
                500,
                "no region for Bedrock: set `region` in the source's table",
            )
        })?;
    if !crate::sources::aws::spec::is_region_name(&region) {
        return Err(EndpointResponse::error(
            500,
            format!("`{region}` is not an AWS region name; set `region` in the source's table"),
        ));
    }
    Ok(region)
}

/// Headers the request's `Connection` header names: hop-by-hop too.
fn connection_listed(headers: &hyper::http::HeaderMap) -> Vec<String> {
    headers
        .get_all(hyper::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
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
        "https://aiplatform.googleapis.com".to_string()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    })
}

/// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`,
/// `x-amz-content-sha256`) for a Bedrock request, made by the AWS SDK's own signer.
fn sign_bedrock(
    method: &str,
    url: &str,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    credential: &Credential,
    region: &str,
) -> Result<Vec<(&'static str, String)>, EndpointResponse> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = crate::sources::aws::api_key::signing_identity(&credential.secret)
        .map_err(|e| EndpointResponse::error(500, e))?;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| EndpointResponse::error(500, "cannot sign for Bedrock"))?
        .into();
    let signable_headers: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let request = SignableRequest::new(
        method,
        url,
        signable_headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|_| EndpointResponse::error(400, "the request cannot be signed"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|_| EndpointResponse::error(500, "cannot sign for Bedrock"))?
        .into_parts();
    let (signed, _) = instructions.into_parts();
    Ok(signed
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect())
}

/// The upstream's answer as it comes: its status and headers (less hop-by-hop ones), and its
/// body streamed, never buffered.
fn stream_back(answer: reqwest::Response, idle_timeout: Duration) -> hyper::Response<Body> {
    let mut builder = hyper::Response::builder().status(answer.status().as_u16());
    let hop_by_hop = connection_listed(answer.headers());
    for (name, value) in answer.headers() {
        let name_str = name.as_str();
        if !HOP_BY_HOP.contains(&name_str)
            && !hop_by_hop.iter().any(|h| h == name_str)
            && name_str != "content-length"
        {
            builder = builder.header(name, value);
        }
    }
    // Each piece within the idle timeout; after an error the stream ends.
    let pieces = Some(Box::pin(answer.bytes_stream()));
    let stream = futures_util::stream::unfold(pieces, move |pieces| async move {
        let mut pieces = pieces?;
        let piece = match tokio::time::timeout(idle_timeout, pieces.next()).await {
            Ok(None) => return None,
            Ok(Some(Ok(bytes))) => return Some((Ok(Frame::data(bytes)), Some(pieces))),
            Ok(Some(Err(e))) => Box::new(e.without_url()) as super::BoxError,
            Err(_) => format!("the model API sent nothing for {}s", idle_timeout.as_secs()).into(),
        };
        tracing::warn!(endpoint = "proxy", "an answer broke off: {piece}");
        Some((Err(piece), None))
    });
    builder
        .body(http_body_util::StreamBody::new(stream).boxed_unsync())
        .unwrap_or_else(|_| super::plain_response(EndpointResponse::error(502, "a bad answer")))
}

impl Endpoint for Proxy {
    fn kind(&self) -> &'static str {
        "proxy-port"
    }

    fn url(&self, port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    fn env_lines(&self, port: u16) -> Vec<String> {
        let mut lines = self.route_env(&self.url(port));
        lines.push(format!(
            "ANTHROPIC_CUSTOM_HEADERS=\"X-Credd-Proxy-Secret: $(cat '{}')\"",
            self.secret.file().display()
        ));
        lines
    }

    fn secret(&self) -> Option<&EndpointSecret> {
        Some(&self.secret)
    }

    /// Each of Claude Code's requests holds a connection while its answer streams, and agents
    /// run many at once.
    fn max_connections(&self) -> usize {
        MAX_STREAMS
    }

    fn handle(&self, _request: EndpointRequest) -> BoxFuture<'_, EndpointResponse> {
        Box::pin(async { EndpointResponse::error(500, "the proxy serves whole requests") })
    }

    fn serve_http(
        &self,
        request: hyper::Request<Incoming>,
    ) -> BoxFuture<'_, hyper::Response<Body>> {
        Box::pin(self.proxy(request, Caller::Port))
    }
}

impl Proxy {
    /// What `status` says of the route on the Unix socket at `socket`: the URL, and the
    /// environment that sends Claude Code there (`ANTHROPIC_UNIX_SOCKET` first: the one line
    /// that must be in the environment Claude Code starts in; the rest fits in its settings).
    pub fn socket_status(&self, socket: &std::path::Path) -> credd_proto::EndpointStatus {
        let base = credd_proto::proxy_route::base_url(&self.source);
        let mut env = vec![format!("ANTHROPIC_UNIX_SOCKET={}", socket.display())];
        env.extend(self.route_env(&base));
        credd_proto::EndpointStatus {
            kind: "proxy".into(),
            url: base,
            env,
            error: None,
            secret_file: None,
            socket: Some(socket.display().to_string()),
        }
    }

    /// The environment that sends Claude Code's model requests to `base`, its own
    /// authentication skipped.
    fn route_env(&self, base: &str) -> Vec<String> {
        match &self.route {
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
            Route::Bearer { .. } => vec![
                "CLAUDE_CODE_USE_FOUNDRY=1".to_string(),
                format!("ANTHROPIC_FOUNDRY_BASE_URL={base}"),
                "CLAUDE_CODE_SKIP_FOUNDRY_AUTH=1".to_string(),
            ],
            // Claude Code will not start without some key: a placeholder, which the proxy
            // replaces (it is no secret).
            Route::ApiKey { .. } => vec![
                format!("ANTHROPIC_BASE_URL={base}"),
                format!("ANTHROPIC_AUTH_TOKEN={PLACEHOLDER}"),
            ],
        }
    }
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

    #[test]
    fn a_region_becomes_part_of_a_host_only_when_it_names_a_region() {
        let credential = |region: Option<&str>| Credential {
            source: "s".into(),
            secret: CredentialSecret::Token {
                token: Secret::new("t"),
            },
            issued_at: 0,
            expires_at: 1,
            metadata: Box::new(credd_proto::CredentialFacts {
                region: region.map(str::to_string),
                ..Default::default()
            }),
        };
        assert_eq!(
            bedrock_region(&None, &credential(Some("eu-west-1"))).unwrap(),
            "eu-west-1"
        );
        assert_eq!(
            bedrock_region(&Some("us-east-2".into()), &credential(Some("eu-west-1"))).unwrap(),
            "us-east-2"
        );
        // A profile's region that would point the signed request at another host.
        for bad in ["evil.example/x#", "us-east-1.evil.example", "EU-WEST-1", ""] {
            assert!(
                bedrock_region(&None, &credential(Some(bad))).is_err(),
                "{bad}"
            );
        }
        assert!(bedrock_region(&None, &credential(None)).is_err());
    }

    #[test]
    fn headers_named_by_connection_are_hop_by_hop() {
        let mut headers = hyper::http::HeaderMap::new();
        headers.insert("connection", "keep-alive, X-Secret-Hop".parse().unwrap());
        assert_eq!(connection_listed(&headers), ["keep-alive", "x-secret-hop"]);
    }
}
