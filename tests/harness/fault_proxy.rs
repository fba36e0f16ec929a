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

/// An error in the AWS Query protocol's format (STS).
fn query_error(kind: &str, code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    )
}
