//! Everything AWS's model APIs ask of a request: a SigV4 signature made with the source's AWS
//! credentials (for the API's service: `bedrock`, `bedrock-mantle`, `aws-external-anthropic`),
//! the region it is signed for and sent to, and short-term Bedrock API keys, minted here for both the proxy's `api-key` routes (kept in a [`KeyCache`])
//! and `credd get --format bedrock-api-key`.
//!
//! A key is what AWS's own token generators make: a SigV4-presigned `POST
//! https://bedrock.amazonaws.com/?Action=CallWithBearerToken` (service `bedrock`, the region
//! the key is for), without its scheme, with `&Version=1`, base64-encoded behind
//! `bedrock-api-key-`. Bedrock takes it as `Authorization: Bearer` (`AWS_BEARER_TOKEN_BEDROCK`).
//! It lives as long as it was signed for, and never longer than the credentials that signed
//! it. Signatures and keys are made on the real clock, which is Bedrock's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use credd_proto::{Credential, CredentialSecret, Secret};

/// The longest lifetime Bedrock accepts for a short-term key.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);

const HOST: &str = "bedrock.amazonaws.com";
const PREFIX: &str = "bedrock-api-key-";

/// What the AWS signer signs with: `credentials`, when they are AWS credentials.
fn signing_identity(
    credentials: &CredentialSecret,
) -> Result<aws_smithy_runtime_api::client::identity::Identity, String> {
    let CredentialSecret::Aws {
        access_key_id,
        secret_access_key,
        session_token,
    } = credentials
    else {
        return Err("Bedrock takes AWS credentials, and this source holds a token".into());
    };
    Ok(aws_credential_types::Credentials::new(
        access_key_id,
        secret_access_key.expose(),
        session_token.as_ref().map(|t| t.expose().to_string()),
        None,
        "credd",
    )
    .into())
}

/// A key for `region` made from `credential` (on the daemon's clock, `now_unix`), valid for
/// `wanted`, but never longer than the credential has left nor than [`MAX_LIFETIME`]; with
/// the lifetime it got.
pub fn mint(
    credential: &Credential,
    region: &str,
    wanted: Duration,
    now_unix: i64,
) -> Result<(String, Duration), String> {
    let left = Duration::from_secs((credential.expires_at - now_unix).max(0) as u64);
    let lifetime = wanted.min(left).min(MAX_LIFETIME);
    let key = presign(&credential.secret, region, lifetime, crate::clock::wall())?;
    Ok((key, lifetime))
}

/// A key for `region` signed with `credentials` at `now`, valid for `lifetime` (at least a
/// minute, at most [`MAX_LIFETIME`]).
fn presign(
    credentials: &CredentialSecret,
    region: &str,
    lifetime: Duration,
    now: SystemTime,
) -> Result<String, String> {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let identity = signing_identity(credentials)?;
    let lifetime = lifetime.min(MAX_LIFETIME).max(Duration::from_secs(60));
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(lifetime);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| format!("cannot sign a Bedrock API key: {e}"))?
        .into();
    let url = format!("https://{HOST}/?Action=CallWithBearerToken");
    // Signed as a POST, as AWS's generators sign it (the method is part of the signature).
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        [("host", HOST)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| format!("cannot sign a Bedrock API key: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("cannot sign a Bedrock API key: {e}"))?
        .into_parts();
    let mut presigned = format!("{HOST}/?Action=CallWithBearerToken");
    for (name, value) in instructions.params() {
        let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
        presigned.push_str(&format!("&{name}={value}"));
    }
    presigned.push_str("&Version=1");
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(presigned)
    ))
}

/// Why a request was not signed: the request itself (a target no signer takes), or the
/// source's credentials.
#[derive(Debug)]
pub enum SignError {
    Unsignable,
    Signer(String),
}

/// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`,
/// `x-amz-content-sha256`) for a request to AWS's `service` in `region`, made by the AWS
/// SDK's own signer.
pub fn sign(
    method: &str,
    url: &str,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    credential: &Credential,
    region: &str,
    service: &str,
) -> Result<Vec<(&'static str, String)>, SignError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = signing_identity(&credential.secret).map_err(SignError::Signer)?;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(crate::clock::wall())
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| SignError::Signer("cannot sign for Bedrock".into()))?
        .into();
    let signable_headers: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let request = SignableRequest::new(
        method,
        url,
        signable_headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|_| SignError::Unsignable)?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|_| SignError::Signer("cannot sign for Bedrock".into()))?
        .into_parts();
    let (signed, _) = instructions.into_parts();
    Ok(signed
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect())
}

/// The region a Bedrock request is signed for and sent to: the configured one, else the
/// profile's. It becomes part of a host name, so only a region's name will do.
pub fn region(configured: Option<&str>, credential: &Credential) -> Result<String, String> {
    let region = configured
        .or(credential.metadata.region.as_deref())
        .ok_or("no region for Bedrock: set `region` in the source's table")?;
    if !crate::sources::aws::spec::is_region_name(region) {
        return Err(format!(
            "`{region}` is not an AWS region name; set `region` in the source's table"
        ));
    }
    Ok(region.to_string())
}

/// The proxy's Bedrock API keys live this long, and each is sent for at most [`KEY_REUSE`]
/// of it: a key caught on its way lasts minutes, not the credentials' life.
const PROXY_KEY_LIFETIME: Duration = Duration::from_secs(15 * 60);
const KEY_REUSE: Duration = Duration::from_secs(10 * 60);

/// The Bedrock API key a proxy made last, sent again while it is young and made from the
/// credential the cache still holds.
#[derive(Default)]
pub struct KeyCache {
    last: Mutex<Option<MintedKey>>,
}

/// A Bedrock API key, and what it was made from.
struct MintedKey {
    credential: Arc<Credential>,
    region: String,
    made: SystemTime,
    key: Secret,
}

impl KeyCache {
    /// A key made from `credential` for `region`: the one made last while it is young enough,
    /// else a new one.
    pub fn key(
        &self,
        credential: &Arc<Credential>,
        region: &str,
        now_unix: i64,
    ) -> Result<String, String> {
        let now = crate::clock::wall();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(minted) = &*last
            && Arc::ptr_eq(&minted.credential, credential)
            && minted.region == region
            && now
                .duration_since(minted.made)
                .is_ok_and(|age| age < KEY_REUSE)
        {
            return Ok(minted.key.expose().to_string());
        }
        let (key, _) = mint(credential, region, PROXY_KEY_LIFETIME, now_unix)?;
        *last = Some(MintedKey {
            credential: credential.clone(),
            region: region.to_string(),
            made: now,
            key: Secret::new(key.clone()),
        });
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_becomes_part_of_a_host_only_when_it_names_a_region() {
        let credential = |region: Option<&str>| Credential {
            source: "s".into(),
            secret: CredentialSecret::Token {
                token: Secret::new("t"),
            },
            issued_at: 0,
            expires_at: 1,
            metadata: Box::new(credd_proto::CredentialFacts {
                region: region.map(str::to_string),
                ..Default::default()
            }),
        };
        assert_eq!(
            region(None, &credential(Some("eu-west-1"))).unwrap(),
            "eu-west-1"
        );
        assert_eq!(
            region(Some("us-east-2"), &credential(Some("eu-west-1"))).unwrap(),
            "us-east-2"
        );
        // A profile's region that would point the signed request at another host.
        for bad in ["evil.example/x#", "us-east-1.evil.example", "EU-WEST-1", ""] {
            assert!(region(None, &credential(Some(bad))).is_err(), "{bad}");
        }
        assert!(region(None, &credential(None)).is_err());
    }

    #[test]
    fn a_key_is_a_presigned_call_with_its_lifetime_and_region() {
        let credentials = CredentialSecret::Aws {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("secret"),
            session_token: Some(Secret::new("session/with+chars=")),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let key = presign(&credentials, "eu-west-1", Duration::from_secs(100_000), now).unwrap();
        let url = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(key.strip_prefix(PREFIX).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert!(
            url.starts_with("bedrock.amazonaws.com/?Action=CallWithBearerToken&"),
            "{url}"
        );
        assert!(url.ends_with("&Version=1"), "{url}");
        assert!(url.contains("X-Amz-Expires=43200"), "capped at 12 h: {url}");
        assert!(
            url.contains("ASIAEXAMPLE%2F20270115%2Feu-west-1%2Fbedrock%2Faws4_request"),
            "{url}"
        );
        assert!(
            url.contains("X-Amz-Security-Token=session%2Fwith%2Bchars%3D"),
            "{url}"
        );
        assert!(!url.contains("secret&"), "the secret key is in the URL");
    }
}
