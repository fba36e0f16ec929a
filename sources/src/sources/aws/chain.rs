//! Role chains whose root is a `credential_process`. The SDK's profile provider would run that
//! command itself, with no way to kill it (and what it started) when it hangs, so credd runs
//! it with its own process runner and assumes each role of the chain from it, as the AWS CLI
//! does: the role nearest the root first, each with the credentials of the one before.

use std::collections::HashSet;
use std::time::SystemTime;

use aws_credential_types::Credentials;

use crate::sources::SourceError;

/// One role of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleLink {
    /// The profile that names the role.
    pub profile: String,
    pub role_arn: String,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    /// The profile's `duration_seconds`; STS's default (an hour) otherwise.
    pub duration_secs: Option<i32>,
}

/// Where a profile's credentials come from when its own or its chain's root is a
/// `credential_process`: the command, the profile that names it, and the roles to assume from
/// its credentials, root first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessChain {
    pub command: String,
    pub root: String,
    pub roles: Vec<RoleLink>,
}

/// The chain from `profile` to a `credential_process`, when every link of it is a plain
/// `role_arn` + `source_profile` and its root has nothing but the command (no keys, SSO or web
/// identity, which the SDK resolves itself). `None` for any other shape, cycles included: the
/// SDK's provider reports those.
pub fn process_chain(set: &aws_config::profile::ProfileSet, profile: &str) -> Option<ProcessChain> {
    let mut roles = Vec::new();
    let mut seen = HashSet::new();
    let mut name = profile;
    loop {
        if !seen.insert(name) {
            return None;
        }
        let p = set.get_profile(name)?;
        let has = |key: &str| p.get(key).is_some_and(|v| !v.trim().is_empty());
        if [
            "aws_access_key_id",
            "sso_session",
            "sso_start_url",
            "web_identity_token_file",
        ]
        .iter()
        .any(|key| has(key))
        {
            return None;
        }
        match p.get("role_arn") {
            Some(role_arn) => {
                if has("credential_source") || has("mfa_serial") {
                    return None;
                }
                roles.push(RoleLink {
                    profile: name.to_string(),
                    role_arn: role_arn.to_string(),
                    session_name: p.get("role_session_name").map(str::to_string),
                    external_id: p.get("external_id").map(str::to_string),
                    duration_secs: p
                        .get("duration_seconds")
                        .and_then(|d| d.trim().parse().ok()),
                });
                name = p.get("source_profile")?;
            }
            None => {
                let command = p
                    .get("credential_process")
                    .filter(|c| !c.trim().is_empty())?;
                roles.reverse();
                return Some(ProcessChain {
                    command: command.to_string(),
                    root: name.to_string(),
                    roles,
                });
            }
        }
    }
}

/// The session name for a role whose profile names none.
pub fn session_name(configured: Option<&str>) -> String {
    configured.map(str::to_string).unwrap_or_else(|| {
        let secs = crate::clock::wall()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("credd-{secs}")
    })
}

/// STS AssumeRole for `role` with `base`, the credentials of the link before it.
pub async fn assume(
    role: &RoleLink,
    sdk: &aws_config::SdkConfig,
    base: Credentials,
) -> Result<Credentials, SourceError> {
    let out = super::sts_signed_by(sdk, base)
        .assume_role()
        .role_arn(&role.role_arn)
        .role_session_name(session_name(role.session_name.as_deref()))
        .set_external_id(role.external_id.clone())
        .set_duration_seconds(role.duration_secs)
        .send()
        .await
        .map_err(|e| {
            SourceError::Upstream(format!(
                "STS AssumeRole for profile `{}` failed: {}",
                role.profile,
                super::service_error(&e)
            ))
        })?;
    let c = out.credentials().ok_or_else(|| {
        SourceError::Upstream("STS AssumeRole answered without credentials".into())
    })?;
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        SystemTime::try_from(*c.expiration()).ok(),
        "credd-role-chain",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(config: &str) -> aws_config::profile::ProfileSet {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, config).unwrap();
        let env = aws_types::os_shim_internal::Env::from_slice(&[
            ("AWS_CONFIG_FILE", path.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ]);
        let fs = aws_types::os_shim_internal::Fs::real();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(super::super::load_profiles_from(&fs, &env))
            .unwrap()
    }

    #[test]
    fn chains_to_a_process_are_found_root_first() {
        let set = profiles(
            "[profile root]\ncredential_process = get-creds --json\n\n\
             [profile mid]\nrole_arn = arn:aws:iam::1:role/mid\nsource_profile = root\nexternal_id = x\n\n\
             [profile top]\nrole_arn = arn:aws:iam::1:role/top\nsource_profile = mid\nrole_session_name = me\nduration_seconds = 900\n\n\
             [profile keys]\naws_access_key_id = AKIA\naws_secret_access_key = s\ncredential_process = other\n\n\
             [profile on-keys]\nrole_arn = arn:aws:iam::1:role/k\nsource_profile = keys\n\n\
             [profile env]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Environment\n\n\
             [profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n\n\
             [profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n",
        );
        let chain = process_chain(&set, "top").unwrap();
        assert_eq!(chain.command, "get-creds --json");
        assert_eq!(chain.root, "root");
        let arns: Vec<&str> = chain.roles.iter().map(|r| r.role_arn.as_str()).collect();
        assert_eq!(arns, ["arn:aws:iam::1:role/mid", "arn:aws:iam::1:role/top"]);
        assert_eq!(chain.roles[0].external_id.as_deref(), Some("x"));
        assert_eq!(chain.roles[1].session_name.as_deref(), Some("me"));
        assert_eq!(chain.roles[1].duration_secs, Some(900));
        assert!(process_chain(&set, "root").unwrap().roles.is_empty());
        // Shapes the SDK resolves itself.
        for other in ["keys", "on-keys", "env", "a", "missing"] {
            assert_eq!(process_chain(&set, other), None, "{other}");
        }
    }
}
