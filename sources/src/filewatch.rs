//! Watching files the daemon depends on, so a change takes effect without a restart: its own
//! config, and the upstream tools' files (the AWS config and SSO token cache), where a login
//! done elsewhere shows up.
//!
//! Editors and tools save in many ways (write in place, write-and-rename, delete-and-create), so
//! directories are watched, not files, and every event that names a watched file triggers the
//! callback once, after a short pause that lets the writer finish.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long to wait after the last event before acting.
const SETTLE: Duration = Duration::from_millis(150);

/// What to watch: a directory, and optionally only one file in it.
pub struct Target {
    pub dir: PathBuf,
    pub file: Option<OsString>,
    pub recursive: bool,
}

impl Target {
    /// One file (watched through its directory).
    pub fn file(path: &Path) -> Self {
        Target {
            dir: path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            file: path.file_name().map(OsString::from),
            recursive: false,
        }
    }

    /// Everything under a directory.
    pub fn tree(dir: &Path) -> Self {
        Target {
            dir: dir.to_path_buf(),
            file: None,
            recursive: true,
        }
    }

    fn matches(&self, path: &Path) -> bool {
        path.starts_with(&self.dir)
            && self
                .file
                .as_ref()
                .is_none_or(|f| path.file_name() == Some(f.as_os_str()))
    }
}

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

/// Calls `on_change` (on the runtime) after any target changes. Targets whose directory does not
/// exist are skipped; the result says which were watched.
pub fn watch(
    targets: Vec<Target>,
    on_change: impl Fn() + Send + 'static,
) -> notify::Result<(Watch, Vec<PathBuf>)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watched = Vec::new();
    let mut active = Vec::new();
    for target in targets {
        if target.dir.is_dir() {
            active.push(target);
        }
    }
    let filters: Vec<(PathBuf, Option<OsString>, bool)> = active
        .iter()
        .map(|t| (t.dir.clone(), t.file.clone(), t.recursive))
        .collect();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            // Reading a file (as a fetch does) is not a change; acting on it would loop.
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            let hit = event.paths.iter().any(|p| {
                filters.iter().any(|(dir, file, recursive)| {
                    Target {
                        dir: dir.clone(),
                        file: file.clone(),
                        recursive: *recursive,
                    }
                    .matches(p)
                })
            });
            if hit {
                let _ = tx.send(());
            }
        }
    })?;
    for target in &active {
        let mode = if target.recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        watcher.watch(&target.dir, mode)?;
        watched.push(target.dir.clone());
    }
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
    Ok((Watch { _watcher: watcher }, watched))
}
