//! The Microsoft identity platform for the entra tests: an HTTPS stub (the authority must be
//! HTTPS for `azure_identity`) speaking the documented `/{tenant}/oauth2/v2.0/token` and
//! `/devicecode` formats, with tokens minted by `oauth2-mock-server` behind it. It knows one
//! tenant and the apps registered in it (client secrets, some expired; certificates, whose
//! assertions it verifies; federated tokens), runs device-code logins that a simulated person
//! approves, and browser sign-ins (`/authorize`, where the person is taken as signed in at
//! once, then the authorization-code grant, whose PKCE verifier it checks as Entra does), answers with Entra's error JSON (AADSTS codes), can be told to fail or throttle,
//! and counts every call.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::google::{Minter, OAuthMock};
use crate::http::{HttpStub, Request, Response};
use crate::peers::TestCa;

pub const TENANT: &str = "7f3a9c1e-0000-4000-8000-00000000c4ed";

/// How the upstream misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    ServerError,
    /// HTTP 429 with this Retry-After, in seconds.
    Throttle(u64),
    Hang,
    /// HTTP 200 with a body that is not a token response.
    Garbage,
    /// The connection is closed without an answer.
    Reset,
    /// A token that has already expired (`expires_in: 0`).
    ExpiredOnArrival,
    /// HTTP 400 whose error description quotes the request back (its form values, decoded,
    /// and its Authorization header), as careless servers do.
    EchoRequest,
}

#[derive(Clone)]
enum AppCredential {
    Secret {
        secret: String,
        expired: bool,
    },
    Certificate {
        public_pem: String,
        thumbprint: String,
    },
    Federated {
        token: String,
    },
    /// A public client (no credential of its own), as the Azure CLI's app is in every tenant:
    /// the only kind the device-code flow accepts.
    Public,
}

/// The Azure CLI's public client, which exists in every tenant.
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

#[derive(Default)]
struct State {
    fault: Option<Fault>,
    apps: HashMap<String, AppCredential>,
    device_polls_until_approved: usize,
    device_polls: usize,
    calls: HashMap<String, usize>,
    issued: Vec<String>,
    /// refresh token -> the client it was issued to
    refresh_tokens: HashMap<String, String>,
    /// The client the pending device code was issued to, and the scope it asked for.
    device_client: Option<(String, String)>,
    /// The `scope` of every token request, in order.
    scopes: Vec<String>,
    /// Authorization codes not yet redeemed: code -> (client, redirect URI, PKCE challenge,
    /// scope).
    codes: HashMap<String, (String, String, String, String)>,
    expires_in: Option<u64>,
    /// How far this upstream's clock runs ahead of the machine's (behind when negative).
    clock_offset: i64,
}

pub struct EntraUpstream {
    stub: HttpStub,
    state: Arc<Mutex<State>>,
    _mock: OAuthMock,
}

impl EntraUpstream {
    pub fn start(ca: &TestCa) -> Self {
        let mock = OAuthMock::start();
        let state = Arc::new(Mutex::new(State {
            device_polls_until_approved: 2,
            apps: HashMap::from([(AZURE_CLI_CLIENT_ID.to_string(), AppCredential::Public)]),
            ..State::default()
        }));
        let (shared, minter) = (state.clone(), mock.minter());
        let stub = HttpStub::start_tls(&ca.server_pem, &ca.server_key, move |request| {
            answer(&shared, minter, request)
        });
        EntraUpstream {
            stub,
            state,
            _mock: mock,
        }
    }

    /// The authority host (`AZURE_AUTHORITY_HOST`).
    pub fn authority(&self) -> String {
        self.stub.url()
    }

    pub fn register_secret(&self, client_id: &str, secret: &str, expired: bool) {
        self.state.lock().unwrap().apps.insert(
            client_id.into(),
            AppCredential::Secret {
                secret: secret.into(),
                expired,
            },
        );
    }

    pub fn register_certificate(&self, client_id: &str, public_pem: &str, thumbprint: &str) {
        self.state.lock().unwrap().apps.insert(
            client_id.into(),
            AppCredential::Certificate {
                public_pem: public_pem.into(),
                thumbprint: thumbprint.into(),
            },
        );
    }

    /// Registers `client_id` as a public client (one the device-code flow may use).
    pub fn register_public(&self, client_id: &str) {
        self.state
            .lock()
            .unwrap()
            .apps
            .insert(client_id.into(), AppCredential::Public);
    }

    pub fn register_federated(&self, client_id: &str, token: &str) {
        self.state.lock().unwrap().apps.insert(
            client_id.into(),
            AppCredential::Federated {
                token: token.into(),
            },
        );
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state.lock().unwrap().fault = Some(fault);
    }

    /// Runs this upstream's clock `secs` ahead of the machine's (behind when negative): its
    /// `Date` headers, and the absolute times it states, move by that much.
    pub fn set_clock_offset(&self, secs: i64) {
        self.state.lock().unwrap().clock_offset = secs;
    }

    pub fn set_expires_in(&self, secs: u64) {
        self.state.lock().unwrap().expires_in = Some(secs);
    }

    /// Calls of one kind: `client_secret`, `client_assertion`, `devicecode`, `device_code`,
    /// `authorize`, `authorization_code`, `refresh_token`; refused and failed ones included.
    pub fn calls(&self, kind: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.state.lock().unwrap().calls.values().sum()
    }

    /// Every access token handed out, oldest first.
    pub fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }

    /// Every refresh token handed out.
    pub fn refresh_tokens(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .refresh_tokens
            .keys()
            .cloned()
            .collect()
    }

    /// Every refresh token handed out so far is revoked (as a password reset or an admin's
    /// revocation does): using one is refused with `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.state.lock().unwrap().refresh_tokens.clear();
    }

    /// The `scope` of every token request that named one, oldest first.
    pub fn scopes(&self) -> Vec<String> {
        self.state.lock().unwrap().scopes.clone()
    }
}

/// Every answer carries a `Date` by this upstream's clock, as real servers' answers do.
fn answer(state: &Mutex<State>, mock: Minter, request: &Request) -> Response {
    let offset = state.lock().unwrap().clock_offset;
    answer_undated(state, mock, request).dated(offset)
}

fn answer_undated(state: &Mutex<State>, mock: Minter, request: &Request) -> Response {
    // MSAL (Python's azure-identity) reads the tenant's OpenID configuration first.
    if request.method == "GET"
        && request.path == format!("/{TENANT}/v2.0/.well-known/openid-configuration")
    {
        let base = format!(
            "https://{}/{TENANT}",
            request.header("host").unwrap_or_default()
        );
        return Response::json(
            200,
            json!({
                "issuer": format!("{base}/v2.0"),
                "token_endpoint": format!("{base}/oauth2/v2.0/token"),
                "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
                "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
                "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            }),
        );
    }
    if request.method == "GET" && request.path == format!("/{TENANT}/oauth2/v2.0/authorize") {
        return authorize(state, request);
    }
    let form: HashMap<String, String> =
        form_urlencoded::parse(&request.body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let kind = match (request.path.rsplit('/').next(), field("grant_type")) {
        (Some("devicecode"), _) => "devicecode",
        (_, "client_credentials") if form.contains_key("client_assertion") => "client_assertion",
        (_, "client_credentials") => "client_secret",
        (_, "urn:ietf:params:oauth:grant-type:device_code") => "device_code",
        (_, "refresh_token") => "refresh_token",
        (_, "authorization_code") => "authorization_code",
        _ => "other",
    };
    let fault = {
        let mut st = state.lock().unwrap();
        *st.calls.entry(kind.to_string()).or_default() += 1;
        st.fault.unwrap_or(Fault::None)
    };
    match fault {
        Fault::None => {}
        Fault::ServerError => {
            return entra_error(
                500,
                "temporarily_unavailable",
                50000,
                "There was an error issuing a token.",
            );
        }
        Fault::Throttle(secs) => {
            return entra_error(
                429,
                "temporarily_unavailable",
                50196,
                "The server is busy; retry later.",
            )
            .with_header("retry-after", &secs.to_string());
        }
        Fault::Hang => {
            std::thread::sleep(Duration::from_secs(120));
            return entra_error(500, "temporarily_unavailable", 50000, "timed out");
        }
        Fault::Garbage => return Response::new(200, "text/html", "<html>maintenance</html>"),
        Fault::Reset => return Response::reset(),
        Fault::ExpiredOnArrival => {}
        Fault::EchoRequest => {
            return entra_error(
                400,
                "invalid_request",
                900144,
                &format!(
                    "AADSTS900144: The request body is not valid: {}",
                    crate::http::echo(request)
                ),
            );
        }
    }
    let prefix = format!("/{TENANT}/oauth2/v2.0/");
    let Some(endpoint) = request.path.strip_prefix(&prefix) else {
        let tenant = request
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        return entra_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    };
    let client_id = field("client_id").to_string();
    let app = state.lock().unwrap().apps.get(&client_id).cloned();
    let scope = field("scope").to_string();
    if endpoint == "token" && !scope.is_empty() {
        state.lock().unwrap().scopes.push(scope.clone());
    }
    if let Some(refusal) = scope_refusal(kind, &scope) {
        return refusal;
    }
    let record = |state: &Mutex<State>, minted: Response| record(state, minted, &client_id);
    match (endpoint, kind) {
        ("devicecode", _) => {
            if !matches!(app, Some(AppCredential::Public)) {
                return unknown_client(&client_id);
            }
            let mut st = state.lock().unwrap();
            st.device_polls = 0;
            st.device_client = Some((client_id.clone(), scope.clone()));
            drop(st);
            Response::json(
                200,
                json!({
                    "device_code": "credd-device-code-0001",
                    "user_code": "CREDD-42",
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": 900,
                    "interval": 1,
                    "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code CREDD-42 to authenticate.",
                }),
            )
        }
        ("token", "device_code") => {
            let approved = {
                let mut st = state.lock().unwrap();
                st.device_polls += 1;
                st.device_polls > st.device_polls_until_approved
            };
            let issued = state.lock().unwrap().device_client.clone();
            let Some((_, scope)) = issued
                .filter(|(to, _)| *to == client_id)
                .filter(|_| field("device_code") == "credd-device-code-0001")
            else {
                return entra_error(
                    400,
                    "expired_token",
                    70020,
                    "AADSTS70020: The provided value for the input parameter 'device_code' is not valid.",
                );
            };
            if !approved {
                return entra_error(
                    400,
                    "authorization_pending",
                    70016,
                    "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending.",
                );
            }
            // A refresh token comes only with `offline_access`.
            let kind = if scope.split(' ').any(|s| s == "offline_access") {
                "refresh_token"
            } else {
                "client_credentials"
            };
            record(state, mock.mint(kind, &scope))
        }
        ("token", "authorization_code") => {
            let pending = state.lock().unwrap().codes.remove(field("code"));
            let Some((to, redirect_uri, challenge, scope)) = pending else {
                return entra_error(
                    400,
                    "invalid_grant",
                    70008,
                    "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.",
                );
            };
            if to != client_id || redirect_uri != field("redirect_uri") {
                return entra_error(
                    400,
                    "invalid_grant",
                    50148,
                    "AADSTS50148: The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
                );
            }
            use base64::Engine as _;
            use sha2::Digest as _;
            let verified = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(field("code_verifier")));
            if verified != challenge {
                return entra_error(
                    400,
                    "invalid_grant",
                    501481,
                    "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                );
            }
            let kind = if scope.split(' ').any(|s| s == "offline_access") {
                "refresh_token"
            } else {
                "client_credentials"
            };
            record(state, mock.mint(kind, &scope))
        }
        ("token", "refresh_token") => {
            // A refresh token works only for the client it was issued to.
            if state
                .lock()
                .unwrap()
                .refresh_tokens
                .get(field("refresh_token"))
                != Some(&client_id)
            {
                return entra_error(
                    400,
                    "invalid_grant",
                    9002313,
                    "AADSTS9002313: Invalid request. Request is malformed or invalid.",
                );
            }
            record(state, mock.mint("refresh_token", field("scope")))
        }
        ("token", "client_secret") => match app {
            Some(AppCredential::Secret { secret, expired }) => {
                if field("client_secret") != secret {
                    entra_error(
                        401,
                        "invalid_client",
                        7000215,
                        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                    )
                } else if expired {
                    entra_error(
                        401,
                        "invalid_client",
                        7000222,
                        &format!(
                            "AADSTS7000222: The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app."
                        ),
                    )
                } else {
                    record(state, mock.mint("client_credentials", field("scope")))
                }
            }
            _ => unknown_client(&client_id),
        },
        ("token", "client_assertion") => {
            let assertion = field("client_assertion");
            let verdict = match app {
                Some(AppCredential::Federated { token }) => (assertion == token)
                    .then_some(())
                    .ok_or("AADSTS700213: No matching federated identity record found for presented assertion."),
                Some(AppCredential::Certificate { public_pem, thumbprint }) => {
                    verify_certificate_assertion(assertion, &public_pem, &thumbprint, &client_id, request)
                }
                _ => return unknown_client(&client_id),
            };
            match verdict {
                Ok(()) => record(state, mock.mint("client_credentials", field("scope"))),
                Err(why) => entra_error(401, "invalid_client", 700027, why),
            }
        }
        _ => entra_error(
            400,
            "unsupported_grant_type",
            70003,
            "AADSTS70003: The app requested an unsupported grant type.",
        ),
    }
}

/// The sign-in page, for a person who is signed in already: Entra sends the browser back to
/// the app's redirect URI with a code (or an error), as it does for a public client whose
/// loopback redirect (`http://localhost`, any port) is registered and which asked for PKCE.
fn authorize(state: &Mutex<State>, request: &Request) -> Response {
    let decoded = request.decoded_query();
    let query = |name: &str| decoded.get(name).cloned().unwrap_or_default();
    let client_id = query("client_id");
    *state
        .lock()
        .unwrap()
        .calls
        .entry("authorize".into())
        .or_default() += 1;
    if !matches!(
        state.lock().unwrap().apps.get(&client_id),
        Some(AppCredential::Public)
    ) {
        return unknown_client(&client_id);
    }
    let redirect = query("redirect_uri");
    if !redirect.starts_with("http://localhost:") {
        return entra_error(
            400,
            "invalid_request",
            50011,
            "AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.",
        );
    }
    if query("code_challenge_method") != "S256" || query("code_challenge").is_empty() {
        return entra_error(
            400,
            "invalid_request",
            9002325,
            "AADSTS9002325: Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
        );
    }
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    let code = format!("entra-code-{}", hex::encode(bytes));
    state.lock().unwrap().codes.insert(
        code.clone(),
        (
            client_id,
            redirect.clone(),
            query("code_challenge"),
            query("scope"),
        ),
    );
    let back = format!(
        "{redirect}?code={code}&state={}&session_state=credd-test",
        form_urlencoded::byte_serialize(query("state").as_bytes()).collect::<String>()
    );
    Response::new(302, "text/html", "").with_header("location", &back)
}

fn verify_certificate_assertion(
    assertion: &str,
    public_pem: &str,
    thumbprint: &str,
    client_id: &str,
    request: &Request,
) -> Result<(), &'static str> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| "AADSTS50027: JWT token is invalid or malformed.")?;
    if header.x5t.as_deref() != Some(thumbprint) {
        return Err(
            "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.",
        );
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    let host = request.header("host").unwrap_or_default();
    validation.set_audience(&[format!("https://{host}/{TENANT}/oauth2/v2.0/token")]);
    validation.set_issuer(&[client_id]);
    jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map(|_| ())
        .map_err(|_| "AADSTS700027: Client assertion failed signature validation.")
}

fn unknown_client(client_id: &str) -> Response {
    entra_error(
        400,
        "unauthorized_client",
        700016,
        &format!(
            "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{TENANT}'."
        ),
    )
}

/// Reshapes the mock's answer into Entra's (`ext_expires_in`; no id token), and records it.
/// Entra's refusal of a scope the grant cannot have: client-credential flows take exactly one
/// `<resource>/.default`; the device-code request and a refresh need a resource scope besides
/// the OpenID ones.
fn scope_refusal(kind: &str, scope: &str) -> Option<Response> {
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    let ok = match kind {
        "client_secret" | "client_assertion" => {
            scopes.len() == 1 && scopes[0].ends_with("/.default")
        }
        // The device-code poll names no scope: the code carries it.
        "devicecode" | "refresh_token" => scopes
            .iter()
            .any(|s| !matches!(*s, "openid" | "profile" | "offline_access")),
        _ => true,
    };
    (!ok).then(|| {
        entra_error(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )
    })
}

fn record(state: &Mutex<State>, response: Response, client_id: &str) -> Response {
    let minted: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let Some(token) = minted["access_token"].as_str() else {
        return response;
    };
    let mut st = state.lock().unwrap();
    st.issued.push(token.to_string());
    let expires_in = if st.fault == Some(Fault::ExpiredOnArrival) {
        0
    } else {
        st.expires_in.unwrap_or(3599)
    };
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    });
    if let Some(refresh) = minted["refresh_token"].as_str() {
        st.refresh_tokens
            .insert(refresh.to_string(), client_id.to_string());
        body["refresh_token"] = json!(refresh);
        body["scope"] = minted["scope"].clone();
    }
    Response::json(200, body)
}

fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Response {
    Response::json(
        status,
        json!({
            "error": error,
            "error_description": format!("{description}\r\nTrace ID: 0f3e2d1c-credd\r\nCorrelation ID: 9a8b7c6d-credd\r\nTimestamp: 2026-11-22 04:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-11-22 04:00:00Z",
            "trace_id": "0f3e2d1c-credd",
            "correlation_id": "9a8b7c6d-credd",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// A self-signed certificate and its key for an app, made with openssl: (PEM with both,
/// public key PEM, x5t thumbprint).
pub fn app_certificate(dir: &Path) -> (std::path::PathBuf, String, String) {
    use base64::Engine as _;
    use sha1::Digest as _;
    let run = |args: &[&str]| crate::peers::openssl(dir, args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "app.key",
        "-out",
        "app.crt",
        "-days",
        "2",
        "-subj",
        "/CN=credd-test-app",
    ]);
    let public = String::from_utf8(run(&["x509", "-in", "app.crt", "-pubkey", "-noout"])).unwrap();
    let cert = std::fs::read(dir.join("app.crt")).unwrap();
    let der = pem::parse(&cert).unwrap().into_contents();
    let thumbprint =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der));
    let both = dir.join("app.pem");
    let mut pem_text = cert;
    pem_text.extend(std::fs::read(dir.join("app.key")).unwrap());
    std::fs::write(&both, pem_text).unwrap();
    (both, public, thumbprint)
}
