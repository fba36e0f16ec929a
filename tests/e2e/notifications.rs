//! The early warning: a source that was serving and now needs a person shows one desktop
//! notification (a real notification server, dunst, on a real session D-Bus), minutes before
//! anything that uses it would fail; `notifications = false` keeps it quiet.

use std::time::Duration;

use credd_tests::World;
use credd_tests::desktop::Desktop;
use credd_tests::entra::EntraUpstream;
use credd_tests::peers::TestCa;

use crate::entra_source::{self, CLIENT_ID};

/// A device-code source signed in and serving, whose refresh token the upstream then revokes;
/// the daemon runs on `desktop`'s session bus.
fn revoked_world(
    dir: &tempfile::TempDir,
    desktop: &Desktop,
    extra_config: &str,
) -> (EntraUpstream, World, credd_tests::Daemon) {
    let ca = TestCa::create(dir.path());
    let upstream = EntraUpstream::start(&ca);
    upstream.register_public(CLIENT_ID);
    upstream.set_expires_in(1800);
    let world = entra_source::entra_world(&ca, &upstream, "device-code", "")
        .with_env("CREDD_NO_BROWSER", "1")
        .with_env("DBUS_SESSION_BUS_ADDRESS", desktop.bus_address());
    let config = std::fs::read_to_string(&world.config).unwrap();
    world.write_config(&format!("{extra_config}{config}"));
    let daemon = world.start_daemon();
    world.credd(&["login", "foundry"]).ok();
    world.credd(&["get", "foundry"]).ok();
    upstream.revoke_refresh_tokens();
    (upstream, world, daemon)
}

#[test]
fn a_session_that_needs_a_person_says_so_once_on_the_desktop() {
    let dir = tempfile::tempdir().unwrap();
    let desktop = Desktop::start().with_session_bus();
    let (upstream, world, _daemon) = revoked_world(&dir, &desktop, "");
    assert!(desktop.notifications().is_empty());
    // The background refresh, 25 minutes into the token's 30, meets the revoked grant: the
    // token still serves, and the person hears of it now rather than when it runs out.
    world.advance_clock(25 * 60);
    world.eventually(Duration::from_secs(10), "a refused refresh", || {
        upstream.calls("refresh_token") >= 1
    });
    world.eventually(Duration::from_secs(10), "a notification", || {
        !desktop.notifications().is_empty()
    });
    assert_eq!(
        world.credd(&["get", "foundry"]).code,
        0,
        "the token still serves"
    );
    // More failures, one notification.
    for _ in 0..3 {
        assert_eq!(world.credd(&["refresh", "foundry"]).code, 5);
    }
    std::thread::sleep(Duration::from_millis(500));
    let shown = desktop.notifications();
    assert_eq!(shown.len(), 1, "{shown:?}");
    let (app, summary, body) = &shown[0];
    assert_eq!(app, "credd");
    assert_eq!(summary, "credd: foundry needs you to sign in");
    assert!(body.contains("credd login foundry"), "{body}");
}

#[test]
fn notifications_false_keeps_the_desktop_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let desktop = Desktop::start().with_session_bus();
    let (upstream, world, _daemon) = revoked_world(&dir, &desktop, "notifications = false\n\n");
    world.advance_clock(25 * 60);
    world.eventually(Duration::from_secs(10), "a refused refresh", || {
        upstream.calls("refresh_token") >= 1
    });
    assert_eq!(world.credd(&["refresh", "foundry"]).code, 5);
    std::thread::sleep(Duration::from_secs(1));
    assert!(desktop.notifications().is_empty());
}
