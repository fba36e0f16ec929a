//! `credd status` for a person: the daemon, then one line per source.

use std::fmt::Write as _;

use credd_proto::{Request, Response, SourceState, StatusReport};

pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "credd-daemon {} (pid {}, protocol {}), up {}",
        report.daemon_version,
        report.pid,
        report.protocol,
        span(report.uptime_secs as i64)
    );
    let _ = writeln!(out, "socket: {}", report.socket);
    let _ = writeln!(out, "config: {}", report.config_path);
    if let Some(error) = &report.config_error {
        let _ = writeln!(
            out,
            "config error: {error} (the previous config stays in force)"
        );
    }
    if report.sources.is_empty() {
        found_lines(&mut out, &crate::discovery::discover());
        return out;
    }
    let header = [
        "SOURCE",
        "KIND",
        "STATE",
        "EXPIRES",
        "NEXT REFRESH",
        "CALLS",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 7]> = report
        .sources
        .iter()
        .map(|s| {
            [
                s.label(),
                s.kind.clone(),
                s.state.as_str().to_string(),
                s.expires_at
                    .map_or("-".into(), |t| relative(t - report.now)),
                s.next_refresh_at
                    .map_or("-".into(), |t| relative(t - report.now)),
                s.upstream_calls.to_string(),
                s.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    out.push('\n');
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    for source in &report.sources {
        if let Some(offset) = source.upstream_clock_offset_secs {
            let side = if offset > 0 { "ahead of" } else { "behind" };
            let _ = writeln!(
                out,
                "\n{}: the upstream's clock is {} {side} this machine's; expiry times are corrected for it",
                source.label(),
                span(offset.abs())
            );
        }
        if let Some(signed_in) = &source.signed_in {
            let _ = writeln!(out, "\n{}: {signed_in}", source.label());
        }
        if let Some(persistence) = &source.persistence {
            let _ = writeln!(out, "\n{}: {persistence}", source.label());
        }
        for endpoint in &source.endpoints {
            let on = endpoint
                .socket
                .as_ref()
                .map(|socket| format!(" on {socket}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "\n{} {} endpoint: {}{on}",
                source.name, endpoint.kind, endpoint.url
            );
            if let Some(error) = &endpoint.error {
                let _ = writeln!(out, "  error: {error}");
            }
            for env in &endpoint.env {
                let _ = writeln!(out, "  export {env}");
            }
        }
    }
    for forward in &report.forwards {
        forward_lines(&mut out, forward, report.now);
    }
    out
}

/// With no sources yet: the sign-ins found on this machine, and the command that adopts them.
fn found_lines(out: &mut String, found: &crate::discovery::Discovery) {
    let _ = writeln!(out, "\nno sources configured yet.");
    if !found.found.is_empty() {
        let _ = writeln!(out, "Found on this machine:");
        for f in &found.found {
            let _ = writeln!(out, "  {} (as the source `{}`)", f.what, f.name);
        }
    }
    if let Some((provider, _)) = &found.claude {
        let _ = writeln!(out, "  Claude Code, set up for {provider}");
    }
    for (what, problem) in &found.problems {
        let _ = writeln!(out, "  not read: {what} {problem}");
    }
    if found.found.is_empty() {
        let _ = writeln!(
            out,
            "Add a [sources.NAME] table to the config (docs/sources.md has one of each kind)."
        );
    } else {
        let _ = writeln!(
            out,
            "Run `credd init` to use them (`credd init --yes` takes them all)."
        );
    }
}

/// A forward: what it serves, to whom, and whether anything uses it.
fn forward_lines(out: &mut String, forward: &credd_proto::ForwardStatus, now: i64) {
    let _ = writeln!(
        out,
        "
forward {}: serves {} in {}",
        forward.name,
        forward.sources.join(", "),
        forward.dir
    );
    if !forward.allow_uids.is_empty() {
        let uids: Vec<String> = forward.allow_uids.iter().map(u32::to_string).collect();
        let _ = writeln!(out, "  also serves uid {}", uids.join(", "));
    }
    if let Some(error) = &forward.error {
        let _ = writeln!(out, "  error: {error}");
    }
    let used = match (forward.last_used_at, forward.last_peer_uid) {
        (Some(at), Some(uid)) if at >= now => format!("last used just now by uid {uid}"),
        (Some(at), Some(uid)) => format!("last used {} by uid {uid}", relative(at - now)),
        _ => "never used".to_string(),
    };
    let _ = writeln!(
        out,
        "  {} connected; {used}",
        match forward.connected {
            0 => "nothing".to_string(),
            1 => "1 connection".to_string(),
            n => format!("{n} connections"),
        }
    );
}

/// `credd status --short`: one line for Claude Code's `statusLine`, which runs it often. It
/// never starts the daemon (a status line must not), and says so rather than failing.
pub fn short_line() -> String {
    match crate::ask(Request::Status, false) {
        Ok(Response::Status(report)) => short(&report),
        Err(crate::Failure {
            exit: crate::Exit::Unreachable,
            ..
        }) => "credd: not running\n".into(),
        _ => "credd: status unreadable (see `credd doctor`)\n".into(),
    }
}

/// Each source that has been asked for, with how long its credential lasts or what it needs:
/// `bedrock 47m · vertex needs login`.
pub fn short(report: &StatusReport) -> String {
    let mut parts: Vec<String> = Vec::new();
    if report.config_error.is_some() {
        parts.push("config error".into());
    }
    for source in report.sources.iter().filter(|s| s.audience.is_none()) {
        // An endpoint without its port: whatever holds it gets what was meant for credd (the
        // proxy's callers send it their prompts), so this shows even for a source not asked.
        for endpoint in source.endpoints.iter().filter(|e| e.error.is_some()) {
            parts.push(format!("{} {} PORT NOT HELD", source.name, endpoint.kind));
        }
        let left = source
            .expires_at
            .map(|t| t - report.now)
            .filter(|&left| left > 0)
            .map(compact);
        let what = match (source.state, left) {
            (SourceState::Idle, _) => continue,
            (SourceState::NeedsLogin, _) => "needs login".to_string(),
            (SourceState::Failing, Some(left)) => format!("{left} (failing)"),
            (SourceState::Failing, None) => "failing".into(),
            (_, Some(left)) => left,
            (_, None) => "expired".into(),
        };
        parts.push(format!("{} {what}", source.name));
    }
    if parts.is_empty() {
        return "credd: nothing fetched yet\n".into();
    }
    format!("{}\n", parts.join(" · "))
}

/// "47m", "3h05m", "2d": how long, for a status line.
fn compact(secs: i64) -> String {
    if secs < 3600 {
        format!("{}m", (secs + 59) / 60)
    } else if secs < 86400 {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    } else {
        format!("{}d", secs / 86400)
    }
}

/// "in 52m" or "3m ago".
fn relative(delta_secs: i64) -> String {
    if delta_secs >= 0 {
        format!("in {}", span(delta_secs))
    } else {
        format!("{} ago", span(-delta_secs))
    }
}

fn span(secs: i64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credd_proto::SourceStatus;

    fn source(name: &str, state: SourceState, expires_in: Option<i64>) -> SourceStatus {
        SourceStatus {
            name: name.into(),
            audience: None,
            kind: "aws".into(),
            state,
            expires_at: expires_in.map(|e| 1000 + e),
            next_refresh_at: None,
            last_refresh_at: None,
            last_error: None,
            consecutive_failures: 0,
            upstream_calls: 0,
            upstream_clock_offset_secs: None,
            endpoints: Vec::new(),
            persistence: None,
            signed_in: None,
        }
    }

    #[test]
    fn the_short_line_names_what_lasts_and_what_needs_a_person() {
        let mut report = StatusReport {
            daemon_version: "0".into(),
            protocol: 4,
            pid: 1,
            uptime_secs: 1,
            now: 1000,
            socket: String::new(),
            config_path: String::new(),
            config_error: None,
            sources: vec![
                source("bedrock", SourceState::Fresh, Some(47 * 60 - 10)),
                source("vertex", SourceState::NeedsLogin, None),
                source("unused", SourceState::Idle, None),
                source("gateway", SourceState::Failing, Some(7200)),
                source("old", SourceState::Expired, Some(-5)),
            ],
            forwards: Vec::new(),
        };
        assert_eq!(
            short(&report),
            "bedrock 47m · vertex needs login · gateway 2h00m (failing) · old expired\n"
        );
        report.sources.retain(|s| s.state == SourceState::Idle);
        assert_eq!(short(&report), "credd: nothing fetched yet\n");
        // A port another process holds shows, asked for or not.
        report.sources[0]
            .endpoints
            .push(credd_proto::EndpointStatus {
                kind: "proxy-port".into(),
                url: "http://127.0.0.1:47001".into(),
                env: Vec::new(),
                error: Some("127.0.0.1:47001 is held by ANOTHER USER (uid 1001)".into()),
                secret_file: None,
                socket: None,
                server: None,
                listening: false,
            });
        assert_eq!(short(&report), "unused proxy-port PORT NOT HELD\n");
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(relative(42), "in 42s");
        assert_eq!(relative(-125), "2m05s ago");
        assert_eq!(relative(3 * 3600 + 60), "in 3h01m");
        assert_eq!(relative(2 * 86400 + 3600), "in 2d01h");
    }
}
