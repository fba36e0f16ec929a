//! Where the daemon's socket lives, and the private directory around it.
//!
//! Both sides must agree on the path without talking, so it is decided here: `CREDD_SOCKET` if
//! set, else `credd/credd.sock` in the per-user runtime directory (`$XDG_RUNTIME_DIR`), else
//! `credd-<uid>/credd.sock` in the temporary directory (per-user `$TMPDIR` on macOS).

use std::path::{Path, PathBuf};

/// Environment variable that overrides the socket path.
pub const SOCKET_ENV: &str = "CREDD_SOCKET";

pub fn socket_path() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    default_socket_dir().join("credd.sock")
}

#[cfg(unix)]
fn default_socket_dir() -> PathBuf {
    match directories::BaseDirs::new().and_then(|d| d.runtime_dir().map(Path::to_path_buf)) {
        Some(runtime) => runtime.join("credd"),
        // SAFETY: getuid has no preconditions and cannot fail.
        None => std::env::temp_dir().join(format!("credd-{}", unsafe { libc::getuid() })),
    }
}

#[cfg(not(unix))]
fn default_socket_dir() -> PathBuf {
    std::env::temp_dir().join("credd")
}

/// Files that live beside the socket: the daemon's lock, the start-up and login locks, and the
/// autostarted daemon's log.
pub fn sibling(socket: &Path, suffix: &str) -> PathBuf {
    let mut name = socket.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    socket.with_file_name(name)
}

#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} belongs to uid {owner}, not to this user (uid {me}); refusing to use it")]
    WrongOwner { path: PathBuf, owner: u32, me: u32 },
    #[error("{path} is open to other users (mode {mode:o}); run `chmod 700 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
}

/// Creates the directory that holds the socket (mode 0700) and checks that nobody else owns it
/// or can reach into it. An existing directory is accepted only if it is already private.
#[cfg(unix)]
pub fn ensure_private_dir(dir: &Path) -> Result<(), PrivateDirError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};

    let create = |source| PrivateDirError::Create {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(create(e)),
    }
    let meta = std::fs::metadata(dir).map_err(create)?;
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
    if meta.uid() != me {
        return Err(PrivateDirError::WrongOwner {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrivateDirError::TooOpen {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn ensure_private_dir(dir: &Path) -> Result<(), PrivateDirError> {
    std::fs::create_dir_all(dir).map_err(|source| PrivateDirError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_directory() {
        let base = std::env::temp_dir().join(format!("credd-proto-test-{}", std::process::id()));
        let dir = base.join("a/b");
        ensure_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            ensure_private_dir(&dir),
            Err(PrivateDirError::TooOpen { .. })
        ));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn sibling_files_sit_beside_the_socket() {
        assert_eq!(
            sibling(Path::new("/run/u/credd/credd.sock"), ".lock"),
            PathBuf::from("/run/u/credd/credd.sock.lock")
        );
    }
}
