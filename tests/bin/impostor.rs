//! Another local user posing as credd, for the security tests (run as uid 65534):
//! - `impostor unix SOCKET REPLY LOG`: listens on SOCKET as credd-daemon would; notes each
//!   connection and the bytes it received in LOG, and answers with the bytes of REPLY.
//! - `impostor tcp PORT LOG`: holds 127.0.0.1:PORT, notes every request (headers included,
//!   which is how a secret would be captured) in LOG, and answers with credentials of its own.
//! - `impostor flood PORT N SECONDS`: opens N connections to 127.0.0.1:PORT and keeps them
//!   open, reopening those that are closed, for SECONDS; prints how many it reopened.
//! - `impostor ask SOCKET FRAME`: connects to SOCKET as a client, sends the bytes of FRAME and
//!   prints whatever comes back.
//! - `impostor get URL`: sends a GET for an `http://127.0.0.1:PORT/...` URL (a sign-in's
//!   loopback redirect) and prints the answer (nothing when the server closed the connection
//!   unread), or `refused` when nothing listens.
//!
//! Each mode but `ask` prints `ready` on stdout once it is in place.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["unix", socket, reply, log] => unix(socket, reply, log),
        ["tcp", port, log] => tcp(port.parse().expect("port"), log),
        ["ask", socket, frame] => ask(socket, frame),
        ["get", url] => get(url),
        ["flood", port, n, seconds] => flood(
            port.parse().expect("port"),
            n.parse().expect("count"),
            Duration::from_secs(seconds.parse().expect("seconds")),
        ),
        _ => panic!("usage: impostor unix SOCKET REPLY LOG | tcp PORT LOG | flood PORT N SECONDS"),
    }
}

fn get(url: &str) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = match TcpStream::connect(authority) {
        Ok(stream) => stream,
        Err(_) => {
            println!("refused");
            return;
        }
    };
    // A server that closes the connection unread may refuse the request itself.
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    println!("{answer}");
}

fn note(log: &str, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    writeln!(file, "{line}").expect("write log");
}

fn ready() {
    println!("ready");
    std::io::stdout().flush().unwrap();
}

fn unix(socket: &str, reply: &str, log: &str) {
    let listener = UnixListener::bind(socket).expect("bind");
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    ready();
    for stream in listener.incoming() {
        let mut stream = stream.expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
            if received.len() >= 4 {
                let len = u32::from_be_bytes(received[..4].try_into().unwrap()) as usize;
                if received.len() >= 4 + len {
                    break;
                }
            }
        }
        note(
            log,
            &format!("connection, received {} bytes", received.len()),
        );
        let _ = stream.write_all(&std::fs::read(reply).expect("reply"));
    }
}

fn ask(socket: &str, frame: &str) {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The daemon may answer (a refusal) and close before the request is written.
    let _ = stream.write_all(&std::fs::read(frame).expect("frame"));
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    print!("{}", String::from_utf8_lossy(&answer));
}

fn tcp(port: u16, log: &str) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    ready();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
            if request.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        note(
            log,
            &String::from_utf8_lossy(&request).replace("\r\n", " | "),
        );
        let body = r#"{"AccessKeyId":"ASIAIMPOSTOR","SecretAccessKey":"impostor","Token":"impostor","Expiration":"2099-01-01T00:00:00Z","access_token":"impostor","expires_on":"4102444800","token_type":"Bearer"}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn flood(port: u16, n: usize, hold: Duration) {
    let connect = || TcpStream::connect(("127.0.0.1", port)).ok();
    let mut open: Vec<Option<TcpStream>> = (0..n).map(|_| connect()).collect();
    ready();
    let deadline = Instant::now() + hold;
    let mut reopened = 0usize;
    while Instant::now() < deadline {
        for slot in &mut open {
            let closed = match slot {
                Some(stream) => {
                    stream.set_nonblocking(true).ok();
                    // A closed connection reads 0 bytes (or an error); an open, silent one
                    // would block.
                    match stream.read(&mut [0u8; 1]) {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    }
                }
                None => true,
            };
            if closed {
                *slot = connect();
                reopened += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("reopened {reopened}");
}
