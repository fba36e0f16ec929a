//! The daemon as a process: memory, descriptors, CPU and start-up time, read from `/proc`.

use std::time::{Duration, Instant};

use credd_tests::World;

use crate::timing::{ms, pct};

pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system, clock ticks) of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15; rest[0] is field 3.
    rest.get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + rest
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

pub fn idle_cpu(pid: u32, over: Duration) -> (f64, Duration) {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before = cpu_ticks(pid);
    std::thread::sleep(over);
    let used = (cpu_ticks(pid) - before) as f64 / hz;
    (100.0 * used / over.as_secs_f64(), over)
}

/// Median time from exec'ing `credd-daemon` to its first answer, over a few starts.
pub fn start_to_serving(world: &World) -> f64 {
    let mut times: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let mut daemon = world.start_daemon();
            let elapsed = t.elapsed();
            daemon.signal(libc::SIGTERM);
            daemon.wait();
            elapsed
        })
        .collect();
    times.sort();
    ms(pct(&times, 0.5))
}
