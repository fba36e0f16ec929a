//! The authenticating proxy's cost: the time to first byte it adds over asking the model API
//! directly (target: p50 under 1 ms on loopback), its streaming throughput, and 200 streams at
//! once with no error. The model API is a stand-in on 127.0.0.1 that answers at once, so what
//! is measured is the proxy (the caller secret, the cached credential, the upstream request).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

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
    let secret_file = world.source_status("gateway")["endpoints"][0]["secret_file"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = std::fs::read_to_string(secret_file).unwrap();
    let proxy = format!("127.0.0.1:{port}");
    let headers = format!("X-Credd-Proxy-Secret: {}\r\n", secret.trim());

    // Time to first byte, one keep-alive connection each, as Claude Code holds them.
    let runs = runs * 10;
    let direct = first_byte_times(&upstream, "", runs);
    let through = first_byte_times(&proxy, &headers, runs);
    print_spread("first byte, direct:       ", &direct);
    print_spread("first byte, through proxy:", &through);
    println!(
        "  added by the proxy (target p50 < 1 ms): p50 {:.3} ms  p99 {:.3} ms",
        ms(pct(&through, 0.5)) - ms(pct(&direct, 0.5)),
        ms(pct(&through, 0.99)) - ms(pct(&direct, 0.99)),
    );

    for (what, addr, headers) in [
        ("direct", &upstream, ""),
        ("through proxy", &proxy, &headers),
    ] {
        let (bytes, took) = stream_whole(addr, headers);
        assert_eq!(bytes, STREAM_BYTES, "the stream {what} came short");
        println!(
            "  streaming {} MiB {what:<14} {:>8.0} MiB/s",
            STREAM_BYTES >> 20,
            (bytes as f64 / (1 << 20) as f64) / took.as_secs_f64()
        );
    }

    let fds_before = open_fds(daemon.pid());
    let started = Instant::now();
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (proxy, headers) = (proxy.clone(), headers.clone());
            std::thread::spawn(move || paced_stream(&proxy, &headers))
        })
        .collect();
    let mut peak_rss = 0;
    while !streams.iter().all(|s| s.is_finished()) {
        peak_rss = peak_rss.max(rss_kib(daemon.pid()));
        std::thread::sleep(Duration::from_millis(20));
    }
    let results: Vec<Result<Duration, String>> =
        streams.into_iter().map(|s| s.join().unwrap()).collect();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let mut gaps: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    gaps.sort();
    println!(
        "  {STREAMS} streams at once ({EVENTS} events {} ms apart): {} errors, all done in {:.2} s, daemon peak RSS {peak_rss} KiB",
        EVENT_GAP.as_millis(),
        errors.len(),
        started.elapsed().as_secs_f64()
    );
    print_spread("  longest gap between events:", &gaps);
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
                let event = format!("event: ping\ndata: {i}\n\n");
                stream.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())?;
                std::thread::sleep(EVENT_GAP);
            }
            stream.write_all(b"0\r\n\r\n")
        }
        _ => {
            let body = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
            stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
        }
    }
}

fn request(path: &str, headers: &str, addr: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}").into_bytes()
}

/// The status and head of an answer, then its body's length (Content-Length or chunked),
/// read whole; the time the first byte came.
fn read_answer(reader: &mut BufReader<TcpStream>, sent: Instant) -> (u16, usize, Duration) {
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

fn connect(addr: &str) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let reader = BufReader::with_capacity(256 * 1024, stream.try_clone().unwrap());
    (stream, reader)
}

fn first_byte_times(addr: &str, headers: &str, runs: usize) -> Vec<Duration> {
    let (mut stream, mut reader) = connect(addr);
    let request = request("/v1/messages", headers, addr);
    let mut times: Vec<Duration> = (0..runs + 50)
        .map(|_| {
            let sent = Instant::now();
            stream.write_all(&request).unwrap();
            let (status, _, first) = read_answer(&mut reader, sent);
            assert_eq!(status, 200);
            first
        })
        .skip(50)
        .collect();
    times.sort();
    times
}

fn stream_whole(addr: &str, headers: &str) -> (usize, Duration) {
    let (mut stream, mut reader) = connect(addr);
    let sent = Instant::now();
    stream
        .write_all(&request("/v1/stream", headers, addr))
        .unwrap();
    let (status, bytes, _) = read_answer(&mut reader, sent);
    assert_eq!(status, 200);
    (bytes, sent.elapsed())
}

/// One paced stream through the proxy: the longest gap between two events, or what went
/// wrong.
fn paced_stream(addr: &str, headers: &str) -> Result<Duration, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&request("/v1/paced", headers, addr))
        .map_err(|e| format!("send: {e}"))?;
    let mut received = Vec::new();
    let mut piece = [0u8; 4096];
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    let mut events = 0;
    while events < EVENTS {
        let n = stream
            .read(&mut piece)
            .map_err(|e| format!("after {events} events: {e}"))?;
        if n == 0 {
            return Err(format!(
                "the answer ended after {events} events: {}",
                String::from_utf8_lossy(&received)
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
        }
        received.extend_from_slice(&piece[..n]);
        let now = String::from_utf8_lossy(&received)
            .matches("event: ping")
            .count();
        if now > events {
            longest = longest.max(last.elapsed());
            last = Instant::now();
            events = now;
        }
    }
    if !received.starts_with(b"HTTP/1.1 200") {
        return Err(String::from_utf8_lossy(&received[..received.len().min(40)]).into_owned());
    }
    Ok(longest)
}
