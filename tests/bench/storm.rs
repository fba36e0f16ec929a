//! A refresh storm: every client at once on a source whose credential has just expired (a laptop
//! waking from sleep with many sessions open). The upstream must be called once per expiry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

use crate::soak::clocked_world;
use crate::socket::{get_frame, one_credential};
use crate::timing::print_spread;

/// `rounds` times: the 5-minute credential expires (the daemon's test clock jumps past it), then
/// `clients` clients ask at the same instant while the upstream takes 200 ms to answer. Prints
/// upstream calls, errors and how long the clients waited; asserts one call per round.
pub fn storm(clients: usize, rounds: u64) {
    const TTL: u64 = 300;
    println!(
        "\n## refresh storm: {clients} clients at once on an expired source, {rounds} rounds (upstream answers in 200 ms)"
    );
    let world = clocked_world("storm", TTL);
    std::fs::write(world.path("storm.sleep"), "0.2").unwrap();
    let _daemon = world.start_daemon();
    world.credd(&["get", "storm"]).ok();
    let request = get_frame("storm", 60);
    let errors = Arc::new(AtomicU64::new(0));
    let stale = Arc::new(AtomicU64::new(0));
    let waits = Arc::new(Mutex::new(Vec::new()));
    let advanced = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (socket, request) = (world.socket.clone(), request.clone());
            let (errors, stale, waits) = (errors.clone(), stale.clone(), waits.clone());
            let (advanced, barrier) = (advanced.clone(), barrier.clone());
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    for _ in 0..rounds {
                        barrier.wait();
                        let t = Instant::now();
                        match one_credential(&socket, &request) {
                            Ok(credential) => {
                                let now = credd_tests::unix_now()
                                    + advanced.load(Ordering::SeqCst) as i64;
                                if credential.expires_at < now + 60 {
                                    stale.fetch_add(1, Ordering::Relaxed);
                                }
                                waits.lock().unwrap().push(t.elapsed());
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        barrier.wait();
                    }
                })
                .unwrap()
        })
        .collect();
    for _ in 0..rounds {
        advanced.fetch_add(TTL, Ordering::SeqCst);
        world.advance_clock(TTL);
        barrier.wait();
        barrier.wait();
    }
    for t in threads {
        t.join().unwrap();
    }
    let mut waits = std::mem::take(&mut *waits.lock().unwrap());
    waits.sort();
    let calls = world.runs("storm") as u64 - 1;
    println!(
        "  answers:         {} ({} short of a minute's validity, {} errors)",
        waits.len(),
        stale.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    println!("  upstream calls:  {calls} for {rounds} expiries");
    print_spread("client waits:   ", &waits);
    assert_eq!(errors.load(Ordering::Relaxed), 0, "the storm had errors");
    assert_eq!(stale.load(Ordering::Relaxed), 0, "stale credentials served");
    assert_eq!(calls, rounds, "more than one upstream call per expiry");
}
