//! The `exec` source: runs a command (argv, no shell) and reads a credential from its stdout.
//!
//! Accepted output, in order of precedence:
//! - AWS `credential_process` JSON (`"Version": 1`), which yields an AWS credential;
//! - JSON `{"token": "...", "expires_at": "RFC 3339"}` (`expires_at` optional);
//! - a bare token: one line, no spaces; it lives for the configured `ttl`.
//!
//! Nothing the command prints on stdout ever reaches an error message: that is where its secret
//! is. Its stderr is summarised through [`crate::redact`].

use std::time::{Duration, SystemTime};

use credd_proto::{CredentialSecret, Secret};
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::{Fetched, Source, SourceError};
use crate::process::{self, RunError};
use crate::redact;

/// What an `exec` source's table in the config holds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// The program and its arguments; run directly, never through a shell.
    pub command: Vec<String>,
    /// Lifetime of a credential whose output states no expiry.
    #[serde(
        default = "crate::sources::spec::default_ttl",
        deserialize_with = "crate::sources::spec::duration"
    )]
    pub ttl: Duration,
    /// How long the command may run before it is killed.
    #[serde(
        default = "crate::sources::spec::default_timeout",
        deserialize_with = "crate::sources::spec::duration"
    )]
    pub timeout: Duration,
    /// Serve this source through the authenticating proxy too, to a gateway or the
    /// first-party API (see `endpoints::proxy`).
    #[serde(default)]
    pub proxy: Option<crate::sources::spec::ProxySpec>,
}

impl ExecSpec {
    /// What is wrong with the table, for the config error.
    pub fn check(&self) -> Result<(), String> {
        if self.command.first().is_none_or(|p| p.is_empty()) {
            return Err("`command` must name a program".into());
        }
        if self.ttl.is_zero() || self.timeout.is_zero() {
            return Err("`ttl` and `timeout` must be longer than zero".into());
        }
        Ok(())
    }
}

pub struct ExecSource {
    spec: ExecSpec,
}

impl ExecSource {
    pub fn new(spec: ExecSpec) -> Self {
        ExecSource { spec }
    }

    fn program(&self) -> &str {
        &self.spec.command[0]
    }

    async fn run(&self, now: SystemTime) -> Result<Fetched, SourceError> {
        run_command(
            &self.spec.command,
            self.program(),
            self.spec.timeout,
            self.spec.ttl,
            now,
        )
        .await
    }
}

/// Runs `argv` (named `program` in messages) under `timeout` and reads a credential from what
/// it prints (see [`parse_output`]; `ttl` when it states no expiry). A failure is summarised
/// from its stderr in one redacted line; the output itself is never quoted.
pub async fn run_command(
    argv: &[String],
    program: &str,
    timeout: Duration,
    ttl: Duration,
    now: SystemTime,
) -> Result<Fetched, SourceError> {
    let finished = process::run(argv, &[], timeout)
        .await
        .map_err(|e| match e {
            RunError::TimedOut { .. } => SourceError::Upstream(format!(
                "{e} (raise `timeout` in the config if it needs longer)"
            )),
            // No such program, or not one that can run: only the config can change that.
            RunError::Spawn { ref source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                SourceError::Misconfigured(e.to_string())
            }
            e => SourceError::Upstream(e.to_string()),
        })?;
    let (status, out, err) = (finished.status, finished.stdout, finished.stderr);
    let parsed = parse_output(&out, now, ttl);
    let known: Vec<&str> = match &parsed {
        Ok(f) => f.secret.secret_values(),
        Err(_) => Vec::new(),
    };
    if !status.success() {
        let summary = redact::summarize(&err, &known);
        let detail = if summary.is_empty() {
            String::new()
        } else {
            format!(": {summary}")
        };
        return Err(SourceError::Upstream(format!(
            "`{program}` failed ({status}){detail}"
        )));
    }
    parsed.map_err(|why| SourceError::Upstream(format!("`{program}` {why}")))
}

impl Source for ExecSource {
    fn kind(&self) -> &'static str {
        "exec"
    }

    fn fetch(&self, now: SystemTime) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.run(now))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialProcessOutput {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expiration: Option<String>,
}

#[derive(Deserialize)]
struct TokenOutput {
    token: String,
    expires_at: Option<String>,
}

/// Reads a credential from a command's stdout. The error says what was wrong with the output
/// without quoting it.
pub fn parse_output(out: &[u8], now: SystemTime, ttl: Duration) -> Result<Fetched, String> {
    let text = std::str::from_utf8(out).map_err(|_| "printed output that is not UTF-8")?;
    let text = text.trim();
    if text.is_empty() {
        return Err("printed nothing on stdout".into());
    }
    if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "printed JSON that does not parse (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if value.get("Version").is_some() {
            return parse_credential_process(value, now, ttl);
        }
        if value.get("token").is_some() {
            let t: TokenOutput = serde_json::from_value(value)
                .map_err(|_| "printed a `token` object of the wrong shape (want {\"token\": string, \"expires_at\": RFC 3339 string})")?;
            if t.token.trim().is_empty() {
                return Err("printed an empty `token`".into());
            }
            let expires_at = expiry(t.expires_at.as_deref(), now, ttl)?;
            return Ok(token(t.token, expires_at));
        }
        return Err(
            "printed JSON with neither `token` nor `Version` (AWS credential_process)".into(),
        );
    }
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    if lines.next().is_some() {
        return Err(format!(
            "printed {} lines; want one token, {{\"token\": ...}} JSON, or AWS credential_process JSON",
            text.lines().count()
        ));
    }
    if first.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("printed a line with spaces or control characters; want a bare token".into());
    }
    Ok(token(first.to_string(), now + ttl))
}

fn parse_credential_process(
    value: serde_json::Value,
    now: SystemTime,
    ttl: Duration,
) -> Result<Fetched, String> {
    let c: CredentialProcessOutput = serde_json::from_value(value).map_err(|_| {
        "printed credential_process JSON of the wrong shape (want Version, AccessKeyId, SecretAccessKey, SessionToken, Expiration)"
    })?;
    if c.version != 1 {
        return Err(format!(
            "printed credential_process JSON of Version {}; only Version 1 exists",
            c.version
        ));
    }
    if c.access_key_id.trim().is_empty() || c.secret_access_key.trim().is_empty() {
        return Err(
            "printed credential_process JSON with an empty AccessKeyId or SecretAccessKey".into(),
        );
    }
    if c.session_token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        return Err("printed credential_process JSON with an empty SessionToken".into());
    }
    let expires_at = expiry(c.expiration.as_deref(), now, ttl)?;
    Ok(Fetched {
        secret: CredentialSecret::Aws {
            access_key_id: c.access_key_id,
            secret_access_key: Secret::new(c.secret_access_key),
            session_token: c.session_token.map(Secret::new),
        },
        expires_at,
        metadata: Default::default(),
        clock_offset_secs: None,
    })
}

/// When the credential expires: `now + ttl` when the output states no expiry, else the stated
/// time held to the cap on what any upstream may state ([`crate::policy::expires_at`]), so a
/// command printing year 9999 is asked again within a day like any token endpoint.
fn expiry(stated: Option<&str>, now: SystemTime, ttl: Duration) -> Result<SystemTime, String> {
    match stated {
        None => Ok(now + ttl),
        // RFC 3339 with any offset (`Z`, `+02:00`, fractional seconds); a time without an
        // offset is taken as UTC, as the AWS CLI takes it.
        Some(s) => {
            time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
                .map(SystemTime::from)
                .or_else(|_| humantime::parse_rfc3339_weak(s.trim()))
                .map(|at| crate::policy::expires_at(now, at, "an exec command's output"))
                .map_err(|_| "printed an expiry that is not an RFC 3339 time".to_string())
        }
    }
}

fn token(value: String, expires_at: SystemTime) -> Fetched {
    Fetched {
        secret: CredentialSecret::Token {
            token: Secret::new(value),
        },
        expires_at,
        metadata: Default::default(),
        clock_offset_secs: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn expiries_keep_their_offset() {
        // Within the day an expiry may lie ahead.
        let now = humantime::parse_rfc3339("2026-01-01T12:00:00Z").unwrap();
        let at = |s: &str| {
            let out = format!(r#"{{"token":"t","expires_at":"{s}"}}"#);
            parse_output(out.as_bytes(), now, HOUR).map(|f| f.expires_at)
        };
        let utc = humantime::parse_rfc3339("2026-01-01T16:36:00Z").unwrap();
        assert_eq!(at("2026-01-01T16:36:00Z"), Ok(utc));
        assert_eq!(at("2026-01-01T18:36:00+02:00"), Ok(utc));
        assert_eq!(at("2026-01-01T11:36:00-05:00"), Ok(utc));
        assert_eq!(
            at("2026-01-01T18:36:00.5+02:00"),
            Ok(utc + Duration::from_millis(500))
        );
        assert_eq!(at("2026-01-01T16:36:00"), Ok(utc), "no offset: UTC");
        assert!(at("tomorrow").is_err());
    }

    #[test]
    fn empty_secrets_are_refused() {
        for out in [
            &br#"{"token":""}"#[..],
            br#"{"token":"  "}"#,
            br#"{"Version":1,"AccessKeyId":"","SecretAccessKey":"s"}"#,
            br#"{"Version":1,"AccessKeyId":"a","SecretAccessKey":""}"#,
            br#"{"Version":1,"AccessKeyId":"a","SecretAccessKey":"s","SessionToken":""}"#,
        ] {
            let e = parse_output(out, NOW, HOUR).err();
            assert!(
                e.as_deref().is_some_and(|e| e.contains("empty")),
                "{}: {e:?}",
                String::from_utf8_lossy(out)
            );
        }
    }

    #[test]
    fn bare_token_lives_for_the_ttl() {
        let f = parse_output(b"sk-abc123\n", NOW, HOUR).unwrap();
        assert_eq!(f.expires_at, NOW + HOUR);
        assert_eq!(f.secret.secret_values(), vec!["sk-abc123"]);
    }

    #[test]
    fn token_json_carries_its_expiry() {
        let f = parse_output(
            br#"{"token":"abc","expires_at":"1970-01-01T02:00:00Z"}"#,
            NOW,
            HOUR,
        )
        .unwrap();
        assert_eq!(f.expires_at, NOW + 2 * HOUR);
    }

    #[test]
    fn credential_process_json_yields_aws() {
        let f = parse_output(
            br#"{"Version":1,"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"s3cr3t","SessionToken":"tok","Expiration":"1970-01-01T01:00:00Z"}"#,
            NOW,
            HOUR,
        )
        .unwrap();
        assert!(matches!(f.secret, CredentialSecret::Aws { .. }));
        assert_eq!(f.expires_at, NOW + HOUR);
    }

    #[test]
    fn a_far_expiry_is_capped_like_a_stated_lifetime() {
        let cap = NOW + crate::policy::MAX_STATED_LIFETIME;
        let json = parse_output(
            br#"{"token":"abc","expires_at":"9999-12-31T23:59:59Z"}"#,
            NOW,
            HOUR,
        )
        .unwrap();
        assert_eq!(json.expires_at, cap);
        let aws = parse_output(
            br#"{"Version":1,"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"s3cr3t","Expiration":"9999-12-31T23:59:59Z"}"#,
            NOW,
            HOUR,
        )
        .unwrap();
        assert_eq!(aws.expires_at, cap);
    }

    #[tokio::test]
    async fn a_short_password_in_a_failure_does_not_reach_the_error() {
        let argv = [
            "sh",
            "-c",
            "echo 'login failed for bob: password=hunter2' >&2; exit 3",
        ]
        .map(String::from);
        let err = run_command(&argv, "sh", Duration::from_secs(30), HOUR, NOW)
            .await
            .err();
        // Compared, never printed: a failure must not show the password.
        let Some(SourceError::Upstream(message)) = err else {
            panic!("the command's failure is not an upstream error");
        };
        assert!(
            message.ends_with("login failed for bob: password=[redacted]"),
            "the value after `password=` was not replaced in the error"
        );
        assert!(
            !message.contains("hunter2"),
            "the password reached the error"
        );
    }

    #[test]
    fn garbage_is_refused_without_quoting_it() {
        for out in [
            &b"line one\nline two\n"[..],
            b"two words",
            b"{\"nope\": 1}",
            b"{not json",
            b"",
            b"\xff\xfe",
            br#"{"Version":2,"AccessKeyId":"a","SecretAccessKey":"b"}"#,
            br#"{"token":"abc","expires_at":"tomorrow"}"#,
        ] {
            let err = parse_output(out, NOW, HOUR).unwrap_err();
            assert!(!err.contains("line one") && !err.contains("words"), "{err}");
        }
    }
}
