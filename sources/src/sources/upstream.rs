//! The one layer between credd's own OAuth-style calls (Google's token, STS and IAM endpoints,
//! Entra's token and device-code endpoints) and the rest of the daemon: sending a request with
//! the hardened client ([`crate::net`]: no redirects, bounded answers), reading what an
//! upstream said when it refused, and deciding what kind of failure that is. One place, so an
//! OAuth error means the same thing whichever source met it, and the device-code polling rules
//! ("slow_down adds five seconds") are written once.

use std::future::Future;
use std::time::{Duration, SystemTime};

use credd_proto::Secret;

use crate::clock::Clock;
use crate::redact;
use crate::sources::{SourceError, Token};

/// The longest wait between two polls of a device code, whatever the upstream asks.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// How long to wait when an upstream throttles without saying for how long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// OAuth error codes that only a new sign-in can cure: the grant (refresh token, device code,
/// session) is no longer good. Google adds `invalid_rapt` (reauthentication required).
const NEEDS_LOGIN: [&str; 5] = [
    "invalid_grant",
    "invalid_rapt",
    "expired_token",
    "access_denied",
    "interaction_required",
];

/// An upstream's answer, read whole (and bounded).
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<Duration>,
    /// The `Date` header, for clock corrections.
    pub date: Option<String>,
}

/// Sends `request` to `host` (its origin, for messages) and reads the answer, whatever its
/// status. Only a request that got no answer is an error here.
pub async fn send(request: reqwest::RequestBuilder, host: &str) -> Result<Reply, SourceError> {
    let response = request.send().await.map_err(|e| {
        if let Some(refused) = crate::loopback_owner::refusal_in(&e) {
            return SourceError::Upstream(refused.to_string());
        }
        let why = if e.is_timeout() {
            "did not answer in time".to_string()
        } else if e.is_connect() {
            "cannot be reached".to_string()
        } else {
            format!("failed: {}", e.without_url())
        };
        SourceError::Upstream(format!("{host} {why}"))
    })?;
    let header = |name: reqwest::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = response.status().as_u16();
    let retry_after =
        header(reqwest::header::RETRY_AFTER).and_then(|v| retry_after(&v, crate::clock::wall()));
    let date = header(reqwest::header::DATE);
    let body = crate::net::read_text(response)
        .await
        .map_err(|e| SourceError::Upstream(format!("{host} {e}")))?;
    Ok(Reply {
        status,
        body,
        retry_after,
        date,
    })
}

/// A `Retry-After` value (RFC 9110): a number of seconds, or an HTTP date.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What a grant yields: the access token, the refresh token to keep when one came, and the ID
/// token when the scope asked for `openid`.
pub struct Grant {
    pub access: Token,
    pub refresh: Option<Secret>,
    pub id_token: Option<Secret>,
}

/// An OAuth 2.0 token response (RFC 6749 section 5.1), as Google's and Entra's token endpoints
/// answer.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    /// OpenID Connect's, when the scope asked for `openid`.
    #[serde(default)]
    id_token: Option<String>,
}

/// Reads a successful token response from `host`: the access token (never empty), counted to
/// run out `expires_in` after `now` (`assumed` when the answer states no lifetime; long ones
/// capped by [`crate::policy::expires_after`]), and the refresh token when one came with it.
pub fn read_token(
    body: &str,
    host: &str,
    assumed: Duration,
    now: SystemTime,
) -> Result<(Token, Option<Secret>), SourceError> {
    read_grant(body, host, assumed, now).map(|grant| (grant.access, grant.refresh))
}

/// [`read_token`], with the ID token an OpenID Provider adds when one came.
pub fn read_grant(
    body: &str,
    host: &str,
    assumed: Duration,
    now: SystemTime,
) -> Result<Grant, SourceError> {
    let answer: TokenAnswer = serde_json::from_str(body).map_err(|_| {
        SourceError::Upstream(format!(
            "{host} answered with something that is not a token response"
        ))
    })?;
    if answer.access_token.is_empty() {
        return Err(SourceError::Upstream(format!(
            "{host} answered with an empty access token"
        )));
    }
    let lifetime = answer.expires_in.unwrap_or(assumed.as_secs());
    let token = Token {
        secret: Secret::new(answer.access_token),
        // A lifetime, which no clock difference affects.
        expires_at: crate::policy::expires_after(now, lifetime, host),
        clock_offset_secs: None,
    };
    let present = |t: Option<String>| t.filter(|t| !t.is_empty()).map(Secret::new);
    Ok(Grant {
        access: token,
        refresh: present(answer.refresh_token),
        id_token: present(answer.id_token),
    })
}

/// What an upstream said when it refused: an OAuth error (`error`, `error_description`), or a
/// Google API error (`error.status`, `error.message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub description: Option<String>,
}

/// Reads the refusal in `body`, if it is one. Codes are cut at 60 characters and descriptions
/// at their first line (Entra's run on with trace and correlation ids).
pub fn parse_refusal(body: &str) -> Option<Refusal> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    // The first line whole: it is cut only after it is scrubbed (see `classify`), so that a
    // secret the cut would split is still recognised.
    let short = |v: &serde_json::Value| {
        v.as_str()
            .map(|s| s.lines().next().unwrap_or_default().trim().to_string())
            .filter(|s| !s.is_empty())
    };
    match value.get("error")? {
        serde_json::Value::String(code) => Some(Refusal {
            code: code.chars().take(60).collect(),
            description: value.get("error_description").and_then(short),
        }),
        serde_json::Value::Object(api) => Some(Refusal {
            code: api
                .get("status")
                .and_then(short)
                .unwrap_or_else(|| "error".into()),
            description: api.get("message").and_then(short),
        }),
        _ => None,
    }
}

/// What a refused call means.
#[derive(Debug)]
pub enum Verdict {
    /// A device code not yet approved: ask again after the interval.
    Pending,
    /// The same, and ask less often.
    SlowDown,
    Failed(SourceError),
}

/// Decides what a non-success answer from `host` means: device-code states, a grant that only
/// a login can renew, throttling (with the upstream's wait, or 30 s), or an upstream failure
/// that names the status and what the upstream said, scrubbed of `secrets`.
pub fn classify(
    host: &str,
    status: u16,
    refusal: Option<&Refusal>,
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Verdict {
    let code = refusal.map(|r| r.code.as_str()).unwrap_or_default();
    let said = refusal
        .map(|r| match &r.description {
            Some(d) => format!("{}: {d}", r.code),
            None => r.code.clone(),
        })
        .map(|said| redact::one_line(&redact::redact(&said, secrets)))
        .map(|said| format!(" ({said})"))
        .unwrap_or_default();
    match code {
        "authorization_pending" => Verdict::Pending,
        "slow_down" => Verdict::SlowDown,
        _ if NEEDS_LOGIN.contains(&code) => Verdict::Failed(SourceError::NeedsLogin(format!(
            "{host} refused the credentials{said}"
        ))),
        _ if status == 429 => Verdict::Failed(SourceError::Throttled(
            format!("{host} is throttling requests (HTTP 429){said}"),
            retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
        )),
        _ => Verdict::Failed(SourceError::Upstream(format!(
            "{host} answered HTTP {status}{said}"
        ))),
    }
}

impl Reply {
    /// The verdict on this answer, when it is not a success.
    pub fn verdict(&self, host: &str, secrets: &[&str]) -> Verdict {
        classify(
            host,
            self.status,
            parse_refusal(&self.body).as_ref(),
            self.retry_after,
            secrets,
        )
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Polls a device-code grant: waits `interval` (five seconds more after each `slow_down`),
/// asks with `poll`, and stops at the first answer that is not pending, or when `deadline`
/// passes (then `expired` is the error).
pub async fn poll_device_code<T, F, Fut>(
    clock: &Clock,
    mut interval: Duration,
    deadline: SystemTime,
    expired: impl Fn() -> SourceError,
    mut poll: F,
) -> Result<T, SourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Verdict>>,
{
    // An upstream's interval is a hint: at least a second, at most half a minute.
    interval = interval.clamp(Duration::from_secs(1), MAX_POLL_INTERVAL);
    loop {
        if clock
            .now()
            .checked_add(interval)
            .is_none_or(|next| next > deadline)
        {
            return Err(expired());
        }
        tokio::time::sleep(interval).await;
        match poll().await {
            Ok(done) => return Ok(done),
            Err(Verdict::Pending) => {}
            Err(Verdict::SlowDown) => {
                interval = (interval + Duration::from_secs(5)).min(MAX_POLL_INTERVAL);
            }
            Err(Verdict::Failed(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_read_once_for_every_source() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        let (token, refresh) = read_token(
            r#"{"access_token":"at","expires_in":600,"refresh_token":"rt","token_type":"Bearer"}"#,
            "https://t.example",
            hour,
            now,
        )
        .unwrap();
        assert_eq!(token.secret.expose(), "at");
        assert_eq!(token.expires_at, now + Duration::from_secs(600));
        assert_eq!(refresh.unwrap().expose(), "rt");
        // No stated lifetime: the assumed one; no refresh token, or an empty one: none.
        let (token, refresh) = read_token(
            r#"{"access_token":"at","refresh_token":""}"#,
            "h",
            hour,
            now,
        )
        .unwrap();
        assert_eq!(token.expires_at, now + hour);
        assert!(refresh.is_none());
        // A lifetime past any clock is capped, never an overflow.
        let (token, _) = read_token(
            r#"{"access_token":"at","expires_in":18446744073709551615}"#,
            "h",
            hour,
            now,
        )
        .unwrap();
        assert!(token.expires_at <= now + Duration::from_secs(24 * 3600));
        for bad in [r#"{"access_token":""}"#, r#"{"token":"x"}"#, "<html>"] {
            let error = read_token(bad, "https://t.example", hour, now).unwrap_err();
            assert!(matches!(error, SourceError::Upstream(_)), "{error:?}");
            assert!(
                error.to_string().starts_with("https://t.example "),
                "{error}"
            );
        }
    }

    fn verdict(status: u16, body: &str, retry_after: Option<u64>) -> Verdict {
        classify(
            "https://login.example",
            status,
            parse_refusal(body).as_ref(),
            retry_after.map(Duration::from_secs),
            &["s3cr3t-client-secret-value"],
        )
    }

    fn failed(v: Verdict) -> SourceError {
        match v {
            Verdict::Failed(e) => e,
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn oauth_and_api_errors_are_read() {
        assert_eq!(
            parse_refusal(r#"{"error":"invalid_grant","error_description":"Bad Request"}"#),
            Some(Refusal {
                code: "invalid_grant".into(),
                description: Some("Bad Request".into())
            })
        );
        assert_eq!(
            parse_refusal(
                r#"{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}"#
            ),
            Some(Refusal {
                code: "PERMISSION_DENIED".into(),
                description: Some("denied".into())
            })
        );
        assert_eq!(
            parse_refusal(r#"{"error":"x","error_description":""}"#)
                .unwrap()
                .description,
            None
        );
        assert_eq!(parse_refusal("<html>oops</html>"), None);
        assert_eq!(parse_refusal(r#"{"access_token":"t"}"#), None);
    }

    #[test]
    fn device_code_states_are_not_failures() {
        let pending =
            r#"{"error":"authorization_pending","error_description":"AADSTS70016: pending"}"#;
        assert!(matches!(verdict(400, pending, None), Verdict::Pending));
        assert!(matches!(
            verdict(400, r#"{"error":"slow_down"}"#, None),
            Verdict::SlowDown
        ));
    }

    #[test]
    fn dead_grants_need_a_login() {
        for code in NEEDS_LOGIN {
            let body = format!(r#"{{"error":"{code}","error_description":"gone"}}"#);
            let e = failed(verdict(400, &body, None));
            assert!(matches!(e, SourceError::NeedsLogin(_)), "{code}: {e:?}");
            assert!(e.to_string().contains(code), "{e}");
        }
        // Google's reauthentication demand.
        let rapt = r#"{"error":"invalid_grant","error_description":"reauth related error (invalid_rapt)","error_subtype":"invalid_rapt"}"#;
        assert!(matches!(
            failed(verdict(400, rapt, None)),
            SourceError::NeedsLogin(_)
        ));
    }

    #[test]
    fn throttling_keeps_the_upstreams_wait() {
        let e = failed(verdict(
            429,
            r#"{"error":"rate_limit_exceeded"}"#,
            Some(120),
        ));
        assert!(
            matches!(e, SourceError::Throttled(_, wait) if wait == Duration::from_secs(120)),
            "{e:?}"
        );
        let e = failed(verdict(429, "", None));
        assert!(matches!(e, SourceError::Throttled(_, wait) if wait == DEFAULT_RETRY_AFTER));
    }

    #[tokio::test]
    async fn an_absurd_poll_interval_is_clamped_not_overflowed() {
        let clock = Clock::system();
        let deadline = clock.now() + Duration::from_secs(5);
        let polled = poll_device_code(
            &clock,
            Duration::from_secs(u64::MAX),
            deadline,
            || SourceError::NeedsLogin("expired".into()),
            || async { Err::<(), _>(Verdict::Pending) },
        )
        .await;
        // Clamped to half a minute, the first poll would come after the deadline.
        assert!(
            matches!(polled, Err(SourceError::NeedsLogin(_))),
            "{polled:?}"
        );
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(retry_after(" 30 ", now), Some(Duration::from_secs(30)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn other_refusals_name_the_status_and_the_first_line_scrubbed() {
        let aadsts = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: s3cr3t-client-secret-value.\r\nTrace ID: 0000\r\nCorrelation ID: 1111"}"#;
        let e = failed(verdict(401, aadsts, None)).to_string();
        assert!(e.contains("HTTP 401"), "{e}");
        assert!(e.contains("AADSTS7000215"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(!e.contains("Trace ID"), "{e}");
        let google = r#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied","status":"PERMISSION_DENIED"}}"#;
        let e = failed(verdict(403, google, None)).to_string();
        assert!(e.contains("PERMISSION_DENIED: Permission"), "{e}");
        let e = failed(verdict(500, "<html>oops</html>", None)).to_string();
        assert_eq!(e, "https://login.example answered HTTP 500");
    }
}
