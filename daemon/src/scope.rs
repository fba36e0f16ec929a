//! A forward's view of the daemon: which sources its sockets serve, which requests it admits,
//! whose processes it serves, and what it has seen of them for `status`.
//!
//! The main socket serves everything to this user; a forward's sockets (see `forwards`) serve
//! a container or a remote, and only what the config lists for it: `get`, `login`, `refresh`
//! and `status` of its own sources. Stopping the daemon, signing out and moving its clock are
//! for the person at the host.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use credd_proto::{ErrorKind, ForwardStatus, Request, Response, forward};

use crate::clock::Clock;

/// One forward as it runs: its config, and what it has seen.
pub struct Forward {
    pub name: String,
    pub dir: PathBuf,
    sources: BTreeSet<String>,
    allow_uids: Vec<u32>,
    connected: AtomicU32,
    /// When it last served a connection, and to which uid.
    last: Mutex<Option<(i64, u32)>>,
    /// Why it does not listen, when it does not.
    error: Mutex<Option<String>>,
    /// The AWS config file beside its sockets (no secret), for `credd ssh` to carry.
    aws_config: String,
    /// When a refresh was last forced through it, per source.
    refreshed: Mutex<BTreeMap<String, std::time::SystemTime>>,
    clock: Arc<Clock>,
}

impl Forward {
    pub fn new(
        name: &str,
        dir: PathBuf,
        sources: &[impl ToString],
        allow_uids: &[u32],
        aws_config: String,
        clock: Arc<Clock>,
    ) -> Self {
        Forward {
            name: name.to_string(),
            dir,
            sources: sources.iter().map(ToString::to_string).collect(),
            allow_uids: allow_uids.to_vec(),
            connected: AtomicU32::new(0),
            last: Mutex::new(None),
            error: Mutex::new(None),
            aws_config,
            refreshed: Mutex::new(BTreeMap::new()),
            clock,
        }
    }

    pub fn serves(&self, source: &str) -> bool {
        self.sources.contains(source)
    }

    /// Whether it serves the source a proxy route's host names (without case, as URL hosts
    /// are lower case).
    pub fn serves_route(&self, source: &str) -> bool {
        self.sources.iter().any(|s| s.eq_ignore_ascii_case(source))
    }

    /// Whether a refresh of `source` may be forced through the forward now: at most one per
    /// [`crate::policy::FORCED_REFRESH_INTERVAL`], so that the other side cannot hammer the upstream.
    pub fn may_refresh(&self, source: &str) -> bool {
        let now = self.clock.now();
        let mut refreshed = lock(&self.refreshed);
        if !crate::policy::may_force_refresh(refreshed.get(source).copied(), now) {
            return false;
        }
        refreshed.insert(source.to_string(), now);
        true
    }

    /// Whether a process of `uid` other than the daemon's own may use it.
    pub fn allows(&self, uid: u32) -> bool {
        self.allow_uids.contains(&uid)
    }

    pub fn allow_uids(&self) -> &[u32] {
        &self.allow_uids
    }

    /// Why `source` is refused here.
    pub fn not_served(&self, source: &str) -> String {
        format!(
            "the credd forward `{}` does not serve `{source}` (it serves: {}); add it to [forwards.{}] sources in the host's config",
            self.name,
            self.sources.iter().cloned().collect::<Vec<_>>().join(", "),
            self.name
        )
    }

    /// The refusal for a request this forward does not admit, if it does not.
    pub fn admit(&self, request: &Request) -> Option<Response> {
        let source = match request {
            Request::Hello | Request::Status => return None,
            Request::Get { source, .. }
            | Request::BedrockApiKey { source, .. }
            | Request::Refresh { source }
            | Request::Login { source }
            | Request::LoginWait { source }
            | Request::LoginCode { source, .. } => source,
            Request::Stop | Request::Logout { .. } | Request::AdvanceClock { .. } => {
                let what = match request {
                    Request::Stop => "stopping credd-daemon",
                    Request::Logout { .. } => "signing out",
                    _ => "moving the daemon's clock",
                };
                return Some(Response::error(
                    ErrorKind::Refused,
                    format!(
                        "{what} is not done through the credd forward `{}`; do it on the host",
                        self.name
                    ),
                ));
            }
        };
        (!self.serves(source)).then(|| Response::error(ErrorKind::Refused, self.not_served(source)))
    }

    /// Sources' endpoints as seen through the forward: their proxy routes on the forward's
    /// own proxy socket; no TCP endpoint (the host's ports are not the other side's).
    pub fn localize(&self, sources: &mut [credd_proto::SourceStatus]) {
        for source in sources.iter_mut() {
            source.endpoints.retain(|e| e.socket.is_some());
        }
        let proxy = self.dir.join(forward::PROXY_SOCKET_FILE);
        forward::localize(sources, &proxy.display().to_string());
    }

    /// Counts a connection from `uid` until the guard is dropped.
    pub fn connection(self: &Arc<Self>, uid: u32) -> Connected {
        self.connected.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last) = Some((self.clock.now_unix(), uid));
        Connected(self.clone())
    }

    pub fn set_error(&self, error: Option<String>) {
        *lock(&self.error) = error;
    }

    pub fn status(&self) -> ForwardStatus {
        let last = *lock(&self.last);
        ForwardStatus {
            name: self.name.clone(),
            dir: self.dir.display().to_string(),
            socket: self.dir.join(forward::SOCKET_FILE).display().to_string(),
            proxy_socket: self
                .dir
                .join(forward::PROXY_SOCKET_FILE)
                .display()
                .to_string(),
            sources: self.sources.iter().cloned().collect(),
            allow_uids: self.allow_uids.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            last_used_at: last.map(|(at, _)| at),
            last_peer_uid: last.map(|(_, uid)| uid),
            error: lock(&self.error).clone(),
            aws_config: Some(self.aws_config.clone()),
        }
    }
}

/// A connection counted by [`Forward::connection`].
pub struct Connected(Arc<Forward>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The forwards running now, for `status`.
#[derive(Default)]
pub struct ForwardTable(RwLock<BTreeMap<String, Arc<Forward>>>);

impl ForwardTable {
    pub fn set(&self, forwards: BTreeMap<String, Arc<Forward>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = forwards;
    }

    pub fn statuses(&self) -> Vec<ForwardStatus> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|f| f.status())
            .collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_admits_only_its_sources_and_no_stop() {
        let forward = Forward::new(
            "dev",
            PathBuf::from("/x"),
            &["bedrock"],
            &[],
            String::new(),
            Arc::new(Clock::system_adjustable()),
        );
        let get = |source: &str| Request::Get {
            source: source.into(),
            min_valid_secs: None,
            caller: None,
            audience: None,
        };
        assert!(forward.admit(&get("bedrock")).is_none());
        assert!(forward.admit(&Request::Status).is_none());
        for refused in [
            get("vertex"),
            Request::Stop,
            Request::Logout {
                source: "bedrock".into(),
            },
            Request::Refresh {
                source: "vertex".into(),
            },
        ] {
            assert!(
                matches!(forward.admit(&refused), Some(Response::Error(e)) if e.kind == ErrorKind::Refused),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_forward_forces_a_refresh_at_most_once_a_while() {
        let clock = Arc::new(Clock::system_adjustable());
        let forward = Forward::new(
            "dev",
            PathBuf::from("/x"),
            &["a"],
            &[],
            String::new(),
            clock.clone(),
        );
        assert!(forward.may_refresh("a"));
        assert!(!forward.may_refresh("a"));
        clock.advance(crate::policy::FORCED_REFRESH_INTERVAL);
        assert!(forward.may_refresh("a"));
    }

    #[test]
    fn connections_are_counted_while_open() {
        let clock = Arc::new(Clock::system_adjustable());
        let forward = Arc::new(Forward::new(
            "dev",
            PathBuf::from("/x"),
            &["a"],
            &[0],
            String::new(),
            clock.clone(),
        ));
        let guard = forward.connection(0);
        assert_eq!(forward.status().connected, 1);
        drop(guard);
        let status = forward.status();
        assert_eq!(
            (status.connected, status.last_used_at, status.last_peer_uid),
            (0, Some(clock.now_unix()), Some(0))
        );
    }
}
