//! One cache slot per source: the credential in memory, the single upstream call in flight, and
//! the background task that refreshes it before anyone would wait.
//!
//! Every request for a source goes through its [`Slot`]. A request the cache cannot satisfy joins
//! the one fetch in flight, or starts it; the fetch runs in its own task, so a caller that goes
//! away does not cancel it for the others. Decisions about time (when to refresh, how long to back
//! off, what may still be served) are asked of [`crate::policy`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use credd_proto::{Caller, Credential, SourceState, SourceStatus};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::Notify;

use crate::clock::{Clock, unix_secs};
use crate::notify;
use crate::policy::{self, Validity};
use crate::source_name::SourceName;
use crate::sources::{Source, SourceError};

type FetchOutcome = Result<Arc<Credential>, SourceError>;
type Inflight = Shared<BoxFuture<'static, FetchOutcome>>;

/// Remembered callers per source, at most; the oldest are forgotten first.
const MAX_CALLERS: usize = 1024;

/// What a slot holds credentials for: a source, or one audience of a source's ID tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotId {
    /// The source's own name in the config.
    pub source: SourceName,
    pub audience: Option<String>,
}

impl SlotId {
    pub fn audience(source: &SourceName, audience: &str) -> Self {
        SlotId {
            source: source.clone(),
            audience: Some(audience.to_string()),
        }
    }
}

impl From<SourceName> for SlotId {
    fn from(source: SourceName) -> Self {
        SlotId {
            source,
            audience: None,
        }
    }
}

/// How a person names it: `vertex`, or `vertex --audience A` (as `credd get` takes it).
impl std::fmt::Display for SlotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.audience {
            Some(audience) => write!(f, "{} --audience {audience}", self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

pub struct Slot {
    id: SlotId,
    source: Box<dyn Source>,
    clock: Arc<Clock>,
    state: Mutex<SlotState>,
    /// Wakes the background task when the state changes.
    changed: Notify,
}

#[derive(Default)]
struct SlotState {
    current: Option<Cached>,
    /// Bumped on every new credential, so callers can tell whether they have seen it.
    generation: u64,
    inflight: Option<Inflight>,
    last_error: Option<SourceError>,
    failures: u32,
    retry_at: Option<SystemTime>,
    upstream_calls: u64,
    last_refresh_at: Option<SystemTime>,
    /// The most validity any caller has asked for; the background refresh keeps this much.
    wanted_min_valid: Option<Duration>,
    last_forced_at: Option<SystemTime>,
    callers: HashMap<String, CallerSeen>,
    /// The person was told this source needs them; cleared by the next credential.
    alerted: bool,
    /// The generation of the last logout: fetches begun before it are discarded.
    signed_out_at: u64,
}

#[derive(Clone)]
struct Cached {
    credential: Arc<Credential>,
    validity: Validity,
    /// Chosen once per credential, so the refresh deadline is stable.
    jitter: Duration,
    /// The upstream clock's offset its expiry was corrected for.
    clock_offset_secs: Option<i64>,
}

#[derive(Clone, Copy)]
struct CallerSeen {
    at: SystemTime,
    generation: u64,
    cache_ttl: Duration,
}

impl Slot {
    pub fn new(id: impl Into<SlotId>, source: Box<dyn Source>, clock: Arc<Clock>) -> Arc<Self> {
        // Settings found wrong when the source was built show at once, as its error.
        let problem = source.settings_problem();
        let state = SlotState {
            failures: u32::from(problem.is_some()),
            last_error: problem,
            ..SlotState::default()
        };
        Arc::new(Slot {
            id: id.into(),
            source,
            clock,
            state: Mutex::new(state),
            changed: Notify::new(),
        })
    }

    pub fn kind(&self) -> &'static str {
        self.source.kind()
    }

    /// The source's own name (an audience's slot has its source's).
    pub fn name(&self) -> &SourceName {
        &self.id.source
    }

    pub fn id(&self) -> &SlotId {
        &self.id
    }

    /// The daemon's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The daemon's clock, in Unix seconds (lifetimes handed to callers are counted from it).
    pub fn now_unix(&self) -> i64 {
        self.clock.now_unix()
    }

    pub fn source(&self) -> &dyn Source {
        &*self.source
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A credential valid for at least `min_valid`, from the cache when it can be.
    pub async fn get(
        self: &Arc<Self>,
        min_valid: Duration,
        caller: Option<&Caller>,
    ) -> Result<Arc<Credential>, SourceError> {
        let now = self.clock.now();
        let inflight = {
            let mut st = self.lock();
            let first_demand = st.wanted_min_valid.is_none();
            st.wanted_min_valid = Some(st.wanted_min_valid.unwrap_or_default().max(min_valid));
            if first_demand {
                self.changed.notify_one();
            }
            let forced = caller.is_some_and(|c| self.is_rejection_reask(&mut st, c, now));
            match &st.current {
                Some(c) if !forced && c.validity.satisfies(now, min_valid) => {
                    let credential = c.credential.clone();
                    remember_caller(&mut st, caller, now);
                    return Ok(credential);
                }
                _ => {}
            }
            if st.inflight.is_none() && policy::backing_off(st.retry_at, now) {
                // Backing off: do not call the upstream again yet.
                return self.fallback(&mut st, now);
            }
            self.start_or_join(&mut st)
        };
        let outcome = inflight.await;
        let mut st = self.lock();
        match outcome {
            Ok(credential) => {
                remember_caller(&mut st, caller, self.clock.now());
                Ok(credential)
            }
            Err(_) => self.fallback(&mut st, self.clock.now()),
        }
    }

    /// Fetches a new credential now, whatever the cache holds (`credd refresh`).
    pub async fn refresh(self: &Arc<Self>) -> Result<Arc<Credential>, SourceError> {
        let inflight = {
            let mut st = self.lock();
            st.wanted_min_valid.get_or_insert(policy::DEFAULT_MIN_VALID);
            self.start_or_join(&mut st)
        };
        inflight.await
    }

    /// The upstream refused `given` (the proxy met a 401 or 403): a new credential to retry
    /// with, when one can be had: a newer one already cached, or one fetched now (one fetch
    /// for all who ask, and at most one forced by refusals per
    /// [`policy::FORCED_REFRESH_INTERVAL`], so a caller that is refused for other reasons
    /// cannot hammer the upstream). `None`: nothing better than `given`.
    pub async fn rejected(self: &Arc<Self>, given: &Arc<Credential>) -> Option<Arc<Credential>> {
        let inflight = {
            let mut st = self.lock();
            let now = self.clock.now();
            if let Some(c) = &st.current
                && !Arc::ptr_eq(&c.credential, given)
                && c.validity.satisfies(now, Duration::ZERO)
            {
                return Some(c.credential.clone());
            }
            // A refresh under way (forced by another refused request, or a scheduled one)
            // brings what this caller needs: it waits for that one rather than for nothing.
            if let Some(inflight) = &st.inflight {
                inflight.clone()
            } else if policy::backing_off(st.retry_at, now) {
                // A failing source backs off (an upstream's Retry-After among it): a refusal
                // does not cut that short.
                return None;
            } else {
                if !policy::may_force_refresh(st.last_forced_at, now) {
                    tracing::info!(source = %self.id, "the upstream refused the credential again; a forced refresh ran less than {}s ago", policy::FORCED_REFRESH_INTERVAL.as_secs());
                    return None;
                }
                st.last_forced_at = Some(now);
                self.start_or_join(&mut st)
            }
        };
        let fresh = inflight.await.ok()?;
        (!Arc::ptr_eq(&fresh, given)).then_some(fresh)
    }

    /// Ends the backoff of a failing source, so its background task tries again at once.
    pub fn retry_now(&self) {
        let mut st = self.lock();
        if st.failures > 0 && st.retry_at.is_some() {
            tracing::info!(source = %self.id, "upstream files changed; retrying now");
            st.retry_at = Some(self.clock.now());
            drop(st);
            self.changed.notify_one();
        }
    }

    /// A re-ask from a caller that was handed the current credential moments ago means the
    /// credential was rejected upstream: force a refresh, at most once per interval.
    fn is_rejection_reask(&self, st: &mut SlotState, caller: &Caller, now: SystemTime) -> bool {
        let Some(seen) = st.callers.get(&caller.id).copied() else {
            return false;
        };
        let since = now.duration_since(seen.at).unwrap_or(Duration::ZERO);
        let cache_ttl = Duration::from_millis(caller.cache_ttl_ms);
        if seen.generation != st.generation || !policy::is_reask_after_rejection(since, cache_ttl) {
            return false;
        }
        let allowed = policy::may_force_refresh(st.last_forced_at, now);
        if allowed {
            tracing::info!(source = %self.id, caller = %caller.id, "caller asked again at once; its credential was likely rejected, refreshing");
            st.last_forced_at = Some(now);
        } else {
            tracing::info!(source = %self.id, caller = %caller.id, "caller asked again at once; a forced refresh ran less than {}s ago, serving the cached credential", policy::FORCED_REFRESH_INTERVAL.as_secs());
        }
        allowed
    }

    /// What to answer when the upstream cannot help: the cached credential while it is still
    /// usable, else the upstream's error.
    fn fallback(
        &self,
        st: &mut SlotState,
        now: SystemTime,
    ) -> Result<Arc<Credential>, SourceError> {
        if let Some(c) = &st.current
            && c.validity.usable_while_failing(now)
        {
            return Ok(c.credential.clone());
        }
        let error = st
            .last_error
            .clone()
            .unwrap_or_else(|| SourceError::Upstream("no credential could be obtained".into()));
        Err(match st.retry_at {
            Some(retry) => error.retrying_in(
                retry
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO)
                    .as_secs(),
            ),
            None => error,
        })
    }

    /// Joins the upstream call in flight, or starts one in its own task.
    fn start_or_join(self: &Arc<Self>, st: &mut SlotState) -> Inflight {
        if let Some(inflight) = &st.inflight {
            return inflight.clone();
        }
        st.upstream_calls += 1;
        let generation = st.generation;
        let slot = Arc::clone(self);
        let task = tokio::spawn(async move {
            let started = slot.clock.now();
            tracing::debug!(source = %slot.id, "calling upstream");
            // A fetch that panics is a failure like any other: it must not leave the slot
            // waiting forever on a call that is over.
            let fetch = std::panic::AssertUnwindSafe(slot.source.fetch(started)).catch_unwind();
            let result = match tokio::time::timeout(policy::FETCH_BOUND, fetch).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => {
                    tracing::error!(source = %slot.id, "the upstream call failed unexpectedly (a bug in credd); it will be retried");
                    Err(SourceError::Internal(format!(
                        "internal error in the {} source; retrying",
                        slot.kind()
                    )))
                }
                // Each source bounds its own calls; this bounds whatever a source cannot.
                Err(_) => Err(SourceError::Upstream(format!(
                    "the upstream call did not finish within {} minutes",
                    policy::FETCH_BOUND.as_secs() / 60
                ))),
            };
            slot.finish_fetch(started, Some(generation), result)
        });
        let inflight: BoxFuture<'static, FetchOutcome> = Box::pin(task.map(|joined| {
            joined.unwrap_or_else(|e| Err(SourceError::Upstream(format!("internal error: {e}"))))
        }));
        let inflight = inflight.shared();
        st.inflight = Some(inflight.clone());
        inflight
    }

    /// Takes a credential an interactive login obtained, as if a fetch had just returned it
    /// (a fetch still in flight keeps its place, and its failure will not undo this).
    pub fn accept(&self, fetched: crate::sources::Fetched) -> FetchOutcome {
        let now = self.clock.now();
        self.finish_fetch(now, None, Ok(fetched))
    }

    /// Tells the person, once until the next credential, that this source needs them: it was
    /// serving, and now only a login can renew it, or its refreshes keep failing and what it
    /// serves runs out within [`notify::AHEAD`]. A source that served nothing has no one to
    /// warn: whoever asked for it sees the error.
    fn alert_if_needed(&self, st: &mut SlotState, error: &SourceError, now: SystemTime) {
        let Some(current) = &st.current else {
            return;
        };
        if st.alerted {
            return;
        }
        let left = current.validity.remaining(now);
        // Nothing an upstream said goes on the desktop (notification servers read markup, and
        // a hostile upstream could word a link): the source, the time and what to run.
        let (summary, body) = match error {
            SourceError::NeedsLogin(_) => (
                format!("credd: {} needs you to sign in", self.id),
                format!(
                    "What it holds lasts {} min more. Run `credd login {}` (Claude Code's awsAuthRefresh or gcpAuthRefresh runs it too).",
                    left.as_secs().div_ceil(60),
                    self.id.source
                ),
            ),
            _ if left < notify::AHEAD => (
                format!(
                    "credd: {} runs out in {} min and cannot be renewed",
                    self.id,
                    left.as_secs().div_ceil(60)
                ),
                "Its refreshes keep failing; `credd status` says why.".to_string(),
            ),
            _ => return,
        };
        st.alerted = true;
        notify::alert(summary, body);
    }

    /// Records what a fetch (started when the slot was at `generation`), or a login (`None`),
    /// came back with.
    fn finish_fetch(
        &self,
        started: SystemTime,
        generation: Option<u64>,
        result: Result<crate::sources::Fetched, SourceError>,
    ) -> FetchOutcome {
        let now = self.clock.now();
        let mut st = self.lock();
        if generation.is_some() {
            st.inflight = None;
        }
        // A fetch that began before a logout brings nothing back: the person signed out.
        let result = match result {
            Ok(_) if generation.is_some_and(|g| g < st.signed_out_at) => Err(
                SourceError::NeedsLogin("signed out while a refresh was under way".into()),
            ),
            other => other,
        };
        // A fetch that failed after a login brought a newer credential: the newer one stands.
        if result.is_err()
            && generation.is_some_and(|g| g != st.generation)
            && let Some(current) = &st.current
            && !current.validity.remaining(now).is_zero()
        {
            return Ok(current.credential.clone());
        }
        let outcome = match result {
            Ok(fetched) if policy::expired_on_arrival(fetched.expires_at, now) => {
                Err(SourceError::Upstream(
                    "the upstream handed out a credential that has already expired".into(),
                ))
            }
            Ok(mut fetched) => {
                fetched.expires_at = policy::bounded_expiry(now, fetched.expires_at);
                Ok(fetched)
            }
            Err(e) => Err(e.one_line()),
        };
        let outcome = match outcome {
            Ok(fetched) => {
                let previous_offset = st.current.as_ref().and_then(|c| c.clock_offset_secs);
                if let Some(offset) = fetched.clock_offset_secs
                    && Some(offset) != previous_offset
                {
                    tracing::info!(source = %self.id, offset_secs = offset, "the upstream's clock differs from this machine's (positive: ahead); expiries are corrected");
                }
                let issued_at = started.min(now);
                let credential = Arc::new(Credential {
                    source: self.id.source.to_string(),
                    issued_at: unix_secs(issued_at),
                    expires_at: unix_secs(fetched.expires_at),
                    metadata: Box::new(fetched.metadata),
                    secret: fetched.secret,
                });
                st.current = Some(Cached {
                    validity: Validity::of(&credential.secret, issued_at, fetched.expires_at),
                    credential: credential.clone(),
                    jitter: policy::jitter(),
                    clock_offset_secs: fetched.clock_offset_secs,
                });
                st.generation += 1;
                st.failures = 0;
                st.alerted = false;
                st.last_error = None;
                st.retry_at = None;
                st.last_refresh_at = Some(now);
                tracing::info!(source = %self.id, expires_at = %humantime::format_rfc3339_seconds(fetched.expires_at), "new credential");
                Ok(credential)
            }
            Err(error) => {
                st.failures += 1;
                let wait = policy::wait_after(error.retry_kind(), st.failures);
                st.retry_at = Some(now + wait);
                tracing::warn!(source = %self.id, failures = st.failures, retry_in_secs = wait.as_secs(), "upstream failed: {error}");
                self.alert_if_needed(&mut st, &error, now);
                st.last_error = Some(error.clone());
                Err(error)
            }
        };
        drop(st);
        self.changed.notify_one();
        outcome
    }

    /// The background refresh: keeps the credential fresh once anyone has asked for it.
    /// Runs until the slot is dropped from the config (its task is aborted).
    pub async fn keep_fresh(self: Arc<Self>) {
        loop {
            let changed = self.changed.notified();
            let wake_at = {
                let st = self.lock();
                match (&st.wanted_min_valid, &st.inflight) {
                    (None, _) | (_, Some(_)) => None,
                    // Wanted but never fetched: now.
                    (Some(_), None) => {
                        Some(st.planned_refresh().unwrap_or_else(|| self.clock.now()))
                    }
                }
            };
            match wake_at {
                None => changed.await,
                Some(at) if at <= self.clock.now() => {
                    let inflight = {
                        let mut st = self.lock();
                        self.start_or_join(&mut st)
                    };
                    let _ = inflight.await;
                }
                Some(at) => {
                    tokio::select! {
                        _ = self.clock.sleep_until(at) => {}
                        _ = changed => {}
                    }
                }
            }
        }
    }

    pub fn status(&self) -> SourceStatus {
        let now = self.clock.now();
        let st = self.lock();
        let state = if st.inflight.is_some() {
            SourceState::Refreshing
        } else if matches!(st.last_error, Some(SourceError::NeedsLogin(_))) {
            SourceState::NeedsLogin
        } else {
            match &st.current {
                None if st.failures > 0 => SourceState::Failing,
                None => SourceState::Idle,
                Some(c) if c.validity.remaining(now).is_zero() => SourceState::Expired,
                Some(_) if st.failures > 0 => SourceState::Failing,
                Some(_) => SourceState::Fresh,
            }
        };
        let next_refresh = st.planned_refresh();
        SourceStatus {
            name: self.id.source.to_string(),
            audience: self.id.audience.clone(),
            kind: self.kind().to_string(),
            state,
            expires_at: st.current.as_ref().map(|c| c.credential.expires_at),
            next_refresh_at: next_refresh.map(unix_secs),
            last_refresh_at: st.last_refresh_at.map(unix_secs),
            last_error: st.last_error.as_ref().map(ToString::to_string),
            consecutive_failures: st.failures,
            upstream_calls: st.upstream_calls,
            upstream_clock_offset_secs: st.current.as_ref().and_then(|c| c.clock_offset_secs),
            endpoints: Vec::new(),
            persistence: self.source.persistence(),
            signed_in: st.current.as_ref().and_then(|c| {
                let facts = &c.credential.metadata;
                Some(format!(
                    "signed in as {} at {}",
                    facts.subject.as_ref()?,
                    facts.issuer.as_ref()?
                ))
            }),
        }
    }

    /// Signs out: the source forgets its login (in memory and in the secret store) and the
    /// cache drops what it holds, so the next caller is told to log in. Returns what stays
    /// signed in elsewhere, if anything, for the person.
    pub async fn logout(&self) -> Result<Option<String>, SourceError> {
        let Some(logout) = self.source.logout() else {
            return Err(SourceError::Misconfigured(format!(
                "sources of kind `{}` keep no login of their own to sign out of",
                self.kind()
            )));
        };
        let remains = logout.await?;
        let mut st = self.lock();
        st.current = None;
        st.generation += 1;
        st.signed_out_at = st.generation;
        st.failures = 1;
        st.retry_at = None;
        st.last_error = Some(SourceError::NeedsLogin("signed out".into()));
        self.changed.notify_waiters();
        tracing::info!(source = %self.id, "signed out");
        Ok(remains)
    }
}

impl SlotState {
    /// When the next upstream call is planned: the retry after a failure, else the refresh
    /// before the credential falls under what callers want. The background task sleeps until
    /// it and `status` shows it: one computation for both.
    fn planned_refresh(&self) -> Option<SystemTime> {
        match (self.retry_at, &self.current, self.wanted_min_valid) {
            (Some(retry), _, _) => Some(retry),
            (None, Some(c), Some(wanted)) => Some(c.validity.refresh_at(wanted, c.jitter)),
            _ => None,
        }
    }
}

fn remember_caller(st: &mut SlotState, caller: Option<&Caller>, now: SystemTime) {
    let Some(caller) = caller else { return };
    if st.callers.len() >= MAX_CALLERS {
        st.callers.retain(|_, seen| {
            now.duration_since(seen.at).unwrap_or(Duration::ZERO) < seen.cache_ttl
        });
        if st.callers.len() >= MAX_CALLERS
            && let Some(oldest) = st
                .callers
                .iter()
                .min_by_key(|(_, s)| s.at)
                .map(|(k, _)| k.clone())
        {
            st.callers.remove(&oldest);
        }
    }
    let generation = st.generation;
    st.callers.insert(
        caller.id.clone(),
        CallerSeen {
            at: now,
            generation,
            cache_ttl: Duration::from_millis(caller.cache_ttl_ms),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::Fetched;
    use credd_proto::{CredentialSecret, Secret};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An upstream that counts its calls and answers from a script.
    struct Scripted {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
        fail: Arc<std::sync::atomic::AtomicBool>,
        delay: Duration,
    }

    impl Source for Scripted {
        fn kind(&self) -> &'static str {
            "test"
        }

        fn fetch(&self, now: SystemTime) -> BoxFuture<'_, Result<Fetched, SourceError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(self.delay).await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(SourceError::Upstream("HTTP 500".into()));
                }
                Ok(Fetched {
                    secret: CredentialSecret::Token {
                        token: Secret::new(format!("tok-{n}")),
                    },
                    expires_at: now + self.lifetime,
                    metadata: Default::default(),
                    clock_offset_secs: None,
                })
            })
        }
    }

    struct Fixture {
        slot: Arc<Slot>,
        clock: Arc<Clock>,
        calls: Arc<AtomicUsize>,
        fail: Arc<std::sync::atomic::AtomicBool>,
    }

    fn fixture(lifetime: Duration, delay: Duration) -> Fixture {
        let clock = Arc::new(Clock::manual(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        ));
        let calls = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let source = Scripted {
            calls: calls.clone(),
            lifetime,
            fail: fail.clone(),
            delay,
        };
        Fixture {
            slot: Slot::new(
                SourceName::try_from("s").unwrap(),
                Box::new(source),
                clock.clone(),
            ),
            clock,
            calls,
            fail,
        }
    }

    fn token(c: &Credential) -> &str {
        c.secret.secret_values()[0]
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const TEN_MIN: Duration = Duration::from_secs(600);

    #[tokio::test]
    async fn concurrent_gets_share_one_upstream_call() {
        let f = fixture(HOUR, Duration::from_millis(50));
        let gets = (0..100).map(|_| {
            let slot = f.slot.clone();
            tokio::spawn(async move { slot.get(TEN_MIN, None).await })
        });
        for get in futures_util::future::join_all(gets).await {
            assert_eq!(token(&get.unwrap().unwrap()), "tok-1");
        }
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_get_past_min_valid_fetches_anew() {
        let f = fixture(HOUR, Duration::ZERO);
        assert_eq!(token(&f.slot.get(TEN_MIN, None).await.unwrap()), "tok-1");
        f.clock.advance(Duration::from_secs(49 * 60));
        assert_eq!(token(&f.slot.get(TEN_MIN, None).await.unwrap()), "tok-1");
        f.clock.advance(Duration::from_secs(2 * 60));
        assert_eq!(token(&f.slot.get(TEN_MIN, None).await.unwrap()), "tok-2");
    }

    #[tokio::test]
    async fn while_failing_the_cache_serves_and_the_upstream_is_spared() {
        let f = fixture(HOUR, Duration::ZERO);
        f.slot.get(TEN_MIN, None).await.unwrap();
        f.fail.store(true, Ordering::SeqCst);
        f.clock.advance(Duration::from_secs(55 * 60));
        for _ in 0..20 {
            assert_eq!(token(&f.slot.get(TEN_MIN, None).await.unwrap()), "tok-1");
        }
        assert_eq!(
            f.calls.load(Ordering::SeqCst),
            2,
            "retried without backing off"
        );
        let status = f.slot.status();
        assert_eq!(status.state, SourceState::Failing);
        assert_eq!(status.last_error.as_deref(), Some("HTTP 500"));
        // Expired: nothing is served, the error is.
        f.clock.advance(Duration::from_secs(10 * 60));
        let err = f.slot.get(TEN_MIN, None).await.unwrap_err();
        assert!(err.to_string().contains("HTTP 500"), "{err}");
    }

    #[tokio::test]
    async fn the_background_task_refreshes_before_anyone_waits() {
        let f = fixture(HOUR, Duration::ZERO);
        let task = tokio::spawn(f.slot.clone().keep_fresh());
        f.slot.get(TEN_MIN, None).await.unwrap();
        f.clock.advance(Duration::from_secs(51 * 60));
        for _ in 0..100 {
            if f.calls.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(f.calls.load(Ordering::SeqCst), 2);
        assert_eq!(token(&f.slot.get(TEN_MIN, None).await.unwrap()), "tok-2");
        task.abort();
    }

    #[tokio::test]
    async fn a_caller_reasking_at_once_forces_one_refresh() {
        let f = fixture(HOUR, Duration::ZERO);
        let caller = Caller {
            id: "claude@1".into(),
            cache_ttl_ms: 300_000,
        };
        assert_eq!(
            token(&f.slot.get(TEN_MIN, Some(&caller)).await.unwrap()),
            "tok-1"
        );
        assert_eq!(
            token(&f.slot.get(TEN_MIN, Some(&caller)).await.unwrap()),
            "tok-2"
        );
        assert_eq!(
            token(&f.slot.get(TEN_MIN, Some(&caller)).await.unwrap()),
            "tok-2"
        );
        f.clock.advance(policy::FORCED_REFRESH_INTERVAL);
        assert_eq!(
            token(&f.slot.get(TEN_MIN, Some(&caller)).await.unwrap()),
            "tok-3"
        );
        // Another caller's first ask is routine.
        let other = Caller {
            id: "claude@2".into(),
            ..caller
        };
        assert_eq!(
            token(&f.slot.get(TEN_MIN, Some(&other)).await.unwrap()),
            "tok-3"
        );
        assert_eq!(f.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn requests_refused_together_all_get_the_one_forced_refresh() {
        let f = fixture(HOUR, Duration::from_millis(100));
        let given = f.slot.get(TEN_MIN, None).await.unwrap();
        // Twenty requests the upstream refused at once: one refresh, and all retry with it.
        let refused = (0..20).map(|_| {
            let (slot, given) = (f.slot.clone(), given.clone());
            tokio::spawn(async move { slot.rejected(&given).await })
        });
        for fresh in futures_util::future::join_all(refused).await {
            let fresh = fresh.unwrap().expect("a new credential to retry with");
            assert_eq!(token(&fresh), "tok-2");
        }
        assert_eq!(f.calls.load(Ordering::SeqCst), 2);
        // Refused again at once: nothing better, and no refresh within the interval.
        let again = f.slot.get(TEN_MIN, None).await.unwrap();
        assert!(f.slot.rejected(&again).await.is_none());
        assert_eq!(f.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refusal_does_not_cut_a_failing_sources_backoff_short() {
        let f = fixture(HOUR, Duration::ZERO);
        let given = f.slot.get(TEN_MIN, None).await.unwrap();
        f.fail.store(true, Ordering::SeqCst);
        assert!(f.slot.refresh().await.is_err());
        assert_eq!(f.calls.load(Ordering::SeqCst), 2);
        assert!(f.slot.rejected(&given).await.is_none());
        assert_eq!(
            f.calls.load(Ordering::SeqCst),
            2,
            "called during the backoff"
        );
    }
}
