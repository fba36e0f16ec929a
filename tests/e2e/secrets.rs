//! Secrets never reach the daemon's log (even at debug level), `status`, or error messages.

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
    let daemon = world.start_daemon();

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

    let log = daemon.log();
    assert!(log.contains("DEBUG"), "debug logging was not on: {log}");
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
    }
}
