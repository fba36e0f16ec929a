//! A small HTTP/1.1 server for the stubs of upstreams and model APIs: it parses requests
//! (keep-alive, Content-Length or chunked bodies), hands each to a handler, and records them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query's parameters percent-decoded (as `query` keeps them raw), the last of a name
    /// winning.
    pub fn decoded_query(&self) -> std::collections::BTreeMap<String, String> {
        self.query
            .iter()
            .flat_map(|(k, v)| {
                form_urlencoded::parse(format!("{k}={v}").as_bytes())
                    .into_owned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self::new(status, "application/json", body.to_string())
    }

    /// No answer at all: the connection is closed as soon as the request is read.
    pub fn reset() -> Self {
        Response {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The answer with a `Date` header by a clock `offset_secs` off this machine's (replacing
    /// any it had), as a server whose clock is off sends it.
    pub fn dated(mut self, offset_secs: i64) -> Self {
        self.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("date"));
        self.with_header("date", &httpdate::fmt_http_date(clock_at(offset_secs)))
    }
}

/// The time by a clock `offset_secs` ahead of this machine's (behind when negative).
pub fn clock_at(offset_secs: i64) -> std::time::SystemTime {
    shifted(std::time::SystemTime::now(), offset_secs)
}

/// `time` moved `offset_secs` later (earlier when negative).
pub fn shifted(time: std::time::SystemTime, offset_secs: i64) -> std::time::SystemTime {
    let by = Duration::from_secs(offset_secs.unsigned_abs());
    if offset_secs >= 0 {
        time + by
    } else {
        time - by
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running stub server on 127.0.0.1.
#[derive(Clone)]
pub struct HttpStub {
    pub port: u16,
    tls: bool,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpStub {
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        Self::start_with(None, handler)
    }

    /// The same over HTTPS, with the certificate and key of a [`crate::peers::TestCa`].
    pub fn start_tls(
        cert_pem: &std::path::Path,
        key_pem: &std::path::Path,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(Some(tls_config(cert_pem, key_pem)), handler)
    }

    fn start_with(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub server");
        let stub = HttpStub {
            port: listener.local_addr().unwrap().port(),
            tls: tls.is_some(),
            requests: Arc::default(),
        };
        let handler: Arc<Handler> = Arc::new(handler);
        let requests = stub.requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, requests, tls) = (handler.clone(), requests.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    None => serve(stream, &*handler, &requests),
                    Some(config) => {
                        let Ok(connection) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        serve(
                            rustls::StreamOwned::new(connection, stream),
                            &*handler,
                            &requests,
                        )
                    }
                });
            }
        });
        stub
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn tls_config(cert_pem: &std::path::Path, key_pem: &std::path::Path) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certs: Vec<CertificateDer<'static>> = pem::parse_many(std::fs::read(cert_pem).unwrap())
        .unwrap()
        .into_iter()
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    let key = pem::parse(std::fs::read(key_pem).unwrap()).unwrap();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.into_contents()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("the test CA's server certificate"),
    )
}

fn serve(stream: impl Read + Write, handler: &Handler, requests: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let writer = reader.get_mut();
        let response = handler(&request);
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        requests.lock().unwrap().push(request);
        if response.status == 0 {
            return;
        }
        let reason = match response.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Status",
        };
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", response.status);
        for (k, v) in &response.headers {
            out += &format!("{k}: {v}\r\n");
        }
        out += &format!("content-length: {}\r\n\r\n", response.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&response.body);
        if writer.write_all(&bytes).is_err() || close {
            let _ = writer.flush();
            return;
        }
    }
}

/// Reads one request (its head, and a body of its Content-Length or chunked); `None` at the
/// end of the connection.
pub fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_string();
    let mut target = parts.next()?.to_string();
    // The absolute form (`POST https://host:port/path`), which clients send through proxies
    // and servers must accept (RFC 9112, 3.2.2): the path is what follows the authority.
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        target = rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut request = Request {
        method,
        path: path.to_string(),
        query,
        headers,
        body: Vec::new(),
    };
    request.body = read_body(reader, &request);
    Some(request)
}

fn read_body(reader: &mut impl BufRead, request: &Request) -> Vec<u8> {
    if let Some(len) = request
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        return body;
    }
    let mut body = Vec::new();
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            let _ = reader.read_exact(&mut chunk);
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    body
}

/// What a careless server quotes back of `request`: its form values (decoded) or other body,
/// and its Authorization header.
pub fn echo(request: &Request) -> String {
    let form = request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let body = if form {
        form_urlencoded::parse(&request.body)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        String::from_utf8_lossy(&request.body).into_owned()
    };
    format!(
        "{body} {}",
        request.header("authorization").unwrap_or_default()
    )
}

/// Sends `request` on to the server on 127.0.0.1:`port` and returns its answer (a proxy's
/// forwarding, for stubs that sit in front of a real upstream).
pub fn forward(port: u16, request: &Request) -> Response {
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
