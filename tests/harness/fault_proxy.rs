//! A proxy in front of a real upstream (moto) that can be told to fail: answer 500, throttle,
//! or hang, as a real service does on a bad day. Every request that reaches it is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

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
                3 => Response::reset(),
                4 => {
                    std::thread::sleep(std::time::Duration::from_secs(120));
                    Response::reset()
                }
                5 => Response::new(200, "text/html", "<html>maintenance</html>"),
                6 => expired(crate::http::forward(upstream_port, request)),
                _ => crate::http::forward(upstream_port, request),
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

/// The answer with every `<Expiration>` moved to the year 2000.
fn expired(mut response: Response) -> Response {
    let body = String::from_utf8_lossy(&response.body).to_string();
    let mut out = String::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("<Expiration>") {
        let Some(end) = rest[start..].find("</Expiration>") else {
            break;
        };
        out += &rest[..start];
        out += "<Expiration>2000-01-01T00:00:00Z</Expiration>";
        rest = &rest[start + end + "</Expiration>".len()..];
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
