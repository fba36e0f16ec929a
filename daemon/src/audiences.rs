//! The ID tokens of one source, one cache slot per audience a caller has named (`credd get S
//! --audience A`, the metadata server's `identity` path). A slot is made on first demand and
//! then kept fresh like the source's own, so single-flight, early refresh, backoff and
//! fallback apply to ID tokens unchanged. A source holds at most [`MAX_AUDIENCES`], so a
//! caller naming endless audiences cannot grow the daemon without bound.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::JoinHandle;

use crate::cache::Slot;
use crate::clock::Clock;
use crate::config::SourceSpec;
use crate::sources;

/// The most audiences one source mints ID tokens for.
pub const MAX_AUDIENCES: usize = 32;

/// The longest audience accepted (a URL, or an OAuth client ID).
const MAX_AUDIENCE_LEN: usize = 2048;

/// Why no ID token slot can be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudienceError {
    #[error(
        "`{source_name}` is a `{kind}` source; ID tokens for an audience come from `gcp` sources"
    )]
    NotSupported {
        source_name: String,
        kind: &'static str,
    },
    #[error("the audience must be 1 to {MAX_AUDIENCE_LEN} printable characters")]
    Invalid,
    #[error(
        "`{source_name}` already mints ID tokens for {MAX_AUDIENCES} audiences; restart credd-daemon to forget them"
    )]
    TooMany { source_name: String },
}

pub struct Audiences {
    source_name: String,
    spec: SourceSpec,
    clock: Arc<Clock>,
    slots: Mutex<BTreeMap<String, Audience>>,
}

struct Audience {
    slot: Arc<Slot>,
    refresher: JoinHandle<()>,
}

impl Drop for Audience {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl Audiences {
    pub fn new(source_name: &str, spec: SourceSpec, clock: Arc<Clock>) -> Self {
        Audiences {
            source_name: source_name.to_string(),
            spec,
            clock,
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
        let mut slots = self.lock();
        if let Some(known) = slots.get(audience) {
            return Ok(known.slot.clone());
        }
        let source_name = self.source_name.clone();
        let Some(source) = sources::build_id_token(&self.spec, audience) else {
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
            format!("{} --audience {audience}", self.source_name),
            source,
            self.clock.clone(),
        );
        let refresher = tokio::spawn(slot.clone().keep_fresh());
        slots.insert(
            audience.to_string(),
            Audience {
                slot: slot.clone(),
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
        self.lock()
            .iter()
            .map(|(audience, a)| credd_proto::SourceStatus {
                name: self.source_name.clone(),
                audience: Some(audience.clone()),
                ..a.slot.status()
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Audience>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}
