//! How credd reaches upstreams on a corporate network: through the proxy the environment names
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, upper or lower case), trusting the system's roots
//! plus any CA bundle the user gives (`ca_bundle` in a source's config, `SSL_CERT_FILE`,
//! `AWS_CA_BUNDLE`, `REQUESTS_CA_BUNDLE`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
    http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;

use crate::upstream_clock::DateProbe;

/// The CA bundles to trust besides the system's, in the order they are named.
pub fn ca_bundles(configured: Option<&Path>) -> Vec<PathBuf> {
    configured
        .map(Path::to_path_buf)
        .into_iter()
        .chain(
            ["SSL_CERT_FILE", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"]
                .iter()
                .filter_map(|var| {
                    std::env::var_os(var)
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                }),
        )
        .collect()
}

/// The contents of every CA bundle to trust, or which one cannot be read.
fn read_ca_bundles(configured: Option<&Path>) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    ca_bundles(configured)
        .into_iter()
        .map(|path| match std::fs::read(&path) {
            Ok(pem) => Ok((path, pem)),
            Err(e) => Err(format!("cannot read the CA bundle {}: {e}", path.display())),
        })
        .collect()
}

/// An HTTPS client for the AWS SDK clients credd builds, with the proxy and CA settings above;
/// the `Date` of every answer goes to `dates`.
pub fn aws_http_client(
    ca_bundle: Option<&Path>,
    dates: &DateProbe,
) -> Result<SharedHttpClient, String> {
    let mut trust = TrustStore::default();
    for (_, pem) in read_ca_bundles(ca_bundle)? {
        trust = trust.with_pem_certificate(pem);
    }
    let tls = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| format!("the CA bundle cannot be used: {e}"))?;
    let proxy = ProxyConfig::from_env();
    let client = Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = Connector::builder().proxy_config(proxy.clone());
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(tls.clone())
            .build()
    });
    let dates = dates.clone();
    Ok(http_client_fn(move |settings, components| {
        SharedHttpConnector::new(DateRecorder {
            inner: client.http_connector(settings, components),
            dates: dates.clone(),
        })
    }))
}

/// A connector that notes the `Date` of each answer and bounds its body: the SDK reads a whole
/// answer before it parses one, so an upstream that sends without end would otherwise be held
/// in memory whole. A body past [`MAX_ANSWER`] fails the call while it is read. A request to
/// a loopback server another user holds is not sent (see [`crate::loopback_owner`]).
#[derive(Debug)]
struct DateRecorder {
    inner: SharedHttpConnector,
    dates: DateProbe,
}

impl HttpConnector for DateRecorder {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if let Err(refused) = crate::loopback_owner::check_url(request.uri()) {
            return HttpConnectorFuture::ready(Err(ConnectorError::other(Box::new(refused), None)));
        }
        let answer = self.inner.call(request);
        let dates = self.dates.clone();
        HttpConnectorFuture::new(async move {
            let response = answer.await?;
            dates.record(response.headers().get("date"));
            Ok(response
                .map(|body| SdkBody::from_body_1_x(http_body_util::Limited::new(body, MAX_ANSWER))))
        })
    }
}

/// An HTTPS client for the OAuth-style upstreams (Google's and Microsoft's token endpoints),
/// with the proxy and CA settings above; one call may take `timeout` at most.
pub fn oauth_http_client(
    ca_bundle: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    hardened_client(ca_bundle, timeout.min(Duration::from_secs(10)))?
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot set up HTTPS: {e}"))
}

/// An HTTPS client for the proxy's model-API calls, with the same settings but no bound on a
/// whole call (an answer streams for as long as the model writes): only connecting is bounded.
pub fn streaming_http_client(
    ca_bundle: Option<&Path>,
    connect_timeout: Duration,
) -> Result<reqwest::Client, String> {
    hardened_client(ca_bundle, connect_timeout)?
        .build()
        .map_err(|e| format!("cannot set up HTTPS: {e}"))
}

/// What every client of credd's own shares: the CA bundles, no redirects, credd's agent.
fn hardened_client(
    ca_bundle: Option<&Path>,
    connect_timeout: Duration,
) -> Result<reqwest::ClientBuilder, String> {
    let mut roots = Vec::new();
    for (path, pem) in read_ca_bundles(ca_bundle)? {
        roots.extend(
            reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("the CA bundle {} cannot be used: {e}", path.display()))?,
        );
    }
    Ok(reqwest::Client::builder()
        // An upstream that redirects is not followed: a 307/308 would re-send the form or the
        // request (client secrets, refresh tokens, signed credentials) to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge(roots)
        .connect_timeout(connect_timeout)
        // Nothing goes to a loopback server of another user's.
        .connector_layer(crate::loopback_owner::OwnerCheckLayer)
        // The default, said aloud: the proxy's small writes (a request, an event) leave at once.
        .tcp_nodelay(true)
        .user_agent(concat!("credd/", env!("CARGO_PKG_VERSION"))))
}

/// The most credd reads of one upstream answer: token responses are a few KiB; anything far
/// larger is refused before it is held in memory.
pub const MAX_ANSWER: usize = 1024 * 1024;

/// Why an answer could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("sent an answer larger than {} KiB", MAX_ANSWER / 1024)]
    TooLarge,
    #[error("broke off its answer: {0}")]
    Broken(String),
}

/// Reads `response`'s body, at most [`MAX_ANSWER`] bytes of it, as text.
pub async fn read_text(mut response: reqwest::Response) -> Result<String, ReadError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_ANSWER as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ReadError::Broken(e.without_url().to_string()))?
    {
        append_capped(&mut body, &chunk)?;
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Adds `chunk` to an answer being read, unless that takes it past [`MAX_ANSWER`]: the one
/// bound every reader of upstream answers applies (reqwest's here, the Azure SDK's transport).
pub fn append_capped(body: &mut Vec<u8>, chunk: &[u8]) -> Result<(), ReadError> {
    if body.len() + chunk.len() > MAX_ANSWER {
        return Err(ReadError::TooLarge);
    }
    body.extend_from_slice(chunk);
    Ok(())
}

/// An [`oauth_http_client`] built on first use, once (building reads the CA bundles).
pub struct LazyOAuthClient {
    ca_bundle: Option<PathBuf>,
    timeout: Duration,
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl LazyOAuthClient {
    pub fn new(ca_bundle: Option<PathBuf>, timeout: Duration) -> Self {
        LazyOAuthClient {
            ca_bundle,
            timeout,
            client: std::sync::OnceLock::new(),
        }
    }

    pub fn get(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| oauth_http_client(self.ca_bundle.as_deref(), self.timeout))
            .as_ref()
            .map_err(Clone::clone)
    }
}
