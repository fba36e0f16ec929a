//! An endpoint to flood, and what to watch while it is flooded: the daemon's descriptors, and
//! how long this user's own requests take. Shared by the flood test (which asserts the caps)
//! and the benchmark (which records the numbers).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::World;

/// A world with an exec source `gateway` and a gcp source `vertex` served on a metadata
/// endpoint whose index needs no upstream; the endpoint's port.
pub fn metadata_world() -> (World, u16) {
    let world = World::new().with_env("CREDD_LOG", "info");
    let gw = world.counting_command("gw", "tok-flood");
    let port = crate::peers::free_port();
    world.write_config(&format!(
        "[sources.gateway]\nkind = \"exec\"\ncommand = {}\n\n[sources.vertex]\nkind = \"gcp\"\ncredentials_file = \"{}\"\nmetadata_endpoint = {{ port = {port} }}\n",
        serde_json::to_string(&gw).unwrap(),
        world.path("no-such-adc.json").display()
    ));
    (world, port)
}

/// Starts `cmd` with its open-file limit at `soft` / `hard`.
pub fn with_open_file_limit(cmd: &mut Command, soft: u64, hard: u64) {
    // SAFETY: setrlimit is async-signal-safe and reads a valid rlimit.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// How many descriptors `pid` holds.
pub fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// This user's own request for the metadata index at `port`: the status line and how long the
/// whole answer took.
pub fn metadata_index(port: u16) -> (String, Duration) {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return (String::new(), started.elapsed());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        stream,
        "GET /computeMetadata/v1/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    (
        answer.lines().next().unwrap_or("").to_string(),
        started.elapsed(),
    )
}
