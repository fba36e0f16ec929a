# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_credd_global_optspecs
    string join \n h/help V/version
end

function __fish_credd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_credd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_credd_using_subcommand
    set -l cmd (__fish_credd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c credd -n "__fish_credd_needs_command" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_needs_command" -s V -l version -d 'Print version'
complete -c credd -n "__fish_credd_needs_command" -f -a "init" -d 'Write a config from the sign-ins this machine already has: AWS profiles, a gcloud login, `az login`. Asks which to use on a terminal; --yes takes them all'
complete -c credd -n "__fish_credd_needs_command" -f -a "get" -d 'Print a credential for SOURCE (starting credd-daemon if none is running)'
complete -c credd -n "__fish_credd_needs_command" -f -a "refresh" -d 'Fetch a new credential for SOURCE now, whatever the cache holds'
complete -c credd -n "__fish_credd_needs_command" -f -a "login" -d 'Sign in to SOURCE if it needs it, for Claude Code\'s awsAuthRefresh and gcpAuthRefresh'
complete -c credd -n "__fish_credd_needs_command" -f -a "logout" -d 'Sign out of SOURCE: credd forgets its login (in memory, and in the OS secret store with persist = "keyring") and what it has cached for it'
complete -c credd -n "__fish_credd_needs_command" -f -a "status" -d 'Show the daemon and every source: state, expiry, next refresh, last error'
complete -c credd -n "__fish_credd_needs_command" -f -a "stop" -d 'Stop credd-daemon'
complete -c credd -n "__fish_credd_needs_command" -f -a "start" -d 'Start credd-daemon unless it is running, and print nothing: for Claude Code\'s SessionStart hook, so that the proxy answers a session\'s first request after a reboot'
complete -c credd -n "__fish_credd_needs_command" -f -a "mcp-headers" -d 'Print the header that opens credd\'s route for MCP server NAME ([mcp.NAME]), as a JSON object: the headersHelper `credd setup mcp` writes (starting the daemon, so that the route answers the session\'s first request)'
complete -c credd -n "__fish_credd_needs_command" -f -a "env" -d 'Print the exports that point SDKs at credd\'s endpoints and Claude Code at its proxy socket (ANTHROPIC_UNIX_SOCKET), for `eval "$(credd env)"` in a shell profile'
complete -c credd -n "__fish_credd_needs_command" -f -a "doctor" -d 'Check the daemon, the config, every source and endpoint, the Claude Code settings that use credd, and the proxy settings; print each verdict with its fix'
complete -c credd -n "__fish_credd_needs_command" -f -a "service" -d 'Run credd-daemon as a user service (systemd socket activation, or a launchd agent)'
complete -c credd -n "__fish_credd_needs_command" -f -a "setup" -d 'Write the settings a tool needs to use a source'
complete -c credd -n "__fish_credd_needs_command" -f -a "ssh" -d 'Run a shell (or COMMAND) on HOST over ssh, with a forward\'s sockets carried there: `credd`, Claude Code and the AWS SDKs on HOST get credentials from this machine\'s credd, and none is copied there'
complete -c credd -n "__fish_credd_needs_command" -f -a "ssh-config" -d 'Print the ~/.ssh/config lines that forward a forward\'s sockets on every connection to HOST (RemoteForward, SetEnv), with what the server\'s sshd_config needs for them'
complete -c credd -n "__fish_credd_needs_command" -f -a "container-args" -d 'Print the arguments that give a container a forward: `docker run $(credd container-args dev) IMAGE` (or podman)'
complete -c credd -n "__fish_credd_using_subcommand init" -s y -l yes -d 'Use every sign-in found, without asking'
complete -c credd -n "__fish_credd_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c credd -n "__fish_credd_using_subcommand get" -s f -l format -d 'How to print it' -r -f -a "token\t'The secret alone (apiKeyHelper, gateways)'
json\t'The whole credential with its metadata'
aws\t'{"Credentials":{AccessKeyId,...,Expiration}} (Claude Code\'s awsCredentialExport)'
aws-process\t'{"Version":1,AccessKeyId,...,Expiration} (the AWS credential_process)'
env\t'`export NAME=\'value\'` lines for `eval`'
headers\t'{"Authorization":"Bearer ..."}: a JSON object of HTTP headers (MCP servers\' headersHelper, otelHeadersHelper); see --header and --header-prefix'
helper-json\t'{"token":"...","headers":{...}} (inferenceCredentialHelper). Signs in first when the source needs it and CLAUDE_HELPER_CONTEXT is `interactive`, never otherwise'
bedrock-api-key\t'A short-term Amazon Bedrock API key made from an aws source\'s credentials (for AWS_BEARER_TOKEN_BEDROCK): valid for at most 12 hours, never past the credentials'"
complete -c credd -n "__fish_credd_using_subcommand get" -l min-valid -d 'The credential must stay valid at least this long ("10m", "1h"); the daemon\'s default, ten minutes, when not given' -r
complete -c credd -n "__fish_credd_using_subcommand get" -l audience -d 'Print a Google-signed ID token for AUDIENCE instead of the access token (gcp sources with a service account): for Cloud Run, IAP, or a gateway behind them' -r
complete -c credd -n "__fish_credd_using_subcommand get" -l header -d 'The header `--format headers` puts the token in [default: Authorization]; with `--format helper-json`, a header to send besides the token' -r
complete -c credd -n "__fish_credd_using_subcommand get" -l header-prefix -d 'What comes before the token in that header ("" for an API key header such as x-api-key)' -r
complete -c credd -n "__fish_credd_using_subcommand get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c credd -n "__fish_credd_using_subcommand refresh" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand login" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c credd -n "__fish_credd_using_subcommand logout" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand status" -l json -d 'Print the report as JSON'
complete -c credd -n "__fish_credd_using_subcommand status" -l short -d 'Print one line for Claude Code\'s statusLine ("bedrock 47m · vertex needs login"), from the cache; never starts the daemon, and exits 0 whatever it says'
complete -c credd -n "__fish_credd_using_subcommand status" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand stop" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand start" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand mcp-headers" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand env" -l shell -d 'The shell to write for [default: the one SHELL names, else POSIX sh]' -r -f -a "bash\t'bash, and any POSIX shell'
zsh\t''
fish\t''"
complete -c credd -n "__fish_credd_using_subcommand env" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c credd -n "__fish_credd_using_subcommand doctor" -l json -d 'Print the checks as JSON'
complete -c credd -n "__fish_credd_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand service" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c credd -n "__fish_credd_using_subcommand setup; and not __fish_seen_subcommand_from claude-code mcp devcontainer" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand setup; and not __fish_seen_subcommand_from claude-code mcp devcontainer" -f -a "claude-code" -d 'Merge the settings for SOURCE into Claude Code\'s settings.json, keeping every other key (the previous file is kept under ~/.local/state/credd/backups/, and what changed is printed, secrets hidden)'
complete -c credd -n "__fish_credd_using_subcommand setup; and not __fish_seen_subcommand_from claude-code mcp devcontainer" -f -a "mcp" -d 'Add MCP server NAME ([mcp.NAME] in the config) to Claude Code\'s user MCP servers (~/.claude.json), pointed at credd\'s route for it: each of its requests gets the source\'s current token, however long the session (the route\'s caller secret comes from `credd mcp-headers NAME` as its headersHelper; the previous file is kept under ~/.local/state/credd/backups/)'
complete -c credd -n "__fish_credd_using_subcommand setup; and not __fish_seen_subcommand_from claude-code mcp devcontainer" -f -a "devcontainer" -d 'Merge a forward\'s mounts and environment into DIR/.devcontainer/devcontainer.json, keeping every other key (the previous file is kept under ~/.local/state/credd/backups/, and what changed is printed)'
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l project -d 'Write the project\'s DIR/.claude/settings.local.json instead: credd\'s settings are this machine\'s (the path to credd, the proxy\'s socket), so they stay out of the committed settings.json, and git is told to leave the file alone' -r -F
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l via -d 'How Claude Code gets the credential: helper settings, or a local endpoint [default: endpoint for gcp and entra sources (Vertex AI and Foundry have no token helper hook), helper otherwise]' -r -f -a "helper\t'Through Claude Code\'s helper settings (apiKeyHelper, awsCredentialExport)'
endpoint\t'Through a local endpoint the SDK reads without a helper (AWS container credentials, GCE metadata, Azure managed identity)'
proxy\t'Through credd\'s authenticating proxy: Claude Code holds no credential at all, and every request gets a current one (the source\'s `proxy` in the config)'"
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l base-url -d 'The gateway\'s URL, written as ANTHROPIC_BASE_URL (with --via helper), or the Microsoft Foundry endpoint, written as ANTHROPIC_FOUNDRY_BASE_URL (entra sources through the endpoint)' -r
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l region -d 'The AWS region (AWS_REGION, default: the source\'s region), or for gcp sources the Vertex AI region (CLOUD_ML_REGION) or Claude on Google Cloud\'s location (ANTHROPIC_GOOGLE_CLOUD_LOCATION), by default global' -r
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l provider -d 'The model API Claude Code uses the source\'s credential with [default: bedrock for aws sources, vertex for gcp ones; with --via proxy, the route\'s `provider` in the config]' -r -f -a "bedrock\t'Amazon Bedrock (CLAUDE_CODE_USE_BEDROCK)'
anthropic-aws\t'Claude Platform on AWS (CLAUDE_CODE_USE_ANTHROPIC_AWS)'
anthropic-google-cloud\t'Claude on Google Cloud (CLAUDE_CODE_USE_ANTHROPIC_GOOGLE_CLOUD)'
mantle\t'Bedrock\'s Anthropic API (Mantle) (CLAUDE_CODE_USE_MANTLE)'
vertex\t'Vertex AI (CLAUDE_CODE_USE_VERTEX)'"
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l workspace -d 'The workspace ID, for --provider anthropic-aws (ANTHROPIC_AWS_WORKSPACE_ID) and anthropic-google-cloud (ANTHROPIC_GOOGLE_CLOUD_WORKSPACE_ID)' -r
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l shell-profile -d 'With --via proxy: add the line that exports ANTHROPIC_UNIX_SOCKET (`eval "$(credd env)"`) to this shell\'s profile (~/.bashrc, ~/.zshrc, fish\'s config.fish) without asking; on a terminal setup asks, and otherwise only says what to add' -r -f -a "bash\t'bash, and any POSIX shell'
zsh\t''
fish\t''"
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l user -d 'Write ~/.claude/settings.json (the default)'
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l statusline -d 'Show credd\'s one-line status in Claude Code\'s status line (`credd status --short`), unless a status line of your own is set'
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l tcp -d 'With --via proxy: use the proxy\'s TCP port (the source\'s `proxy.port`) and its caller secret instead of the Unix socket, for a Claude Code that cannot be started with ANTHROPIC_UNIX_SOCKET in its environment. Anyone on this machine can take that port while credd is down, and would receive the prompts and the caller secret'
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -l dry-run -d 'Print what would change, without writing'
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from claude-code" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from mcp" -l dry-run -d 'Print what would change, without writing'
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from mcp" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from devcontainer" -l forward -d 'The forward ([forwards.NAME]; the only one, when there is one)' -r
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from devcontainer" -l dry-run -d 'Print what would change, without writing'
complete -c credd -n "__fish_credd_using_subcommand setup; and __fish_seen_subcommand_from devcontainer" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand ssh" -l forward -d 'The forward to carry ([forwards.NAME]; the only one, when there is one)' -r
complete -c credd -n "__fish_credd_using_subcommand ssh" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c credd -n "__fish_credd_using_subcommand ssh-config" -l forward -d 'The forward to carry ([forwards.NAME]; the only one, when there is one)' -r
complete -c credd -n "__fish_credd_using_subcommand ssh-config" -l remote-home -d 'The remote user\'s home directory [default: /root for root, else /home/USER, the user `ssh -G HOST` names]' -r
complete -c credd -n "__fish_credd_using_subcommand ssh-config" -s h -l help -d 'Print help'
complete -c credd -n "__fish_credd_using_subcommand container-args" -l no-client -d 'Do not mount this credd client (the image has one)'
complete -c credd -n "__fish_credd_using_subcommand container-args" -s h -l help -d 'Print help (see more with \'--help\')'
