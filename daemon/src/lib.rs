//! The daemon behind `credd`: caches and proactively refreshes cloud credentials for one user
//! and serves them over a local socket and optional local HTTP endpoints. The `credd-daemon`
//! binary is a thin shell around this library; the library exists so that its parsers can be
//! fuzzed and its parts tested from outside.
//!
//! The path of a request: `server` (socket, frames) -> `dispatch` (request to response) ->
//! `registry` (which source) -> `cache` (slot, single-flight, background refresh, asking
//! `policy`) -> `sources` (the upstream). `endpoints` serve the same slots over local HTTP.

pub mod activation;
pub mod audiences;
pub mod cache;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod endpoints;
pub mod files;
pub mod filewatch;
pub mod harden;
pub mod logging;
pub mod login;
pub mod loopback_owner;
pub mod net;
pub mod notify;
pub mod policy;
pub mod process;
pub mod random;
pub mod redact;
pub mod registry;
pub mod secret_store;
pub mod server;
pub mod source_name;
pub mod sources;
pub mod upstream_clock;
