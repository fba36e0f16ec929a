//! The refresh policy seen from outside, with the daemon's clock jumped (`CREDD_TEST_CLOCK=1`):
//! proactive refresh before `min-valid` is crossed, never an expired credential, serving the
//! cache through upstream failures, and re-asks after a rejection.

use std::time::{Duration, SystemTime};

use credd_tests::World;

use crate::exec_config;

const MIN: u64 = 60;

fn clocked_world(first: &str, extra: &str) -> (World, credd_tests::Daemon) {
    let world = World::new().with_env("CREDD_TEST_CLOCK", "1");
    let cmd = world.counting_command("gw", first);
    world.write_config(&exec_config("gateway", &cmd, extra));
    let daemon = world.start_daemon();
    (world, daemon)
}

/// Seconds of validity the credential handed out has left, by the daemon's clock.
fn handed_out_remaining(world: &World) -> (String, i64) {
    let cred = world.credd(&["get", "gateway", "--format", "json"]).json();
    let expires = humantime::parse_rfc3339(cred["expires_at"].as_str().unwrap()).unwrap();
    let expires = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let now = world.status()["now"].as_i64().unwrap();
    (cred["token"].as_str().unwrap().to_string(), expires - now)
}

#[test]
fn the_credential_is_replaced_in_the_background_before_min_valid_is_crossed() {
    let (world, _daemon) = clocked_world("tok-gen-1", "ttl = \"1h\"");
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-gen-1\n");
    std::fs::write(world.path("gw.out"), "tok-gen-2").unwrap();

    world.advance_clock(45 * MIN);
    world.assert_no_refresh_due(
        "gateway",
        1,
        "refreshed too early: 15 minutes were still left",
    );
    assert_eq!(world.runs("gw"), 1);

    // As after a laptop wakes from suspend: the deadline has passed, refresh at once.
    world.advance_clock(5 * MIN);
    world.eventually(Duration::from_secs(5), "background refresh", || {
        world.runs("gw") == 2
    });
    let (token, remaining) = handed_out_remaining(&world);
    assert_eq!(token, "tok-gen-2");
    assert!(remaining >= (50 * MIN) as i64, "only {remaining}s left");
    assert_eq!(
        world.runs("gw"),
        2,
        "the get itself should not have called the upstream"
    );
}

#[test]
fn no_caller_ever_receives_a_credential_below_its_min_valid() {
    // Five-minute tokens, shorter than the default 10-minute min-valid: each is served for its
    // first half, and refreshed before that half is over.
    let (world, _daemon) = clocked_world("tok-short", "ttl = \"5m\"");
    for step in 0..90 {
        let (_, remaining) = handed_out_remaining(&world);
        assert!(
            remaining >= 150,
            "step {step}: handed out a token with only {remaining}s left"
        );
        world.advance_clock(40);
    }
    // 60 simulated minutes of 5-minute tokens refreshed at half-life (minus jitter).
    let runs = world.runs("gw");
    assert!(
        (20..=32).contains(&runs),
        "{runs} upstream calls in an hour"
    );
}

#[test]
fn an_upstream_failure_keeps_the_cache_serving_and_recovers_by_itself() {
    let (world, _daemon) = clocked_world("tok-good", "ttl = \"1h\"");
    let _daemon = &_daemon;
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-good\n");
    std::fs::write(world.path("gw.fail"), "").unwrap();
    std::fs::write(world.path("gw.err"), "upstream is down (HTTP 500)").unwrap();

    world.advance_clock(51 * MIN);
    world.eventually(Duration::from_secs(5), "failing state", || {
        world.source_status("gateway")["state"] == "failing"
    });
    let status = world.source_status("gateway");
    assert!(
        status["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{status}"
    );
    // Still valid for 9 minutes: keep serving it, and wait for the backoff the daemon plans
    // (no call before its retry time).
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-good\n");
    let status = world.settled("gateway");
    let runs = world.runs("gw");
    assert!(
        runs <= 3,
        "{runs} upstream calls before the first backoff: backoff is not working\n{status}\n{}",
        _daemon.log()
    );

    std::fs::remove_file(world.path("gw.fail")).unwrap();
    std::fs::write(world.path("gw.out"), "tok-recovered").unwrap();
    world.eventually(Duration::from_secs(10), "recovery", || {
        world.advance_clock(5);
        world.source_status("gateway")["state"] == "fresh"
    });
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-recovered\n");
    assert!(world.source_status("gateway")["last_error"].is_null());
}

#[test]
fn an_expired_credential_is_not_served_when_the_upstream_fails() {
    let (world, _daemon) = clocked_world("tok-old", "ttl = \"1h\"");
    world.credd(&["get", "gateway"]).ok();
    std::fs::write(world.path("gw.fail"), "").unwrap();
    std::fs::write(world.path("gw.err"), "no network").unwrap();
    world.advance_clock(61 * MIN);
    let out = world.credd(&["get", "gateway"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("no network"), "{}", out.stderr);
    world.eventually(Duration::from_secs(5), "expired or failing state", || {
        let state = world.source_status("gateway")["state"].clone();
        state == "failing" || state == "expired"
    });
}

#[test]
fn a_quick_reask_from_a_caching_caller_forces_one_refresh() {
    let (world, _daemon) = clocked_world("tok-rejected", "ttl = \"1h\"");
    let world = world.with_env("CLAUDE_CODE_API_KEY_HELPER_TTL_MS", "300000");
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-rejected\n");
    std::fs::write(world.path("gw.out"), "tok-rotated").unwrap();

    // Asked again at once: the caller's upstream rejected the token.
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-rotated\n");
    assert_eq!(world.runs("gw"), 2);

    // Looping on rejections does not hammer the upstream.
    for _ in 0..5 {
        assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-rotated\n");
    }
    assert_eq!(world.runs("gw"), 2);

    // A routine re-ask after the caller's cache time costs nothing.
    world.advance_clock(5 * MIN);
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-rotated\n");
    world.advance_clock(5 * MIN);
    assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-rotated\n");
    assert_eq!(world.runs("gw"), 2);
}

#[test]
fn callers_that_do_not_cache_never_force_a_refresh() {
    let (world, _daemon) = clocked_world("tok-plain", "ttl = \"1h\"");
    for _ in 0..5 {
        assert_eq!(world.credd(&["get", "gateway"]).ok(), "tok-plain\n");
    }
    assert_eq!(world.runs("gw"), 1);
}
