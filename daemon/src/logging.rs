//! The daemon's log: `CREDD_LOG` (an `EnvFilter`, default `info`) to stderr, with one limit no
//! filter can lift. The HTTP stacks under credd (the AWS SDK's runtime and signer, hyper,
//! reqwest, rustls, the Azure SDK) print whole requests at `trace` level, headers included, and
//! those carry bearer tokens, SSO access tokens and signed session tokens. So every other
//! crate's events finer than `debug` are dropped whatever `CREDD_LOG` asks for (a list of the
//! crates that do it would miss the next one); credd's own events, at any level, never carry a
//! secret (secrets are wrapped so they cannot be printed).

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

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
    allowed_at(metadata.target(), *metadata.level())
}

fn allowed_at(target: &str, level: Level) -> bool {
    level <= Level::DEBUG || target.starts_with("credd_daemon")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_crates_are_capped_at_debug() {
        for target in [
            "aws_smithy_runtime::client::orchestrator",
            "aws_sdk_ssooidc::config",
            "hyper_util::client::legacy::pool",
            "reqwest::connect",
            "some_future_http_crate",
        ] {
            assert!(!allowed_at(target, Level::TRACE), "{target}");
            assert!(allowed_at(target, Level::DEBUG), "{target}");
        }
        assert!(allowed_at("credd_daemon::cache", Level::TRACE));
    }
}
