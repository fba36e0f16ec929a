//! A stand-in for a credd-daemon of another release, for the version-handshake tests: a daemon
//! of another protocol version cannot be built from this tree, so this one answers as such a
//! daemon must (see `credd_proto::PROTOCOL_VERSION`): every frame in its own version's envelope,
//! the connection kept open after an answer, and a stop obeyed whatever version sent it. Like
//! every credd-daemon it holds the lock beside its socket while it lives, and lets go of it a
//! little after it has removed its socket (a daemon finishing its last answers).

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credd_proto::frame;
use serde_json::{Value, json};

/// What the stand-in does when asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Stops: removes its socket, accepts no one else, and lets go of the lock [`LINGER`]
    /// later (a daemon finishing its last answers), so a replacement meets the lock still held.
    Go,
    /// Stops, letting go of the lock as it removes its socket.
    GoAtOnce,
    /// Answers and carries on (a daemon from before stops were understood, or a stuck one).
    Stay,
}

/// How long a stopping stand-in ([`OnStop::Go`]) holds the lock after removing its socket.
pub const LINGER: Duration = Duration::from_millis(200);

type Answer = dyn Fn(&Value) -> Value + Send + Sync;

pub struct OtherDaemon {
    stops: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl OtherDaemon {
    /// Serves `socket` as a daemon of `protocol`; `answer` turns each request frame (other than
    /// a stop) into the response to send, or into `Value::Null` to stop right there without an
    /// answer (a daemon stopped as the request arrived).
    pub fn start(
        socket: &Path,
        protocol: u32,
        on_stop: OnStop,
        answer: impl Fn(&Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        let dir = socket.parent().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let lock = std::fs::File::create(credd_proto::paths::sibling(socket, ".lock")).unwrap();
        lock.try_lock().expect("no daemon holds the lock");
        let listener = UnixListener::bind(socket).unwrap();
        let shared = Shared {
            socket: socket.to_path_buf(),
            protocol,
            on_stop,
            answer: Arc::new(answer),
            gone: Arc::new(AtomicBool::new(false)),
            lock: Arc::new(Mutex::new(Some(lock))),
            stops: Arc::new(AtomicUsize::new(0)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let daemon = OtherDaemon {
            stops: shared.stops.clone(),
            requests: shared.requests.clone(),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.gone.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(stream));
            }
        });
        daemon
    }

    /// How many stop requests it received.
    pub fn stops(&self) -> usize {
        self.stops.load(Ordering::SeqCst)
    }

    /// How many other requests it answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// The refusal a daemon of `protocol` sends to a frame of another version.
pub fn refusal(protocol: u32) -> Value {
    json!({
        "result": "error",
        "kind": "unsupported_version",
        "message": format!("credd-daemon 0.0.0 speaks protocol {protocol}; run `credd stop` and retry"),
    })
}

#[derive(Clone)]
struct Shared {
    socket: PathBuf,
    protocol: u32,
    on_stop: OnStop,
    answer: Arc<Answer>,
    gone: Arc<AtomicBool>,
    lock: Arc<Mutex<Option<std::fs::File>>>,
    stops: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Shared {
    fn serve(&self, mut stream: UnixStream) {
        while let Some(request) = read_frame(&mut stream) {
            let stop = request["request"]["op"] == "stop";
            let response = if stop {
                self.stops.fetch_add(1, Ordering::SeqCst);
                json!({"result": "done", "message": "stopping"})
            } else {
                self.requests.fetch_add(1, Ordering::SeqCst);
                (self.answer)(&request)
            };
            if response.is_null() {
                // Gone from the socket before the client learns it: a client that asks again
                // at once must not reach this daemon a second time.
                self.leave_socket();
                drop(stream);
                return self.go();
            }
            let _ = stream.write_all(&frame::encode(
                &json!({"version": self.protocol, "response": response}),
            ));
            if stop {
                if self.on_stop != OnStop::Stay {
                    self.go();
                }
                return;
            }
        }
    }

    /// Removes the socket, accepts no one else, and lets go of the lock ([`LINGER`] later
    /// unless it stops at once).
    fn go(&self) {
        if self.leave_socket() || self.lock.lock().unwrap().is_some() {
            if self.on_stop != OnStop::GoAtOnce {
                std::thread::sleep(LINGER);
            }
            self.lock.lock().unwrap().take();
        }
    }

    /// Accepts no one else and removes the socket; whether this call did it.
    fn leave_socket(&self) -> bool {
        let first = !self.gone.swap(true, Ordering::SeqCst);
        if first {
            let _ = std::fs::remove_file(&self.socket);
        }
        first
    }
}

fn read_frame(stream: &mut UnixStream) -> Option<Value> {
    serde_json::from_slice(&frame::read_frame(stream).ok()?).ok()
}
