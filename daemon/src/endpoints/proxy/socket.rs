//! The proxy's Unix socket, beside the main socket in credd's private runtime directory: what
//! Claude Code reaches with `ANTHROPIC_UNIX_SOCKET`.
//!
//! One socket serves every proxied source, routed by the `Host` of the base URL `setup` writes
//! (`http://SOURCE.credd.localhost:0`, see [`credd_proto::proxy_route`]). One socket rather
//! than one per source, because Claude Code honours `ANTHROPIC_UNIX_SOCKET` only from the
//! environment it starts in, not from a project's settings: one line in a shell profile then
//! serves every project, whichever source its settings name, and forwarding it into a
//! container or over SSH is one socket, not N.
//!
//! Nobody else can take this path (the directory is this user's, 0700, checked like the main
//! socket's), the kernel refuses other users at the directory, and each connection's peer uid
//! is checked besides (`SO_PEERCRED`): so no caller secret is asked for here, and nothing a
//! squatter could collect is ever written into settings.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use credd_proto::proxy_route::{HOST_SUFFIX, source_of_host};

use super::Proxy;
use crate::endpoints::{Body, EndpointResponse, peer};
use crate::scope::Forward;

/// Finds the proxy of the source a `Host` names: the daemon's registry.
pub trait Routes: Send + Sync + 'static {
    /// The proxy of `source` (its name compared without case, as URL hosts are lower case),
    /// or what to tell the caller.
    fn proxy(&self, source: &str) -> Result<Arc<Proxy>, String>;
}

/// Listens on `path` (mode 0600; the directory is the main socket's, already checked and
/// private, or a forward's), replacing a stale socket file. The daemon's lock is held, so no
/// live daemon of this user serves it. `shared`: a forward's socket that users of its
/// allow-list may connect to (mode 0666; each peer is checked).
pub fn bind(path: &Path, shared: bool) -> std::io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; move it away so the proxy can listen there",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    let mode = if shared { 0o666 } else { 0o600 };
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    Ok(listener)
}

/// Serves the socket until the task is dropped (and with it every connection open on it):
/// every source's routes, or through a forward (`scope`) its sources' alone, to the users it
/// allows. Each connection holds one of `served`.
pub async fn serve(
    listener: UnixListener,
    routes: Arc<dyn Routes>,
    scope: Option<Arc<Forward>>,
    served: Arc<Semaphore>,
) {
    let refusals = Arc::new(peer::RefusalLog::default());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("proxy socket accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let uid = match check_peer(&stream, scope.as_deref()) {
            (_, peer::Verdict::Refuse(why)) => {
                refusals.refused("proxy socket", &why);
                continue;
            }
            (uid, peer::Verdict::Serve) => uid,
        };
        let Ok(serving) = served.clone().try_acquire_owned() else {
            refusals.refused("proxy socket", "its connections are all in use");
            continue;
        };
        let routes = routes.clone();
        let scope = scope.clone();
        connections.spawn(async move {
            let _counted = scope.as_ref().map(|forward| forward.connection(uid));
            serve_connection(stream, routes, scope).await;
            drop(serving);
        });
    }
}

/// The peer's uid, as the kernel says, through the one decision every socket takes.
fn check_peer(stream: &UnixStream, scope: Option<&Forward>) -> (u32, peer::Verdict) {
    let owner = stream.peer_cred().map(|c| c.uid());
    let uid = owner.as_ref().map_or(u32::MAX, |uid| *uid);
    let also = scope.map_or(&[][..], Forward::allow_uids);
    (
        uid,
        peer::decide_allowing(owner, credd_proto::paths::effective_uid(), also),
    )
}

async fn serve_connection(
    stream: UnixStream,
    routes: Arc<dyn Routes>,
    scope: Option<Arc<Forward>>,
) {
    let service = hyper::service::service_fn(move |request| {
        let routes = routes.clone();
        let scope = scope.clone();
        async move { Ok::<_, Infallible>(route(&*routes, scope.as_deref(), request).await) }
    });
    let _ = crate::endpoints::http1()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn route<'a>(
    routes: &'a dyn Routes,
    scope: Option<&'a Forward>,
    request: hyper::Request<Incoming>,
) -> BoxFuture<'a, hyper::Response<Body>> {
    Box::pin(async move {
        let host = request
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let Some(source) = source_of_host(host) else {
            // Most likely a Claude Code session whose settings are not credd's, started where
            // ANTHROPIC_UNIX_SOCKET is set: say so, rather than send its request anywhere.
            return super::forward::refusal(EndpointResponse::error(
                421,
                format!(
                    "credd's proxy socket (ANTHROPIC_UNIX_SOCKET) serves only the routes `credd setup claude-code SOURCE --via proxy` writes (http://SOURCE{HOST_SUFFIX}), not `{}`; set that up, or start this session without ANTHROPIC_UNIX_SOCKET",
                    crate::redact::one_line(host)
                ),
            ));
        };
        if let Some(forward) = scope.filter(|f| !f.serves_route(source)) {
            return super::forward::refusal(EndpointResponse::error(
                421,
                forward.not_served(source),
            ));
        }
        match routes.proxy(source) {
            Ok(proxy) => proxy.serve_local(request).await,
            Err(message) => super::forward::refusal(EndpointResponse::error(421, message)),
        }
    })
}
