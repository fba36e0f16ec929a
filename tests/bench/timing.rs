//! Timing runs of a command and printing their median and tail.

use std::time::{Duration, Instant};

/// Runs `run` five times to warm up, then `runs` times; the durations, sorted.
pub fn time_runs(runs: usize, mut run: impl FnMut() -> bool) -> Vec<Duration> {
    for _ in 0..5 {
        assert!(run(), "warm-up run failed");
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            assert!(run(), "run failed");
            t.elapsed()
        })
        .collect();
    times.sort();
    times
}

pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn report(what: &str, times: &[Duration], floor: Option<&[Duration]>) {
    let median = pct(times, 0.5);
    let ratio = floor
        .map(|f| {
            format!(
                "  ({:.2}x /bin/true)",
                median.as_secs_f64() / pct(f, 0.5).as_secs_f64()
            )
        })
        .unwrap_or_default();
    println!(
        "  {what:<38} median {:>8.3} ms  p95 {:>8.3} ms{ratio}",
        ms(median),
        ms(pct(times, 0.95))
    );
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints how many times slower the median of `slow` is than the median of `fast`.
pub fn print_ratio(what: &str, slow: &[Duration], fast: &[Duration]) {
    println!(
        "  {what}: {:.2}x",
        pct(slow, 0.5).as_secs_f64() / pct(fast, 0.5).as_secs_f64()
    );
}

/// Prints `label` (padded by the caller to line up with its other lines) and the p50, p99 and maximum of `sorted` (nothing when it is empty).
pub fn print_spread(label: &str, sorted: &[Duration]) {
    if let Some(max) = sorted.last() {
        println!(
            "  {label} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            ms(pct(sorted, 0.5)),
            ms(pct(sorted, 0.99)),
            ms(*max)
        );
    }
}
