//! Local HTTP endpoints that let SDKs with no helper hook fetch cached credentials: one module
//! per emulated protocol, all served by [`serve`], which owns the checks they share.
//!
//! Every endpoint listens on 127.0.0.1 only and refuses a request whose `Host` header names
//! anything but the loopback address it listens on (a web page cannot reach it through DNS
//! rebinding). A connection from another local user is closed before it is read ([`peer`]);
//! the protocol-specific secret checks live in each endpoint, and the secret itself is made
//! anew whenever the endpoint takes its port ([`secret`]).
//!
//! Another user can take an endpoint's port first (the ports are predictable, and the daemon
//! is not always running). The endpoint then keeps trying to take it, with backoff, says who
//! holds it in `status` (and so in `doctor`), and withdraws its secret's file meanwhile.
//! Connections are capped per endpoint, headers must arrive within seconds and fit a small
//! buffer, so neither another user nor a broken client can take the daemon's descriptors or
//! memory.

pub mod aws_container;
pub mod azure_managed_identity;
pub mod gce_metadata;
pub mod peer;
pub mod proxy;
pub mod secret;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credd_proto::EndpointStatus;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// A request, reduced to what endpoint logic looks at.
#[derive(Debug)]
pub struct EndpointRequest {
    pub method: String,
    pub path: String,
    /// The query string, undecoded.
    pub query: Option<String>,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
}

impl EndpointRequest {
    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        reqwest::Url::parse(&format!("http://q/?{query}"))
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Debug)]
pub struct EndpointResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl EndpointResponse {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        EndpointResponse {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    /// An error in the `{"message": ...}` shape the AWS SDKs print.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, serde_json::json!({ "message": message.into() }))
    }
}

/// An error in a body an endpoint sends (an upstream's answer the proxy streams).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every endpoint's answers: a whole one, or the proxy's stream.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub trait Endpoint: Send + Sync + 'static {
    /// For logs and `status`.
    fn kind(&self) -> &'static str;
    /// The environment lines a user sets so that SDKs use this endpoint.
    fn env_lines(&self, port: u16) -> Vec<String>;
    /// The URL to show in `status`.
    fn url(&self, port: u16) -> String;
    /// Connections of the daemon's own user it serves at once; more are closed at once.
    fn max_connections(&self) -> usize {
        MAX_CONNECTIONS
    }
    /// The secret a request must carry, for protocols that have one.
    fn secret(&self) -> Option<&secret::EndpointSecret> {
        None
    }

    /// Answers an HTTP request, once its `Host` was checked: whole (see [`answer_whole`]), or,
    /// as the proxy does, streaming.
    fn serve_http(&self, request: hyper::Request<Incoming>)
    -> BoxFuture<'_, hyper::Response<Body>>;
}

/// An endpoint that reads no body and answers each request whole, from its method, path,
/// query and headers: every endpoint but the proxy. Its [`Endpoint::serve_http`] is
/// [`answer_whole`].
pub trait Answers: Endpoint {
    fn handle(&self, request: EndpointRequest) -> BoxFuture<'_, EndpointResponse>;
}

/// Answers `request` with what `endpoint` makes of it reduced to an [`EndpointRequest`].
pub fn answer_whole<E: Answers>(
    endpoint: &E,
    request: hyper::Request<Incoming>,
) -> BoxFuture<'_, hyper::Response<Body>> {
    let answer = endpoint.handle(reduce(request));
    Box::pin(async move { plain_response(answer.await) })
}

/// Connections of the daemon's own user a credential endpoint serves at once (an SDK asks
/// once in a while, and briefly); more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections accepted and waiting for their owner to be looked up (a lookup takes
/// microseconds, so this is only reached by a flood); more wait to be accepted.
const MAX_UNCHECKED: usize = 128;
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// The most a request's headers may take (hyper's buffer; its floor is 8 KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Bounds on the wait between attempts to take a port someone else holds.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(15);
/// Failed attempts before the port counts as held by someone else (not an endpoint of ours
/// letting go of it after a config edit): about a second and a half.
const QUIET_FAILURES: u32 = 4;

/// A running endpoint; stops when dropped, and its secret with it (the file is removed, so no
/// SDK sends it to whoever takes the port next; a stable secret's stays, see
/// [`secret::EndpointSecret::stable`]).
pub struct EndpointHandle {
    endpoint: Arc<dyn Endpoint>,
    kind: &'static str,
    url: String,
    env: Vec<String>,
    error: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
    /// The MCP server it stands for, if one.
    server: Option<String>,
    /// Set once the port is taken.
    listening: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for EndpointHandle {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(secret) = self.endpoint.secret() {
            secret.release();
        }
    }
}

impl EndpointHandle {
    pub fn status(&self) -> EndpointStatus {
        EndpointStatus {
            kind: self.kind.to_string(),
            url: self.url.clone(),
            env: self.env.clone(),
            error: self.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            secret_file: self
                .endpoint
                .secret()
                .map(|s| s.file().display().to_string()),
            socket: None,
            server: self.server.clone(),
            listening: self.listening.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The handle of an endpoint that stands for MCP server `server`.
    pub fn named(mut self, server: &crate::source_name::SourceName) -> Self {
        self.server = Some(server.to_string());
        self
    }
}

/// The port an endpoint uses when the config names none: derived from the source's name, so it
/// is the same on every start and needs no state.
pub fn default_port(kind: &str, source: &crate::source_name::SourceName) -> u16 {
    // FNV-1a: stable across releases, unlike the std hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in kind.bytes().chain([0]).chain(source.bytes()) {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    47_000 + (hash % 1000) as u16
}

/// Serves `endpoint` on 127.0.0.1:`port` until the handle is dropped.
pub fn serve(port: u16, endpoint: Arc<dyn Endpoint>) -> EndpointHandle {
    let error = Arc::new(Mutex::new(None));
    let listening = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let task = tokio::spawn(run(
        port,
        endpoint.clone(),
        error.clone(),
        listening.clone(),
    ));
    EndpointHandle {
        endpoint: endpoint.clone(),
        kind: endpoint.kind(),
        url: endpoint.url(port),
        env: endpoint.env_lines(port),
        error,
        task,
        server: None,
        listening,
    }
}

async fn run(
    port: u16,
    endpoint: Arc<dyn Endpoint>,
    error: Arc<Mutex<Option<String>>>,
    listening: Arc<std::sync::atomic::AtomicBool>,
) {
    let listener = take_port(port, &*endpoint, &error).await;
    listening.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(endpoint = endpoint.kind(), url = %endpoint.url(port), "endpoint listening");
    // Two budgets, so that a flood from another user, whose connections are closed as soon as
    // they are looked up, never takes the places of this user's connections being served, and
    // a flood's pending checks never take more than their share of descriptors.
    let unchecked = Arc::new(Semaphore::new(MAX_UNCHECKED));
    let max_connections = endpoint.max_connections();
    let served = Arc::new(Semaphore::new(max_connections));
    let refusals = Arc::new(peer::RefusalLog::default());
    loop {
        // While the checks are behind, connections wait in the kernel's queue, unread and
        // holding no descriptor of ours, rather than being closed: this user's among them.
        let checking = unchecked
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("endpoint accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if !peer.ip().is_loopback() {
            tracing::warn!(%peer, "refused a connection from off this machine");
            continue;
        }
        // An answer's head and body leave in separate small writes: with Nagle's algorithm the
        // body would wait for the client's delayed ACK (40 ms on Linux).
        let _ = stream.set_nodelay(true);
        let (endpoint, served, refusals) = (endpoint.clone(), served.clone(), refusals.clone());
        tokio::spawn(async move {
            let verdict = peer::check(&stream, peer, endpoint.secret().is_some());
            drop(checking);
            if let peer::Verdict::Refuse(why) = verdict {
                refusals.refused(endpoint.kind(), &why);
                return;
            }
            let Ok(_serving) = served.try_acquire_owned() else {
                refusals.refused(
                    endpoint.kind(),
                    &format!("{max_connections} connections are open already"),
                );
                return;
            };
            serve_connection(stream, port, endpoint).await;
        });
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, port: u16, endpoint: Arc<dyn Endpoint>) {
    let service = hyper::service::service_fn(move |request| {
        let endpoint = endpoint.clone();
        async move { Ok::<_, Infallible>(respond(&*endpoint, port, request).await) }
    });
    let _ = http1()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The HTTP/1.1 server every endpoint and the proxy socket speak: headers within
/// [`HEADER_TIMEOUT`], in at most [`MAX_HEADER_BYTES`].
pub(crate) fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
}

/// Binds 127.0.0.1:`port`, trying until it can: at first briefly (the endpoint this one
/// replaces after a config edit may hold the port for a moment), then with backoff up to
/// [`LAST_RETRY`], saying in `error` who holds it. The secret is made once the port is ours.
async fn take_port(
    port: u16,
    endpoint: &dyn Endpoint,
    error: &Mutex<Option<String>>,
) -> TcpListener {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let set_error = |message: Option<String>| {
        *error.lock().unwrap_or_else(|p| p.into_inner()) = message;
    };
    let me = credd_proto::paths::effective_uid();
    if let Some(listener) = activated(addr, endpoint) {
        set_error(None);
        return listener;
    }
    let mut failures = 0u32;
    let mut wait = FIRST_RETRY;
    loop {
        let mut held_by_another_user = false;
        let problem = match bind(addr) {
            // The secret is made once the port is ours, and before anyone can connect: an SDK
            // that reaches the endpoint finds the new file.
            Ok(socket) => match endpoint.secret().map(secret::EndpointSecret::rotate) {
                None | Some(Ok(())) => match socket.listen(1024) {
                    Ok(listener) => {
                        if failures > QUIET_FAILURES {
                            tracing::warn!(endpoint = endpoint.kind(), %addr, "took the port back; the endpoint's secret is a new one");
                        }
                        set_error(None);
                        return listener;
                    }
                    Err(e) => {
                        // Someone bound the port too and listened first: the new secret is
                        // theirs to collect, so it goes.
                        if let Some(secret) = endpoint.secret() {
                            secret.withdraw();
                        }
                        format!("cannot listen on {addr}: {e}")
                    }
                },
                Some(Err(e)) => format!(
                    "cannot write {}: {e}",
                    endpoint
                        .secret()
                        .map(|s| s.file().display().to_string())
                        .unwrap_or_default()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let holder = port_holder(addr);
                held_by_another_user = holder.is_some_and(|uid| uid != me);
                format!("{addr} is held by {}", describe_holder(holder, me))
            }
            Err(e) => format!("cannot listen on {addr}: {e}"),
        };
        // Nothing for an SDK to send to another user holding the port. (The file is left alone
        // when the holder is this user's: most likely the same endpoint of another daemon of
        // this user's, serving with that very file.)
        if held_by_another_user && let Some(secret) = endpoint.secret() {
            secret.withdraw();
        }
        failures += 1;
        if failures > QUIET_FAILURES {
            let message = format!(
                "{problem}; SDKs pointed at this endpoint must not be used until credd has it (trying again every {}s at most)",
                LAST_RETRY.as_secs()
            );
            if failures == QUIET_FAILURES + 1 {
                tracing::error!(endpoint = endpoint.kind(), "{message}");
            }
            set_error(Some(message));
        }
        // Jitter keeps several endpoints (or daemons) from retrying in step.
        tokio::time::sleep(wait.mul_f64(0.8 + fastrand::f64() * 0.4)).await;
        wait = (wait * 2).min(LAST_RETRY);
    }
}

/// The listener systemd holds for `addr` (socket activation), with the endpoint's secret made:
/// the port has been this user's since login, so no secret was collected on it.
fn activated(addr: SocketAddr, endpoint: &dyn Endpoint) -> Option<TcpListener> {
    let listener = crate::activation::tcp_listener(addr)?
        .and_then(|listener| {
            listener.set_nonblocking(true)?;
            TcpListener::from_std(listener)
        })
        .inspect_err(|e| tracing::warn!(endpoint = endpoint.kind(), %addr, "cannot serve the port systemd holds ({e}); binding it instead"))
        .ok()?;
    if let Some(Err(e)) = endpoint.secret().map(secret::EndpointSecret::rotate) {
        tracing::error!(endpoint = endpoint.kind(), "cannot write its secret: {e}");
        return None;
    }
    tracing::info!(endpoint = endpoint.kind(), %addr, "serving the port systemd handed over");
    Some(listener)
}

/// `addr` bound, not yet listening.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // As a listener's bind does (a port in TIME_WAIT is still free to take).
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// The uid that listens on `addr`, as far as the kernel says.
fn port_holder(addr: SocketAddr) -> Option<u32> {
    let anyone = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    credd_proto::tcp_owner::owner_uid(addr, anyone).ok()
}

fn describe_holder(holder: Option<u32>, me: u32) -> String {
    match holder {
        Some(uid) if uid == me => {
            format!("another process of this user (uid {uid}), perhaps another credd-daemon")
        }
        Some(uid) => format!("ANOTHER USER (uid {uid})"),
        None => "another process".to_string(),
    }
}

async fn respond(
    endpoint: &dyn Endpoint,
    port: u16,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Body> {
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok());
    if !host_allowed(host, port) {
        tracing::warn!(
            endpoint = endpoint.kind(),
            ?host,
            "refused a request for a foreign Host"
        );
        return plain_response(EndpointResponse::error(
            403,
            "Host header must name this loopback endpoint",
        ));
    }
    endpoint.serve_http(request).await
}

fn plain_response(response: EndpointResponse) -> hyper::Response<Body> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(
            Full::new(Bytes::from(response.body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("endpoint responses are well-formed")
}

fn reduce(request: hyper::Request<Incoming>) -> EndpointRequest {
    let uri = request.uri();
    EndpointRequest {
        method: request.method().to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    }
}

/// Only `127.0.0.1:PORT` and `localhost:PORT` (or without the port).
pub fn host_allowed(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else { return false };
    // A port, when there is a colon, is digits and nothing else: `127.0.0.1:80@evil` is no
    // port, and so no Host of ours.
    let (name, host_port) = match host.rsplit_once(':') {
        Some((name, p)) => match p.parse::<u16>() {
            Ok(number) if p.bytes().all(|b| b.is_ascii_digit()) => (name, Some(number)),
            _ => return false,
        },
        None => (host, None),
    };
    matches!(name, "127.0.0.1" | "localhost") && host_port.is_none_or(|p| p == port)
}

/// Compares secrets in constant time.
pub fn secret_matches(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(secret_matches("abc", "abc"));
        assert!(!secret_matches("abd", "abc"));
        assert!(!secret_matches("ab", "abc"));
    }

    #[test]
    fn only_loopback_hosts_on_our_port_pass() {
        assert!(host_allowed(Some("127.0.0.1:47100"), 47100));
        assert!(host_allowed(Some("localhost:47100"), 47100));
        assert!(host_allowed(Some("localhost"), 47100));
        assert!(!host_allowed(Some("127.0.0.1:8080"), 47100));
        assert!(!host_allowed(Some("evil.example:47100"), 47100));
        assert!(!host_allowed(Some("127.0.0.1.evil.example:47100"), 47100));
        assert!(!host_allowed(None, 47100));
        // A port that does not parse is no port: never "any port".
        for bad in [
            "127.0.0.1:47100@evil.example",
            "127.0.0.1:@evil.example",
            "localhost:+47100",
            "127.0.0.1:",
        ] {
            assert!(!host_allowed(Some(bad), 47100), "{bad}");
        }
    }

    #[test]
    fn default_ports_are_stable_and_in_range() {
        let name = |n: &str| crate::source_name::SourceName::try_from(n).unwrap();
        let p = default_port("aws-container", &name("dev"));
        assert_eq!(p, default_port("aws-container", &name("dev")));
        assert!((47_000..48_000).contains(&p));
        assert_ne!(p, default_port("aws-container", &name("prod")));
    }
}
