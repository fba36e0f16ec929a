//! Where credd's credentials come from, and the layers that stand below them: one module per
//! kind of source behind the `Source` trait (`sources`), and what they use (the daemon's
//! clock, the refresh policy, the HTTP client and the upstream's clock, running helper
//! programs, the OS secret store, redaction, watching files, source names).
//!
//! A crate of its own so the compiler holds the line: nothing here can reach the daemon's
//! cache, registry, endpoints or socket above it.

pub mod clock;
pub mod files;
pub mod filewatch;
pub mod loopback_owner;
pub mod net;
pub mod policy;
pub mod process;
pub mod random;
pub mod redact;
pub mod secret_store;
pub mod source_name;
pub mod sources;
pub mod upstream_clock;
