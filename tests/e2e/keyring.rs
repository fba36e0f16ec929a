//! `persist = "keyring"`: the long-lived part of an interactive login kept in the OS secret
//! store (a real one, gnome-keyring's Secret Service on a session D-Bus), read once when the
//! daemon starts, gone after `credd logout` or when the upstream refuses it; and without a
//! store, `status` says so and the login lasts in memory as before.

use credd_tests::World;
use credd_tests::desktop::Desktop;
use credd_tests::entra::EntraUpstream;
use credd_tests::peers::{Moto, TestCa};

use crate::entra_source::{self, CLIENT_ID};

const ENTRY: [(&str, &str); 2] = [("service", "credd"), ("username", "foundry")];

fn device_code_world(dir: &tempfile::TempDir, bus: &str) -> (EntraUpstream, World) {
    let ca = TestCa::create(dir.path());
    let upstream = EntraUpstream::start(&ca);
    upstream.register_public(CLIENT_ID);
    upstream.set_expires_in(1800);
    let world = entra_source::entra_world(&ca, &upstream, "device-code", "persist = \"keyring\"\n")
        .with_env("CREDD_NO_BROWSER", "1")
        .with_env("DBUS_SESSION_BUS_ADDRESS", bus);
    (upstream, world)
}

fn desktop_with_keyring(dir: &tempfile::TempDir) -> Desktop {
    let mut desktop = Desktop::start().with_session_bus();
    let data = dir.path().join("keyring-home");
    std::fs::create_dir_all(&data).unwrap();
    desktop.start_secret_service(&data);
    desktop
}

#[test]
fn a_kept_device_code_login_survives_a_restart_until_logout() {
    let dir = tempfile::tempdir().unwrap();
    let desktop = desktop_with_keyring(&dir);
    let (upstream, world) = device_code_world(&dir, desktop.bus_address());
    let daemon = world.start_daemon();
    world.credd(&["login", "foundry"]).ok();
    // What the store holds is a refresh token Entra issued (compared, never printed), with
    // the authority, tenant and client it belongs to.
    let kept = desktop
        .secret(&ENTRY)
        .expect("nothing kept in the secret store");
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("the kept login is JSON");
    assert!(
        upstream.refresh_tokens().contains(
            &kept["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        ),
        "the store holds something that is not a refresh token Entra issued"
    );
    assert_eq!(kept["authority"], upstream.authority().as_str());
    assert_eq!(kept["client_id"], CLIENT_ID);
    let status = world.credd(&["status"]).ok().to_string();
    assert!(status.contains("kept in the OS secret store"), "{status}");

    // A restart (an upgrade, a reboot): no new login, one refresh with the kept token.
    drop(daemon);
    let _daemon = world.start_daemon();
    let token = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert!(
        upstream.issued().contains(&token),
        "not a token Entra issued"
    );
    assert_eq!(upstream.calls("devicecode"), 1);
    assert_eq!(upstream.calls("refresh_token"), 1);
    // Logging out forgets it, here and in the store.
    let out = world.credd(&["logout", "foundry"]);
    assert!(
        out.ok().contains("signed out of `foundry`"),
        "{}",
        out.stdout
    );
    // (Compared, never printed: it would be a refresh token.)
    assert!(
        desktop.secret(&ENTRY).is_none(),
        "the store still holds the login"
    );
    let out = world.credd(&["get", "foundry"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "a credential was printed after logout"
    );
}

#[test]
fn a_kept_login_the_upstream_refuses_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let desktop = desktop_with_keyring(&dir);
    let (upstream, world) = device_code_world(&dir, desktop.bus_address());
    let daemon = world.start_daemon();
    world.credd(&["login", "foundry"]).ok();
    assert!(desktop.secret(&ENTRY).is_some());
    upstream.revoke_refresh_tokens();
    drop(daemon);
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "foundry"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert_eq!(upstream.calls("refresh_token"), 1);
    assert!(
        desktop.secret(&ENTRY).is_none(),
        "a refused login stayed kept"
    );
}

#[test]
fn an_mfa_session_kept_in_the_keyring_needs_no_code_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let desktop = desktop_with_keyring(&dir);
    let moto = Moto::start();
    let world = World::new()
        .with_aws(
            crate::aws_mfa::CONFIG,
            crate::aws_mfa::CREDENTIALS,
            &moto.url(),
        )
        .with_env("DBUS_SESSION_BUS_ADDRESS", desktop.bus_address());
    moto.sts.set_mfa_code(crate::aws_mfa::SERIAL, "123456");
    let authenticator = world.script("authenticator.sh", "echo 123456\n");
    world.write_config(&format!(
        "[sources.admin]\nkind = \"aws\"\nprofile = \"admin\"\npersist = \"keyring\"\nmfa_process = [\"{}\"]\n",
        authenticator.display()
    ));
    let daemon = world.start_daemon();
    world.credd(&["login", "admin"]).ok();
    let first = world
        .credd(&["get", "admin", "--format", "aws-process"])
        .json();
    drop(daemon);
    let _daemon = world.start_daemon();
    let again = world
        .credd(&["get", "admin", "--format", "aws-process"])
        .json();
    assert_eq!(again["AccessKeyId"], first["AccessKeyId"]);
    assert_eq!(again["Expiration"], first["Expiration"]);
    let assumed = moto
        .sts
        .calls()
        .into_iter()
        .filter(|c| c.action == "AssumeRole" && c.status == 200)
        .count();
    assert_eq!(assumed, 1, "the restart asked STS (and a code) again");
    world.credd(&["logout", "admin"]).ok();
    assert!(
        desktop
            .secret(&[("service", "credd"), ("username", "admin")])
            .is_none(),
        "the store still holds the session"
    );
}

#[test]
fn without_a_secret_store_status_says_so_and_the_login_lasts_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, world) = device_code_world(&dir, "unix:path=/nonexistent/credd-test-bus");
    let _daemon = world.start_daemon();
    world.credd(&["login", "foundry"]).ok();
    let token = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert!(
        upstream.issued().contains(&token),
        "not a token Entra issued"
    );
    let status = world.credd(&["status"]).ok().to_string();
    assert!(
        status.contains("persist = \"keyring\", but no secret store"),
        "{status}"
    );
    assert!(status.contains("lasts until the daemon stops"), "{status}");
}

#[test]
fn a_kept_oidc_sign_in_survives_a_restart_with_its_rotated_refresh_token() {
    use credd_tests::oidc::{OidcProvider, Options};
    let dir = tempfile::tempdir().unwrap();
    let desktop = desktop_with_keyring(&dir);
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let (opened, path) = provider.person_browser(dir.path(), "alice", &[]);
    let world = World::new()
        .with_env("PATH", &path)
        .with_env("DBUS_SESSION_BUS_ADDRESS", desktop.bus_address());
    world.write_config(&provider.source_table("corp", "persist = \"keyring\"\n"));
    let daemon = world.start_daemon();
    world.credd(&["login", "corp"]).ok();
    // A refresh rotates the refresh token: the store must hold the new one.
    world.credd(&["refresh", "corp"]).ok();
    let entry = [("service", "credd"), ("username", "corp")];
    let kept: serde_json::Value =
        serde_json::from_str(&desktop.secret(&entry).expect("nothing kept")).unwrap();
    assert_eq!(kept["issuer"], provider.issuer().as_str());
    assert_eq!(kept["client_id"], credd_tests::oidc::CLIENT_ID);
    assert_eq!(kept["subject"], "alice");

    // A restart: no browser, one refresh with the kept (rotated) token.
    drop(daemon);
    let _daemon = world.start_daemon();
    let token = world.credd(&["get", "corp"]).ok().trim().to_string();
    assert!(token.split('.').count() == 3, "not an ID token");
    assert_eq!(provider.grants("refresh_token"), 2);
    assert!(
        !provider.events().iter().any(|e| e.contains("error")),
        "{:?}",
        provider.events()
    );
    assert_eq!(std::fs::read_to_string(&opened).unwrap().lines().count(), 1);
    world.credd(&["logout", "corp"]).ok();
    assert!(
        desktop.secret(&entry).is_none(),
        "the store still holds the sign-in"
    );
}
