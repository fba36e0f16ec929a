//! No secret an upstream issues, or that credd is configured with, reaches the daemon's log even
//! with `CREDD_LOG=trace`. The HTTP stacks under credd print whole requests at trace level
//! (aws-smithy's "transmitting request" line showed the `x-amz-sso_bearer_token` header), so
//! the daemon caps their events at debug whatever `CREDD_LOG` asks for. This pins that, for one
//! flow of each provider against its test upstream, each calling the upstream at least twice.

use std::time::Duration;

use credd_tests::World;
use credd_tests::google::{self, GoogleUpstream};
use serde_json::Value;

use crate::{aws_sso, entra_source, gcp_source};

/// Asks every process of `world` for the finest log level (`World::new` set `debug`; the later
/// entry wins).
fn log_at_trace(world: &mut World) {
    world.env.push(("CREDD_LOG".into(), "trace".into()));
}

/// Fails, naming `what`, if `secret` is in `log`; shows the first line holding it with the
/// secret masked, never the secret itself or the whole log.
fn assert_absent(log: &str, secret: &str, what: &str) {
    assert!(!secret.is_empty(), "no {what} to look for");
    if let Some(line) = log.lines().find(|line| line.contains(secret)) {
        panic!(
            "{what} is in the daemon log: {}",
            line.replace(secret, "<SECRET>")
        );
    }
}

/// The log is as verbose as it gets, and holds none of `secrets`. (No line is at TRACE: credd
/// logs nothing finer than debug, and the crates that do are the ones capped.)
fn assert_none_logged(log: &str, secrets: &[(String, &str)]) {
    assert!(
        log.contains("DEBUG"),
        "debug logging was not on ({} lines of log)",
        log.lines().count()
    );
    for (secret, what) in secrets {
        assert_absent(log, secret, what);
    }
}

#[test]
fn aws_sso_secrets_stay_out_of_trace_logs() {
    let mut t = aws_sso::sso_world();
    log_at_trace(&mut t.world);
    // As `aws sso login` left it, five minutes to go: credd renews it with its refresh token,
    // then sends the new access token to GetRoleCredentials in the header that once leaked.
    let issued = t.sso.issue_session();
    aws_sso::write_cli_cache(
        &t.world,
        &issued.access_token,
        &issued.refresh_token,
        Duration::from_secs(300),
    );
    let daemon = t.world.start_daemon();

    let first = t.world.credd(&["get", "dev", "--format", "aws"]).json();
    t.world.credd(&["refresh", "dev"]).ok();
    let second = t.world.credd(&["get", "dev", "--format", "aws"]).json();
    assert!(t.sso.calls("CreateToken:refresh_token") >= 1);
    assert!(t.sso.calls("GetRoleCredentials") >= 2);

    let mut secrets = vec![
        (issued.access_token.clone(), "the seeded SSO access token"),
        (issued.refresh_token.clone(), "the seeded SSO refresh token"),
        (issued.client_secret.clone(), "the SSO client secret"),
    ];
    for creds in [&first, &second] {
        for key in ["SecretAccessKey", "SessionToken"] {
            let value = creds["Credentials"][key].as_str().unwrap_or_default();
            secrets.push((value.to_string(), key));
        }
    }
    let file: Value =
        serde_json::from_slice(&std::fs::read(aws_sso::cache_file(&t.world)).unwrap()).unwrap();
    assert_ne!(
        file["accessToken"],
        issued.access_token.as_str(),
        "the token file was not renewed"
    );
    for (key, what) in [
        ("accessToken", "the renewed SSO access token"),
        ("refreshToken", "the renewed SSO refresh token"),
    ] {
        if let Some(value) = file[key].as_str() {
            secrets.push((value.to_string(), what));
        }
    }

    let log = daemon.log();
    assert!(
        log.contains("aws_smithy_runtime"),
        "the AWS SDK's debug lines are missing from the log"
    );
    assert_none_logged(&log, &secrets);
}

#[test]
fn gcp_secrets_stay_out_of_trace_logs() {
    let upstream = GoogleUpstream::start();
    let mut world = gcp_source::gcp_world(
        &gcp_source::authorized_user(&upstream, gcp_source::REFRESH_TOKEN),
        "",
    );
    log_at_trace(&mut world);
    let daemon = world.start_daemon();

    let first = world.credd(&["get", "vertex"]).ok().trim().to_string();
    world.credd(&["refresh", "vertex"]).ok();
    let second = world.credd(&["get", "vertex"]).ok().trim().to_string();
    assert!(upstream.calls(google::REFRESH) >= 2);

    let mut secrets = vec![
        (first, "the first access token"),
        (second, "the refreshed access token"),
        (gcp_source::REFRESH_TOKEN.to_string(), "the refresh token"),
        (gcp_source::CLIENT_SECRET.to_string(), "the client secret"),
    ];
    for token in upstream.issued() {
        secrets.push((token, "an issued access token"));
    }
    assert_none_logged(&daemon.log(), &secrets);
}

#[test]
fn entra_secrets_stay_out_of_trace_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, upstream, mut world) = entra_source::secret_world(&dir, "");
    log_at_trace(&mut world);
    let daemon = world.start_daemon();

    let first = world.credd(&["get", "foundry"]).ok().trim().to_string();
    world.credd(&["refresh", "foundry"]).ok();
    let second = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert!(upstream.calls("client_secret") >= 2);

    let mut secrets = vec![
        (first, "the first access token"),
        (second, "the refreshed access token"),
        (entra_source::CLIENT_SECRET.to_string(), "the client secret"),
    ];
    for token in upstream.issued() {
        secrets.push((token, "an issued access token"));
    }
    for token in upstream.refresh_tokens() {
        secrets.push((token, "an issued refresh token"));
    }
    assert_none_logged(&daemon.log(), &secrets);
}
