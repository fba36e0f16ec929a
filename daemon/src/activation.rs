//! The sockets systemd hands over (socket activation): the main socket, the proxy's, and the
//! TCP ports of endpoints and proxies (`credd service install` lists those the config names,
//! so that systemd holds them from login on and nobody else can take them while credd is
//! down). The environment that names them is read once, and each listener then claims its own
//! socket by its path or address, so the order of `ListenStream=` lines in the unit does not
//! matter, and a unit of an older credd that lists only the main socket still works (the rest
//! bind their own).
//!
//! A TCP port outlives the endpoint serving it (a config reload rebuilds endpoints, and
//! systemd keeps its own copy of the socket, so the port could not be bound again): the passed
//! listeners are kept for the daemon's life, and each endpoint serves a copy.

use std::net::SocketAddr;
use std::sync::Mutex;

/// The TCP listeners systemd passed, kept for the daemon's life.
static TCP_LISTENERS: Mutex<Vec<std::net::TcpListener>> = Mutex::new(Vec::new());

/// A copy of the TCP listener systemd passed for `addr`, if it passed one.
pub fn tcp_listener(addr: SocketAddr) -> Option<std::io::Result<std::net::TcpListener>> {
    let kept = TCP_LISTENERS.lock().unwrap_or_else(|p| p.into_inner());
    kept.iter()
        .find(|listener| listener.local_addr().is_ok_and(|bound| bound == addr))
        .map(std::net::TcpListener::try_clone)
}

/// The listening Unix sockets systemd passed to this process, not yet claimed.
#[derive(Default)]
pub struct Activated {
    #[cfg(unix)]
    listeners: Vec<std::os::unix::net::UnixListener>,
}

impl Activated {
    /// Reads `LISTEN_FDS` (and clears it, so no child inherits it); TCP listeners go to the
    /// kept ones ([`tcp_listener`]).
    #[cfg(unix)]
    pub fn from_env() -> std::io::Result<Self> {
        let mut passed = listenfd::ListenFd::from_env();
        let mut listeners = Vec::new();
        let mut tcp = Vec::new();
        for index in 0..passed.len() {
            // A socket of the wrong kind is left in place by each attempt.
            if let Ok(Some(listener)) = passed.take_unix_listener(index) {
                listeners.push(listener);
            } else if let Some(listener) = passed.take_tcp_listener(index)? {
                tcp.push(listener);
            }
        }
        TCP_LISTENERS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(tcp);
        Ok(Activated { listeners })
    }

    #[cfg(not(unix))]
    pub fn from_env() -> std::io::Result<Self> {
        Ok(Activated::default())
    }

    /// The passed socket bound to `path`, if systemd passed one: the same path, or the same
    /// name in the same directory reached another way (a runtime directory behind a symlink).
    #[cfg(unix)]
    pub fn take(&mut self, path: &std::path::Path) -> Option<std::os::unix::net::UnixListener> {
        let position = self.listeners.iter().position(|listener| {
            listener
                .local_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(|bound| same_place(bound, path)))
                .unwrap_or(false)
        })?;
        Some(self.listeners.remove(position))
    }
}

/// Whether two paths name one socket.
#[cfg(unix)]
fn same_place(a: &std::path::Path, b: &std::path::Path) -> bool {
    let dir = |p: &std::path::Path| p.parent().and_then(|d| std::fs::canonicalize(d).ok());
    a == b || (a.file_name() == b.file_name() && dir(a).is_some() && dir(a) == dir(b))
}
