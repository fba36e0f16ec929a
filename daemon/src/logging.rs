//! The daemon's log: `CREDD_LOG` (an `EnvFilter`, default `info`) to stderr, with one limit no
//! filter can lift. The HTTP stacks under credd (the AWS SDK's runtime and signer, hyper,
//! reqwest, rustls, the Azure SDK) print whole requests at `trace` level, headers included, and
//! those carry bearer tokens, SSO access tokens and signed session tokens. Their events finer
//! than `debug` are dropped whatever `CREDD_LOG` asks for; credd's own events never carry a
//! secret (secrets are wrapped so they cannot be printed).

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Crates whose `trace` events show requests or responses on the wire.
const WIRE_LEVEL_CRATES: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_",
    "aws_sigv4",
    "aws_smithy_",
    "azure_core",
    "azure_identity",
    "typespec",
    "h2",
    "hyper",
    "reqwest",
    "rustls",
];

/// Installs the global subscriber.
pub fn init() {
    let filter = EnvFilter::try_from_env("CREDD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter.and(filter_fn(allowed)));
    tracing_subscriber::registry().with(layer).init();
}

/// Whether an event may be logged at all: anything at `debug` or coarser, and credd's own
/// events at any level.
fn allowed(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= Level::DEBUG || !prints_the_wire(metadata.target())
}

fn prints_the_wire(target: &str) -> bool {
    WIRE_LEVEL_CRATES
        .iter()
        .any(|prefix| target.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_request_logs_are_capped_at_debug() {
        assert!(prints_the_wire("aws_smithy_runtime::client::orchestrator"));
        assert!(prints_the_wire("aws_sdk_ssooidc::config"));
        assert!(prints_the_wire("hyper_util::client::legacy::pool"));
        assert!(prints_the_wire("reqwest::connect"));
        assert!(!prints_the_wire("credd_daemon::cache"));
    }
}
