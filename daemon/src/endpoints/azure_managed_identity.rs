//! The Azure App Service managed-identity endpoint (api-version 2019-08-01) for one `entra`
//! source: `azure-identity` (Python), `@azure/identity` (Node, as in Claude Code on Microsoft
//! Foundry) and the other Azure SDKs use it when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are
//! set, with no helper hook.
//!
//! `GET /msi/token?api-version=2019-08-01&resource=R` with the secret in `X-IDENTITY-HEADER`
//! answers `{access_token, expires_on, resource, token_type, client_id}`. `R` is served only
//! when `R/.default` is one of the source's scopes. The secret is random, made once, and kept
//! in a 0600 file, so the settings that name it stay valid across restarts.

use std::path::PathBuf;
use std::sync::Arc;

use credd_proto::CredentialSecret;
use futures_util::future::BoxFuture;
use serde_json::json;

use super::{Endpoint, EndpointRequest, EndpointResponse};
use crate::cache::Slot;
use crate::policy::DEFAULT_MIN_VALID;

pub const PATH: &str = "/msi/token";
const API_VERSION: &str = "2019-08-01";

pub struct AzureManagedIdentity {
    slot: Arc<Slot>,
    scopes: Vec<String>,
    secret: String,
    secret_file: PathBuf,
}

impl AzureManagedIdentity {
    /// Reads the source's secret, or makes it the first time.
    pub fn new(slot: Arc<Slot>, source: &str, scopes: Vec<String>) -> std::io::Result<Self> {
        let secret_file = super::state_dir().join(format!("identity-{source}.secret"));
        let secret = match std::fs::read_to_string(&secret_file) {
            Ok(secret) if secret.trim().len() >= 32 => secret.trim().to_string(),
            _ => {
                let secret = super::random_secret();
                crate::files::write_private(&secret_file, secret.as_bytes(), true)?;
                secret
            }
        };
        Ok(AzureManagedIdentity {
            slot,
            scopes,
            secret,
            secret_file,
        })
    }

    async fn token(&self, request: EndpointRequest) -> EndpointResponse {
        if request.method != "GET" {
            return error(405, "only GET is served");
        }
        if request.path != PATH {
            return error(404, &format!("tokens are served at {PATH}"));
        }
        match request.headers.get("x-identity-header") {
            Some(given) if super::secret_matches(given, &self.secret) => {}
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
                        "client_id": credential.metadata.get("client_id").cloned().unwrap_or_default(),
                    }),
                )
            }
            Err(e) => error(503, &e.to_string()),
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
            format!("IDENTITY_HEADER=$(cat {})", self.secret_file.display()),
        ]
    }

    fn handle(&self, request: EndpointRequest) -> BoxFuture<'_, EndpointResponse> {
        Box::pin(self.token(request))
    }
}
