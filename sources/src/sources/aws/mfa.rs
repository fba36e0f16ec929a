//! Roles that require MFA (`mfa_serial` in the profile). The SDK's profile provider cannot ask a
//! person for a code, so credd does: `credd login S` gets the code (from the source's
//! `mfa_process`, else from the person, on a desktop prompt or the terminal), credd calls STS
//! AssumeRole with it, and the session credentials serve until they expire. `get` and the
//! background refresh never ask; when the credentials run out they say `credd login S`.

use std::time::Duration;

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;

use credd_proto::Secret;

use crate::process::{self, RunError};
use crate::redact;
use crate::sources::SourceError;

/// Runs `argv`, a command that prints the current MFA code (a password manager's or an
/// authenticator's CLI), and returns the code: 6 to 8 digits. Nothing it prints reaches a
/// message, only a redacted summary of its stderr.
pub async fn code_from_process(argv: &[String], timeout: Duration) -> Result<Secret, SourceError> {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let finished = process::run(argv, &[], timeout)
        .await
        .map_err(|e| match e {
            RunError::Spawn { ref source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                SourceError::Misconfigured(format!("mfa_process: {e}"))
            }
            e => SourceError::NeedsLogin(format!("mfa_process: {e}")),
        })?;
    let printed = String::from_utf8_lossy(&finished.stdout);
    let code = printed.trim();
    if !finished.status.success() {
        let summary = redact::summarize(&finished.stderr, &[code]);
        let detail = if summary.is_empty() {
            String::new()
        } else {
            format!(": {summary}")
        };
        return Err(SourceError::NeedsLogin(format!(
            "mfa_process `{program}` failed ({}){detail}",
            finished.status
        )));
    }
    if !(6..=8).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SourceError::NeedsLogin(format!(
            "mfa_process `{program}` printed something that is not an MFA code (6 to 8 digits)"
        )));
    }
    Ok(Secret::new(code))
}

/// A role assumed with an MFA code.
#[derive(Debug, Clone)]
pub struct MfaRole {
    pub profile: String,
    pub role_arn: String,
    pub source_profile: String,
    pub serial: String,
    pub session_name: Option<String>,
}

/// The MFA role `profile` names, if it names one.
pub fn mfa_role(
    set: &aws_config::profile::ProfileSet,
    profile: &str,
) -> Result<Option<MfaRole>, String> {
    let Some(p) = set.get_profile(profile) else {
        return Ok(None);
    };
    let (Some(serial), Some(role_arn)) = (p.get("mfa_serial"), p.get("role_arn")) else {
        return Ok(None);
    };
    let source_profile = p.get("source_profile").ok_or_else(|| {
        format!("profile `{profile}` has mfa_serial and role_arn but no source_profile")
    })?;
    Ok(Some(MfaRole {
        profile: profile.to_string(),
        role_arn: role_arn.to_string(),
        source_profile: source_profile.to_string(),
        serial: serial.to_string(),
        session_name: p.get("role_session_name").map(str::to_string),
    }))
}

/// STS AssumeRole with the source profile's credentials and the person's MFA code.
pub async fn assume_with_code(
    role: &MfaRole,
    sdk: &aws_config::SdkConfig,
    code: &str,
    duration: Duration,
) -> Result<aws_sdk_sts::types::Credentials, SourceError> {
    let source = ProfileFileCredentialsProvider::builder()
        .profile_name(&role.source_profile)
        .configure(&super::provider_config(sdk))
        .build()
        .provide_credentials()
        .await
        .map_err(|e| {
            SourceError::Upstream(format!(
                "source profile `{}` of `{}`: {}",
                role.source_profile,
                role.profile,
                super::service_error(&e)
            ))
        })?;
    let session_name = super::chain::session_name(role.session_name.as_deref());
    let out = super::sts_signed_by(sdk, source)
        .assume_role()
        .role_arn(&role.role_arn)
        .role_session_name(session_name)
        .serial_number(&role.serial)
        .token_code(code)
        .duration_seconds(duration.as_secs() as i32)
        .send()
        .await
        .map_err(|e| {
            SourceError::NeedsLogin(format!(
                "STS refused the MFA code for `{}`: {}",
                role.profile,
                super::service_error(&e)
            ))
        })?;
    out.credentials()
        .cloned()
        .ok_or_else(|| SourceError::Upstream("STS AssumeRole answered without credentials".into()))
}

/// An MFA session as the secret store keeps it: the credentials and their end, and the profile
/// they are for.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptSession {
    profile: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expires_at: u64,
}

/// The session `fetched` holds, as the secret store keeps it.
pub fn to_kept(fetched: &crate::sources::Fetched) -> Option<Secret> {
    let credd_proto::CredentialSecret::Aws {
        access_key_id,
        secret_access_key,
        session_token: Some(session_token),
    } = &fetched.secret
    else {
        return None;
    };
    let kept = KeptSession {
        profile: fetched.metadata.profile.clone()?,
        access_key_id: access_key_id.clone(),
        secret_access_key: secret_access_key.expose().to_string(),
        session_token: session_token.expose().to_string(),
        expires_at: fetched
            .expires_at
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs(),
    };
    Some(Secret::new(serde_json::to_string(&kept).ok()?))
}

/// A kept session for `profile` that still has the AWS floor to live; `None` otherwise.
pub fn from_kept(
    stored: &Secret,
    profile: &str,
    now: std::time::SystemTime,
) -> Option<crate::sources::Fetched> {
    let kept: KeptSession = serde_json::from_str(stored.expose()).ok()?;
    let expires_at = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(kept.expires_at);
    if kept.profile != profile || expires_at < now + crate::policy::AWS_FLOOR {
        return None;
    }
    Some(crate::sources::Fetched {
        secret: credd_proto::CredentialSecret::Aws {
            access_key_id: kept.access_key_id,
            secret_access_key: Secret::new(kept.secret_access_key),
            session_token: Some(Secret::new(kept.session_token)),
        },
        expires_at,
        metadata: credd_proto::CredentialFacts {
            profile: Some(kept.profile),
            ..Default::default()
        },
        clock_offset_secs: None,
    })
}
