//! Roles that require MFA: `credd login` reads the code on the terminal (never stdin), STS
//! (moto) issues the session, and credd serves it until it runs out without asking again.

use std::os::unix::process::CommandExt;
use std::process::Command;

use credd_tests::World;
use credd_tests::peers::{self, Moto};

pub(crate) const CONFIG: &str = "[profile base]\nregion = us-east-1\n\n\
[profile admin]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = base\n\
mfa_serial = arn:aws:iam::123456789012:mfa/dev-user\nrole_session_name = credd-mfa\n";
pub(crate) const SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev-user";
pub(crate) const CREDENTIALS: &str =
    "[base]\naws_access_key_id = AKIACREDDLONGTERM004\naws_secret_access_key = long-term-secret\n";

/// Runs `credd login admin` on a pseudo-terminal, typing `code` when it asks; returns
/// (exit code, everything the terminal showed).
pub(crate) fn login_on_a_terminal(world: &World, code: &str) -> (i32, String) {
    let script = r#"
import os, pty, sys
credd, code = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(credd, [credd, "login", "admin"])
out = b""
while b"MFA code" not in out:
    chunk = os.read(fd, 1024)
    if not chunk:
        break
    out += chunk
os.write(fd, code.encode() + b"\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    run_on_a_terminal(world, script, code)
}

/// Runs the Python `script` (which drives `credd` on a pseudo-terminal) in `world` with the
/// credd binary and `arg`: (exit code, what the terminal showed).
pub(crate) fn run_on_a_terminal(world: &World, script: &str, arg: &str) -> (i32, String) {
    let mut cmd = Command::new(peers::python());
    world.isolate(&mut cmd);
    let credd = credd_tests::bin("credd");
    let out = cmd
        .args(["-c", script, credd.to_str().unwrap(), arg])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn an_mfa_role_is_assumed_with_the_code_typed_on_the_terminal() {
    let moto = Moto::start();
    let world = World::new().with_aws(CONFIG, CREDENTIALS, &moto.url());
    world.write_config("[sources.admin]\nkind = \"aws\"\nprofile = \"admin\"\n");
    let _daemon = world.start_daemon();

    let out = world.credd(&["get", "admin", "--format", "aws"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("needs an MFA code"), "{}", out.stderr);
    assert!(out.stderr.contains("credd login admin"), "{}", out.stderr);

    // No terminal (as when run by a helper hook): a clear refusal; stdin is never read.
    let mut no_tty = world.credd_command(&["login", "admin"]);
    // SAFETY: setsid is async-signal-safe; it detaches the child from any controlling terminal.
    unsafe {
        no_tty.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let out = no_tty.stdin(std::process::Stdio::piped()).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no terminal"), "{stderr}");

    // STS checks the code against the device, as the real one does: a wrong code is refused
    // and nothing is cached.
    moto.sts.set_mfa_code(SERIAL, "123456");
    let (code, shown) = login_on_a_terminal(&world, "654321");
    assert_ne!(code, 0, "{shown}");
    assert!(shown.contains("STS refused the MFA code"), "{shown}");
    assert_eq!(world.credd(&["get", "admin"]).code, 5);

    let (code, shown) = login_on_a_terminal(&world, "123456");
    assert_eq!(code, 0, "{shown}");
    // What reached STS: the role's device and the code typed, signed with the long-term key.
    let assumed: Vec<_> = moto
        .sts
        .calls()
        .into_iter()
        .filter(|c| c.action == "AssumeRole" && c.status == 200)
        .collect();
    assert_eq!(assumed.len(), 1, "{assumed:?}");
    assert_eq!(
        assumed[0].params.get("SerialNumber").map(String::as_str),
        Some(SERIAL)
    );
    assert_eq!(
        assumed[0].params.get("TokenCode").map(String::as_str),
        Some("123456")
    );
    assert_eq!(
        assumed[0].signed_by.as_deref(),
        Some("AKIACREDDLONGTERM004")
    );
    assert!(
        shown.contains("MFA code for `admin` (arn:aws:iam::123456789012:mfa/dev-user)"),
        "{shown}"
    );
    assert!(shown.contains("signed in"), "{shown}");

    let creds = world
        .credd(&["get", "admin", "--format", "aws-process"])
        .json();
    let script = r#"
import json, sys, boto3
c = json.loads(sys.argv[2])
sts = boto3.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1",
    aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
    aws_session_token=c["SessionToken"])
print(sts.get_caller_identity()["Arn"])
"#;
    let out = Command::new(peers::python())
        .args(["-c", script, &moto.url(), &creds.to_string()])
        .output()
        .unwrap();
    let arn = String::from_utf8_lossy(&out.stdout);
    assert!(
        arn.contains(":assumed-role/admin/credd-mfa"),
        "{arn} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The session serves on: no new code needed.
    let again = world.credd(&["login", "admin"]);
    assert!(again.ok().contains("needs no login"), "{}", again.stdout);
    let cached = world
        .credd(&["get", "admin", "--format", "aws-process"])
        .json();
    assert_eq!(cached["AccessKeyId"], creds["AccessKeyId"]);
}

/// `credd login admin` detached from any terminal (as a hook runs with Claude Code's interface
/// drawn elsewhere), with `adjust` applied: its output and how long it took.
fn login_without_a_terminal(
    world: &World,
    adjust: impl FnOnce(&mut Command),
) -> (credd_tests::Output, std::time::Duration) {
    let mut cmd = world.credd_command(&["login", "admin"]);
    // SAFETY: setsid is async-signal-safe; it detaches the child from any controlling terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    adjust(&mut cmd);
    let started = std::time::Instant::now();
    let out = cmd.stdin(std::process::Stdio::piped()).output().unwrap();
    (out.into(), started.elapsed())
}

/// The AssumeRole calls STS answered, with the code each carried.
fn assumed_codes(moto: &Moto) -> Vec<String> {
    moto.sts
        .calls()
        .into_iter()
        .filter(|c| c.action == "AssumeRole" && c.status == 200)
        .map(|c| c.params.get("TokenCode").cloned().unwrap_or_default())
        .collect()
}

#[test]
fn an_mfa_process_gives_the_code_with_no_one_to_ask() {
    let moto = Moto::start();
    let world = World::new().with_aws(CONFIG, CREDENTIALS, &moto.url());
    moto.sts.set_mfa_code(SERIAL, "246810");
    let authenticator = world.script(
        "authenticator.sh",
        &format!(
            "echo run >> '{}'\necho ' 246810'\n",
            world.path("authenticator.runs").display()
        ),
    );
    world.write_config(&format!(
        "[sources.admin]\nkind = \"aws\"\nprofile = \"admin\"\nmfa_process = [\"{}\", \"--account\", \"aws\"]\n",
        authenticator.display()
    ));
    let _daemon = world.start_daemon();
    // `get` never runs it: only a login does.
    assert_eq!(world.credd(&["get", "admin"]).code, 5);
    assert!(!world.path("authenticator.runs").exists());
    let (out, _) = login_without_a_terminal(&world, |_| {});
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(assumed_codes(&moto), vec!["246810".to_string()]);
    world
        .credd(&["get", "admin", "--format", "aws-process"])
        .json();

    // A command that fails or prints no code: a clear refusal, at once.
    for (body, said) in [
        ("echo 'vault is locked' >&2; exit 1", "failed"),
        ("echo 'not-a-code'", "not an MFA code"),
    ] {
        let other = World::new().with_aws(CONFIG, CREDENTIALS, &moto.url());
        let broken = other.script("authenticator.sh", body);
        other.write_config(&format!(
            "[sources.admin]\nkind = \"aws\"\nprofile = \"admin\"\nmfa_process = [\"{}\"]\n",
            broken.display()
        ));
        let _daemon = other.start_daemon();
        let (out, took) = login_without_a_terminal(&other, |_| {});
        assert_eq!(out.code, 5, "{out:?}");
        assert!(out.stderr.contains(said), "{}", out.stderr);
        assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    }
    assert_eq!(assumed_codes(&moto).len(), 1, "a non-code was sent to STS");
}

#[test]
fn a_login_that_cannot_ask_anyone_says_what_to_run_within_a_second() {
    let moto = Moto::start();
    let world = World::new().with_aws(CONFIG, CREDENTIALS, &moto.url());
    world.write_config("[sources.admin]\nkind = \"aws\"\nprofile = \"admin\"\n");
    let _daemon = world.start_daemon();
    let (out, took) = login_without_a_terminal(&world, |cmd| {
        cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    });
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("credd login admin"), "{}", out.stderr);
    assert!(out.stderr.contains("mfa_process"), "{}", out.stderr);
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
}

/// Runs `credd login admin` on a pseudo-terminal that is not the person's to answer on, as
/// `shape` makes it: `hook` (Claude Code's variables in the environment), `raw` (a full-screen
/// program has the terminal in raw mode) or `background` (credd is not in the terminal's
/// foreground group). Types a code if a prompt appears anyway; returns (exit code, what the
/// terminal showed, how long it took).
fn login_on_a_busy_terminal(world: &World, shape: &str) -> (i32, String, std::time::Duration) {
    let script = r#"
import os, pty, sys, time, tty
credd, shape = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    if shape == "hook":
        env["CLAUDE_CODE_ENTRYPOINT"] = "cli"
    if shape == "raw":
        tty.setraw(0)
    if shape == "background":
        child = os.fork()
        if child:
            _, status = os.waitpid(child, 0)
            os._exit(os.waitstatus_to_exitcode(status))
        os.setpgid(0, 0)
    os.execve(credd, [credd, "login", "admin"], env)
out = b""
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    if b"MFA code for" in out:
        os.write(fd, b"111111\n")
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let started = std::time::Instant::now();
    let (code, shown) = run_on_a_terminal(world, script, shape);
    (code, shown, started.elapsed())
}

#[test]
fn a_terminal_that_something_else_reads_is_never_asked() {
    let moto = Moto::start();
    let world = World::new().with_aws(CONFIG, CREDENTIALS, &moto.url());
    world.write_config("[sources.admin]\nkind = \"aws\"\nprofile = \"admin\"\n");
    moto.sts.set_mfa_code(SERIAL, "111111");
    let _daemon = world.start_daemon();
    for shape in ["hook", "raw", "background"] {
        let (code, shown, took) = login_on_a_busy_terminal(&world, shape);
        assert_eq!(code, 5, "{shape}: {shown}");
        assert!(
            !shown.contains("MFA code for"),
            "{shape}: asked on the terminal: {shown}"
        );
        assert!(shown.contains("no terminal"), "{shape}: {shown}");
        assert!(
            took < std::time::Duration::from_secs(3),
            "{shape}: took {took:?}"
        );
    }
    assert!(assumed_codes(&moto).is_empty());
}

#[test]
fn a_desktop_prompt_asks_when_no_terminal_can() {
    let moto = Moto::start();
    let world = World::new().with_aws(CONFIG, CREDENTIALS, &moto.url());
    world.write_config("[sources.admin]\nkind = \"aws\"\nprofile = \"admin\"\n");
    moto.sts.set_mfa_code(SERIAL, "135790");
    let _daemon = world.start_daemon();
    let desktop = credd_tests::desktop::Desktop::start();
    let (out, _) = std::thread::scope(|scope| {
        let login = scope.spawn(|| {
            login_without_a_terminal(&world, |cmd| {
                cmd.env("DISPLAY", desktop.display())
                    .env_remove("WAYLAND_DISPLAY");
            })
        });
        assert!(
            desktop.type_into("credd", "135790", std::time::Duration::from_secs(20)),
            "no prompt appeared on the desktop"
        );
        login.join().unwrap()
    });
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("signed in"), "{}", out.stdout);
    assert_eq!(assumed_codes(&moto), vec!["135790".to_string()]);
    assert!(!desktop.has_window("credd"), "the prompt stayed open");
}
