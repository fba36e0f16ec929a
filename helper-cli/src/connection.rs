//! Reaching the daemon: connect, or start `credd-daemon` and wait for it.
//!
//! Many callers may find no daemon at the same moment (a burst of parallel sessions). They queue
//! on a start-up lock beside the socket; the first starts the daemon, the rest find it answering
//! once they get the lock. `CREDD_NO_AUTOSTART=1` turns starting off. A daemon of an older
//! protocol version is replaced the same way (see [`crate::upgrade`]).
//!
//! Inside a forward (`CREDD_FORWARD`, set by `credd ssh` and `credd container-args`) the daemon
//! is another machine's, or the container's host's: nothing is ever started, and a socket
//! nobody answers on is the forward gone.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use credd_proto::frame::{self, FrameError};
use credd_proto::paths;
use credd_proto::{
    CREDD_VERSION, DAEMON_EXIT_ALREADY_RUNNING, ErrorKind, PROTOCOL_VERSION, Request, Response,
};
use interprocess::local_socket::{GenericFilePath, Stream, prelude::*};

/// How long a started daemon may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum ConnectError {
    NotRunning {
        socket: PathBuf,
    },
    /// What answers (or would answer) on the socket is not this user's own: its directory is
    /// another user's or open to others, or the server runs as another user. Nothing was sent.
    Untrusted {
        reason: String,
    },
    StartFailed {
        message: String,
    },
    /// The forward this client runs in does not answer.
    Gone {
        forwarded: credd_proto::forward::Forwarded,
    },
    Io {
        socket: PathBuf,
        error: io::Error,
    },
    Protocol {
        socket: PathBuf,
        error: FrameError,
    },
    /// The daemon speaks protocol `theirs`, and was not replaced; `advice` says what to do.
    Version {
        socket: PathBuf,
        theirs: u32,
        advice: String,
    },
}

impl ConnectError {
    /// What the client's exit says of this failure: a version mismatch has its own meaning.
    pub fn exit(&self) -> credd_proto::exit::Exit {
        match self {
            ConnectError::Version { .. } => ErrorKind::UnsupportedVersion.exit(),
            _ => credd_proto::exit::Exit::Unreachable,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::NotRunning { socket } => write!(
                f,
                "no credd-daemon answers on {} and CREDD_NO_AUTOSTART is set; start `credd-daemon` (or `credd service install`) or unset CREDD_NO_AUTOSTART",
                socket.display()
            ),
            ConnectError::StartFailed { message } => f.write_str(message),
            ConnectError::Gone { forwarded } => f.write_str(&forwarded.gone()),
            ConnectError::Untrusted { reason } => {
                write!(f, "refusing to talk to credd-daemon: {reason}")
            }
            ConnectError::Io { socket, error } => {
                write!(
                    f,
                    "cannot talk to credd-daemon on {}: {error}",
                    socket.display()
                )
            }
            ConnectError::Protocol { socket, error } => write!(
                f,
                "credd-daemon on {} gave an unreadable answer ({error}); run `credd stop` and retry",
                socket.display()
            ),
            ConnectError::Version {
                socket,
                theirs,
                advice,
            } => write!(
                f,
                "credd-daemon on {} speaks protocol {theirs}, but this credd {CREDD_VERSION} speaks protocol {PROTOCOL_VERSION}: {advice}",
                socket.display()
            ),
        }
    }
}

/// Sends one request to the daemon (starting it if allowed, and replacing an older one) and
/// returns its answer.
pub fn request(request: Request, autostart: bool) -> Result<Response, ConnectError> {
    use crate::upgrade::{self, Kept};
    let socket = paths::socket_path();
    let forwarded = credd_proto::forward::Forwarded::from_env();
    let autostart = autostart && autostart_allowed() && forwarded.is_none();
    let mut stream = match (connect(&socket, autostart), &forwarded) {
        (Err(ConnectError::NotRunning { .. }), Some(forwarded)) => {
            return Err(ConnectError::Gone {
                forwarded: forwarded.clone(),
            });
        }
        (connected, _) => connected?,
    };
    match exchange(&mut stream, &socket, request.clone()) {
        Ok(Response::Status(mut report)) if let Some(forwarded) = &forwarded => {
            let proxy = paths::proxy_socket(&socket);
            credd_proto::forward::localize(&mut report.sources, &proxy.display().to_string());
            // The daemon keeps the host's paths to itself: name what this side knows.
            report.socket = format!(
                "{} (the forward `{}` from {})",
                socket.display(),
                forwarded.name,
                forwarded.host
            );
            report.config_path = format!("the config of credd on {}", forwarded.host);
            Ok(Response::Status(report))
        }
        Ok(response) => Ok(response),
        Err(Refused { theirs }) if !upgrade::replaceable(theirs) => {
            Err(version_kept(&socket, theirs, Kept::Newer))
        }
        Err(Refused { theirs }) if !autostart => {
            Err(version_kept(&socket, theirs, Kept::NoAutostart))
        }
        Err(Refused { .. }) => {
            upgrade::ask_to_stop(stream);
            ask_successor(&socket, request, autostart)
        }
        // The daemon stopped as we spoke (`credd stop`, or another client replacing it): its
        // successor answers. A stop is not sent again: it would stop the successor.
        Err(Exchange::Failed(e)) if went_away(&e) && request != Request::Stop => {
            ask_successor(&socket, request, autostart)
        }
        Err(Exchange::Failed(e)) => Err(e),
    }
}

/// Sends `request` to whichever daemon serves the socket once the one that was there has gone:
/// it may answer (or drop) a few more connections while it shuts down; the one that comes
/// after it is this release's.
fn ask_successor(
    socket: &Path,
    request: Request,
    autostart: bool,
) -> Result<Response, ConnectError> {
    use crate::upgrade::{self, Kept};
    let deadline = Instant::now() + upgrade::STOP_TIMEOUT;
    loop {
        let waiting = Instant::now() < deadline;
        let outcome = connect(socket, autostart)
            .map_err(Exchange::Failed)
            .and_then(|mut stream| exchange(&mut stream, socket, request.clone()));
        match outcome {
            Ok(response) => return Ok(response),
            Err(Refused { theirs }) if !upgrade::replaceable(theirs) => {
                return Err(version_kept(socket, theirs, Kept::Newer));
            }
            Err(Refused { theirs }) if !waiting => {
                return Err(version_kept(socket, theirs, Kept::WouldNotGo));
            }
            Err(Refused { .. }) => {}
            Err(Exchange::Failed(ConnectError::Io { .. } | ConnectError::Protocol { .. }))
                if waiting => {}
            Err(Exchange::Failed(e)) => return Err(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn version_kept(socket: &Path, theirs: u32, why: crate::upgrade::Kept) -> ConnectError {
    ConnectError::Version {
        socket: socket.to_path_buf(),
        theirs,
        advice: crate::upgrade::advice(why),
    }
}

/// Whether a failed exchange means the daemon closed the connection on its way out: no answer,
/// or half of one, and the connection gone.
fn went_away(error: &ConnectError) -> bool {
    match error {
        ConnectError::Io { error, .. } => matches!(
            error.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
        ),
        ConnectError::Protocol { error, .. } => matches!(error, FrameError::Truncated),
        _ => false,
    }
}

/// Why one exchange failed: the daemon refused our protocol version, or something else.
enum Exchange {
    Refused { theirs: u32 },
    Failed(ConnectError),
}
use Exchange::Refused;

fn exchange(stream: &mut Stream, socket: &Path, request: Request) -> Result<Response, Exchange> {
    let stopping = request == Request::Stop;
    frame::round_trip(stream, request).or_else(|error| match error {
        FrameError::VersionRefused { theirs, .. } => Err(Refused { theirs }),
        // Every version obeys a stop; its answer is in its own version's shape.
        FrameError::UnsupportedVersion { theirs } if stopping => Ok(Response::Done {
            message: format!("credd-daemon (protocol {theirs}) is stopping"),
        }),
        FrameError::Io(error) => Err(Exchange::Failed(ConnectError::Io {
            socket: socket.to_path_buf(),
            error,
        })),
        error => Err(Exchange::Failed(ConnectError::Protocol {
            socket: socket.to_path_buf(),
            error,
        })),
    })
}

fn autostart_allowed() -> bool {
    std::env::var_os("CREDD_NO_AUTOSTART").is_none_or(|v| v != "1")
}

/// Connects without starting anything; `None` when no daemon answers. The socket's directory is
/// checked before connecting and the server's user after, so nothing is ever sent to a socket
/// another user could have put there.
pub fn connect_existing(socket: &Path) -> Result<Option<Stream>, ConnectError> {
    let me = paths::effective_uid();
    // Inside a forward, a mount or sshd made the directory: it may be the host user's (seen
    // through a rootful container, say), so long as nobody else can change it.
    let trusted = if credd_proto::forward::Forwarded::from_env().is_some() {
        paths::socket_dir(socket).and_then(credd_proto::forward::check_dir)
    } else {
        paths::socket_dir(socket)
            .and_then(paths::check_private_dir)
            .map(|()| me)
    };
    let owner = match trusted {
        Ok(owner) => owner,
        Err(e) if e.is_missing() => return Ok(None),
        Err(e) => {
            return Err(ConnectError::Untrusted {
                reason: e.to_string(),
            });
        }
    };
    let stream = match try_connect(socket) {
        Ok(stream) => stream,
        Err(e) if nobody_listening(&e) => return Ok(None),
        Err(error) => {
            return Err(ConnectError::Io {
                socket: socket.to_path_buf(),
                error,
            });
        }
    };
    check_server_user(&stream, socket, owner)?;
    // A daemon that stops answering must not hang its caller forever: the longest request (a
    // login waiting for approval) is bounded by the daemon well inside this.
    let _ = stream.set_recv_timeout(Some(REPLY_TIMEOUT));
    let _ = stream.set_send_timeout(Some(REPLY_TIMEOUT));
    Ok(Some(stream))
}

/// How long the client waits for the daemon's answer to one request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(200);

/// Whether the server on the other end runs as this user, or as `owner`, the owner of the
/// socket's directory (`SO_PEERCRED` / `getpeereid`).
#[cfg(unix)]
fn check_server_user(stream: &Stream, socket: &Path, owner: u32) -> Result<(), ConnectError> {
    let me = paths::effective_uid();
    let Stream::UdSocket(unix) = stream;
    match paths::peer_uid(std::os::fd::AsFd::as_fd(unix)) {
        Ok(uid) if uid == me || uid == owner => Ok(()),
        Ok(uid) => Err(ConnectError::Untrusted {
            reason: format!(
                "the server on {} runs as uid {uid}, not as this user (uid {me}){}; another user may be posing as credd-daemon",
                socket.display(),
                if owner == me {
                    String::new()
                } else {
                    format!(" nor as the owner of its directory (uid {owner})")
                }
            ),
        }),
        Err(e) => Err(ConnectError::Untrusted {
            reason: format!(
                "the user of the server on {} cannot be told ({e})",
                socket.display()
            ),
        }),
    }
}

#[cfg(not(unix))]
fn check_server_user(_stream: &Stream, _socket: &Path, _owner: u32) -> Result<(), ConnectError> {
    Ok(())
}

fn connect(socket: &Path, autostart: bool) -> Result<Stream, ConnectError> {
    if let Some(stream) = connect_existing(socket)? {
        return Ok(stream);
    }
    if !autostart {
        return Err(ConnectError::NotRunning {
            socket: socket.to_path_buf(),
        });
    }
    start_daemon(socket)
}

fn try_connect(socket: &Path) -> io::Result<Stream> {
    Stream::connect(socket.to_fs_name::<GenericFilePath>()?)
}

fn nobody_listening(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

fn start_daemon(socket: &Path) -> Result<Stream, ConnectError> {
    let fail = |message: String| ConnectError::StartFailed { message };
    paths::socket_dir(socket)
        .and_then(paths::ensure_private_dir)
        .map_err(|e| match e {
            paths::PrivateDirError::Create { .. } => {
                fail(format!("cannot start credd-daemon: {e}"))
            }
            e => ConnectError::Untrusted {
                reason: e.to_string(),
            },
        })?;
    let lock_path = paths::sibling(socket, ".start.lock");
    let lock = open_private(&lock_path, false)
        .map_err(|e| fail(format!("cannot create {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| fail(format!("cannot lock {}: {e}", lock_path.display())))?;
    // Another client may have started it while we waited for the lock.
    if let Some(stream) = connect_existing(socket)? {
        return Ok(stream);
    }
    let log_path = paths::sibling(socket, ".log");
    let mut child = spawn_daemon(socket, &log_path)?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(stream) = connect_existing(socket)? {
            return Ok(stream);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Another daemon holds the lock: one shutting down (a replaced or stopped daemon
            // finishing its last answers), or one about to answer. Start ours once it lets go.
            let lock_held = status.code() == Some(i32::from(DAEMON_EXIT_ALREADY_RUNNING));
            if !lock_held || Instant::now() > deadline {
                return Err(fail(format!(
                    "credd-daemon exited during start-up ({status}): {}; full log in {}",
                    last_line(&log_path),
                    log_path.display()
                )));
            }
            if daemon_lock_free(socket) {
                child = spawn_daemon(socket, &log_path)?;
            }
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "credd-daemon did not answer on {} within {}s; see {}",
                socket.display(),
                START_TIMEOUT.as_secs(),
                log_path.display()
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Whether no daemon holds the lock beside `socket` (taken for a moment to find out).
fn daemon_lock_free(socket: &Path) -> bool {
    match File::open(paths::sibling(socket, ".lock")) {
        Ok(lock) => lock.try_lock().is_ok(),
        Err(_) => true,
    }
}

fn spawn_daemon(socket: &Path, log_path: &Path) -> Result<Child, ConnectError> {
    let program = daemon_program();
    let log = open_private(log_path, true).map_err(|e| ConnectError::StartFailed {
        message: format!("cannot open {}: {e}", log_path.display()),
    })?;
    // The daemon works from `/` (so it holds no caller's directory busy): the socket's path is
    // absolute already (`paths::socket_dir`), and the config's is made so.
    let mut command = Command::new(&program);
    command
        .arg("--socket")
        .arg(socket)
        .current_dir("/")
        // The daemon must not hold our caller's pipes open: Claude Code waits for EOF.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(config) = std::env::var_os("CREDD_CONFIG").filter(|c| !c.is_empty())
        && let Ok(config) = std::path::absolute(&config)
    {
        command.env("CREDD_CONFIG", config);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent's.
        unsafe {
            // A session of its own: no controlling terminal, so neither a Ctrl-C nor the
            // terminal closing reaches it. (It closes the descriptors it inherits itself.)
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command.spawn().map_err(|e| ConnectError::StartFailed {
        message: format!(
            "cannot start {}: {e}; install credd-daemon next to credd or on PATH",
            program.display()
        ),
    })
}

/// `credd-daemon` beside this executable, else whatever PATH finds.
pub fn daemon_program() -> PathBuf {
    let name = format!("credd-daemon{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Opens (creating with mode 0600) a file beside the socket, never through a symbolic link.
pub(crate) fn open_private(path: &Path, append: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(append).write(!append);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|log| {
            log.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no log output".to_string())
}
