//! Upstreams on this machine that another user holds: a loopback port is anyone's to take
//! while its rightful server is down, so credd sends a credential (a token, a refresh token,
//! a signed request, a prompt) to a loopback server only when the kernel says it is this
//! user's. Each test has uid 65534 hold the port an upstream URL names and checks that nothing
//! reached it, and that the refusal names who holds it.

use std::time::Duration;

use credd_tests::World;
use credd_tests::google::GoogleUpstream;
use credd_tests::model_api::ModelApi;
use credd_tests::other_user::{self, Impostor};

use crate::{exec_config, gcp_source};

/// uid 65534 on a free loopback port, noting every request in a log; (port, impostor, log).
fn squatter(world: &World) -> (u16, Impostor, std::path::PathBuf) {
    let port = credd_tests::peers::free_port();
    let log = other_user::shared_dir(world.dir.path()).join("squatter.log");
    let impostor = Impostor::start(&["tcp", &port.to_string(), &log.display().to_string()]);
    (port, impostor, log)
}

/// Whether anything reached the squatter (it notes every request it reads).
fn reached(log: &std::path::Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|text| !text.trim().is_empty())
}

/// A `credd get` that failed, naming the other user.
fn assert_refused(out: &credd_tests::Output) {
    assert_ne!(
        out.code, 0,
        "a credential came from the other user's server"
    );
    assert!(out.stderr.contains("held by uid 65534"), "{}", out.stderr);
}

#[test]
fn the_proxy_sends_no_prompt_or_token_to_an_upstream_another_user_holds() {
    if !other_user::available(
        "the_proxy_sends_no_prompt_or_token_to_an_upstream_another_user_holds",
    ) {
        return;
    }
    let world = World::new();
    let (port, _squatter, log) = squatter(&world);
    let cmd = world.counting_command("gw", "sk-loopback-token");
    world.write_config(&exec_config(
        "gateway",
        &cmd,
        &format!("proxy = {{ upstream = \"http://127.0.0.1:{port}\" }}"),
    ));
    let _daemon = world.start_daemon();
    let (socket, host) = crate::proxy::socket_route_of(&world, "gateway");
    let (status, answer) = crate::proxy::post_on_socket(&socket, &host, "/v1/messages", "");
    assert_eq!(status, 502, "{answer}");
    assert!(answer.contains("held by uid 65534"), "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !reached(&log),
        "the request reached the other user's server"
    );
}

#[test]
fn a_token_uri_another_user_holds_is_sent_no_refresh_token() {
    if !other_user::available("a_token_uri_another_user_holds_is_sent_no_refresh_token") {
        return;
    }
    let upstream = GoogleUpstream::start();
    let probe = World::new();
    let (port, _squatter, log) = squatter(&probe);
    let mut credential = gcp_source::authorized_user(&upstream, gcp_source::REFRESH_TOKEN);
    credential["token_uri"] = format!("http://127.0.0.1:{port}/token").into();
    let world = gcp_source::gcp_world(&credential, "");
    let _daemon = world.start_daemon();
    assert_refused(&world.credd(&["get", "vertex"]));
    assert!(
        !reached(&log),
        "the refresh token went to the other user's server"
    );
}

#[test]
fn an_aws_endpoint_another_user_holds_is_sent_no_signed_request() {
    if !other_user::available("an_aws_endpoint_another_user_holds_is_sent_no_signed_request") {
        return;
    }
    let probe = World::new();
    let (port, _squatter, log) = squatter(&probe);
    let world = World::new().with_aws(
        "[profile dev]\nregion = us-east-1\n",
        "[dev]\naws_access_key_id = AKIACREDDLOOPBACK001\naws_secret_access_key = loopback-secret\n",
        &format!("http://127.0.0.1:{port}"),
    );
    world.write_config("[sources.dev]\nkind = \"aws\"\nprofile = \"dev\"\n");
    let _daemon = world.start_daemon();
    assert_refused(&world.credd(&["get", "dev", "--format", "aws"]));
    assert!(
        !reached(&log),
        "a signed request went to the other user's server"
    );
}

#[test]
fn a_loopback_upstream_of_this_users_own_is_used() {
    // The counterpart: this user's own server on loopback (the model-API stub) is reached.
    let api = ModelApi::start();
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-own-loopback");
    world.write_config(&exec_config(
        "gateway",
        &cmd,
        &format!("proxy = {{ upstream = \"{}\" }}", api.url()),
    ));
    let _daemon = world.start_daemon();
    let (socket, host) = crate::proxy::socket_route_of(&world, "gateway");
    let (status, _) = crate::proxy::post_on_socket(&socket, &host, "/v1/messages", "");
    assert_eq!(status, 200);
    assert_eq!(
        api.messages()[0].header("x-api-key"),
        Some("sk-own-loopback")
    );
}
