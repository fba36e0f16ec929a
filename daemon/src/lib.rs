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
pub mod config;
pub mod dispatch;
pub mod endpoints;
pub mod forwards;
pub mod harden;
pub mod logging;
pub mod login;
pub mod notify;
pub mod registry;
pub mod scope;
pub mod server;

// The sources and the layers below them, in a crate of their own; re-exported under their
// old paths, so the daemon names them as before.
pub use credd_sources::{
    clock, files, filewatch, loopback_owner, net, policy, process, random, redact, secret_store,
    source_name, sources, upstream_clock,
};
