//! `aws login` profiles (`login_session`): console credentials that live 15 minutes, renewed by
//! credd through AWS Sign-In (a stub that checks DPoP proofs) well before Claude Code would
//! cache them too long, written back where the AWS CLI keeps them; and when the session has
//! ended, `credd login` runs `aws login`.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use credd_tests::World;
use credd_tests::signin::{self, SigninStub};
use serde_json::Value;

const ARN: &str = "arn:aws:iam::111122223333:user/dev";

fn console_world(signin: &SigninStub) -> World {
    let world = World::new()
        .with_aws(
            &format!("[profile console]\nlogin_session = {ARN}\nregion = us-east-1\n"),
            "",
            &signin.url(),
        )
        .with_env("AWS_ENDPOINT_URL_SIGNIN", &signin.url());
    world.write_config("[sources.console]\nkind = \"aws\"\nprofile = \"console\"\n");
    world
}

fn write_token_file(world: &World, file: &Value) {
    let path = signin::cache_file(&world.home, ARN);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(file).unwrap()).unwrap();
}

fn read_token_file(world: &World) -> Value {
    serde_json::from_slice(&std::fs::read(signin::cache_file(&world.home, ARN)).unwrap()).unwrap()
}

fn left(expiration: &Value) -> Duration {
    humantime::parse_rfc3339(expiration.as_str().unwrap())
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

#[test]
fn console_credentials_are_renewed_before_claude_code_would_hold_them_too_long() {
    let signin = SigninStub::start();
    let world = console_world(&signin);
    // Fresh from `aws login`: served as they are, with no call.
    let fresh = signin.login(ARN, Duration::from_secs(14 * 60));
    write_token_file(&world, &fresh);
    let _daemon = world.start_daemon();
    let creds = world.credd(&["get", "console", "--format", "aws"]).json();
    assert_eq!(
        creds["Credentials"]["AccessKeyId"],
        fresh["accessToken"]["accessKeyId"]
    );
    assert_eq!(signin.calls(), 0);

    // Eight minutes left: credd renews them through Sign-In (with a proof the stub verified),
    // and the new ones have their whole 15 minutes.
    let ageing = signin.login(ARN, Duration::from_secs(8 * 60));
    write_token_file(&world, &ageing);
    world.credd(&["refresh", "console"]).ok();
    assert_eq!(signin.calls(), 1, "refused: {:?}", signin.refusals());
    let creds = world.credd(&["get", "console", "--format", "aws"]).json();
    let issued = signin.issued();
    assert_eq!(
        creds["Credentials"]["AccessKeyId"].as_str(),
        issued.last().map(String::as_str)
    );
    let remaining = left(&creds["Credentials"]["Expiration"]);
    assert!(
        remaining > Duration::from_secs(13 * 60),
        "handed out with {remaining:?} left"
    );
    // Written back for the AWS CLI and SDKs: the new credentials and the rotated refresh
    // token, the session's key and client kept, the file private.
    let file = read_token_file(&world);
    assert_eq!(
        file["accessToken"]["accessKeyId"],
        creds["Credentials"]["AccessKeyId"]
    );
    assert_ne!(file["refreshToken"], ageing["refreshToken"]);
    assert_eq!(file["dpopKey"], ageing["dpopKey"]);
    assert_eq!(file["clientId"], signin::CLIENT_ID);
    assert_eq!(file["accountId"], Value::Null);
    assert_eq!(file["accessToken"]["accountId"], "111122223333");
    let mode = std::fs::metadata(signin::cache_file(&world.home, ARN))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Cached: no second call.
    world.credd(&["get", "console", "--format", "aws"]).ok();
    assert_eq!(signin.calls(), 1);
    // The session is the AWS CLI's as much as credd's: logging out of credd says how to end it.
    let out = world.credd(&["logout", "console"]);
    assert!(
        out.ok().contains("`aws logout --profile console` ends it"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_ended_console_session_asks_for_aws_login_and_credd_login_runs_it() {
    let signin = SigninStub::start();
    let world = console_world(&signin);
    write_token_file(&world, &signin.login(ARN, Duration::from_secs(2 * 60)));
    signin.end_sessions();
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "console", "--format", "aws"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "a credential was printed");
    assert!(out.stderr.contains("has ended"), "{}", out.stderr);
    assert!(out.stderr.contains("credd login console"), "{}", out.stderr);

    // `aws login` (here a stand-in on PATH that leaves the new session's file, as the real
    // one does after the browser sign-in) is what `credd login` runs.
    let next = world.path("next-session.json");
    std::fs::write(
        &next,
        signin.login(ARN, Duration::from_secs(15 * 60)).to_string(),
    )
    .unwrap();
    let bin = world.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("aws"),
        format!(
            "#!/bin/sh\necho \"aws $*\" >> '{log}'\necho 'Updated profile console to use arn:aws:iam::111122223333:user/dev credentials.'\ncp '{next}' '{target}'\n",
            log = world.path("aws.log").display(),
            next = next.display(),
            target = signin::cache_file(&world.home, ARN).display(),
        ),
    )
    .unwrap();
    credd_tests::world::make_executable(&bin.join("aws"));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let login: credd_tests::Output = world
        .credd_command(&["login", "console"])
        .env("PATH", &path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .into();
    let shown = login.ok();
    assert!(shown.contains("aws login --profile console"), "{shown}");
    assert!(shown.contains("Updated profile console"), "{shown}");
    assert_eq!(
        std::fs::read_to_string(world.path("aws.log")).unwrap(),
        "aws login --profile console\n"
    );
    let creds = world.credd(&["get", "console", "--format", "aws"]).json();
    assert_eq!(
        creds["Credentials"]["AccessKeyId"].as_str(),
        signin.issued().last().map(String::as_str)
    );
}

#[test]
fn a_corrupted_console_token_file_is_reported_and_left_as_it_is() {
    let signin = SigninStub::start();
    let world = console_world(&signin);
    let path = signin::cache_file(&world.home, ARN);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{\"accessToken\": {\"expiresAt\": tru").unwrap();
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "console", "--format", "aws"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not an `aws login` token file"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("credd login console"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"{\"accessToken\": {\"expiresAt\": tru"
    );
    assert_eq!(signin.calls(), 0);
}

#[test]
fn an_empty_answer_from_sign_in_leaves_the_session_file_as_it_was() {
    let signin = SigninStub::start();
    let world = console_world(&signin);
    let ageing = signin.login(ARN, Duration::from_secs(8 * 60));
    write_token_file(&world, &ageing);
    signin.answer_empty();
    let _daemon = world.start_daemon();
    // The credentials in the file still serve; the file is not overwritten with nothing.
    let creds = world.credd(&["get", "console", "--format", "aws"]).json();
    assert_eq!(
        creds["Credentials"]["AccessKeyId"],
        ageing["accessToken"]["accessKeyId"]
    );
    assert!(signin.calls() >= 1);
    assert_eq!(
        read_token_file(&world),
        ageing,
        "the session file was changed"
    );
}
