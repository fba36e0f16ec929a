//! `cargo bench -p credd-tests`: credd's performance targets, measured and printed.
//!
//! Build the release binaries first (`cargo build --release --bins`); `tests/bench.sh` does both.
//! Prints, in one run on one machine:
//! - `credd get` on a cached source, exec to exit, against `/bin/true` (target: <= 3x) and
//!   against boto3 loading a profile's credentials (the Python path a user would otherwise call);
//! - the daemon under many concurrent clients: requests/s, p50/p99 latency, errors;
//! - the daemon's idle RSS and CPU, and its start-to-serving time;
//! - the stripped size of the `credd` binary (target: < 1 MiB).
//!
//! `CREDD_BENCH_CLIENTS` (default 1000), `CREDD_BENCH_SECS` (default 10) and `CREDD_BENCH_RUNS`
//! (default 300) scale it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credd_proto::{Request, frame};
use credd_tests::World;

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
    match boto3_command(&world) {
        Some(mut boto3) => {
            let python = time_runs(runs.min(30), || boto3().status().unwrap().success());
            report("python3 boto3 (profile credentials)", &python, Some(&floor));
            println!(
                "  boto3 / credd --format aws: {:.0}x (target >= 100x)",
                pct(&python, 0.5).as_secs_f64() / pct(&credd_aws, 0.5).as_secs_f64()
            );
        }
        None => println!(
            "  python3 boto3: not measured (no python3 with boto3; tests/bench.sh installs one)"
        ),
    }

    println!(
        "\n## daemon under {clients} concurrent clients for {secs}s (one connection per request)"
    );
    load(&world, clients, Duration::from_secs(secs));
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

fn time_runs(runs: usize, mut run: impl FnMut() -> bool) -> Vec<Duration> {
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

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, times: &[Duration], floor: Option<&[Duration]>) {
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// boto3 loading static credentials from a profile: what `credential_process` or an SDK costs
/// in Python before any request is made.
fn boto3_command(world: &World) -> Option<impl FnMut() -> Command> {
    let python = std::env::var("CREDD_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import boto3"])
        .status()
        .ok()?;
    if !probe.success() {
        return None;
    }
    let config = world.path("aws-config");
    std::fs::write(
        &config,
        "[profile bench]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\nregion = us-east-1\n",
    )
    .unwrap();
    let python_code = "import boto3; c = boto3.Session(profile_name='bench').get_credentials().get_frozen_credentials(); print(c.access_key, c.secret_key, c.token)";
    Some(move || {
        let mut cmd = Command::new(&python);
        cmd.args(["-c", python_code])
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .stdout(Stdio::null());
        cmd
    })
}

fn load(world: &World, clients: usize, duration: Duration) {
    let request = frame::encode_request(Request::Get {
        source: "gateway".into(),
        min_valid_secs: 600,
        caller: None,
    });
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
    if !all.is_empty() {
        println!(
            "  latency:    p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            ms(pct(&all, 0.5)),
            ms(pct(&all, 0.99)),
            ms(*all.last().unwrap())
        );
    }
}

fn one_request(socket: &std::path::Path, request: &[u8]) -> std::io::Result<()> {
    let mut stream = UnixStream::connect(socket)?;
    stream.write_all(request)?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let len = frame::body_len(header).map_err(std::io::Error::other)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    match frame::decode_response(&body).map_err(std::io::Error::other)? {
        credd_proto::Response::Credential(_) => Ok(()),
        other => Err(std::io::Error::other(format!("{other:?}"))),
    }
}

fn rss_kib(pid: u32) -> u64 {
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

fn idle_cpu(pid: u32, over: Duration) -> (f64, Duration) {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before = cpu_ticks(pid);
    std::thread::sleep(over);
    let used = (cpu_ticks(pid) - before) as f64 / hz;
    (100.0 * used / over.as_secs_f64(), over)
}

/// Median time from exec'ing `credd-daemon` to its first answer, over a few starts.
fn start_to_serving(world: &World) -> f64 {
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
