//! An endpoint's secret (the container endpoint's token, the managed-identity endpoint's
//! header): what an SDK must send for the endpoint to answer it.
//!
//! It is made anew each time the endpoint takes its port, and written to its 0600 file only
//! then; while the port is held by someone else the file is removed, so an SDK finds no token
//! to send to whoever holds the port, and a secret sent there before is worthless once credd
//! has the port back.
//!
//! The proxy's caller secret is the exception: settings hold it, so it outlives a restart where
//! that is safe (see [`EndpointSecret::stable`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct EndpointSecret {
    file: PathBuf,
    value: Mutex<Option<String>>,
    /// Whether a secret still in its file is taken up again when the endpoint takes its port.
    stable: bool,
}

impl EndpointSecret {
    /// A secret kept in `file`; none is valid until [`EndpointSecret::rotate`].
    pub fn new(file: PathBuf) -> Self {
        EndpointSecret {
            file,
            value: Mutex::new(None),
            stable: false,
        }
    }

    /// The same, for a secret that settings hold (the proxy's, in Claude Code's
    /// `ANTHROPIC_CUSTOM_HEADERS`): its file outlives the endpoint (a clean stop, a config
    /// edit), and one still there when the endpoint takes its port is taken up again, so a
    /// restart does not break those settings.
    ///
    /// That is safe only where the endpoint can tell who connects ([`OWNERS_KNOWN`]): whoever
    /// held the port while credd did not may have collected the secret from a caller, and only
    /// the peer-uid check keeps them out afterwards. Elsewhere it is made anew on every bind.
    /// It is made anew too when the file is gone, which it is after another user held the
    /// port while credd was waiting for it (see [`EndpointSecret::withdraw`]).
    pub fn stable(file: PathBuf) -> Self {
        EndpointSecret {
            stable: true,
            ..Self::new(file)
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Makes a new secret and writes it to the file; the old one is refused from now on. A
    /// stable secret still in its file (this user's own, private) is taken up instead.
    pub fn rotate(&self) -> std::io::Result<()> {
        if self.stable
            && OWNERS_KNOWN
            && let Some(kept) = read_private(&self.file)
                .map(|text| text.trim().to_string())
                .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            *self.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(kept);
            return Ok(());
        }
        let secret = crate::random::secret();
        crate::files::write_private(&self.file, secret.as_bytes(), true)?;
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(secret);
        Ok(())
    }

    /// Refuses every secret and removes the file (the endpoint does not hold its port).
    pub fn withdraw(&self) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = std::fs::remove_file(&self.file);
    }

    /// What a stopping endpoint does with its secret: it is withdrawn, if this endpoint made
    /// it (an endpoint that never had its port leaves the file alone: it may be another
    /// daemon's). A secret that outlives restarts stays, file and all: the next endpoint takes
    /// it up, and connections still open to this one go on being served.
    pub fn release(&self) {
        if self.outlives_restarts() {
            return;
        }
        let held = self
            .value
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if held {
            self.withdraw();
        }
    }

    /// Whether a secret in the file is taken up again by the next endpoint.
    pub fn outlives_restarts(&self) -> bool {
        self.stable && OWNERS_KNOWN
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

/// Whether the owner of a connection to an endpoint can be told (the peer-uid check runs).
pub const OWNERS_KNOWN: bool = cfg!(target_os = "linux");

/// A file's text, when it is a regular file of this user's that no one else can read or write
/// (never through a symbolic link), in a directory no one else could have put it in.
#[cfg(unix)]
fn read_private(path: &Path) -> Option<String> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    credd_proto::paths::check_private_dir(path.parent()?).ok()?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file()
        || meta.uid() != credd_proto::paths::effective_uid()
        || meta.mode() & 0o077 != 0
    {
        return None;
    }
    let mut text = String::new();
    file.take(256).read_to_string(&mut text).ok()?;
    Some(text)
}

#[cfg(not(unix))]
fn read_private(_path: &Path) -> Option<String> {
    None
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

    #[test]
    #[cfg(target_os = "linux")]
    fn a_stable_secret_survives_a_restart_but_not_a_withdrawal() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state/p.secret");
        let first = EndpointSecret::stable(file.clone());
        first.rotate().unwrap();
        let kept = std::fs::read_to_string(&file).unwrap();
        // The next daemon takes it up.
        first.release();
        assert!(
            first.matches(&kept),
            "connections still open go on being served"
        );
        assert!(
            file.exists(),
            "a clean stop keeps the file for the next daemon"
        );
        let next = EndpointSecret::stable(file.clone());
        next.rotate().unwrap();
        assert!(next.matches(&kept));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), kept);
        // After another user held the port, it is made anew.
        next.withdraw();
        next.rotate().unwrap();
        assert!(!next.matches(&kept));
        // A file others could read or write is never taken up.
        let fresh = std::fs::read_to_string(&file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let wary = EndpointSecret::stable(file.clone());
        wary.rotate().unwrap();
        assert!(!wary.matches(&fresh));
        // Nor one in a directory others can write to (they could have put it there).
        let placed = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(read_private(&file).is_none());
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(read_private(&file).as_deref(), Some(placed.as_str()));
    }
}
