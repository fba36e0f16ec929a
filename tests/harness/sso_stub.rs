//! A stand-in for IAM Identity Center: the SSO-OIDC service (RegisterClient,
//! StartDeviceAuthorization, CreateToken) and the SSO portal (GetRoleCredentials), speaking their
//! documented REST/JSON wire formats. No real emulator of these exists.
//!
//! It checks what the real service checks: a device code and a refresh token are bound to the
//! client registration that asked for them (its id and secret must come with every CreateToken),
//! and role credentials are handed out only for the account and role the person is assigned.
//! A simulated person approves device codes with [`SsoStub::approve_all`]. Every operation is
//! counted, so tests can assert how often credd called it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::http::{HttpStub, Request, Response};

#[derive(Default)]
struct State {
    calls: HashMap<&'static str, usize>,
    /// client id -> client secret, of every registration.
    clients: HashMap<String, String>,
    /// device code -> (the client that asked for it, approved)
    devices: HashMap<String, (String, bool)>,
    access_tokens: HashMap<String, SystemTime>,
    /// refresh token -> the client it was issued to
    refresh_tokens: HashMap<String, String>,
    /// The (account id, role name) pairs the person may use.
    assignments: HashSet<(String, String)>,
    /// access key id -> the (account id, role name) it was issued for
    role_credentials: HashMap<String, (String, String)>,
    next: u64,
    /// Lifetime of access tokens issued from now on.
    token_lifetime: Duration,
    /// Whether a refresh token works once only (it is rotated by its use).
    single_use_refresh: bool,
}

#[derive(Clone)]
pub struct SsoStub {
    stub: HttpStub,
    state: Arc<Mutex<State>>,
}

/// A session as the stub issued it, to seed a token cache file with.
/// The client registration a session issued by [`SsoStub::issue_session`] belongs to (as
/// `aws sso login` would have left it in the token file).
pub const SEEDED_CLIENT: (&str, &str) = ("stub-client-seeded", "stub-secret-seeded");

/// The accounts and roles the simulated person is assigned (the profiles the tests use).
pub const ASSIGNMENTS: [(&str, &str); 3] = [
    ("111122223333", "Developer"),
    ("444455556666", "Admin"),
    ("111122223333", "ReadOnly"),
];

pub struct IssuedSession {
    pub access_token: String,
    pub refresh_token: String,
    pub client_id: String,
    pub client_secret: String,
}

impl SsoStub {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            token_lifetime: Duration::from_secs(3600),
            clients: HashMap::from([(SEEDED_CLIENT.0.into(), SEEDED_CLIENT.1.into())]),
            assignments: ASSIGNMENTS
                .iter()
                .map(|(a, r)| (a.to_string(), r.to_string()))
                .collect(),
            ..State::default()
        }));
        let handler_state = state.clone();
        let stub = HttpStub::start(move |request| handle(&handler_state, request));
        SsoStub { stub, state }
    }

    pub fn url(&self) -> String {
        self.stub.url()
    }

    pub fn calls(&self, operation: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// The simulated person approves every pending device code.
    pub fn approve_all(&self) {
        for (_, approved) in self.state.lock().unwrap().devices.values_mut() {
            *approved = true;
        }
    }

    pub fn pending_devices(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .devices
            .values()
            .filter(|(_, approved)| !approved)
            .count()
    }

    /// Issues a session directly (as if `aws sso login` had run).
    pub fn issue_session(&self) -> IssuedSession {
        let mut st = self.state.lock().unwrap();
        let (access, refresh) = issue(&mut st, SEEDED_CLIENT.0);
        IssuedSession {
            access_token: access,
            refresh_token: refresh,
            client_id: SEEDED_CLIENT.0.into(),
            client_secret: SEEDED_CLIENT.1.into(),
        }
    }

    /// From now on a refresh token works once: its use rotates it.
    pub fn rotate_refresh_tokens(&self) {
        self.state.lock().unwrap().single_use_refresh = true;
    }

    /// Refresh tokens issued so far stop working (the session was ended).
    pub fn revoke_refresh_tokens(&self) {
        self.state.lock().unwrap().refresh_tokens.clear();
    }

    /// The account and role the role credentials with `access_key_id` were issued for.
    pub fn role_of(&self, access_key_id: &str) -> Option<(String, String)> {
        self.state
            .lock()
            .unwrap()
            .role_credentials
            .get(access_key_id)
            .cloned()
    }

    pub fn access_token_valid(&self, token: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .access_tokens
            .get(token)
            .is_some_and(|exp| *exp > SystemTime::now())
    }
}

fn issue(st: &mut State, client_id: &str) -> (String, String) {
    st.next += 1;
    let access = format!("sso-access-{}-{}", st.next, std::process::id());
    let refresh = format!("sso-refresh-{}-{}", st.next, std::process::id());
    st.access_tokens
        .insert(access.clone(), SystemTime::now() + st.token_lifetime);
    st.refresh_tokens
        .insert(refresh.clone(), client_id.to_string());
    (access, refresh)
}

/// The registered client the body names with its secret, or the error SSO-OIDC answers.
fn client(st: &State, body: &serde_json::Value) -> Result<String, Response> {
    let id = body["clientId"].as_str().unwrap_or_default();
    let secret = body["clientSecret"].as_str().unwrap_or_default();
    match st.clients.get(id) {
        Some(registered) if registered == secret => Ok(id.to_string()),
        _ => Err(error(
            401,
            "InvalidClientException",
            json!({"error": "invalid_client", "error_description": "client id or secret is not valid"}),
        )),
    }
}

fn error(status: u16, kind: &str, body: serde_json::Value) -> Response {
    Response::json(status, body).with_header("x-amzn-errortype", kind)
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn handle(state: &Mutex<State>, request: &Request) -> Response {
    let mut st = state.lock().unwrap();
    let body = request.json();
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/client/register") => {
            *st.calls.entry("RegisterClient").or_default() += 1;
            st.next += 1;
            let (id, secret) = (
                format!("stub-client-{}", st.next),
                format!("stub-secret-{}", st.next),
            );
            st.clients.insert(id.clone(), secret.clone());
            Response::json(
                200,
                json!({
                    "clientId": id,
                    "clientSecret": secret,
                    "clientIdIssuedAt": epoch(SystemTime::now()),
                    "clientSecretExpiresAt": epoch(SystemTime::now() + Duration::from_secs(90 * 86400)),
                }),
            )
        }
        ("POST", "/device_authorization") => {
            *st.calls.entry("StartDeviceAuthorization").or_default() += 1;
            let client_id = match client(&st, &body) {
                Ok(id) => id,
                Err(refused) => return refused,
            };
            st.next += 1;
            let device = format!("device-{}", st.next);
            let user_code = format!("ABCD-{:04}", st.next);
            st.devices.insert(device.clone(), (client_id, false));
            Response::json(
                200,
                json!({
                    "deviceCode": device,
                    "userCode": user_code,
                    "verificationUri": "https://device.sso.example/",
                    "verificationUriComplete": format!("https://device.sso.example/?user_code={user_code}"),
                    "expiresIn": 600,
                    "interval": 1,
                }),
            )
        }
        ("POST", "/token") => {
            *st.calls.entry("CreateToken").or_default() += 1;
            let client_id = match client(&st, &body) {
                Ok(id) => id,
                Err(refused) => return refused,
            };
            match body["grantType"].as_str().unwrap_or_default() {
                "refresh_token" => {
                    *st.calls.entry("CreateToken:refresh_token").or_default() += 1;
                    let given = body["refreshToken"].as_str().unwrap_or_default();
                    // A refresh token works only for the client it was issued to.
                    if st.refresh_tokens.get(given) != Some(&client_id) {
                        return error(
                            400,
                            "InvalidGrantException",
                            json!({"error": "invalid_grant", "error_description": "refresh token is not valid"}),
                        );
                    }
                    if st.single_use_refresh {
                        st.refresh_tokens.remove(given);
                    }
                    let (access, refresh) = issue(&mut st, &client_id);
                    Response::json(
                        200,
                        json!({"accessToken": access, "tokenType": "Bearer", "expiresIn": st.token_lifetime.as_secs(), "refreshToken": refresh}),
                    )
                }
                "urn:ietf:params:oauth:grant-type:device_code" => {
                    let device = body["deviceCode"].as_str().unwrap_or_default().to_string();
                    match st
                        .devices
                        .get(&device)
                        .filter(|(owner, _)| *owner == client_id)
                        .map(|(_, approved)| *approved)
                    {
                        None => error(
                            400,
                            "InvalidGrantException",
                            json!({"error": "invalid_grant"}),
                        ),
                        Some(false) => error(
                            400,
                            "AuthorizationPendingException",
                            json!({"error": "authorization_pending", "error_description": "waiting for the user"}),
                        ),
                        Some(true) => {
                            st.devices.remove(&device);
                            let (access, refresh) = issue(&mut st, &client_id);
                            Response::json(
                                200,
                                json!({"accessToken": access, "tokenType": "Bearer", "expiresIn": st.token_lifetime.as_secs(), "refreshToken": refresh}),
                            )
                        }
                    }
                }
                other => error(
                    400,
                    "UnsupportedGrantTypeException",
                    json!({"error": "unsupported_grant_type", "error_description": other}),
                ),
            }
        }
        ("GET", "/federation/credentials") => {
            *st.calls.entry("GetRoleCredentials").or_default() += 1;
            let token = request.header("x-amz-sso_bearer_token").unwrap_or_default();
            let valid = st
                .access_tokens
                .get(token)
                .is_some_and(|exp| *exp > SystemTime::now());
            if !valid {
                return error(
                    401,
                    "UnauthorizedException",
                    json!({"message": "Session token not found or invalid"}),
                );
            }
            let assignment = (
                request.query("account_id").unwrap_or_default().to_string(),
                request.query("role_name").unwrap_or_default().to_string(),
            );
            if !st.assignments.contains(&assignment) {
                return error(403, "ForbiddenException", json!({"message": "No access"}));
            }
            st.next += 1;
            let expiration = SystemTime::now() + Duration::from_secs(3600);
            let key_id = format!("ASIASSOSTUB{:09}", st.next);
            let key = crate::sigv4::Key {
                secret: format!("sso-role-secret-{}-{}", st.next, std::process::id()),
                session_token: Some(format!(
                    "sso-role-session-{}-{}",
                    st.next,
                    std::process::id()
                )),
            };
            crate::sigv4::trust(&key_id, key.clone());
            st.role_credentials.insert(key_id.clone(), assignment);
            Response::json(
                200,
                json!({"roleCredentials": {
                    "accessKeyId": key_id,
                    "secretAccessKey": key.secret,
                    "sessionToken": key.session_token,
                    "expiration": epoch(expiration) * 1000,
                }}),
            )
        }
        _ => Response::json(
            404,
            json!({"message": format!("no such operation: {} {}", request.method, request.path)}),
        ),
    }
}
