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
    let mut cmd = Command::new(peers::python());
    world.isolate(&mut cmd);
    let credd = credd_tests::bin("credd");
    let out = cmd
        .args(["-c", script, credd.to_str().unwrap(), code])
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
