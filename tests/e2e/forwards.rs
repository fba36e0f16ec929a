//! Forwards: a scoped view of the daemon on sockets of their own. Through a forward's socket a
//! client gets the sources the forward lists and nothing else (no other source, no stop, no
//! logout, no other route on its proxy socket); only this user, or a uid its allow-list names,
//! is served; `status` on the host shows who used it; and a client inside a forward whose
//! socket is gone says so in one line, without starting a daemon of its own.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use credd_tests::World;
use credd_tests::other_user::{self, NOBODY};

use crate::exec_config;
use crate::proxy::post_on_socket;

/// A world with exec sources `gw` and `other` (both behind the proxy) and `forwards`
/// (TOML tables after `[forwards.NAME]`), its daemon running.
pub(crate) fn forwarding_world(forwards: &str) -> (World, credd_tests::world::Daemon) {
    let world = World::new();
    let gw = world.counting_command("gw", "tok-forwarded");
    let other = world.counting_command("other", "tok-not-forwarded");
    world.write_config(&format!(
        "{}{}{forwards}",
        exec_config("gw", &gw, "proxy = { upstream = \"http://127.0.0.1:9\" }"),
        exec_config(
            "other",
            &other,
            "proxy = { upstream = \"http://127.0.0.1:9\" }"
        ),
    ));
    let daemon = world.start_daemon();
    (world, daemon)
}

/// The directory of forward `name` in `world`.
pub(crate) fn forward_dir(world: &World, name: &str) -> PathBuf {
    let dir = world.socket.parent().unwrap().join("forwards").join(name);
    // Its sockets, and the status that names them (the forward is listed once every forward
    // of the config has started).
    world.eventually(Duration::from_secs(10), "the forward's socket", || {
        dir.join("credd.sock.proxy").exists()
            && world.status()["forwards"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["name"] == name))
    });
    dir
}

/// `credd ARGS` as a client inside forward `name` would run it.
pub(crate) fn credd_in(world: &World, name: &str, args: &[&str]) -> credd_tests::world::Output {
    let socket = forward_dir(world, name).join("credd.sock");
    world
        .credd_command(args)
        .env("CREDD_SOCKET", socket)
        .env("CREDD_FORWARD", format!("{name}@testhost"))
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_forward_serves_its_sources_and_refuses_everything_else() {
    let (world, _daemon) = forwarding_world("[forwards.dev]\nsources = [\"gw\"]\n");
    assert_eq!(
        credd_in(&world, "dev", &["get", "gw"]).ok(),
        "tok-forwarded\n"
    );
    for (args, says) in [
        (&["get", "other"][..], "does not serve `other`"),
        (&["refresh", "other"], "does not serve `other`"),
        (&["login", "other"], "does not serve `other`"),
        (&["logout", "gw"], "signing out is not done through"),
        (&["stop"], "stopping credd-daemon is not done through"),
    ] {
        let out = credd_in(&world, "dev", args);
        assert_ne!(out.code, 0, "{args:?} was served");
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("tok-"), "{}", out.stderr);
    }
    assert_eq!(
        world.runs("other"),
        0,
        "a source the forward does not list ran"
    );
    // Its status shows its sources alone, and no forwards.
    let status = credd_in(&world, "dev", &["status", "--json"]).json();
    let names: Vec<&str> = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gw"]);
    assert!(status.get("forwards").is_none(), "{status}");
    // The host's paths stay on the host.
    assert_eq!(status["config_path"], "the config of credd on testhost");
    assert!(
        !status.to_string().contains(world.config.to_str().unwrap()),
        "{status}"
    );
    // Its proxy socket serves none of the other sources' routes.
    let dir = forward_dir(&world, "dev");
    let (code, answer) = post_on_socket(
        &dir.join("credd.sock.proxy"),
        "other.credd.localhost",
        "/v1/messages",
        "",
    );
    assert_eq!(code, 421, "{answer}");
    assert!(answer.contains("does not serve `other`"), "{answer}");
    // The host's status names it, and who used it last.
    let host = world.status();
    let forward = &host["forwards"][0];
    assert_eq!(forward["name"], "dev");
    assert_eq!(forward["sources"], serde_json::json!(["gw"]));
    assert_eq!(
        forward["last_peer_uid"],
        credd_proto::paths::effective_uid()
    );
    assert!(forward["last_used_at"].is_i64(), "{forward}");
    let text = world.credd(&["status"]).ok().to_string();
    assert!(text.contains("forward dev: serves gw in "), "{text}");
    assert!(
        text.contains("last used just now by uid") || text.contains("ago by uid"),
        "{text}"
    );
    // The directory holds no secret: sockets, and an AWS config of command lines.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read(&path).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&text).contains("tok-"),
            "{}",
            path.display()
        );
    }
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "a forward nobody else may use is private");
}

#[test]
fn only_the_uids_a_forward_allows_are_served() {
    if !other_user::available("only_the_uids_a_forward_allows_are_served") {
        return;
    }
    let (world, _daemon) = forwarding_world(&format!(
        "[forwards.shared]\nsources = [\"gw\"]\nallow_uids = [{NOBODY}]\n\n[forwards.strangers]\nsources = [\"gw\"]\nallow_uids = [12345]\n"
    ));
    let shared = forward_dir(&world, "shared");
    let strangers = forward_dir(&world, "strangers");
    // As a container's mount would, let the other user reach the forwards' directories (the
    // runtime directory above them stays closed on the host).
    for dir in [
        world.socket.parent().unwrap().to_path_buf(),
        shared.parent().unwrap().to_path_buf(),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    for up in world.socket.parent().unwrap().ancestors().skip(1) {
        let mode = std::fs::metadata(up).unwrap().permissions().mode();
        std::fs::set_permissions(up, std::fs::Permissions::from_mode(mode | 0o011)).unwrap();
        if up == world.dir.path() {
            break;
        }
    }
    let as_nobody = |dir: &PathBuf| {
        let out = other_user::command(credd_tests::bin("credd"))
            .args(["get", "gw"])
            .env("CREDD_SOCKET", dir.join("credd.sock"))
            .env("CREDD_FORWARD", "x@testhost")
            .env("HOME", "/nonexistent")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = as_nobody(&shared);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "tok-forwarded\n"),
        "{stderr}"
    );
    let (code, stdout, stderr) = as_nobody(&strangers);
    assert_ne!(code, Some(0));
    assert!(stdout.is_empty());
    assert!(stderr.contains("does not serve this user"), "{stderr}");
    // The host's status says who used the shared one.
    let run = world.socket.parent().unwrap();
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let status = world.status();
    let shared_status = status["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "shared")
        .unwrap()
        .clone();
    assert_eq!(shared_status["last_peer_uid"], NOBODY);
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o711);
}

#[test]
fn a_client_in_a_forward_that_is_gone_says_so_and_starts_nothing() {
    let world = World::new();
    let dir = world.path("remote-forward");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    for args in [&["get", "gw"][..], &["login", "gw"], &["status"]] {
        let out = world
            .credd_command(args)
            .env("CREDD_SOCKET", dir.join("credd.sock"))
            .env("CREDD_FORWARD", "dev@laptop")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim(),
            "credd: the credd forward from laptop (`dev`) is gone; reconnect (`credd ssh`, or restart the container) and retry"
        );
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "something was started"
    );
}

#[test]
fn a_reload_starts_and_removes_forwards() {
    let (world, _daemon) = forwarding_world("[forwards.dev]\nsources = [\"gw\"]\n");
    let dev = forward_dir(&world, "dev");
    let config = std::fs::read_to_string(&world.config).unwrap();
    world.write_config(&config.replace("[forwards.dev]", "[forwards.ci]"));
    let ci = forward_dir(&world, "ci");
    world.eventually(
        Duration::from_secs(10),
        "the old forward's sockets gone",
        || !dev.exists(),
    );
    assert_eq!(
        credd_in(&world, "ci", &["get", "gw"]).ok(),
        "tok-forwarded\n"
    );
    assert!(ci.join("aws-config").exists());
}

#[test]
fn a_reload_that_takes_a_source_off_a_forward_cuts_its_open_connections() {
    let (world, _daemon) = forwarding_world("[forwards.dev]\nsources = [\"gw\"]\n");
    let socket = forward_dir(&world, "dev").join("credd.sock");
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let hello = credd_proto::frame::round_trip(&mut stream, credd_proto::Request::Hello);
    assert!(
        matches!(hello, Ok(credd_proto::Response::Hello(_))),
        "{hello:?}"
    );
    let config = std::fs::read_to_string(&world.config).unwrap();
    world.write_config(&config.replace("sources = [\"gw\"]", "sources = [\"other\"]"));
    // The forward, started anew, serves `gw` no more...
    world.eventually(Duration::from_secs(5), "the forward refusing gw", || {
        credd_in(&world, "dev", &["get", "gw"])
            .stderr
            .contains("does not serve `gw`")
    });
    // ...and the connection opened before, still within its idle time, was closed with the
    // old forward: it gets no more of `gw` either.
    let get = credd_proto::Request::Get {
        source: "gw".into(),
        min_valid_secs: None,
        caller: None,
        audience: None,
    };
    let answer = credd_proto::frame::round_trip(&mut stream, get);
    assert!(answer.is_err(), "{answer:?}");
}

#[test]
fn a_forward_forces_a_refresh_at_most_once_in_thirty_seconds() {
    let (world, _daemon) = forwarding_world("[forwards.dev]\nsources = [\"gw\"]\n");
    credd_in(&world, "dev", &["refresh", "gw"]).ok();
    let again = credd_in(&world, "dev", &["refresh", "gw"]);
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("less than 30s ago"),
        "{}",
        again.stderr
    );
    assert_eq!(world.runs("gw"), 1);
    // On the host, a refresh is the person's to ask for.
    world.credd(&["refresh", "gw"]).ok();
    assert_eq!(world.runs("gw"), 2);
}

#[test]
fn a_client_in_a_forward_trusts_no_directory_another_user_made() {
    let world = World::new();
    let dir = world.path("planted");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = world
        .credd_command(&["get", "gw"])
        .env("CREDD_SOCKET", dir.join("credd.sock"))
        .env("CREDD_FORWARD", "dev@laptop")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("belongs to uid {NOBODY}")),
        "{stderr}"
    );
    // The host user's uid, as container-args names it, is trusted; nobody else's.
    let out = world
        .credd_command(&["get", "gw"])
        .env("CREDD_SOCKET", dir.join("credd.sock"))
        .env("CREDD_FORWARD", "dev@laptop")
        .env("CREDD_FORWARD_UID", NOBODY.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is gone"), "{stderr}");
}

#[test]
fn the_proxy_socket_is_named_to_the_other_side_only_when_a_source_has_a_proxy() {
    let world = World::new();
    let gw = world.counting_command("gw", "tok");
    world.write_config(&format!(
        "{}[forwards.dev]\nsources = [\"gw\"]\n",
        exec_config("gw", &gw, "")
    ));
    let _daemon = world.start_daemon();
    forward_dir(&world, "dev");
    // A Claude Code that has ANTHROPIC_UNIX_SOCKET sends every request there, helper routes
    // too: with no proxied source it must not get it.
    let args = world.credd(&["container-args", "dev"]).ok().to_string();
    assert!(
        args.contains("-e CREDD_SOCKET=/run/credd/credd.sock"),
        "{args}"
    );
    assert!(!args.contains("ANTHROPIC_UNIX_SOCKET"), "{args}");
    let (proxied, _daemon) = forwarding_world("[forwards.dev]\nsources = [\"gw\"]\n");
    forward_dir(&proxied, "dev");
    let args = proxied.credd(&["container-args", "dev"]).ok().to_string();
    assert!(
        args.contains("-e ANTHROPIC_UNIX_SOCKET=/run/credd/credd.sock.proxy"),
        "{args}"
    );
}
