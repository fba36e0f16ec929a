//! The daemon's idea of "now": wall-clock time, plus an offset tests can move.
//!
//! Refresh deadlines are wall-clock instants, never monotonic timers, so a laptop that wakes from
//! suspend sees at once that a deadline has passed. Sleepers wait on [`Clock::sleep_until`], which
//! wakes early when the clock jumps and re-checks the wall clock at least every
//! [`MAX_SLEEP`] (monotonic clocks stand still during suspend).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// The longest a sleeper trusts the monotonic timer before it looks at the wall clock again.
pub const MAX_SLEEP: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Clock {
    /// Fixed start for unit tests; `None` means the system clock.
    base: Option<SystemTime>,
    offset_ms: AtomicI64,
    jumped: Notify,
    adjustable: bool,
}

impl Clock {
    pub fn system() -> Self {
        Clock {
            base: None,
            offset_ms: AtomicI64::new(0),
            jumped: Notify::new(),
            adjustable: false,
        }
    }

    /// The system clock that tests may move forward (`CREDD_TEST_CLOCK=1`).
    pub fn system_adjustable() -> Self {
        Clock {
            adjustable: true,
            ..Clock::system()
        }
    }

    /// A clock that stands still at `start` until advanced, for unit tests (the daemon's
    /// too, which is why it is not behind `cfg(test)`).
    pub fn manual(start: SystemTime) -> Self {
        Clock {
            base: Some(start),
            adjustable: true,
            ..Clock::system()
        }
    }

    pub fn is_adjustable(&self) -> bool {
        self.adjustable
    }

    pub fn now(&self) -> SystemTime {
        let base = self.base.unwrap_or_else(SystemTime::now);
        base + Duration::from_millis(self.offset_ms.load(Ordering::Relaxed).max(0) as u64)
    }

    pub fn now_unix(&self) -> i64 {
        unix_secs(self.now())
    }

    /// Moves the clock forward and wakes every sleeper so it re-checks its deadline.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
        self.jumped.notify_waiters();
    }

    /// Sleeps until the wall-clock `deadline`, or until the clock jumps, or for at most
    /// [`MAX_SLEEP`]; the caller loops and re-checks its own condition.
    pub async fn sleep_until(&self, deadline: SystemTime) {
        let wait = deadline
            .duration_since(self.now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_SLEEP);
        // A manual clock only moves when advanced; poll it briefly in case a jump came just
        // before this sleeper registered.
        let wait = if self.base.is_some() {
            wait.min(Duration::from_millis(20))
        } else {
            wait
        };
        let jumped = self.jumped.notified();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = jumped => {}
        }
    }
}

/// The real time, for what an upstream checks against its own clock (a signature's date, an
/// assertion's `iat`, an HTTP date in `Retry-After`): never moved by a test's offset. Anything
/// compared with credd's deadlines and expiries takes [`Clock::now`] instead.
pub fn wall() -> SystemTime {
    SystemTime::now()
}

pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

pub fn from_unix_secs(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}
