//! `cargo bench -p credd-tests`: credd's performance targets, measured and printed.
//!
//! Build the release binaries first (`cargo build --release --bins`); `tests/bench.sh` does both.
//! Prints, in one run on one machine:
//! - `credd get` on a cached source, exec to exit, against `/bin/true` (target: <= 3x) and
//!   against boto3 loading a profile's credentials (the Python path a user would otherwise call);
//! - `credd get` on cached gcp and entra sources against google-auth and azure-identity getting
//!   a token from the same credentials (the local upstreams the tests use);
//! - a soak: 24 simulated hours of 5-minute credentials polled by 50 clients (zero expired,
//!   upstream calls, RSS and descriptors flat);
//! - the daemon under many concurrent clients: requests/s, p50/p99 latency, errors;
//! - the daemon's idle RSS and CPU, and its start-to-serving time;
//! - the stripped size of the `credd` binary (target: < 1 MiB).
//!
//! `CREDD_BENCH_CLIENTS` (default 1000), `CREDD_BENCH_SECS` (default 10), `CREDD_BENCH_RUNS`
//! (default 300), `CREDD_SOAK_HOURS` (default 24; 0 skips it) and `CREDD_SOAK_CLIENTS`
//! (default 50) scale it.

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

    providers(runs.min(100), &floor);
    let soak_hours = env_num("CREDD_SOAK_HOURS", 24);
    if soak_hours > 0 {
        soak(soak_hours, env_num("CREDD_SOAK_CLIENTS", 50) as usize);
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
    replacing_an_older_daemon(20);

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
/// Google and Entra tokens: a cached `credd get` against what a helper would otherwise run, the
/// Python library getting a token from the same credentials (from the same local upstreams the
/// tests use: oauth2-mock-server behind the Google and Entra shims).
fn providers(runs: usize, floor: &[Duration]) {
    use credd_tests::entra::{EntraUpstream, TENANT};
    use credd_tests::google::GoogleUpstream;
    use credd_tests::peers::TestCa;

    println!("\n## tokens: cached credd get against the Python library ({runs} runs, python 30)");
    let python = credd_tests::peers::python();
    let has = |module: &str| {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    let mock = credd_tests::peers_dir().join("node_modules/oauth2-mock-server");
    if !mock.exists() || !has("google.auth") || !has("azure.identity") {
        println!("  not measured: run the README's test command first (it installs the peers)");
        return;
    }
    let time_credd = |world: &World, source: &str| {
        time_runs(runs, || {
            world
                .credd_command(&["get", source])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        })
    };
    let time_python = |code: &str, env: &[(&str, String)]| {
        time_runs(30, || {
            Command::new(&python)
                .args(["-c", code])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        })
    };

    let google = GoogleUpstream::start();
    let world = World::new().with_env("CREDD_LOG", "warn");
    let adc = world.path("adc.json");
    std::fs::write(
        &adc,
        serde_json::json!({"type": "authorized_user", "client_id": "c", "client_secret": "s",
            "refresh_token": "r", "token_uri": google.token_url()})
        .to_string(),
    )
    .unwrap();
    world.write_config(&format!(
        "[sources.vertex]\nkind = \"gcp\"\ncredentials_file = \"{}\"\n",
        adc.display()
    ));
    let _gcp_daemon = world.start_daemon();
    world.credd(&["get", "vertex"]).ok();
    let credd = time_credd(&world, "vertex");
    let python_gcp = time_python(
        // google-auth always sends authorized_user refreshes to Google's own endpoint
        // (it ignores the file's token_uri), so the local one is named explicitly.
        "import os, google.auth, google.auth.transport.requests as r\n\
         c, _ = google.auth.load_credentials_from_file(os.environ['ADC'])\n\
         c = c.with_token_uri(os.environ['TOKEN_URI'])\n\
         c.refresh(r.Request()); print(c.token)",
        &[
            ("ADC", adc.display().to_string()),
            ("TOKEN_URI", google.token_url()),
        ],
    );
    assert_eq!(
        world.source_status("vertex")["upstream_calls"],
        1,
        "credd asked Google once"
    );
    report("credd get vertex (gcp)", &credd, Some(floor));
    report(
        "python3 google-auth (file + refresh)",
        &python_gcp,
        Some(floor),
    );
    println!(
        "  google-auth / credd: {:.0}x",
        pct(&python_gcp, 0.5).as_secs_f64() / pct(&credd, 0.5).as_secs_f64()
    );

    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let entra = EntraUpstream::start(&ca);
    let client = "3c1d2e4f-0000-4000-8000-0000000be0c4";
    entra.register_secret(client, "bench-secret", false);
    let world = World::new()
        .with_env("CREDD_LOG", "warn")
        .with_env("SSL_CERT_FILE", &ca.ca_pem.display().to_string())
        .with_env("AZURE_CLIENT_SECRET", "bench-secret");
    world.write_config(&format!(
        "[sources.foundry]\nkind = \"entra\"\nmethod = \"client-secret\"\nauthority = \"{}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{client}\"\n",
        entra.authority()
    ));
    let _entra_daemon = world.start_daemon();
    world.credd(&["get", "foundry"]).ok();
    let credd = time_credd(&world, "foundry");
    let python_entra = time_python(
        "import os\nfrom azure.identity import ClientSecretCredential as C\n\
         c = C(os.environ['T'], os.environ['CID'], 'bench-secret', authority=os.environ['AUTH'], disable_instance_discovery=True)\n\
         print(c.get_token('https://cognitiveservices.azure.com/.default').token)",
        &[
            ("T", TENANT.to_string()),
            ("CID", client.to_string()),
            ("AUTH", entra.authority()),
            ("REQUESTS_CA_BUNDLE", ca.ca_pem.display().to_string()),
        ],
    );
    report("credd get foundry (entra)", &credd, Some(floor));
    report(
        "python3 azure-identity (secret)",
        &python_entra,
        Some(floor),
    );
    println!(
        "  azure-identity / credd: {:.0}x",
        pct(&python_entra, 0.5).as_secs_f64() / pct(&credd, 0.5).as_secs_f64()
    );
    assert_eq!(
        world.source_status("foundry")["upstream_calls"],
        1,
        "credd asked Entra once"
    );
}

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
        audience: None,
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
    one_credential(socket, request).map(|_| ())
}

fn one_credential(
    socket: &std::path::Path,
    request: &[u8],
) -> std::io::Result<credd_proto::Credential> {
    let mut stream = UnixStream::connect(socket)?;
    stream.write_all(request)?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let len = frame::body_len(header).map_err(std::io::Error::other)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    match frame::decode_response(&body).map_err(std::io::Error::other)? {
        credd_proto::Response::Credential(credential) => Ok(credential),
        other => Err(std::io::Error::other(format!("{other:?}"))),
    }
}

/// The soak: `hours` simulated hours (the daemon's test clock, moved 15 s a step) of 5-minute
/// credentials, with `clients` clients each asking once a step for a credential valid a minute
/// more. Counts expired answers (must be zero), upstream calls against the fewest the refresh
/// policy allows, and the daemon's RSS and open descriptors at hour 1 and at the end.
fn soak(hours: u64, clients: usize) {
    const STEP: u64 = 15;
    const TTL: u64 = 300;
    println!(
        "\n## soak: {hours} simulated hours of {TTL}s credentials, {clients} clients asking every {STEP}s"
    );
    let world = World::new()
        .with_env("CREDD_LOG", "warn")
        .with_env("CREDD_TEST_CLOCK", "1");
    let cmd = world.counting_command("soak", "tok-soak");
    world.write_config(&format!(
        "[sources.soak]\nkind = \"exec\"\ncommand = {}\nttl = \"{TTL}s\"\n",
        serde_json::to_string(&cmd).unwrap()
    ));
    let daemon = world.start_daemon();
    let pid = daemon.pid();
    let request = frame::encode_request(Request::Get {
        source: "soak".into(),
        min_valid_secs: 60,
        caller: None,
        audience: None,
    });
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

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
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

/// `credd get` meeting a daemon of an older protocol: it asks that one to stop, starts this
/// release's, and fetches (an exec source that prints at once).
fn replacing_an_older_daemon(runs: usize) {
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
