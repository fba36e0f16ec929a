//! The ID tokens of one source, one cache slot per audience a caller has named (`credd get S
//! --audience A`, the metadata server's `identity` path). A slot is made on first demand and
//! then kept fresh like the source's own, so single-flight, early refresh, backoff and
//! fallback apply to ID tokens unchanged, for as long as callers keep asking: an audience nobody
//! has asked for in [`IDLE_AUDIENCE`] is no longer refreshed and is forgotten. A source holds at
//! most [`MAX_AUDIENCES`] at a time, so a caller naming endless audiences cannot grow the daemon
//! (or its upstream calls) without bound.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use crate::cache::Slot;
use crate::clock::{Clock, from_unix_secs, unix_secs};
use crate::config::SourceSpec;
use crate::source_name::SourceName;
use crate::sources;

/// The most audiences one source mints ID tokens for at a time.
pub const MAX_AUDIENCES: usize = 32;

/// How long an audience is kept fresh after a caller last asked for it. Longer than an ID
/// token's hour, so a caller that comes back when its token runs out finds the next one ready.
pub const IDLE_AUDIENCE: Duration = Duration::from_secs(2 * 3600);

/// The longest audience accepted (a URL, or an OAuth client ID).
const MAX_AUDIENCE_LEN: usize = 2048;

/// Why no ID token slot can be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudienceError {
    #[error(
        "`{source_name}` is a `{kind}` source; ID tokens for an audience come from `gcp` sources"
    )]
    NotSupported {
        source_name: SourceName,
        kind: &'static str,
    },
    #[error("the audience must be 1 to {MAX_AUDIENCE_LEN} printable characters")]
    Invalid,
    #[error(
        "`{source_name}` already mints ID tokens for {MAX_AUDIENCES} audiences; one is forgotten 2 hours after it was last asked for"
    )]
    TooMany { source_name: SourceName },
}

pub struct Audiences {
    source_name: SourceName,
    spec: SourceSpec,
    clock: Arc<Clock>,
    /// What a source that stands on another's sign-in asks it through.
    others: Arc<dyn sources::OtherSources>,
    slots: Mutex<BTreeMap<String, Audience>>,
}

struct Audience {
    slot: Arc<Slot>,
    /// When a caller last asked, in Unix seconds of the daemon's clock; the refresher reads it.
    last_asked: Arc<AtomicI64>,
    refresher: JoinHandle<()>,
}

impl Audience {
    fn is_idle(&self, now: SystemTime) -> bool {
        now >= idle_at(&self.last_asked)
    }
}

impl Drop for Audience {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl Audiences {
    pub fn new(
        source_name: &SourceName,
        spec: SourceSpec,
        clock: Arc<Clock>,
        others: Arc<dyn sources::OtherSources>,
    ) -> Self {
        Audiences {
            source_name: source_name.clone(),
            spec,
            clock,
            others,
            slots: Mutex::new(BTreeMap::new()),
        }
    }

    /// The slot of `audience`'s ID tokens, made on first demand.
    pub fn slot(&self, audience: &str) -> Result<Arc<Slot>, AudienceError> {
        if audience.is_empty()
            || audience.len() > MAX_AUDIENCE_LEN
            || audience.chars().any(char::is_control)
        {
            return Err(AudienceError::Invalid);
        }
        let now = self.clock.now();
        let mut slots = self.lock_forgetting_idle(now);
        if let Some(known) = slots.get(audience) {
            known.last_asked.store(unix_secs(now), Ordering::Relaxed);
            return Ok(known.slot.clone());
        }
        let source_name = self.source_name.clone();
        let Some(source) = sources::build_id_token(&self.spec, audience, &self.clock, &self.others)
        else {
            return Err(AudienceError::NotSupported {
                source_name,
                kind: self.spec.kind(),
            });
        };
        if slots.len() >= MAX_AUDIENCES {
            return Err(AudienceError::TooMany { source_name });
        }
        tracing::info!(source = %self.source_name, audience, "minting ID tokens for a new audience");
        let slot = Slot::new(
            crate::cache::SlotId::audience(&self.source_name, audience),
            source,
            self.clock.clone(),
        );
        let last_asked = Arc::new(AtomicI64::new(unix_secs(now)));
        let refresher = tokio::spawn(refresh_while_asked(
            slot.clone(),
            self.clock.clone(),
            last_asked.clone(),
        ));
        slots.insert(
            audience.to_string(),
            Audience {
                slot: slot.clone(),
                last_asked,
                refresher,
            },
        );
        Ok(slot)
    }

    /// Ends the backoff of every failing audience (the source's files changed).
    pub fn retry_now(&self) {
        for audience in self.lock().values() {
            audience.slot.retry_now();
        }
    }

    pub fn statuses(&self) -> Vec<credd_proto::SourceStatus> {
        self.lock_forgetting_idle(self.clock.now())
            .values()
            .map(|a| a.slot.status())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Audience>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The audiences, without those nobody has asked for in [`IDLE_AUDIENCE`] (their refreshers
    /// have stopped already; forgetting them frees their place and their `status` line).
    fn lock_forgetting_idle(&self, now: SystemTime) -> MutexGuard<'_, BTreeMap<String, Audience>> {
        let mut slots = self.lock();
        slots.retain(|audience, a| {
            let idle = a.is_idle(now);
            if idle {
                tracing::info!(source = %self.source_name, audience, "forgetting an audience nobody has asked for lately");
            }
            !idle
        });
        slots
    }
}

/// Keeps `slot` fresh until nobody has asked for it in [`IDLE_AUDIENCE`].
async fn refresh_while_asked(slot: Arc<Slot>, clock: Arc<Clock>, last_asked: Arc<AtomicI64>) {
    let until_idle = async {
        loop {
            let at = idle_at(&last_asked);
            if clock.now() >= at {
                return;
            }
            clock.sleep_until(at).await;
        }
    };
    tokio::select! {
        _ = slot.keep_fresh() => {}
        _ = until_idle => {}
    }
}

fn idle_at(last_asked: &AtomicI64) -> SystemTime {
    from_unix_secs(last_asked.load(Ordering::Relaxed)) + IDLE_AUDIENCE
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn vertex(clock: &Arc<Clock>) -> Audiences {
        let config = crate::config::parse(
            Path::new("config.toml"),
            "[sources.vertex]\nkind = \"gcp\"\n",
        )
        .unwrap();
        let spec = config.sources["vertex"].clone();
        Audiences::new(
            &crate::source_name::SourceName::try_from("vertex").unwrap(),
            spec,
            clock.clone(),
            Arc::new(sources::NoOtherSources),
        )
    }

    fn listed(audiences: &Audiences) -> Vec<String> {
        audiences
            .statuses()
            .into_iter()
            .filter_map(|s| s.audience)
            .collect()
    }

    #[tokio::test]
    async fn an_audience_unasked_for_two_hours_is_forgotten_and_makes_way() {
        let clock = Arc::new(Clock::manual(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
        ));
        let audiences = vertex(&clock);
        for n in 0..MAX_AUDIENCES {
            audiences.slot(&format!("https://a{n:02}.example")).unwrap();
        }
        let full = audiences.slot("https://one-more.example").map(|_| ());
        assert!(
            matches!(full, Err(AudienceError::TooMany { .. })),
            "{full:?}"
        );

        // One audience is asked for again an hour on; the others are not.
        clock.advance(Duration::from_secs(3600));
        let kept = audiences.slot("https://a07.example").unwrap();
        assert!(Arc::ptr_eq(
            &kept,
            &audiences.slot("https://a07.example").unwrap()
        ));
        assert_eq!(listed(&audiences).len(), MAX_AUDIENCES);

        clock.advance(IDLE_AUDIENCE - Duration::from_secs(3600));
        assert_eq!(listed(&audiences), ["https://a07.example"]);
        audiences.slot("https://one-more.example").unwrap();
        assert!(
            Arc::ptr_eq(&kept, &audiences.slot("https://a07.example").unwrap()),
            "the audience asked for lately keeps its cache"
        );
        let forgotten = audiences.slot("https://a00.example").unwrap();
        assert_eq!(forgotten.status().upstream_calls, 0, "made anew");
        assert_eq!(listed(&audiences).len(), 3);
    }

    #[tokio::test]
    async fn the_refresher_of_an_idle_audience_stops_by_itself() {
        let clock = Arc::new(Clock::manual(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
        ));
        let audiences = vertex(&clock);
        audiences.slot("https://run.example").unwrap();
        let running = || {
            let slots = audiences.lock();
            !slots["https://run.example"].refresher.is_finished()
        };
        clock.advance(IDLE_AUDIENCE - Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(running());
        clock.advance(Duration::from_secs(1));
        for _ in 0..100 {
            if !running() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the refresher still runs two hours after the last ask");
    }
}
