//! The sockets systemd hands over (socket activation): the main socket and the proxy's. The
//! environment that names them is read once, and each listener then claims its own socket by
//! its path, so the order of `ListenStream=` lines in the unit does not matter, and a unit of
//! an older credd that lists only the main socket still works (the proxy binds its own).

/// The listening Unix sockets systemd passed to this process, not yet claimed.
#[derive(Default)]
pub struct Activated {
    #[cfg(unix)]
    listeners: Vec<std::os::unix::net::UnixListener>,
}

impl Activated {
    /// Reads `LISTEN_FDS` (and clears it, so no child inherits it).
    #[cfg(unix)]
    pub fn from_env() -> std::io::Result<Self> {
        let mut passed = listenfd::ListenFd::from_env();
        let mut listeners = Vec::new();
        for index in 0..passed.len() {
            if let Some(listener) = passed.take_unix_listener(index)? {
                listeners.push(listener);
            }
        }
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
