//! A GCE metadata server for one `gcp` source: Google's libraries (google-auth for Python,
//! google-auth-library for Node, which Claude Code uses for Vertex AI) read
//! `GCE_METADATA_HOST` / `GCE_METADATA_IP`, probe the server, then fetch the default service
//! account's token, email and the project from it, and ID tokens for an audience from its
//! `identity` path.
//!
//! The protocol has no secret, so besides the Host check every request needs
//! `Metadata-Flavor: Google` (as on GCE, which stops a browser or a plain proxy request), must
//! not carry `X-Forwarded-For`, and must come from the daemon's own user: where that cannot be
//! told, the endpoint serves nobody (see [`super::peer`]).

use std::sync::Arc;

use credd_proto::{Credential, CredentialSecret};
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use serde_json::json;

use super::{Body, Endpoint, EndpointRequest, EndpointResponse};
use crate::audiences::Audiences;
use crate::cache::Slot;
use crate::policy::DEFAULT_MIN_VALID;

const V1: &str = "/computeMetadata/v1";

pub struct GceMetadata {
    slot: Arc<Slot>,
    audiences: Arc<Audiences>,
    scopes: Vec<String>,
}

impl GceMetadata {
    pub fn new(slot: Arc<Slot>, audiences: Arc<Audiences>, scopes: Vec<String>) -> Self {
        GceMetadata {
            slot,
            audiences,
            scopes,
        }
    }

    async fn answer(&self, request: EndpointRequest) -> EndpointResponse {
        if request
            .headers
            .get("metadata-flavor")
            .is_none_or(|f| f != "Google")
        {
            tracing::warn!(path = %request.path, "metadata endpoint: refused a request without Metadata-Flavor: Google");
            return text(403, "Missing Metadata-Flavor:Google header.\n");
        }
        if request.headers.contains_key("x-forwarded-for") {
            return text(403, "Requests with X-Forwarded-For are refused.\n");
        }
        if request.method != "GET" {
            return text(405, "Only GET is served.\n");
        }
        let recursive = request.query_param("recursive").as_deref() == Some("true");
        let path = request.path.trim_end_matches('/');
        match path {
            "" => text(200, "computeMetadata/\n"),
            "/computeMetadata" => text(200, "v1/\n"),
            V1 => text(200, "instance/\nproject/\nuniverse/\n"),
            "/computeMetadata/v1/universe/universe-domain" => text(200, "googleapis.com"),
            "/computeMetadata/v1/project/project-id" => match self.credential().await {
                Ok(credential) => match &credential.metadata.project {
                    Some(project) => text(200, project),
                    None => text(
                        404,
                        "No project is known: set `project` in credd's config for this source.\n",
                    ),
                },
                Err(response) => response,
            },
            _ => self.instance(path, &request, recursive).await,
        }
    }

    async fn instance(
        &self,
        path: &str,
        request: &EndpointRequest,
        recursive: bool,
    ) -> EndpointResponse {
        let Some(rest) = path.strip_prefix("/computeMetadata/v1/instance") else {
            return not_found();
        };
        let credential = match self.credential().await {
            Ok(credential) => credential,
            Err(response) => return response,
        };
        let email = credential
            .metadata
            .account
            .clone()
            .unwrap_or_else(|| "default".into());
        let account = || json!({ "aliases": ["default"], "email": email, "scopes": self.scopes });
        match rest {
            "" if recursive => json_ok(json!({ "serviceAccounts": { "default": account() } })),
            "" => text(200, "service-accounts/\n"),
            "/service-accounts" => text(200, &format!("default/\n{email}/\n")),
            _ => {
                let Some(tail) = rest.strip_prefix("/service-accounts/") else {
                    return not_found();
                };
                let (name, item) = tail.split_once('/').unwrap_or((tail, ""));
                if name != "default" && name != email {
                    return not_found();
                }
                match item {
                    "" if recursive => json_ok(account()),
                    "" => text(200, "aliases\nemail\nidentity\nscopes\ntoken\n"),
                    "email" => text(200, &email),
                    "aliases" => text(200, "default\n"),
                    "scopes" => text(200, &format!("{}\n", self.scopes.join("\n"))),
                    "token" => self.token(&credential, request),
                    "identity" => self.identity(request).await,
                    _ => not_found(),
                }
            }
        }
    }

    fn token(&self, credential: &Credential, request: &EndpointRequest) -> EndpointResponse {
        if let Some(asked) = request.query_param("scopes") {
            let missing: Vec<&str> = asked
                .split([',', ' '])
                .filter(|s| !s.is_empty() && !self.scopes.iter().any(|have| have == s))
                .collect();
            if !missing.is_empty() {
                tracing::warn!(
                    ?missing,
                    "metadata endpoint: refused a token for scopes the source does not have"
                );
                // The scopes asked for are in the log, not quoted back to the caller.
                return text(
                    400,
                    &format!(
                        "This source's token has the scopes {}; it cannot serve {} other scope(s) asked for.\n",
                        self.scopes.join(", "),
                        missing.len()
                    ),
                );
            }
        }
        let CredentialSecret::Token { token } = &credential.secret else {
            return text(500, "This source does not hold an access token.\n");
        };
        let expires_in = (credential.expires_at - self.slot.now_unix()).max(0);
        json_ok(json!({
            "access_token": token.expose(),
            "expires_in": expires_in,
            "token_type": "Bearer",
        }))
    }

    /// An ID token for the `audience` the query names, from its own cache slot. `format` and
    /// `licenses` are GCE's instance claims, which a token minted for a service account has
    /// not; they are ignored.
    async fn identity(&self, request: &EndpointRequest) -> EndpointResponse {
        let Some(audience) = request.query_param("audience").filter(|a| !a.is_empty()) else {
            return text(400, "non-empty audience parameter required\n");
        };
        let slot = match self.audiences.slot(&audience) {
            Ok(slot) => slot,
            Err(e) => return text(400, &format!("{e}\n")),
        };
        match slot.get(DEFAULT_MIN_VALID, None).await {
            Ok(credential) => match &credential.secret {
                CredentialSecret::Token { token } => text(200, token.expose()),
                _ => text(500, "This source does not hold an ID token.\n"),
            },
            Err(e) => text(503, &format!("{}\n", e.present(slot.name()))),
        }
    }

    /// The cached credential, or the response that says why there is none.
    async fn credential(&self) -> Result<Arc<Credential>, EndpointResponse> {
        self.slot
            .get(DEFAULT_MIN_VALID, None)
            .await
            .map_err(|e| text(503, &format!("{}\n", e.present(self.slot.name()))))
    }
}

fn text(status: u16, body: &str) -> EndpointResponse {
    EndpointResponse {
        status,
        headers: vec![
            ("metadata-flavor", "Google".into()),
            ("content-type", "application/text".into()),
        ],
        body: body.to_string(),
    }
}

fn json_ok(body: serde_json::Value) -> EndpointResponse {
    let mut response = EndpointResponse::json(200, body);
    response.headers.push(("metadata-flavor", "Google".into()));
    response
}

fn not_found() -> EndpointResponse {
    text(404, "Not found.\n")
}

impl Endpoint for GceMetadata {
    fn kind(&self) -> &'static str {
        "gce-metadata"
    }

    fn url(&self, port: u16) -> String {
        format!("http://127.0.0.1:{port}{V1}/")
    }

    fn env_lines(&self, port: u16) -> Vec<String> {
        vec![
            format!("GCE_METADATA_HOST=127.0.0.1:{port}"),
            format!("GCE_METADATA_IP=127.0.0.1:{port}"),
        ]
    }

    fn serve_http(
        &self,
        request: hyper::Request<Incoming>,
    ) -> BoxFuture<'_, hyper::Response<Body>> {
        super::answer_whole(self, request)
    }
}

impl super::Answers for GceMetadata {
    fn handle(&self, request: EndpointRequest) -> BoxFuture<'_, EndpointResponse> {
        Box::pin(self.answer(request))
    }
}
