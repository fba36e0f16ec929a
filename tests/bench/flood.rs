//! Another user's flood of connections to an endpoint (as root, acting as uid 65534): the
//! daemon, started at the common soft limit of 1024 descriptors, must keep answering its own
//! user within a second and hold well under 512 descriptors. Prints the descriptors it held and
//! this user's answer times with and without the flood.

use std::time::{Duration, Instant};

use credd_tests::flood::{self, metadata_world};
use credd_tests::other_user::Impostor;

use crate::timing::print_spread;

pub fn flood(connections: usize, secs: u64) {
    println!(
        "\n## another user's flood: {connections} connections held open on a metadata endpoint for {secs}s (daemon soft limit 1024)"
    );
    if !credd_tests::running_as_root() {
        println!("  not measured: acting as a second user needs root");
        return;
    }
    let (world, port) = metadata_world();
    let daemon = world.start_daemon_with(|cmd| flood::with_open_file_limit(cmd, 1024, 4096));
    credd_tests::peers::wait_for_port(port, Duration::from_secs(10), "the metadata endpoint");
    world.credd(&["get", "gateway"]).ok();
    let idle_fds = flood::descriptors(daemon.pid());
    let quiet = own_answers(&world, port, Duration::from_secs(2), daemon.pid()).0;

    let flooding = Impostor::start(&[
        "flood",
        &port.to_string(),
        &connections.to_string(),
        &secs.to_string(),
    ]);
    let (flooded, refreshes, most_fds, failed) = own_answers(
        &world,
        port,
        Duration::from_secs(secs.saturating_sub(1).max(1)),
        daemon.pid(),
    );
    let reopened = flooding.finish();
    println!("  daemon descriptors: {idle_fds} idle, at most {most_fds} under the flood");
    println!(
        "  the other user's connections closed and reopened: {}",
        reopened.trim().trim_start_matches("reopened ")
    );
    print_spread("metadata index, quiet:            ", &quiet);
    print_spread("metadata index, flooded:          ", &flooded);
    print_spread("credd refresh (exec), flooded:    ", &refreshes);
    println!("  own requests that failed under the flood: {failed}");
}

/// This user's metadata requests and `credd refresh` calls for `run`: their sorted times, the
/// daemon's largest descriptor count seen, and how many failed.
fn own_answers(
    world: &credd_tests::World,
    port: u16,
    run: Duration,
    pid: u32,
) -> (Vec<Duration>, Vec<Duration>, usize, usize) {
    let (mut metadata, mut refreshes, mut most, mut failed) = (Vec::new(), Vec::new(), 0, 0);
    let deadline = Instant::now() + run;
    while Instant::now() < deadline {
        most = most.max(flood::descriptors(pid));
        let (status, took) = flood::metadata_index(port);
        if status.contains(" 200") {
            metadata.push(took);
        } else {
            failed += 1;
        }
        let started = Instant::now();
        if world.credd(&["refresh", "gateway"]).code == 0 {
            refreshes.push(started.elapsed());
        } else {
            failed += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    metadata.sort();
    refreshes.sort();
    (metadata, refreshes, most, failed)
}
