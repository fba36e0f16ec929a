//! An endpoint's secret (the container endpoint's token, the managed-identity endpoint's
//! header): what an SDK must send for the endpoint to answer it.
//!
//! It is made anew each time the endpoint takes its port, and written to its 0600 file only
//! then; while the port is held by someone else the file is removed, so an SDK finds no token
//! to send to whoever holds the port, and a secret sent there before is worthless once credd
//! has the port back.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct EndpointSecret {
    file: PathBuf,
    value: Mutex<Option<String>>,
}

impl EndpointSecret {
    /// A secret kept in `file`; none is valid until [`EndpointSecret::rotate`].
    pub fn new(file: PathBuf) -> Self {
        EndpointSecret {
            file,
            value: Mutex::new(None),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Makes a new secret and writes it to the file; the old one is refused from now on.
    pub fn rotate(&self) -> std::io::Result<()> {
        let secret = super::random_secret();
        crate::files::write_private(&self.file, secret.as_bytes(), true)?;
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(secret);
        Ok(())
    }

    /// Refuses every secret and removes the file (the endpoint does not hold its port).
    pub fn withdraw(&self) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = std::fs::remove_file(&self.file);
    }

    /// [`EndpointSecret::withdraw`], if this endpoint made a secret (an endpoint that never had
    /// its port leaves the file alone: it may be another daemon's).
    pub fn release(&self) {
        let held = self
            .value
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if held {
            self.withdraw();
        }
    }

    /// Whether `given` is the current secret (compared in constant time).
    pub fn matches(&self, given: &str) -> bool {
        self.value
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            .is_some_and(|secret| super::secret_matches(given, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_secret_refuses_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let secret = EndpointSecret::new(dir.path().join("state/e.token"));
        assert!(
            !secret.matches(""),
            "nothing is valid before the first rotation"
        );
        secret.rotate().unwrap();
        let first = std::fs::read_to_string(secret.file()).unwrap();
        assert!(secret.matches(&first));
        secret.rotate().unwrap();
        let second = std::fs::read_to_string(secret.file()).unwrap();
        assert_ne!(first, second);
        assert!(!secret.matches(&first));
        assert!(secret.matches(&second));
        secret.withdraw();
        assert!(!secret.matches(&second));
        assert!(!secret.file().exists());
        // Releasing a secret never made leaves someone else's file alone.
        std::fs::write(secret.file(), "another daemon's").unwrap();
        secret.release();
        assert!(secret.file().exists());
    }
}
