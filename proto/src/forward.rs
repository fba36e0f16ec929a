//! Forwards: a scoped view of the daemon on sockets of their own, which a container mounts or
//! an SSH connection carries to another machine. Both sides agree here on where a forward's
//! sockets live, what a forwarded client is told by its environment, and how that client
//! decides it may trust a socket whose directory a mount or sshd made.
//!
//! On the daemon's machine a forward `NAME` listens in `forwards/NAME/` beside the main
//! socket: `credd.sock` (the protocol, scoped to the forward's sources) and `credd.sock.proxy`
//! (the proxy, the same). Inside a container that directory is mounted at [`CONTAINER_DIR`];
//! on a remote it is carried to `~/.credd/forward/` by `credd ssh`.

use std::path::{Path, PathBuf};

use crate::paths::PrivateDirError;

/// Set in a forward's environment to `NAME@HOST`: the client is talking to the daemon of
/// another machine (or of the container's host), which it must never try to start or stop.
pub const FORWARD_ENV: &str = "CREDD_FORWARD";

/// Set by `credd container-args` to the uid of the host's user: inside a rootful container,
/// the owner of the mounted directory, which a client there may trust besides itself and root.
pub const FORWARD_UID_ENV: &str = "CREDD_FORWARD_UID";

/// A forward's protocol socket, in its directory.
pub const SOCKET_FILE: &str = "credd.sock";
/// A forward's proxy socket, in its directory.
pub const PROXY_SOCKET_FILE: &str = "credd.sock.proxy";
/// An AWS config file, in the forward's directory, naming a `credential_process` profile for
/// each `aws` source it serves (no secret: a command line and a region).
pub const AWS_CONFIG_FILE: &str = "aws-config";

/// Where `credd container-args` and `credd setup devcontainer` mount a forward's directory.
pub const CONTAINER_DIR: &str = "/run/credd";

/// A forward's name and the machine whose daemon serves it, as `CREDD_FORWARD` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub name: String,
    pub host: String,
}

impl Forwarded {
    /// The forward this process was started in, if any.
    pub fn from_env() -> Option<Forwarded> {
        let value = std::env::var(FORWARD_ENV).ok().filter(|v| !v.is_empty())?;
        Some(Forwarded::parse(&value))
    }

    pub fn parse(value: &str) -> Forwarded {
        match value.split_once('@') {
            Some((name, host)) => Forwarded {
                name: name.to_string(),
                host: host.to_string(),
            },
            None => Forwarded {
                name: value.to_string(),
                host: "the host".to_string(),
            },
        }
    }

    pub fn env_value(name: &str, host: &str) -> String {
        format!("{name}@{host}")
    }

    /// The one line a client says when the forward's socket does not answer.
    pub fn gone(&self) -> String {
        format!(
            "the credd forward from {} (`{}`) is gone; reconnect (`credd ssh`, or restart the container) and retry",
            self.host, self.name
        )
    }
}

/// Sources' endpoints as a forward's side sees them: the proxy socket the other side names
/// replaced by this side's, `proxy_socket` (the daemon puts the forward's own for the host's,
/// the client inside its own for that).
pub fn localize(sources: &mut [crate::SourceStatus], proxy_socket: &str) {
    for endpoint in sources.iter_mut().flat_map(|s| &mut s.endpoints) {
        if let Some(host_socket) = endpoint.socket.replace(proxy_socket.to_string()) {
            for line in &mut endpoint.env {
                *line = line.replace(&host_socket, proxy_socket);
            }
        }
    }
}

/// The directory of forward `name` of the daemon serving `socket`.
pub fn dir(socket: &Path, name: &str) -> PathBuf {
    socket
        .parent()
        .unwrap_or(Path::new("/"))
        .join("forwards")
        .join(name)
}

/// This machine's name, for `CREDD_FORWARD`: what a forwarded client names when it is gone.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "the host".to_string())
}

/// Checks, for a client inside a forward, the directory its socket is in, and says who owns
/// it. A mount or sshd made it, so it may belong to another uid than the client's: root's (a
/// rootless container's host user, seen from inside), or the host user's as a rootful container
/// sees it, which [`FORWARD_UID_ENV`] names. Nobody else's: a directory another user made (in
/// `/tmp`, say) is refused, and so is one its owner's group or others can change, or under a
/// directory others can rename things in. The client then requires the server to run as that
/// owner or as itself.
#[cfg(unix)]
pub fn check_dir(dir: &Path) -> Result<u32, PrivateDirError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).map_err(|source| PrivateDirError::Inspect {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_dir() {
        return Err(PrivateDirError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let me = crate::paths::effective_uid();
    let host_user = std::env::var(FORWARD_UID_ENV)
        .ok()
        .and_then(|uid| uid.trim().parse::<u32>().ok());
    if meta.uid() != me && meta.uid() != 0 && Some(meta.uid()) != host_user {
        return Err(PrivateDirError::WrongOwner {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(PrivateDirError::TooOpen {
            path: dir.to_path_buf(),
            mode,
        });
    }
    crate::paths::check_ancestors(dir)?;
    Ok(meta.uid())
}

#[cfg(not(unix))]
pub fn check_dir(_dir: &Path) -> Result<u32, PrivateDirError> {
    Ok(0)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_environment_names_the_forward_and_its_host() {
        assert_eq!(
            Forwarded::parse("dev@laptop"),
            Forwarded {
                name: "dev".into(),
                host: "laptop".into()
            }
        );
        assert!(
            Forwarded::parse("dev@laptop")
                .gone()
                .contains("from laptop")
        );
        assert_eq!(Forwarded::parse("dev").host, "the host");
    }

    #[test]
    fn a_forward_directory_others_can_change_is_refused() {
        let base = std::env::temp_dir().join(format!("credd-forward-test-{}", std::process::id()));
        let dir = base.join("fwd");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(check_dir(&dir).unwrap(), crate::paths::effective_uid());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o733)).unwrap();
        assert!(matches!(
            check_dir(&dir),
            Err(PrivateDirError::TooOpen { .. })
        ));
        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(
            check_dir(&link),
            Err(PrivateDirError::NotADirectory { .. })
        ));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
