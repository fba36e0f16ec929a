//! The proxy's two hops: the caller's request passed on upstream without what belongs to the
//! caller's connection or authorization, and the upstream's answer streamed back as it comes
//! (Server-Sent Events and AWS event-stream alike), each piece within the idle timeout.

use std::time::Duration;

use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use hyper::body::Frame;

use super::route::Outgoing;
use crate::endpoints::{Body, BoxError, EndpointResponse};
use credd_proto::PROXY_SECRET_HEADER as SECRET_HEADER;

/// Headers that belong to one connection (RFC 9110 section 7.6.1), never passed on.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers the request's `Connection` header names: hop-by-hop too.
fn connection_listed(headers: &hyper::http::HeaderMap) -> Vec<String> {
    headers
        .get_all(hyper::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// The caller's headers that go upstream: not hop-by-hop ones, not its `Host`, and none of
/// the credentials a route sets (`authorization`, `x-api-key`, `x-amz-*`, the caller secret).
pub fn outgoing_headers(caller: &hyper::http::HeaderMap) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    let hop_by_hop = connection_listed(caller);
    for (name, value) in caller {
        let name_str = name.as_str();
        let dropped = HOP_BY_HOP.contains(&name_str)
            || hop_by_hop.iter().any(|h| h == name_str)
            || matches!(
                name_str,
                "host" | "content-length" | "authorization" | "x-api-key" | SECRET_HEADER
            )
            || name_str.starts_with("x-amz-");
        if !dropped {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// Sends `request` upstream; the answer's body is not read yet. Its head must come within
/// `timeout`.
pub async fn send(
    http: &reqwest::Client,
    request: Outgoing<'_>,
    timeout: Duration,
) -> Result<reqwest::Response, EndpointResponse> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| EndpointResponse::error(405, "an unknown method"))?;
    let sent = http
        .request(method, &request.url)
        .headers(request.headers)
        .body(request.body)
        .send();
    tokio::time::timeout(timeout, sent)
        .await
        .map_err(|_| {
            tracing::warn!(
                endpoint = "proxy",
                "the upstream sent no answer within {}s",
                timeout.as_secs()
            );
            EndpointResponse::error(504, "the model API did not answer in time")
        })?
        .map_err(|e| {
            if let Some(refused) = crate::loopback_owner::refusal_in(&e) {
                tracing::warn!(endpoint = "proxy", "the upstream was refused: {refused}");
                return EndpointResponse::error(502, format!("the model API: {refused}"));
            }
            let why = if e.is_timeout() || e.is_connect() {
                "cannot be reached"
            } else {
                "failed"
            };
            tracing::warn!(
                endpoint = "proxy",
                "the upstream {why}: {}",
                e.without_url()
            );
            EndpointResponse::error(502, format!("the model API {why} through the proxy"))
        })
}

/// The upstream's answer as it comes: its status and headers (less hop-by-hop ones), and its
/// body streamed, never buffered.
pub fn stream_back(answer: reqwest::Response, idle_timeout: Duration) -> hyper::Response<Body> {
    let mut builder = hyper::Response::builder().status(answer.status().as_u16());
    let hop_by_hop = connection_listed(answer.headers());
    for (name, value) in answer.headers() {
        let name_str = name.as_str();
        if !HOP_BY_HOP.contains(&name_str)
            && !hop_by_hop.iter().any(|h| h == name_str)
            && name_str != "content-length"
        {
            builder = builder.header(name, value);
        }
    }
    // Each piece within the idle timeout; after an error the stream ends.
    let pieces = Some(Box::pin(answer.bytes_stream()));
    let stream = futures_util::stream::unfold(pieces, move |pieces| async move {
        let mut pieces = pieces?;
        let piece = match tokio::time::timeout(idle_timeout, pieces.next()).await {
            Ok(None) => return None,
            Ok(Some(Ok(bytes))) => return Some((Ok(Frame::data(bytes)), Some(pieces))),
            Ok(Some(Err(e))) => Box::new(e.without_url()) as BoxError,
            Err(_) => format!("the model API sent nothing for {}s", idle_timeout.as_secs()).into(),
        };
        tracing::warn!(endpoint = "proxy", "an answer broke off: {piece}");
        Some((Err(piece), None))
    });
    builder
        .body(http_body_util::StreamBody::new(stream).boxed_unsync())
        .unwrap_or_else(|_| {
            crate::endpoints::plain_response(EndpointResponse::error(502, "a bad answer"))
        })
}

/// A refusal, on a connection that ends with it: it holds none of the proxy's places.
pub fn refusal(refusal: EndpointResponse) -> hyper::Response<Body> {
    let mut response = crate::endpoints::plain_response(refusal);
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_named_by_connection_are_hop_by_hop() {
        let mut headers = hyper::http::HeaderMap::new();
        headers.insert("connection", "keep-alive, X-Secret-Hop".parse().unwrap());
        assert_eq!(connection_listed(&headers), ["keep-alive", "x-secret-hop"]);
    }
}
