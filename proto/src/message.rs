//! Requests, responses and the credential itself, as they travel over the socket.
//!
//! Times are Unix seconds (UTC): both sides agree on them without a date library, and the
//! client turns them into RFC 3339 only where a caller wants that.

use serde::{Deserialize, Serialize};

use crate::Secret;

/// A frame from client to daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestFrame {
    pub version: u32,
    pub request: Request,
}

/// A frame from daemon to client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub version: u32,
    pub response: Response,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Who is there, and which version.
    Hello,
    /// A credential for `source` that stays valid for at least `min_valid_secs` (the
    /// daemon's default, ten minutes, when absent); with an `audience`, an ID token for that
    /// audience instead (`gcp` sources).
    Get {
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_valid_secs: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
    /// A short-term Amazon Bedrock API key made from an `aws` source's credentials, living
    /// `lifetime_secs` (at most 12 hours, and never past the credentials).
    BedrockApiKey {
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lifetime_secs: Option<u64>,
    },
    /// Fetch a new credential now, whatever the cache holds.
    Refresh {
        source: String,
    },
    /// Forget the source's login (in memory and in the OS secret store) and what the cache
    /// holds.
    Logout {
        source: String,
    },
    /// Start (or join) the source's interactive login; answered at once with the prompt to show,
    /// or with `Done` when no login is needed.
    Login {
        source: String,
    },
    /// Wait for the source's login in progress to finish.
    LoginWait {
        source: String,
    },
    /// The code a login asked for (an MFA code); answered when the login has finished.
    LoginCode {
        source: String,
        code: Secret,
    },
    Status,
    /// Shut the daemon down.
    Stop,
    /// Move the daemon's clock forward. Refused unless the daemon was started with
    /// `CREDD_TEST_CLOCK=1`; tests use it to jump time.
    AdvanceClock {
        secs: u64,
    },
}

/// Who is asking, so the daemon can tell a routine re-ask from a re-ask after the caller's
/// upstream rejected the credential it was handed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// Stable for the life of the calling program (for example its process id).
    pub id: String,
    /// How long the caller keeps a credential before asking again on its own, in milliseconds
    /// (Claude Code's `CLAUDE_CODE_API_KEY_HELPER_TTL_MS`). A re-ask well inside this window
    /// means the caller's credential was rejected.
    pub cache_ttl_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Hello(DaemonInfo),
    Credential(Credential),
    Status(StatusReport),
    /// The request was carried out; `message` says what happened, for a person.
    Done {
        message: String,
    },
    /// A login is waiting for a person to approve it.
    LoginPrompt(LoginPrompt),
    Error(ErrorReply),
}

/// What a login needs from the person running `credd login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum LoginPrompt {
    /// Approve a device code in a browser.
    Device {
        /// Where to approve the login.
        verification_uri: String,
        /// The code the page shows, for the person to compare.
        user_code: String,
        expires_in_secs: u64,
    },
    /// Sign in on the identity provider's page in a browser, which sends the answer back to
    /// the daemon on 127.0.0.1.
    Browser { url: String, expires_in_secs: u64 },
    /// Type the current code of an MFA device; the client reads it from the terminal and sends
    /// it with [`Request::LoginCode`].
    MfaCode { mfa_serial: String },
    /// Log in with another tool (gcloud, az): the client runs `command` in the person's session
    /// when it is installed, and shows `instructions` either way. An empty `command` means
    /// there is nothing to run, only the instructions to follow.
    Command {
        command: Vec<String>,
        /// `NAME=value` lines to add to the command's environment.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        env: Vec<String>,
        instructions: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub daemon_version: String,
    pub protocol: u32,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub source: String,
    pub secret: CredentialSecret,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Facts about the credential that are not secret (account, scopes, ...).
    #[serde(default, skip_serializing_if = "CredentialFacts::is_empty")]
    pub metadata: Box<CredentialFacts>,
}

/// What is known about a credential besides its secret: what `--format json` shows and what
/// `credd setup` and the endpoints read (a project, a client id, scopes). Each kind of source
/// sets the fields that apply to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialFacts {
    /// `aws`: the profile the credentials are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `aws`: the profile's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `aws`: the MFA device an MFA login used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_serial: Option<String>,
    /// `gcp`: the credential file's `type` (`authorized_user`, `service_account`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_type: Option<String>,
    /// `gcp`: the credential file used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
    /// `gcp`: the account the token acts as (an email), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `gcp`: the project reported to callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// `gcp`: the project billed for quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_project: Option<String>,
    /// `gcp` ID tokens: the audience the token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `entra` and `oidc`: how the token was obtained (`client-secret`, `device-code`,
    /// `browser`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `oidc`: the OpenID Provider (its issuer URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `oidc`: who signed in: the ID token's email, else its subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `entra`: the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `entra` and `oidc`: the application (client) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `gcp` and `entra`: the OAuth scopes the token carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

impl CredentialFacts {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CredentialSecret {
    /// A bearer token or API key.
    Token { token: Secret },
    /// AWS credentials, as STS and `credential_process` hand them out.
    Aws {
        access_key_id: String,
        secret_access_key: Secret,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<Secret>,
    },
}

impl CredentialSecret {
    /// Every secret value the credential holds, for redaction.
    pub fn secret_values(&self) -> Vec<&str> {
        match self {
            CredentialSecret::Token { token } => vec![token.expose()],
            CredentialSecret::Aws {
                secret_access_key,
                session_token,
                ..
            } => std::iter::once(secret_access_key.expose())
                .chain(session_token.as_ref().map(Secret::expose))
                .collect(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            CredentialSecret::Token { .. } => "token",
            CredentialSecret::Aws { .. } => "aws",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub daemon_version: String,
    pub protocol: u32,
    pub pid: u32,
    pub uptime_secs: u64,
    pub now: i64,
    pub socket: String,
    pub config_path: String,
    /// Set when the config file on disk could not be loaded; the last good config stays in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    pub sources: Vec<SourceStatus>,
    /// The forwards the config names (see [`crate::forward`]); none in a forward's own status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<ForwardStatus>,
}

/// A forward: a scoped view of the daemon on sockets of its own, for a container or a remote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardStatus {
    pub name: String,
    /// The directory that holds its sockets (what a container mounts).
    pub dir: String,
    pub socket: String,
    pub proxy_socket: String,
    /// The sources it serves; every other is refused on its sockets.
    pub sources: Vec<String>,
    /// Users besides this one whose processes it serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_uids: Vec<u32>,
    /// Connections open now, on either socket.
    pub connected: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_peer_uid: Option<u32>,
    /// Why it does not listen, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The AWS config file beside its sockets (command lines and regions, no secret), which
    /// `credd ssh` carries to the remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_config: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceStatus {
    pub name: String,
    /// Set on the status of a source's ID tokens for this audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub kind: String,
    pub state: SourceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_refresh_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub upstream_calls: u64,
    /// How far the upstream's clock is ahead of the daemon's (negative: behind), in seconds,
    /// when its last credential's expiry was corrected for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_clock_offset_secs: Option<i64>,
    /// Local endpoints serving this source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointStatus>,
    /// Where the source keeps its login (`persist`), or why it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<String>,
    /// Who the current credential's sign-in is (`oidc`: the ID token's email or subject, and
    /// the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in: Option<String>,
}

impl SourceStatus {
    /// How a person names what this status is about: `vertex`, or `vertex --audience A`.
    pub fn label(&self) -> String {
        match &self.audience {
            Some(audience) => format!("{} --audience {audience}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A local endpoint and how to use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStatus {
    pub kind: String,
    pub url: String,
    /// `NAME=value` lines that point SDKs at it. They name files, never secrets.
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The 0600 file that holds the secret a request must carry, for endpoints that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    /// The Unix socket it is served on, for endpoints served on one (the proxy): `url` then
    /// only names the `Host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// The MCP server it stands for (`[mcp.NAME]`), for an endpoint of kind `mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Whether it holds its TCP port and answers (false before, and while another holds it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub listening: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Nothing asked for it yet; nothing is cached.
    Idle,
    Fresh,
    Refreshing,
    Expired,
    Failing,
    NeedsLogin,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Idle => "idle",
            SourceState::Fresh => "fresh",
            SourceState::Refreshing => "refreshing",
            SourceState::Expired => "expired",
            SourceState::Failing => "failing",
            SourceState::NeedsLogin => "needs login",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    /// One line for a person: what failed and what to run. Never holds a secret.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The frame could not be read: malformed, oversized, or the wrong shape.
    BadRequest,
    /// The frame carries a protocol version this daemon does not speak.
    UnsupportedVersion,
    /// No source of that name in the config.
    UnknownSource,
    /// The upstream failed and nothing valid is cached.
    Upstream,
    /// Only an interactive login can help: run `credd login SOURCE`.
    NeedsLogin,
    /// The request is not allowed (for example a test-only request on a normal daemon).
    Refused,
    /// The source's settings are missing or wrong (a setting neither the config nor the
    /// environment gives, a profile that does not exist, a program that is not there): no
    /// retry helps until they are fixed.
    Misconfigured,
    /// Anything else inside the daemon.
    Internal,
}

impl ErrorKind {
    /// What the client's exit says of this error; documented in the README.
    pub fn exit(self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            ErrorKind::Upstream => Exit::Upstream,
            ErrorKind::UnknownSource => Exit::UnknownSource,
            ErrorKind::NeedsLogin => Exit::NeedsLogin,
            ErrorKind::UnsupportedVersion => Exit::Version,
            ErrorKind::BadRequest | ErrorKind::Refused | ErrorKind::Internal => Exit::Refused,
            ErrorKind::Misconfigured => Exit::Misconfigured,
        }
    }
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response::Error(ErrorReply {
            kind,
            message: message.into(),
        })
    }
}
