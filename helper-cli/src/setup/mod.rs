//! `credd setup claude-code`: writes the Claude Code settings that point it at a credd source,
//! so nobody copies tables of environment variables by hand.
//!
//! The settings file is merged, never replaced: every key credd does not own is kept. The new
//! file is written atomically with mode 0600 after the old one is copied under credd's state
//! directory, and what changed is printed as a diff, secrets hidden.

use std::path::{Path, PathBuf};

use credd_proto::claude_code::{self as cc, Provider};
use credd_proto::{Credential, StatusReport};
use serde_json::{Map, Value, json};

use provider::{bedrock_region, chosen_provider, google_env, proxy_provider, workspace};
use settings_file::{diff, merge, move_old_backup, read_settings, write_settings};

mod git;
pub mod mcp;
mod profile;
mod provider;
pub(crate) mod settings_file;

pub use crate::cli::{Shell, Via};

pub struct Plan {
    pub settings_path: PathBuf,
    /// The source to set up; `None` with `statusline` alone.
    pub source: Option<String>,
    /// `None`: the endpoint for gcp sources (Vertex AI has no helper hook), the helper otherwise.
    pub via: Option<Via>,
    pub base_url: Option<String>,
    pub region: Option<String>,
    /// `--provider`: the model API; by default the source kind's first (or the proxy's).
    pub provider: Option<Provider>,
    /// `--workspace`, for the providers that need one.
    pub workspace: Option<String>,
    /// Show `credd status --short` as Claude Code's status line.
    pub statusline: bool,
    /// A project's other settings file (`settings.json` beside `settings.local.json`), where a
    /// setup of the other kind may have left credd's settings: they are removed there too, or
    /// they would go on taking effect.
    pub other_path: Option<PathBuf>,
    /// `--project DIR`: kept out of git when the settings hold the proxy's caller secret.
    pub project: Option<PathBuf>,
    /// `--via proxy` on the proxy's TCP port, with its caller secret, not on its socket.
    pub tcp: bool,
    /// The shell profile to add `credd env`'s line to without asking (`--shell-profile`).
    pub shell_profile: Option<Shell>,
}

/// What Claude Code's `statusLine` runs for credd's one line.
const STATUS_LINE_ARGS: &str = "status --short";

/// The `statusLine` setting that shows credd's line, or the note that says why it was left:
/// a status line of the person's own is never replaced.
fn status_line(old: &Map<String, Value>, credd: &str) -> Result<Value, String> {
    let command = format!("{credd} {STATUS_LINE_ARGS}");
    match old.get("statusLine") {
        Some(existing)
            if !existing["command"]
                .as_str()
                .is_some_and(|c| c.ends_with(STATUS_LINE_ARGS)) =>
        {
            Err(format!(
                "Kept the statusLine already in the settings; to show credd's line in it too, have its command also run `{command}`."
            ))
        }
        _ => Ok(json!({ "type": "command", "command": command })),
    }
}

/// What the settings for `source` should contain, given what the daemon says about it, and
/// what the person must do besides (lines to print).
fn owned_settings(
    plan: &Plan,
    old: &Map<String, Value>,
    source: &str,
    credd: &str,
    kind: &str,
    credential: &Credential,
    status: &StatusReport,
) -> Result<(Map<String, Value>, Vec<String>), String> {
    let mut top = Map::new();
    let mut env = Map::new();
    let mut notes = Vec::new();
    let via = plan.via.unwrap_or(if matches!(kind, "gcp" | "entra") {
        Via::Endpoint
    } else {
        Via::Helper
    });
    // One provider chosen: any other one's choice would win over it or be in its way.
    let chosen = match via {
        Via::Proxy => proxy_provider(plan, status, source)?,
        Via::Helper | Via::Endpoint => match kind {
            "aws" => Some(chosen_provider(plan, cc::BEDROCK, kind)?),
            "gcp" => Some(chosen_provider(plan, cc::VERTEX, kind)?),
            "entra" if via == Via::Endpoint => Some(cc::FOUNDRY),
            _ => None,
        },
    };
    if plan.provider.is_some() && chosen.is_none() {
        return Err(format!(
            "--provider is for aws and gcp sources; `{source}` is an {kind} source"
        ));
    }
    for other in cc::PROVIDERS.iter().filter(|p| Some(**p) != chosen) {
        if old
            .get("env")
            .and_then(|e| e.get(other.selection))
            .is_some()
        {
            env.insert(other.selection.into(), Value::Null);
        }
    }
    if via == Via::Proxy {
        proxy_settings(plan, old, source, chosen, credential, status, &mut env)?;
        if plan.tcp
            && let Some(warning) = crate::local_users::port_warning("the proxy's TCP port")
        {
            notes.push(format!("Warning: {warning}."));
        }
        top.insert("env".into(), Value::Object(env));
        if !plan.tcp {
            // What an earlier route to credd left (a TCP port, its caller secret), where the
            // socket's settings say nothing of it.
            top = merge_owned(top, leaving_the_proxy(old));
            if let Some(hooks) = with_session_start_hook(old, credd) {
                top.insert("hooks".into(), hooks);
            }
        }
        // The helper and endpoint settings credd owns are what the proxy replaces: removed.
        top = merge_owned(top, leaving_helpers());
        return Ok((top, notes));
    }
    match (kind, via) {
        ("aws", via) => {
            let provider = chosen.unwrap_or(cc::BEDROCK);
            let region = bedrock_region(plan, source, credential)?;
            env.insert(provider.selection.into(), json!("1"));
            env.insert("AWS_REGION".into(), json!(region));
            if provider == cc::ANTHROPIC_AWS {
                env.insert(
                    "ANTHROPIC_AWS_WORKSPACE_ID".into(),
                    json!(workspace(plan, provider)?),
                );
            }
            match via {
                Via::Helper => {
                    top.insert(
                        "awsCredentialExport".into(),
                        json!(format!("{credd} get {source} --format aws")),
                    );
                    top.insert(
                        "awsAuthRefresh".into(),
                        json!(format!("{credd} login {source}")),
                    );
                }
                // The proxy's settings were written above.
                Via::Endpoint | Via::Proxy => endpoint_env(
                    status,
                    source,
                    "aws-container",
                    "container_endpoint",
                    &mut env,
                )?,
            }
        }
        ("gcp", Via::Endpoint) => {
            let provider = chosen.unwrap_or(cc::VERTEX);
            env.insert(provider.selection.into(), json!("1"));
            google_env(plan, source, credential, provider, &mut env)?;
            endpoint_env(
                status,
                source,
                "gce-metadata",
                "metadata_endpoint",
                &mut env,
            )?;
            top.insert(
                "gcpAuthRefresh".into(),
                json!(format!("{credd} login {source}")),
            );
        }
        ("entra", Via::Endpoint) => {
            // Microsoft Foundry. (Claude Code's Foundry client never takes an apiKeyHelper
            // token, and asks DefaultAzureCredential after any Foundry key; `--via helper` is
            // for Entra-protected gateways.)
            let base_url = plan.base_url.as_ref().ok_or_else(|| {
                "Microsoft Foundry needs its endpoint: pass --base-url https://<resource>.services.ai.azure.com/anthropic (or --via helper for an Entra-protected gateway)".to_string()
            })?;
            env.insert("CLAUDE_CODE_USE_FOUNDRY".into(), json!("1"));
            env.insert("ANTHROPIC_FOUNDRY_BASE_URL".into(), json!(base_url));
            // Claude Code's Azure library reads these before the settings' env is applied, so
            // they belong in the environment Claude Code starts in.
            let lines = endpoint_lines(
                status,
                source,
                "azure-managed-identity",
                "identity_endpoint",
            )?;
            notes.push("Claude Code reads IDENTITY_ENDPOINT and IDENTITY_HEADER before it applies settings.json, so export them in the shell (profile) that starts it:".to_string());
            notes.extend(lines.iter().map(|line| format!("  export {line}")));
        }
        (_, Via::Endpoint | Via::Proxy) => {
            return Err(format!(
                "sources of kind `{kind}` have no local endpoint for Claude Code; use --via helper"
            ));
        }
        (_, Via::Helper) => {
            if !matches!(
                credential.secret,
                credd_proto::CredentialSecret::Token { .. }
            ) {
                return Err(format!(
                    "source `{source}` holds AWS credentials from an `{kind}` command; Claude Code's apiKeyHelper needs a token"
                ));
            }
            top.insert(
                "apiKeyHelper".into(),
                json!(format!("{credd} get {source}")),
            );
            if let Some(url) = &plan.base_url {
                env.insert("ANTHROPIC_BASE_URL".into(), json!(url));
            }
            env.insert(
                "CLAUDE_CODE_API_KEY_HELPER_TTL_MS".into(),
                json!(helper_ttl_ms(credential).to_string()),
            );
        }
    }
    top.insert("env".into(), Value::Object(env));
    Ok((top, notes))
}

/// The settings that send Claude Code through `source`'s proxy: its route's base URL with
/// Claude Code's own authentication skipped. On the socket (the default) that is all, and the
/// socket itself is named by the environment Claude Code starts in (see [`profile`]); on the
/// TCP port (`--tcp`), the caller secret goes with them as a custom header.
fn proxy_settings(
    plan: &Plan,
    old: &Map<String, Value>,
    source: &str,
    provider: Option<Provider>,
    credential: &Credential,
    status: &StatusReport,
    env: &mut Map<String, Value>,
) -> Result<(), String> {
    // The person's own headers stay; a caller secret's line is replaced, or dropped.
    let mut headers = headers_of_ones_own(old.get("env").and_then(Value::as_object)).join("\n");
    if plan.tcp {
        endpoint_env(status, source, "proxy-port", "proxy = { port = PORT }", env)?;
        let secret = tcp_caller_secret(status, source)?;
        if !headers.is_empty() {
            headers.push('\n');
        }
        headers += &format!("X-Credd-Proxy-Secret: {}", secret.trim());
    } else {
        endpoint_env(status, source, "proxy", "proxy", env)?;
        // Only Claude Code's environment can carry these (it drops them from settings once the
        // socket is set): what `credd env` prints.
        for name in credd_proto::claude_code::ENVIRONMENT_ONLY {
            env.remove(name);
        }
    }
    env.insert(
        "ANTHROPIC_CUSTOM_HEADERS".into(),
        if headers.is_empty() {
            Value::Null
        } else {
            json!(headers)
        },
    );
    match provider {
        Some(cc::BEDROCK | cc::MANTLE | cc::ANTHROPIC_AWS) => {
            let region = bedrock_region(plan, source, credential)?;
            env.insert("AWS_REGION".into(), json!(region));
        }
        Some(cc::VERTEX) => google_env(plan, source, credential, cc::VERTEX, env)?,
        // The proxy holds the rest (Claude on Google Cloud's project, location and workspace).
        _ => {}
    }
    Ok(())
}

/// The caller secret of `source`'s proxy on its TCP port, from its file.
fn tcp_caller_secret(status: &StatusReport, source: &str) -> Result<String, String> {
    let secret_file = status
        .sources
        .iter()
        .find(|s| s.name == source)
        .and_then(|s| s.endpoints.iter().find(|e| e.kind == "proxy-port"))
        .and_then(|e| e.secret_file.clone())
        .ok_or_else(|| {
            format!("the proxy of `{source}` has no caller secret yet; see `credd status`")
        })?;
    wait_for_secret(&secret_file)
}

/// The caller secret in `secret_file`. A daemon that has just started may not have taken the
/// port (and made its secret) yet: a few seconds' grace.
fn wait_for_secret(secret_file: &str) -> Result<String, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match std::fs::read_to_string(secret_file) {
            Ok(secret) => return Ok(secret),
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                return Err(format!(
                    "cannot read the proxy's caller secret {secret_file} ({e}); see `credd status` for the proxy"
                ));
            }
        }
    }
}

/// What Claude Code runs at each session's start so that the proxy socket answers the first
/// request after a reboot, when no user service has the socket: `credd start`. The whole new
/// `hooks` setting (every hook of the person's own kept), or `None` when one is there already.
fn with_session_start_hook(old: &Map<String, Value>, credd: &str) -> Option<Value> {
    let mut hooks = old.get("hooks").cloned().unwrap_or_else(|| json!({}));
    let hooks_map = hooks.as_object_mut()?;
    let groups = hooks_map.entry("SessionStart").or_insert_with(|| json!([]));
    let present = groups.as_array()?.iter().any(|group| {
        group["hooks"].as_array().is_some_and(|list| {
            list.iter().any(|hook| {
                hook["command"].as_str().is_some_and(|c| {
                    crate::claude_env::runs_credd(c) && c.ends_with(&format!(" {START_ARGS}"))
                })
            })
        })
    });
    if present {
        return None;
    }
    groups.as_array_mut()?.push(json!({
        "hooks": [{ "type": "command", "command": format!("{credd} {START_ARGS}") }]
    }));
    Some(hooks)
}

/// What the `SessionStart` hook runs.
const START_ARGS: &str = "start";

/// The lines of `ANTHROPIC_CUSTOM_HEADERS` in `env` that are not the proxy's caller secret:
/// the person's own headers, which every setup keeps.
fn headers_of_ones_own(env: Option<&Map<String, Value>>) -> Vec<&str> {
    env.and_then(|env| env.get("ANTHROPIC_CUSTOM_HEADERS"))
        .and_then(Value::as_str)
        .map(|headers| {
            headers
                .lines()
                .filter(|line| crate::claude_env::proxy_secret_in(line).is_none())
                .collect()
        })
        .unwrap_or_default()
}

/// The helper and endpoint settings credd owns, as removals: what the proxy replaces.
fn leaving_helpers() -> Map<String, Value> {
    let mut top = Map::new();
    for key in [
        "apiKeyHelper",
        "awsCredentialExport",
        "awsAuthRefresh",
        "gcpAuthRefresh",
    ] {
        top.insert(key.into(), Value::Null);
    }
    let env: Map<String, Value> = [
        "CLAUDE_CODE_API_KEY_HELPER_TTL_MS",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "GCE_METADATA_HOST",
        "GCE_METADATA_IP",
    ]
    .into_iter()
    .map(|key| (key.to_string(), Value::Null))
    .collect();
    top.insert("env".into(), Value::Object(env));
    top
}

/// What a `--via proxy` setup wrote into `old`, as removals, so that Claude Code stops going
/// through the proxy: the caller secret (other custom headers stay), the skipped
/// authentication, the base URLs that point at this machine, and the placeholder key. Empty
/// when `old` sends no caller secret.
fn leaving_the_proxy(old: &Map<String, Value>) -> Map<String, Value> {
    let mut removals = Map::new();
    let Some(old_env) = old.get("env").and_then(Value::as_object) else {
        return removals;
    };
    let sends_secret = old_env
        .get("ANTHROPIC_CUSTOM_HEADERS")
        .and_then(Value::as_str)
        .is_some_and(|h| {
            h.lines()
                .any(|l| crate::claude_env::proxy_secret_in(l).is_some())
        });
    let on_socket = credd_proto::claude_code::BASE_URLS.iter().any(|key| {
        old_env
            .get(*key)
            .and_then(Value::as_str)
            .is_some_and(is_socket_route)
    });
    if !sends_secret && !on_socket {
        return removals;
    }
    let mut env = Map::new();
    let others = headers_of_ones_own(Some(old_env));
    env.insert(
        "ANTHROPIC_CUSTOM_HEADERS".into(),
        if others.is_empty() {
            Value::Null
        } else {
            json!(others.join("\n"))
        },
    );
    for provider in cc::PROVIDERS {
        env.insert(provider.skip_auth.into(), Value::Null);
    }
    for key in credd_proto::claude_code::BASE_URLS {
        if old_env
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|url| url.starts_with("http://127.0.0.1:") || is_socket_route(url))
        {
            env.insert(key.into(), Value::Null);
        }
    }
    if old_env.get("ANTHROPIC_AUTH_TOKEN").and_then(Value::as_str)
        == Some(credd_proto::PROXY_PLACEHOLDER_KEY)
    {
        env.insert("ANTHROPIC_AUTH_TOKEN".into(), Value::Null);
    }
    removals.insert("env".into(), Value::Object(env));
    removals
}

/// Whether `url` is a route on credd's proxy socket.
fn is_socket_route(url: &str) -> bool {
    credd_proto::proxy_route::source_of_url(url).is_some()
}

/// Removes from a project's other settings file what credd wrote there for the other kind of
/// setup: when the proxy is set up, the helper and endpoint settings (only those naming credd
/// or this machine: the file is usually committed, and the rest is the project's) and any
/// proxy settings of its own; the proxy's otherwise. What to print.
fn tidy_other(path: &Path, dry_run: bool) -> Result<String, String> {
    let old = read_settings(path)?;
    let credds = |value: &Value| {
        value
            .as_str()
            .is_some_and(|v| v.contains("credd") || v.contains("127.0.0.1"))
    };
    let mut removals = leaving_helpers();
    removals.retain(|key, _| key == "env" || old.get(key).is_some_and(credds));
    let old_env = old.get("env").and_then(Value::as_object);
    if let Some(Value::Object(env)) = removals.get_mut("env") {
        env.retain(|key, _| old_env.and_then(|e| e.get(key)).is_some_and(credds));
    }
    // Nothing to take from `env`: no `env` added to a file that had none.
    if removals
        .get("env")
        .is_some_and(|env| env.as_object().is_some_and(Map::is_empty))
    {
        removals.remove("env");
    }
    // A caller secret an older credd wrote there goes too: this file is the one a project
    // commits.
    let removals = merge_owned(removals, leaving_the_proxy(&old));
    let new = merge(old.clone(), removals);
    let changes = diff(&old, &new);
    if changes.is_empty() {
        return Ok(String::new());
    }
    let mut out = format!(
        "{} {} (credd's settings for the other route):\n",
        if dry_run { "Would change" } else { "Changed" },
        path.display()
    );
    for line in &changes {
        out += &format!("  {line}\n");
    }
    if !dry_run && let Some(backup) = write_settings(path, &new)? {
        out += &format!(
            "The previous file is in {}; restore it to undo.\n",
            backup.display()
        );
    }
    Ok(out)
}

/// `owned` with `more` added where `owned` says nothing of a key (what `owned` sets wins).
fn merge_owned(mut owned: Map<String, Value>, more: Map<String, Value>) -> Map<String, Value> {
    for (key, value) in more {
        match (owned.get_mut(&key), value) {
            (Some(Value::Object(env)), Value::Object(more_env)) => {
                for (name, value) in more_env {
                    env.entry(name).or_insert(value);
                }
            }
            (Some(_), _) => {}
            (None, value) => {
                owned.insert(key, value);
            }
        }
    }
    owned
}

/// The env lines of `source`'s endpoint of `kind` (named `key` in the config).
fn endpoint_lines<'a>(
    status: &'a StatusReport,
    source: &str,
    kind: &str,
    key: &str,
) -> Result<&'a [String], String> {
    status
        .sources
        .iter()
        .find(|s| s.name == source)
        .and_then(|s| s.endpoints.iter().find(|e| e.kind == kind))
        .map(|e| e.env.as_slice())
        .ok_or_else(|| {
            format!("source `{source}` has no {kind} endpoint; add `{key} = {{}}` to its table in the config")
        })
}

/// Adds the env lines of `source`'s endpoint of `kind` (named `key` in the config).
fn endpoint_env(
    status: &StatusReport,
    source: &str,
    kind: &str,
    key: &str,
    env: &mut Map<String, Value>,
) -> Result<(), String> {
    for line in endpoint_lines(status, source, kind, key)? {
        if let Some((k, v)) = line.split_once('=') {
            env.insert(k.into(), json!(v));
        }
    }
    Ok(())
}

/// How long Claude Code may keep a token before asking again: its 5-minute default, shorter for
/// short-lived tokens, so that it never holds one past the validity credd guarantees.
pub fn helper_ttl_ms(credential: &Credential) -> u64 {
    let lifetime_ms = (credential.expires_at - credential.issued_at).max(0) as u64 * 1000;
    (lifetime_ms / 4).clamp(10_000, 300_000)
}

/// Before credd's settings go into a project's `settings.local.json`: refuses one that git
/// tracks (or cannot tell about), and has git ignore one it would otherwise take; of the
/// proxy's caller secret in the user's own settings in a git-kept home, only says so. What to
/// print.
fn keep_out_of_git(plan: &Plan, dry_run: bool) -> Result<String, String> {
    let caller_secret = plan.via == Some(Via::Proxy) && plan.tcp;
    if plan.source.is_none() || (plan.project.is_none() && !caller_secret) {
        return Ok(String::new());
    }
    // What must not be committed.
    let what = if caller_secret {
        "the proxy's caller secret"
    } else {
        "credd's settings for this machine (the path to credd, its socket)"
    };
    let path = &plan.settings_path;
    if plan.project.is_none() {
        return Ok(match git::standing(path) {
            Ok(git::Standing::Tracked) => format!(
                "Note: git tracks {}; the caller secret is in it now, so keep it out of what you publish (it opens the proxy to no one else, but it is this machine's).\n",
                path.display()
            ),
            _ => String::new(),
        });
    }
    let tracked = || {
        format!(
            "{} is tracked by git, and {what} must not be committed with it; untrack it (`git rm --cached {}`), then run this again",
            path.display(),
            path.display()
        )
    };
    match git::standing(path)? {
        git::Standing::Tracked => Err(tracked()),
        git::Standing::Unguarded { exclude } => {
            let said = |verb: &str| {
                format!(
                    "{verb} `{}` to {}, so that git leaves {what} alone.\n",
                    git::IGNORE_RULE,
                    exclude.display()
                )
            };
            if dry_run {
                return Ok(said("Would add"));
            }
            git::ignore(&exclude)
                .map_err(|e| format!("cannot add to {}: {e}", exclude.display()))?;
            // A rule of the project's own (`!…` in a .gitignore) wins over info/exclude.
            match git::standing(path)? {
                git::Standing::Ignored => Ok(said("Added")),
                git::Standing::Tracked => Err(tracked()),
                _ => Err(format!(
                    "git would still take {} (a rule of the project's own un-ignores it; `git check-ignore -v --no-index {}` shows which), so {what} is not written there",
                    path.display(),
                    path.display()
                )),
            }
        }
        git::Standing::Ignored | git::Standing::NotInGit => Ok(String::new()),
    }
}

fn status_of<'a>(daemon: Option<(&'a StatusReport, &Credential)>) -> Option<&'a StatusReport> {
    daemon.map(|(status, _)| status)
}

/// For a route on the proxy socket: `ANTHROPIC_UNIX_SOCKET` in the environment Claude Code
/// starts in, which settings cannot give it. Already there, or added to the shell's profile
/// (asked for), or what to add. What to print.
fn socket_in_environment(
    plan: &Plan,
    status: Option<&StatusReport>,
    credd: &str,
    dry_run: bool,
) -> Result<String, String> {
    if plan.via != Some(Via::Proxy) || plan.tcp {
        return Ok(String::new());
    }
    let Some(status) = status else {
        return Ok(String::new());
    };
    let Some(socket) = status
        .sources
        .iter()
        .flat_map(|s| &s.endpoints)
        .find_map(|e| e.socket.clone())
    else {
        return Ok(String::new());
    };
    let mut out = profile::offer(&socket, plan.shell_profile, credd, dry_run)?;
    out += &gateway_exported(status, plan.source.as_deref().unwrap_or_default());
    Ok(out)
}

/// A gateway route lives in the environment (its base URL), and `credd env` exports only one:
/// the first gateway in name order. What to say when that is not `source`'s.
fn gateway_exported(status: &StatusReport, source: &str) -> String {
    let is_gateway = |s: &&credd_proto::SourceStatus| {
        s.endpoints.iter().any(|e| {
            e.kind == "proxy" && e.env.iter().any(|l| l.starts_with("ANTHROPIC_BASE_URL="))
        })
    };
    let ours = status
        .sources
        .iter()
        .filter(is_gateway)
        .any(|s| s.name == source);
    match status.sources.iter().find(is_gateway) {
        Some(first) if ours && first.name != source => format!(
            "Note: `credd env` exports the gateway route of `{}` (the first in name order), so Claude Code started from a shell goes there; to use `{source}` instead, have the profile run `credd env {source}` (and the sources of your SDK endpoints).\n",
            first.name
        ),
        _ => String::new(),
    }
}

/// What would win over credd's settings once `new` is in the plan's settings file: Claude
/// Code's other settings files (the project's, with `--project`) and this shell's environment,
/// as doctor reads them. One warning each.
fn overridden(plan: &Plan, new: &Map<String, Value>) -> Vec<String> {
    let mut settings = crate::claude_env::settings_by_precedence(plan.project.as_deref());
    let new = Value::Object(new.clone());
    match settings
        .iter_mut()
        .find(|(path, _)| *path == plan.settings_path)
    {
        Some((_, old)) => *old = new,
        // A new local settings file comes after the managed one; the user's, last.
        None if plan.project.is_some() => {
            let at = usize::from(
                settings
                    .first()
                    .is_some_and(|(p, _)| *p == crate::claude_env::managed_settings_file()),
            );
            settings.insert(at, (plan.settings_path.clone(), new));
        }
        None => settings.push((plan.settings_path.clone(), new)),
    }
    crate::claude_env::overrides(&settings)
        .into_iter()
        .map(|o| {
            format!(
                "Warning: {}, set in {}, wins over {}; unset it there.",
                o.name, o.place, o.over
            )
        })
        .collect()
}

/// Plans and (unless `dry_run`) writes the settings; returns what to print.
pub fn run(
    plan: &Plan,
    daemon: Option<(&StatusReport, &Credential)>,
    dry_run: bool,
) -> Result<String, String> {
    let credd = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot tell where this credd is installed: {e}"))?;
    let credd = credd.display().to_string();
    // Before anything is read, moved or printed: no settings through a symbolic link.
    for path in std::iter::once(&plan.settings_path).chain(&plan.other_path) {
        settings_file::refuse_links(path, plan.project.is_some())?;
    }
    let old = read_settings(&plan.settings_path)?;
    let mut guarded = keep_out_of_git(plan, dry_run)?;
    for path in std::iter::once(&plan.settings_path).chain(&plan.other_path) {
        guarded += &move_old_backup(path, dry_run)?;
    }
    let (mut owned, mut notes) = match (&plan.source, daemon) {
        (Some(source), Some((status, credential))) => {
            let kind = status
                .sources
                .iter()
                .find(|s| &s.name == source)
                .map(|s| s.kind.clone())
                .ok_or_else(|| format!("no source named `{source}`"))?;
            owned_settings(plan, &old, source, &credd, &kind, credential, status)?
        }
        _ => (Map::new(), Vec::new()),
    };
    if plan.source.is_some() && plan.via != Some(Via::Proxy) {
        owned = merge_owned(owned, leaving_the_proxy(&old));
    }
    if plan.statusline {
        match status_line(&old, &credd) {
            Ok(setting) => {
                owned.insert("statusLine".into(), setting);
            }
            Err(note) => notes.push(note),
        }
    }
    let tidied = match (&plan.other_path, &plan.source) {
        (Some(other), Some(_)) => tidy_other(other, dry_run)?,
        _ => String::new(),
    };
    let new = merge(old.clone(), owned);
    if plan.source.is_some() {
        notes.extend(overridden(plan, &new));
    }
    let changes = diff(&old, &new);
    let mut out = guarded + &tidied;
    let path = plan.settings_path.display();
    let notes: String = notes.iter().map(|n| format!("{n}\n")).collect();
    if changes.is_empty() {
        let socket = socket_in_environment(plan, status_of(daemon), &credd, dry_run)?;
        return Ok(format!(
            "{out}{path} already has these settings; nothing to do\n{notes}{socket}"
        ));
    }
    out += &format!(
        "{} {path}:\n",
        if dry_run { "Would change" } else { "Changed" }
    );
    for line in &changes {
        out += &format!("  {line}\n");
    }
    if dry_run {
        let socket = socket_in_environment(plan, status_of(daemon), &credd, dry_run)?;
        return Ok(out + &notes + &socket);
    }
    match write_settings(&plan.settings_path, &new)? {
        Some(backup) => {
            out += &format!(
                "The previous file is in {}; restore it to undo.\n",
                backup.display()
            )
        }
        None => out += &format!("Delete {path} to undo.\n"),
    }
    out += &notes;
    out += &socket_in_environment(plan, status_of(daemon), &credd, dry_run)?;
    if let Some(env) = new.get("env")
        && env["GCE_METADATA_HOST"].is_string()
        && let Some(file) = crate::claude_env::adc_file_ahead_of_metadata(env)
    {
        out += &format!(
            "Note: Claude Code reads {} itself before it asks a metadata server; move that file where only credd reads it and name it in the source's `credentials_file`, or credd's endpoint is never asked.\n",
            file.display()
        );
    }
    Ok(out)
}

/// `credd setup claude-code`: the plan from the command line, then the settings written (or
/// shown, with `dry_run`).
pub fn command(args: crate::cli::ClaudeCode) -> Result<String, crate::Failure> {
    use credd_proto::{Request, Response};
    let crate::cli::ClaudeCode {
        source,
        user: _,
        project,
        via,
        base_url,
        region,
        provider,
        workspace,
        statusline,
        shell_profile,
        tcp,
        dry_run,
    } = args;
    if (tcp || shell_profile.is_some()) && via != Some(Via::Proxy) {
        return Err(crate::Failure::usage(
            "--tcp and --shell-profile go with --via proxy",
        ));
    }

    use crate::{Failure, ask, unexpected};
    // Absolute from here on: git is asked about the project from the nearest directory of it
    // that exists, and a relative path has none above its first part.
    let project = project
        .map(|dir| match dir.as_os_str().is_empty() {
            true => Err("--project needs a directory".to_string()),
            false => std::path::absolute(&dir)
                .map_err(|e| format!("cannot tell where {} is: {e}", dir.display())),
        })
        .transpose()
        .map_err(Failure::usage)?;
    let settings_path = match &project {
        // Every route is this user's, on this machine (the absolute path to this credd, the
        // proxy's socket or caller secret, an endpoint's port): never in the settings file a
        // project commits, but in the one git leaves alone.
        Some(dir) => dir.join(".claude/settings.local.json"),
        None => std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .ok_or_else(|| Failure::usage("HOME is not set; use --project DIR"))?
            .join(".claude/settings.json"),
    };
    // Where an earlier credd (or a person) may have put credd's settings: the committed file.
    let other_path = project
        .as_ref()
        .map(|dir| dir.join(".claude/settings.json"));
    let plan = Plan {
        settings_path,
        source,
        via,
        base_url,
        region,
        provider,
        workspace,
        statusline,
        other_path,
        project,
        tcp,
        shell_profile,
    };
    let Some(source) = plan.source.clone() else {
        return run(&plan, None, dry_run).map_err(Failure::usage);
    };
    let credential = match ask(
        Request::Get {
            source,
            min_valid_secs: Some(0),
            caller: None,
            audience: None,
        },
        true,
    )? {
        Response::Credential(c) => c,
        other => return Err(unexpected(other)),
    };
    let status = match ask(Request::Status, true)? {
        Response::Status(status) => status,
        other => return Err(unexpected(other)),
    };
    run(&plan, Some((&status, &credential)), dry_run).map_err(Failure::usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_every_key_credd_does_not_own() {
        let old = json!({"model": "opus", "env": {"FOO": "bar", "AWS_REGION": "eu-west-1"}, "permissions": {"allow": ["Bash(ls)"]}});
        let owned = json!({"awsCredentialExport": "credd get x --format aws", "env": {"AWS_REGION": "us-east-1"}});
        let merged = merge(
            old.as_object().unwrap().clone(),
            owned.as_object().unwrap().clone(),
        );
        assert_eq!(merged["model"], "opus");
        assert_eq!(merged["permissions"]["allow"][0], "Bash(ls)");
        assert_eq!(merged["env"]["FOO"], "bar");
        assert_eq!(merged["env"]["AWS_REGION"], "us-east-1");
        let changes = diff(old.as_object().unwrap(), &merged);
        assert!(
            changes.contains(&"+ awsCredentialExport = \"credd get x --format aws\"".to_string()),
            "{changes:?}"
        );
        assert!(
            changes.iter().any(|c| c.starts_with("~ env.AWS_REGION")),
            "{changes:?}"
        );
        assert_eq!(changes.len(), 2, "{changes:?}");
    }

    #[test]
    fn helper_ttl_never_outlives_short_tokens() {
        let cred = |lifetime: i64| Credential {
            source: "s".into(),
            secret: credd_proto::CredentialSecret::Token {
                token: credd_proto::Secret::new("t"),
            },
            issued_at: 0,
            expires_at: lifetime,
            metadata: Default::default(),
        };
        assert_eq!(helper_ttl_ms(&cred(3600)), 300_000);
        assert_eq!(helper_ttl_ms(&cred(300)), 75_000);
    }

    #[test]
    fn leaving_the_proxy_removes_only_what_it_wrote() {
        let old = json!({"env": {
            "ANTHROPIC_CUSTOM_HEADERS": "X-Team: blue\nX-Credd-Proxy-Secret: 00ff",
            "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1",
            "ANTHROPIC_BEDROCK_BASE_URL": "http://127.0.0.1:47001",
            "ANTHROPIC_BASE_URL": "https://llm-gateway.example.com",
            "AWS_REGION": "eu-west-1",
        }});
        let old = old.as_object().unwrap();
        let left = merge(old.clone(), leaving_the_proxy(old));
        assert_eq!(
            left["env"],
            json!({
                "ANTHROPIC_CUSTOM_HEADERS": "X-Team: blue",
                "ANTHROPIC_BASE_URL": "https://llm-gateway.example.com",
                "AWS_REGION": "eu-west-1",
            })
        );
        // Settings that send no caller secret were not the proxy's.
        let mine = json!({"env": {"CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1"}});
        assert!(leaving_the_proxy(mine.as_object().unwrap()).is_empty());
    }

    #[test]
    fn a_project_switched_to_the_proxy_loses_only_credds_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(
            &path,
            json!({
                "apiKeyHelper": "/usr/local/bin/credd get gateway",
                "awsAuthRefresh": "aws sso login --profile team",
                "env": {
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:47002/aws/credentials",
                    "GCE_METADATA_HOST": "metadata.internal.example",
                },
                "model": "opus",
            })
            .to_string(),
        )
        .unwrap();
        let said = tidy_other(&path, false).unwrap();
        assert!(said.contains("apiKeyHelper"), "{said}");
        let left: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            left,
            json!({
                "awsAuthRefresh": "aws sso login --profile team",
                "env": {"GCE_METADATA_HOST": "metadata.internal.example"},
                "model": "opus",
            })
        );
        assert_eq!(tidy_other(&path, false).unwrap(), "");
    }

    #[test]
    fn a_caller_secret_an_older_credd_left_in_the_committed_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(
            &path,
            json!({"env": {
                "ANTHROPIC_BASE_URL": "http://127.0.0.1:47001",
                "ANTHROPIC_AUTH_TOKEN": credd_proto::PROXY_PLACEHOLDER_KEY,
                "ANTHROPIC_CUSTOM_HEADERS": "X-Credd-Proxy-Secret: 0badc0de\nX-Team: blue",
            }})
            .to_string(),
        )
        .unwrap();
        let said = tidy_other(&path, false).unwrap();
        assert!(!said.contains("0badc0de"), "the secret is shown");
        let left: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            left == json!({"env": {"ANTHROPIC_CUSTOM_HEADERS": "X-Team: blue"}}),
            "left: {:?}",
            left["env"]
                .as_object()
                .map(|env| env.keys().collect::<Vec<_>>())
        );
    }
}
