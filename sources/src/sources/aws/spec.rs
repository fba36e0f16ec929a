//! What an `aws` source's table in the config holds, and what makes it invalid.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::sources::spec::EndpointSpec;

/// AWS credentials for a profile of `~/.aws/config`, resolved the way the AWS CLI does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSpec {
    /// The profile's name in the AWS config files (unless `web_identity` says how to get the
    /// credentials).
    #[serde(default)]
    pub profile: String,
    /// A role assumed with an `oidc` source's ID token, instead of a profile.
    #[serde(default)]
    pub web_identity: Option<super::web_identity::WebIdentitySpec>,
    /// Region for STS; defaults to the profile's `region`, then `AWS_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    /// Lifetime asked of STS for session credentials made from long-term keys, and assumed for
    /// credentials that state no expiry.
    #[serde(
        default = "crate::sources::spec::default_ttl",
        deserialize_with = "crate::sources::spec::duration"
    )]
    pub duration: Duration,
    /// How long one refresh (every STS and SSO call it makes) may take.
    #[serde(
        default = "crate::sources::spec::default_aws_timeout",
        deserialize_with = "crate::sources::spec::duration"
    )]
    pub timeout: Duration,
    /// Serve this source on the AWS container-credentials endpoint too.
    #[serde(default)]
    pub container_endpoint: Option<EndpointSpec>,
    /// A PEM file of CA certificates to trust for this source's upstreams, besides the
    /// system's (a corporate TLS-inspecting proxy's CA, say).
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// For a role with `mfa_serial`: a command (argv, no shell) that prints the current MFA
    /// code, such as `["ykman", "oath", "accounts", "code", "-s", "aws"]`; `credd login` then
    /// needs no one to type it.
    #[serde(default)]
    pub mfa_process: Option<Vec<String>>,
    /// For a role with `mfa_serial`: keep the MFA session's credentials in the OS secret
    /// store until they expire, so a restart needs no new code.
    #[serde(default)]
    pub persist: Option<crate::sources::spec::Persist>,
    /// Serve this source through the authenticating proxy too (see `endpoints::proxy`).
    #[serde(default)]
    pub proxy: Option<crate::sources::spec::ProxySpec>,
}

impl AwsSpec {
    /// What is wrong with the table, for the config error.
    pub fn check(&self) -> Result<(), String> {
        match (&self.web_identity, self.profile.trim().is_empty()) {
            (None, true) => {
                return Err(
                    "`profile` must name an AWS profile (or `web_identity` a role and a sign-in)"
                        .into(),
                );
            }
            (Some(_), false) => {
                return Err("give `profile` or `web_identity`, not both".into());
            }
            (Some(web), true) => {
                web.check()?;
                if self.mfa_process.is_some() || self.persist.is_some() {
                    return Err("`mfa_process` and `persist` apply to profiles, not `web_identity` (its sign-in keeps itself)".into());
                }
            }
            (None, false) => {}
        }
        if self.timeout.is_zero() {
            return Err("`timeout` must be longer than zero".into());
        }
        if let Some(argv) = &self.mfa_process
            && argv.first().is_none_or(|p| p.trim().is_empty())
        {
            return Err("`mfa_process` must name a program".into());
        }
        if !(900..=129_600).contains(&self.duration.as_secs()) {
            return Err("`duration` must be between 15m and 36h, as STS accepts".into());
        }
        if let Some(region) = &self.region
            && !is_region_name(region)
        {
            return Err(format!("`region` `{region}` is not an AWS region name"));
        }
        if self.proxy.as_ref().is_some_and(|p| {
            p.upstream.is_none()
                && p.provider
                    .is_none_or(|p| p == credd_proto::claude_code::BEDROCK)
        }) && let Some(upstream) = bedrock_runtime_from_env()
        {
            check_bedrock_runtime_from_env(&upstream)?;
        }
        Ok(())
    }
}

/// Whether `region` can name an AWS region. It becomes part of a host name, so it must have a
/// region's shape exactly (`us-east-1`, `us-gov-west-1`, `eusc-de-east-1`): never dots,
/// slashes or capitals, and never a label such as `s3` or `s3-accelerate`, which would make
/// `bedrock-runtime.s3.amazonaws.com`, an S3 bucket's name that anyone may take.
pub fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let (number, words) = parts.split_last().expect("split yields one part at least");
    region.len() <= 32
        && words.len() >= 2
        && (2..=4).contains(&words[0].len())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// What is wrong with the Bedrock runtime endpoint the environment names. It came from
/// whatever shell started the daemon, not from the config, so it may name only an AWS
/// Bedrock runtime endpoint over https: the regional one (FIPS and dual-stack included) or an
/// interface VPC endpoint of it. Any other host, this machine's included (a port here may be
/// another user's), is for `upstream` in the config, where it is seen.
fn check_bedrock_runtime_from_env(upstream: &str) -> Result<(), String> {
    const WHAT: &str = "AWS_ENDPOINT_URL_BEDROCK_RUNTIME";
    crate::sources::spec::check_upstream(upstream, WHAT)?;
    let url = reqwest::Url::parse(upstream).ok();
    let host = url
        .as_ref()
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    if url.is_some_and(|url| url.scheme() == "https") && is_bedrock_runtime_host(&host) {
        Ok(())
    } else {
        Err(format!(
            "{WHAT} names {host}, which is not an AWS Bedrock runtime endpoint over https; to send Bedrock requests there, name it as the proxy's `upstream` in the config"
        ))
    }
}

/// Whether `host` is an AWS Bedrock runtime endpoint: `bedrock-runtime[-fips].REGION` under
/// `amazonaws.com`, `amazonaws.com.cn`, `amazonaws.eu` or (dual-stack) `api.aws`, or
/// `vpce-….bedrock-runtime.REGION.vpce.amazonaws.com[.cn]`. Nothing else under those
/// domains: API Gateway, load balancer and instance names there belong to any AWS customer.
fn is_bedrock_runtime_host(host: &str) -> bool {
    let service = |label: &str| matches!(label, "bedrock-runtime" | "bedrock-runtime-fips");
    let vpce = |label: &str| {
        label.len() > "vpce-".len()
            && label.starts_with("vpce-")
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    const DOMAINS: [&str; 4] = [
        "amazonaws.com",
        "amazonaws.com.cn",
        "amazonaws.eu",
        "api.aws",
    ];
    let Some((names, domain)) = DOMAINS
        .into_iter()
        .find_map(|domain| Some((host.strip_suffix(domain)?.strip_suffix('.')?, domain)))
    else {
        return false;
    };
    match names.split('.').collect::<Vec<_>>().as_slice() {
        [svc, region] => service(svc) && is_region_name(region),
        [endpoint, "bedrock-runtime", region, "vpce"] => {
            domain != "api.aws" && vpce(endpoint) && is_region_name(region)
        }
        _ => false,
    }
}

/// The Bedrock runtime endpoint the AWS SDKs' environment names, if any.
pub fn bedrock_runtime_from_env() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
        .ok()
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_may_name_only_an_aws_bedrock_endpoint() {
        for ok in [
            "https://bedrock-runtime.eu-west-1.amazonaws.com",
            "https://bedrock-runtime-fips.us-east-1.amazonaws.com",
            "https://bedrock-runtime.cn-north-1.amazonaws.com.cn",
            "https://bedrock-runtime.us-west-2.api.aws",
            "https://bedrock-runtime.us-gov-west-1.amazonaws.com",
            "https://bedrock-runtime.eusc-de-east-1.amazonaws.eu",
            "https://vpce-0abc123-de45fg.bedrock-runtime.us-east-1.vpce.amazonaws.com",
            "https://BEDROCK-RUNTIME.eu-west-1.amazonaws.com:443/",
        ] {
            assert!(check_bedrock_runtime_from_env(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "https://amazonaws.com.evil.example",
            "https://evilamazonaws.com",
            "http://bedrock-runtime.us-east-1.amazonaws.com",
            // Names any AWS customer can hold.
            "https://abc123.execute-api.us-east-1.amazonaws.com",
            "https://my-lb-1234.us-east-1.elb.amazonaws.com",
            "https://ec2-1-2-3-4.compute-1.amazonaws.com",
            "https://bucket.s3.amazonaws.com",
            "https://bedrock-runtime.us-east-1.amazonaws.com.evil.example",
            "https://x.bedrock-runtime.us-east-1.amazonaws.com",
            "https://vpce-.bedrock-runtime.us-east-1.vpce.amazonaws.com",
            "https://vpce-0abc.bedrock-runtime.us-east-1.vpce.api.aws",
            // Buckets, which anyone may name `bedrock-runtime`.
            "https://bedrock-runtime.s3.amazonaws.com",
            "https://bedrock-runtime.s3-accelerate.amazonaws.com",
            "https://bedrock-runtime.s3-us-west-2.amazonaws.com",
            // A port here may be another user's; only the config may name one.
            "http://127.0.0.1:4566",
            "https://localhost:4566",
        ] {
            assert!(check_bedrock_runtime_from_env(bad).is_err(), "{bad}");
        }
    }
}
