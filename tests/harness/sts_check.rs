//! A front for moto's STS that checks what moto does not and real STS does: every request's
//! SigV4 signature (with the secret of its access key id, see [`crate::sigv4`]) and the MFA
//! code of a call that names an MFA device. It records every call's parameters and makes the
//! credentials moto issues known, so whatever is later signed with them (a boto3 call, a
//! Bedrock request) is checked against the secret STS really issued.
//!
//! Once told of an OpenID Provider ([`StsCheck::trust_oidc_provider`], as an account's IAM OIDC
//! identity provider), it checks `AssumeRoleWithWebIdentity` tokens as STS does: the signature
//! against the provider's keys, `iss`, `aud` equal to the registered client id, `exp`.
//!
//! Refusals are in STS's documented Query-protocol error format.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::http::{HttpStub, Request, Response};
use crate::sigv4::{self, Key};

/// One STS call that reached the front.
#[derive(Debug, Clone)]
pub struct Call {
    pub action: String,
    pub params: BTreeMap<String, String>,
    /// The access key id that signed it, when the signature held.
    pub signed_by: Option<String>,
    /// What STS answered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// MFA device serial -> the code it shows now.
    mfa: HashMap<String, String>,
    /// The OpenID Providers the account trusts: issuer -> (client id, its keys).
    oidc_providers: HashMap<String, (String, jsonwebtoken::jwk::JwkSet)>,
    calls: Vec<Call>,
}

#[derive(Clone)]
pub struct StsCheck {
    stub: HttpStub,
    state: Arc<Mutex<State>>,
}

impl StsCheck {
    /// A front on a new port, forwarding what it accepts to moto on `moto_port`; over HTTPS
    /// when given a certificate and key.
    pub fn start(moto_port: u16, tls: Option<(&std::path::Path, &std::path::Path)>) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let handler = move |request: &Request| handle(&handler_state, moto_port, request);
        let stub = match tls {
            Some((cert, key)) => HttpStub::start_tls(cert, key, handler),
            None => HttpStub::start(handler),
        };
        StsCheck { stub, state }
    }

    pub fn port(&self) -> u16 {
        self.stub.port
    }

    /// The MFA device `serial` shows `code` from now on.
    pub fn set_mfa_code(&self, serial: &str, code: &str) {
        self.state
            .lock()
            .unwrap()
            .mfa
            .insert(serial.to_string(), code.to_string());
    }

    /// Trusts the OpenID Provider `issuer` for tokens whose audience is `client_id`, signed
    /// with a key of `jwks` (its JWKS document).
    pub fn trust_oidc_provider(&self, issuer: &str, client_id: &str, jwks: &str) {
        let keys = serde_json::from_str(jwks).expect("a JWKS document");
        self.state
            .lock()
            .unwrap()
            .oidc_providers
            .insert(issuer.to_string(), (client_id.to_string(), keys));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }
}

fn handle(state: &Mutex<State>, moto_port: u16, request: &Request) -> Response {
    let params: BTreeMap<String, String> = if request.method == "POST" {
        form_urlencoded::parse(&request.body).into_owned().collect()
    } else {
        request.decoded_query()
    };
    let action = params.get("Action").cloned().unwrap_or_default();
    let record = |signed_by: Option<String>, status: u16| {
        state.lock().unwrap().calls.push(Call {
            action: action.clone(),
            params: params.clone(),
            signed_by,
            status,
        });
    };
    // The federated calls are the only ones STS takes unsigned: the token is the credential.
    let unsigned = matches!(
        action.as_str(),
        "AssumeRoleWithWebIdentity" | "AssumeRoleWithSAML"
    ) && request.header("authorization").is_none();
    let signed = match sigv4::verify(request, sigv4::known) {
        _ if unsigned => sigv4::Signed {
            access_key_id: String::new(),
            region: String::new(),
            service: "sts".into(),
        },
        Ok(signed) => signed,
        Err(refusal) => {
            record(None, 403);
            return error(403, refusal.code(), refusal.message());
        }
    };
    if action == "AssumeRoleWithWebIdentity"
        && let Err((code, message)) = check_web_identity(state, &params)
    {
        record(None, 400);
        return error(400, code, &message);
    }
    if let Some(serial) = params.get("SerialNumber") {
        let expected = state.lock().unwrap().mfa.get(serial).cloned();
        let given = params.get("TokenCode");
        let message = match (expected, given) {
            (None, _) => Some(format!("MFA device {serial} is not registered")),
            (Some(_), None) => Some("TokenCode is required with SerialNumber".to_string()),
            (Some(want), Some(got)) if want != *got => Some(
                "MultiFactorAuthentication failed with invalid MFA one time pass code.".to_string(),
            ),
            _ => None,
        };
        if let Some(message) = message {
            record(Some(signed.access_key_id), 403);
            return error(403, "AccessDenied", &message);
        }
    }
    let response = crate::http::forward(moto_port, request);
    if response.status == 200 {
        learn_issued(&response.body);
    }
    record(Some(signed.access_key_id), response.status);
    response
}

/// The web identity token's verdict, when the account trusts any OpenID Provider: its issuer
/// must be one of them, its signature one of that provider's keys, its audience the client id,
/// and it must not have expired.
fn check_web_identity(
    state: &Mutex<State>,
    params: &BTreeMap<String, String>,
) -> Result<(), (&'static str, String)> {
    let providers = state.lock().unwrap().oidc_providers.clone();
    if providers.is_empty() {
        return Ok(());
    }
    let invalid = |m: &str| ("InvalidIdentityToken", m.to_string());
    let token = params
        .get("WebIdentityToken")
        .ok_or_else(|| invalid("WebIdentityToken is required"))?;
    use crate::oidc::Refusal;
    crate::oidc::verify_id_token(token, &providers)
        .map(drop)
        .map_err(|refusal| match refusal {
            Refusal::UnknownIssuer(issuer) => invalid(&format!(
                "No OpenIDConnect provider found in your account for {issuer}"
            )),
            Refusal::NoKey => {
                invalid("Couldn't retrieve verification key from your identity provider")
            }
            Refusal::Expired => ("ExpiredTokenException", "Token expired".to_string()),
            Refusal::WrongAudience => invalid("Incorrect token audience"),
            Refusal::NotAJwt => invalid("The ID token is not a JWT"),
            Refusal::Invalid(why) => invalid(&format!("The token is invalid: {why}")),
        })
}

/// Makes the credentials in an STS answer known.
fn learn_issued(body: &[u8]) {
    let body = String::from_utf8_lossy(body);
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let len = body[start..].find(&format!("</{name}>"))?;
        Some(body[start..start + len].to_string())
    };
    if let (Some(id), Some(secret)) = (field("AccessKeyId"), field("SecretAccessKey")) {
        sigv4::trust(
            &id,
            Key {
                secret,
                session_token: field("SessionToken"),
            },
        );
    }
}

/// An error in the AWS Query protocol's format.
fn error(status: u16, code: &str, message: &str) -> Response {
    Response::new(
        status,
        "text/xml",
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>sts-check</RequestId></ErrorResponse>"
        ),
    )
}
