//! The HTTP client `azure_identity` is given: credd's reqwest client (proxy, CA bundles,
//! timeout), which also keeps the last failed answer, so that credd can report what Entra said
//! and honour its `Retry-After`, and notes the `Date` of every answer (see
//! [`crate::upstream_clock`]). (`azure_identity` 1.0 cannot read Entra's error descriptions,
//! which carry escaped line breaks, into the borrowed strings it expects.)

use std::sync::{Arc, Mutex};

use azure_core::http::{AsyncRawResponse, HttpClient, Request};

use crate::sources::upstream;
use crate::upstream_clock::DateProbe;

/// A failed answer from the token endpoint.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub retry_after: Option<std::time::Duration>,
    /// What Entra said, read as every upstream's refusal is read.
    pub refusal: Option<crate::sources::upstream::Refusal>,
}

#[derive(Debug, Clone)]
pub struct RecordingClient {
    inner: reqwest::Client,
    last_failure: Arc<Mutex<Option<Failure>>>,
    /// Where the last request went (scheme, host, port): the authority, or a managed-identity
    /// endpoint.
    last_origin: Arc<Mutex<Option<String>>>,
    dates: DateProbe,
}

impl RecordingClient {
    pub fn new(inner: reqwest::Client) -> Self {
        RecordingClient {
            inner,
            last_failure: Arc::default(),
            last_origin: Arc::default(),
            dates: DateProbe::default(),
        }
    }

    pub fn last_origin(&self) -> Option<String> {
        self.last_origin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `Date` of the answers so far.
    pub fn dates(&self) -> &DateProbe {
        &self.dates
    }

    pub fn last_failure(&self) -> Option<Failure> {
        self.last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The body, at most [`crate::net::MAX_ANSWER`] bytes of it.
async fn read_capped(mut body: azure_core::http::AsyncResponseBody) -> azure_core::Result<Vec<u8>> {
    use futures_util::StreamExt as _;
    let mut read = Vec::new();
    while let Some(chunk) = body.next().await {
        crate::net::append_capped(&mut read, &chunk?).map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Io, e.to_string())
        })?;
    }
    Ok(read)
}

#[async_trait::async_trait]
impl HttpClient for RecordingClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        *self.last_origin.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(request.url().origin().ascii_serialization());
        let response = self.inner.execute_request(request).await?;
        self.dates
            .record(response.headers().get_optional_str(&"date".into()));
        let status = response.status();
        let headers = response.headers().clone();
        // Read here, whole but bounded, for the SDK (which would read any length).
        let body = read_capped(response.into_body()).await?;
        if status.is_success() {
            return Ok(AsyncRawResponse::from_bytes(status, headers, body));
        }
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(Failure {
            status: u16::from(status),
            retry_after: headers
                .get_optional_str(&"retry-after".into())
                .and_then(|v| upstream::retry_after(v, crate::clock::wall())),
            refusal: upstream::parse_refusal(&String::from_utf8_lossy(&body)),
        });
        Ok(AsyncRawResponse::from_bytes(status, headers, body))
    }
}
