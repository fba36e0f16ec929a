//! `credd status` for a person: the daemon, then one line per source.

use std::fmt::Write as _;

use credd_proto::StatusReport;

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
        let _ = writeln!(
            out,
            "\nno sources configured; add a [sources.NAME] table to the config"
        );
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
        for endpoint in &source.endpoints {
            let _ = writeln!(
                out,
                "\n{} {} endpoint: {}",
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
    out
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

    #[test]
    fn spans_read_naturally() {
        assert_eq!(relative(42), "in 42s");
        assert_eq!(relative(-125), "2m05s ago");
        assert_eq!(relative(3 * 3600 + 60), "in 3h01m");
        assert_eq!(relative(2 * 86400 + 3600), "in 2d01h");
    }
}
