//! The authenticating proxy: Claude Code talks to it with its own authentication skipped
//! (`CLAUDE_CODE_SKIP_*_AUTH=1` of its provider, or a gateway's base URL), and it adds
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
//!
//! One Bedrock request, from accept to the signed call upstream, stays in this folder (the
//! signing in [`bedrock`]; the one thing it asks outside is whether a region's name is one,
//! the rule the config is checked with):
//! 1. [`socket::serve`] accepts the connection and checks the peer's uid; the `Host`
//!    (`SOURCE.credd.localhost:0`) picks the source's [`Proxy`] (the registry only answers
//!    which one).
//! 2. [`admission::admit`] checks the method and target (and the caller secret on a port);
//!    [`admission::read_body`] reads the body, bounded in size and time.
//! 3. [`Proxy::credential`] asks the source's cache slot for its current AWS credentials.
//! 4. [`route::Route::target`] names the region (the model's own, else the route's) and its
//!    runtime (or the configured upstream), [`forward::outgoing_headers`] drops the caller's
//!    connection and authorization headers, and [`route::Route::authorize`] signs the request
//!    ([`bedrock::sign`], SigV4 for that region) or sets a short-term API key
//!    ([`bedrock::KeyCache`]).
//! 5. [`forward::send`] sends it; a 401 or 403 is retried once with refreshed credentials, and
//!    a refusal for capacity (429, 503, 529) once in the route's next failover region
//!    ([`route::Route::failover`]); [`forward::stream_back`] streams the answer back.

use std::sync::Arc;
use std::time::Duration;

use credd_proto::Credential;
use futures_util::future::BoxFuture;
use hyper::body::{Bytes, Incoming};

use super::secret::EndpointSecret;
use super::{Body, Endpoint, EndpointResponse};
use crate::cache::Slot;
use crate::policy::DEFAULT_MIN_VALID;
use crate::source_name::SourceName;
use crate::sources::SourceSpec;

pub mod admission;
pub mod bedrock;
pub mod forward;
pub mod route;
#[cfg(unix)]
pub mod socket;

use admission::Caller;
use route::{Outgoing, Refusal, Route, Target};

/// What Claude Code is given as its API key on a gateway route, where it insists on one: the
/// proxy replaces it.
pub const PLACEHOLDER: &str = credd_proto::PROXY_PLACEHOLDER_KEY;

/// Requests the proxy carries at once (each answer may stream for minutes).
pub const MAX_STREAMS: usize = 512;

/// How long connecting to the upstream may take; an answer may stream for as long as it needs.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A proxied source: its route, its cache slot, and the client that reaches its upstream.
pub struct Proxy {
    slot: Arc<Slot>,
    /// The source's name, as the socket's route names it.
    source: SourceName,
    route: Route,
    secret: EndpointSecret,
    http: reqwest::Client,
    /// How long the upstream may stay silent (before its answer and between its pieces), and
    /// (up to [`admission::MAX_BODY_TIMEOUT`]) the caller while it sends a body: an upstream
    /// or caller that goes quiet is given up on, so nothing waits on it forever.
    timeout: Duration,
    /// Requests refused for a wrong secret, for the log.
    refusals: super::peer::RefusalLog,
    /// The Bedrock API key last made, for [`Route::Bedrock`] with `api_key`.
    keys: bedrock::KeyCache,
}

/// What the caller is told when its request cannot be routed or authorized.
fn refused(refusal: Refusal) -> EndpointResponse {
    match refusal {
        Refusal::BadRequest(message) => EndpointResponse::error(400, message),
        Refusal::NotFound => EndpointResponse::error(404, "this route serves one MCP endpoint"),
        Refusal::Internal(message) => EndpointResponse::error(500, message),
    }
}

impl Proxy {
    /// The proxy a source's table asks for, if any.
    pub fn start(name: &SourceName, spec: &SourceSpec, slot: &Arc<Slot>) -> Option<Arc<Proxy>> {
        let route = Route::of(spec)?;
        let timeout = spec.proxy()?.timeout;
        Self::new(
            name,
            route,
            timeout,
            spec.ca_bundle(),
            slot,
            format!("proxy-{name}"),
        )
    }

    /// The route to MCP server `server` (`[mcp.NAME]`), with the token of `slot`'s source.
    pub fn for_mcp(
        server: &SourceName,
        spec: &crate::config::McpSpec,
        source: &SourceSpec,
        slot: &Arc<Slot>,
    ) -> Option<Arc<Proxy>> {
        Self::new(
            &spec.source,
            Route::mcp(&spec.url)?,
            spec.timeout,
            source.ca_bundle(),
            slot,
            format!("mcp-{server}"),
        )
    }

    fn new(
        source: &SourceName,
        route: Route,
        timeout: Duration,
        ca_bundle: Option<&std::path::Path>,
        slot: &Arc<Slot>,
        secret_name: String,
    ) -> Option<Arc<Proxy>> {
        let http = match crate::net::streaming_http_client(ca_bundle, CONNECT_TIMEOUT) {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(source = %source, "the proxy cannot start: {e}");
                return None;
            }
        };
        Some(Arc::new(Proxy {
            slot: slot.clone(),
            source: source.clone(),
            route,
            secret: EndpointSecret::stable(
                credd_proto::paths::state_dir().join(format!("{secret_name}.secret")),
            ),
            http,
            timeout,
            refusals: Default::default(),
            keys: Default::default(),
        }))
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
            Err(refused) => forward::refusal(refused),
        }
    }

    async fn try_proxy(
        &self,
        request: hyper::Request<Incoming>,
        caller: Caller,
    ) -> Result<hyper::Response<Body>, EndpointResponse> {
        admission::admit(&request, caller, &self.secret, &self.refusals)?;
        if request.uri().path() == credd_proto::PROXY_HEALTH_PATH {
            let credential = self.credential().await;
            return Ok(super::plain_response(
                admission::health(&self.route, credential, &self.http).await,
            ));
        }
        let (parts, body) = request.into_parts();
        let body =
            admission::read_body(body, self.timeout.min(admission::MAX_BODY_TIMEOUT)).await?;
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut credential = self.credential().await?;
        let target = self
            .route
            .target(path_and_query, &body, &credential)
            .map_err(refused)?;
        let mut answer = self.send(&parts, &target, &body, &credential).await?;
        if matches!(answer.status().as_u16(), 401 | 403) {
            // Refused before any byte reached the caller: once more with a new credential,
            // when the cache can have one.
            if let Some(fresh) = self.slot.rejected(&credential).await {
                tracing::info!(source = %self.slot.name(), status = answer.status().as_u16(), "the upstream refused the credential; retrying once with a new one");
                answer = self.send(&parts, &target, &body, &fresh).await?;
                credential = fresh;
            }
        }
        if matches!(answer.status().as_u16(), 429 | 503 | 529)
            && let Some(next) = self.route.failover(&target, path_and_query)
        {
            // Refused for capacity before any byte reached the caller: once more elsewhere.
            tracing::info!(source = %self.slot.name(), status = answer.status().as_u16(), region = next.region.as_deref().unwrap_or_default(), "the upstream is out of capacity; retrying once in the next region");
            answer = self.send(&parts, &next, &body, &credential).await?;
        }
        if answer.status().is_redirection() {
            // Claude Code would follow it with the caller secret, and a 307 or 308 with the
            // request: to wherever the upstream points.
            tracing::warn!(
                endpoint = "proxy",
                status = answer.status().as_u16(),
                "the upstream answered with a redirect, which is not passed on"
            );
            return Err(EndpointResponse::error(
                502,
                "the model API answered with a redirect, which the proxy does not pass on",
            ));
        }
        Ok(forward::stream_back(answer, self.timeout))
    }

    async fn credential(&self) -> Result<Arc<Credential>, EndpointResponse> {
        self.slot.get(DEFAULT_MIN_VALID, None).await.map_err(|e| {
            // What the socket's callers are told, advice included.
            EndpointResponse::error(503, e.present(self.slot.name()))
        })
    }

    /// Sends the request to `target` with `credential`; the answer's body is not read yet.
    async fn send(
        &self,
        parts: &hyper::http::request::Parts,
        target: &Target,
        body: &Bytes,
        credential: &Arc<Credential>,
    ) -> Result<reqwest::Response, EndpointResponse> {
        let mut request = Outgoing {
            method: parts.method.as_str(),
            url: target.url.clone(),
            headers: forward::outgoing_headers(&parts.headers),
            body: body.clone(),
        };
        self.route
            .authorize(
                &mut request,
                target,
                credential,
                &self.keys,
                self.slot.now_unix(),
            )
            .map_err(refused)?;
        forward::send(&self.http, request, self.timeout).await
    }

    /// What `status` says of the route on the Unix socket at `socket`: the URL, and the
    /// environment that sends Claude Code there (`ANTHROPIC_UNIX_SOCKET` first: the one line
    /// that must be in the environment Claude Code starts in; the rest fits in its settings).
    pub fn socket_status(&self, socket: &std::path::Path) -> credd_proto::EndpointStatus {
        let base = credd_proto::proxy_route::base_url(&self.source);
        let mut env = vec![format!("ANTHROPIC_UNIX_SOCKET={}", socket.display())];
        env.extend(self.route.env_lines(&base));
        credd_proto::EndpointStatus {
            kind: "proxy".into(),
            url: base,
            env,
            error: None,
            secret_file: None,
            socket: Some(socket.display().to_string()),
            server: None,
            listening: false,
        }
    }
}

impl Endpoint for Proxy {
    fn kind(&self) -> &'static str {
        match self.route {
            Route::Mcp { .. } => "mcp",
            _ => "proxy-port",
        }
    }

    /// An MCP route's whole endpoint, else the base URL.
    fn url(&self, port: u16) -> String {
        match &self.route {
            Route::Mcp { path, .. } => format!("http://127.0.0.1:{port}{path}"),
            _ => format!("http://127.0.0.1:{port}"),
        }
    }

    fn env_lines(&self, port: u16) -> Vec<String> {
        if let Route::Mcp { .. } = self.route {
            return Vec::new();
        }
        let mut lines = self.route.env_lines(&format!("http://127.0.0.1:{port}"));
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

    fn serve_http(
        &self,
        request: hyper::Request<Incoming>,
    ) -> BoxFuture<'_, hyper::Response<Body>> {
        Box::pin(self.proxy(request, Caller::Port))
    }
}
