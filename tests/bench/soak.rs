//! 24 hours in simulated time: expired answers, upstream calls and the daemon's resources.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credd_tests::World;

use crate::process::{open_fds, rss_kib};
use crate::socket::{get_frame, one_credential};

/// The soak: `hours` simulated hours (the daemon's test clock, moved 15 s a step) of 5-minute
/// credentials, with `clients` clients each asking once a step for a credential valid a minute
/// more. Counts expired answers (must be zero), upstream calls against the fewest the refresh
/// policy allows, and the daemon's RSS and open descriptors at hour 1 and at the end.
pub fn soak(hours: u64, clients: usize) {
    const STEP: u64 = 15;
    const TTL: u64 = 300;
    println!(
        "\n## soak: {hours} simulated hours of {TTL}s credentials, {clients} clients asking every {STEP}s"
    );
    let world = clocked_world("soak", TTL);
    let daemon = world.start_daemon();
    let pid = daemon.pid();
    let request = get_frame("soak", 60);
    let advanced = Arc::new(AtomicU64::new(0));
    let expired = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let barrier = Arc::new(std::sync::Barrier::new(clients + 1));
    let steps = hours * 3600 / STEP;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (socket, request) = (world.socket.clone(), request.clone());
            let (advanced, expired, errors) = (advanced.clone(), expired.clone(), errors.clone());
            let (seen, barrier) = (seen.clone(), barrier.clone());
            std::thread::spawn(move || {
                for _ in 0..steps {
                    barrier.wait();
                    match one_credential(&socket, &request) {
                        Ok(credential) => {
                            let now =
                                credd_tests::unix_now() + advanced.load(Ordering::SeqCst) as i64;
                            if credential.expires_at <= now {
                                expired.fetch_add(1, Ordering::Relaxed);
                            }
                            seen.lock().unwrap().insert(credential.issued_at);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    let mut hour_one = (0, 0);
    let started = Instant::now();
    for step in 0..steps {
        barrier.wait();
        barrier.wait();
        // Our notion of the daemon's time moves first, so the expiry check is never lenient.
        advanced.fetch_add(STEP, Ordering::SeqCst);
        world.advance_clock(STEP);
        if (step + 1) * STEP == 3600 {
            std::thread::sleep(Duration::from_millis(50));
            hour_one = (rss_kib(pid), open_fds(pid));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let end = (rss_kib(pid), open_fds(pid));
    let calls = world.runs("soak") as u64;
    let credentials = seen.lock().unwrap().len() as u64;
    // Each credential is refreshed a minute (what the callers want) plus up to a minute of
    // jitter before it expires, seen at the next 15 s step: every 180 to 255 s.
    let fewest = hours * 3600 / (TTL - 60 + STEP);
    let most = hours * 3600 / (TTL - 120);
    println!(
        "  answers:            {} ({} expired, {} errors) in {:.1}s",
        steps * clients as u64,
        expired.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  upstream calls:     {calls} for {credentials} credentials seen (policy: {fewest} to {most})"
    );
    println!(
        "  RSS:                {} KiB at hour 1, {} KiB at hour {hours}",
        hour_one.0, end.0
    );
    println!(
        "  open descriptors:   {} at hour 1, {} at hour {hours}",
        hour_one.1, end.1
    );
    assert_eq!(
        expired.load(Ordering::Relaxed),
        0,
        "expired credentials were served"
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    assert!(
        calls <= credentials + 1 && (fewest..=most + 1).contains(&calls),
        "{calls} upstream calls for {credentials} credentials"
    );
    assert!(end.1 <= hour_one.1 + 2, "descriptors grew");
}

/// A world whose daemon's clock the benchmark moves, with one exec source `name` whose
/// credentials live `ttl` seconds and whose runs are counted under `name`.
pub fn clocked_world(name: &str, ttl: u64) -> World {
    let world = World::new()
        .with_env("CREDD_LOG", "warn")
        .with_env("CREDD_TEST_CLOCK", "1");
    let cmd = world.counting_command(name, &format!("tok-{name}"));
    world.write_config(&format!(
        "[sources.{name}]\nkind = \"exec\"\ncommand = {}\nttl = \"{ttl}s\"\n",
        serde_json::to_string(&cmd).unwrap()
    ));
    world
}
