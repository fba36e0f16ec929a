//! An `aws` source whose role is assumed with an `oidc` source's ID token (STS
//! `AssumeRoleWithWebIdentity`), as AWS's guidance for Claude Code on Bedrock signs each person
//! in: the company's OpenID Provider says who they are, and IAM trusts it for the role. The ID
//! token is asked of the `oidc` source through the daemon's cache ([`OtherSources`]), so one
//! sign-in serves every role, and the role is renewed with no browser while the provider's
//! session lives.

use std::sync::Arc;
use std::time::SystemTime;

use aws_config::BehaviorVersion;
use credd_proto::{CredentialFacts, CredentialSecret, Secret};
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::AwsSpec;
use crate::sources::{Fetched, OtherSources, Source, SourceError};
use crate::upstream_clock::DateProbe;

/// `[sources.NAME.web_identity]`: the role, and the sign-in that assumes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebIdentitySpec {
    /// The `oidc` source whose ID token STS is given.
    pub oidc: String,
    /// The role to assume.
    pub role_arn: String,
    /// The role session's name; by default the ID token's email (else its subject), so
    /// CloudTrail names the person.
    #[serde(default)]
    pub session_name: Option<String>,
}

impl WebIdentitySpec {
    pub fn check(&self) -> Result<(), String> {
        let parts: Vec<&str> = self.role_arn.splitn(6, ':').collect();
        if parts.len() != 6
            || parts[0] != "arn"
            || parts[2] != "iam"
            || !parts[5].starts_with("role/")
        {
            return Err(format!(
                "`web_identity.role_arn` `{}` is not an IAM role's ARN (arn:aws:iam::ACCOUNT:role/NAME)",
                self.role_arn
            ));
        }
        if let Some(name) = &self.session_name
            && session_name(name) != *name
        {
            return Err(
                "`web_identity.session_name` may hold 2 to 64 of A-Z a-z 0-9 and + = , . @ -"
                    .into(),
            );
        }
        Ok(())
    }
}

/// `who` as a role session name: the characters STS accepts (`[\w+=,.@-]`), 2 to 64 of them.
pub fn session_name(who: &str) -> String {
    let mut name: String = who
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.len() < 2 {
        name = format!("credd-{name}");
    }
    name
}

pub struct WebIdentitySource {
    spec: AwsSpec,
    web: WebIdentitySpec,
    others: Arc<dyn OtherSources>,
}

impl WebIdentitySource {
    pub fn new(spec: AwsSpec, web: WebIdentitySpec, others: Arc<dyn OtherSources>) -> Self {
        WebIdentitySource { spec, web, others }
    }

    async fn assume(&self, now: SystemTime) -> Result<Fetched, SourceError> {
        let oidc = &self.web.oidc;
        let (token, id) = crate::sources::signed_in_token(&*self.others, oidc).await?;
        let who = id.subject.clone();
        let session = self
            .web
            .session_name
            .clone()
            .or_else(|| who.as_deref().map(session_name))
            .unwrap_or_else(|| "credd".into());
        let dates = DateProbe::default();
        let http = crate::net::aws_http_client(self.spec.ca_bundle.as_deref(), &dates)
            .map_err(SourceError::Upstream)?;
        // Unsigned: the ID token is the credential.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .no_credentials()
            .http_client(http);
        if let Some(region) = &self.spec.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        let out = aws_sdk_sts::Client::new(&sdk)
            .assume_role_with_web_identity()
            .role_arn(&self.web.role_arn)
            .role_session_name(&session)
            .web_identity_token(token.expose())
            .duration_seconds(self.spec.duration.as_secs() as i32)
            .send()
            .await
            .map_err(|e| {
                let message = crate::redact::redact(
                    &format!(
                        "STS AssumeRoleWithWebIdentity for {} failed: {}",
                        self.web.role_arn,
                        super::service_error(&e)
                    ),
                    &[token.expose()],
                );
                SourceError::Upstream(message)
            })?;
        let c = out.credentials().ok_or_else(|| {
            SourceError::Upstream(
                "STS AssumeRoleWithWebIdentity answered without credentials".into(),
            )
        })?;
        let expiry = SystemTime::try_from(*c.expiration())
            .map_err(|_| SourceError::Upstream("STS gave an expiry out of range".into()))?;
        let (expires_at, clock_offset_secs) = dates.to_local(expiry, now);
        Ok(Fetched {
            secret: CredentialSecret::Aws {
                access_key_id: c.access_key_id().to_string(),
                secret_access_key: Secret::new(c.secret_access_key()),
                session_token: Some(Secret::new(c.session_token())),
            },
            expires_at,
            metadata: CredentialFacts {
                region: sdk.region().map(|r| r.to_string()),
                issuer: id.issuer.clone(),
                subject: who,
                method: Some("web-identity".into()),
                ..CredentialFacts::default()
            },
            clock_offset_secs,
        })
    }
}

impl Source for WebIdentitySource {
    fn kind(&self) -> &'static str {
        "aws"
    }

    fn fetch(&self, now: SystemTime) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.assume(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_keep_to_what_sts_accepts() {
        assert_eq!(session_name("alice@example.com"), "alice@example.com");
        assert_eq!(session_name("Ålice Smith"), "-lice-Smith");
        assert_eq!(session_name("a"), "credd-a");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn a_role_arn_is_checked() {
        let spec = |arn: &str| WebIdentitySpec {
            oidc: "corp".into(),
            role_arn: arn.into(),
            session_name: None,
        };
        assert!(
            spec("arn:aws:iam::123456789012:role/ClaudeCode")
                .check()
                .is_ok()
        );
        assert!(spec("arn:aws:s3:::bucket").check().is_err());
        assert!(spec("ClaudeCode").check().is_err());
    }
}
