//! Replacing a file that only this user may read, whole or not at all: the daemon's token and
//! cache files, and the settings `credd setup` writes.
//!
//! The bytes go to a temporary file beside the target, made new for this write (`O_EXCL`, never
//! through a symbolic link someone left at its name, mode 0600), flushed to disk, and renamed
//! over the target. A reader sees the old file or the new one, never a torn one; two writers of
//! one file never share a temporary file. Its name is `<target>.credd-<pid>-<unique>.tmp`, so
//! one left by a writer that died can be told by its pid.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The infix of temporary files' names: `<target>` + this + `<pid>-<unique>.tmp`.
pub const TEMPORARY_INFIX: &str = ".credd-";

/// Writes `contents` over `target` as described above.
pub fn replace(target: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = temporary_beside(target);
    let mut options = std::fs::OpenOptions::new();
    options.create_new(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let replaced = written.and_then(|()| std::fs::rename(&tmp, target));
    if replaced.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    replaced
}

/// The pid in the name of a temporary file beside a target named `target_name`, if `name` is
/// one.
pub fn temporary_writer(target_name: &str, name: &str) -> Option<u32> {
    name.strip_prefix(target_name)?
        .strip_prefix(TEMPORARY_INFIX)?
        .strip_suffix(".tmp")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn temporary_beside(target: &Path) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let unique = (WRITES.fetch_add(1, Ordering::Relaxed) << 32) | u64::from(nanos);
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        "{TEMPORARY_INFIX}{}-{unique:016x}.tmp",
        std::process::id()
    ));
    target.with_file_name(name)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_with_mode_0600_and_names_its_writer() {
        let dir = std::env::temp_dir().join(format!("credd-private-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("settings.json");
        replace(&target, b"old").unwrap();
        replace(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "a temporary file was left"
        );
        let tmp = temporary_beside(&target);
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            temporary_writer("settings.json", name),
            Some(std::process::id())
        );
        assert_ne!(tmp, temporary_beside(&target));
        assert_eq!(temporary_writer("settings.json", "settings.json.bak"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_at_the_temporary_name_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("credd-private-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "kept").unwrap();
        let target = dir.join("t");
        // Whatever name the next write picks, a link there would be refused (O_EXCL).
        let tmp = temporary_beside(&target);
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let mut options = std::fs::OpenOptions::new();
        options.create_new(true).write(true);
        assert!(options.open(&tmp).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
