//! The upstream's clock, as the `Date` header of its answers tells it.
//!
//! Some upstreams state expirations as absolute times by their own clock (STS `Expiration`, IAM
//! `expireTime`, a managed-identity endpoint's `expires_on`). When that clock and this machine's
//! disagree, a credential trusted as stated is served after the upstream has stopped accepting
//! it (its clock ahead of ours) or refreshed early and often (behind). credd keeps instead the
//! credential's remaining life by the upstream's clock, counted from its own: the expiry minus
//! the offset between the `Date` the upstream sent and credd's clock when the call began.
//!
//! Measuring from the start of the call over-estimates an upstream that is ahead by the call's
//! duration (and under-estimates one behind), so the error always shortens the life credd
//! assumes, never lengthens it. Offsets below [`NEGLIGIBLE`] (the `Date` header counts whole
//! seconds) are ignored. Expirations given as a lifetime (`expires_in`) need none of this.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Offsets smaller than this are left uncorrected.
pub const NEGLIGIBLE: Duration = Duration::from_secs(5);

/// Collects the `Date` of every answer of one fetch; shared with the HTTP client making them.
#[derive(Debug, Clone, Default)]
pub struct DateProbe(Arc<Mutex<Option<SystemTime>>>);

impl DateProbe {
    /// Keeps the date a `Date` header states (the latest answer wins); unreadable ones are
    /// ignored.
    pub fn record(&self, header: Option<&str>) {
        if let Some(date) = header.and_then(|h| httpdate::parse_http_date(h.trim()).ok()) {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(date);
        }
    }

    /// How far the upstream's clock ran ahead of `started` (credd's clock when the fetch
    /// began), in whole seconds, negative when behind; `None` when no answer carried a date or
    /// the difference is negligible. `Date` counts whole seconds, so the upstream's clock read
    /// up to a second past it: the offset is rounded up, to the side that shortens lifetimes.
    pub fn offset_secs(&self, started: SystemTime) -> Option<i64> {
        let date = (*self.0.lock().unwrap_or_else(|p| p.into_inner()))?;
        let latest = date + Duration::from_secs(1);
        let ahead_ms = match latest.duration_since(started) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        };
        let ahead = ahead_ms.div_euclid(1000) + i64::from(ahead_ms.rem_euclid(1000) != 0);
        (ahead.unsigned_abs() >= NEGLIGIBLE.as_secs()).then_some(ahead)
    }

    /// An absolute expiry stated by the upstream, moved onto credd's clock and held to the cap
    /// on any upstream's word ([`crate::policy::expires_at`]), and the offset applied. Every
    /// absolute expiry an upstream answers with comes through here, so none escapes the cap.
    pub fn to_local(&self, expiry: SystemTime, started: SystemTime) -> (SystemTime, Option<i64>) {
        let offset = self.offset_secs(started);
        let local = crate::policy::expires_at(started, shift(expiry, offset), "an upstream");
        (local, offset)
    }
}

/// `time` moved back by `offset_secs` (forward when negative).
fn shift(time: SystemTime, offset_secs: Option<i64>) -> SystemTime {
    match offset_secs {
        Some(ahead) if ahead >= 0 => time
            .checked_sub(Duration::from_secs(ahead as u64))
            .unwrap_or(time),
        Some(behind) => time
            .checked_add(Duration::from_secs(behind.unsigned_abs()))
            .unwrap_or(time),
        None => time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Duration = Duration::from_secs(1_800_000_000);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + START + Duration::from_secs(secs)
    }

    fn probe_reading(date: SystemTime) -> DateProbe {
        let probe = DateProbe::default();
        probe.record(Some(&httpdate::fmt_http_date(date)));
        probe
    }

    #[test]
    fn an_upstream_ahead_has_its_expiry_moved_back() {
        let started = at(0);
        let probe = probe_reading(at(600));
        let (local, offset) = probe.to_local(at(600 + 3600), started);
        // The upstream's clock may have read up to a second past its `Date`.
        assert_eq!(offset, Some(601));
        assert_eq!(local, at(3599));
    }

    #[test]
    fn an_upstream_behind_has_its_expiry_moved_forward() {
        let probe = probe_reading(at(0));
        let (local, offset) = probe.to_local(at(900), at(600));
        assert_eq!(offset, Some(-599));
        assert_eq!(local, at(1499));
    }

    #[test]
    fn small_offsets_and_missing_or_bad_dates_change_nothing() {
        let started = at(0);
        assert_eq!(
            probe_reading(at(2)).to_local(at(99), started),
            (at(99), None)
        );
        let probe = DateProbe::default();
        assert_eq!(probe.to_local(at(99), started), (at(99), None));
        probe.record(Some("yesterday, about noon"));
        probe.record(None);
        assert_eq!(probe.offset_secs(started), None);
    }

    #[test]
    fn an_expiry_past_a_day_is_capped_after_the_correction() {
        let started = at(0);
        let year_9999 = humantime::parse_rfc3339("9999-12-31T23:59:59Z").unwrap();
        let cap = started + crate::policy::MAX_STATED_LIFETIME;
        assert_eq!(
            DateProbe::default().to_local(year_9999, started),
            (cap, None)
        );
        let (local, offset) = probe_reading(at(600)).to_local(year_9999, started);
        assert_eq!((local, offset), (cap, Some(601)));
    }

    #[test]
    fn the_latest_date_wins() {
        let probe = probe_reading(at(600));
        probe.record(Some(&httpdate::fmt_http_date(at(30))));
        assert_eq!(probe.offset_secs(at(0)), Some(31));
    }

    #[test]
    fn a_fraction_of_a_second_rounds_to_the_shorter_life() {
        let started = at(0) + Duration::from_millis(900);
        // Sent 600.05 s after `started` by the upstream's clock; `Date` says 600.
        let probe = probe_reading(at(600));
        let (local, offset) = probe.to_local(at(600 + 3600), started);
        assert_eq!(offset, Some(601));
        assert!(local <= started + Duration::from_secs(3600));
    }
}
