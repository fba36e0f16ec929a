//! ID tokens for an audience from `gcp` sources: a service-account key's JWT-bearer grant with
//! `target_audience`, IAM `generateIdToken` when impersonating; each audience cached on its own
//! and served both by `credd get --audience` and by the metadata endpoint's `identity` path
//! (google-auth's `fetch_id_token`); refused clearly where Google signs none.

use std::path::Path;
use std::time::Duration;

use credd_tests::World;
use credd_tests::google::{self, GoogleUpstream};
use credd_tests::peers::{self, free_port};
use serde_json::{Value, json};

use crate::gcp_source::{
    REFRESH_TOKEN, SERVICE_ACCOUNT, authorized_user, gcp_world, impersonated_file,
    impersonating_world, service_account_key,
};

const RUN_URL: &str = "https://gateway-4kq2x7-uc.a.run.app";
const IAP_CLIENT: &str = "764086051850-iap.apps.googleusercontent.com";

/// The claims of a JWT (the upstream signed it; here only its contents matter).
fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .expect("an ID token is a JWT")
        .claims
}

/// `vertex` from a service-account key the upstream trusts, with `extra` config lines.
fn service_account_world(upstream: &GoogleUpstream, dir: &Path, extra: &str) -> World {
    gcp_world(&service_account_key(upstream, dir), extra)
}

fn id_token(world: &World, audience: &str) -> String {
    world
        .credd(&["get", "vertex", "--audience", audience])
        .ok()
        .trim()
        .to_string()
}

#[test]
fn a_service_account_key_mints_an_id_token_per_audience_and_caches_each() {
    let upstream = GoogleUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let world = service_account_world(&upstream, dir.path(), "");
    let daemon = world.start_daemon();

    let token = id_token(&world, RUN_URL);
    assert_eq!(
        upstream.id_tokens(),
        vec![(token.clone(), RUN_URL.to_string())]
    );
    assert_eq!(claims(&token)["aud"], RUN_URL);
    assert_eq!(id_token(&world, RUN_URL), token, "served from the cache");
    assert_eq!(upstream.calls(google::ID_TOKEN), 1);

    // Another audience, and the access token, are credentials of their own.
    let other = id_token(&world, IAP_CLIENT);
    assert_eq!(claims(&other)["aud"], IAP_CLIENT);
    let access = world.credd(&["get", "vertex"]).ok().trim().to_string();
    assert_eq!(upstream.issued(), vec![access.clone()]);
    assert_ne!(access, token);
    assert_eq!(upstream.calls(google::ID_TOKEN), 2);
    assert_eq!(upstream.calls(google::JWT_BEARER), 1);

    let detail = world
        .credd(&["get", "vertex", "--audience", RUN_URL, "--format", "json"])
        .json();
    assert_eq!(detail["token"], token.as_str());
    // The source's own name, not the label of the audience's slot.
    assert_eq!(detail["source"], "vertex", "{detail}");
    assert_eq!(detail["metadata"]["audience"], RUN_URL);
    assert_eq!(detail["metadata"]["account"], SERVICE_ACCOUNT);
    let exp = claims(&token)["exp"].as_u64().unwrap();
    let stated =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(exp))
            .to_string();
    assert_eq!(detail["expires_at"], stated.as_str(), "the token's own exp");

    let status = world.credd(&["status"]).ok().to_string();
    assert!(
        status.contains(&format!("vertex --audience {RUN_URL}")),
        "{status}"
    );
    for secret in [&token, &other, &access] {
        assert!(!status.contains(secret.as_str()), "status shows a token");
        assert!(
            !daemon.log().contains(secret.as_str()),
            "the log shows a token"
        );
    }

    // `credd doctor` checks each audience under its own name, and counts one source.
    let doctor = world.credd(&["doctor", "--json"]);
    let checks: Vec<Value> = serde_json::from_str(&doctor.stdout).unwrap();
    let verdict = |what: &str| {
        checks
            .iter()
            .find(|c| c["what"] == what)
            .map(|c| c["verdict"].clone())
    };
    assert_eq!(verdict("source vertex"), Some(json!("ok")), "{checks:?}");
    assert_eq!(
        verdict(&format!("source vertex --audience {RUN_URL}")),
        Some(json!("ok")),
        "{checks:?}"
    );
    let config = checks.iter().find(|c| c["what"] == "config").unwrap();
    assert!(
        config["detail"].as_str().unwrap().ends_with("(1 sources)"),
        "{config}"
    );

    // 55 minutes on, the hour-long ID token is renewed, once (the mock's tokens minted within
    // one second are alike, so the count of minted ones tells).
    world.advance_clock(55 * 60);
    let renewed = id_token(&world, RUN_URL);
    let minted_for_run = || {
        upstream
            .id_tokens()
            .iter()
            .filter(|(_, audience)| audience == RUN_URL)
            .count()
    };
    assert_eq!(minted_for_run(), 2, "renewed once");
    assert_eq!(claims(&renewed)["aud"], RUN_URL);
    assert!(
        upstream
            .id_tokens()
            .contains(&(renewed, RUN_URL.to_string()))
    );
}

#[test]
fn impersonation_mints_id_tokens_with_generate_id_token() {
    let upstream = GoogleUpstream::start();
    // `impersonate` in the config, over a user's own login.
    let invoker = "gateway-invoker@credd-test.iam.gserviceaccount.com";
    let world = impersonating_world(&upstream, invoker);
    let _daemon = world.start_daemon();
    let detail = world
        .credd(&["get", "vertex", "--audience", RUN_URL, "--format", "json"])
        .json();
    assert_eq!(detail["metadata"]["account"], invoker);
    assert_eq!(
        upstream.id_tokens(),
        vec![(
            detail["token"].as_str().unwrap().to_string(),
            RUN_URL.into()
        )]
    );
    assert_eq!(upstream.calls(google::GENERATE_ID_TOKEN), 1);
    assert_eq!(
        upstream.calls(google::REFRESH),
        1,
        "the user's token asked IAM"
    );

    // An impersonated_service_account file.
    let target = "deployer@credd-test.iam.gserviceaccount.com";
    let world = gcp_world(&impersonated_file(&upstream, target), "");
    let _daemon = world.start_daemon();
    let detail = world
        .credd(&[
            "get",
            "vertex",
            "--audience",
            IAP_CLIENT,
            "--format",
            "json",
        ])
        .json();
    assert_eq!(detail["metadata"]["account"], target);
    assert_eq!(claims(detail["token"].as_str().unwrap())["aud"], IAP_CLIENT);
    assert_eq!(upstream.calls(google::GENERATE_ID_TOKEN), 2);
    // The accounts IAM was asked for (not only what credd says it asked for).
    assert_eq!(
        upstream.impersonated(),
        vec![invoker.to_string(), target.to_string()]
    );
}

#[test]
fn id_tokens_are_refused_clearly_where_google_signs_none() {
    let upstream = GoogleUpstream::start();
    let world = gcp_world(&authorized_user(&upstream, REFRESH_TOKEN), "");
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "vertex", "--audience", RUN_URL]);
    // The settings must change, so it is a misconfiguration, not an upstream failure.
    assert_eq!(out.code, 8, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("only for service accounts") && out.stderr.contains("impersonate"),
        "{}",
        out.stderr
    );
    assert_eq!(
        upstream.calls(google::ID_TOKEN) + upstream.calls(google::GENERATE_ID_TOKEN),
        0
    );
    // The access token is unaffected.
    world.credd(&["get", "vertex"]).ok();

    for (audience, says) in [("", "audience must be"), ("a\u{7}b", "audience must be")] {
        let out = world.credd(&["get", "vertex", "--audience", audience]);
        assert_eq!(out.code, 7, "{out:?}");
        assert!(out.stderr.contains(says), "{}", out.stderr);
    }

    let world = crate::gateway_world("tok-id");
    let out = world.credd(&["get", "gateway", "--audience", RUN_URL]);
    assert_eq!(out.code, 7, "{out:?}");
    assert!(
        out.stderr.contains("`exec` source") && out.stderr.contains("`gcp` sources"),
        "{}",
        out.stderr
    );
    assert_eq!(world.runs("gw"), 0);
}

#[test]
fn google_auth_fetches_id_tokens_from_the_metadata_endpoint() {
    let upstream = GoogleUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let world = service_account_world(
        &upstream,
        dir.path(),
        &format!("metadata_endpoint = {{ port = {port} }}\n"),
    );
    let _daemon = world.start_daemon();
    peers::wait_for_port(port, Duration::from_secs(10), "the metadata endpoint");
    let env = world.endpoint_env("vertex", "gce-metadata");
    let script = "import sys, google.oauth2.id_token as id_token, google.auth.transport.requests as tr\n\
        request = tr.Request()\n\
        for _ in range(3):\n\
        \x20   token = id_token.fetch_id_token(request, sys.argv[1])\n\
        print(token)\n";
    let out = peers::run_python(script, &[RUN_URL], |cmd| {
        world.isolate(cmd);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    });
    assert_eq!(claims(&out)["aud"], RUN_URL);
    assert_eq!(
        upstream.id_tokens(),
        vec![(out.clone(), RUN_URL.to_string())]
    );
    // The metadata endpoint and `credd get` share one cache.
    assert_eq!(id_token(&world, RUN_URL), out);
    assert_eq!(upstream.calls(google::ID_TOKEN), 1);

    let missing = crate::gcp_metadata::raw_get(
        port,
        "/computeMetadata/v1/instance/service-accounts/default/identity",
        &format!("Host: 127.0.0.1:{port}\r\nMetadata-Flavor: Google\r\n"),
    );
    assert!(missing.starts_with("HTTP/1.1 400"), "{missing}");
    assert!(missing.contains("non-empty audience parameter required"));
}

#[test]
fn an_audience_nobody_asks_for_stops_being_refreshed_and_is_forgotten() {
    let upstream = GoogleUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let world = service_account_world(&upstream, dir.path(), "");
    let _daemon = world.start_daemon();
    id_token(&world, RUN_URL);
    let listed = || {
        world
            .credd(&["status"])
            .ok()
            .contains(&format!("vertex --audience {RUN_URL}"))
    };
    assert!(listed());

    // Kept fresh while asked for lately: renewed 55 and 110 minutes on without a caller waiting.
    for renewals in [2, 3] {
        world.advance_clock(55 * 60);
        world.eventually(Duration::from_secs(10), "the ID token renewed", || {
            upstream.calls(google::ID_TOKEN) == renewals
        });
    }
    // Two hours after the last ask nobody wants it any more: no more upstream calls, and
    // `status` no longer lists it.
    // A refresh while idle would be due at each of these jumps; once the audience is dropped
    // from `status` its slot is gone, so the count that follows is final.
    world.advance_clock(11 * 60);
    world.advance_clock(55 * 60);
    world.advance_clock(55 * 60);
    world.eventually(Duration::from_secs(10), "the idle audience dropped", || {
        !listed()
    });
    assert_eq!(upstream.calls(google::ID_TOKEN), 3, "refreshed while idle");

    // Asked for again, it is minted anew and kept fresh again.
    let token = id_token(&world, RUN_URL);
    assert_eq!(upstream.calls(google::ID_TOKEN), 4);
    assert_eq!(claims(&token)["aud"], RUN_URL);
    assert!(listed());
    world.advance_clock(55 * 60);
    world.eventually(Duration::from_secs(10), "the ID token renewed", || {
        upstream.calls(google::ID_TOKEN) == 5
    });
}
