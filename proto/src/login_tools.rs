//! The login tools a client runs on the daemon's word, and the pages it opens.
//!
//! `credd login` runs the cloud's own login tool when the daemon's prompt names one (gcloud,
//! az), and opens a device login's page in the browser. The client has checked that the daemon
//! is this user's own, but what it runs is still decided here, once, by the client: only these
//! commands, only these environment settings, only `https:` pages. A prompt naming anything
//! else is shown, never run.

/// The gcloud command that writes Application Default Credentials.
pub const GCLOUD_LOGIN: [&str; 4] = ["gcloud", "auth", "application-default", "login"];
/// The Azure CLI's login, optionally followed by `--tenant TENANT`.
pub const AZ_LOGIN: [&str; 2] = ["az", "login"];
/// The AWS CLI's console login, followed by the profile's name.
pub const AWS_LOGIN: [&str; 3] = ["aws", "login", "--profile"];

/// Whether `command` with `env` (`NAME=value` lines) is one of the login tools credd knows.
pub fn known_login_tool(command: &[String], env: &[String]) -> Result<(), String> {
    let words: Vec<&str> = command.iter().map(String::as_str).collect();
    let known = if words.starts_with(&GCLOUD_LOGIN) {
        words.len() == GCLOUD_LOGIN.len()
            && env.iter().all(|line| {
                line.strip_prefix("CLOUDSDK_CONFIG=")
                    .is_some_and(|dir| dir.starts_with('/') && !dir.contains('\n'))
            })
            && env.len() <= 1
    } else if words.starts_with(&AWS_LOGIN) {
        env.is_empty() && matches!(&words[AWS_LOGIN.len()..], [profile] if is_profile_name(profile))
    } else if words.starts_with(&AZ_LOGIN) {
        env.is_empty()
            && match &words[AZ_LOGIN.len()..] {
                [] => true,
                ["--tenant", tenant] => is_tenant(tenant),
                _ => false,
            }
    } else {
        false
    };
    if known {
        Ok(())
    } else {
        Err(format!(
            "the daemon asked to run `{}`, which is not a login tool credd knows (`{}`, `{}`, `{} PROFILE`); it was not run",
            words.join(" "),
            GCLOUD_LOGIN.join(" "),
            AZ_LOGIN.join(" "),
            AWS_LOGIN.join(" ")
        ))
    }
}

/// An AWS profile name as a login command may carry it: letters, digits, `.`, `_`, `-`, `+`,
/// `@` and `/`, not starting with `-`.
fn is_profile_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+@/".contains(c))
}

/// A tenant id or domain: letters, digits, `.` and `-`, not starting with `-`.
fn is_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && !tenant.starts_with('-')
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Whether a device login's page may be opened in the browser: an `https:` URL with nothing a
/// shell or an opener could read as more than one argument.
pub fn openable_page(url: &str) -> bool {
    url.len() > "https://".len()
        && url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Opens `url` in the person's browser (`open` on macOS, `xdg-open` elsewhere), with no
/// stdio of ours. The caller has checked it with [`openable_page`].
pub fn open_page(url: &str) -> std::io::Result<std::process::Child> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn only_the_known_tools_run() {
        assert!(known_login_tool(&words("gcloud auth application-default login"), &[]).is_ok());
        let config = vec!["CLOUDSDK_CONFIG=/home/u/.config/other".to_string()];
        assert!(known_login_tool(&words("gcloud auth application-default login"), &config).is_ok());
        assert!(known_login_tool(&words("az login"), &[]).is_ok());
        assert!(known_login_tool(&words("az login --tenant contoso.onmicrosoft.com"), &[]).is_ok());
        assert!(known_login_tool(&words("aws login --profile console"), &[]).is_ok());

        for refused in [
            "sh -c id",
            "gcloud auth application-default login --flag",
            "az login --tenant -x",
            "az login --use-device-code --tenant t",
            "aws login",
            "aws login --profile --debug",
            "aws login --profile p extra",
            "aws s3 ls",
            "/tmp/gcloud auth application-default login",
            "bash",
        ] {
            assert!(known_login_tool(&words(refused), &[]).is_err(), "{refused}");
        }
        let hostile = vec!["LD_PRELOAD=/tmp/evil.so".to_string()];
        assert!(known_login_tool(&words("az login"), &hostile).is_err());
        assert!(
            known_login_tool(&words("gcloud auth application-default login"), &hostile).is_err()
        );
    }

    #[test]
    fn only_https_pages_open() {
        assert!(openable_page(
            "https://device.sso.us-east-1.amazonaws.com/?user_code=AB"
        ));
        assert!(openable_page("https://microsoft.com/devicelogin"));
        for refused in [
            "http://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://a.example/ --new-window file:///x",
            "https://",
            "--help",
        ] {
            assert!(!openable_page(refused), "{refused}");
        }
    }
}
