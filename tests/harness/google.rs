//! Google's upstreams for the gcp tests. `oauth2-mock-server` (npm) is the OAuth 2.0 token
//! endpoint; in front of it sits a shim for what the mock does not do the way Google does:
//! it verifies service-account assertions against the key in the test's key file (the mock
//! does not check signatures), answers Google STS token exchanges, IAM Credentials
//! `generateAccessToken` and `generateIdToken` calls, and ID-token requests (a JWT-bearer
//! assertion with `target_audience`) in their documented formats (minting the tokens with the
//! mock, whose JWTs carry the audience asked),
//! refuses revoked refresh tokens with `invalid_grant`, and can be told to fail. Every call that
//! reaches it is counted.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{self, HttpStub, Request, Response};
use crate::peers::free_port;

/// `oauth2-mock-server` on 127.0.0.1, stopped when dropped.
pub struct OAuthMock {
    pub port: u16,
    child: Child,
}

impl OAuthMock {
    pub fn start() -> Self {
        let port = free_port();
        let script = "import { OAuth2Server } from 'oauth2-mock-server';\n\
            const server = new OAuth2Server();\n\
            await server.issuer.keys.generate('RS256');\n\
            await server.start(Number(process.env.MOCK_PORT), '127.0.0.1');\n\
            console.log('ready');\n";
        let mut child = Command::new("node")
            .args(["--input-type=module", "-e", script])
            .current_dir(crate::peers_dir())
            .env("MOCK_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start oauth2-mock-server with node");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "oauth2-mock-server did not start; run the README's test command to install it"
        );
        OAuthMock { port, child }
    }
}

impl OAuthMock {
    /// A handle for stubs in front of the mock. It does not keep the mock alive, so the
    /// process stops when this `OAuthMock` is dropped, even while a stub thread lives on.
    pub fn minter(&self) -> Minter {
        Minter { port: self.port }
    }
}

/// Mints tokens with the mock server.
#[derive(Debug, Clone, Copy)]
pub struct Minter {
    port: u16,
}

impl Minter {
    /// A token minted by the mock with `grant` (`client_credentials`, or `refresh_token` for
    /// one that comes with a refresh token) and `scope`.
    pub fn mint(&self, grant: &str, scope: &str) -> Response {
        self.token_request(&[
            ("grant_type", grant),
            ("refresh_token", "mock"),
            ("scope", scope),
        ])
    }

    /// A JWT for `audience`, signed by the mock (as Google signs ID tokens).
    pub fn mint_id_token(&self, audience: &str) -> String {
        let answer = self.token_request(&[("grant_type", "client_credentials"), ("aud", audience)]);
        let minted: Value =
            serde_json::from_slice(&answer.body).expect("the mock answers with JSON");
        minted["access_token"]
            .as_str()
            .expect("the mock mints a JWT")
            .to_string()
    }

    /// The mock's answer to a token request with `form`.
    fn token_request(&self, form: &[(&str, &str)]) -> Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = Request {
            method: "POST".into(),
            path: "/token".into(),
            query: Vec::new(),
            headers: vec![
                ("host".into(), format!("127.0.0.1:{}", self.port)),
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
            ],
            body: body.into_bytes(),
        };
        http::forward(self.port, &request)
    }
}

impl Drop for OAuthMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the upstream misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// HTTP 500.
    ServerError,
    /// Never answers (for two minutes).
    Hang,
    /// HTTP 200 with a body that is not a token response.
    Garbage,
    /// HTTP 429 with this Retry-After, in seconds.
    Throttle(u64),
    /// The connection is closed without an answer.
    Reset,
    /// A token that has already expired (`expires_in: 0`).
    ExpiredOnArrival,
    /// HTTP 400 whose error description quotes the request back (its form values, decoded,
    /// and its Authorization header), as careless servers do.
    EchoRequest,
}

#[derive(Default)]
struct State {
    fault: Option<Fault>,
    revoked: HashSet<String>,
    expires_in: Option<u64>,
    /// How far this upstream's clock runs ahead of the machine's (behind when negative).
    clock_offset: i64,
    service_accounts: HashMap<String, String>,
    /// OAuth client id -> its secret.
    clients: HashMap<String, String>,
    /// refresh token -> the client it was granted to
    refresh_tokens: HashMap<String, String>,
    /// subject token -> (the workload identity pool audience, its token type)
    subject_tokens: HashMap<String, (String, String)>,
    /// Workforce pool providers: audience -> (issuer, client id, keys) of the OpenID Provider
    /// each trusts.
    workforce: HashMap<String, (String, String, jsonwebtoken::jwk::JwkSet)>,
    /// Every workforce exchange's `options` (its userProject), in order.
    workforce_options: Vec<String>,
    /// Service accounts that tokens from this upstream may impersonate.
    impersonable: HashSet<String>,
    /// The service account each `generateAccessToken` / `generateIdToken` named, in order.
    impersonated: Vec<String>,
    calls: HashMap<&'static str, usize>,
    issued: Vec<String>,
    /// Every ID token handed out, with the audience it was asked for.
    id_tokens: Vec<(String, String)>,
}

pub struct GoogleUpstream {
    stub: HttpStub,
    state: Arc<Mutex<State>>,
    _mock: OAuthMock,
}

pub const REFRESH: &str = "refresh_token";
pub const JWT_BEARER: &str = "jwt_bearer";
pub const TOKEN_EXCHANGE: &str = "token_exchange";
pub const GENERATE_ACCESS_TOKEN: &str = "generate_access_token";
pub const ID_TOKEN: &str = "id_token";
pub const GENERATE_ID_TOKEN: &str = "generate_id_token";
pub const WORKFORCE_EXCHANGE: &str = "workforce_exchange";
pub const EXTERNAL_REFRESH: &str = "external_refresh";

impl GoogleUpstream {
    pub fn start() -> Self {
        let mock = OAuthMock::start();
        let state = Arc::new(Mutex::new(State::default()));
        let (shared, minter) = (state.clone(), mock.minter());
        let stub = HttpStub::start(move |request| answer(&shared, minter, request));
        GoogleUpstream {
            stub,
            state,
            _mock: mock,
        }
    }

    pub fn url(&self) -> String {
        self.stub.url()
    }

    /// The OAuth token endpoint (`token_uri` / `token_url` in credential files).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// An IAM Credentials URL that impersonates `account`.
    pub fn impersonation_url(&self, account: &str) -> String {
        format!(
            "{}/v1/projects/-/serviceAccounts/{account}:generateAccessToken",
            self.url()
        )
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state.lock().unwrap().fault = Some(fault);
    }

    pub fn revoke(&self, refresh_token: &str) {
        self.state
            .lock()
            .unwrap()
            .revoked
            .insert(refresh_token.into());
    }

    /// The lifetime stated in token responses from now on.
    /// Runs this upstream's clock `secs` ahead of the machine's (behind when negative): its
    /// `Date` headers, and the absolute times it states, move by that much.
    pub fn set_clock_offset(&self, secs: i64) {
        self.state.lock().unwrap().clock_offset = secs;
    }

    pub fn set_expires_in(&self, secs: u64) {
        self.state.lock().unwrap().expires_in = Some(secs);
    }

    /// Accepts assertions from `email` signed by the key whose public half is `public_pem`.
    pub fn trust_service_account(&self, email: &str, public_pem: &str) {
        self.state
            .lock()
            .unwrap()
            .service_accounts
            .insert(email.into(), public_pem.into());
    }

    /// Accepts `token` as the subject token of the workload identity pool provider
    /// `audience`, of `token_type` (an STS exchange must name both, as Google checks).
    pub fn accept_subject_token(&self, token: &str, audience: &str, token_type: &str) {
        self.state
            .lock()
            .unwrap()
            .subject_tokens
            .insert(token.into(), (audience.into(), token_type.into()));
    }

    /// A workforce pool provider, `audience`, that trusts ID tokens of the OpenID Provider
    /// `issuer` for `client_id`, signed with a key of `jwks`.
    pub fn trust_workforce_provider(
        &self,
        audience: &str,
        issuer: &str,
        client_id: &str,
        jwks: &str,
    ) {
        let keys = serde_json::from_str(jwks).expect("a JWKS document");
        self.state
            .lock()
            .unwrap()
            .workforce
            .insert(audience.into(), (issuer.into(), client_id.into(), keys));
    }

    /// The `options` of every workforce exchange, in order.
    pub fn workforce_options(&self) -> Vec<String> {
        self.state.lock().unwrap().workforce_options.clone()
    }

    /// Google's STS `oauthtoken` endpoint, which renews `external_account_authorized_user`
    /// refresh tokens.
    pub fn oauthtoken_url(&self) -> String {
        format!("{}/v1/oauthtoken", self.url())
    }

    /// The OAuth client `client_id` (with `client_secret`) holds `refresh_token`, as after
    /// a person's consent.
    pub fn grant_refresh_token(&self, client_id: &str, client_secret: &str, refresh_token: &str) {
        let mut st = self.state.lock().unwrap();
        st.clients.insert(client_id.into(), client_secret.into());
        st.refresh_tokens
            .insert(refresh_token.into(), client_id.into());
    }

    /// Tokens from this upstream may impersonate `account` (the caller holds
    /// `roles/iam.serviceAccountTokenCreator` on it).
    pub fn allow_impersonation(&self, account: &str) {
        self.state
            .lock()
            .unwrap()
            .impersonable
            .insert(account.into());
    }

    /// Takes back [`GoogleUpstream::allow_impersonation`].
    pub fn forbid_impersonation(&self, account: &str) {
        self.state.lock().unwrap().impersonable.remove(account);
    }

    /// The service account each impersonation call named, oldest first.
    pub fn impersonated(&self) -> Vec<String> {
        self.state.lock().unwrap().impersonated.clone()
    }

    /// Calls of one kind ([`REFRESH`], [`JWT_BEARER`], ...), failed ones included.
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

    /// Every ID token handed out, oldest first, with the audience it was asked for.
    pub fn id_tokens(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().id_tokens.clone()
    }
}

/// Every answer carries a `Date` by this upstream's clock, as real servers' answers do.
fn answer(state: &Mutex<State>, mock: Minter, request: &Request) -> Response {
    let offset = state.lock().unwrap().clock_offset;
    answer_undated(state, mock, request).dated(offset)
}

fn answer_undated(state: &Mutex<State>, mock: Minter, request: &Request) -> Response {
    let kind = classify(request);
    let fault = {
        let mut st = state.lock().unwrap();
        if let Some(kind) = kind {
            *st.calls.entry(kind).or_default() += 1;
        }
        st.fault.unwrap_or(Fault::None)
    };
    let Some(kind) = kind else {
        return oauth_error(404, "not_found", "no such endpoint");
    };
    match fault {
        Fault::None => {}
        Fault::ServerError => return oauth_error(500, "internal_failure", "backend error"),
        Fault::Hang => {
            std::thread::sleep(Duration::from_secs(120));
            return oauth_error(500, "internal_failure", "timed out");
        }
        Fault::Garbage => return Response::new(200, "text/html", "<html>maintenance</html>"),
        Fault::Throttle(secs) => {
            return oauth_error(429, "rate_limit_exceeded", "Quota exceeded")
                .with_header("retry-after", &secs.to_string());
        }
        Fault::Reset => return Response::reset(),
        Fault::ExpiredOnArrival => {}
        Fault::EchoRequest => {
            return oauth_error(
                400,
                "invalid_request",
                &format!("Invalid request: {}", crate::http::echo(request)),
            );
        }
    }
    let form: HashMap<String, String> =
        form_urlencoded::parse(&request.body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let minted = match kind {
        REFRESH => {
            let client = (field("client_id"), field("client_secret"));
            if let Some(refusal) = refresh_refusal(state, client, field("refresh_token")) {
                return refusal;
            }
            http::forward(mock.port, request)
        }
        JWT_BEARER | ID_TOKEN => {
            if let Err(why) = verify_assertion(state, field("assertion"), request) {
                return oauth_error(400, "invalid_grant", &why);
            }
            if kind == ID_TOKEN {
                let audience = assertion_claim(field("assertion"), "target_audience");
                let token = record_id_token(state, mock, &audience);
                return Response::json(200, json!({ "id_token": token }));
            }
            mock.mint(
                "client_credentials",
                &assertion_claim(field("assertion"), "scope"),
            )
        }
        EXTERNAL_REFRESH => {
            // The client authenticates with HTTP Basic, as Google's libraries send it.
            let basic = request
                .header("authorization")
                .and_then(|h| h.strip_prefix("Basic "))
                .and_then(|b| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(b).ok()
                })
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let client = basic.split_once(':').unwrap_or_default();
            if let Some(refusal) = refresh_refusal(state, client, field("refresh_token")) {
                return refusal;
            }
            mock.mint(
                "client_credentials",
                "https://www.googleapis.com/auth/cloud-platform",
            )
        }
        // A workforce pool provider trusting an OpenID Provider checks the ID token itself.
        TOKEN_EXCHANGE
            if state
                .lock()
                .unwrap()
                .workforce
                .contains_key(field("audience")) =>
        {
            *state
                .lock()
                .unwrap()
                .calls
                .entry(WORKFORCE_EXCHANGE)
                .or_default() += 1;
            if let Err(refusal) = workforce_exchange(state, &form) {
                return refusal;
            }
            let mut response = mock.mint("client_credentials", field("scope"));
            if let Ok(mut body) = serde_json::from_slice::<Value>(&response.body) {
                body["issued_token_type"] = json!("urn:ietf:params:oauth:token-type:access_token");
                response.body = body.to_string().into_bytes();
            }
            response
        }
        TOKEN_EXCHANGE => {
            let expected = state
                .lock()
                .unwrap()
                .subject_tokens
                .get(field("subject_token"))
                .cloned();
            let Some((audience, token_type)) = expected else {
                return oauth_error(400, "invalid_grant", "The subject token is not valid.");
            };
            if field("audience") != audience {
                return oauth_error(
                    400,
                    "invalid_target",
                    "The target service indicated by the \"audience\" parameters is invalid.",
                );
            }
            if field("subject_token_type") != token_type
                || field("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token"
            {
                return oauth_error(
                    400,
                    "invalid_request",
                    "Invalid value for \"subject_token_type\" or \"requested_token_type\".",
                );
            }
            let mut response = mock.mint("client_credentials", field("scope"));
            if let Ok(mut body) = serde_json::from_slice::<Value>(&response.body) {
                body["issued_token_type"] = json!("urn:ietf:params:oauth:token-type:access_token");
                response.body = body.to_string().into_bytes();
            }
            response
        }
        GENERATE_ID_TOKEN => return generate_id_token(state, mock, request),
        _ => return generate_access_token(state, mock, request),
    };
    record(state, minted)
}

/// Why a refresh-token grant of `client` (id, secret) is refused, if it is: an unknown client,
/// or a refresh token revoked or granted to another client.
fn refresh_refusal(
    state: &Mutex<State>,
    (id, secret): (&str, &str),
    refresh_token: &str,
) -> Option<Response> {
    let st = state.lock().unwrap();
    if st.clients.get(id).map(String::as_str) != Some(secret) {
        return Some(oauth_error(
            401,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    // A refresh token works only with the client it was granted to.
    (st.revoked.contains(refresh_token)
        || st.refresh_tokens.get(refresh_token).map(String::as_str) != Some(id))
    .then(|| oauth_error(400, "invalid_grant", "Token has been expired or revoked."))
}

/// A workforce exchange, as Google's STS checks it: a provider for the audience, an ID token
/// its OpenID Provider signed for its client, an access token asked for, and the project
/// billed (`options.userProject`), since workforce identities belong to none.
fn workforce_exchange(
    state: &Mutex<State>,
    form: &HashMap<String, String>,
) -> Result<(), Response> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let provider = state
        .lock()
        .unwrap()
        .workforce
        .get(field("audience"))
        .cloned();
    let Some((issuer, client_id, keys)) = provider else {
        return Err(oauth_error(
            400,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        ));
    };
    if field("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token" {
        return Err(oauth_error(
            400,
            "invalid_request",
            "Invalid value for \"requested_token_type\".",
        ));
    }
    let options: Value = serde_json::from_str(field("options")).unwrap_or(Value::Null);
    if options["userProject"].as_str().is_none_or(str::is_empty) {
        return Err(oauth_error(
            400,
            "invalid_request",
            "A workforce pool token exchange needs options.userProject.",
        ));
    }
    state
        .lock()
        .unwrap()
        .workforce_options
        .push(field("options").to_string());
    let providers = HashMap::from([(issuer, (client_id, keys))]);
    crate::oidc::verify_id_token(field("subject_token"), &providers)
        .map(drop)
        .map_err(|refusal| {
            oauth_error(
                400,
                "invalid_grant",
                &format!("The ID token could not be verified: {refusal:?}"),
            )
        })
}

fn classify(request: &Request) -> Option<&'static str> {
    if request.method != "POST" {
        return None;
    }
    if request.path.ends_with(":generateAccessToken") {
        return Some(GENERATE_ACCESS_TOKEN);
    }
    if request.path.ends_with(":generateIdToken") {
        return Some(GENERATE_ID_TOKEN);
    }
    if request.path == "/v1/oauthtoken" {
        return Some(EXTERNAL_REFRESH);
    }
    if request.path != "/token" {
        return None;
    }
    let grant: String = form_urlencoded::parse(&request.body)
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    match grant.as_str() {
        "refresh_token" => Some(REFRESH),
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let assertion: String = form_urlencoded::parse(&request.body)
                .find(|(k, _)| k == "assertion")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if assertion_claim(&assertion, "target_audience").is_empty() {
                Some(JWT_BEARER)
            } else {
                Some(ID_TOKEN)
            }
        }
        "urn:ietf:params:oauth:grant-type:token-exchange" => Some(TOKEN_EXCHANGE),
        _ => Some("other"),
    }
}

/// Records the token a successful response carries and applies the stated lifetime override.
fn record(state: &Mutex<State>, mut response: Response) -> Response {
    if response.status != 200 {
        return response;
    }
    let mut st = state.lock().unwrap();
    if let Ok(mut body) = serde_json::from_slice::<Value>(&response.body) {
        if let Some(token) = body["access_token"].as_str() {
            st.issued.push(token.to_string());
        }
        if let Some(secs) = st.expires_in {
            body["expires_in"] = json!(secs);
        }
        if st.fault == Some(Fault::ExpiredOnArrival) {
            body["expires_in"] = json!(0);
        }
        response.body = body.to_string().into_bytes();
    }
    response
}

fn verify_assertion(
    state: &Mutex<State>,
    assertion: &str,
    request: &Request,
) -> Result<(), String> {
    let unverified = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
        .map_err(|_| "The assertion is not a JWT.".to_string())?;
    let issuer = unverified.claims["iss"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pem = state
        .lock()
        .unwrap()
        .service_accounts
        .get(&issuer)
        .cloned()
        .ok_or_else(|| format!("Invalid issuer {issuer}."))?;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    let host = request.header("host").unwrap_or_default();
    validation.set_audience(&[format!("http://{host}/token")]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map(|_| ())
        .map_err(|e| format!("Invalid JWT: {e}"))
}

/// A string claim of an assertion (empty when it has none).
fn assertion_claim(assertion: &str, claim: &str) -> String {
    jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
        .ok()
        .and_then(|t| t.claims[claim].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Mints an ID token for `audience` and records it.
fn record_id_token(state: &Mutex<State>, mock: Minter, audience: &str) -> String {
    let token = mock.mint_id_token(audience);
    state
        .lock()
        .unwrap()
        .id_tokens
        .push((token.clone(), audience.to_string()));
    token
}

/// The IAM API's refusal of a call whose bearer token this upstream did not issue.
/// Also the refusal of impersonating a service account the caller may not, and a record of
/// which one the URL named (`…/serviceAccounts/<account>:generate…`).
fn unauthenticated(state: &Mutex<State>, request: &Request) -> Option<Response> {
    let bearer = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let mut st = state.lock().unwrap();
    if !st.issued.contains(&bearer) {
        return Some(Response::json(
            401,
            json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}),
        ));
    }
    let account = request
        .path
        .rsplit_once("/serviceAccounts/")
        .and_then(|(_, rest)| rest.split_once(':'))
        .map(|(account, _)| account.replace("%40", "@"))
        .unwrap_or_default();
    st.impersonated.push(account.clone());
    if !st.impersonable.contains(&account) {
        return Some(Response::json(
            403,
            json!({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", "status": "PERMISSION_DENIED"}}),
        ));
    }
    None
}

/// IAM Credentials `generateIdToken`: needs a bearer token this upstream issued and an
/// audience.
fn generate_id_token(state: &Mutex<State>, mock: Minter, request: &Request) -> Response {
    if let Some(refusal) = unauthenticated(state, request) {
        return refusal;
    }
    let body = request.json();
    let audience = body["audience"].as_str().unwrap_or_default();
    if audience.is_empty() {
        return Response::json(
            400,
            json!({"error": {"code": 400, "message": "Audience is required.", "status": "INVALID_ARGUMENT"}}),
        );
    }
    let token = record_id_token(state, mock, audience);
    Response::json(200, json!({ "token": token }))
}

/// IAM Credentials `generateAccessToken`: needs a bearer token this upstream issued.
fn generate_access_token(state: &Mutex<State>, mock: Minter, request: &Request) -> Response {
    if let Some(refusal) = unauthenticated(state, request) {
        return refusal;
    }
    let body = request.json();
    let scope: Vec<&str> = body["scope"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let lifetime: u64 = body["lifetime"]
        .as_str()
        .and_then(|l| l.trim_end_matches('s').parse().ok())
        .unwrap_or(3600);
    let minted = record(state, mock.mint("client_credentials", &scope.join(" ")));
    let minted: Value = serde_json::from_slice(&minted.body).unwrap();
    let lifetime = minted["expires_in"]
        .as_u64()
        .unwrap_or(lifetime)
        .min(lifetime);
    let clock = crate::http::clock_at(state.lock().unwrap().clock_offset);
    let expire = clock + Duration::from_secs(lifetime);
    Response::json(
        200,
        json!({
            "accessToken": minted["access_token"],
            "expireTime": humantime::format_rfc3339_seconds(expire).to_string(),
        }),
    )
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    Response::json(
        status,
        json!({ "error": error, "error_description": description }),
    )
}
