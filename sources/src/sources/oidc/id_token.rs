//! ID token validation (OpenID Connect Core 3.1.3.7): the signature against the provider's
//! published keys, then `iss`, `aud`, `azp`, `exp` and `iat` (on credd's clock, with a bounded
//! skew) and, for a sign-in, the `nonce` credd sent. A token that fails any of them is
//! refused, and nothing of the sign-in is kept.

use std::time::{Duration, SystemTime};

use credd_proto::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::discovery::{Metadata, Provider};
use crate::sources::SourceError;

/// How far the provider's clock may be from credd's for `exp` and `iat`.
pub const SKEW: Duration = Duration::from_secs(120);

/// What credd keeps of a valid ID token: who signed in, and until when the token is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    /// `exp`, in seconds since the epoch (the provider's clock).
    pub expires_at_unix: u64,
}

/// What a token must say.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce of the sign-in that asked for it; `None` for a refreshed token, which carries
    /// none of its own (Core 12.2).
    pub nonce: Option<&'a str>,
    /// The subject of the sign-in a refreshed token continues (Core 12.2: it must not change).
    pub subject: Option<&'a str>,
    pub now: SystemTime,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    aud: serde_json::Value,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
}

/// The algorithms a provider may sign ID tokens with here: asymmetric ones only (a public
/// client shares no secret with the provider, so an `HS256` token proves nothing).
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Checks `token` as the provider's ID token for `expected`, fetching its keys as needed.
pub async fn validate(
    provider: &Provider,
    http: &reqwest::Client,
    metadata: &Metadata,
    token: &Secret,
    expected: &Expected<'_>,
) -> Result<Identity, SourceError> {
    let (alg, kid) = algorithm(token)?;
    let jwk = provider.key(http, metadata, kid.as_deref()).await?;
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|e| refused(&format!("the provider's key cannot be used: {e}")))?;
    check(token, alg, &key, expected)
}

/// The token's algorithm and key id, if it is signed with a public-key algorithm.
fn algorithm(token: &Secret) -> Result<(Algorithm, Option<String>), SourceError> {
    let header = jsonwebtoken::decode_header(token.expose())
        .map_err(|_| refused("it is not a signed JWT"))?;
    if !ASYMMETRIC.contains(&header.alg) {
        return Err(refused(&format!(
            "it is signed with {:?}, not a public-key algorithm",
            header.alg
        )));
    }
    Ok((header.alg, header.kid))
}

/// The checks after the key is known (apart, for the unit tests).
fn check(
    token: &Secret,
    alg: Algorithm,
    key: &DecodingKey,
    expected: &Expected<'_>,
) -> Result<Identity, SourceError> {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&[expected.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Times are checked below, on credd's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = jsonwebtoken::decode::<Claims>(token.expose(), key, &validation)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            refused(match e.kind() {
                ErrorKind::InvalidSignature => {
                    "its signature does not verify with the provider's key"
                }
                ErrorKind::InvalidIssuer => "it was issued by another issuer",
                ErrorKind::InvalidAudience => "it is for another client (`aud`)",
                ErrorKind::MissingRequiredClaim(_) => "it lacks a required claim",
                ErrorKind::InvalidAlgorithm => "its algorithm does not match the provider's key",
                _ => "it cannot be read",
            })
        })?
        .claims;
    let audiences = match &claims.aud {
        serde_json::Value::Array(list) => list.len(),
        _ => 1,
    };
    if claims
        .azp
        .as_deref()
        .is_some_and(|azp| azp != expected.client_id)
        || (audiences > 1 && claims.azp.is_none())
    {
        return Err(refused("it was issued to another client (`azp`)"));
    }
    let now = crate::clock::unix_secs(expected.now).max(0) as u64;
    let skew = SKEW.as_secs();
    if claims.exp.saturating_add(skew) <= now {
        return Err(refused("it has expired"));
    }
    if claims.iat > now.saturating_add(skew) {
        return Err(refused(
            "it was issued in the future (`iat`); is the clock right?",
        ));
    }
    if let Some(nonce) = expected.nonce
        && claims.nonce.as_deref() != Some(nonce)
    {
        return Err(refused(
            "its nonce is not this sign-in's (a replayed or foreign token)",
        ));
    }
    if let Some(subject) = expected.subject
        && claims.sub != subject
    {
        return Err(refused("a refresh changed who is signed in (`sub`)"));
    }
    // An email the provider says it has not verified names nobody; some send the flag as a
    // string.
    let unverified = matches!(&claims.email_verified, Some(serde_json::Value::Bool(false)))
        || claims.email_verified.as_ref().and_then(|v| v.as_str()) == Some("false");
    Ok(Identity {
        subject: printable(&claims.sub),
        email: claims.email.filter(|_| !unverified).map(|e| printable(&e)),
        expires_at_unix: claims.exp,
    })
}

/// `text` without control characters: a provider's claim reaches a terminal through `status`.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(256).collect()
}

fn refused(why: &str) -> SourceError {
    SourceError::Upstream(format!("the provider's ID token was refused: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const NOW: u64 = 1_800_000_000;

    fn keys() -> (EncodingKey, DecodingKey, EncodingKey) {
        let signing = p256_key();
        let other = p256_key();
        let public = DecodingKey::from_ec_pem(signing.1.as_bytes()).unwrap();
        (
            EncodingKey::from_ec_pem(signing.0.as_bytes()).unwrap(),
            public,
            EncodingKey::from_ec_pem(other.0.as_bytes()).unwrap(),
        )
    }

    /// A P-256 key pair as PEM (private PKCS#8, public SPKI).
    fn p256_key() -> (String, String) {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let secret = p256::SecretKey::from_bytes(&random_scalar().into()).unwrap();
        (
            secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            secret
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        )
    }

    fn random_scalar() -> [u8; 32] {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).unwrap();
        bytes[0] &= 0x7f;
        bytes
    }

    fn token(key: &EncodingKey, claims: serde_json::Value) -> Secret {
        Secret::new(jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, key).unwrap())
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://idp.example", "aud": "credd", "sub": "alice",
            "email": "alice@example.com", "exp": NOW + 60, "iat": NOW, "nonce": "n1",
        })
    }

    fn expected<'a>() -> Expected<'a> {
        Expected {
            issuer: "https://idp.example",
            client_id: "credd",
            nonce: Some("n1"),
            subject: None,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
        }
    }

    fn verdict(key: &EncodingKey, claims: serde_json::Value, expected: &Expected) -> String {
        let public = KEYS.with(|k| k.1.clone());
        match check(&token(key, claims), Algorithm::ES256, &public, expected) {
            Ok(identity) => format!("ok {}", identity.subject),
            Err(e) => e.to_string(),
        }
    }

    thread_local! {
        static KEYS: (EncodingKey, DecodingKey, EncodingKey) = keys();
    }

    #[test]
    fn a_good_token_says_who_signed_in() {
        let key = KEYS.with(|k| k.0.clone());
        assert_eq!(verdict(&key, good(), &expected()), "ok alice");
    }

    #[test]
    fn each_wrong_claim_or_key_is_refused() {
        let (key, other) = KEYS.with(|k| (k.0.clone(), k.2.clone()));
        let with = |field: &str, value: serde_json::Value| {
            let mut claims = good();
            claims[field] = value;
            claims
        };
        let cases = [
            (other.clone(), good(), "signature does not verify"),
            (
                key.clone(),
                with("aud", "another".into()),
                "another client (`aud`)",
            ),
            (
                key.clone(),
                with("iss", "https://evil.example".into()),
                "another issuer",
            ),
            (key.clone(), with("exp", (NOW - 600).into()), "expired"),
            (
                key.clone(),
                with("iat", (NOW + 3600).into()),
                "in the future",
            ),
            (key.clone(), with("nonce", "an-old-one".into()), "nonce"),
            (key.clone(), with("azp", "another".into()), "`azp`"),
            (
                key.clone(),
                with("aud", serde_json::json!(["credd", "another"])),
                "`azp`",
            ),
        ];
        for (key, claims, why) in cases {
            let verdict = verdict(&key, claims.clone(), &expected());
            assert!(verdict.contains(why), "{claims}: {verdict}");
            assert!(verdict.starts_with("the provider's ID token was refused"));
        }
        let mut no_nonce = good();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert!(verdict(&key, no_nonce.clone(), &expected()).contains("nonce"));
        // A refreshed token carries no nonce, but must keep its subject.
        let refreshed = Expected {
            nonce: None,
            subject: Some("alice"),
            ..expected()
        };
        assert_eq!(verdict(&key, no_nonce.clone(), &refreshed), "ok alice");
        let bob = Expected {
            subject: Some("bob"),
            ..refreshed
        };
        assert!(verdict(&key, no_nonce, &bob).contains("`sub`"));
        // OpenID Connect requires `iat`.
        let mut no_iat = good();
        no_iat.as_object_mut().unwrap().remove("iat");
        assert!(verdict(&key, no_iat, &expected()).contains("cannot be read"));
        // Within the skew is still good.
        assert_eq!(
            verdict(&key, with("exp", (NOW - 30).into()), &expected()),
            "ok alice"
        );
    }

    #[test]
    fn an_unverified_email_names_nobody_and_claims_lose_control_characters() {
        let key = KEYS.with(|k| k.0.clone());
        let public = KEYS.with(|k| k.1.clone());
        let mut claims = good();
        claims["sub"] = "alice\u{1b}[31m".into();
        claims["email_verified"] = false.into();
        let identity = check(&token(&key, claims), Algorithm::ES256, &public, &expected()).unwrap();
        assert_eq!(identity.subject, "alice[31m");
        assert_eq!(identity.email, None);
        let identity = check(&token(&key, good()), Algorithm::ES256, &public, &expected()).unwrap();
        assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    }

    #[test]
    fn symmetric_and_unsigned_tokens_are_refused_before_any_key_is_fetched() {
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &good(),
            &EncodingKey::from_secret(b"shared"),
        )
        .unwrap();
        let unsigned = "eyJhbGciOiJub25lIn0.e30.";
        for token in [hs.as_str(), unsigned, "not a jwt"] {
            let error = algorithm(&Secret::new(token)).unwrap_err().to_string();
            assert!(error.contains("was refused"), "{error}");
        }
    }
}
