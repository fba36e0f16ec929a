//! `credd setup mcp SERVER`: points Claude Code at a remote MCP server through credd's proxy
//! route for it (`[mcp.NAME]`), so that every request carries the source's current token, not
//! the one a `headersHelper` printed when the session started.
//!
//! The server goes where `claude mcp add --scope user` puts it: `mcpServers` in Claude Code's
//! `.claude.json` (in `CLAUDE_CONFIG_DIR`, else the home directory), as an `http` server on the
//! route's port whose `headersHelper` is `credd mcp-headers NAME`: the route's caller secret is
//! read from its 0600 file when a session starts, never written into Claude Code's file. Every
//! other key is kept; the old file is backed up and the new one written atomically with mode
//! 0600.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::settings_file::{read_settings, refuse_links, write_settings};
use crate::Failure;

/// Claude Code's global config file, where user-scoped MCP servers live.
fn claude_json() -> Result<PathBuf, String> {
    std::env::var_os("CLAUDE_CONFIG_DIR")
        .filter(|d| !d.is_empty())
        .or_else(|| std::env::var_os("HOME"))
        .map(|dir| PathBuf::from(dir).join(".claude.json"))
        .ok_or_else(|| "HOME is not set".to_string())
}

/// The route of MCP server `server` (`[mcp.NAME]`) in the daemon's `status`, if the config
/// has one.
pub fn route_in(
    status: credd_proto::StatusReport,
    server: &str,
) -> Option<credd_proto::EndpointStatus> {
    status
        .sources
        .into_iter()
        .flat_map(|s| s.endpoints)
        .find(|e| e.kind == "mcp" && e.server.as_deref() == Some(server))
}

/// The route of MCP server `server` in the daemon's status, once it holds its port: a daemon
/// that has just started is given a few seconds. Until then Claude Code is not sent there,
/// where another user may be listening.
fn route_of(server: &str) -> Result<credd_proto::EndpointStatus, Failure> {
    use credd_proto::{Request, Response};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = match crate::ask(Request::Status, true)? {
            Response::Status(status) => status,
            other => return Err(crate::unexpected(other)),
        };
        let endpoint = route_in(status, server).ok_or_else(|| {
                Failure::new(
                    crate::failure::Exit::UnknownSource,
                    format!(
                        "the config defines no MCP server `{server}`; add [mcp.{server}] with its `source` and `url` (see docs/proxy.md)"
                    ),
                )
            })?;
        if endpoint.listening {
            return Ok(endpoint);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Failure::usage(format!(
                "the route of MCP server `{server}` does not hold its port: {}",
                endpoint
                    .error
                    .as_deref()
                    .unwrap_or("it is still being taken; see `credd status`")
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `credd mcp-headers NAME`: the header that opens the route of MCP server `server`, as its
/// `headersHelper` prints it (a JSON object).
pub fn headers(server: &str) -> Result<String, Failure> {
    let endpoint = route_of(server)?;
    let secret_file = endpoint.secret_file.as_deref().ok_or_else(|| {
        Failure::usage(format!(
            "the route of MCP server `{server}` has no caller secret"
        ))
    })?;
    let secret = super::wait_for_secret(secret_file).map_err(Failure::usage)?;
    Ok(format!(
        "{}\n",
        json!({ credd_proto::PROXY_SECRET_HEADER: secret.trim() })
    ))
}

/// Writes (or, with `dry_run`, shows) the entry for MCP server `server`; what to print.
pub fn command(server: &str, dry_run: bool) -> Result<String, Failure> {
    let endpoint = route_of(server)?;
    let credd = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Failure::usage(format!("cannot tell where this credd is installed: {e}")))?;
    let path = claude_json().map_err(Failure::usage)?;
    refuse_links(&path, false).map_err(Failure::usage)?;
    let old = read_settings(&path).map_err(Failure::usage)?;
    let entry = json!({
        "type": "http",
        "url": endpoint.url,
        "headersHelper": format!("{} mcp-headers {server}", credd.display()),
    });
    let mut servers = old
        .get("mcpServers")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let was = servers.insert(server.to_string(), entry.clone());
    if was.as_ref() == Some(&entry) {
        return Ok(format!(
            "{} already has MCP server `{server}` through credd; nothing to do\n",
            path.display()
        ));
    }
    let verb = match (dry_run, was.is_some()) {
        (true, _) => "Would set",
        (false, true) => "Replaced",
        (false, false) => "Added",
    };
    let mut out = format!(
        "{verb} mcpServers.{server} in {}:\n  {entry}\n",
        path.display()
    );
    if dry_run {
        return Ok(out);
    }
    let mut new: Map<String, Value> = old;
    new.insert("mcpServers".into(), Value::Object(servers));
    if let Some(backup) = write_settings(&path, &new).map_err(Failure::usage)? {
        out += &format!(
            "The previous file is in {}; restore it to undo.\n",
            backup.display()
        );
    }
    out += "Claude Code rewrites this file while it runs: start a new session to use the server.\n";
    Ok(out)
}
