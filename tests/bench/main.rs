//! `cargo bench -p credd-tests`: credd's performance targets, measured and printed.
//!
//! Build the release binaries first (`cargo build --release --bins`); `tests/bench.sh` does both.
//! Prints, in one run on one machine:
//! - `credd get` on a cached source, exec to exit, against `/bin/true` (target: <= 3x) and
//!   against boto3 loading a profile's credentials (the Python path a user would otherwise call);
//! - `credd get` on cached gcp and entra sources against google-auth and azure-identity getting
//!   a token from the same credentials (the local upstreams the tests use);
//! - a refresh storm: as many clients at once on an expired source (one upstream call each time);
//! - another user's flood of 1500 connections on an endpoint: the daemon's descriptors and this
//!   user's answer times (as root, acting as uid 65534);
//! - a soak: 24 simulated hours of 5-minute credentials polled by 50 clients (zero expired,
//!   upstream calls, RSS and descriptors flat);
//! - the authenticating proxy: the time to first byte it adds over asking the model API
//!   directly (target: p50 under 1 ms), its streaming throughput, and 200 streams at once;
//! - region failover: what a Bedrock request that meets a 529 and goes to the next region
//!   takes, against one that does not;
//! - a forward over SSH: `credd get` through the forwarded socket against the main one, and a
//!   proxied request on the main, the forward's and the SSH-forwarded proxy socket;
//! - the daemon under many concurrent clients: requests/s, p50/p99 latency, errors;
//! - the daemon's idle RSS and CPU, its start-to-serving time, and the first `credd get` that
//!   meets an older daemon and replaces it;
//! - the stripped size of the `credd` binary (target: < 1 MiB).
//!
//! `CREDD_BENCH_CLIENTS` (default 1000), `CREDD_BENCH_SECS` (default 10), `CREDD_BENCH_RUNS`
//! (default 300), `CREDD_SOAK_HOURS` (default 24; 0 skips it) and `CREDD_SOAK_CLIENTS`
//! (default 50) scale it; `CREDD_BENCH_ONLY=proxy` (or `forward`, `failover`) runs that part alone.

mod failover;
mod flood;
mod forward;
mod load;
mod process;
mod proxy;
mod python;
mod soak;
mod socket;
mod storm;
mod timing;
mod upgrade;

use std::process::{Command, Stdio};
use std::time::Duration;

use credd_tests::World;

use crate::process::{idle_cpu, rss_kib, start_to_serving};
use crate::timing::{print_ratio, report, time_runs};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs = env_num("CREDD_BENCH_RUNS", 300) as usize;
    match std::env::var("CREDD_BENCH_ONLY").as_deref() {
        Ok("proxy") => {
            proxy::proxy(runs);
            return;
        }
        Ok("forward") => {
            forward::forward(runs);
            return;
        }
        Ok("failover") => {
            failover::failover(runs);
            return;
        }
        Ok("") | Err(_) => {}
        Ok(other) => {
            eprintln!(
                "CREDD_BENCH_ONLY={other:?}: the parts that run alone are `proxy`, `forward` and `failover`"
            );
            std::process::exit(2);
        }
    }
    let clients = env_num("CREDD_BENCH_CLIENTS", 1000) as usize;
    let secs = env_num("CREDD_BENCH_SECS", 10);

    println!("credd benchmarks ({})", machine());
    println!("binaries: {}", credd_tests::bin_dir().display());

    let world = World::new().with_env("CREDD_LOG", "warn");
    let cmd = world.counting_command("gw", "tok-bench");
    let aws = world.counting_command(
        "aws",
        r#"{"Version":1,"AccessKeyId":"ASIABENCH","SecretAccessKey":"s","SessionToken":"t","Expiration":"2099-01-01T00:00:00Z"}"#,
    );
    world.write_config(&format!(
        "[sources.gateway]\nkind = \"exec\"\ncommand = {}\nttl = \"12h\"\n\n[sources.dev]\nkind = \"exec\"\ncommand = {}\n",
        serde_json::to_string(&cmd).unwrap(),
        serde_json::to_string(&aws).unwrap()
    ));

    let start_ms = start_to_serving(&world);
    let daemon = world.start_daemon();
    world.credd(&["get", "gateway"]).ok();
    world.credd(&["get", "dev", "--format", "aws"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    let rss_start = rss_kib(daemon.pid());

    println!("\n## credd get on a cached source, exec to exit ({runs} runs each)");
    let floor = time_runs(runs, || {
        Command::new("/bin/true").status().unwrap().success()
    });
    let credd = time_runs(runs, || {
        world
            .credd_command(&["get", "gateway"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    let credd_aws = time_runs(runs, || {
        world
            .credd_command(&["get", "dev", "--format", "aws"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    report("/bin/true", &floor, None);
    report("credd get gateway", &credd, Some(&floor));
    report("credd get dev --format aws", &credd_aws, Some(&floor));
    match python::boto3_command(&world) {
        Some(mut boto3) => {
            let python = time_runs(runs.min(30), || boto3().status().unwrap().success());
            report("python3 boto3 (profile credentials)", &python, Some(&floor));
            print_ratio(
                "boto3 / credd --format aws (target >= 100x)",
                &python,
                &credd_aws,
            );
        }
        None => println!(
            "  python3 boto3: not measured (no python3 with boto3; tests/bench.sh installs one)"
        ),
    }

    python::providers(runs.min(100), &floor);
    proxy::proxy(runs);
    failover::failover(runs);
    forward::forward(runs);
    storm::storm(clients, 5);
    flood::flood(1500, 10);
    let soak_hours = env_num("CREDD_SOAK_HOURS", 24);
    if soak_hours > 0 {
        soak::soak(soak_hours, env_num("CREDD_SOAK_CLIENTS", 50) as usize);
    }

    println!(
        "\n## daemon under {clients} concurrent clients for {secs}s (one connection per request)"
    );
    load::load(&world, clients, Duration::from_secs(secs));
    assert_eq!(world.runs("gw"), 1, "the load called the upstream");
    assert_eq!(
        world.runs("aws"),
        1,
        "the cached AWS source called the upstream"
    );

    println!("\n## daemon resources");
    std::thread::sleep(Duration::from_secs(2));
    let (cpu, over) = idle_cpu(daemon.pid(), Duration::from_secs(5));
    println!("  idle RSS after start:      {} KiB", rss_start);
    println!("  idle RSS after the load:   {} KiB", rss_kib(daemon.pid()));
    println!(
        "  idle CPU:                  {cpu:.3}% over {}s",
        over.as_secs()
    );
    println!("  start to serving (median): {start_ms:.1} ms");
    upgrade::replacing_an_older_daemon(20);

    println!("\n## binaries");
    for name in ["credd", "credd-daemon"] {
        let size = std::fs::metadata(credd_tests::bin(name)).unwrap().len();
        println!("  {name:<13} {:>8.1} KiB", size as f64 / 1024.0);
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs, {model}")
}
