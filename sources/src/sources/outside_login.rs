//! Waiting for a login another tool does (gcloud's ADC login, `aws login`, `az login`): the
//! source has shown the person the command, and the login's outcome is the first credential
//! it can fetch once the tool left something new behind. One loop and one pace for every tool.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Fetched, SourceError};
use crate::clock::Clock;

/// How often the tool's files are looked at (a look is a `stat` or a read of a small file).
pub const POLL: Duration = Duration::from_millis(500);

/// Waits until `changed` says the tool left something new and `fetch` then yields a
/// credential, or until `deadline` on the daemon's clock, when the login ends unfinished: `unfinished` says so.
pub async fn wait<C, F, Fut>(
    clock: &Clock,
    deadline: SystemTime,
    unfinished: &str,
    mut changed: C,
    mut fetch: F,
) -> Result<Fetched, SourceError>
where
    C: FnMut() -> bool,
    F: FnMut(SystemTime) -> Fut,
    Fut: Future<Output = Result<Fetched, SourceError>>,
{
    loop {
        tokio::time::sleep(POLL).await;
        let now = clock.now();
        if now >= deadline {
            return Err(SourceError::NeedsLogin(format!(
                "{unfinished} before the login timed out"
            )));
        }
        if changed()
            && let Ok(fetched) = fetch(now).await
        {
            return Ok(fetched);
        }
    }
}

/// What tells a file's versions apart without reading it: its modification time and size.
pub fn fingerprint(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A `changed` for [`wait`]: whether any of `files` differs from when it was made; every
/// look counts as changed when none of them can be looked at (the tool keeps its state
/// elsewhere), so the wait then tries at each look.
pub fn any_changed(files: Vec<std::path::PathBuf>) -> impl FnMut() -> bool {
    let look = move || files.iter().map(|f| fingerprint(f)).collect::<Vec<_>>();
    let mut seen = look();
    move || {
        let now = look();
        let unreadable = now.iter().all(Option::is_none);
        let changed = now != seen;
        seen = now;
        changed || unreadable
    }
}
