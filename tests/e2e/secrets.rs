//! Secrets never reach the daemon's log (even at trace level), `status`, error messages, or any
//! file credd writes. The daemon here is the one `credd` starts by itself, so its log is the
//! autostart log beside the socket.

use std::time::Duration;

use credd_tests::World;

use crate::exec_config;

#[test]
fn issued_secrets_appear_in_no_log_line_and_no_status() {
    let world = World::new()
        .with_env("CREDD_LOG", "trace")
        .with_env("CREDD_TEST_CLOCK", "1");
    let token = "tok-SECRET-8d1f0c9a7b";
    let aws_secret = "aws-SECRET-key-4c2e";
    let session = "aws-SECRET-session-77f1";
    let gw = world.counting_command("gw", token);
    let aws = world.counting_command(
        "aws",
        &format!(r#"{{"Version":1,"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"{aws_secret}","SessionToken":"{session}","Expiration":"2099-01-01T00:00:00Z"}}"#),
    );
    let bad = world.counting_command("bad", "two words here");
    world.write_config(
        &[
            exec_config("gateway", &gw, "ttl = \"1h\""),
            exec_config("dev", &aws, ""),
            exec_config("broken", &bad, ""),
        ]
        .concat(),
    );
    // No daemon yet: the first `get` starts one.
    assert_eq!(world.credd(&["get", "gateway"]).ok().trim(), token);
    world.credd(&["get", "dev", "--format", "aws"]).ok();
    world.credd(&["get", "dev", "--format", "env"]).ok();
    world.credd(&["refresh", "gateway"]).ok();
    let broken = world.credd(&["get", "broken"]);
    world.advance_clock(55 * 60);
    world.eventually(Duration::from_secs(5), "background refresh", || {
        world.runs("gw") >= 3
    });
    let status_human = world.credd(&["status"]).ok().to_string();
    let status_json = world.credd(&["status", "--json"]).ok().to_string();
    let wrong_format = world.credd(&["get", "dev", "--format", "token"]);

    let log = world.autostart_log();
    assert!(log.contains("DEBUG"), "debug logging was not on: {log}");
    // The commands' own output files hold what they print; nothing else may.
    let outputs = ["gw.out", "aws.out", "bad.out"].map(|f| world.path(f));
    for secret in [token, aws_secret, session, "two words here"] {
        assert!(!log.contains(secret), "secret {secret} in the daemon log");
        assert!(!status_human.contains(secret), "secret {secret} in status");
        assert!(
            !status_json.contains(secret),
            "secret {secret} in status --json"
        );
        assert!(
            !broken.stderr.contains(secret),
            "secret {secret} in an error"
        );
        assert!(
            !wrong_format.stderr.contains(secret),
            "secret {secret} in an error"
        );
        let written: Vec<_> = world
            .files_containing(secret)
            .into_iter()
            .filter(|f| !outputs.contains(f))
            .collect();
        assert!(written.is_empty(), "secret {secret} written to {written:?}");
    }
}
