//! The pieces every kind of source's table in the config shares: its proxy, its local
//! endpoint, where a login persists, durations. Each kind's own settings live beside the source
//! that reads them (`sources::<kind>::spec`), the `kind` that picks one in [`super::SourceSpec`],
//! and the config file's reader (`config`) puts them together.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Where a source keeps the long-lived part of an interactive login besides memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Persist {
    /// The OS secret store (Secret Service, the login Keychain); see `secret_store`.
    Keyring,
}

/// The authenticating proxy for a source: see `endpoints::proxy`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    /// A TCP port on 127.0.0.1 to serve it on as well, for tools that cannot use the Unix
    /// socket (Claude Code can); none by default: anyone on the machine can take a port while
    /// credd is down.
    #[serde(default)]
    pub port: Option<u16>,
    /// Where requests go. `aws`: the region's Bedrock runtime (or
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`); `gcp`: the Vertex AI host of the location each
    /// request names; `exec`: the first-party API; `entra`: required (the Foundry resource's
    /// URL).
    #[serde(default)]
    pub upstream: Option<String>,
    /// `exec` sources: how the token is sent: `x-api-key`, `bearer`, or `both` (the default,
    /// as Claude Code sends an API key).
    #[serde(default)]
    pub send_as: Option<SendAs>,
    /// `aws` sources: `sigv4` (the default: each request signed) or `api-key` (`Authorization:
    /// Bearer` with a short-term Bedrock API key made from the same credentials).
    #[serde(default)]
    pub auth: Option<ProxyAuth>,
    /// How long either side may stay silent: the model API before its answer starts and
    /// between its pieces, and the caller while sending a request's body (at most a minute).
    #[serde(default = "default_proxy_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

pub fn default_proxy_timeout() -> Duration {
    Duration::from_secs(10 * 60)
}

/// How the proxy authenticates Bedrock requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyAuth {
    Sigv4,
    ApiKey,
}

/// How a gateway takes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SendAs {
    XApiKey,
    Bearer,
    Both,
}

impl ProxySpec {
    /// What is wrong with the table, for the config error.
    pub fn check(&self) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("proxy `timeout` must be longer than zero".into());
        }
        match &self.upstream {
            Some(upstream) => check_upstream(upstream, "proxy `upstream`"),
            None => Ok(()),
        }
    }
}

/// What is wrong with `upstream` as a base URL the proxy sends requests (and credentials) to;
/// `what` names where it came from.
pub fn check_upstream(upstream: &str, what: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(upstream).map_err(|_| format!("{what} is not a URL"))?;
    let loopback = url
        .host_str()
        .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]");
    let plain_ok = url.scheme() == "http" && loopback;
    if url.scheme() != "https" && !plain_ok {
        return Err(format!(
            "{what} must be an https:// URL (plain http only on this machine), not `{upstream}`"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{what} is a base URL, without a query"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} must not hold a user name or password"));
    }
    Ok(())
}

/// A local HTTP endpoint for a source (127.0.0.1 only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// The port; by default one derived from the source's name, so it stays the same across
    /// restarts.
    #[serde(default)]
    pub port: Option<u16>,
}

pub(crate) fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}

pub(crate) fn default_aws_timeout() -> Duration {
    Duration::from_secs(60)
}

pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A humantime duration (`"90s"`, `"1h"`), for the specs' `deserialize_with`.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({e}); write it like \"90s\", \"10m\" or \"1h\""
        ))
    })
}
