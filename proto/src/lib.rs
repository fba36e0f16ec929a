//! The one definition of how `credd` and `credd-daemon` talk: message types, the protocol
//! version, framing with its size limit, and where the socket lives.
//!
//! This crate is linked into the tiny client, so it stays small: std, serde and nothing async.

pub mod claude_code;
pub mod exit;
pub mod forward;
pub mod frame;
pub mod login_lock;
pub mod login_tools;
pub mod message;
pub mod paths;
pub mod private_file;
pub mod proxy_route;
pub mod secret;
pub mod tcp_owner;

pub use frame::{FrameError, MAX_FRAME_LEN};
pub use message::*;
pub use secret::Secret;

/// Bumped whenever a message changes shape. Both sides send it in every frame.
///
/// Two things stay the same in every version, so that a newer client can always replace an older
/// daemon (and an older client can always name the problem):
/// - the daemon answers a frame of another version with an error reply of kind
///   [`ErrorKind::UnsupportedVersion`] in its own version's envelope, and keeps the connection
///   open, so the client can send a stop to that very daemon;
/// - it obeys `{"version": <any>, "request": {"op": "stop"}}`, and its answer to that may be in
///   any shape.
///
/// Version 2: `get` carries an optional `audience` (a daemon of version 1 would have ignored it
/// and answered with an access token).
///
/// Version 3: `get`'s `min_valid_secs` is optional (the daemon's default applies), and errors
/// may be of kind `misconfigured` (exit 8).
///
/// Version 4: a credential's `metadata` has named fields, and its `scopes` are a list.
///
/// Version 5: `logout`.
///
/// Version 6: `bedrock_api_key`.
pub const PROTOCOL_VERSION: u32 = 6;

/// The version of the credd release this crate belongs to, shared by the client and the daemon.
pub const CREDD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The path on which credd's authenticating proxy answers for itself (with its caller secret):
/// whether it has a credential and can reach the model API, without calling the model.
pub const PROXY_HEALTH_PATH: &str = "/.credd/health";

/// The header that carries the proxy's caller secret (Claude Code sends it from
/// `ANTHROPIC_CUSTOM_HEADERS`); lower-case, as HTTP/2 and `http` header names are.
pub const PROXY_SECRET_HEADER: &str = "x-credd-proxy-secret";

/// What Claude Code is given as its API key on the proxy's gateway route, where it insists on
/// one: the proxy replaces it (it is no secret).
pub const PROXY_PLACEHOLDER_KEY: &str = "credd-proxy-adds-the-credential";

/// `credd-daemon`'s exit code when another daemon holds the socket's lock: one that serves, or
/// one still shutting down. A client that started it waits for the socket to answer instead.
pub const DAEMON_EXIT_ALREADY_RUNNING: u8 = 3;
