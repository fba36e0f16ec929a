//! A proxy in front of a real upstream (moto) that can be told to fail: answer 500, throttle,
//! or hang, as a real service does on a bad day. Every request that reaches it is counted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use crate::http::{HttpStub, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// HTTP 500 InternalFailure.
    ServerError = 1,
    /// HTTP 400 Throttling ("Rate exceeded").
    Throttle = 2,
}

#[derive(Clone)]
pub struct FaultProxy {
    stub: HttpStub,
    fault: Arc<AtomicU8>,
    requests: Arc<AtomicUsize>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16) -> Self {
        let fault = Arc::new(AtomicU8::new(Fault::None as u8));
        let requests = Arc::new(AtomicUsize::new(0));
        let (f, r) = (fault.clone(), requests.clone());
        let stub = HttpStub::start(move |request| {
            r.fetch_add(1, Ordering::SeqCst);
            match f.load(Ordering::SeqCst) {
                1 => Response::new(
                    500,
                    "text/xml",
                    query_error("Receiver", "InternalFailure", "internal failure"),
                ),
                2 => Response::new(
                    400,
                    "text/xml",
                    query_error("Sender", "Throttling", "Rate exceeded"),
                ),
                _ => forward(upstream_port, request),
            }
        });
        FaultProxy {
            stub,
            fault,
            requests,
        }
    }

    pub fn url(&self) -> String {
        self.stub.url()
    }

    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// An error in the AWS Query protocol's format (STS).
fn query_error(kind: &str, code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    )
}

fn forward(port: u16, request: &Request) -> Response {
    let mut upstream = TcpStream::connect(("127.0.0.1", port)).expect("connect upstream");
    upstream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let query: Vec<String> = request
        .query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let target = if query.is_empty() {
        request.path.clone()
    } else {
        format!("{}?{}", request.path, query.join("&"))
    };
    let mut head = format!("{} {target} HTTP/1.1\r\n", request.method);
    for (k, v) in &request.headers {
        if !matches!(
            k.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            head += &format!("{k}: {v}\r\n");
        }
    }
    head += &format!(
        "connection: close\r\ncontent-length: {}\r\n\r\n",
        request.body.len()
    );
    upstream.write_all(head.as_bytes()).unwrap();
    upstream.write_all(&request.body).unwrap();
    let mut raw = Vec::new();
    let _ = upstream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let mut response = Response {
        status,
        headers: Vec::new(),
        body,
    };
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if !matches!(
                k.as_str(),
                "content-length" | "connection" | "transfer-encoding"
            ) {
                response.headers.push((k, v.trim().to_string()));
            }
        }
    }
    response
}
