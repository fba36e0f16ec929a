//! What Claude Code does with a helper, read from its code, in one place: the client and the
//! daemon both plan around these.

use std::time::Duration;

/// Claude Code kills `awsAuthRefresh` and `gcpAuthRefresh` after three minutes; a login (in
/// the client and in the daemon's flow) ends before that.
pub const LOGIN_BOUND: Duration = Duration::from_secs(170);

/// How long Claude Code keeps an `apiKeyHelper`'s answer when
/// `CLAUDE_CODE_API_KEY_HELPER_TTL_MS` does not say: five minutes.
pub const DEFAULT_HELPER_TTL: Duration = Duration::from_secs(5 * 60);

/// The variable that sets that time, in milliseconds.
pub const HELPER_TTL_ENV: &str = "CLAUDE_CODE_API_KEY_HELPER_TTL_MS";

/// Set by Claude Code for every command it runs.
pub const ENTRYPOINT_ENV: &str = "CLAUDE_CODE_ENTRYPOINT";

/// Set by Claude Code (and Claude Desktop) for an `inferenceCredentialHelper`: why it runs
/// (`interactive`, `mid-session-refresh`, `background`, ...). Only `interactive` has a person
/// waiting to sign in.
pub const HELPER_CONTEXT_ENV: &str = "CLAUDE_HELPER_CONTEXT";

/// What Claude Code takes only from the environment it starts in once `ANTHROPIC_UNIX_SOCKET`
/// is set there: the socket itself (never read from settings), and the first-party route's
/// base URL and key, which it then drops from every settings file (so that no project's
/// settings can send the socket's traffic elsewhere). `credd env` exports these of a proxy
/// route; `setup` writes the rest of the route into settings.
pub const ENVIRONMENT_ONLY: [&str; 3] = [
    "ANTHROPIC_UNIX_SOCKET",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
];

/// The settings that name a model API's base URL, one per route: what a proxy route of credd's
/// points at it.
pub const BASE_URLS: [&str; 4] = [
    "ANTHROPIC_BEDROCK_BASE_URL",
    "ANTHROPIC_VERTEX_BASE_URL",
    "ANTHROPIC_FOUNDRY_BASE_URL",
    "ANTHROPIC_BASE_URL",
];
