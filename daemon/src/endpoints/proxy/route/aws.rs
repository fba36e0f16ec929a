//! The AWS model APIs a route signs for (Bedrock's runtime, its Anthropic-compatible Mantle,
//! Claude Platform on AWS): each one's SigV4 service and regional host, and the region each
//! request goes to, its model's when that is not the route's.

use std::collections::BTreeMap;

use credd_proto::Credential;

use super::Refusal;
use crate::endpoints::proxy::bedrock;

/// The AWS model APIs: each one's SigV4 service and regional host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsApi {
    /// The Bedrock runtime (`/model/ID/invoke...`).
    Bedrock,
    /// Bedrock's Anthropic-compatible Messages API (`CLAUDE_CODE_USE_MANTLE`).
    Mantle,
    /// Claude Platform on AWS (`CLAUDE_CODE_USE_ANTHROPIC_AWS`), first-party paths.
    ClaudePlatform,
}

impl AwsApi {
    /// The service its requests are signed for.
    pub fn service(self) -> &'static str {
        match self {
            AwsApi::Bedrock => "bedrock",
            AwsApi::Mantle => "bedrock-mantle",
            AwsApi::ClaudePlatform => "aws-external-anthropic",
        }
    }

    /// Its base URL in `region`, as Claude Code makes it.
    pub(super) fn base(self, region: &str) -> String {
        match self {
            AwsApi::Bedrock => format!("https://bedrock-runtime.{region}.amazonaws.com"),
            AwsApi::Mantle => format!("https://bedrock-mantle.{region}.api.aws/anthropic"),
            AwsApi::ClaudePlatform => format!("https://aws-external-anthropic.{region}.api.aws"),
        }
    }

    /// The model a request is for, where its path or body names it.
    pub(super) fn model(self, path: &str, body: &[u8]) -> Option<String> {
        match self {
            AwsApi::Bedrock => {
                let id = path.strip_prefix("/model/")?.split('/').next()?;
                Some(
                    percent_encoding::percent_decode_str(id)
                        .decode_utf8()
                        .ok()?
                        .into_owned(),
                )
            }
            AwsApi::Mantle | AwsApi::ClaudePlatform => {
                #[derive(serde::Deserialize)]
                struct Model {
                    model: String,
                }
                serde_json::from_slice::<Model>(body).ok().map(|m| m.model)
            }
        }
    }
}

/// An AWS route: its API, where its requests go and in which region they are signed.
#[derive(Debug, Clone)]
pub struct AwsRoute {
    pub api: AwsApi,
    /// Where requests go instead of the region's host.
    pub upstream: Option<String>,
    /// The configured region, else the profile's (from the credential).
    pub region: Option<String>,
    /// `Authorization: Bearer` with a short-term Bedrock API key instead of a signature.
    pub api_key: bool,
    /// Claude Platform on AWS: the `anthropic-workspace-id` sent.
    pub workspace: Option<String>,
    pub failover: Vec<String>,
    /// Regions by model ID, where they are not `region`.
    pub model_regions: BTreeMap<String, String>,
}

impl AwsRoute {
    /// The region a request is signed for and sent to: the one its model's inference profile
    /// ARN names (when it goes to the region's own host: a configured upstream is in its
    /// region), else `model_regions`' for its model, else the route's.
    ///
    /// And whether the request stays in that region: an inference profile lives in its own.
    pub(super) fn region_for(
        &self,
        path: &str,
        body: &[u8],
        credential: &Credential,
    ) -> Result<(String, bool), Refusal> {
        // A body is read for its model only where that can change something.
        let wanted = self.api == AwsApi::Bedrock
            || !self.model_regions.is_empty()
            || !self.failover.is_empty();
        let model = wanted
            .then(|| self.api.model(path.split('?').next().unwrap_or(path), body))
            .flatten();
        let profile = model.as_deref().and_then(arn_region);
        let pinned = profile.is_some();
        let by_model = profile
            .filter(|_| self.upstream.is_none())
            .or_else(|| self.model_regions.get(model.as_deref()?).cloned());
        let region = match by_model {
            Some(region) => region,
            None => {
                bedrock::region(self.region.as_deref(), credential).map_err(Refusal::Internal)?
            }
        };
        Ok((region, pinned))
    }
}

/// The region a Bedrock ARN (`arn:aws[-PARTITION]:bedrock:REGION:ACCOUNT:...`) names, when it
/// names one that can be part of a host.
pub(super) fn arn_region(model: &str) -> Option<String> {
    let mut parts = model.split(':');
    let (arn, partition, service, region) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let bedrock = arn == "arn" && partition.starts_with("aws") && service == "bedrock";
    (bedrock && crate::sources::aws::spec::is_region_name(region)).then(|| region.to_string())
}
