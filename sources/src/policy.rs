//! The refresh policy, in one place: when a cached credential may be handed out, when the
//! background refresh runs, how long to back off after a failure, and when a caller's re-ask
//! means its credential was rejected.
//!
//! Everything here is a pure function of times and durations, so the whole policy is unit-tested
//! without a clock, a socket or an upstream.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use credd_proto::CredentialSecret;

/// How long a credential must still be valid when handed out, unless the caller asks otherwise.
/// Claude Code caches an `apiKeyHelper` answer for 5 minutes and then sends it once more while
/// it re-runs the helper, so 10 minutes keeps every request it makes valid.
pub const DEFAULT_MIN_VALID: Duration = Duration::from_secs(10 * 60);

/// AWS credentials are never handed out with less than this left: Claude Code caches
/// `awsCredentialExport` output for an hour when `Expiration` is under 6 minutes away.
pub const AWS_FLOOR: Duration = Duration::from_secs(15 * 60);

/// When the upstream fails, a cached token is still served while it has this much left.
pub const TOKEN_FLOOR: Duration = Duration::from_secs(60);

/// The most jitter added to a background refresh: spreads refreshes of many sources (and many
/// machines behind one gateway) without moving them far from their deadline.
pub const MAX_JITTER: Duration = Duration::from_secs(60);

pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);
/// The longest `Retry-After` an upstream can make us wait (a bogus huge value must not park a
/// source for a day).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// A caller that asks again within this fraction of its own cache TTL is re-asking because its
/// credential was rejected.
pub const REASK_FRACTION: f64 = 0.5;

/// At most one refresh forced by re-asks per source in this interval, so a caller looping on
/// rejections cannot hammer the upstream.
pub const FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// What the policy needs to know about a cached credential.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub issued_at: SystemTime,
    pub expires_at: SystemTime,
    pub is_aws: bool,
}

impl Validity {
    pub fn of(secret: &CredentialSecret, issued_at: SystemTime, expires_at: SystemTime) -> Self {
        Validity {
            issued_at,
            expires_at,
            is_aws: matches!(secret, CredentialSecret::Aws { .. }),
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.expires_at
            .duration_since(self.issued_at)
            .unwrap_or(Duration::ZERO)
    }

    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    fn floor(&self) -> Duration {
        if self.is_aws { AWS_FLOOR } else { TOKEN_FLOOR }
    }

    /// How much validity must be left for a caller asking for `min_valid`. A credential whose
    /// whole lifetime is shorter than that is served for its first half: asking the upstream
    /// again would not produce a longer-lived one.
    pub fn required_remaining(&self, min_valid: Duration) -> Duration {
        let wanted = if self.is_aws {
            min_valid.max(AWS_FLOOR)
        } else {
            min_valid
        };
        wanted.min(self.lifetime() / 2)
    }

    /// May this credential be handed to a caller asking for `min_valid`?
    pub fn satisfies(&self, now: SystemTime, min_valid: Duration) -> bool {
        self.remaining(now) >= self.required_remaining(min_valid)
            && self.remaining(now) > Duration::ZERO
    }

    /// While the upstream fails: may this credential still be served?
    pub fn usable_while_failing(&self, now: SystemTime) -> bool {
        self.remaining(now) >= self.floor().min(self.lifetime() / 2)
            && self.remaining(now) > Duration::ZERO
    }

    /// When the background refresh should run so that no caller asking for up to `min_valid`
    /// ever has to wait for the upstream.
    pub fn refresh_at(&self, min_valid: Duration, jitter: Duration) -> SystemTime {
        let margin = self.required_remaining(min_valid);
        let jitter = jitter.min(self.lifetime().saturating_sub(margin) / 4);
        self.expires_at
            .checked_sub(margin + jitter)
            .unwrap_or(self.issued_at)
    }
}

/// An SSO session's access token is renewed when less than this is left, well before the SDK
/// would need it.
pub const SSO_REFRESH_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The longest any fetch may take, whatever its source: each bounds its own calls, and this
/// bounds what a source cannot (a tool it runs through an SDK, say), so no slot waits forever.
pub const FETCH_BOUND: Duration = Duration::from_secs(10 * 60);

/// How long a source whose settings are wrong waits before it tries again by itself: a config
/// edit, `credd refresh` or `credd login` try at once.
pub const MISCONFIGURED_RETRY: Duration = Duration::from_secs(15 * 60);

/// The longest lifetime an upstream may state for a token: beyond it the token is treated as
/// living this long (and refreshed accordingly), so an absurd `expires_in` can neither overflow
/// the clock arithmetic nor keep a token past its real end.
pub const MAX_STATED_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The furthest expiry credd keeps for any credential, whatever set it (an upstream's word is
/// held to [`MAX_STATED_LIFETIME`] by [`expires_at`]; a lifetime from the config, or an SSO
/// client registration, is not): a century, so every expiry can be formatted and moved by a
/// clock correction without overflow.
pub const MAX_EXPIRY_AHEAD: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// When a token that an upstream says lives `stated_secs` from `now` expires: the stated
/// lifetime, capped at [`MAX_STATED_LIFETIME`] (and logged when capped).
pub fn expires_after(now: SystemTime, stated_secs: u64, what: &str) -> SystemTime {
    let stated = Duration::from_secs(stated_secs);
    if stated > MAX_STATED_LIFETIME {
        tracing::warn!(
            stated_secs,
            "{what} stated a lifetime over 24 h; it is treated as 24 h"
        );
    }
    now + stated.min(MAX_STATED_LIFETIME)
}

/// When a credential that an upstream says expires at `stated` (an absolute time: `expires_at`,
/// `Expiration`, `expireTime`, `expires_on`) expires: as stated, but no later than
/// [`MAX_STATED_LIFETIME`] from `now` (logged when capped). An absolute expiry is a lifetime
/// said another way, so it gets the same cap as [`expires_after`]: `expires_at` in 9999 must
/// not keep a credential for a century when `expires_in` could not keep it past a day.
pub fn expires_at(now: SystemTime, stated: SystemTime, what: &str) -> SystemTime {
    match stated.duration_since(now) {
        Ok(ahead) if ahead > MAX_STATED_LIFETIME => expires_after(now, ahead.as_secs(), what),
        _ => stated,
    }
}

/// When a token that an upstream says expires at Unix time `exp_secs` expires, as a time: a
/// value past what a clock can hold is treated as [`MAX_STATED_LIFETIME`] from `now`.
pub fn expires_at_unix(now: SystemTime, exp_secs: u64, what: &str) -> SystemTime {
    match UNIX_EPOCH.checked_add(Duration::from_secs(exp_secs)) {
        Some(at) if at <= now + MAX_EXPIRY_AHEAD => at,
        _ => expires_after(now, u64::MAX, what),
    }
}

/// `expires_at` held within [`MAX_EXPIRY_AHEAD`] of `now`.
pub fn bounded_expiry(now: SystemTime, expires_at: SystemTime) -> SystemTime {
    expires_at.min(now + MAX_EXPIRY_AHEAD)
}

/// Whether a credential that expires at `expires_at` is dead on arrival at `now`: an upstream
/// that hands one out has failed.
pub fn expired_on_arrival(expires_at: SystemTime, now: SystemTime) -> bool {
    expires_at <= now
}

/// A random jitter for the next background refresh.
pub fn jitter() -> Duration {
    Duration::from_millis(fastrand::u64(0..=MAX_JITTER.as_millis() as u64))
}

/// The wait before retry number `failures` (1 for the first retry): exponential, capped, and
/// randomised in its upper half so many clients do not retry in lockstep.
pub fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(BACKOFF_MAX);
    let half = capped / 2;
    half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
}

/// How long to wait before the next try after `failures` failures in a row, when the upstream
/// asked for `retry_after` (HTTP 429): the longer of the two, the upstream's word capped at
/// [`MAX_RETRY_AFTER`].
pub fn retry_wait(failures: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = backoff(failures);
    retry_after.map_or(backoff, |asked| backoff.max(asked.min(MAX_RETRY_AFTER)))
}

/// Why the last fetch failed, as far as the wait before the next one goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The upstream asked to be left alone this long (HTTP 429 with `Retry-After`).
    Throttled(Duration),
    /// The source's settings are wrong: nothing changes by retrying, and a config edit
    /// rebuilds the slot at once.
    Misconfigured,
    /// Anything else: the upstream may answer next time.
    Transient,
}

/// How long to wait before the next try after `failures` failures in a row, the last of
/// them `failure`.
pub fn wait_after(failure: Failure, failures: u32) -> Duration {
    match failure {
        Failure::Throttled(asked) => retry_wait(failures, Some(asked)),
        Failure::Misconfigured => MISCONFIGURED_RETRY,
        Failure::Transient => retry_wait(failures, None),
    }
}

/// Whether a source that failed, to be retried at `retry_at`, is still backing off at `now`:
/// then no caller, and no refusal upstream, calls the upstream again before that.
pub fn backing_off(retry_at: Option<SystemTime>, now: SystemTime) -> bool {
    retry_at.is_some_and(|t| t > now)
}

/// Whether a refresh may be forced now (a caller's re-ask, an upstream's refusal of the
/// credential), the last one forced at `last_forced`: at most one per
/// [`FORCED_REFRESH_INTERVAL`].
pub fn may_force_refresh(last_forced: Option<SystemTime>, now: SystemTime) -> bool {
    last_forced
        .is_none_or(|t| now.duration_since(t).unwrap_or(Duration::ZERO) >= FORCED_REFRESH_INTERVAL)
}

/// Whether a caller asking again `since_last` after it was handed the current credential is
/// re-asking because that credential was rejected.
pub fn is_reask_after_rejection(since_last: Duration, caller_cache_ttl: Duration) -> bool {
    since_last < caller_cache_ttl.mul_f64(REASK_FRACTION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_refreshes_and_retries_wait_their_turn() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(may_force_refresh(None, now));
        assert!(!may_force_refresh(Some(now - Duration::from_secs(29)), now));
        assert!(may_force_refresh(Some(now - FORCED_REFRESH_INTERVAL), now));
        assert!(backing_off(Some(now + Duration::from_secs(1)), now));
        assert!(!backing_off(Some(now), now));
        assert!(!backing_off(None, now));
        assert_eq!(wait_after(Failure::Misconfigured, 1), MISCONFIGURED_RETRY);
        assert!(
            wait_after(Failure::Throttled(Duration::from_secs(90)), 1) >= Duration::from_secs(90)
        );
        assert!(wait_after(Failure::Transient, 1) <= BACKOFF_BASE);
    }

    #[test]
    fn absurd_upstream_lifetimes_are_capped_not_overflowed() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            expires_after(now, 3599, "t"),
            now + Duration::from_secs(3599)
        );
        assert_eq!(expires_after(now, u64::MAX, "t"), now + MAX_STATED_LIFETIME);
        assert_eq!(
            expires_at_unix(now, 1_800_003_600, "t"),
            now + Duration::from_secs(3600)
        );
        assert_eq!(
            expires_at_unix(now, u64::MAX, "t"),
            now + MAX_STATED_LIFETIME
        );
        assert_eq!(
            expires_at_unix(now, i64::MAX as u64, "t"),
            now + MAX_STATED_LIFETIME
        );
        let far = now + Duration::from_secs(200 * 365 * 24 * 3600);
        assert_eq!(bounded_expiry(now, far), now + MAX_EXPIRY_AHEAD);
        assert_eq!(bounded_expiry(now, now), now);
    }

    #[test]
    fn an_absolute_expiry_past_a_day_is_capped_like_a_lifetime() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let year_9999 = humantime::parse_rfc3339("9999-12-31T23:59:59Z").unwrap();
        assert_eq!(expires_at(now, year_9999, "t"), now + MAX_STATED_LIFETIME);
        let a_day_and_a_second = now + MAX_STATED_LIFETIME + Duration::from_secs(1);
        assert_eq!(
            expires_at(now, a_day_and_a_second, "t"),
            now + MAX_STATED_LIFETIME
        );
    }

    #[test]
    fn an_absolute_expiry_within_a_day_is_kept_as_stated() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let in_an_hour = now + Duration::from_secs(3600);
        assert_eq!(expires_at(now, in_an_hour, "t"), in_an_hour);
        assert_eq!(
            expires_at(now, now + MAX_STATED_LIFETIME, "t"),
            now + MAX_STATED_LIFETIME
        );
        // The past is the cache's to refuse, not this function's to move.
        let past = now - Duration::from_secs(60);
        assert_eq!(expires_at(now, past, "t"), past);
    }

    const T0: SystemTime = SystemTime::UNIX_EPOCH;
    const MIN: Duration = Duration::from_secs(60);

    fn token(lifetime: Duration) -> Validity {
        Validity {
            issued_at: T0,
            expires_at: T0 + lifetime,
            is_aws: false,
        }
    }

    #[test]
    fn an_hour_token_is_served_until_ten_minutes_are_left() {
        let v = token(60 * MIN);
        assert!(v.satisfies(T0 + 49 * MIN, DEFAULT_MIN_VALID));
        assert!(v.satisfies(T0 + 50 * MIN, DEFAULT_MIN_VALID));
        assert!(!v.satisfies(T0 + 51 * MIN, DEFAULT_MIN_VALID));
    }

    #[test]
    fn background_refresh_runs_before_min_valid_is_crossed() {
        let v = token(60 * MIN);
        for _ in 0..100 {
            let at = v.refresh_at(DEFAULT_MIN_VALID, jitter());
            assert!(at <= T0 + 50 * MIN, "refresh at {at:?} is too late");
            assert!(at >= T0 + 49 * MIN, "refresh at {at:?} is needlessly early");
        }
    }

    #[test]
    fn short_lived_tokens_are_served_for_half_their_life() {
        let v = token(5 * MIN);
        assert!(v.satisfies(T0 + 2 * MIN, DEFAULT_MIN_VALID));
        assert!(!v.satisfies(T0 + 3 * MIN, DEFAULT_MIN_VALID));
        assert!(
            v.refresh_at(DEFAULT_MIN_VALID, Duration::ZERO) == T0 + 150 * Duration::from_secs(1)
        );
    }

    #[test]
    fn aws_credentials_keep_fifteen_minutes_even_when_less_is_asked() {
        let v = Validity {
            issued_at: T0,
            expires_at: T0 + 60 * MIN,
            is_aws: true,
        };
        assert!(v.satisfies(T0 + 45 * MIN, Duration::ZERO));
        assert!(!v.satisfies(T0 + 46 * MIN, Duration::ZERO));
        assert!(v.usable_while_failing(T0 + 45 * MIN));
        assert!(!v.usable_while_failing(T0 + 46 * MIN));
    }

    #[test]
    fn an_expired_credential_is_never_served() {
        let v = token(60 * MIN);
        assert!(!v.satisfies(T0 + 60 * MIN, Duration::ZERO));
        assert!(!v.usable_while_failing(T0 + 60 * MIN));
        assert!(!v.usable_while_failing(T0 + 70 * MIN));
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        assert!(retry_wait(1, None) <= BACKOFF_BASE);
        assert_eq!(
            retry_wait(1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            retry_wait(1, Some(Duration::from_secs(86_400))),
            MAX_RETRY_AFTER
        );
        assert!(retry_wait(10, Some(Duration::from_secs(1))) >= BACKOFF_MAX / 2);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..50 {
            let first = backoff(1);
            assert!(first >= BACKOFF_BASE / 2 && first <= BACKOFF_BASE);
            let fifth = backoff(5);
            assert!(fifth >= Duration::from_secs(16) && fifth <= Duration::from_secs(32));
            assert!(backoff(40) <= BACKOFF_MAX);
        }
    }

    #[test]
    fn a_quick_reask_is_a_rejection_and_a_routine_one_is_not() {
        let ttl = 5 * MIN;
        assert!(is_reask_after_rejection(Duration::from_secs(1), ttl));
        assert!(!is_reask_after_rejection(5 * MIN, ttl));
        assert!(!is_reask_after_rejection(
            5 * MIN + Duration::from_secs(3),
            ttl
        ));
    }
}
