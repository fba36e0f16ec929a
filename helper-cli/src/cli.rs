//! The command line of `credd`, defined once: the client parses it, and `credd-docs` turns the
//! same definition into the man page and the shell completions, so none of them can drift.

use std::time::Duration;

use clap::{Parser, Subcommand};

/// Serves cached cloud credentials from credd-daemon to Claude Code, SDKs and shells.
#[derive(Parser, Debug)]
#[command(
    name = "credd",
    version,
    disable_help_subcommand = true,
    after_help = credd_proto::exit::help_text()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a config from the sign-ins this machine already has: AWS profiles, a gcloud
    /// login, `az login`. Asks which to use on a terminal; --yes takes them all.
    ///
    /// Nothing is signed in to or fetched while looking, and no secret goes into the config
    /// (profiles and kinds only). Run again, it changes nothing that is already right; a config
    /// edited since is replaced only after you see the diff and say yes (its old text is kept
    /// under ~/.local/state/credd/backups/). Offers `credd setup claude-code` for the provider
    /// Claude Code is set up for.
    Init {
        /// Use every sign-in found, without asking.
        #[arg(long, short)]
        yes: bool,
    },
    /// Print a credential for SOURCE (starting credd-daemon if none is running).
    Get {
        /// The source's name in the config ([sources.NAME]), or an MCP server's ([mcp.NAME]),
        /// which names its source. As an MCP server's headersHelper it may be left out:
        /// Claude Code names the server in CLAUDE_CODE_MCP_SERVER_NAME.
        source: Option<String>,
        /// How to print it.
        #[arg(long, short, value_enum, default_value = "token")]
        format: Format,
        /// The credential must stay valid at least this long ("10m", "1h"); the daemon's
        /// default, ten minutes, when not given.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        min_valid: Option<Duration>,
        /// Print a Google-signed ID token for AUDIENCE instead of the access token (gcp sources
        /// with a service account): for Cloud Run, IAP, or a gateway behind them.
        #[arg(long, value_name = "AUDIENCE")]
        audience: Option<String>,
        /// The header `--format headers` puts the token in [default: Authorization]; with
        /// `--format helper-json`, a header to send besides the token.
        #[arg(long, value_name = "NAME")]
        header: Option<String>,
        /// What comes before the token in that header ("" for an API key header such as
        /// x-api-key).
        #[arg(long, value_name = "TEXT", default_value = "Bearer ")]
        header_prefix: String,
    },
    /// Fetch a new credential for SOURCE now, whatever the cache holds.
    Refresh { source: String },
    /// Sign in to SOURCE if it needs it, for Claude Code's awsAuthRefresh and gcpAuthRefresh.
    ///
    /// Exits 0 at once when SOURCE already has valid credentials. Otherwise plays your part of
    /// its login, with everything on stdout: an SSO or Entra device login (the URL and code to
    /// approve, and a browser unless CREDD_NO_BROWSER is set), an MFA code (from the source's
    /// mfa_process, else from the terminal when a person is at it, else a desktop prompt; with
    /// none of these it says what to run and exits 5 at once), or the cloud's own tool (gcloud,
    /// az login, aws login). Waits at most about three minutes.
    /// Concurrent logins share: one code for a source, and for profiles on one SSO session; one
    /// browser; one run of gcloud or az.
    Login { source: String },
    /// Sign out of SOURCE: credd forgets its login (in memory, and in the OS secret store with
    /// persist = "keyring") and what it has cached for it.
    Logout { source: String },
    /// Show the daemon and every source: state, expiry, next refresh, last error.
    Status {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Print one line for Claude Code's statusLine ("bedrock 47m · vertex needs login"),
        /// from the cache; never starts the daemon, and exits 0 whatever it says.
        #[arg(long, conflicts_with = "json")]
        short: bool,
    },
    /// Stop credd-daemon.
    Stop,
    /// Start credd-daemon unless it is running, and print nothing: for Claude Code's
    /// SessionStart hook, so that the proxy answers a session's first request after a reboot.
    Start,
    /// Print the header that opens credd's route for MCP server NAME ([mcp.NAME]), as a JSON
    /// object: the headersHelper `credd setup mcp` writes (starting the daemon, so that the
    /// route answers the session's first request).
    McpHeaders {
        /// The server's name in the config.
        name: String,
    },
    /// Print the exports that point SDKs at credd's endpoints and Claude Code at its proxy
    /// socket (ANTHROPIC_UNIX_SOCKET), for `eval "$(credd env)"` in a shell profile.
    ///
    /// Of a proxy route only ANTHROPIC_UNIX_SOCKET is printed: Claude Code reads it from the
    /// environment it starts in, never from its settings, where `credd setup claude-code
    /// SOURCE --via proxy` writes the rest. Secrets are read from their files when the line
    /// runs, never printed.
    Env {
        /// Only these sources' endpoints (all by default; where two set one variable, the first
        /// in name order wins, and a comment says so).
        sources: Vec<String>,
        /// The shell to write for [default: the one SHELL names, else POSIX sh].
        #[arg(long, value_enum)]
        shell: Option<Shell>,
    },
    /// Check the daemon, the config, every source and endpoint, the Claude Code settings that
    /// use credd, and the proxy settings; print each verdict with its fix.
    Doctor {
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run credd-daemon as a user service (systemd socket activation, or a launchd agent).
    Service {
        #[arg(value_enum)]
        action: ServiceAction,
    },
    /// Write the settings a tool needs to use a source.
    Setup {
        #[command(subcommand)]
        target: SetupTarget,
    },
    /// Run a shell (or COMMAND) on HOST over ssh, with a forward's sockets carried there:
    /// `credd`, Claude Code and the AWS SDKs on HOST get credentials from this machine's
    /// credd, and none is copied there.
    ///
    /// Opens one ssh connection, makes a private directory under ~/.credd/forward on HOST,
    /// forwards the forward's protocol and proxy sockets into it (OpenSSH's Unix-socket
    /// forwarding), and sets CREDD_SOCKET, ANTHROPIC_UNIX_SOCKET, CREDD_FORWARD and
    /// AWS_CONFIG_FILE for the shell. HOST needs only the `credd` client on its PATH. When
    /// the session ends the directory is removed. Exits with the remote command's code.
    Ssh {
        /// The forward to carry ([forwards.NAME]; the only one, when there is one).
        #[arg(long, value_name = "NAME")]
        forward: Option<String>,
        /// What to give ssh to reach the remote: [user@]host, or a Host of ~/.ssh/config.
        host: String,
        /// Options for ssh (-p PORT, -i KEY, -o OPTION=VALUE, ...), then `--` and the command
        /// to run on HOST instead of a login shell.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "SSH_OPTION]... [-- COMMAND"
        )]
        args: Vec<String>,
    },
    /// Print the ~/.ssh/config lines that forward a forward's sockets on every connection to
    /// HOST (RemoteForward, SetEnv), with what the server's sshd_config needs for them.
    SshConfig {
        /// The forward to carry ([forwards.NAME]; the only one, when there is one).
        #[arg(long, value_name = "NAME")]
        forward: Option<String>,
        host: String,
        /// The remote user's home directory [default: /root for root, else /home/USER, the
        /// user `ssh -G HOST` names].
        #[arg(long, value_name = "DIR")]
        remote_home: Option<String>,
    },
    /// Print the arguments that give a container a forward: `docker run $(credd
    /// container-args dev) IMAGE` (or podman).
    ///
    /// Mounts the forward's directory at /run/credd and this credd client at
    /// /usr/local/bin/credd (read-only), and sets CREDD_SOCKET, ANTHROPIC_UNIX_SOCKET,
    /// CREDD_FORWARD and AWS_CONFIG_FILE. The container's processes are served when they run
    /// as this user's uid (rootless containers' root, `--userns=keep-id`), or as a uid the
    /// forward's `allow_uids` names.
    ContainerArgs {
        /// The forward ([forwards.NAME]; the only one, when there is one).
        forward: Option<String>,
        /// Do not mount this credd client (the image has one).
        #[arg(long)]
        no_client: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SetupTarget {
    /// Merge the settings for SOURCE into Claude Code's settings.json, keeping every other key
    /// (the previous file is kept under ~/.local/state/credd/backups/, and what changed is
    /// printed, secrets hidden).
    ClaudeCode(ClaudeCode),
    /// Add MCP server NAME ([mcp.NAME] in the config) to Claude Code's user MCP servers
    /// (~/.claude.json), pointed at credd's route for it: each of its requests gets the
    /// source's current token, however long the session (the route's caller secret comes from
    /// `credd mcp-headers NAME` as its headersHelper; the previous file is kept under
    /// ~/.local/state/credd/backups/).
    Mcp {
        /// The server's name in the config, and in Claude Code.
        name: String,
        /// Print what would change, without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Merge a forward's mounts and environment into DIR/.devcontainer/devcontainer.json,
    /// keeping every other key (the previous file is kept under
    /// ~/.local/state/credd/backups/, and what changed is printed).
    Devcontainer {
        /// The forward ([forwards.NAME]; the only one, when there is one).
        #[arg(long, value_name = "NAME")]
        forward: Option<String>,
        /// The project's directory [default: this one].
        dir: Option<std::path::PathBuf>,
        /// Print what would change, without writing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `credd setup claude-code`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ClaudeCode {
    /// The source Claude Code should use (optional with --statusline).
    #[arg(required_unless_present = "statusline")]
    pub source: Option<String>,
    /// Write ~/.claude/settings.json (the default).
    #[arg(long, conflicts_with = "project")]
    pub user: bool,
    /// Write the project's DIR/.claude/settings.local.json instead: credd's settings are this
    /// machine's (the path to credd, the proxy's socket), so they stay out of the committed
    /// settings.json, and git is told to leave the file alone.
    #[arg(long, value_name = "DIR")]
    pub project: Option<std::path::PathBuf>,
    /// How Claude Code gets the credential: helper settings, or a local endpoint
    /// [default: endpoint for gcp and entra sources (Vertex AI and Foundry have no token helper hook), helper otherwise]
    #[arg(long, value_enum)]
    pub via: Option<Via>,
    /// The gateway's URL, written as ANTHROPIC_BASE_URL (with --via helper), or the
    /// Microsoft Foundry endpoint, written as ANTHROPIC_FOUNDRY_BASE_URL (entra sources
    /// through the endpoint).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// The AWS region (AWS_REGION, default: the source's region), or for gcp sources the
    /// Vertex AI region (CLOUD_ML_REGION) or Claude on Google Cloud's location
    /// (ANTHROPIC_GOOGLE_CLOUD_LOCATION), by default global.
    #[arg(long)]
    pub region: Option<String>,
    /// The model API Claude Code uses the source's credential with [default: bedrock for aws
    /// sources, vertex for gcp ones; with --via proxy, the route's `provider` in the config].
    #[arg(long, value_parser = provider_parser())]
    pub provider: Option<credd_proto::claude_code::Provider>,
    /// The workspace ID, for --provider anthropic-aws (ANTHROPIC_AWS_WORKSPACE_ID) and
    /// anthropic-google-cloud (ANTHROPIC_GOOGLE_CLOUD_WORKSPACE_ID).
    #[arg(long, value_name = "ID")]
    pub workspace: Option<String>,
    /// Show credd's one-line status in Claude Code's status line (`credd status --short`),
    /// unless a status line of your own is set.
    #[arg(long)]
    pub statusline: bool,
    /// With --via proxy: add the line that exports ANTHROPIC_UNIX_SOCKET (`eval "$(credd
    /// env)"`) to this shell's profile (~/.bashrc, ~/.zshrc, fish's config.fish) without
    /// asking; on a terminal setup asks, and otherwise only says what to add.
    #[arg(long, value_enum, value_name = "SHELL")]
    pub shell_profile: Option<Shell>,
    /// With --via proxy: use the proxy's TCP port (the source's `proxy.port`) and its
    /// caller secret instead of the Unix socket, for a Claude Code that cannot be started
    /// with ANTHROPIC_UNIX_SOCKET in its environment. Anyone on this machine can take that
    /// port while credd is down, and would receive the prompts and the caller secret.
    #[arg(long)]
    pub tcp: bool,
    /// Print what would change, without writing.
    #[arg(long)]
    pub dry_run: bool,
}

impl ClaudeCode {
    /// The plain setup of `source`: user settings, the source's default route.
    pub fn for_source(source: &str) -> ClaudeCode {
        ClaudeCode {
            source: Some(source.to_string()),
            user: false,
            project: None,
            via: None,
            base_url: None,
            region: None,
            provider: None,
            workspace: None,
            statusline: false,
            shell_profile: None,
            tcp: false,
            dry_run: false,
        }
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (write it like \"90s\", \"10m\", \"1h\")"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The secret alone (apiKeyHelper, gateways).
    Token,
    /// The whole credential with its metadata.
    Json,
    /// {"Credentials":{AccessKeyId,...,Expiration}} (Claude Code's awsCredentialExport).
    Aws,
    /// {"Version":1,AccessKeyId,...,Expiration} (the AWS credential_process).
    AwsProcess,
    /// `export NAME='value'` lines for `eval`.
    Env,
    /// {"Authorization":"Bearer ..."}: a JSON object of HTTP headers (MCP servers'
    /// headersHelper, otelHeadersHelper); see --header and --header-prefix.
    Headers,
    /// {"token":"...","headers":{...}} (inferenceCredentialHelper). Signs in first when the
    /// source needs it and CLAUDE_HELPER_CONTEXT is `interactive`, never otherwise.
    HelperJson,
    /// A short-term Amazon Bedrock API key made from an aws source's credentials (for
    /// AWS_BEARER_TOKEN_BEDROCK): valid for at most 12 hours, never past the credentials.
    BedrockApiKey,
}

/// `--provider`: the providers a cloud source's credential serves (Foundry is an `entra`
/// source's only one), named and described as `proto::claude_code` has them.
fn provider_parser()
-> impl clap::builder::TypedValueParser<Value = credd_proto::claude_code::Provider> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    use credd_proto::claude_code::{PROVIDERS, provider_named};
    PossibleValuesParser::new(
        PROVIDERS
            .iter()
            .filter(|p| p.source_kind != "entra")
            .map(|p| PossibleValue::new(p.name).help(format!("{} ({})", p.title, p.selection))),
    )
    .map(|name| provider_named(&name).expect("a possible value names a provider"))
}

/// How Claude Code should get credentials from credd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// Through Claude Code's helper settings (apiKeyHelper, awsCredentialExport).
    Helper,
    /// Through a local endpoint the SDK reads without a helper (AWS container credentials, GCE
    /// metadata, Azure managed identity).
    Endpoint,
    /// Through credd's authenticating proxy: Claude Code holds no credential at all, and
    /// every request gets a current one (the source's `proxy` in the config).
    Proxy,
}

/// The shells `credd env` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// bash, and any POSIX shell.
    Bash,
    Zsh,
    Fish,
}

/// What `credd service` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceAction {
    /// Write the unit files (or plist) and enable them.
    Install,
    /// Disable and remove them.
    Uninstall,
    /// Say what is installed and whether it runs.
    Status,
}
