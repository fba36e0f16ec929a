//! The Azure App Service managed-identity endpoint (api-version 2019-08-01) for one `entra`
//! source: `azure-identity` (Python), `@azure/identity` (Node, as in Claude Code on Microsoft
//! Foundry) and the other Azure SDKs use it when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are
//! set, with no helper hook.
//!
//! `GET /msi/token?api-version=2019-08-01&resource=R` with the secret in `X-IDENTITY-HEADER`
//! answers `{access_token, expires_on, resource, token_type, client_id}`. `R` is served only
//! when `R/.default` is one of the source's scopes. The secret is random, made each time the
//! endpoint takes its port ([`EndpointSecret`]), and kept in a 0600 file: a shell that exported
//! `IDENTITY_HEADER` before the daemon restarted must read the file again.

use std::path::PathBuf;
use std::sync::Arc;

use credd_proto::CredentialSecret;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use serde_json::json;

use super::secret::EndpointSecret;
use super::{Body, Endpoint, EndpointRequest, EndpointResponse};
use crate::cache::Slot;
use crate::policy::DEFAULT_MIN_VALID;

pub const PATH: &str = "/msi/token";
const API_VERSION: &str = "2019-08-01";

pub struct AzureManagedIdentity {
    slot: Arc<Slot>,
    scopes: Vec<String>,
    secret: EndpointSecret,
}

impl AzureManagedIdentity {
    /// The endpoint for `slot`; its secret is made when it has its port.
    pub fn new(
        slot: Arc<Slot>,
        source: &crate::source_name::SourceName,
        scopes: Vec<String>,
    ) -> Self {
        let secret_file: PathBuf =
            credd_proto::paths::state_dir().join(format!("identity-{source}.secret"));
        AzureManagedIdentity {
            slot,
            scopes,
            secret: EndpointSecret::new(secret_file),
        }
    }

    async fn token(&self, request: EndpointRequest) -> EndpointResponse {
        if request.method != "GET" {
            return error(405, "only GET is served");
        }
        if request.path != PATH {
            return error(404, &format!("tokens are served at {PATH}"));
        }
        match request.headers.get("x-identity-header") {
            Some(given) if self.secret.matches(given) => {}
            given => {
                tracing::warn!(
                    missing = given.is_none(),
                    "managed-identity endpoint: refused a request with a wrong or missing X-IDENTITY-HEADER"
                );
                return error(401, "missing or wrong X-IDENTITY-HEADER");
            }
        }
        if request.query_param("api-version").as_deref() != Some(API_VERSION) {
            return error(400, &format!("api-version must be {API_VERSION}"));
        }
        let Some(resource) = request.query_param("resource") else {
            return error(400, "resource is required");
        };
        let wanted = format!("{}/.default", resource.trim_end_matches('/'));
        if !self
            .scopes
            .iter()
            .any(|s| s.trim_end_matches('/') == wanted.trim_end_matches('/'))
        {
            tracing::warn!(%resource, "managed-identity endpoint: refused a token for a resource the source does not allow");
            return error(
                400,
                &format!(
                    "this source serves {} only",
                    self.scopes
                        .iter()
                        .map(|s| s.trim_end_matches("/.default"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        match self.slot.get(DEFAULT_MIN_VALID, None).await {
            Ok(credential) => {
                let CredentialSecret::Token { token } = &credential.secret else {
                    return error(500, "this source does not hold a token");
                };
                EndpointResponse::json(
                    200,
                    json!({
                        "access_token": token.expose(),
                        "expires_on": credential.expires_at.to_string(),
                        "resource": resource,
                        "token_type": "Bearer",
                        "client_id": credential.metadata.client_id.clone().unwrap_or_default(),
                    }),
                )
            }
            Err(e) => error(503, &e.present(self.slot.name())),
        }
    }
}

/// An error in the shape the App Service endpoint answers with.
fn error(status: u16, message: &str) -> EndpointResponse {
    EndpointResponse::json(status, json!({ "statusCode": status, "message": message }))
}

impl Endpoint for AzureManagedIdentity {
    fn kind(&self) -> &'static str {
        "azure-managed-identity"
    }

    fn url(&self, port: u16) -> String {
        format!("http://127.0.0.1:{port}{PATH}")
    }

    /// The secret is not printed: the line reads it from its file.
    fn env_lines(&self, port: u16) -> Vec<String> {
        vec![
            format!("IDENTITY_ENDPOINT={}", self.url(port)),
            // Quoted: on macOS the state directory's path has a space.
            format!("IDENTITY_HEADER=$(cat '{}')", self.secret.file().display()),
        ]
    }

    fn secret(&self) -> Option<&EndpointSecret> {
        Some(&self.secret)
    }

    fn serve_http(
        &self,
        request: hyper::Request<Incoming>,
    ) -> BoxFuture<'_, hyper::Response<Body>> {
        super::answer_whole(self, request)
    }
}

impl super::Answers for AzureManagedIdentity {
    fn handle(&self, request: EndpointRequest) -> BoxFuture<'_, EndpointResponse> {
        Box::pin(self.token(request))
    }
}
