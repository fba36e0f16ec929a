//! Short-term Amazon Bedrock API keys, minted from AWS credentials as AWS's own token
//! generators make them: a SigV4-presigned `POST https://bedrock.amazonaws.com/?Action=
//! CallWithBearerToken` (service `bedrock`, the region the key is for), without its scheme,
//! with `&Version=1`, base64-encoded behind `bedrock-api-key-`. Bedrock takes it as
//! `Authorization: Bearer` (`AWS_BEARER_TOKEN_BEDROCK`). It lives as long as it was signed
//! for, and never longer than the credentials that signed it.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use credd_proto::CredentialSecret;

/// The longest lifetime Bedrock accepts for a short-term key.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);

const HOST: &str = "bedrock.amazonaws.com";
const PREFIX: &str = "bedrock-api-key-";

/// What the AWS signer signs with: `credentials`, when they are AWS credentials.
pub fn signing_identity(
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

/// A key for `region` signed with `credentials` at `now`, valid for `lifetime` (at most
/// [`MAX_LIFETIME`]).
pub fn mint(
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

#[cfg(test)]
mod tests {
    use super::*;
    use credd_proto::Secret;

    #[test]
    fn a_key_is_a_presigned_call_with_its_lifetime_and_region() {
        let credentials = CredentialSecret::Aws {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("secret"),
            session_token: Some(Secret::new("session/with+chars=")),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let key = mint(&credentials, "eu-west-1", Duration::from_secs(100_000), now).unwrap();
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
