//! What the daemon does to itself before anything else, as ssh-agent and gpg-agent do: it holds
//! every credential its user has, so it must not leave them in a core file, must not be open to
//! another user's debugger, must not keep what the shell that started it had open, and must have
//! the descriptors it needs when a flood of connections arrives.

use std::io;

/// Everything below, in order; each step that fails is reported and the others still run.
pub fn harden_process() -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = close_inherited_descriptors() {
        problems.push(format!("cannot close inherited descriptors: {e}"));
    }
    if let Err(e) = forbid_core_dumps() {
        problems.push(format!("cannot turn core dumps off: {e}"));
    }
    if let Err(e) = raise_descriptor_limit() {
        problems.push(format!("cannot raise the open-file limit: {e}"));
    }
    problems
}

/// No core file, whatever the shell allowed, and (on Linux) no `ptrace` or `/proc/PID/mem`
/// by anyone but root.
#[cfg(unix)]
fn forbid_core_dumps() -> io::Result<()> {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_DUMPABLE takes a plain integer argument.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The soft limit on open descriptors raised to the hard one (at most 65536): the common soft
/// limit (1024) is less than what the socket and the endpoints may hold at once.
#[cfg(unix)]
fn raise_descriptor_limit() -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // macOS refuses more than OPEN_MAX for the soft limit, whatever the hard one says; and
    // where the hard limit is huge (containers: a million and more) the children credd runs
    // (helpers, gcloud, az) inherit it, and some loop over every possible descriptor.
    let ceiling = if cfg!(target_os = "macos") {
        10_240
    } else {
        65_536
    };
    let wanted = limit.rlim_max.min(ceiling);
    if limit.rlim_cur >= wanted {
        return Ok(());
    }
    limit.rlim_cur = wanted;
    // SAFETY: setrlimit reads a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The soft limit on open descriptors, after [`harden_process`].
#[cfg(unix)]
pub fn descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur
}

/// Closes every descriptor above stderr that the starting process left open (a caller's pipe,
/// a terminal, a file), except those systemd hands over for socket activation.
#[cfg(unix)]
fn close_inherited_descriptors() -> io::Result<()> {
    let first_kept = 3;
    let kept = activated_descriptors();
    let listing = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    // The listing's own descriptor is among those read; it is closed when the listing is
    // dropped, before the others are, and closing it again finds nothing.
    let open: Vec<i32> = std::fs::read_dir(listing)?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd >= first_kept && !(first_kept..first_kept + kept).contains(&fd) {
            // SAFETY: nothing in this process has taken ownership of inherited descriptors yet.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// How many descriptors (from 3) systemd passed to this very process.
#[cfg(unix)]
fn activated_descriptors() -> i32 {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    if !for_us {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(not(unix))]
fn forbid_core_dumps() -> io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn raise_descriptor_limit() -> io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
pub fn descriptor_limit() -> u64 {
    u64::MAX
}

#[cfg(not(unix))]
fn close_inherited_descriptors() -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn core_dumps_are_off_and_the_process_is_not_dumpable() {
        super::forbid_core_dumps().unwrap();
        // SAFETY: PR_GET_DUMPABLE takes no argument.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }, 0);
        let mut core = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: getrlimit writes a valid rlimit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut core) }, 0);
        assert_eq!((core.rlim_cur, core.rlim_max), (0, 0));
    }
}
