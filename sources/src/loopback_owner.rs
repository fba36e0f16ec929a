//! Whose is an upstream on this machine. An upstream URL may name loopback (a gateway, an
//! identity provider or an emulator on this machine: a proxy's `upstream`, an ADC file's
//! `token_uri`, an Entra authority, `AWS_ENDPOINT_URL`), and any user can listen on a loopback
//! port while its rightful server is down. Such a server gets credentials from credd (a
//! refresh token, a client secret, a signed request, a prompt) only when the kernel says it
//! belongs to this user ([`credd_proto::tcp_owner`], the lookup the endpoints make of their
//! clients).
//!
//! reqwest's connections are checked once made, by the address they reached
//! ([`OwnerCheckLayer`], around every client of credd's own): nothing is sent before the
//! answer. The AWS SDK's are checked by the address the request names, just before it is sent
//! ([`check_url`]). Where the system cannot tell owners (not Linux), loopback is taken as
//! before.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connection, HttpInfo};

/// Why a loopback server was sent nothing: it is not this user's, or nobody can say whose.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotOurs(String);

/// The refusal among `error` and its causes, if a loopback server was refused: what to tell the
/// user instead of "cannot be reached".
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a NotOurs> {
    std::iter::successors(Some(error), |e| e.source()).find_map(|e| e.downcast_ref::<NotOurs>())
}

/// Whether the server at `remote`, reached from `local`, may be sent credentials.
pub fn check_connection(remote: SocketAddr, local: SocketAddr) -> Result<(), NotOurs> {
    if !remote.ip().is_loopback() {
        return Ok(());
    }
    verdict(remote, credd_proto::tcp_owner::owner_uid(remote, local))
}

/// Whether the loopback server a URL names (`http://127.0.0.1:8080`, `http://localhost`) may
/// be sent credentials: its listener's owner, asked before connecting.
pub fn check_url(url: &str) -> Result<(), NotOurs> {
    let Ok(url) = reqwest::Url::parse(url) else {
        return Ok(());
    };
    let Some(port) = url.port_or_known_default() else {
        return Ok(());
    };
    let host = url.host_str().unwrap_or_default();
    let ip = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => ip,
        Err(_) if host.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Err(_) => return Ok(()),
    };
    if !ip.is_loopback() {
        return Ok(());
    }
    let listener = SocketAddr::new(ip, port);
    let anyone = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    verdict(
        listener,
        credd_proto::tcp_owner::owner_uid(listener, anyone),
    )
}

fn verdict(server: SocketAddr, owner: std::io::Result<u32>) -> Result<(), NotOurs> {
    let me = credd_proto::paths::effective_uid();
    let refuse = |why: String| Err(NotOurs(why));
    match owner {
        Ok(uid) if uid == me => Ok(()),
        Ok(uid) => refuse(format!(
            "{server} is held by uid {uid}, not by this user (uid {me}): another user may be posing as the upstream, so nothing was sent to it"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => refuse(format!(
            "nothing listens on {server}, so nothing was sent to it"
        )),
        Err(e) => refuse(format!(
            "cannot tell who holds {server} ({e}), so nothing was sent to it"
        )),
    }
}

/// Checks every connection reqwest makes before a byte of a request goes over it.
#[derive(Clone, Copy, Debug, Default)]
pub struct OwnerCheckLayer;

impl<S> tower_layer::Layer<S> for OwnerCheckLayer {
    type Service = OwnerCheck<S>;

    fn layer(&self, inner: S) -> OwnerCheck<S> {
        OwnerCheck { inner }
    }
}

#[derive(Clone, Debug)]
pub struct OwnerCheck<S> {
    inner: S,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, Request> tower_service::Service<Request> for OwnerCheck<S>
where
    S: tower_service::Service<Request, Error = BoxError>,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let connecting = self.inner.call(request);
        Box::pin(async move {
            let connection = connecting.await?;
            let mut extensions = hyper::http::Extensions::new();
            connection.connected().get_extras(&mut extensions);
            if let Some(info) = extensions.get::<HttpInfo>() {
                check_connection(info.remote_addr(), info.local_addr())?;
            }
            Ok(connection)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_asked_about() {
        assert_eq!(check_url("https://sts.amazonaws.com"), Ok(()));
        assert_eq!(check_url("https://10.0.0.1:8080"), Ok(()));
        assert_eq!(check_url("not a url"), Ok(()));
        let outside: SocketAddr = "192.0.2.1:443".parse().unwrap();
        assert_eq!(check_connection(outside, outside), Ok(()));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_users_listener_passes_and_a_free_port_does_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(check_url(&format!("http://127.0.0.1:{port}/token")), Ok(()));
        assert_eq!(check_url(&format!("http://localhost:{port}")), Ok(()));
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(
            check_connection(client.peer_addr().unwrap(), client.local_addr().unwrap()),
            Ok(())
        );
        drop((client, listener));
        assert!(check_url(&format!("http://127.0.0.1:{port}")).is_err());
    }
}
