//! `credd doctor`'s look at a local endpoint: it asks what an SDK would ask, with the header an
//! SDK would send (read from the file `credd status` names), so an endpoint that accepts
//! connections but refuses its callers (a wrong token file, a peer it cannot identify) is
//! found. Before it sends a header read from a secret file, it asks the kernel who holds the
//! port: another user's listener there is an impostor, and gets nothing. A plain HTTP/1.1 GET
//! over std's TCP: the client links no HTTP library. Bodies of
//! answers that succeed may hold credentials and are never shown; error bodies are the
//! endpoint's own messages, which name no secret.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use credd_proto::EndpointStatus;

/// How long the probe waits to connect, and then for the whole answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// The most of an answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// What an SDK would ask of this kind of endpoint, and whether an answer is the right one.
struct Question {
    path: String,
    header: Option<(&'static str, String)>,
    expected: fn(u16, &str) -> bool,
}

/// `Ok` with what was checked, or `Err` with what is wrong.
pub fn probe(endpoint: &EndpointStatus) -> Result<String, String> {
    #[cfg(unix)]
    if let Some(socket) = &endpoint.socket {
        return probe_socket(endpoint, std::path::Path::new(socket));
    }
    let Some((addr, base)) = split_url(&endpoint.url) else {
        return Err(format!("cannot read the endpoint URL {}", endpoint.url));
    };
    let question = question(endpoint, base)?;
    let (status, body) = get(addr, &question).map_err(|e| match e {
        Probe::Io(e) => format!("nothing answers at {} ({e})", endpoint.url),
        Probe::Impostor(why) => why,
    })?;
    verdict(endpoint, &question, status, &body)
}

/// The proxy on its Unix socket: asked in the private directory it must be in (checked as
/// the client checks the main socket's, so nobody else can have made it), with its `Host`.
#[cfg(unix)]
fn probe_socket(endpoint: &EndpointStatus, socket: &std::path::Path) -> Result<String, String> {
    let dir = credd_proto::paths::socket_dir(socket).map_err(|e| e.to_string())?;
    credd_proto::paths::check_private_dir(dir).map_err(|e| e.to_string())?;
    let host = endpoint
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let question = question(endpoint, "/")?;
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("nothing answers on {} ({e})", socket.display()))?;
    let timeouts = stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(CONNECT_TIMEOUT)));
    timeouts.map_err(|e| format!("cannot use {} ({e})", socket.display()))?;
    let (status, body) = exchange(stream, host, &question)
        .map_err(|e| format!("{} on {} failed: {e}", endpoint.url, socket.display()))?;
    verdict(endpoint, &question, status, &body)
}

/// What an answer says of the endpoint.
fn verdict(
    endpoint: &EndpointStatus,
    question: &Question,
    status: u16,
    body: &str,
) -> Result<String, String> {
    if (question.expected)(status, body) {
        Ok(format!("{} answers an SDK's request", endpoint.url))
    } else if (200..300).contains(&status) {
        // A body that succeeded may hold a credential: it is never shown.
        Err(format!(
            "{} answered {status}, not what an SDK expects",
            endpoint.url
        ))
    } else {
        let message = body.lines().next().unwrap_or("").trim();
        let message: String = message.chars().take(200).collect();
        Err(format!("{} answered {status}: {message}", endpoint.url))
    }
}

fn question(endpoint: &EndpointStatus, base: &str) -> Result<Question, String> {
    let from_file = |var: &str| -> Result<String, String> {
        let path = endpoint
            .env
            .iter()
            .find_map(|line| line.strip_prefix(var))
            .map(|rest| rest.trim_start_matches("$(cat '").trim_end_matches("')"))
            .ok_or_else(|| format!("the daemon names no {}", var.trim_end_matches('=')))?;
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read {path}: {e}"))
    };
    Ok(match endpoint.kind.as_str() {
        "aws-container" => Question {
            path: base.to_string(),
            header: Some((
                "Authorization",
                from_file("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=")?,
            )),
            expected: |status, _| status == 200,
        },
        "gce-metadata" => Question {
            path: format!("{base}instance/service-accounts/default/email"),
            header: Some(("Metadata-Flavor", "Google".to_string())),
            expected: |status, _| status == 200,
        },
        // Without a resource the endpoint names what is missing, once it has taken the header:
        // that answer proves the header, without handing a token to the probe.
        "azure-managed-identity" => Question {
            path: format!("{base}?api-version=2019-08-01"),
            header: Some(("X-IDENTITY-HEADER", from_file("IDENTITY_HEADER=")?)),
            expected: |status, body| status == 400 && body.contains("resource is required"),
        },
        // The proxy's health path proves the credential and that the model API can be
        // reached, without calling the model. On its socket, the kernel vouches for the
        // caller; on its port, the caller secret does.
        "proxy" => Question {
            path: credd_proto::PROXY_HEALTH_PATH.to_string(),
            header: None,
            expected: |status, _| status == 200,
        },
        // An MCP route's URL is its server's endpoint; its health path is at the root.
        "proxy-port" | "mcp" => Question {
            path: if endpoint.kind == "mcp" {
                credd_proto::PROXY_HEALTH_PATH.to_string()
            } else {
                format!(
                    "{}{}",
                    base.trim_end_matches('/'),
                    credd_proto::PROXY_HEALTH_PATH
                )
            },
            header: Some((
                credd_proto::PROXY_SECRET_HEADER,
                endpoint
                    .secret_file
                    .as_deref()
                    .ok_or("the daemon names no caller secret for its route")
                    .and_then(|path| {
                        std::fs::read_to_string(path)
                            .map(|s| s.trim().to_string())
                            .map_err(|_| "the proxy's caller secret cannot be read")
                    })?,
            )),
            expected: |status, _| status == 200,
        },
        _ => Question {
            path: base.to_string(),
            header: None,
            expected: |status, _| status != 0,
        },
    })
}

/// `http://127.0.0.1:PORT/path` into the address and the path.
fn split_url(url: &str) -> Option<(SocketAddr, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    Some((host.parse().ok()?, path))
}

enum Probe {
    Io(std::io::Error),
    /// The port is held by someone this user must not send a secret to.
    Impostor(String),
}

impl From<std::io::Error> for Probe {
    fn from(e: std::io::Error) -> Self {
        Probe::Io(e)
    }
}

/// The status code and body of a GET.
fn get(addr: SocketAddr, question: &Question) -> Result<(u16, String), Probe> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    check_listener(&stream, addr).map_err(Probe::Impostor)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    Ok(exchange(stream, &addr.to_string(), question)?)
}

/// The status code and body of a GET for `host` on `stream`.
fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    question: &Question,
) -> std::io::Result<(u16, String)> {
    let header = question
        .header
        .as_ref()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: credd-doctor\r\n{header}Connection: close\r\n\r\n",
        question.path
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    Ok((status, body))
}

/// Whether the socket `stream` reached at `addr` is this user's (the endpoint's accepted end,
/// or its listener). Where the kernel cannot say (not Linux), the answer is yes: the daemon's
/// status, which says whether it holds the port, has been read before.
fn check_listener(stream: &TcpStream, addr: SocketAddr) -> Result<(), String> {
    let me = credd_proto::paths::effective_uid();
    let owner = stream
        .local_addr()
        .and_then(|ours| credd_proto::tcp_owner::owner_uid(addr, ours));
    match owner {
        Ok(uid) if uid == me => Ok(()),
        Ok(uid) => Err(format!(
            "{addr} is held by uid {uid}, not by this user's credd-daemon (uid {me}): another user may be posing as this endpoint; nothing from its secret file was sent"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(()),
        Err(e) => Err(format!(
            "cannot tell who holds {addr} ({e}); nothing from its secret file was sent"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// An endpoint that answers every request with `answer`, once.
    fn answering(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/msi/token", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let _ = stream.write_all(answer.as_bytes());
        });
        url
    }

    fn managed_identity(url: String, secret_file: &std::path::Path) -> EndpointStatus {
        EndpointStatus {
            kind: "azure-managed-identity".into(),
            url,
            env: vec![format!(
                "IDENTITY_HEADER=$(cat '{}')",
                secret_file.display()
            )],
            error: None,
            secret_file: Some(secret_file.display().to_string()),
            socket: None,
            server: None,
            listening: false,
        }
    }

    #[test]
    fn an_unexpected_success_is_reported_without_its_body() {
        let secret_file =
            std::env::temp_dir().join(format!("credd-probe-{}.secret", std::process::id()));
        std::fs::write(&secret_file, "header-secret").unwrap();
        let url = answering(
            "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n{\"access_token\":\"tok-secret\"}\n",
        );
        let verdict = probe(&managed_identity(url, &secret_file));
        let detail = verdict.unwrap_err();
        assert!(detail.contains("answered 200"), "{detail}");
        assert!(!detail.contains("tok-secret"), "{detail}");

        // A refusal is shown with the endpoint's message.
        let url = answering(
            "HTTP/1.1 401 Unauthorized\r\n\r\n{\"statusCode\":401,\"message\":\"missing or wrong X-IDENTITY-HEADER\"}",
        );
        let detail = probe(&managed_identity(url, &secret_file)).unwrap_err();
        assert!(
            detail.contains("answered 401") && detail.contains("X-IDENTITY-HEADER"),
            "{detail}"
        );
        assert!(!detail.contains("header-secret"), "{detail}");

        // No secret file: said plainly, nothing sent.
        std::fs::remove_file(&secret_file).unwrap();
        let detail = probe(&managed_identity(
            "http://127.0.0.1:9/msi/token".into(),
            &secret_file,
        ))
        .unwrap_err();
        assert!(detail.starts_with("cannot read "), "{detail}");
    }
}
