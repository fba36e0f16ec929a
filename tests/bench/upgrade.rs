//! The first `credd get` after an upgrade, when an older daemon still runs.

use std::time::{Duration, Instant};

use credd_tests::World;

use crate::timing::{ms, pct};

/// `credd get` meeting a daemon of an older protocol: it asks that one to stop, starts this
/// release's, and fetches (an exec source that prints at once).
pub fn replacing_an_older_daemon(runs: usize) {
    use credd_tests::other_daemon::{OnStop, OtherDaemon, refusal};
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            // The installed client may sit apart from the daemon it starts: find it on PATH.
            let path = format!(
                "{}:{}",
                credd_tests::bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let world = World::new()
                .with_env("CREDD_LOG", "warn")
                .with_env("PATH", &path);
            let cmd = world.counting_command("gw", "tok-upgrade");
            world.write_config(&format!(
                "[sources.gateway]\nkind = \"exec\"\ncommand = {}\n",
                serde_json::to_string(&cmd).unwrap()
            ));
            // A daemon of the protocol before this one, which lets go of its lock as it stops.
            let older = credd_proto::PROTOCOL_VERSION - 1;
            let old = OtherDaemon::start(&world.socket, older, OnStop::GoAtOnce, move |_| {
                refusal(older)
            });
            let t = Instant::now();
            world.credd(&["get", "gateway"]).ok();
            let elapsed = t.elapsed();
            assert_eq!(old.stops(), 1, "the older daemon was not replaced");
            elapsed
        })
        .collect();
    times.sort();
    println!(
        "  credd get replacing an older daemon: median {:.1} ms, max {:.1} ms ({runs} runs)",
        ms(pct(&times, 0.5)),
        ms(pct(&times, 1.0))
    );
}
