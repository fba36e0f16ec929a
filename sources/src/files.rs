//! The user's files: where home is, and writing files that hold secrets (mode 0600, written
//! whole or not at all).
//!
//! A reader (the AWS CLI, an SDK, a second credd) sees either the old file or the new one, never
//! a torn one, even if the daemon dies mid-write ([`credd_proto::private_file`]); temporary
//! files that writers killed mid-write left behind are removed.

use std::path::Path;

/// Writes `contents` to `path` atomically with mode 0600. With `private_dir`, the directory is
/// created 0700 and must be private; otherwise it is only created if missing.
pub fn write_private(path: &Path, contents: &[u8], private_dir: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if private_dir {
        credd_proto::paths::ensure_private_dir(dir).map_err(std::io::Error::other)?;
    } else {
        create_dir_0700(dir)?;
    }
    credd_proto::private_file::replace(path, contents)?;
    remove_orphaned_temporaries(path);
    Ok(())
}

/// Removes the temporary files that writers killed mid-write left beside `path` (those whose
/// process is gone).
fn remove_orphaned_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| credd_proto::private_file::temporary_writer(&name, n))
        else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}

fn create_dir_0700(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The user's home directory: `HOME`, else what the OS says.
pub fn home_dir() -> std::path::PathBuf {
    std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()))
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/token.json");
        write_private(&path, b"old", false).unwrap();
        write_private(&path, b"new", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "a temporary file was left behind");
    }
}
