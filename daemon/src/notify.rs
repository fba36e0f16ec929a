//! Telling the person before a login is needed: when a source that was serving finds that only
//! a login can renew it (a refused refresh token, an SSO or console session past its end), or
//! its refreshes keep failing while what it holds runs out, the daemon shows one desktop
//! notification naming the source and what to run, minutes before Claude Code would fail with
//! it. Freedesktop notifications over the session D-Bus on Linux and the BSDs, `osascript` on
//! macOS. `notifications = false` in the config turns them off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// How far ahead of a credential's end a failing source says so.
pub const AHEAD: Duration = Duration::from_secs(15 * 60);

/// Follows the config's `notifications` setting.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Shows `body` under `summary` on the person's desktop, in the background; a desktop that
/// cannot be reached is logged, never an error of the source's.
pub fn alert(summary: String, body: String) {
    if cfg!(test) || !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    tracing::info!("desktop notification: {summary}: {body}");
    tokio::spawn(async move {
        if let Err(e) = show(&summary, &body).await {
            tracing::warn!("the desktop notification could not be shown: {e}");
        }
    });
}

#[cfg(target_os = "macos")]
async fn show(summary: &str, body: &str) -> Result<(), String> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let script = format!(
        "display notification \"{}\" with title \"credd\" subtitle \"{}\"",
        quote(body),
        quote(summary)
    );
    let status = tokio::process::Command::new("osascript")
        .args(["-e", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| format!("cannot run osascript: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("osascript failed ({status})"))
    }
}

#[cfg(not(target_os = "macos"))]
async fn show(summary: &str, body: &str) -> Result<(), String> {
    notify_rust::Notification::new()
        .appname("credd")
        .summary(summary)
        .body(body)
        // Stays until the person sees it: it asks them to act.
        .timeout(notify_rust::Timeout::Never)
        .show_async()
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
