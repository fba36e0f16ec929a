//! Where the daemon's socket lives, and the private directory around it.
//!
//! Both sides must agree on the path without talking, so it is decided here: `CREDD_SOCKET` if
//! set, else `credd/credd.sock` in the per-user runtime directory (`$XDG_RUNTIME_DIR`), else
//! `credd/credd.sock` in the user's state directory (`~/.local/state`), and only when that path
//! is too long for a socket, `credd-<uid>/credd.sock` in the temporary directory (per-user
//! `$TMPDIR` on macOS).
//!
//! A directory in a shared place such as `/tmp` can be made first by another user, who then
//! answers in credd's name. So both sides check the directory before they use it, without
//! following symbolic links: it must belong to this user and be closed to everyone else
//! ([`check_private_dir`]).

use std::path::{Path, PathBuf};

/// Environment variable that overrides the socket path.
pub const SOCKET_ENV: &str = "CREDD_SOCKET";

/// The longest socket path every Unix accepts (`sun_path` is 104 bytes on macOS, 108 on Linux,
/// both with the terminating NUL).
const MAX_SOCKET_PATH: usize = 103;

pub fn socket_path() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    default_socket_dir().join("credd.sock")
}

#[cfg(unix)]
fn default_socket_dir() -> PathBuf {
    let dirs = directories::BaseDirs::new();
    if let Some(runtime) = dirs.as_ref().and_then(|d| d.runtime_dir()) {
        return runtime.join("credd");
    }
    // Without XDG_RUNTIME_DIR (a cron job, a helper run with a cleared environment), the
    // directory systemd-logind makes for it, when it is this user's alone.
    if let Some(runtime) = login_runtime_dir() {
        return runtime.join("credd");
    }

    // The user's own state directory, not a shared one, when its path fits in a socket address.
    if let Some(state) = dirs.as_ref().and_then(|d| d.state_dir())
        && state.is_absolute()
        && state.join("credd/credd.sock").as_os_str().len() <= MAX_SOCKET_PATH
    {
        return state.join("credd");
    }
    std::env::temp_dir().join(format!("credd-{}", effective_uid()))
}

/// `/run/user/UID`, when it is a directory of this user's that no one else may enter.
#[cfg(target_os = "linux")]
fn login_runtime_dir() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let dir = PathBuf::from(format!("/run/user/{}", effective_uid()));
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == effective_uid() && meta.mode() & 0o077 == 0).then_some(dir)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn login_runtime_dir() -> Option<PathBuf> {
    None
}

#[cfg(not(unix))]
fn default_socket_dir() -> PathBuf {
    std::env::temp_dir().join("credd")
}

/// credd's own directory for the files it keeps for this user: endpoint secrets, and the
/// settings files `credd setup` replaced. Never a shared path: this user's state directory
/// (`~/.local/state/credd`), else a per-user one in the temporary directory, checked private
/// when a file is written there.
pub fn state_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "credd")
        .map(|d| {
            d.state_dir()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| d.data_local_dir().to_path_buf())
        })
        .unwrap_or_else(|| std::env::temp_dir().join(format!("credd-state-{}", effective_uid())))
}

/// The user this process acts as.
#[cfg(unix)]
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid of the process at the other end of a connected Unix socket, as the kernel recorded
/// it when the connection was made (`SO_PEERCRED`; `getpeereid` elsewhere). Unlike the
/// socket library's own lookup, it holds when that process is outside this one's PID
/// namespace (a container's host), where the kernel gives no pid.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn peer_uid(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: ucred is plain data; zeroed is a valid value of it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the buffer and its length describe `cred`, which outlives the call.
    let got = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if got != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
pub fn peer_uid(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd as _;
    let (mut uid, mut gid) = (0, 0);
    // SAFETY: both out-pointers are valid for the call.
    if unsafe { libc::getpeereid(fd.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(uid)
}

#[cfg(unix)]
fn effective_gid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Files that live beside the socket: the daemon's lock, the start-up and login locks, and the
/// autostarted daemon's log.
pub fn sibling(socket: &Path, suffix: &str) -> PathBuf {
    let mut name = socket.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    socket.with_file_name(name)
}

/// The proxy's socket (what Claude Code's `ANTHROPIC_UNIX_SOCKET` names): beside the main
/// socket, in the same private directory.
pub fn proxy_socket(socket: &Path) -> PathBuf {
    sibling(socket, ".proxy")
}

#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot inspect {path}: {source}")]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} belongs to uid {owner}, not to this user (uid {me}): another user may be posing as credd-daemon, so credd will not use it; remove it (as root or uid {owner}) or set CREDD_SOCKET to a path in a directory of your own"
    )]
    WrongOwner { path: PathBuf, owner: u32, me: u32 },
    #[error("{path} is open to other users (mode {mode:o}); run `chmod 700 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "{ancestor}, above {path}, can be changed by other users (mode {mode:o}, no sticky bit), so they could swap what is below it; credd will not use it: set CREDD_SOCKET to a path under a directory only you can change"
    )]
    OpenAncestor {
        path: PathBuf,
        ancestor: PathBuf,
        mode: u32,
    },
    #[error("CREDD_SOCKET must be an absolute path, not {path}")]
    RelativeSocket { path: PathBuf },
    #[error(
        "{path} is a symbolic link or not a directory; credd uses only a real directory of its own there: remove it, or set CREDD_SOCKET elsewhere"
    )]
    NotADirectory { path: PathBuf },
}

impl PrivateDirError {
    /// Whether the directory is simply not there yet (nothing to distrust, nothing listening).
    pub fn is_missing(&self) -> bool {
        matches!(self, PrivateDirError::Inspect { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The directory that holds `socket`, which must be named by an absolute path (a relative one
/// would mean another socket, lock and log in every directory a caller runs in).
pub fn socket_dir(socket: &Path) -> Result<&Path, PrivateDirError> {
    match socket.parent() {
        Some(dir) if socket.is_absolute() => Ok(dir),
        _ => Err(PrivateDirError::RelativeSocket {
            path: socket.to_path_buf(),
        }),
    }
}

/// Creates the directory that holds the socket (mode 0700), then checks it as
/// [`check_private_dir`] does. An existing directory is accepted only if it is already private.
#[cfg(unix)]
pub fn ensure_private_dir(dir: &Path) -> Result<(), PrivateDirError> {
    use std::os::unix::fs::DirBuilderExt;

    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(PrivateDirError::Create {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    check_private_dir(dir)
}

/// Checks, without following a symbolic link, that `dir` is a directory owned by this user
/// (the effective uid) and closed to group and others, so nobody else can have put a socket or
/// a file in it; and that no directory above it lets others rename what is in it (writable by
/// others, or by a group not the user's own, without the sticky bit that `/tmp` has).
#[cfg(unix)]
pub fn check_private_dir(dir: &Path) -> Result<(), PrivateDirError> {
    use std::os::unix::fs::MetadataExt;

    let meta = std::fs::symlink_metadata(dir).map_err(|source| PrivateDirError::Inspect {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.to_path_buf();
    let me = effective_uid();
    if meta.uid() != me {
        return Err(PrivateDirError::WrongOwner {
            path,
            owner: meta.uid(),
            me,
        });
    }
    if !meta.file_type().is_dir() {
        return Err(PrivateDirError::NotADirectory { path });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrivateDirError::TooOpen { path, mode });
    }
    check_ancestors(dir)
}

/// Checks that no directory above `dir` lets others rename what is in it (writable by others,
/// or by a group not the user's own, without the sticky bit that `/tmp` has).
#[cfg(unix)]
pub fn check_ancestors(dir: &Path) -> Result<(), PrivateDirError> {
    use std::os::unix::fs::MetadataExt;

    for ancestor in dir
        .ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
    {
        // Links above are followed: /tmp and $TMPDIR are links on macOS.
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        // Group-writable is fine for the user's own group (user private groups, umask 002).
        let others_write =
            mode & 0o002 != 0 || (mode & 0o020 != 0 && meta.gid() != effective_gid());
        if others_write && mode & 0o1000 == 0 {
            return Err(PrivateDirError::OpenAncestor {
                path: dir.to_path_buf(),
                ancestor: ancestor.to_path_buf(),
                mode,
            });
        }
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

#[cfg(not(unix))]
pub fn check_private_dir(_dir: &Path) -> Result<(), PrivateDirError> {
    Ok(())
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
    fn a_symlink_to_a_private_directory_is_refused() {
        let base = tempfile_dir("symlink");
        let real = base.join("real");
        ensure_private_dir(&real).unwrap();
        let link = base.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(
            matches!(
                check_private_dir(&link),
                Err(PrivateDirError::NotADirectory { .. })
            ),
            "{:?}",
            check_private_dir(&link)
        );
        assert!(ensure_private_dir(&link).is_err());
        let missing = check_private_dir(&base.join("none")).unwrap_err();
        assert!(missing.is_missing(), "{missing}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "credd-proto-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_directory_under_one_others_can_change_is_refused() {
        let base = tempfile_dir("ancestor");
        let open = base.join("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let dir = open.join("credd");
        let refused = ensure_private_dir(&dir).unwrap_err();
        assert!(
            matches!(&refused, PrivateDirError::OpenAncestor { ancestor, .. } if *ancestor == open),
            "{refused}"
        );
        // Writable by the user's own group only (user private groups): fine.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o775)).unwrap();
        ensure_private_dir(&dir).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ensure_private_dir(&dir).is_err());
        // The sticky bit (as on /tmp) keeps others from renaming what is not theirs.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert!(socket_dir(Path::new("credd.sock")).is_err());
        assert_eq!(
            socket_dir(Path::new("/run/u/credd/credd.sock")).unwrap(),
            Path::new("/run/u/credd")
        );
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
