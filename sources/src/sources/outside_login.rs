//! Waiting for a login another tool does (gcloud's ADC login, `aws login`, `az login`): the
//! source has shown the person the command, and the login's outcome is the first credential
//! it can fetch once the tool left something new behind. One loop and one pace for every tool.
//!
//! The tool's files are looked at every [`LOOK`]; a new version of one is tried at once. Once
//! one was tried, the fetch is tried again every [`RETRY`] until the login ends (a network
//! hiccup, a permission still spreading, must not leave the person waiting for a login they
//! finished). A version already there when the login began is not tried: it is what failed.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::{Fetched, SourceError};
use crate::clock::Clock;

/// How often the tool's files are looked at (a `stat` each).
pub const LOOK: Duration = Duration::from_millis(500);

/// How often the fetch is tried again after a try, without a new version.
pub const RETRY: Duration = Duration::from_secs(2);

/// What tells a file's versions apart without reading it: its modification time and size.
type Fingerprint = Option<(SystemTime, u64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The files a login tool leaves behind, and what they were at the last look.
pub struct Watched {
    files: Vec<PathBuf>,
    seen: Vec<Fingerprint>,
    /// Whether the tool may keep its state somewhere else than these files, so that none of
    /// them being there says nothing: then the fetch is tried every [`RETRY`] from the start.
    maybe_elsewhere: bool,
}

impl Watched {
    /// Files the tool writes when the login succeeds.
    pub fn files(files: Vec<PathBuf>) -> Self {
        let seen = files.iter().map(|f| fingerprint(f)).collect();
        Watched {
            files,
            seen,
            maybe_elsewhere: false,
        }
    }

    /// Files the tool writes where it keeps its state by default; it may keep it elsewhere.
    pub fn files_or_elsewhere(files: Vec<PathBuf>) -> Self {
        Watched {
            maybe_elsewhere: true,
            ..Watched::files(files)
        }
    }

    /// Whether a file changed since the last look (a file that went away is no new version).
    fn new_version(&mut self) -> bool {
        let now: Vec<Fingerprint> = self.files.iter().map(|f| fingerprint(f)).collect();
        let new = now
            .iter()
            .zip(&self.seen)
            .any(|(now, seen)| now.is_some() && now != seen);
        self.seen = now;
        new
    }

    fn all_absent(&self) -> bool {
        self.seen.iter().all(Option::is_none)
    }
}

/// Waits until the tool left something new behind and `fetch` yields a credential, or until
/// `deadline` on the daemon's clock, when the login ends unfinished: `unfinished` says so.
pub async fn wait<F, Fut>(
    clock: &Clock,
    deadline: SystemTime,
    unfinished: &str,
    mut watched: Watched,
    mut fetch: F,
) -> Result<Fetched, SourceError>
where
    F: FnMut(SystemTime) -> Fut,
    Fut: Future<Output = Result<Fetched, SourceError>>,
{
    let mut last_try: Option<Instant> = None;
    loop {
        tokio::time::sleep(LOOK).await;
        let now = clock.now();
        if now >= deadline {
            return Err(SourceError::NeedsLogin(format!(
                "{unfinished} before the login timed out"
            )));
        }
        let new = watched.new_version();
        let retry_due = last_try.map_or(watched.maybe_elsewhere && watched.all_absent(), |t| {
            t.elapsed() >= RETRY
        });
        if !(new || retry_due) {
            continue;
        }
        last_try = Some(Instant::now());
        if let Ok(fetched) = fetch(now).await {
            return Ok(fetched);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_there_at_the_start_or_gone_is_no_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "old").unwrap();
        let mut watched = Watched::files(vec![a.clone(), b.clone()]);
        assert!(!watched.new_version(), "the file that failed");
        std::fs::write(&b, "new one").unwrap();
        assert!(watched.new_version());
        assert!(!watched.new_version(), "seen");
        std::fs::remove_file(&b).unwrap();
        assert!(!watched.new_version(), "gone");
        assert!(!watched.all_absent());
        std::fs::remove_file(&a).unwrap();
        watched.new_version();
        assert!(watched.all_absent());
    }
}
