//! `credd doctor`'s look at a local endpoint: it asks what an SDK would ask, with the header an
//! SDK would send (read from the file `credd status` names), so an endpoint that accepts
//! connections but refuses its callers (a wrong token file, a peer it cannot identify) is
//! found. A plain HTTP/1.1 GET over std's TCP: the client links no HTTP library. Bodies of
//! answers that succeed hold credentials and are never kept; error bodies are the endpoint's
//! own messages, which name no secret.

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
    let Some((addr, base)) = split_url(&endpoint.url) else {
        return Err(format!("cannot read the endpoint URL {}", endpoint.url));
    };
    let question = question(endpoint, base)?;
    let (status, body) =
        get(addr, &question).map_err(|e| format!("nothing answers at {} ({e})", endpoint.url))?;
    if (question.expected)(status, &body) {
        Ok(format!("{} answers an SDK's request", endpoint.url))
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
            .map(|rest| rest.trim_start_matches("$(cat ").trim_end_matches(')'))
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

/// The status code and body of a GET.
fn get(addr: SocketAddr, question: &Question) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    let header = question
        .header
        .as_ref()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: credd-doctor\r\n{header}Connection: close\r\n\r\n",
        question.path
    )?;
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
