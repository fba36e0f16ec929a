//! The authenticating proxy's cost, on its Unix socket and on a TCP port: the time to the first
//! byte and to the whole of a small answer it adds over asking the model API directly (target:
//! median under 1 ms on loopback), how soon each event of a streamed answer reaches the caller
//! after the model API sent it, its streaming throughput, and 200 streams at once with no
//! error. The model API is a stand-in on 127.0.0.1 that answers at once, so what is measured
//! is the proxy (the route, the cached credential, the upstream request).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use credd_tests::World;
use credd_tests::http::read_request;

use crate::process::{open_fds, rss_kib};
use crate::timing::{ms, pct, print_spread};

/// Bytes streamed for the throughput run.
const STREAM_BYTES: usize = 256 * 1024 * 1024;
const STREAM_PIECE: usize = 64 * 1024;
/// Streams at once, each of `EVENTS` events `EVENT_GAP` apart.
const STREAMS: usize = 200;
const EVENTS: usize = 20;
const EVENT_GAP: Duration = Duration::from_millis(50);

/// Where a request goes, and what it carries besides.
#[derive(Clone)]
struct Route {
    to: To,
    /// The `Host` it names.
    host: String,
    /// Header lines it adds (the caller secret on the TCP port).
    headers: String,
}

#[derive(Clone)]
enum To {
    Tcp(String),
    Unix(PathBuf),
}

/// A connection's two halves.
type Halves = (Box<dyn Write + Send>, BufReader<Box<dyn Read + Send>>);

impl Route {
    fn connect(&self, read_timeout: Duration) -> std::io::Result<Halves> {
        let (writer, reader): (Box<dyn Write + Send>, Box<dyn Read + Send>) = match &self.to {
            To::Tcp(addr) => {
                let stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(read_timeout))?;
                (Box::new(stream.try_clone()?), Box::new(stream))
            }
            To::Unix(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_read_timeout(Some(read_timeout))?;
                (Box::new(stream.try_clone()?), Box::new(stream))
            }
        };
        Ok((writer, BufReader::with_capacity(256 * 1024, reader)))
    }

    fn request(&self, path: &str) -> Vec<u8> {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
            self.host, self.headers
        )
        .into_bytes()
    }
}

pub fn proxy(runs: usize) {
    println!("\n## the authenticating proxy (a gateway route, to a model API on 127.0.0.1)");
    let upstream = serve_model_api();
    let world = World::new().with_env("CREDD_LOG", "warn");
    let cmd = world.counting_command("gw", "sk-bench");
    let port = credd_tests::peers::free_port();
    world.write_config(&format!(
        "[sources.gateway]\nkind = \"exec\"\ncommand = {}\nttl = \"12h\"\nproxy = {{ port = {port}, upstream = \"http://{upstream}\" }}\n",
        serde_json::to_string(&cmd).unwrap()
    ));
    let daemon = world.start_daemon();
    credd_tests::peers::wait_for_port(port, Duration::from_secs(10), "the proxy");
    let endpoints = world.source_status("gateway")["endpoints"].clone();
    let endpoint = |kind: &str| {
        endpoints
            .as_array()
            .and_then(|all| all.iter().find(|e| e["kind"] == kind))
            .unwrap_or_else(|| panic!("no {kind} endpoint"))
            .clone()
    };
    let secret_file = endpoint("proxy-port")["secret_file"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = std::fs::read_to_string(secret_file).unwrap();
    let socket = endpoint("proxy");
    let routes = [
        (
            "direct",
            Route {
                to: To::Tcp(upstream.clone()),
                host: upstream.clone(),
                headers: String::new(),
            },
        ),
        (
            "proxy, TCP port",
            Route {
                to: To::Tcp(format!("127.0.0.1:{port}")),
                host: format!("127.0.0.1:{port}"),
                headers: format!("X-Credd-Proxy-Secret: {}\r\n", secret.trim()),
            },
        ),
        (
            "proxy, Unix socket",
            Route {
                to: To::Unix(socket["socket"].as_str().unwrap().into()),
                host: socket["url"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("http://")
                    .to_string(),
                headers: String::new(),
            },
        ),
    ];

    // Small answers, one keep-alive connection each, as Claude Code holds them: the first
    // byte, and the whole answer (where a small write held back by Nagle's algorithm would
    // show as 40 ms).
    let runs = runs * 10;
    let mut medians = Vec::new();
    for (what, route) in &routes {
        let (first, whole) = small_answer_times(route, runs);
        print_spread(&format!("{:<33}", format!("first byte, {what}")), &first);
        print_spread(&format!("{:<33}", format!("whole answer, {what}")), &whole);
        medians.push((pct(&first, 0.5), pct(&whole, 0.5)));
    }
    for (i, (what, _)) in routes.iter().enumerate().skip(1) {
        println!(
            "  added by the {what} (target median < 1 ms): first byte {:.3} ms, whole answer {:.3} ms",
            ms(medians[i].0) - ms(medians[0].0),
            ms(medians[i].1) - ms(medians[0].1),
        );
    }

    // Each event of a streamed answer: how long after the model API sent it the caller has it.
    for (what, route) in &routes {
        let mut delays = paced_stream(route).expect("a paced stream");
        delays.sort();
        print_spread(&format!("{:<33}", format!("event delay, {what}")), &delays);
    }

    for (what, route) in &routes {
        let (bytes, took) = stream_whole(route);
        assert_eq!(bytes, STREAM_BYTES, "the stream {what} came short");
        println!(
            "  streaming {} MiB {what:<19} {:>8.0} MiB/s",
            STREAM_BYTES >> 20,
            (bytes as f64 / (1 << 20) as f64) / took.as_secs_f64()
        );
    }

    let through = routes[2].1.clone();
    let fds_before = open_fds(daemon.pid());
    let started = Instant::now();
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let route = through.clone();
            std::thread::spawn(move || paced_stream(&route))
        })
        .collect();
    let mut peak_rss = 0;
    while !streams.iter().all(|s| s.is_finished()) {
        peak_rss = peak_rss.max(rss_kib(daemon.pid()));
        std::thread::sleep(Duration::from_millis(20));
    }
    let results: Vec<Result<Vec<Duration>, String>> =
        streams.into_iter().map(|s| s.join().unwrap()).collect();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let mut delays: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flatten()
        .copied()
        .collect();
    delays.sort();
    println!(
        "  {STREAMS} streams at once on the socket ({EVENTS} events {} ms apart): {} errors, all done in {:.2} s, daemon peak RSS {peak_rss} KiB",
        EVENT_GAP.as_millis(),
        errors.len(),
        started.elapsed().as_secs_f64()
    );
    print_spread("  event delay, all streams:", &delays);
    if let Some(first) = errors.first() {
        println!("  first error: {first}");
    }
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "  daemon descriptors before/after: {fds_before}/{}",
        open_fds(daemon.pid())
    );
    assert_eq!(
        world.runs("gw"),
        1,
        "the proxy called the token command again"
    );
}

/// Microseconds since the epoch: the stand-in stamps each event with it, and the caller,
/// in the same process, subtracts it from when the event arrived.
fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// A stand-in model API on 127.0.0.1, a thread per connection, keep-alive: `/v1/messages`
/// answers a short event stream at once, `/stream` sends [`STREAM_BYTES`] chunked, `/paced`
/// sends [`EVENTS`] events [`EVENT_GAP`] apart.
fn serve_model_api() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                while let Some(request) = read_request(&mut reader) {
                    if answer(&request.path, &stream).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn answer(path: &str, mut stream: &TcpStream) -> std::io::Result<()> {
    match path {
        "/v1/stream" => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            let piece = vec![b'x'; STREAM_PIECE];
            let mut chunk = format!("{STREAM_PIECE:x}\r\n").into_bytes();
            chunk.extend_from_slice(&piece);
            chunk.extend_from_slice(b"\r\n");
            for _ in 0..STREAM_BYTES / STREAM_PIECE {
                stream.write_all(&chunk)?;
            }
            stream.write_all(b"0\r\n\r\n")
        }
        "/v1/paced" => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            for i in 0..EVENTS {
                let event = format!("event: ping\ndata: {i} {}\n\n", now_micros());
                stream.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())?;
                std::thread::sleep(EVENT_GAP);
            }
            stream.write_all(b"0\r\n\r\n")
        }
        // A small answer whose head and body leave in two writes a millisecond apart, as a
        // model API's do: a proxy that passes them on as two small writes, with Nagle's
        // algorithm on, holds the second until the caller's delayed ACK (40 ms on Linux).
        _ => {
            let body = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
            stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )?;
            std::thread::sleep(Duration::from_millis(1));
            stream.write_all(body.as_bytes())
        }
    }
}

/// The status and head of an answer, then its body's length (Content-Length or chunked),
/// read whole; the time the first byte came.
fn read_answer(reader: &mut BufReader<impl Read>, sent: Instant) -> (u16, usize, Duration) {
    let first = {
        reader.fill_buf().expect("an answer");
        sent.elapsed()
    };
    let mut status = 0;
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if status == 0 {
            status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        } else if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
    }
    let mut total = 0;
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut piece = vec![0; size + 2];
            reader.read_exact(&mut piece).unwrap();
            if size == 0 {
                break;
            }
            total += size;
        }
    } else if let Some(length) = length {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        total = length;
    }
    (status, total, first)
}

/// The times to the first byte and to the whole of `runs` small answers, each sorted.
fn small_answer_times(route: &Route, runs: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (mut writer, mut reader) = route.connect(Duration::from_secs(60)).unwrap();
    let request = route.request("/v1/messages");
    let (mut first, mut whole): (Vec<Duration>, Vec<Duration>) = (0..runs + 50)
        .map(|_| {
            let sent = Instant::now();
            writer.write_all(&request).unwrap();
            let (status, _, first) = read_answer(&mut reader, sent);
            assert_eq!(status, 200);
            (first, sent.elapsed())
        })
        .skip(50)
        .unzip();
    first.sort();
    whole.sort();
    (first, whole)
}

fn stream_whole(route: &Route) -> (usize, Duration) {
    let (mut writer, mut reader) = route.connect(Duration::from_secs(60)).unwrap();
    let sent = Instant::now();
    writer.write_all(&route.request("/v1/stream")).unwrap();
    let (status, bytes, _) = read_answer(&mut reader, sent);
    assert_eq!(status, 200);
    (bytes, sent.elapsed())
}

/// One paced stream: how long after the model API sent it each event arrived, or what went
/// wrong.
fn paced_stream(route: &Route) -> Result<Vec<Duration>, String> {
    let (mut writer, mut reader) = route
        .connect(Duration::from_secs(30))
        .map_err(|e| format!("connect: {e}"))?;
    writer
        .write_all(&route.request("/v1/paced"))
        .map_err(|e| format!("send: {e}"))?;
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| format!("read: {e}"))?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(status.trim().to_string());
    }
    let mut delays = Vec::new();
    while delays.len() < EVENTS {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("after {} events: {e}", delays.len()))?;
        if n == 0 {
            return Err(format!("the answer ended after {} events", delays.len()));
        }
        let arrived = now_micros();
        if let Some(stamp) = line
            .strip_prefix("data: ")
            .and_then(|data| data.split_whitespace().nth(1))
            .and_then(|stamp| stamp.parse::<u128>().ok())
        {
            let delay = arrived.saturating_sub(stamp);
            delays.push(Duration::from_micros(delay as u64));
        }
    }
    Ok(delays)
}
