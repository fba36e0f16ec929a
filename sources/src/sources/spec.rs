//! The pieces every kind of source's table in the config shares: its proxy, its local
//! endpoint, where a login persists, durations. Each kind's own settings live beside the source
//! that reads them (`sources::<kind>::spec`), the `kind` that picks one in [`super::SourceSpec`],
//! and the config file's reader (`config`) puts them together.

use std::collections::BTreeMap;
use std::time::Duration;

pub use credd_proto::claude_code::Provider;
use credd_proto::claude_code::{
    self, ANTHROPIC_AWS, ANTHROPIC_GOOGLE_CLOUD, BEDROCK, MANTLE, VERTEX,
};
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
    /// `aws` and `gcp` sources: the model API the route speaks, as Claude Code's
    /// `CLAUDE_CODE_USE_*` names it. `aws`: `bedrock` (the default), `mantle` (Bedrock's
    /// Anthropic-compatible API) or `anthropic-aws` (Claude Platform on AWS); `gcp`: `vertex`
    /// (the default) or `anthropic-google-cloud` (Claude on Google Cloud).
    #[serde(default, deserialize_with = "provider")]
    pub provider: Option<Provider>,
    /// `anthropic-aws` and `anthropic-google-cloud`: the workspace requests are for (required).
    #[serde(default)]
    pub workspace: Option<String>,
    /// `anthropic-google-cloud`: the location requests go to; `global` by default.
    #[serde(default)]
    pub location: Option<String>,
    /// `bedrock`, `mantle` and `vertex`: regions to try, in order, when the region a request
    /// went to refuses it for capacity (429, 503 or 529, before any byte of its answer). A
    /// request is retried once, in the first of these it did not go to, signed for it.
    #[serde(default)]
    pub failover: Vec<String>,
    /// `bedrock` and `mantle`: the region requests for a model go to and are signed for, by
    /// model ID, where it is not the source's (as `ANTHROPIC_SMALL_FAST_MODEL_AWS_REGION`
    /// sends the small fast model elsewhere). An inference profile's ARN names its region and
    /// needs no entry.
    #[serde(default)]
    pub model_regions: BTreeMap<String, String>,
}

/// `provider = "NAME"`: one of the providers Claude Code names (`proto::claude_code`), but
/// for Foundry, whose route an `entra` source's proxy always is.
fn provider<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Provider>, D::Error> {
    let name = String::deserialize(d)?;
    claude_code::provider_named(&name)
        .filter(|p| p.source_kind != "entra")
        .map(Some)
        .ok_or_else(|| {
            let known: Vec<&str> = claude_code::PROVIDERS
                .iter()
                .filter(|p| p.source_kind != "entra")
                .map(|p| p.name)
                .collect();
            serde::de::Error::custom(format!(
                "unknown provider `{name}`, expected one of {}",
                known.join(", ")
            ))
        })
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
        if let Some(upstream) = &self.upstream {
            check_upstream(upstream, "proxy `upstream`")?;
        }
        if let Some(workspace) = &self.workspace
            && !claude_code::is_workspace_id(workspace)
        {
            return Err(format!(
                "proxy `workspace` `{workspace}` is not a workspace ID (letters, digits, `_` and `-`)"
            ));
        }
        Ok(())
    }

    /// What is wrong with the table for a source whose credential is AWS's (`aws`) or not
    /// (`gcp`), for the config error: the provider's own settings, each only where it applies.
    /// `region_name` tells that cloud's region (or location) names.
    pub fn check_provider(&self, aws: bool, region_name: fn(&str) -> bool) -> Result<(), String> {
        let provider = self.provider.unwrap_or(if aws { BEDROCK } else { VERTEX });
        let kind = if aws { "aws" } else { "gcp" };
        let named = provider.name;
        if provider.source_kind != kind {
            return Err(format!(
                "proxy `provider = \"{named}\"` is for {} sources",
                provider.source_kind
            ));
        }
        let workspace = matches!(provider, ANTHROPIC_AWS | ANTHROPIC_GOOGLE_CLOUD);
        if workspace && self.workspace.is_none() {
            return Err(format!(
                "proxy `provider = \"{named}\"` needs `workspace`, the workspace ID requests are for"
            ));
        }
        if !workspace && self.workspace.is_some() {
            return Err(format!("proxy `workspace` does not apply to {named}"));
        }
        if self.location.is_some() && provider != ANTHROPIC_GOOGLE_CLOUD {
            return Err(format!(
                "proxy `location` applies to anthropic-google-cloud, not {named} (Vertex AI requests name their own)"
            ));
        }
        if let Some(location) = &self.location
            && !region_name(location)
        {
            return Err(format!(
                "proxy `location` `{location}` is not a location name"
            ));
        }
        if self.auth == Some(ProxyAuth::ApiKey) && provider == ANTHROPIC_AWS {
            return Err("proxy `auth = \"api-key\"` is for bedrock and mantle (a Bedrock API key), not anthropic-aws".into());
        }
        if !self.failover.is_empty() && !matches!(provider, BEDROCK | MANTLE | VERTEX) {
            return Err(format!(
                "proxy `failover` applies to bedrock, mantle and vertex, not {named}"
            ));
        }
        if !self.model_regions.is_empty() && !matches!(provider, BEDROCK | MANTLE) {
            return Err(format!(
                "proxy `model_regions` applies to bedrock and mantle, not {named}"
            ));
        }
        for region in self.failover.iter().chain(self.model_regions.values()) {
            if !region_name(region) {
                return Err(format!("proxy region `{region}` is not a region name"));
            }
        }
        Ok(())
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
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({e}); write it like \"90s\", \"10m\" or \"1h\""
        ))
    })
}
