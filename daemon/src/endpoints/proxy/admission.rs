//! What a request must be to pass the proxy at all, before any credential is touched: a
//! method and a target a model API is asked with, the caller secret on the TCP port, a body
//! that arrives in time and fits; and the health path `credd doctor` asks.

use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::{Bytes, Incoming};

use super::route::Route;
use crate::endpoints::EndpointResponse;
use crate::endpoints::peer::RefusalLog;
use crate::endpoints::secret::EndpointSecret;
use credd_proto::Credential;
use credd_proto::PROXY_SECRET_HEADER as SECRET_HEADER;

/// The largest request body passed on; a Messages request with images stays well below.
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// The longest a caller may take to send a request's body once its headers are in.
pub const MAX_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the health path waits for the model API to answer at all.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// How a caller reached the proxy, and so what it must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// On the TCP port: the caller secret (anyone on the machine can connect to a port).
    Port,
    /// On the private Unix socket: the kernel vouched for the peer's uid already.
    Socket,
}

fn refuse(status: u16, message: &str) -> EndpointResponse {
    EndpointResponse::error(status, message.to_string())
}

/// Whether the request's head lets it through: a model API is asked with GET, POST and the
/// like on a path, so nothing tunnels through the proxy, nothing echoes its headers back, no
/// target names another host, and no preflight is answered; a caller on the port shows the
/// secret.
pub fn admit(
    request: &hyper::Request<Incoming>,
    caller: Caller,
    secret: &EndpointSecret,
    refusals: &RefusalLog,
) -> Result<(), EndpointResponse> {
    if request.method() == hyper::Method::OPTIONS {
        return Err(refuse(403, "the proxy answers no preflight"));
    }
    if matches!(
        *request.method(),
        hyper::Method::CONNECT | hyper::Method::TRACE
    ) {
        return Err(refuse(405, "the proxy passes on API requests only"));
    }
    if request.uri().scheme().is_some()
        || request.uri().authority().is_some()
        || !request.uri().path().starts_with('/')
    {
        return Err(refuse(400, "the request target must be a path"));
    }
    if caller == Caller::Socket {
        return Ok(());
    }
    match request
        .headers()
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        None => Err(refuse(
            401,
            "the proxy needs its caller secret in X-Credd-Proxy-Secret (see `credd status`)",
        )),
        Some(given) if !secret.matches(given) => {
            // Once a minute at most: where the system cannot tell who connects, anyone may try.
            refusals.refused("proxy", "a wrong caller secret");
            Err(refuse(403, "wrong caller secret"))
        }
        Some(_) => Ok(()),
    }
}

/// The request's body, whole: at most [`MAX_BODY`], within `timeout`.
pub async fn read_body(body: Incoming, timeout: Duration) -> Result<Bytes, EndpointResponse> {
    let collected = tokio::time::timeout(
        timeout,
        http_body_util::Limited::new(body, MAX_BODY).collect(),
    )
    .await
    .map_err(|_| {
        refuse(
            408,
            &format!(
                "the request's body did not arrive within {}s",
                timeout.as_secs()
            ),
        )
    })?
    .map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            refuse(
                413,
                &format!("the request is larger than {} MiB", MAX_BODY >> 20),
            )
        } else {
            refuse(400, "the request's body could not be read")
        }
    })?;
    Ok(collected.to_bytes())
}

/// For `credd doctor`: whether a credential can be had, and whether the model API answers at
/// all (any HTTP status will do: nothing is asked of the model).
pub async fn health(
    route: &Route,
    credential: Result<std::sync::Arc<Credential>, EndpointResponse>,
    http: &reqwest::Client,
) -> EndpointResponse {
    let credential = match credential {
        Ok(credential) => credential,
        Err(refusal) => return refusal,
    };
    let base = match route.health_url(&credential) {
        Ok(base) => base,
        Err(refusal) => return super::refused(refusal),
    };
    let asked = tokio::time::timeout(HEALTH_TIMEOUT, http.head(&base).send()).await;
    match asked {
        Err(_) => EndpointResponse::error(
            504,
            format!("{base} did not answer within {}s", HEALTH_TIMEOUT.as_secs()),
        ),
        Ok(Ok(answer)) => EndpointResponse::json(
            200,
            serde_json::json!({
                "credential": format!("valid until {}", humantime::format_rfc3339_seconds(crate::clock::from_unix_secs(credential.expires_at))),
                "upstream": format!("{base} answers (HTTP {})", answer.status().as_u16()),
            }),
        ),
        Ok(Err(e)) => EndpointResponse::error(
            502,
            format!(
                "{base} cannot be reached: {}",
                crate::redact::one_line(&e.without_url().to_string())
            ),
        ),
    }
}
