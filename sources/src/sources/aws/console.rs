//! `aws login` profiles (`login_session` in the profile): console credentials that AWS Sign-In
//! hands out for 15 minutes and renews, for up to 12 hours, with a refresh token bound to a key
//! of the session's own (a DPoP proof, RFC 9449, signs every renewal).
//!
//! The SDK's provider renews them only in their last five minutes, too late for credd: Claude
//! Code must be handed AWS credentials with more than six minutes left. So credd renews the
//! session's token file itself, as it does an SSO session's, in the AWS CLI's format and place
//! (`~/.aws/login/cache/<sha256 of the session>.json`, or `AWS_LOGIN_CACHE_DIRECTORY`), and the
//! SDK's provider then reads what credd wrote. When the session has ended, only `aws login`
//! helps, which `credd login` runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_signin::operation::create_o_auth2_token::CreateOAuth2TokenError;
use aws_sdk_signin::types::{CreateOAuth2TokenRequestBody, OAuth2ErrorCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::sources::SourceError;

/// The token file is renewed when its credentials have less than this left: they live 15
/// minutes, and the cache hands them out for their first half.
const RENEW_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The longest lifetime credd believes of console credentials (they live 15 minutes): an answer
/// stating more is refused, or credd would stop renewing credentials that have died.
const MAX_LIFETIME_SECS: i32 = 3600;

/// Where the AWS CLI keeps `aws login` tokens when this names no other place.
pub const CACHE_DIRECTORY_ENV: &str = "AWS_LOGIN_CACHE_DIRECTORY";

/// The console session behind a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub profile: String,
    /// The `login_session`: the ARN of the identity signed in.
    pub arn: String,
}

impl ConsoleSession {
    /// The session of `profile`, when the profile itself names one.
    pub fn of_profile(set: &aws_config::profile::ProfileSet, profile: &str) -> Option<Self> {
        let p = set.get_profile(profile)?;
        let arn = p.get("login_session")?.trim();
        if arn.is_empty() || p.get("role_arn").is_some() {
            return None;
        }
        Some(ConsoleSession {
            profile: profile.to_string(),
            arn: arn.to_string(),
        })
    }

    /// The token file, where the AWS CLI writes it.
    pub fn cache_path(&self) -> PathBuf {
        let dir = std::env::var_os(CACHE_DIRECTORY_ENV)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::files::home_dir().join(".aws/login/cache"));
        dir.join(format!(
            "{}.json",
            hex::encode(Sha256::digest(self.arn.as_bytes()))
        ))
    }

    fn needs_login(&self, why: &str) -> SourceError {
        SourceError::NeedsLogin(format!(
            "the `aws login` session of profile `{}` {why}",
            self.profile
        ))
    }
}

/// What credd reads of a token file; the rest of it is kept as it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenFile {
    access_token: AccessToken,
    refresh_token: String,
    client_id: String,
    dpop_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessToken {
    expires_at: String,
}

/// Makes sure the session's token file holds credentials with more than [`RENEW_WINDOW`] left,
/// renewing them through AWS Sign-In when it can. Never interactive. One renewal at a time per
/// file, so a caller that waited finds the renewed file and makes no call of its own.
pub async fn ensure_fresh(
    session: &ConsoleSession,
    sdk: &SdkConfig,
    now: SystemTime,
) -> Result<(), SourceError> {
    let path = session.cache_path();
    let lock = super::file_lock(&path);
    let _renewing = lock.lock().await;
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(session.needs_login("has no token cached"));
        }
        Err(e) => {
            return Err(session.needs_login(&format!("cannot be read ({e})")));
        }
    };
    let unreadable = || {
        session.needs_login(&format!(
            "cannot be used: {} is not an `aws login` token file; it was left as is",
            path.display()
        ))
    };
    let mut document: Value = serde_json::from_slice(&bytes).map_err(|_| unreadable())?;
    let file: TokenFile = serde_json::from_value(document.clone()).map_err(|_| unreadable())?;
    let expires = humantime::parse_rfc3339_weak(file.access_token.expires_at.trim_end_matches('Z'))
        .map_err(|_| unreadable())?;
    if expires > now + RENEW_WINDOW {
        return Ok(());
    }
    let key = p256::SecretKey::from_sec1_pem(&file.dpop_key)
        .or_else(|_| {
            use p256::pkcs8::DecodePrivateKey as _;
            p256::SecretKey::from_pkcs8_pem(&file.dpop_key)
        })
        .map_err(|_| unreadable())?;
    let body = CreateOAuth2TokenRequestBody::builder()
        .client_id(&file.client_id)
        .grant_type("refresh_token")
        .refresh_token(&file.refresh_token)
        .build()
        .map_err(|e| SourceError::Internal(format!("cannot build the Sign-In request: {e}")))?;
    let key = Arc::new(key);
    let result = aws_sdk_signin::Client::new(sdk)
        .create_o_auth2_token()
        .token_input(body)
        .customize()
        // The proof names the request's final URL, known only once the endpoint is resolved.
        .mutate_request(move |request| {
            // Without randomness for its `jti` no proof is sent, and Sign-In refuses the call.
            if let Some(proof) = dpop_proof(&key, request.uri(), crate::clock::wall()) {
                request.headers_mut().insert("DPoP", proof);
            }
        })
        .send()
        .await;
    let output = match result {
        Ok(out) => out.token_output,
        Err(e) => {
            return if e.as_service_error().is_some_and(ended) {
                Err(session.needs_login("has ended (AWS Sign-In refused its refresh token)"))
            } else if expires > now {
                tracing::warn!(profile = %session.profile, "renewing the `aws login` credentials failed; they are still valid: {}", super::service_error(&e));
                Ok(())
            } else {
                Err(SourceError::Upstream(format!(
                    "renewing the `aws login` session of profile `{}` failed: {}",
                    session.profile,
                    super::service_error(&e)
                )))
            };
        }
    };
    // The SDK fills fields an answer left out with empty defaults: an answer that would
    // overwrite the session with nothing (its refresh token is the only copy) is refused.
    let complete = output.as_ref().and_then(|o| {
        let c = o.access_token()?;
        let fields = [
            c.access_key_id(),
            c.secret_access_key(),
            c.session_token(),
            o.refresh_token(),
        ];
        (fields.iter().all(|f| !f.is_empty()) && (1..=MAX_LIFETIME_SECS).contains(&o.expires_in()))
            .then_some((o, c))
    });
    let Some((output, credentials)) = complete else {
        let why = "AWS Sign-In answered without complete credentials and a lifetime; the session file was left as it was";
        return if expires > now {
            tracing::warn!(profile = %session.profile, "{why}; the credentials in it are still valid");
            Ok(())
        } else {
            Err(SourceError::Upstream(why.into()))
        };
    };
    let expires_at = crate::policy::expires_after(now, output.expires_in() as u64, "AWS Sign-In");
    document["accessToken"]["accessKeyId"] = json!(credentials.access_key_id());
    document["accessToken"]["secretAccessKey"] = json!(credentials.secret_access_key());
    document["accessToken"]["sessionToken"] = json!(credentials.session_token());
    document["accessToken"]["expiresAt"] =
        json!(humantime::format_rfc3339_seconds(expires_at).to_string());
    document["refreshToken"] = json!(output.refresh_token());
    let bytes = serde_json::to_vec_pretty(&document).expect("a JSON value serializes");
    crate::files::write_private(&path, &bytes, false)
        .map_err(|e| SourceError::Upstream(format!("cannot write {}: {e}", path.display())))?;
    tracing::info!(profile = %session.profile, "`aws login` credentials renewed through AWS Sign-In");
    Ok(())
}

/// Whether Sign-In refused a renewal because the session is over (its 12 hours, or a changed
/// password): only `aws login` helps then.
pub fn ended(error: &CreateOAuth2TokenError) -> bool {
    matches!(
        error,
        CreateOAuth2TokenError::AccessDeniedException(denied)
            if matches!(denied.error, OAuth2ErrorCode::TokenExpired | OAuth2ErrorCode::UserCredentialsChanged)
    )
}

/// A DPoP proof (RFC 9449) for a POST to `url`, signed with `key`: an ES256 JWT that carries
/// the key's public half, so AWS Sign-In can tell that the refresh token's holder sent it.
fn dpop_proof(key: &p256::SecretKey, url: &str, now: SystemTime) -> Option<String> {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let point = key.public_key().to_encoded_point(false);
    let coordinate = |c: Option<&p256::FieldBytes>| {
        URL_SAFE_NO_PAD.encode(c.map(|c| c.as_slice()).unwrap_or_default())
    };
    let header = json!({
        "typ": "dpop+jwt",
        "alg": "ES256",
        "jwk": {"kty": "EC", "crv": "P-256", "x": coordinate(point.x()), "y": coordinate(point.y())},
    });
    let iat = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Without randomness there is no proof, as without a key: the call goes without one.
    let jti = crate::random::try_hex(16)?;
    let claims = json!({"jti": jti, "htm": "POST", "htu": url, "iat": iat});
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: p256::ecdsa::Signature =
        p256::ecdsa::SigningKey::from(key).sign(message.as_bytes());
    Some(format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;

    #[test]
    fn a_dpop_proof_is_an_es256_jwt_over_the_request_with_its_public_key() {
        let key = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let proof = dpop_proof(
            &key,
            "https://us-east-1.signin.aws.amazon.com/v1/token",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
        .unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(
            claims["htu"],
            "https://us-east-1.signin.aws.amazon.com/v1/token"
        );
        assert_eq!(claims["iat"], 1_800_000_000);
        // Verified with the key the header carries, as the service verifies it.
        let mut sec1 = vec![4u8];
        for c in ["x", "y"] {
            sec1.extend(
                URL_SAFE_NO_PAD
                    .decode(header["jwk"][c].as_str().unwrap())
                    .unwrap(),
            );
        }
        let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let signature =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        assert_eq!(
            public,
            p256::ecdsa::VerifyingKey::from(&p256::ecdsa::SigningKey::from(&key))
        );
    }
}
