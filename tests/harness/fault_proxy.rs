//! A proxy in front of a real upstream (moto) that can be told to fail: answer 500, throttle,
//! or hang, as a real service does on a bad day, or answer as a service whose clock is off.
//! Every request that reaches it is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::time::SystemTime;

use crate::http::{HttpStub, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// HTTP 500 InternalFailure.
    ServerError = 1,
    /// HTTP 400 Throttling ("Rate exceeded").
    Throttle = 2,
    /// The connection is closed without an answer.
    Reset = 3,
    /// No answer for two minutes.
    Hang = 4,
    /// HTTP 200 with a body that is not STS's.
    Garbage = 5,
    /// STS's answer, with credentials that expired in 2000.
    ExpiredOnArrival = 6,
}

#[derive(Clone)]
pub struct FaultProxy {
    stub: HttpStub,
    fault: Arc<AtomicU8>,
    requests: Arc<AtomicUsize>,
    clock_offset: Arc<AtomicI64>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16) -> Self {
        let fault = Arc::new(AtomicU8::new(Fault::None as u8));
        let requests = Arc::new(AtomicUsize::new(0));
        let clock_offset = Arc::new(AtomicI64::new(0));
        let (f, r, c) = (fault.clone(), requests.clone(), clock_offset.clone());
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
                3 => Response::reset(),
                4 => {
                    std::thread::sleep(std::time::Duration::from_secs(120));
                    Response::reset()
                }
                5 => Response::new(200, "text/html", "<html>maintenance</html>"),
                6 => map_expirations(crate::http::forward(upstream_port, request), |_| {
                    humantime::parse_rfc3339("2000-01-01T00:00:00Z").unwrap()
                }),
                _ => match c.load(Ordering::SeqCst) {
                    0 => crate::http::forward(upstream_port, request),
                    offset => skewed(crate::http::forward(upstream_port, request), offset),
                },
            }
        });
        FaultProxy {
            stub,
            fault,
            requests,
            clock_offset,
        }
    }

    /// Answers from now on as STS would with its clock `secs` ahead of this machine's (behind
    /// when negative): every `<Expiration>` and the `Date` header moved by that much.
    pub fn set_clock_offset(&self, secs: i64) {
        self.clock_offset.store(secs, Ordering::SeqCst);
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

/// The answer as a server whose clock is `offset` seconds off would have given it.
fn skewed(response: Response, offset: i64) -> Response {
    map_expirations(response, |t| crate::http::shifted(t, offset)).dated(offset)
}

/// The answer with every `<Expiration>` replaced by `change` of it.
fn map_expirations(mut response: Response, change: impl Fn(SystemTime) -> SystemTime) -> Response {
    let body = String::from_utf8_lossy(&response.body).to_string();
    let mut out = String::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("<Expiration>") {
        let value_start = start + "<Expiration>".len();
        let Some(len) = rest[value_start..].find("</Expiration>") else {
            break;
        };
        let stated = humantime::parse_rfc3339_weak(
            rest[value_start..value_start + len].trim_end_matches('Z'),
        )
        .expect("STS states expirations in RFC 3339");
        out += &rest[..value_start];
        out += &humantime::format_rfc3339_seconds(change(stated)).to_string();
        rest = &rest[value_start + len..];
    }
    out += rest;
    response.body = out.into_bytes();
    response
}

/// An error in the AWS Query protocol's format (STS).
fn query_error(kind: &str, code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    )
}
