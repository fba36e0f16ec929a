//! A refresh storm: every client at once on a source whose credential has just expired (a laptop
//! waking from sleep with many sessions open). The upstream must be called once per expiry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

use credd_proto::{Request, frame};
use credd_tests::World;

use crate::socket::one_credential;
use crate::timing::{ms, pct};

/// `rounds` times: the 5-minute credential expires (the daemon's test clock jumps past it), then
/// `clients` clients ask at the same instant while the upstream takes 200 ms to answer. Prints
/// upstream calls, errors and how long the clients waited; asserts one call per round.
pub fn storm(clients: usize, rounds: u64) {
    const TTL: u64 = 300;
    println!(
        "\n## refresh storm: {clients} clients at once on an expired source, {rounds} rounds (upstream answers in 200 ms)"
    );
    let world = World::new()
        .with_env("CREDD_LOG", "warn")
        .with_env("CREDD_TEST_CLOCK", "1");
    let cmd = world.counting_command("storm", "tok-storm");
    std::fs::write(world.path("storm.sleep"), "0.2").unwrap();
    world.write_config(&format!(
        "[sources.storm]\nkind = \"exec\"\ncommand = {}\nttl = \"{TTL}s\"\n",
        serde_json::to_string(&cmd).unwrap()
    ));
    let _daemon = world.start_daemon();
    world.credd(&["get", "storm"]).ok();
    let request = frame::encode_request(Request::Get {
        source: "storm".into(),
        min_valid_secs: 60,
        caller: None,
        audience: None,
    });
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
    if !waits.is_empty() {
        println!(
            "  client waits:    p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            ms(pct(&waits, 0.5)),
            ms(pct(&waits, 0.99)),
            ms(*waits.last().unwrap())
        );
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0, "the storm had errors");
    assert_eq!(stale.load(Ordering::Relaxed), 0, "stale credentials served");
    assert_eq!(calls, rounds, "more than one upstream call per expiry");
}
