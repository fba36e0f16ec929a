//! Local HTTP endpoints that let SDKs with no helper hook fetch cached credentials: one module
//! per emulated protocol, all served by [`serve`], which owns the checks they share.
//!
//! Every endpoint listens on 127.0.0.1 only and refuses a request whose `Host` header names
//! anything but the loopback address it listens on (a web page cannot reach it through DNS
//! rebinding). The protocol-specific secret checks live in each endpoint; an endpoint whose
//! protocol has no secret serves only the user the daemon runs as ([`peer`]).

pub mod aws_container;
pub mod azure_managed_identity;
pub mod gce_metadata;
pub mod peer;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credd_proto::EndpointStatus;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
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

pub trait Endpoint: Send + Sync + 'static {
    /// For logs and `status`.
    fn kind(&self) -> &'static str;
    /// The environment lines a user sets so that SDKs use this endpoint.
    fn env_lines(&self, port: u16) -> Vec<String>;
    /// The URL to show in `status`.
    fn url(&self, port: u16) -> String;
    fn handle(&self, request: EndpointRequest) -> BoxFuture<'_, EndpointResponse>;
    /// Whether only the daemon's own user may connect: for protocols with no secret.
    fn same_user_only(&self) -> bool {
        false
    }
}

/// A running endpoint; stops when dropped.
pub struct EndpointHandle {
    kind: &'static str,
    url: String,
    env: Vec<String>,
    error: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl Drop for EndpointHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EndpointHandle {
    pub fn status(&self) -> EndpointStatus {
        EndpointStatus {
            kind: self.kind.to_string(),
            url: self.url.clone(),
            env: self.env.clone(),
            error: self.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// The port an endpoint uses when the config names none: derived from the source's name, so it
/// is the same on every start and needs no state.
pub fn default_port(kind: &str, source: &str) -> u16 {
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
    let handle_error = error.clone();
    let server = endpoint.clone();
    let task = tokio::spawn(async move {
        let listener = match bind(port).await {
            Ok(listener) => listener,
            Err(e) => {
                let message = format!("cannot listen on 127.0.0.1:{port}: {e}");
                tracing::error!(endpoint = server.kind(), "{message}");
                *handle_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
                return;
            }
        };
        tracing::info!(endpoint = server.kind(), url = %server.url(port), "endpoint listening");
        loop {
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
            let refusal = if server.same_user_only() {
                foreign_user(&stream, peer)
            } else {
                None
            };
            if let Some(why) = &refusal {
                tracing::warn!(endpoint = server.kind(), %peer, "refused a connection: {why}");
            }
            let endpoint = server.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let endpoint = endpoint.clone();
                    let refused = refusal.is_some();
                    async move {
                        let response = if refused {
                            plain_response(EndpointResponse::error(
                                403,
                                "this endpoint serves only the user credd runs as",
                            ))
                        } else {
                            respond(&*endpoint, port, request).await
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    EndpointHandle {
        kind: endpoint.kind(),
        url: endpoint.url(port),
        env: endpoint.env_lines(port),
        error,
        task,
    }
}

/// Binds, retrying briefly: the endpoint this one replaces after a config edit may still hold
/// the port for a moment.
async fn bind(port: u16) -> std::io::Result<TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut attempts = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn respond(
    endpoint: &dyn Endpoint,
    port: u16,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let request = reduce(request);
    let response = if !host_allowed(request.headers.get("host").map(String::as_str), port) {
        tracing::warn!(endpoint = endpoint.kind(), host = ?request.headers.get("host"), "refused a request for a foreign Host");
        EndpointResponse::error(403, "Host header must name this loopback endpoint")
    } else {
        endpoint.handle(request).await
    };
    plain_response(response)
}

/// Why the connection's peer is not the daemon's own user, if it is not (or cannot be told).
fn foreign_user(stream: &tokio::net::TcpStream, peer: SocketAddr) -> Option<String> {
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(e) => return Some(format!("cannot read the socket's address: {e}")),
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    match peer::owner_uid(peer, local) {
        Ok(uid) if uid == me => None,
        Ok(uid) => Some(format!("the client runs as uid {uid}, not {me}")),
        Err(why) => Some(why),
    }
}

fn plain_response(response: EndpointResponse) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .expect("endpoint responses are well-formed")
}

fn reduce(request: hyper::Request<hyper::body::Incoming>) -> EndpointRequest {
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
    let (name, host_port) = match host.rsplit_once(':') {
        Some((name, p)) => (name, p.parse::<u16>().ok()),
        None => (host, None),
    };
    matches!(name, "127.0.0.1" | "localhost") && host_port.is_none_or(|p| p == port)
}

/// Compares secrets in constant time.
pub fn secret_matches(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// A fresh random secret: 32 bytes from the OS, hex-encoded.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

/// Where endpoint secrets are written for SDKs to read: the user's state directory.
pub fn state_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "credd")
        .map(|d| {
            d.state_dir()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| d.data_local_dir().to_path_buf())
        })
        .unwrap_or_else(|| std::env::temp_dir().join("credd-state"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_on_our_port_pass() {
        assert!(host_allowed(Some("127.0.0.1:47100"), 47100));
        assert!(host_allowed(Some("localhost:47100"), 47100));
        assert!(host_allowed(Some("localhost"), 47100));
        assert!(!host_allowed(Some("127.0.0.1:8080"), 47100));
        assert!(!host_allowed(Some("evil.example:47100"), 47100));
        assert!(!host_allowed(Some("127.0.0.1.evil.example:47100"), 47100));
        assert!(!host_allowed(None, 47100));
    }

    #[test]
    fn default_ports_are_stable_and_in_range() {
        let p = default_port("aws-container", "dev");
        assert_eq!(p, default_port("aws-container", "dev"));
        assert!((47_000..48_000).contains(&p));
        assert_ne!(p, default_port("aws-container", "prod"));
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(secret_matches("abc", "abc"));
        assert!(!secret_matches("abd", "abc"));
        assert!(!secret_matches("ab", "abc"));
        assert_eq!(random_secret().len(), 64);
        assert_ne!(random_secret(), random_secret());
    }
}
