//! A [`World`]: one isolated credd installation in a temp dir, and ways to drive it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct World {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// Extra environment for every process started in this world.
    pub env: Vec<(String, String)>,
}

/// What a `credd` run printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Self {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    /// Waits for a `credd` started by [`World::spawn_credd`].
    pub fn of(child: Child) -> Output {
        child.wait_with_output().expect("wait for credd").into()
    }

    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "credd failed: {}", self.stderr);
        &self.stdout
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("credd-e2e-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        World {
            socket: dir.path().join("run/credd.sock"),
            config: home.join(".config/credd/config.toml"),
            home,
            dir,
            env: vec![("CREDD_LOG".into(), "debug".into())],
        }
    }

    /// Writes `~/.aws/config` and `~/.aws/credentials` for this world and points every AWS
    /// endpoint at `endpoint` (moto); the daemon must be started afterwards.
    /// The long-term keys in `credentials` become known to the STS checks (see
    /// [`crate::sigv4`]), as a real account's keys are known to AWS.
    pub fn with_aws(mut self, config: &str, credentials: &str, endpoint: &str) -> Self {
        crate::sigv4::trust_credentials_file(credentials);
        let aws = self.home.join(".aws");
        std::fs::create_dir_all(&aws).unwrap();
        std::fs::write(aws.join("config"), config).unwrap();
        std::fs::write(aws.join("credentials"), credentials).unwrap();
        for (k, v) in [
            ("AWS_CONFIG_FILE", aws.join("config").display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                aws.join("credentials").display().to_string(),
            ),
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ] {
            self.env.push((k.into(), v));
        }
        self
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes the config file (atomically, as editors that rename do).
    pub fn write_config(&self, text: &str) {
        std::fs::create_dir_all(self.config.parent().unwrap()).unwrap();
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    /// A script that counts its runs in `<name>.runs` and prints the contents of `<name>.out`
    /// (so a test can rotate the secret), failing with `<name>.err` on stderr while
    /// `<name>.fail` exists.
    pub fn counting_command(&self, name: &str, first_output: &str) -> Vec<String> {
        let script = self.path(&format!("{name}.sh"));
        let base = self.path(name);
        std::fs::write(base.with_extension("out"), first_output).unwrap();
        let base = base.display();
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 echo run >> '{base}.runs'\n\
                 if [ -e '{base}.fail' ]; then cat '{base}.err' >&2; exit 3; fi\n\
                 if [ -e '{base}.sleep' ]; then sleep \"$(cat '{base}.sleep')\"; fi\n\
                 cat '{base}.out'\n"
            ),
        )
        .unwrap();
        make_executable(&script);
        vec![script.display().to_string()]
    }

    /// An executable shell script `name` in the world's directory holding `body` (after the
    /// `#!/bin/sh` line).
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        make_executable(&path);
        path
    }

    pub fn runs(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path(&format!("{name}.runs")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// A browser opener (`xdg-open` in a directory of its own) that notes each page it is
    /// asked to open: the file it notes them in, and a PATH that finds it first.
    pub fn stub_browser(&self) -> (PathBuf, String) {
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let opened = self.path("opened");
        std::fs::write(
            bin.join("xdg-open"),
            format!("#!/bin/sh\necho \"$1\" >> '{}'\n", opened.display()),
        )
        .unwrap();
        make_executable(&bin.join("xdg-open"));
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        (opened, path)
    }

    /// A `credd` command in this world, not yet run.
    pub fn credd_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::bin("credd"));
        cmd.args(args);
        self.isolate(&mut cmd);
        cmd
    }

    /// Runs `credd` to completion.
    pub fn credd(&self, args: &[&str]) -> Output {
        self.credd_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run credd")
            .into()
    }

    /// Starts `credd ARGS` (after `adjust` has its say) with its output captured for
    /// [`Output::of`], and no stdin, as the helper hooks run it.
    pub fn spawn_credd(&self, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Child {
        let mut cmd = self.credd_command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        adjust(&mut cmd);
        cmd.spawn().expect("run credd")
    }

    /// Starts `credd ARGS` like [`World::spawn_credd`], reading its stdout as it comes, so a
    /// test can wait for what it has printed so far.
    pub fn spawn_watched(&self, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Watched {
        let mut child = self.spawn_credd(args, adjust);
        let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = printed.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Watched {
            child,
            printed,
            reader,
        }
    }

    /// Runs `n` copies of `credd ARGS` at once and returns what each printed.
    pub fn credd_concurrently(&self, n: usize, args: &[&str]) -> Vec<Output> {
        let children: Vec<_> = (0..n).map(|_| self.spawn_credd(args, |_| {})).collect();
        children.into_iter().map(Output::of).collect()
    }

    pub fn status(&self) -> Value {
        self.credd(&["status", "--json"]).json()
    }

    pub fn source_status(&self, name: &str) -> Value {
        self.status()["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no source {name} in status"))
            .clone()
    }

    /// The env lines `credd status` prints for `source`'s endpoint of `kind`, as (name, value)
    /// pairs; a `$(cat FILE)` value (an endpoint secret) is read from its file, as a shell
    /// would.
    pub fn endpoint_env(&self, source: &str, kind: &str) -> Vec<(String, String)> {
        let status = self.source_status(source);
        let endpoint = status["endpoints"]
            .as_array()
            .and_then(|all| all.iter().find(|e| e["kind"] == kind))
            .unwrap_or_else(|| panic!("no {kind} endpoint: {status}"))
            .clone();
        assert!(endpoint["error"].is_null(), "{endpoint}");
        endpoint["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| {
                let (k, v) = line.as_str().unwrap().split_once('=').unwrap();
                let v = match v.strip_prefix("$(cat '").and_then(|p| p.strip_suffix("')")) {
                    Some(path) => std::fs::read_to_string(path).unwrap().trim().to_string(),
                    None => v.to_string(),
                };
                (k.to_string(), v)
            })
            .collect()
    }

    /// Waits until `source` is settled: no fetch in flight and, by the daemon's own clock, its
    /// next refresh (or retry) not yet due, so it makes no upstream call until that instant.
    /// This is the daemon's plan read from `status`, not a guess at how long it needs; returns
    /// the source's status then.
    pub fn settled(&self, source: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.status();
            let now = status["now"].as_i64().expect("status has the daemon's now");
            let source_status = status["sources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == source && s["audience"].is_null())
                .unwrap_or_else(|| panic!("no source {source} in status"))
                .clone();
            let idle = source_status["state"] != "refreshing";
            let not_due = source_status["next_refresh_at"]
                .as_i64()
                .is_none_or(|at| at > now);
            if idle && not_due {
                return source_status;
            }
            assert!(
                Instant::now() < deadline,
                "{source} did not settle: {source_status}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that the daemon plans no refresh of `source` before its clock moves on, with
    /// `calls` upstream calls made so far.
    pub fn assert_no_refresh_due(&self, source: &str, calls: u64, why: &str) {
        let status = self.settled(source);
        assert_eq!(
            status["upstream_calls"].as_u64(),
            Some(calls),
            "{why}: {status}"
        );
    }

    /// `credd doctor`'s check named `what`: its verdict and detail, and the whole report.
    pub fn doctor_check(&self, what: &str) -> (String, String, String) {
        let out = self.credd(&["doctor", "--json"]);
        let checks: Vec<Value> = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {out:?}"));
        let check = checks
            .iter()
            .find(|c| c["what"] == what)
            .unwrap_or_else(|| panic!("no `{what}` check: {}", out.stdout));
        let field = |name: &str| check[name].as_str().unwrap_or_default().to_string();
        (field("verdict"), field("detail"), out.stdout)
    }

    /// Gets `source` five times, wanting a minute of validity, and asserts each answer is
    /// `expected` (the still-valid credential, while the upstream fails); returns how many
    /// upstream calls `calls` counted meanwhile, background retries included.
    pub fn serves_while_failing(
        &self,
        source: &str,
        expected: &str,
        calls: impl Fn() -> usize,
    ) -> usize {
        let before = calls();
        for _ in 0..5 {
            let served = self.credd(&["get", source, "--min-valid", "1m"]);
            assert_eq!(
                served.ok(),
                expected,
                "the valid credential is still served"
            );
        }
        // Every call the gets and the background made: the daemon waits for its backoff now.
        self.settled(source);
        calls() - before
    }

    /// The fault matrix of a source whose credentials live half an hour: for each fault in
    /// turn (set with `set_fault`), the clock moves on far enough that a refresh is due, the
    /// still-valid credential keeps being served with at most three upstream calls (as `calls`
    /// counts them) for five gets, and `status` names the error; then `heal` ends the fault and
    /// the source must recover by itself, so the next fault starts from a fresh credential
    /// with no backoff left over. The last fault is a throttle whose Retry-After outlasts
    /// three minutes: no retry comes before it.
    pub fn assert_fault_matrix<F: Copy + std::fmt::Debug>(
        &self,
        source: &str,
        faults: &[(F, &str)],
        set_fault: impl Fn(F),
        calls: impl Fn() -> usize,
        heal: impl Fn(),
    ) {
        for (i, (fault, expected)) in faults.iter().enumerate() {
            let cached = self.credd(&["get", source]).ok().to_string();
            set_fault(*fault);
            self.advance_clock(21 * 60);
            let made = self.serves_while_failing(source, &cached, &calls);
            assert!(made <= 3, "{fault:?}: {made} upstream calls for 5 gets");
            let status = self.source_status(source);
            let error = status["last_error"].as_str().unwrap_or_default();
            assert!(error.contains(expected), "{fault:?}: {status}");
            if i + 1 == faults.len() {
                let before = calls();
                self.advance_clock(180);
                // Three minutes on, the daemon's next try is still in the future.
                self.settled(source);
                assert_eq!(calls(), before, "retried before Retry-After passed");
            }
            heal();
            self.eventually(Duration::from_secs(30), "recovery", || {
                self.advance_clock(60);
                self.source_status(source)["state"] == "fresh"
            });
        }
    }

    /// Gets `source` (printed as `format`) and asserts that credd keeps it for `lifetime`
    /// seconds from the fetch by this machine's clock, and that `status` shows the expiry
    /// corrected for an upstream clock `corrected` seconds off (give or take the call's
    /// duration), or no correction for 0.
    pub fn assert_lifetime_and_clock_offset(
        &self,
        source: &str,
        format: &str,
        lifetime: i64,
        corrected: i64,
    ) -> Output {
        let before = crate::unix_now();
        let out = self.credd(&["get", source, "--format", format]);
        let after = crate::unix_now();
        out.ok();
        let status = self.source_status(source);
        let expires = status["expires_at"].as_i64().unwrap();
        assert!(
            (before + lifetime - 5..=after + lifetime + 1).contains(&expires),
            "correction {corrected:+}s: expiry {expires}, fetched between {before} and {after} for {lifetime}s"
        );
        let seen = status["upstream_clock_offset_secs"].as_i64();
        if corrected == 0 {
            assert_eq!(seen, None, "{status}");
        } else {
            let seen = seen.unwrap_or_else(|| panic!("no clock offset in {status}"));
            assert!((corrected - 5..=corrected + 5).contains(&seen), "{status}");
            let text = self.credd(&["status"]).ok().to_string();
            let side = if corrected > 0 { "ahead of" } else { "behind" };
            assert!(text.contains(side), "{text}");
        }
        out
    }

    /// Clears the environment down to what credd needs, pointed at this world.
    pub fn isolate(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("TMPDIR", self.dir.path())
            .env("CREDD_SOCKET", &self.socket)
            .env("CREDD_CONFIG", &self.config);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
    }

    /// Starts `credd-daemon` in the foreground of this test, logging to `daemon.log`.
    pub fn start_daemon(&self) -> Daemon {
        self.start_daemon_with(|_| {})
    }

    /// [`World::start_daemon`], with the command adjusted first (limits, environment).
    pub fn start_daemon_with(&self, adjust: impl FnOnce(&mut Command)) -> Daemon {
        let log_path = self.path("daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut cmd = Command::new(crate::bin("credd-daemon"));
        self.isolate(&mut cmd);
        adjust(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start credd-daemon");
        let daemon = Daemon {
            child: Some(child),
            log: log_path,
        };
        self.wait_for_socket();
        daemon
    }

    pub fn wait_for_socket(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "credd-daemon did not start listening on {}",
                self.socket.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every file under this world's directory (its HOME, socket directory, config, logs,
    /// autostart log and state included), searched recursively, that contains `needle`.
    pub fn files_containing(&self, needle: &str) -> Vec<PathBuf> {
        files_containing(self.dir.path(), needle)
    }

    /// The log of a daemon that `credd` started by itself.
    pub fn autostart_log(&self) -> String {
        std::fs::read_to_string(self.socket.with_file_name("credd.sock.log")).unwrap_or_default()
    }

    /// Sends raw bytes on the socket and returns whatever comes back before the daemon closes.
    pub fn raw_exchange(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = UnixStream::connect(&self.socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(bytes).unwrap();
        // Nothing more to send: the daemon answers and closes instead of waiting for a next frame.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    }

    /// Moves the daemon's clock forward (it must run with CREDD_TEST_CLOCK=1).
    pub fn advance_clock(&self, secs: u64) {
        let frame = credd_proto::frame::encode_request(credd_proto::Request::AdvanceClock { secs });
        let reply = self.raw_exchange(&frame);
        let body = &reply[4..];
        let text = String::from_utf8_lossy(body);
        assert!(text.contains("\"done\""), "clock not advanced: {text}");
    }

    /// Where `credd setup` keeps the file at `path` before replacing it: under this world's
    /// state directory, at the file's own absolute path.
    pub fn settings_backup(&self, path: &Path) -> PathBuf {
        let dir = path.parent().unwrap().canonicalize().unwrap();
        self.home
            .join(".local/state/credd/backups")
            .join(dir.strip_prefix("/").unwrap())
            .join(path.file_name().unwrap())
    }

    /// Polls `check` until it holds or `timeout` passes.
    pub fn eventually(&self, timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for World {
    /// Stops a daemon that `credd` started by itself in this world.
    fn drop(&mut self) {
        if self.socket.exists() {
            let _ = self
                .credd_command(&["stop"])
                .env("CREDD_NO_AUTOSTART", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A running `credd` whose stdout is read as it comes (see [`World::spawn_watched`]).
pub struct Watched {
    child: Child,
    printed: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Watched {
    /// Waits until it has printed `needle`, failing the test after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.printed.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "credd did not print {needle:?} in {timeout:?}; it printed {:?}",
                self.printed.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for it to exit and returns what it printed.
    pub fn finish(mut self) -> Output {
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let status = self.child.wait().expect("wait for credd");
        self.reader.join().unwrap();
        let stdout = self.printed.lock().unwrap().clone();
        Output {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

/// A daemon started by the test; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.pid() as i32, signal) };
    }

    /// Waits for the daemon to exit and returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "credd-daemon did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Every file under `dir`, searched recursively (links not followed), that contains `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: &[u8], found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                walk(&path, needle, found);
            } else if kind.is_file()
                && std::fs::read(&path)
                    .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, needle.as_bytes(), &mut found);
    found
}

pub fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
