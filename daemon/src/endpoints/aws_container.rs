//! The AWS container-credentials endpoint (the protocol of ECS tasks and EKS Pod Identity):
//! SDKs with `AWS_CONTAINER_CREDENTIALS_FULL_URI` and `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`
//! set fetch `{AccessKeyId, SecretAccessKey, Token, Expiration}` from it, with the token in the
//! `Authorization` header.
//!
//! The token is random, made each time the endpoint takes its port ([`EndpointSecret`]), and
//! written to a 0600 file the SDKs read on each fetch; the env lines stay the same across
//! restarts.

use std::path::PathBuf;
use std::sync::Arc;

use credd_proto::CredentialSecret;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use serde_json::json;

use super::secret::EndpointSecret;
use super::{Body, Endpoint, EndpointRequest, EndpointResponse};
use crate::cache::Slot;
use crate::policy::AWS_FLOOR;

pub const PATH: &str = "/aws/credentials";

pub struct AwsContainer {
    slot: Arc<Slot>,
    token: EndpointSecret,
}

impl AwsContainer {
    /// The endpoint for `slot`; its token is made when it has its port.
    pub fn new(slot: Arc<Slot>, source: &crate::source_name::SourceName) -> Self {
        let token_file: PathBuf =
            credd_proto::paths::state_dir().join(format!("container-{source}.token"));
        AwsContainer {
            slot,
            token: EndpointSecret::new(token_file),
        }
    }

    async fn credentials(&self, request: EndpointRequest) -> EndpointResponse {
        if request.method != "GET" {
            return EndpointResponse::error(405, "only GET is served");
        }
        if request.path != PATH {
            return EndpointResponse::error(404, format!("credentials are served at {PATH}"));
        }
        match request.headers.get("authorization") {
            None => {
                return EndpointResponse::error(401, "missing Authorization token");
            }
            Some(given) if !self.token.matches(given) => {
                tracing::warn!("container endpoint: refused a request with a wrong token");
                return EndpointResponse::error(403, "wrong Authorization token");
            }
            Some(_) => {}
        }
        match self.slot.get(AWS_FLOOR, None).await {
            Ok(credential) => match &credential.secret {
                CredentialSecret::Aws {
                    access_key_id,
                    secret_access_key,
                    session_token,
                } => EndpointResponse::json(
                    200,
                    json!({
                        "AccessKeyId": access_key_id,
                        "SecretAccessKey": secret_access_key.expose(),
                        "Token": session_token.as_ref().map(|t| t.expose()),
                        "Expiration": humantime::format_rfc3339_seconds(
                            crate::clock::from_unix_secs(credential.expires_at)
                        ).to_string(),
                    }),
                ),
                CredentialSecret::Token { .. } => {
                    EndpointResponse::error(500, "this source does not hold AWS credentials")
                }
            },
            // What the socket's callers are told, advice included.
            Err(e) => EndpointResponse::error(503, e.present(self.slot.name())),
        }
    }
}

impl Endpoint for AwsContainer {
    fn kind(&self) -> &'static str {
        "aws-container"
    }

    fn url(&self, port: u16) -> String {
        format!("http://127.0.0.1:{port}{PATH}")
    }

    fn env_lines(&self, port: u16) -> Vec<String> {
        vec![
            format!("AWS_CONTAINER_CREDENTIALS_FULL_URI={}", self.url(port)),
            format!(
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={}",
                self.token.file().display()
            ),
        ]
    }

    fn secret(&self) -> Option<&EndpointSecret> {
        Some(&self.token)
    }

    fn serve_http(
        &self,
        request: hyper::Request<Incoming>,
    ) -> BoxFuture<'_, hyper::Response<Body>> {
        super::answer_whole(self, request)
    }
}

impl super::Answers for AwsContainer {
    fn handle(&self, request: EndpointRequest) -> BoxFuture<'_, EndpointResponse> {
        Box::pin(self.credentials(request))
    }
}
