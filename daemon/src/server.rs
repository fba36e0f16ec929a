//! The socket: claiming it (one daemon per socket, stale sockets replaced), accepting clients,
//! refusing other users, and reading and writing frames with limits and timeouts.
//!
//! Each connection is its own task: a slow, silent or malformed client costs one task until its
//! timeout and never delays the others.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use credd_proto::frame::{self, FrameError};
use credd_proto::paths::{self, PrivateDirError};
use credd_proto::{ErrorKind, PROTOCOL_VERSION, Response};
use interprocess::local_socket::tokio::{Listener, Stream, prelude::*};
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

use crate::activation::Activated;
use crate::dispatch::Dispatcher;
#[cfg(unix)]
use crate::endpoints::peer;
use crate::scope::Forward;

/// How long a client may take to send a whole request once connected (or between requests).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping daemon waits for the answers it is still working on: less than a newer
/// client waits for it to go when it replaces it.
const DRAIN_BOUND: Duration = Duration::from_secs(3);
/// Connections served at once; more wait in the kernel's backlog. Fewer when the open-file
/// limit is low, so the endpoints, the upstream calls and the files still have descriptors.
const MAX_CONNECTIONS: usize = 4096;

pub fn connection_cap() -> usize {
    let limit = crate::harden::descriptor_limit();
    MAX_CONNECTIONS
        .min(usize::try_from(limit / 2).unwrap_or(MAX_CONNECTIONS))
        .max(16)
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("another credd-daemon{} is already serving {}", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), .socket.display())]
    AlreadyRunning { socket: PathBuf, pid: Option<u32> },
    #[error(transparent)]
    Dir(#[from] PrivateDirError),
    #[error("{} exists and is not a socket; credd-daemon will not remove it: move it away, or set CREDD_SOCKET to another path", .socket.display())]
    NotASocket { socket: PathBuf },
    #[error("cannot listen on {}: {source}", .socket.display())]
    Listen {
        socket: PathBuf,
        source: std::io::Error,
    },
}

/// A claimed socket: the listener, and the lock that keeps a second daemon away while we live.
pub struct Bound {
    listener: Listener,
    socket: PathBuf,
    /// Handed over by systemd (socket activation): the socket file is systemd's, not ours.
    pub activated: bool,
    _lock: File,
}

/// Claims `socket`: takes the daemon lock beside it, replaces a stale socket file left by a
/// daemon that died, and listens with mode 0600 in a 0700 directory.
pub fn bind(socket: &Path, activated: &mut Activated) -> Result<Bound, StartError> {
    let listen_error = |source| StartError::Listen {
        socket: socket.to_path_buf(),
        source,
    };
    paths::ensure_private_dir(paths::socket_dir(socket)?)?;
    let lock_path = paths::sibling(socket, ".lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let mut lock = options.open(&lock_path).map_err(listen_error)?;
    if let Err(e) = lock.try_lock() {
        let pid = std::fs::read_to_string(&lock_path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        return match e {
            std::fs::TryLockError::WouldBlock => Err(StartError::AlreadyRunning {
                socket: socket.to_path_buf(),
                pid,
            }),
            std::fs::TryLockError::Error(e) => Err(listen_error(e)),
        };
    }
    lock.set_len(0).map_err(listen_error)?;
    write!(lock, "{}", std::process::id()).map_err(listen_error)?;

    if let Some(listener) = activated_listener(socket, activated).map_err(listen_error)? {
        tracing::info!(socket = %socket.display(), "serving the socket systemd handed over");
        return Ok(Bound {
            listener,
            socket: socket.to_path_buf(),
            activated: true,
            _lock: lock,
        });
    }

    let listener = listen(socket)?;
    Ok(Bound {
        listener,
        socket: socket.to_path_buf(),
        activated: false,
        _lock: lock,
    })
}

/// Listens at `socket` (mode 0600), replacing a stale socket file there.
fn listen(socket: &Path) -> Result<Listener, StartError> {
    let listen_error = |source| StartError::Listen {
        socket: socket.to_path_buf(),
        source,
    };
    replace_stale(socket)?;
    let name = socket
        .to_fs_name::<GenericFilePath>()
        .map_err(listen_error)?;
    let options = ListenerOptions::new().name(name);
    #[cfg(unix)]
    let options = {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        options.mode(0o600)
    };
    options.create_tokio().map_err(listen_error)
}

/// Removes a socket file left at `socket` by a daemon that exited. We hold the daemon lock, so
/// no live daemon owns it. Only a socket is removed: a file of the user's at that path is
/// theirs.
fn replace_stale(socket: &Path) -> Result<(), StartError> {
    let listen_error = |source| StartError::Listen {
        socket: socket.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if is_socket(&meta) => {
            std::fs::remove_file(socket).map_err(listen_error)?;
            tracing::info!(socket = %socket.display(), "replaced a stale socket left by a daemon that exited");
            Ok(())
        }
        Ok(_) => Err(StartError::NotASocket {
            socket: socket.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(listen_error(e)),
    }
}

#[cfg(unix)]
fn is_socket(meta: &std::fs::Metadata) -> bool {
    std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type())
}

#[cfg(not(unix))]
fn is_socket(_meta: &std::fs::Metadata) -> bool {
    true
}

/// The listening socket systemd passed for `socket` (`LISTEN_FDS`, socket activation), if any.
#[cfg(unix)]
fn activated_listener(
    socket: &Path,
    activated: &mut Activated,
) -> std::io::Result<Option<Listener>> {
    use interprocess::os::unix::uds_local_socket::tokio::Listener as UdsListener;
    let Some(std_listener) = activated.take(socket) else {
        return Ok(None);
    };
    std_listener.set_nonblocking(true)?;
    let fd = std::os::fd::OwnedFd::from(std_listener);
    Ok(Some(Listener::UdSocket(UdsListener::try_from(fd)?)))
}

#[cfg(not(unix))]
fn activated_listener(
    _socket: &Path,
    _activated: &mut Activated,
) -> std::io::Result<Option<Listener>> {
    Ok(None)
}

/// Accepts clients until `shutdown` turns true, lets the connections in progress finish
/// (within [`DRAIN_BOUND`]), then removes the socket. The claim is handed back: the daemon
/// lock is held until the caller has let go of what else it serves (the proxy socket), so a
/// daemon started meanwhile never finds one of its sockets removed by this one.
pub async fn serve(
    bound: Bound,
    dispatcher: Arc<Dispatcher>,
    shutdown: watch::Receiver<bool>,
) -> Bound {
    let cap = connection_cap();
    let permits = Arc::new(Semaphore::new(cap));
    accept(&bound.listener, &dispatcher, shutdown, None, &permits).await;
    // Every connection holds a permit until it is done: all of them back means all answered.
    let busy = cap - permits.available_permits();
    if busy > 0 {
        tracing::info!(connections = busy, "finishing the answers in progress");
        let all = u32::try_from(cap).unwrap_or(u32::MAX);
        if tokio::time::timeout(DRAIN_BOUND, permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "answers still in progress after {}s are cut off",
                DRAIN_BOUND.as_secs()
            );
        }
    }
    if !bound.activated
        && std::fs::symlink_metadata(&bound.socket).is_ok_and(|meta| is_socket(&meta))
    {
        let _ = std::fs::remove_file(&bound.socket);
    }
    tracing::info!(socket = %bound.socket.display(), "stopped listening");
    bound
}

/// Listens on a forward's protocol socket at `socket` (its directory made by `forwards`),
/// replacing a stale one; `shared` when users of its allow-list may connect (the daemon checks
/// each peer), else this user's alone.
pub fn bind_forward(socket: &Path, shared: bool) -> Result<Listener, StartError> {
    let listen_error = |source| StartError::Listen {
        socket: socket.to_path_buf(),
        source,
    };
    let listener = listen(socket)?;
    #[cfg(unix)]
    if shared {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))
            .map_err(listen_error)?;
    }
    Ok(listener)
}

/// Serves a forward's protocol socket, scoped to `forward`, until `stop` turns true (which
/// also ends the connections open on it); each connection holds one of `permits`.
pub async fn serve_forward(
    listener: Listener,
    dispatcher: Arc<Dispatcher>,
    stop: watch::Receiver<bool>,
    forward: Arc<Forward>,
    permits: Arc<Semaphore>,
) {
    accept(&listener, &dispatcher, stop, Some(forward), &permits).await;
}

/// Accepts clients until `shutdown` turns true, each connection in a task of its own holding
/// one of `permits`.
async fn accept(
    listener: &Listener,
    dispatcher: &Arc<Dispatcher>,
    mut shutdown: watch::Receiver<bool>,
    scope: Option<Arc<Forward>>,
    permits: &Arc<Semaphore>,
) {
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        match stream {
            Ok(stream) => {
                let dispatcher = dispatcher.clone();
                let shutdown = shutdown.clone();
                let scope = scope.clone();
                tokio::spawn(async move {
                    let mut stream = stream;
                    match peer_allowed(&stream, scope.as_deref()) {
                        Some(uid) => {
                            let _counted = scope.as_ref().map(|forward| forward.connection(uid));
                            serve_connection(stream, &dispatcher, shutdown, scope.as_deref()).await;
                        }
                        None => {
                            let refusal = Response::error(
                                ErrorKind::Refused,
                                match &scope {
                                    None => "this credd-daemon serves only the user it runs as; start your own with `credd-daemon`".to_string(),
                                    Some(forward) => format!(
                                        "the credd forward `{}` does not serve this user; add its uid to [forwards.{}] allow_uids in the host's config",
                                        forward.name, forward.name
                                    ),
                                },
                            );
                            let _ = write(&mut stream, refusal).await;
                        }
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Only the user the daemon runs as may talk to it (and, on a forward's socket, the users its
/// allow-list names): the kernel's answer (`SO_PEERCRED`) goes through the same decision as
/// the endpoints' ([`peer::decide`]), with no secret to fall back on. The peer's uid when it
/// is served.
#[cfg(unix)]
fn peer_allowed(stream: &Stream, scope: Option<&Forward>) -> Option<u32> {
    let owner = stream.peer_creds().and_then(|c| {
        c.euid().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the system does not say who connected",
            )
        })
    });
    let uid = owner.as_ref().ok().copied();
    let also = scope.map_or(&[][..], Forward::allow_uids);
    match peer::decide_allowing(owner, credd_proto::paths::effective_uid(), also) {
        peer::Verdict::Serve => uid,
        peer::Verdict::Refuse(why) => {
            tracing::warn!(
                forward = scope.map(|f| f.name.as_str()),
                "refused a connection on the socket: {why}"
            );
            None
        }
    }
}

#[cfg(not(unix))]
fn peer_allowed(_stream: &Stream, _scope: Option<&Forward>) -> Option<u32> {
    // Named pipes are created with a default DACL that admits only the owner and SYSTEM.
    Some(0)
}

async fn serve_connection(
    mut stream: Stream,
    dispatcher: &Dispatcher,
    mut shutdown: watch::Receiver<bool>,
    scope: Option<&Forward>,
) {
    loop {
        // A stopping daemon finishes the request it is answering, but reads no new one.
        if *shutdown.borrow() {
            return;
        }
        let body = tokio::select! {
            read = read_frame(&mut stream) => match read {
                Ok(Some(body)) => body,
                Ok(None) => return,
                Err(reply) => {
                    let _ = write(&mut stream, reply).await;
                    return;
                }
            },
            _ = shutdown.changed() => return,
        };
        let decoded = frame::decode_request(&body);
        // After a stop the connection ends, so the client knows the daemon is going.
        let last = matches!(decoded, Ok(credd_proto::Request::Stop));
        let response = match decoded {
            Ok(request) => {
                tracing::debug!(?request, "request");
                dispatcher.handle(request, scope).await
            }
            Err(FrameError::UnsupportedVersion { theirs }) => {
                tracing::info!(
                    client_protocol = theirs,
                    "refused a client of another protocol version"
                );
                let reply = Response::error(
                    ErrorKind::UnsupportedVersion,
                    format!(
                        "credd-daemon {} speaks protocol {PROTOCOL_VERSION}, the client speaks {theirs}; run `credd stop` and retry so the matching daemon starts",
                        credd_proto::CREDD_VERSION
                    ),
                );
                // The connection stays open: a newer client may answer with a stop (which every
                // version understands) to replace this daemon with its own.
                if write(&mut stream, reply).await.is_err() {
                    return;
                }
                continue;
            }
            Err(e) => {
                let _ = write(&mut stream, bad_request(&e)).await;
                return;
            }
        };
        if write(&mut stream, response).await.is_err() || last {
            return;
        }
    }
}

fn bad_request(e: &FrameError) -> Response {
    tracing::warn!("bad request: {e}");
    Response::error(ErrorKind::BadRequest, format!("bad request: {e}"))
}

/// Reads one frame body; `Ok(None)` when the client closed the connection between frames, and
/// the reply to send when the frame is bad or too slow.
async fn read_frame(stream: &mut Stream) -> Result<Option<Vec<u8>>, Response> {
    let mut header = [0u8; 4];
    match tokio::time::timeout(READ_TIMEOUT, stream.read_exact(&mut header)).await {
        Err(_) => {
            tracing::debug!("client sent nothing within {READ_TIMEOUT:?}; closing");
            return Ok(None);
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(_)) => return Ok(None),
        Ok(Ok(_)) => {}
    }
    let len = frame::body_len(header).map_err(|e| bad_request(&e))?;
    let mut body = vec![0u8; len];
    match tokio::time::timeout(READ_TIMEOUT, stream.read_exact(&mut body)).await {
        Ok(Ok(_)) => Ok(Some(body)),
        Ok(Err(_)) => Err(bad_request(&FrameError::Truncated)),
        Err(_) => Err(Response::error(
            ErrorKind::BadRequest,
            format!(
                "bad request: the frame body did not arrive within {}s",
                READ_TIMEOUT.as_secs()
            ),
        )),
    }
}

async fn write(stream: &mut Stream, response: Response) -> std::io::Result<()> {
    let mut bytes = frame::encode_response(response);
    // Never a frame the client must refuse: an answer too large to send says so instead.
    if bytes.len() - 4 > frame::MAX_FRAME_LEN {
        tracing::warn!(bytes = bytes.len(), "an answer was too large to send");
        bytes = frame::encode_response(Response::error(
            ErrorKind::Internal,
            format!(
                "the answer ({} KiB) is larger than the {} KiB a frame may hold",
                bytes.len() / 1024,
                frame::MAX_FRAME_LEN / 1024
            ),
        ));
    }
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}
