//! Watching the config file, so an edit takes effect without a restart.
//!
//! Editors save in many ways (write in place, write-and-rename, delete-and-create), so the
//! directory is watched, not the file, and every event that names the file triggers a reload
//! after a short pause that lets the editor finish.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long to wait after the last event before reloading.
const SETTLE: Duration = Duration::from_millis(150);

/// Keeps the watch alive; dropping it stops watching.
pub struct ConfigWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Calls `on_change` (on the runtime) after the file at `path` changes.
pub fn watch(path: &Path, on_change: impl Fn() + Send + 'static) -> notify::Result<ConfigWatch> {
    let file: PathBuf = path.to_path_buf();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event
                .paths
                .iter()
                .any(|p| p == &file || p.file_name() == file.file_name())
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Let the burst of events from one save settle.
            loop {
                match tokio::time::timeout(SETTLE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            on_change();
        }
    });
    Ok(ConfigWatch { _watcher: watcher })
}
