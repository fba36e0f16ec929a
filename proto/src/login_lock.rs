//! Lets one party at a time play a part of a login that concurrent callers share: run a login
//! tool with a given command and environment (several sources may share one gcloud or az
//! login), or open a device login's page in the browser. `credd login` takes it, and so does
//! the daemon when it opens a page for a caller inside a forward: a local caller and a
//! forwarded one waiting on the same login open its page once between them.
//!
//! A lock file beside the socket, named after what it guards, in which a tool's runner notes
//! its success for those who waited.

use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct LoginLock {
    file: File,
    path: PathBuf,
}

impl LoginLock {
    /// The lock for `key` beside `socket`; `None` when no lock file can be had (the part is
    /// then played regardless).
    pub fn open(socket: &Path, key: impl Hash) -> Option<LoginLock> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let name = format!(".login-{:016x}.lock", hasher.finish());
        let path = crate::paths::sibling(socket, &name);
        let mut options = std::fs::OpenOptions::new();
        options.create(true).write(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(&path).ok()?;
        Some(LoginLock { file, path })
    }

    /// Takes the lock if it is free, clearing the last runner's note.
    pub fn take(&self) -> bool {
        if self.file.try_lock().is_err() {
            return false;
        }
        let _ = self.file.set_len(0);
        true
    }

    /// Removes the lock file, for locks whose key is used once; the holder's to call.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    pub fn succeeded(&self) {
        let _ = (&self.file).write_all(SUCCEEDED);
    }

    /// Waits until the runner lets go (finished, or died), or `deadline` passes: whether its
    /// tool succeeded. Lets go again at once, for the others waiting.
    pub fn wait(&self, deadline: Instant) -> Option<bool> {
        while self.file.try_lock().is_err() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let succeeded = std::fs::read(&self.path).is_ok_and(|note| note == SUCCEEDED);
        let _ = self.file.unlock();
        Some(succeeded)
    }
}

const SUCCEEDED: &[u8] = b"succeeded\n";
