//! A proxied source's route: where its requests go and how each is authorized. One [`Route`]
//! holds every difference between the model APIs the proxy serves: it is made from the
//! source's table once ([`Route::of`]), and names each request's [`Target`] (the configured
//! upstream, else the model API's own host, and for AWS the region it is signed for), the
//! region a refusal for capacity fails over to, how it puts the credential on a request, and
//! the environment that sends Claude Code to it (for `status`, `setup` and `credd env`).

use std::sync::Arc;

use credd_proto::{Credential, CredentialSecret};
use hyper::body::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::bedrock;
use crate::sources::SourceSpec;
use crate::sources::spec::{ProxyAuth, SendAs};
use credd_proto::claude_code as cc;

mod aws;
mod google;

pub use aws::{AwsApi, AwsRoute};
use google::{CLAUDE_GOOGLE_CLOUD, VERTEX_GLOBAL, is_project_id, vertex_host, vertex_location};

/// The first-party Anthropic API, where a gateway route without an upstream goes.
const ANTHROPIC_API: &str = "https://api.anthropic.com";

/// Where the proxy sends a source's requests, and how it authorizes them.
#[derive(Debug, Clone)]
pub enum Route {
    /// An Anthropic-API gateway or the first-party API: the token as `x-api-key`, as
    /// `Authorization: Bearer`, or both.
    Gateway {
        upstream: String,
        x_api_key: bool,
        bearer: bool,
    },
    /// Microsoft Foundry: `Authorization: Bearer` to the resource's URL.
    Foundry { upstream: String },
    /// Vertex AI: `Authorization: Bearer`, to the regional host the request's path names
    /// (`.../locations/REGION/...`), unless an upstream is configured.
    Vertex {
        upstream: Option<String>,
        failover: Vec<String>,
    },
    /// Claude on Google Cloud: `Authorization: Bearer`, first-party paths under the
    /// workspace's `/v1/projects/P/locations/L/workspaces/W/invoke`.
    GoogleCloud {
        upstream: String,
        /// The source's `project`, else the credential's.
        project: Option<String>,
        location: String,
        workspace: String,
    },
    /// An AWS model API, SigV4-signed with the cached AWS credentials.
    Aws(AwsRoute),
    /// A remote MCP server: `Authorization: Bearer`, to its one endpoint (`origin` + `path`),
    /// nothing else of its host.
    Mcp { origin: String, path: String },
}

/// Where one request goes: its URL, and its region: the one an AWS request is signed for, the
/// location a Vertex AI request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub region: Option<String>,
    /// Its region is its model's inference profile's: never moved to another.
    pub pinned: bool,
}

/// A request on its way upstream, authorized by [`Route::authorize`].
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Route {
    /// The route to the MCP server whose endpoint is `url` (checked when the config was read).
    pub fn mcp(url: &str) -> Option<Route> {
        let url = reqwest::Url::parse(url).ok()?;
        Some(Route::Mcp {
            origin: url.origin().ascii_serialization(),
            path: url.path().to_string(),
        })
    }

    /// The route a source's table asks for; `None` when it has no `proxy` table. The table was
    /// checked when the config was read (an `entra` proxy names its upstream, a workspace
    /// route its workspace).
    pub fn of(spec: &SourceSpec) -> Option<Route> {
        let proxy = spec.proxy()?;
        let upstream = proxy.upstream.clone();
        Some(match spec {
            SourceSpec::Aws(aws) => {
                let api = match proxy.provider {
                    Some(cc::MANTLE) => AwsApi::Mantle,
                    Some(cc::ANTHROPIC_AWS) => AwsApi::ClaudePlatform,
                    _ => AwsApi::Bedrock,
                };
                Route::Aws(AwsRoute {
                    api,
                    upstream: upstream.or_else(|| {
                        (api == AwsApi::Bedrock)
                            .then(crate::sources::aws::spec::bedrock_runtime_from_env)
                            .flatten()
                    }),
                    api_key: proxy.auth == Some(ProxyAuth::ApiKey),
                    region: aws.region.clone().or_else(|| {
                        ["AWS_REGION", "AWS_DEFAULT_REGION"]
                            .iter()
                            .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
                    }),
                    workspace: proxy.workspace.clone(),
                    failover: proxy.failover.clone(),
                    model_regions: proxy.model_regions.clone(),
                })
            }
            SourceSpec::Gcp(gcp) if proxy.provider == Some(cc::ANTHROPIC_GOOGLE_CLOUD) => {
                Route::GoogleCloud {
                    upstream: upstream.unwrap_or_else(|| CLAUDE_GOOGLE_CLOUD.into()),
                    project: gcp.project.clone(),
                    location: proxy.location.clone().unwrap_or_else(|| "global".into()),
                    workspace: proxy.workspace.clone()?,
                }
            }
            SourceSpec::Gcp(_) => Route::Vertex {
                upstream,
                failover: proxy.failover.clone(),
            },
            SourceSpec::Entra(_) => Route::Foundry {
                upstream: upstream?,
            },
            SourceSpec::Exec(_) | SourceSpec::Oidc(_) => {
                let send_as = proxy.send_as.unwrap_or(SendAs::Both);
                Route::Gateway {
                    upstream: upstream.unwrap_or_else(|| ANTHROPIC_API.into()),
                    x_api_key: send_as != SendAs::Bearer,
                    bearer: send_as != SendAs::XApiKey,
                }
            }
        })
    }

    /// Where a request for `path_and_query` with `body` goes with `credential`.
    pub fn target(
        &self,
        path_and_query: &str,
        body: &[u8],
        credential: &Credential,
    ) -> Result<Target, Refusal> {
        let url = |base: &str| format!("{}{path_and_query}", base.trim_end_matches('/'));
        Ok(match self {
            Route::Gateway { upstream, .. } | Route::Foundry { upstream } => Target {
                url: url(upstream),
                region: None,
                pinned: false,
            },
            Route::Mcp { origin, path } => {
                let asked = path_and_query.split('?').next().unwrap_or_default();
                if asked != path {
                    return Err(Refusal::NotFound);
                }
                Target {
                    url: url(origin),
                    region: None,
                    pinned: false,
                }
            }
            Route::Vertex { upstream, .. } => {
                let location = vertex_location(path_and_query);
                let base = match (upstream, location) {
                    (Some(upstream), _) => upstream.clone(),
                    (None, Some(location)) => vertex_host(location),
                    (None, None) => {
                        return Err(Refusal::BadRequest(
                            "a Vertex AI request names its location (/v1/projects/P/locations/L/...)",
                        ));
                    }
                };
                Target {
                    url: url(&base),
                    region: location.map(str::to_string),
                    pinned: false,
                }
            }
            Route::GoogleCloud { upstream, .. } => Target {
                url: url(&format!(
                    "{}{}",
                    upstream.trim_end_matches('/'),
                    self.workspace_path(credential)?
                )),
                region: None,
                pinned: false,
            },
            Route::Aws(aws) => {
                let (region, pinned) = aws.region_for(path_and_query, body, credential)?;
                let base = aws
                    .upstream
                    .clone()
                    .unwrap_or_else(|| aws.api.base(&region));
                Target {
                    url: url(&base),
                    region: Some(region),
                    pinned,
                }
            }
        })
    }

    /// Where a request that went to `target` (for `path_and_query`) and was refused for
    /// capacity goes next: the first failover region it did not go to, if any.
    pub fn failover(&self, target: &Target, path_and_query: &str) -> Option<Target> {
        if target.pinned {
            return None;
        }
        match self {
            Route::Aws(aws) => {
                let went = target.region.as_deref()?;
                let next = aws.failover.iter().find(|r| *r != went)?;
                let base = aws.upstream.clone().unwrap_or_else(|| aws.api.base(next));
                Some(Target {
                    url: format!("{}{path_and_query}", base.trim_end_matches('/')),
                    region: Some(next.clone()),
                    pinned: false,
                })
            }
            Route::Vertex { upstream, failover } => {
                let went = target.region.as_deref()?;
                let next = failover.iter().find(|r| *r != went)?;
                let path = path_and_query.replacen(
                    &format!("/locations/{went}/"),
                    &format!("/locations/{next}/"),
                    1,
                );
                let base = upstream.clone().unwrap_or_else(|| vertex_host(next));
                Some(Target {
                    url: format!("{}{path}", base.trim_end_matches('/')),
                    region: Some(next.clone()),
                    pinned: false,
                })
            }
            Route::Gateway { .. }
            | Route::Foundry { .. }
            | Route::GoogleCloud { .. }
            | Route::Mcp { .. } => None,
        }
    }

    /// What the health path asks whether it answers at all: the model API's host.
    pub fn health_url(&self, credential: &Credential) -> Result<String, Refusal> {
        Ok(match self {
            Route::Gateway { upstream, .. } | Route::Foundry { upstream } => upstream.clone(),
            Route::Vertex { upstream, .. } => {
                upstream.clone().unwrap_or_else(|| VERTEX_GLOBAL.into())
            }
            Route::GoogleCloud { upstream, .. } => upstream.clone(),
            Route::Mcp { origin, .. } => origin.clone(),
            Route::Aws(aws) => match &aws.upstream {
                Some(upstream) => upstream.clone(),
                None => aws.api.base(
                    &bedrock::region(aws.region.as_deref(), credential)
                        .map_err(Refusal::Internal)?,
                ),
            },
        })
    }

    /// `/v1/projects/P/locations/L/workspaces/W/invoke` of a Claude on Google Cloud route.
    fn workspace_path(&self, credential: &Credential) -> Result<String, Refusal> {
        let Route::GoogleCloud {
            project,
            location,
            workspace,
            ..
        } = self
        else {
            return Ok(String::new());
        };
        let project = project
            .as_deref()
            .or(credential.metadata.project.as_deref())
            .ok_or_else(|| {
                Refusal::Internal(
                    "no project for Claude on Google Cloud: set `project` in the source's table"
                        .into(),
                )
            })?;
        if !is_project_id(project) {
            return Err(Refusal::Internal(format!(
                "`{project}` is not a Google Cloud project ID; set `project` in the source's table"
            )));
        }
        Ok(format!(
            "/v1/projects/{project}/locations/{location}/workspaces/{workspace}/invoke"
        ))
    }

    /// Puts `credential` on `request`, which goes to `target`, as its upstream takes it. The
    /// caller's own authorization headers were dropped already.
    pub fn authorize(
        &self,
        request: &mut Outgoing<'_>,
        target: &Target,
        credential: &Arc<Credential>,
        keys: &bedrock::KeyCache,
        now_unix: i64,
    ) -> Result<(), Refusal> {
        let headers = &mut request.headers;
        let aws = match self {
            Route::Foundry { .. }
            | Route::Vertex { .. }
            | Route::GoogleCloud { .. }
            | Route::Mcp { .. } => {
                return insert(
                    headers,
                    AUTHORIZATION,
                    format!("Bearer {}", token(credential)?),
                );
            }
            Route::Gateway {
                x_api_key, bearer, ..
            } => {
                let token = token(credential)?;
                if *x_api_key {
                    insert(
                        headers,
                        HeaderName::from_static("x-api-key"),
                        token.to_string(),
                    )?;
                }
                if *bearer {
                    insert(headers, AUTHORIZATION, format!("Bearer {token}"))?;
                }
                return Ok(());
            }
            Route::Aws(aws) => aws,
        };
        let region = target
            .region
            .as_deref()
            .ok_or_else(|| Refusal::Internal("no region to sign for".into()))?;
        if let Some(workspace) = &aws.workspace {
            headers.insert(
                HeaderName::from_static("anthropic-workspace-id"),
                HeaderValue::from_str(workspace)
                    .map_err(|_| Refusal::Internal("a workspace ID that is no header".into()))?,
            );
        }
        if aws.api_key {
            let key = keys
                .key(credential, region, now_unix)
                .map_err(Refusal::Internal)?;
            return insert(headers, AUTHORIZATION, format!("Bearer {key}"));
        }
        let signed = bedrock::sign(
            request.method,
            &request.url,
            headers,
            &request.body,
            credential,
            region,
            aws.api.service(),
        )
        .map_err(|e| match e {
            bedrock::SignError::Unsignable => Refusal::BadRequest("the request cannot be signed"),
            bedrock::SignError::Signer(message) => Refusal::Internal(message),
        })?;
        for (name, text) in signed {
            insert(headers, HeaderName::from_static(name), text)?;
        }
        Ok(())
    }

    /// The environment that sends Claude Code's model requests to `base`, its own
    /// authentication skipped.
    pub fn env_lines(&self, base: &str) -> Vec<String> {
        let provider = |provider: cc::Provider, base: &str| {
            vec![
                format!("{}=1", provider.selection),
                format!("{}={base}", provider.base_url),
                format!("{}=1", provider.skip_auth),
            ]
        };
        match self {
            Route::Aws(aws) => {
                let mut lines = match aws.api {
                    AwsApi::Bedrock => provider(cc::BEDROCK, base),
                    AwsApi::Mantle => provider(cc::MANTLE, base),
                    AwsApi::ClaudePlatform => provider(cc::ANTHROPIC_AWS, base),
                };
                lines.extend(aws.region.as_ref().map(|r| format!("AWS_REGION={r}")));
                lines
            }
            Route::Vertex { .. } => provider(cc::VERTEX, &format!("{base}/v1")),
            Route::GoogleCloud { .. } => provider(cc::ANTHROPIC_GOOGLE_CLOUD, base),
            Route::Foundry { .. } => provider(cc::FOUNDRY, base),
            // Claude Code's MCP entry names it (`setup mcp`); no environment does.
            Route::Mcp { .. } => Vec::new(),
            // Claude Code will not start without some key: a placeholder, which the proxy
            // replaces (it is no secret).
            Route::Gateway { .. } => vec![
                format!("ANTHROPIC_BASE_URL={base}"),
                format!("ANTHROPIC_AUTH_TOKEN={}", super::PLACEHOLDER),
            ],
        }
    }
}

/// Why a request could not be routed or authorized: the caller's fault (400) or the source's
/// (500); either way the message holds no secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    BadRequest(&'static str),
    /// A path the route does not serve.
    NotFound,
    Internal(String),
}

/// The bearer token a token source holds.
fn token(credential: &Credential) -> Result<&str, Refusal> {
    match &credential.secret {
        CredentialSecret::Token { token } => Ok(token.expose()),
        CredentialSecret::Aws { .. } => Err(Refusal::Internal(
            "this source holds AWS credentials; only a Bedrock route can use them".into(),
        )),
    }
}

/// Sets a header that carries a credential: marked sensitive, so no debug print shows it.
fn insert(headers: &mut HeaderMap, name: HeaderName, text: String) -> Result<(), Refusal> {
    let mut value = HeaderValue::from_str(&text)
        .map_err(|_| Refusal::Internal("the credential cannot go in a header".into()))?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(path: &str) -> Option<String> {
        vertex_location(path).map(vertex_host)
    }

    fn credential(region: Option<&str>) -> Credential {
        Credential {
            source: "s".into(),
            secret: CredentialSecret::Token {
                token: credd_proto::Secret::new("t"),
            },
            issued_at: 0,
            expires_at: 1,
            metadata: Box::new(credd_proto::CredentialFacts {
                region: region.map(str::to_string),
                project: Some("from-the-file".into()),
                ..Default::default()
            }),
        }
    }

    fn aws(api: AwsApi, failover: &[&str], model_regions: &[(&str, &str)]) -> Route {
        Route::Aws(AwsRoute {
            api,
            upstream: None,
            region: Some("us-east-1".into()),
            api_key: false,
            workspace: None,
            failover: failover.iter().map(|r| r.to_string()).collect(),
            model_regions: model_regions
                .iter()
                .map(|(m, r)| (m.to_string(), r.to_string()))
                .collect(),
        })
    }

    #[test]
    fn vertex_requests_go_to_the_host_of_their_location() {
        assert_eq!(
            host(
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/m:streamRawPredict"
            )
            .as_deref(),
            Some("https://us-east5-aiplatform.googleapis.com")
        );
        assert_eq!(
            host("/v1/projects/p/locations/global/publishers/anthropic/models/m:rawPredict")
                .as_deref(),
            Some("https://aiplatform.googleapis.com")
        );
        for bad in [
            "/v1/messages",
            "/v1/projects/p/locations/evil.example%2F/x",
            "/v1/projects/p/locations//x",
            "/v1/projects/p/locations/a.b/x",
        ] {
            assert_eq!(host(bad), None, "{bad}");
        }
    }

    #[test]
    fn each_aws_api_has_its_host_and_a_model_may_have_its_own_region() {
        let c = credential(None);
        let path = "/model/us.anthropic.claude-haiku/invoke";
        let bedrock = aws(
            AwsApi::Bedrock,
            &[],
            &[("us.anthropic.claude-haiku", "us-west-2")],
        );
        assert_eq!(
            bedrock.target(path, b"", &c).unwrap(),
            Target {
                url: format!("https://bedrock-runtime.us-west-2.amazonaws.com{path}"),
                region: Some("us-west-2".into()),
                pinned: false,
            }
        );
        // An application inference profile's ARN names its region, percent-encoded or not.
        let arn = "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Aapplication-inference-profile%2Fabc/invoke";
        assert_eq!(
            bedrock.target(arn, b"", &c).unwrap().region.as_deref(),
            Some("eu-west-1")
        );
        for forged in [
            "/model/arn%3Aaws%3Abedrock%3Aevil.example%2F%3A1%3Ax/invoke",
            "/model/arn%3Aaws%3As3%3Aeu-west-1%3A1%3Ax/invoke",
        ] {
            assert_eq!(
                bedrock.target(forged, b"", &c).unwrap().region.as_deref(),
                Some("us-east-1"),
                "{forged}"
            );
        }
        // Its inference profile is in eu-west-1: never moved to another region, whether the
        // path names it or, on Mantle, the body.
        let failing_over = aws(AwsApi::Bedrock, &["eu-west-1", "us-west-2"], &[]);
        let pinned = failing_over.target(arn, b"", &c).unwrap();
        assert_eq!(failing_over.failover(&pinned, arn), None);
        let mantle_over = aws(AwsApi::Mantle, &["eu-west-1", "us-west-2"], &[]);
        let body = br#"{"model":"arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc"}"#;
        let pinned = mantle_over.target("/v1/messages", body, &c).unwrap();
        assert_eq!(pinned.region.as_deref(), Some("eu-west-1"));
        assert_eq!(mantle_over.failover(&pinned, "/v1/messages"), None);
        let mantle = aws(
            AwsApi::Mantle,
            &[],
            &[("anthropic.claude-haiku", "us-west-2")],
        );
        let haiku = br#"{"model":"anthropic.claude-haiku","max_tokens":1}"#;
        let main = br#"{"model":"anthropic.claude-opus","max_tokens":1}"#;
        assert_eq!(
            mantle.target("/v1/messages?beta=true", haiku, &c).unwrap(),
            Target {
                url: "https://bedrock-mantle.us-west-2.api.aws/anthropic/v1/messages?beta=true"
                    .into(),
                region: Some("us-west-2".into()),
                pinned: false,
            }
        );
        assert_eq!(
            mantle
                .target("/v1/messages", main, &c)
                .unwrap()
                .region
                .as_deref(),
            Some("us-east-1")
        );
        let platform = aws(AwsApi::ClaudePlatform, &[], &[]);
        assert_eq!(
            platform.target("/v1/messages", main, &c).unwrap().url,
            "https://aws-external-anthropic.us-east-1.api.aws/v1/messages"
        );
    }

    #[test]
    fn a_refusal_for_capacity_fails_over_to_the_first_other_region() {
        let c = credential(None);
        let route = aws(AwsApi::Bedrock, &["us-east-1", "us-west-2"], &[]);
        let path = "/model/m/invoke";
        let first = route.target(path, b"", &c).unwrap();
        let next = route.failover(&first, path).unwrap();
        assert_eq!(next.region.as_deref(), Some("us-west-2"));
        assert_eq!(
            next.url,
            "https://bedrock-runtime.us-west-2.amazonaws.com/model/m/invoke"
        );
        assert_eq!(aws(AwsApi::Bedrock, &[], &[]).failover(&first, path), None);
        let vertex = Route::Vertex {
            upstream: None,
            failover: vec!["us-east5".into(), "europe-west1".into()],
        };
        let path = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/m:rawPredict";
        let first = vertex.target(path, b"", &c).unwrap();
        assert_eq!(
            vertex.failover(&first, path).unwrap().url,
            "https://europe-west1-aiplatform.googleapis.com/v1/projects/p/locations/europe-west1/publishers/anthropic/models/m:rawPredict"
        );
    }

    #[test]
    fn claude_on_google_cloud_goes_under_the_workspace() {
        let route = Route::GoogleCloud {
            upstream: CLAUDE_GOOGLE_CLOUD.into(),
            project: None,
            location: "global".into(),
            workspace: "wrkspc_01".into(),
        };
        assert_eq!(
            route
                .target("/v1/messages?beta=true", b"", &credential(None))
                .unwrap()
                .url,
            "https://claude.googleapis.com/v1/projects/from-the-file/locations/global/workspaces/wrkspc_01/invoke/v1/messages?beta=true"
        );
        for project in [
            "evil.example/x?",
            "..",
            "a..b:project",
            "short",
            "ends-with-",
        ] {
            let mut bad = credential(None);
            bad.metadata.project = Some(project.into());
            assert!(
                route.target("/v1/messages", b"", &bad).is_err(),
                "{project}"
            );
        }
        assert!(is_project_id("example.com:my-project"));
    }
}
