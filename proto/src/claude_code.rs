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

/// Set by Claude Code for an MCP server's `headersHelper`: the server's name (and
/// `CLAUDE_CODE_MCP_SERVER_URL` its URL).
pub const MCP_SERVER_ENV: &str = "CLAUDE_CODE_MCP_SERVER_NAME";

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

/// A model API Claude Code can use besides the first party's, with the variables it is chosen,
/// pointed and left unauthenticated with (`CLAUDE_CODE_USE_*`, its base URL,
/// `CLAUDE_CODE_SKIP_*_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// credd's name for it (a proxy table's `provider`, `setup --provider`).
    pub name: &'static str,
    /// Its name for people.
    pub title: &'static str,
    /// The kind of credd source whose credential it takes (`aws`, `gcp`, `entra`).
    pub source_kind: &'static str,
    pub selection: &'static str,
    pub base_url: &'static str,
    pub skip_auth: &'static str,
}

const fn provider(
    name: &'static str,
    title: &'static str,
    source_kind: &'static str,
    selection: &'static str,
    base_url: &'static str,
    skip_auth: &'static str,
) -> Provider {
    Provider {
        name,
        title,
        source_kind,
        selection,
        base_url,
        skip_auth,
    }
}

pub const BEDROCK: Provider = provider(
    "bedrock",
    "Amazon Bedrock",
    "aws",
    "CLAUDE_CODE_USE_BEDROCK",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "CLAUDE_CODE_SKIP_BEDROCK_AUTH",
);
pub const MANTLE: Provider = provider(
    "mantle",
    "Bedrock's Anthropic API (Mantle)",
    "aws",
    "CLAUDE_CODE_USE_MANTLE",
    "ANTHROPIC_BEDROCK_MANTLE_BASE_URL",
    "CLAUDE_CODE_SKIP_MANTLE_AUTH",
);
pub const ANTHROPIC_AWS: Provider = provider(
    "anthropic-aws",
    "Claude Platform on AWS",
    "aws",
    "CLAUDE_CODE_USE_ANTHROPIC_AWS",
    "ANTHROPIC_AWS_BASE_URL",
    "CLAUDE_CODE_SKIP_ANTHROPIC_AWS_AUTH",
);
pub const VERTEX: Provider = provider(
    "vertex",
    "Vertex AI",
    "gcp",
    "CLAUDE_CODE_USE_VERTEX",
    "ANTHROPIC_VERTEX_BASE_URL",
    "CLAUDE_CODE_SKIP_VERTEX_AUTH",
);
pub const ANTHROPIC_GOOGLE_CLOUD: Provider = provider(
    "anthropic-google-cloud",
    "Claude on Google Cloud",
    "gcp",
    "CLAUDE_CODE_USE_ANTHROPIC_GOOGLE_CLOUD",
    "ANTHROPIC_GOOGLE_CLOUD_BASE_URL",
    "CLAUDE_CODE_SKIP_ANTHROPIC_GOOGLE_CLOUD_AUTH",
);
pub const FOUNDRY: Provider = provider(
    "foundry",
    "Microsoft Foundry",
    "entra",
    "CLAUDE_CODE_USE_FOUNDRY",
    "ANTHROPIC_FOUNDRY_BASE_URL",
    "CLAUDE_CODE_SKIP_FOUNDRY_AUTH",
);

/// Every provider, in the order Claude Code picks one when more than one is chosen.
pub const PROVIDERS: [Provider; 6] = [
    BEDROCK,
    FOUNDRY,
    ANTHROPIC_AWS,
    ANTHROPIC_GOOGLE_CLOUD,
    MANTLE,
    VERTEX,
];

/// Whether `id` can name a workspace (Claude Platform on AWS's, Claude on Google Cloud's): it
/// becomes part of a header and a URL path.
pub fn is_workspace_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The provider credd calls `name`.
pub fn provider_named(name: &str) -> Option<Provider> {
    PROVIDERS.into_iter().find(|p| p.name == name)
}

/// The settings that name a model API's base URL, one per route: what a proxy route of credd's
/// points at it.
pub const BASE_URLS: [&str; 7] = [
    BEDROCK.base_url,
    MANTLE.base_url,
    ANTHROPIC_AWS.base_url,
    VERTEX.base_url,
    ANTHROPIC_GOOGLE_CLOUD.base_url,
    FOUNDRY.base_url,
    "ANTHROPIC_BASE_URL",
];
