//! A stand-in for AWS Sign-In's `CreateOAuth2Token`, which renews the console credentials of an
//! `aws login` session, speaking its documented REST/JSON wire format (`POST /v1/token`). No
//! real emulator of it exists.
//!
//! It checks what the real service checks: every request carries a DPoP proof (RFC 9449), an
//! ES256 JWT signed by the key the session was created with, naming this request's method and
//! URL, fresh and never seen before; the refresh token must belong to the client that presents
//! it and to that key, and is rotated by its use. Credentials it hands out live 15 minutes, as
//! the real ones do, and are known to the tests' SigV4 registry.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::http::{HttpStub, Request, Response};

/// The client id `aws login` uses for a session on this device.
pub const CLIENT_ID: &str = "arn:aws:signin:::devtools/same-device";

/// How long the console credentials live.
pub const LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
struct State {
    calls: usize,
    /// refresh token -> (client id, the public key it is bound to: base64url x and y)
    refresh_tokens: HashMap<String, (String, String, String)>,
    seen_proofs: HashSet<String>,
    /// Every session has ended: refresh tokens are refused (TOKEN_EXPIRED).
    ended: bool,
    /// Answer 200 with an empty body, as a broken or hostile endpoint might.
    answer_empty: bool,
    /// Access key ids handed out, in order.
    issued: Vec<String>,
    /// Why the last refused request was refused.
    refusals: Vec<String>,
    next: u64,
}

#[derive(Clone)]
pub struct SigninStub {
    stub: HttpStub,
    state: Arc<Mutex<State>>,
}

impl SigninStub {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let url = Arc::new(Mutex::new(String::new()));
        let handler_url = url.clone();
        let stub = HttpStub::start(move |request| {
            let url = handler_url.lock().unwrap().clone();
            handle(&handler_state, &url, request)
        });
        *url.lock().unwrap() = stub.url();
        SigninStub { stub, state }
    }

    pub fn url(&self) -> String {
        self.stub.url()
    }

    /// How many token requests it answered, refused ones included.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    /// The access key ids it issued, in order.
    pub fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }

    /// Why requests were refused, in order.
    pub fn refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().refusals.clone()
    }

    /// Every session ends (their 12 hours are over): refresh tokens are refused from now on,
    /// until a new login.
    pub fn end_sessions(&self) {
        let mut state = self.state.lock().unwrap();
        state.ended = true;
        state.refresh_tokens.clear();
    }

    /// From now on every token request is answered `200 {}`, as a broken or hostile endpoint
    /// might.
    pub fn answer_empty(&self) {
        self.state.lock().unwrap().answer_empty = true;
    }

    /// A session as `aws login` leaves it in its token file for `arn`: a new key for its
    /// proofs, a refresh token bound to it, and credentials with `left` to live.
    pub fn login(&self, arn: &str, left: Duration) -> Value {
        let key = loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).unwrap();
            if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
                break key;
            }
        };
        let (x, y) = coordinates(&p256::ecdsa::VerifyingKey::from(
            &p256::ecdsa::SigningKey::from(&key),
        ));
        let mut state = self.state.lock().unwrap();
        state.ended = false;
        let refresh = format!("signin-refresh-{}", token(&mut state));
        state
            .refresh_tokens
            .insert(refresh.clone(), (CLIENT_ID.into(), x, y));
        let (access_key_id, secret, session) = credentials(&mut state);
        let expires = SystemTime::now() + left;
        let account = arn.split(':').nth(4).unwrap_or("111122223333");
        json!({
            "accessToken": {
                "accessKeyId": access_key_id,
                "secretAccessKey": secret,
                "sessionToken": session,
                "accountId": account,
                "expiresAt": humantime::format_rfc3339_seconds(expires).to_string(),
            },
            "tokenType": "aws_sigv4",
            "refreshToken": refresh,
            "idToken": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjcmVkZCJ9.",
            "clientId": CLIENT_ID,
            "dpopKey": key.to_sec1_pem(p256::pkcs8::LineEnding::LF).unwrap().to_string(),
        })
    }
}

/// Where the AWS CLI keeps the token file of session `arn` under `home`.
pub fn cache_file(home: &std::path::Path, arn: &str) -> std::path::PathBuf {
    home.join(".aws/login/cache")
        .join(format!("{}.json", hex::encode(sha2::Sha256::digest(arn))))
}

fn token(state: &mut State) -> u64 {
    state.next += 1;
    state.next
}

/// New console credentials, known to the SigV4 registry as AWS would know them.
fn credentials(state: &mut State) -> (String, String, String) {
    let n = token(state);
    let access_key_id = format!("ASIASIGNIN{n:010}");
    let secret = format!("signin-secret-{n}-{}", hex::encode(n.to_be_bytes()));
    let session = format!("signin-session-{n}");
    crate::sigv4::trust(
        &access_key_id,
        crate::sigv4::Key {
            secret: secret.clone(),
            session_token: Some(session.clone()),
        },
    );
    state.issued.push(access_key_id.clone());
    (access_key_id, secret, session)
}

fn coordinates(key: &p256::ecdsa::VerifyingKey) -> (String, String) {
    let point = key.to_encoded_point(false);
    (
        URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    )
}

fn refuse(state: &mut State, status: u16, kind: &str, code: &str, why: &str) -> Response {
    state.refusals.push(why.to_string());
    Response::json(status, json!({"error": code, "message": why}))
        .with_header("x-amzn-errortype", kind)
}

fn handle(state: &Mutex<State>, url: &str, request: &Request) -> Response {
    let mut state = state.lock().unwrap();
    state.calls += 1;
    if state.answer_empty {
        return Response::json(200, json!({}));
    }
    if request.method != "POST" || request.path != "/v1/token" {
        return Response::json(404, json!({"message": "no such operation"}));
    }
    let body = request.json();
    let (Some(client_id), Some("refresh_token"), Some(refresh)) = (
        body["clientId"].as_str(),
        body["grantType"].as_str(),
        body["refreshToken"].as_str(),
    ) else {
        return refuse(
            &mut state,
            400,
            "ValidationException",
            "INVALID_REQUEST",
            "not a refresh-token request",
        );
    };
    let proof = match verify_proof(request.header("dpop"), &format!("{url}/v1/token")) {
        Ok(proof) => proof,
        Err(why) => {
            return refuse(
                &mut state,
                400,
                "ValidationException",
                "INVALID_REQUEST",
                &why,
            );
        }
    };
    if !state.seen_proofs.insert(proof.jti.clone()) {
        return refuse(
            &mut state,
            400,
            "ValidationException",
            "INVALID_REQUEST",
            "a DPoP proof was replayed",
        );
    }
    let Some((bound_client, x, y)) = state.refresh_tokens.get(refresh).cloned() else {
        return refuse(
            &mut state,
            400,
            "AccessDeniedException",
            "TOKEN_EXPIRED",
            "the refresh token is not (or no longer) valid",
        );
    };
    if bound_client != client_id || (x.as_str(), y.as_str()) != (proof.x.as_str(), proof.y.as_str())
    {
        return refuse(
            &mut state,
            400,
            "AccessDeniedException",
            "INVALID_REQUEST",
            "the refresh token belongs to another client or key",
        );
    }
    // Refresh tokens rotate: the one used is spent.
    state.refresh_tokens.remove(refresh);
    let next_refresh = format!("signin-refresh-{}", token(&mut state));
    state
        .refresh_tokens
        .insert(next_refresh.clone(), (bound_client, x, y));
    let (access_key_id, secret, session) = credentials(&mut state);
    Response::json(
        200,
        json!({
            "accessToken": {
                "accessKeyId": access_key_id,
                "secretAccessKey": secret,
                "sessionToken": session,
            },
            "tokenType": "aws_sigv4",
            "expiresIn": LIFETIME.as_secs(),
            "refreshToken": next_refresh,
        }),
    )
}

struct Proof {
    jti: String,
    x: String,
    y: String,
}

/// Checks a DPoP proof as RFC 9449 says: an ES256 JWT of type `dpop+jwt` carrying the public
/// key that signed it, for a POST to `url`, made within the last five minutes.
fn verify_proof(header: Option<&str>, url: &str) -> Result<Proof, String> {
    let proof = header.ok_or("no DPoP proof")?;
    let parts: Vec<&str> = proof.split('.').collect();
    let [head, claims, signature] = parts[..] else {
        return Err("the DPoP proof is not a JWT".into());
    };
    let decode = |part: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "not base64url")?;
        serde_json::from_slice(&bytes).map_err(|_| "not JSON".to_string())
    };
    let (head, claims) = (decode(head)?, decode(claims)?);
    if head["typ"] != "dpop+jwt" || head["alg"] != "ES256" {
        return Err(format!("the DPoP proof's header is wrong: {head}"));
    }
    let jwk = &head["jwk"];
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return Err("the DPoP proof's key is not a P-256 key".into());
    }
    let (x, y) = (
        jwk["x"].as_str().unwrap_or_default().to_string(),
        jwk["y"].as_str().unwrap_or_default().to_string(),
    );
    let mut sec1 = vec![4u8];
    for c in [&x, &y] {
        sec1.extend(
            URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| "a bad key coordinate")?,
        );
    }
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| "not a P-256 point")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|s| p256::ecdsa::Signature::from_slice(&s).ok())
        .ok_or("the DPoP proof's signature is malformed")?;
    let signed = &proof[..proof.rfind('.').unwrap()];
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| "the DPoP proof's signature does not verify")?;
    if claims["htm"] != "POST" {
        return Err("the DPoP proof names another method".into());
    }
    if claims["htu"] != url {
        return Err(format!(
            "the DPoP proof names {} , not {url}",
            claims["htu"]
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let iat = claims["iat"].as_u64().ok_or("the DPoP proof has no iat")?;
    if iat.abs_diff(now) > 300 {
        return Err("the DPoP proof is stale".into());
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or("the DPoP proof has no jti")?;
    Ok(Proof {
        jti: jti.to_string(),
        x,
        y,
    })
}
