//! Meeting a daemon that speaks another protocol version (after an upgrade, say): an older one
//! is asked to stop, in the shape every version understands, so the daemon installed with this
//! client can take its place; a newer one, or one that will not go, is named in a clear error.
//! Either way the caller never sees a garbled answer.

use std::io::{Read, Write};
use std::time::Duration;

use credd_proto::frame;
use credd_proto::{PROTOCOL_VERSION, Request};

/// How long an older daemon may take to go once asked.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the daemon on `stream`, which has just refused our version, to stop. Its answer is in
/// its own version's shape, and a daemon already on its way out may not answer at all: either
/// way the caller's retries find out when it has gone.
pub fn ask_to_stop(mut stream: impl Read + Write) {
    let asked = stream
        .write_all(&frame::encode_request(Request::Stop))
        .and_then(|()| stream.flush());
    if asked.is_ok() {
        let _ = frame::read_frame(&mut stream);
    }
}

/// Why a daemon of another version was not replaced.
#[derive(Debug, Clone, Copy)]
pub enum Kept {
    /// It speaks a newer protocol than this client.
    Newer,
    /// Starting daemons is off (`CREDD_NO_AUTOSTART=1`, or a command that never starts one).
    NoAutostart,
    /// It was asked to stop and is still there (or came back) after [`STOP_TIMEOUT`].
    WouldNotGo,
}

/// What to tell the person.
pub fn advice(kept: Kept) -> String {
    match kept {
        Kept::Newer => "it is newer than this credd: use the credd installed with it, or run `credd stop` and retry to start this release's daemon".to_string(),
        Kept::NoAutostart => "run `credd stop` and retry so this release's daemon starts (or unset CREDD_NO_AUTOSTART to let credd replace it)".to_string(),
        Kept::WouldNotGo => format!(
            "it was asked to stop and still answers after {}s; stop it yourself (`systemctl --user restart credd` under systemd) and make sure credd and credd-daemon come from the same release",
            STOP_TIMEOUT.as_secs()
        ),
    }
}

/// Whether a daemon of protocol `theirs` is one this client replaces.
pub fn replaceable(theirs: u32) -> bool {
    theirs < PROTOCOL_VERSION
}
