//! A stand-in for IAM Identity Center: the SSO-OIDC service (RegisterClient,
//! StartDeviceAuthorization, CreateToken) and the SSO portal (GetRoleCredentials), speaking their
//! documented REST/JSON wire formats. No real emulator of these exists.
//!
//! A simulated person approves device codes with [`SsoStub::approve_all`]. Every operation is
//! counted, so tests can assert how often credd called it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::http::{HttpStub, Request, Response};

#[derive(Default)]
struct State {
    calls: HashMap<&'static str, usize>,
    /// device code -> approved
    devices: HashMap<String, bool>,
    access_tokens: HashMap<String, SystemTime>,
    refresh_tokens: Vec<String>,
    next: u64,
    /// Lifetime of access tokens issued from now on.
    token_lifetime: Duration,
}

#[derive(Clone)]
pub struct SsoStub {
    stub: HttpStub,
    state: Arc<Mutex<State>>,
}

/// A session as the stub issued it, to seed a token cache file with.
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
        for approved in self.state.lock().unwrap().devices.values_mut() {
            *approved = true;
        }
    }

    pub fn pending_devices(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .devices
            .values()
            .filter(|a| !**a)
            .count()
    }

    /// Issues a session directly (as if `aws sso login` had run).
    pub fn issue_session(&self) -> IssuedSession {
        let mut st = self.state.lock().unwrap();
        let (access, refresh) = issue(&mut st);
        IssuedSession {
            access_token: access,
            refresh_token: refresh,
            client_id: "stub-client-seeded".into(),
            client_secret: "stub-secret-seeded".into(),
        }
    }

    /// Refresh tokens issued so far stop working (the session was ended).
    pub fn revoke_refresh_tokens(&self) {
        self.state.lock().unwrap().refresh_tokens.clear();
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

fn issue(st: &mut State) -> (String, String) {
    st.next += 1;
    let access = format!("sso-access-{}-{}", st.next, std::process::id());
    let refresh = format!("sso-refresh-{}-{}", st.next, std::process::id());
    st.access_tokens
        .insert(access.clone(), SystemTime::now() + st.token_lifetime);
    st.refresh_tokens.push(refresh.clone());
    (access, refresh)
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
            Response::json(
                200,
                json!({
                    "clientId": format!("stub-client-{}", st.next),
                    "clientSecret": format!("stub-secret-{}", st.next),
                    "clientIdIssuedAt": epoch(SystemTime::now()),
                    "clientSecretExpiresAt": epoch(SystemTime::now() + Duration::from_secs(90 * 86400)),
                }),
            )
        }
        ("POST", "/device_authorization") => {
            *st.calls.entry("StartDeviceAuthorization").or_default() += 1;
            st.next += 1;
            let device = format!("device-{}", st.next);
            let user_code = format!("ABCD-{:04}", st.next);
            st.devices.insert(device.clone(), false);
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
            match body["grantType"].as_str().unwrap_or_default() {
                "refresh_token" => {
                    *st.calls.entry("CreateToken:refresh_token").or_default() += 1;
                    let given = body["refreshToken"].as_str().unwrap_or_default();
                    if !st.refresh_tokens.iter().any(|t| t == given) {
                        return error(
                            400,
                            "InvalidGrantException",
                            json!({"error": "invalid_grant", "error_description": "refresh token is not valid"}),
                        );
                    }
                    let (access, refresh) = issue(&mut st);
                    Response::json(
                        200,
                        json!({"accessToken": access, "tokenType": "Bearer", "expiresIn": st.token_lifetime.as_secs(), "refreshToken": refresh}),
                    )
                }
                "urn:ietf:params:oauth:grant-type:device_code" => {
                    let device = body["deviceCode"].as_str().unwrap_or_default().to_string();
                    match st.devices.get(&device) {
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
                            let (access, refresh) = issue(&mut st);
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
            st.next += 1;
            let expiration = SystemTime::now() + Duration::from_secs(3600);
            Response::json(
                200,
                json!({"roleCredentials": {
                    "accessKeyId": format!("ASIASSOSTUB{:09}", st.next),
                    "secretAccessKey": format!("sso-role-secret-{}", st.next),
                    "sessionToken": format!("sso-role-session-{}", st.next),
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
