//! A verifier of AWS Signature Version 4, as STS and Bedrock check it: the stubs in front of
//! moto and the model API recompute each request's signature from the secret that belongs to
//! its access key id, so a credential that is not the one issued (a wrong secret, a session
//! token that does not belong to the key) is refused as the real service refuses it.
//!
//! Written from the documented algorithm (canonical request, string to sign, derived key);
//! header-based signatures only, which is what the SDKs and Claude Code send.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::http::Request;

/// What a valid signature says about its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
}

/// Why a request's signature does not hold, in the words of the AWS error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No or malformed `Authorization` header (`MissingAuthenticationToken`).
    Missing(String),
    /// The access key id is unknown (`InvalidClientTokenId`).
    UnknownKey(String),
    /// The session token is missing or not the one issued with the key
    /// (`InvalidClientTokenId`).
    WrongSessionToken(String),
    /// The signature does not match (`SignatureDoesNotMatch`).
    Mismatch(String),
}

impl Refusal {
    /// The AWS error code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Missing(_) => "MissingAuthenticationToken",
            Refusal::UnknownKey(_) | Refusal::WrongSessionToken(_) => "InvalidClientTokenId",
            Refusal::Mismatch(_) => "SignatureDoesNotMatch",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::Missing(m)
            | Refusal::UnknownKey(m)
            | Refusal::WrongSessionToken(m)
            | Refusal::Mismatch(m) => m,
        }
    }
}

/// A key a verifier knows: its secret, and the session token it was issued with (None for a
/// long-term key, which must be used without one).
#[derive(Debug, Clone)]
pub struct Key {
    pub secret: String,
    pub session_token: Option<String>,
}

/// Every key "AWS" knows in this test process: long-term keys from the credentials files the
/// worlds wrote, and the keys the emulators issued. One registry, as real AWS has one.
fn registry() -> &'static Mutex<HashMap<String, Key>> {
    static KEYS: OnceLock<Mutex<HashMap<String, Key>>> = OnceLock::new();
    KEYS.get_or_init(Default::default)
}

/// Makes `key_id` known with `key`.
pub fn trust(key_id: &str, key: Key) {
    registry().lock().unwrap().insert(key_id.to_string(), key);
}

/// The key `key_id` names, if AWS issued or was given it.
pub fn known(key_id: &str) -> Option<Key> {
    registry().lock().unwrap().get(key_id).cloned()
}

/// Makes every key in the text of an AWS shared credentials file known.
pub fn trust_credentials_file(text: &str) {
    let mut section: HashMap<&str, &str> = HashMap::new();
    let flush = |section: &mut HashMap<&str, &str>| {
        if let (Some(id), Some(secret)) = (
            section.get("aws_access_key_id"),
            section.get("aws_secret_access_key"),
        ) {
            trust(
                id,
                Key {
                    secret: secret.to_string(),
                    session_token: section.get("aws_session_token").map(|t| t.to_string()),
                },
            );
        }
        section.clear();
    };
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            flush(&mut section);
        } else if let Some((k, v)) = line.split_once('=') {
            section.insert(k.trim(), v.trim());
        }
    }
    flush(&mut section);
}

/// Checks `request`'s SigV4 signature with the key `lookup` gives for its access key id.
pub fn verify(request: &Request, lookup: impl Fn(&str) -> Option<Key>) -> Result<Signed, Refusal> {
    let auth = request
        .header("authorization")
        .ok_or_else(|| Refusal::Missing("Missing Authentication Token".into()))?;
    let fields = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| Refusal::Missing(format!("not a SigV4 Authorization header: {auth}")))?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| Refusal::Missing(format!("Authorization header without {name}")))
    };
    let credential = field("Credential")?;
    let signed_headers = field("SignedHeaders")?;
    let signature = field("Signature")?;
    let mut scope = credential.splitn(5, '/');
    let (Some(key_id), Some(date), Some(region), Some(service), Some("aws4_request")) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(Refusal::Missing(format!(
            "malformed credential scope {credential}"
        )));
    };
    let key = lookup(key_id).ok_or_else(|| {
        Refusal::UnknownKey("The security token included in the request is invalid.".into())
    })?;
    if request.header("x-amz-security-token") != key.session_token.as_deref() {
        return Err(Refusal::WrongSessionToken(
            "The security token included in the request is invalid.".into(),
        ));
    }
    let amz_date = request
        .header("x-amz-date")
        .ok_or_else(|| Refusal::Missing("no X-Amz-Date header".into()))?;
    if !amz_date.starts_with(date) {
        return Err(Refusal::Mismatch(format!(
            "credential scope date {date} does not match X-Amz-Date {amz_date}"
        )));
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(Refusal::Mismatch("the host header is not signed".into()));
    }
    let canonical = canonical_request(request, &signed, service);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut signing_key = hmac(format!("AWS4{}", key.secret).as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        signing_key = hmac(&signing_key, part.as_bytes());
    }
    let expected = hex::encode(hmac(&signing_key, string_to_sign.as_bytes()));
    if expected != signature {
        if std::env::var_os("CREDD_TESTS_SIGV4_DEBUG").is_some() {
            eprintln!("sigv4 mismatch; canonical request:\n{canonical}\n--");
        }
        return Err(Refusal::Mismatch(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".into(),
        ));
    }
    Ok(Signed {
        access_key_id: key_id.to_string(),
        region: region.to_string(),
        service: service.to_string(),
    })
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The canonical request: method, URI, query, signed headers, and the payload's hash.
fn canonical_request(request: &Request, signed: &[&str], service: &str) -> String {
    // Every service but S3 signs the path URI-encoded once more than it was sent.
    let path = if request.path.is_empty() {
        "/".to_string()
    } else {
        request.path.clone()
    };
    let uri = if service == "s3" {
        path
    } else {
        path.split('/').map(encode).collect::<Vec<_>>().join("/")
    };
    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(k, v)| (encode(&decode(k)), encode(&decode(v))))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let headers: String = signed
        .iter()
        .map(|name| {
            let values: Vec<String> = request
                .headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    let payload = request
        .header("x-amz-content-sha256")
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(Sha256::digest(&request.body)));
    format!(
        "{}\n{uri}\n{query}\n{headers}\n{}\n{payload}",
        request.method,
        signed.join(";")
    )
}

/// RFC 3986 encoding as SigV4 wants it: everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
