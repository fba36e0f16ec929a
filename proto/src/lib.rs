//! The one definition of how `credd` and `credd-daemon` talk: message types, the protocol
//! version, framing with its size limit, and where the socket lives.
//!
//! This crate is linked into the tiny client, so it stays small: std, serde and nothing async.

pub mod frame;
pub mod message;
pub mod paths;
pub mod secret;

pub use frame::{FrameError, MAX_FRAME_LEN};
pub use message::*;
pub use secret::Secret;

/// Bumped whenever a message changes shape. Both sides send it in every frame; the daemon
/// answers a frame of another version with [`ErrorKind::UnsupportedVersion`] and its own version.
pub const PROTOCOL_VERSION: u32 = 1;

/// The version of the credd release this crate belongs to, shared by the client and the daemon.
pub const CREDD_VERSION: &str = env!("CARGO_PKG_VERSION");
