//! Real peers the tests run against, installed by `tests/run.sh` under `target/peers`:
//! moto's server (a real STS emulator) and a Python with boto3.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::workspace_root;

fn venv_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("CREDD_PEERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/peers/venv"));
    let path = dir.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing; run the README's test command (tests/run.sh), which installs moto[server] and boto3 into {}",
        path.display(),
        dir.display()
    );
    path
}

/// The Python that has boto3.
pub fn python() -> PathBuf {
    venv_bin("python")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// moto's server on 127.0.0.1, stopped when dropped.
pub struct Moto {
    pub port: u16,
    child: Child,
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { port, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
