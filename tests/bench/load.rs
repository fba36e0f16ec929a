//! The daemon under many concurrent clients, one new connection per request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credd_tests::World;

use crate::socket::{get_frame, one_request};
use crate::timing::print_spread;

/// Runs `clients` threads asking for `gateway` as fast as they can for `duration`, and prints
/// requests, errors, throughput and latency.
pub fn load(world: &World, clients: usize, duration: Duration) {
    let request = get_frame("gateway", 600);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::with_capacity(1 << 20)));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (socket, request, stop, errors, latencies) = (
                world.socket.clone(),
                request.clone(),
                stop.clone(),
                errors.clone(),
                latencies.clone(),
            );
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        match one_request(&socket, &request) {
                            Ok(()) => mine.push(t.elapsed()),
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    latencies.lock().unwrap().extend(mine);
                })
                .unwrap()
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed();
    let mut all = std::mem::take(&mut *latencies.lock().unwrap());
    all.sort();
    println!("  requests:   {}", all.len());
    println!("  errors:     {}", errors.load(Ordering::Relaxed));
    println!(
        "  throughput: {:.0} requests/s",
        all.len() as f64 / elapsed.as_secs_f64()
    );
    print_spread("latency:   ", &all);
}
