//! Real peers the tests run against, installed by `tests/run.sh` under `target/peers`:
//! moto's server (a real STS emulator) and a Python with boto3.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sts_check::StsCheck;
use crate::workspace_root;

pub fn venv_bin(name: &str) -> PathBuf {
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

/// The Python of the test peers (boto3, moto, google-auth, azure-identity).
pub fn python() -> PathBuf {
    venv_bin("python")
}

/// Runs a Python snippet with boto3 available; returns its stdout, trimmed. `prepare` sets the
/// environment (for example [`crate::World::isolate`]).
pub fn run_python(script: &str, args: &[&str], prepare: impl FnOnce(&mut Command)) -> String {
    let mut cmd = Command::new(python());
    prepare(&mut cmd);
    let out = run_ok(cmd.arg("-c").arg(script).args(args), "python/boto3");
    String::from_utf8_lossy(&out).trim().to_string()
}

/// Runs `cmd` (a peer, named `what` in messages) and returns its stdout, asserting that it
/// started and succeeded.
pub fn run_ok(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}); the test command installs it"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asks STS (moto at `endpoint`) whom the credentials belong to; `creds` is credential_process
/// JSON (`AccessKeyId`, `SecretAccessKey`, `SessionToken`).
pub fn caller_arn(endpoint: &str, creds: &serde_json::Value) -> String {
    let script = r#"
import json, sys, boto3
c = json.loads(sys.argv[2])
sts = boto3.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1",
    aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
    aws_session_token=c.get("SessionToken"))
print(sts.get_caller_identity()["Arn"])
"#;
    run_python(script, &[endpoint, &creds.to_string()], |_| {})
}

/// Waits until something listens on 127.0.0.1:`port`; fails the test naming `what` if nothing
/// does within `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1.
/// A port free to listen on now, for a test's endpoint: picked at random below the kernel's
/// ephemeral range (32768 and up), where no outgoing connection of another test takes it
/// meanwhile, as it could a port the kernel just handed out.
pub fn free_port() -> u16 {
    loop {
        let mut bytes = [0u8; 2];
        getrandom::fill(&mut bytes).unwrap();
        let port = 20_000 + u16::from_le_bytes(bytes) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// moto's server on 127.0.0.1 behind a [`StsCheck`] front (which checks signatures and MFA
/// codes, as moto does not), stopped when dropped. `port` and `url` are the front's.
pub struct Moto {
    pub port: u16,
    pub sts: StsCheck,
    tls: bool,
    child: Child,
}

impl Moto {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// The same over HTTPS with this certificate and key (see [`TestCa`]).
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> Self {
        let moto_port = free_port();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(moto_port, Duration::from_secs(30), "moto_server");
        let sts = StsCheck::start(moto_port, tls);
        Moto {
            port: sts.port(),
            sts,
            tls: tls.is_some(),
            child,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority made for one test, and a server certificate it signed for
/// 127.0.0.1 and localhost (made with the openssl command line tool).
pub struct TestCa {
    pub ca_pem: PathBuf,
    pub server_pem: PathBuf,
    pub server_key: PathBuf,
}

/// Runs the openssl command line tool in `dir`; returns its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    run_ok(
        Command::new("openssl").args(args).current_dir(dir),
        &format!("openssl {args:?}"),
    )
}

impl TestCa {
    pub fn create(dir: &Path) -> Self {
        let run = |args: &[&str]| openssl(dir, args);
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=credd test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        TestCa {
            ca_pem: dir.join("ca.pem"),
            server_pem: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// tinyproxy (Debian's package) on 127.0.0.1, logging every request it relays.
pub struct Tinyproxy {
    pub port: u16,
    log: PathBuf,
    child: Child,
}

impl Tinyproxy {
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let log = dir.join("tinyproxy.log");
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\nMaxClients 50\nAllow 127.0.0.1\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy (Debian's tinyproxy package) is installed by the test command");
        wait_for_port(port, Duration::from_secs(10), "tinyproxy");
        Tinyproxy { port, log, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The CONNECT requests it relayed (one per TLS connection through it). Not every
    /// connection: tinyproxy logs those at its `CONNECT` level too, and the port probe that
    /// waited for it to start is one.
    pub fn connects(&self) -> usize {
        self.connect_requests().len()
    }

    /// The log lines of those requests (for failure messages): `Request (…): CONNECT host:port`.
    pub fn connect_requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Request (") && l.contains("): CONNECT "))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A remote MCP server made with the official MCP Python SDK (`tests/peers/mcp_server.py`):
/// streamable HTTP on 127.0.0.1, taking only the tokens written to its issued file, each until
/// its expiry, and recording which token served each call of its `count` tool.
pub struct McpServer {
    child: Child,
    pub port: u16,
    calls: PathBuf,
}

impl McpServer {
    /// Starts it, trusting the tokens listed in `issued` (`TOKEN EXPIRES_AT_UNIX` lines).
    pub fn start(issued: &std::path::Path, dir: &std::path::Path) -> Self {
        let port = free_port();
        let calls = dir.join("mcp-calls");
        let script = workspace_root().join("tests/peers/mcp_server.py");
        let log = std::fs::File::create(dir.join("mcp-server.log")).unwrap();
        let child = Command::new(python())
            .arg(&script)
            .arg(port.to_string())
            .arg(issued)
            .arg(&calls)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the MCP server (the `mcp` package in the peers' venv)");
        let server = McpServer { child, port, calls };
        wait_for_port(port, Duration::from_secs(30), "the MCP server");
        server
    }

    /// Its endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Each call of `count`: the token that served it and when (unix seconds).
    pub fn calls(&self) -> Vec<(String, f64)> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut words = line.split(' ').skip(1);
                Some((words.next()?.to_string(), words.next()?.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
