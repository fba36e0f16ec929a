//! Who is calling `credd get`, so the daemon can tell a routine re-ask from a re-ask after the
//! caller's upstream rejected the credential.
//!
//! Claude Code runs its `apiKeyHelper` through `/bin/sh -c`, keeps the answer for
//! `CLAUDE_CODE_API_KEY_HELPER_TTL_MS` (5 minutes by default) and re-runs the helper at once
//! when the API answers 401. The caller is the nearest ancestor that is not a shell; its process
//! id and start time name it for as long as it runs.

use credd_proto::Caller;

/// The calling program, when it is one that caches our answer for a known time.
pub fn detect() -> Option<Caller> {
    use credd_proto::claude_code::{DEFAULT_HELPER_TTL, ENTRYPOINT_ENV, HELPER_TTL_ENV};
    let cache_ttl_ms = match std::env::var(HELPER_TTL_ENV) {
        Ok(v) => v.trim().parse().ok()?,
        // Claude Code sets its entrypoint variable for everything it runs.
        Err(_) if std::env::var_os(ENTRYPOINT_ENV).is_some() => {
            DEFAULT_HELPER_TTL.as_millis() as u64
        }
        Err(_) => return None,
    };
    Some(Caller {
        id: caller_id()?,
        cache_ttl_ms,
    })
}

/// Why an inference helper runs, as Claude Code says (`CLAUDE_HELPER_CONTEXT`).
pub fn helper_context() -> Option<String> {
    std::env::var(credd_proto::claude_code::HELPER_CONTEXT_ENV).ok()
}

#[cfg(target_os = "linux")]
fn caller_id() -> Option<String> {
    const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ash", "ksh", "fish", "busybox"];
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..4 {
        let stat = ProcStat::read(pid)?;
        if !SHELLS.contains(&stat.comm.as_str()) || stat.ppid <= 1 {
            return Some(format!("{pid}@{}", stat.start_time));
        }
        pid = stat.ppid;
    }
    None
}

#[cfg(all(unix, not(target_os = "linux")))]
fn caller_id() -> Option<String> {
    Some(std::os::unix::process::parent_id().to_string())
}

#[cfg(not(unix))]
fn caller_id() -> Option<String> {
    None
}

#[cfg(target_os = "linux")]
struct ProcStat {
    comm: String,
    ppid: u32,
    start_time: u64,
}

#[cfg(target_os = "linux")]
impl ProcStat {
    /// Reads `/proc/PID/stat`: `pid (comm) state ppid ... starttime(22nd field) ...`.
    fn read(pid: u32) -> Option<ProcStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat[open + 1..close].to_string();
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // rest[0] is field 3 (state); field N is rest[N - 3].
        Some(ProcStat {
            comm,
            ppid: rest.get(1)?.parse().ok()?,
            start_time: rest.get(19)?.parse().ok()?,
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_stat() {
        let me = ProcStat::read(std::process::id()).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.start_time > 0);
    }
}
