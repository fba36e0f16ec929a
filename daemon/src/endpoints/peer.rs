//! Who may talk to credd: the one decision ([`decide`]) for the socket (whose peer the kernel
//! names) and the endpoints. TCP does not say who connected, so the endpoint asks the kernel
//! who owns the client's socket ([`credd_proto::tcp_owner`], one exact lookup per connection,
//! made in the connection's own task, never on the accept loop). A connection from another user
//! is closed before a byte of it is read, whatever the endpoint. Where the system cannot tell
//! owners at all (not Linux), an endpoint with a secret still serves (the secret decides) and
//! one without refuses; a lookup that fails on Linux (a closing socket, no descriptors left)
//! refuses, so nobody unknown holds one of the endpoint's places.
//!
//! A flood of refused connections must not flood the log: each user's refusals are reported at
//! most once a minute, with how many there were.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to do with a connection, from who owns its client socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    /// Closed at once; the reason is for the log.
    Refuse(String),
}

/// The decision, apart from the lookup: `owner` is the lookup's answer, `me` the daemon's uid.
pub fn decide(owner: std::io::Result<u32>, me: u32, has_secret: bool) -> Verdict {
    match owner {
        Ok(uid) if uid == me => Verdict::Serve,
        Ok(uid) => Verdict::Refuse(format!("the client runs as uid {uid}, not {me}")),
        Err(e) if has_secret && e.kind() == std::io::ErrorKind::Unsupported => Verdict::Serve,
        Err(e) => Verdict::Refuse(format!("the client's user cannot be told ({e})")),
    }
}

/// As [`decide`] with no secret, for a socket whose allow-list (a forward's `allow_uids`) names
/// users it serves besides the daemon's own.
pub fn decide_allowing(owner: std::io::Result<u32>, me: u32, also: &[u32]) -> Verdict {
    match owner {
        Ok(uid) if also.contains(&uid) => Verdict::Serve,
        owner => decide(owner, me, false),
    }
}

/// Looks the client of `stream` up and decides.
pub fn check(stream: &tokio::net::TcpStream, peer: SocketAddr, has_secret: bool) -> Verdict {
    let owner = stream
        .local_addr()
        .and_then(|local| credd_proto::tcp_owner::client_uid(peer, local));
    decide(owner, credd_proto::paths::effective_uid(), has_secret)
}

/// How often one user's refusals are reported.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Refusals not yet reported, by reason, since the last report.
#[derive(Default)]
pub struct RefusalLog {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl RefusalLog {
    /// Logs a refusal now, or counts it for the next report.
    pub fn refused(&self, endpoint: &str, why: &str) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (last, count) = seen
            .entry(why.to_string())
            .or_insert((now - REPORT_EVERY, 0));
        *count += 1;
        if now.duration_since(*last) >= REPORT_EVERY {
            tracing::warn!(
                endpoint,
                refused = *count,
                "refused a connection: {why} (closed before reading it; reported once a minute)"
            );
            *last = now;
            *count = 0;
        }
        if seen.len() > 1024 {
            seen.retain(|_, (last, _)| now.duration_since(*last) < REPORT_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_daemons_own_user_is_served() {
        assert_eq!(decide(Ok(1000), 1000, false), Verdict::Serve);
        assert_eq!(decide(Ok(1000), 1000, true), Verdict::Serve);
        let other = decide(Ok(65534), 1000, true);
        assert_eq!(
            other,
            Verdict::Refuse("the client runs as uid 65534, not 1000".into())
        );
        assert_eq!(decide(Ok(0), 1000, false), decide(Ok(0), 1000, true));
        let unsupported = || Err(std::io::ErrorKind::Unsupported.into());
        assert_eq!(decide(unsupported(), 1000, true), Verdict::Serve);
        assert!(matches!(
            decide(unsupported(), 1000, false),
            Verdict::Refuse(_)
        ));
        let failed = || Err(std::io::Error::other("no descriptors left"));
        assert!(matches!(decide(failed(), 1000, true), Verdict::Refuse(_)));
        assert_eq!(decide_allowing(Ok(0), 1000, &[0]), Verdict::Serve);
        assert!(matches!(
            decide_allowing(Ok(0), 1000, &[33]),
            Verdict::Refuse(_)
        ));
        assert_eq!(decide_allowing(Ok(1000), 1000, &[]), Verdict::Serve);
    }

    #[test]
    fn the_socket_serves_only_its_own_user_and_never_an_unknown_one() {
        // The socket has no secret: an owner the system cannot name is refused.
        assert_eq!(decide(Ok(1000), 1000, false), Verdict::Serve);
        assert!(matches!(decide(Ok(1001), 1000, false), Verdict::Refuse(_)));
        assert!(matches!(decide(Ok(0), 1000, false), Verdict::Refuse(_)));
        let unknown = Err(std::io::ErrorKind::Unsupported.into());
        assert!(matches!(decide(unknown, 1000, false), Verdict::Refuse(_)));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn our_own_connection_is_served() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(check(&server, peer, false), Verdict::Serve);
    }
}
