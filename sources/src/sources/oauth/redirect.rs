//! The browser sign-in's two ends on this machine (RFC 8252): the authorization request with
//! PKCE (S256), `state` and `nonce`, and the loopback listener that the provider sends the
//! browser back to. It holds the port on both 127.0.0.1 and ::1 (a browser may try either for
//! `localhost`, and another user must not hold the other), answers only its one path, only this
//! user's connections (another local user cannot end or hijack the sign-in; theirs are closed
//! unread), at most [`MAX_CONNECTIONS`] at once with a short header timeout, takes the first
//! answer that carries this sign-in's `state`, and closes: a second redirect finds nobody
//! listening.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use credd_proto::Secret;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use sha2::Digest as _;
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::sources::SourceError;

/// How long the page that delivered the answer may take to be sent once the sign-in has it.
const LAST_PAGE_GRACE: Duration = Duration::from_secs(2);

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;

/// How long a connection may take to send its request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How many ports to try for one free on both loopback addresses.
const PORT_TRIES: usize = 8;

/// What the authorization request asks for, and where the answer comes back.
pub struct AuthorizationRequest<'a> {
    /// The authorization endpoint.
    pub endpoint: &'a str,
    pub client_id: &'a str,
    /// Space-separated.
    pub scope: String,
    /// The redirect URI's host: `127.0.0.1` (RFC 8252's advice), or `localhost` for providers
    /// whose public clients are registered with it (Entra's Azure CLI app). The listener is on
    /// 127.0.0.1 either way.
    pub redirect_host: &'a str,
    /// A fixed port, for providers that match the redirect URI exactly; any free one if `None`.
    pub redirect_port: Option<u16>,
    pub redirect_path: &'a str,
    /// More parameters (Auth0's `audience`, a `prompt`).
    pub extra: Vec<(&'a str, &'a str)>,
}

/// A browser sign-in waiting for its answer.
pub struct Pending {
    pub url: String,
    pub redirect_uri: String,
    pub verifier: Secret,
    pub nonce: String,
    state: String,
    path: String,
    /// On 127.0.0.1, and on ::1 where the machine has IPv6.
    listeners: Vec<tokio::net::TcpListener>,
}

/// Listeners on `port` (any free one if `None`) of both 127.0.0.1 and ::1: a port whose other
/// address someone else holds is given up for another.
async fn bind(port: Option<u16>) -> Result<Vec<tokio::net::TcpListener>, SourceError> {
    let cannot = |e: std::io::Error, what: &str| {
        SourceError::Upstream(format!(
            "cannot listen on {what} for the sign-in's redirect: {e}"
        ))
    };
    for _ in 0..PORT_TRIES {
        let v4 = tokio::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .map_err(|e| cannot(e, &format!("127.0.0.1:{}", port.unwrap_or(0))))?;
        let chosen = v4
            .local_addr()
            .map_err(|e| SourceError::Internal(e.to_string()))?
            .port();
        match tokio::net::TcpListener::bind(("::1", chosen)).await {
            Ok(v6) => return Ok(vec![v4, v6]),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if port.is_some() {
                    return Err(cannot(
                        e,
                        &format!("[::1]:{chosen} (another program holds it)"),
                    ));
                }
                tracing::warn!(
                    port = chosen,
                    "[::1] holds the sign-in's port already; trying another"
                );
            }
            // No IPv6 loopback here: nobody can take it either.
            Err(_) => return Ok(vec![v4]),
        }
    }
    Err(SourceError::Upstream(
        "no port is free on both 127.0.0.1 and ::1 for the sign-in's redirect".into(),
    ))
}

/// The next connection to any of `listeners`.
async fn accept(
    listeners: &[tokio::net::TcpListener],
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    let accepts = listeners.iter().map(|l| Box::pin(l.accept()));
    futures_util::future::select_all(accepts).await.0
}

/// `bytes` random bytes, base64url without padding (PKCE's verifier, `state`, `nonce`).
fn random(bytes: usize) -> Result<String, SourceError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer)
        .map_err(|e| SourceError::Internal(format!("the OS gave no random bytes: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer))
}

/// PKCE's S256 challenge for `verifier` (RFC 7636 4.2).
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

impl Pending {
    /// Opens the listener and makes the authorization request.
    pub async fn start(request: AuthorizationRequest<'_>) -> Result<Self, SourceError> {
        let listeners = bind(request.redirect_port).await?;
        let port = listeners[0]
            .local_addr()
            .map_err(|e| SourceError::Internal(e.to_string()))?
            .port();
        let redirect_uri = format!(
            "http://{}:{port}{}",
            request.redirect_host, request.redirect_path
        );
        let verifier = random(32)?;
        let (state, nonce) = (random(24)?, random(24)?);
        let mut url = reqwest::Url::parse(request.endpoint).map_err(|_| {
            SourceError::Upstream("the provider's authorization endpoint is not a URL".into())
        })?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", request.client_id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("scope", &request.scope)
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            for (key, value) in &request.extra {
                query.append_pair(key, value);
            }
        }
        Ok(Pending {
            url: url.into(),
            redirect_uri,
            verifier: Secret::new(verifier),
            nonce,
            state,
            path: request.redirect_path.to_string(),
            listeners,
        })
    }

    /// Waits for the provider's answer until `deadline`: the authorization code, or why the
    /// sign-in failed. `issuer`, when known, is checked against an answer's `iss` (RFC 9207).
    pub async fn code(
        self,
        clock: &Clock,
        deadline: SystemTime,
        issuer: Option<&str>,
    ) -> Result<Secret, SourceError> {
        let (answers, mut answered) = mpsc::channel(1);
        let mut connections = tokio::task::JoinSet::new();
        let expect = std::sync::Arc::new(Expect {
            state: self.state,
            path: self.path,
            issuer: issuer.map(str::to_string),
        });
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let outcome = loop {
            tokio::select! {
                accepted = accept(&self.listeners) => {
                    let Ok((stream, peer)) = accepted else {
                        // Out of descriptors, say: not a busy loop.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    // Another user's connection is closed unread.
                    if !stream.local_addr().is_ok_and(|local| is_ours(peer, local)) {
                        continue;
                    }
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        continue;
                    };
                    connections.spawn(serve(stream, expect.clone(), answers.clone(), slot));
                }
                Some(answer) = answered.recv() => break answer,
                // It wakes early (at most a while, or when the clock moves): look again.
                () = clock.sleep_until(deadline) => {
                    if clock.now() >= deadline {
                        break Err(SourceError::NeedsLogin(
                            "the browser sign-in did not finish in time".into(),
                        ));
                    }
                }
            }
        };
        drop(self.listeners);
        // The page that delivered the answer is still being sent; the others are cut.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(LAST_PAGE_GRACE, async {
                while connections.join_next().await.is_some() {}
            })
            .await;
        });
        outcome
    }
}

/// What an answer must match.
struct Expect {
    state: String,
    path: String,
    issuer: Option<String>,
}

type Answer = Result<Secret, SourceError>;

/// Serves one connection of this user's to the listener, holding one of the slots.
async fn serve(
    stream: tokio::net::TcpStream,
    expect: std::sync::Arc<Expect>,
    answers: mpsc::Sender<Answer>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let page = answer(&request, &expect, &answers);
            async move { Ok::<_, Infallible>(page) }
        });
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, service)
        .await;
}

/// Whether the connection from `peer` is this user's (where the system can tell).
fn is_ours(peer: SocketAddr, local: SocketAddr) -> bool {
    match credd_proto::tcp_owner::client_uid(peer, local) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        Ok(uid) => uid == unsafe { libc::geteuid() },
        Err(e) => e.kind() == std::io::ErrorKind::Unsupported,
    }
}

/// The page for one request, passing the sign-in's answer on when the request carries one.
fn answer(
    request: &hyper::Request<hyper::body::Incoming>,
    expect: &Expect,
    answers: &mpsc::Sender<Answer>,
) -> Response<Full<Bytes>> {
    if request.uri().path() != expect.path {
        return page(StatusCode::NOT_FOUND, "Nothing here.");
    }
    if request.method() != hyper::Method::GET {
        return page(StatusCode::METHOD_NOT_ALLOWED, "Nothing here.");
    }
    let query: Vec<(String, String)> =
        form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let get = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let state_matches = get("state").is_some_and(|state| {
        subtle::ConstantTimeEq::ct_eq(state.as_bytes(), expect.state.as_bytes()).into()
    });
    if !state_matches {
        return page(
            StatusCode::BAD_REQUEST,
            "This answer is not for the sign-in credd is waiting for (its state differs). Start again with `credd login`.",
        );
    }
    let other_issuer = match (get("iss"), &expect.issuer) {
        (Some(iss), Some(issuer)) => iss.trim_end_matches('/') != issuer,
        _ => false,
    };
    let outcome = if other_issuer {
        Err(SourceError::Upstream(
            "the sign-in's answer came from another issuer (`iss`); refused".into(),
        ))
    } else if let Some(error) = get("error") {
        let code = crate::redact::one_line(error);
        let why = get("error_description")
            .map(|d| format!(" ({})", crate::redact::one_line(d)))
            .unwrap_or_default();
        let message = format!("the provider refused the sign-in: {code}{why}");
        Err(if code == "access_denied" || code == "login_required" {
            SourceError::NeedsLogin(message)
        } else {
            SourceError::Upstream(message)
        })
    } else {
        match get("code").filter(|c| !c.is_empty()) {
            Some(code) => Ok(Secret::new(code)),
            None => Err(SourceError::Upstream(
                "the provider's answer holds no authorization code".into(),
            )),
        }
    };
    let page_for = match &outcome {
        Ok(_) => page(
            StatusCode::OK,
            "credd has the sign-in. You can close this tab and go back to your terminal.",
        ),
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            "The sign-in failed; `credd status` says why.",
        ),
    };
    // Only the first answer counts; the channel holds one.
    let _ = answers.try_send(outcome);
    page_for
}

/// A plain page that says `text` and nothing the request held.
fn page(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>credd</title></head><body><p>{text}</p></body></html>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .body(Full::new(Bytes::from(html)))
        .expect("a static response is valid")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_challenge_is_rfc_7636s_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            super::challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
