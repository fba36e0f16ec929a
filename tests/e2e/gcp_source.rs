//! The `gcp` source against oauth2-mock-server (behind the Google-shaped shim): every
//! credential file type, bad files, a revoked refresh token, a failing or hanging token
//! endpoint, and logins done with gcloud or elsewhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use credd_tests::google::{self, Fault, GoogleUpstream};
use credd_tests::world::make_executable;
use credd_tests::{Output, World};
use serde_json::{Value, json};

pub const CLIENT_SECRET: &str = "d-FL95Q19q7MQmFpd7hHD0Ty";
pub const REFRESH_TOKEN: &str = "1//0credd-test-refresh-token";

pub const CLIENT_ID: &str = "764086051850-credd.apps.googleusercontent.com";

/// A user's login (as `gcloud auth application-default login` writes it); the upstream grants
/// the refresh token to the client.
pub fn authorized_user(upstream: &GoogleUpstream, refresh_token: &str) -> Value {
    upstream.grant_refresh_token(CLIENT_ID, CLIENT_SECRET, refresh_token);
    json!({
        "type": "authorized_user",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
        "token_uri": upstream.token_url(),
        "quota_project_id": "credd-quota",
    })
}

/// A world whose `vertex` source reads `credential` from a file outside HOME (so that callers
/// in the same HOME do not find it), with `extra` config lines.
pub fn gcp_world(credential: &Value, extra: &str) -> World {
    let world = World::new().with_env("CREDD_TEST_CLOCK", "1");
    let file = world.path("credentials.json");
    std::fs::write(&file, credential.to_string()).unwrap();
    world.write_config(&format!(
        "[sources.vertex]\nkind = \"gcp\"\ncredentials_file = \"{}\"\n{extra}",
        file.display()
    ));
    world
}

/// A world whose `vertex` source is a user's login impersonating `account` (`impersonate` in
/// the config).
pub fn impersonating_world(upstream: &GoogleUpstream, account: &str) -> World {
    upstream.allow_impersonation(account);
    gcp_world(
        &authorized_user(upstream, REFRESH_TOKEN),
        &format!(
            "impersonate = \"{account}\"\niam_endpoint = \"{}\"\n",
            upstream.url()
        ),
    )
}

/// An `impersonated_service_account` file (as `gcloud auth application-default login
/// --impersonate-service-account` writes it) over a user's login.
pub fn impersonated_file(upstream: &GoogleUpstream, account: &str) -> Value {
    upstream.allow_impersonation(account);
    json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url": upstream.impersonation_url(account),
        "source_credentials": authorized_user(upstream, REFRESH_TOKEN),
        "delegates": [],
    })
}

fn gcloud_adc(world: &World) -> PathBuf {
    world
        .home
        .join(".config/gcloud/application_default_credentials.json")
}

/// An RSA key pair made with openssl: (private PKCS#8 PEM, public PEM).
fn rsa_key(dir: &Path) -> (String, String) {
    let key = dir.join("sa-key.pem");
    let run = |args: &[&str]| credd_tests::peers::openssl(dir, args);
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key.to_str().unwrap(),
    ]);
    let public = run(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    (
        std::fs::read_to_string(&key).unwrap(),
        String::from_utf8(public).unwrap(),
    )
}

#[test]
fn gcloud_adc_file_is_found_and_its_token_uri_honoured() {
    let upstream = GoogleUpstream::start();
    let world = World::new();
    let adc = gcloud_adc(&world);
    std::fs::create_dir_all(adc.parent().unwrap()).unwrap();
    std::fs::write(&adc, authorized_user(&upstream, REFRESH_TOKEN).to_string()).unwrap();
    world.write_config("[sources.vertex]\nkind = \"gcp\"\nproject = \"credd-vertex\"\n");
    let daemon = world.start_daemon();

    let token = world.credd(&["get", "vertex"]).ok().trim().to_string();
    assert_eq!(upstream.issued(), vec![token.clone()]);
    let detail = world.credd(&["get", "vertex", "--format", "json"]).json();
    assert_eq!(detail["token"], token.as_str());
    assert_eq!(detail["metadata"]["credential_type"], "authorized_user");
    assert_eq!(detail["metadata"]["project"], "credd-vertex");
    assert_eq!(detail["metadata"]["quota_project"], "credd-quota");
    assert_eq!(
        detail["metadata"]["scopes"],
        serde_json::json!(["https://www.googleapis.com/auth/cloud-platform"])
    );
    let lifetime = humantime::parse_rfc3339(detail["expires_at"].as_str().unwrap())
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        lifetime > Duration::from_secs(3500) && lifetime <= Duration::from_secs(3600),
        "the mock's expires_in is an hour: {lifetime:?}"
    );
    for _ in 0..5 {
        world.credd(&["get", "vertex"]).ok();
    }
    assert_eq!(
        upstream.calls(google::REFRESH),
        1,
        "every get after the first is cached"
    );

    let status = world.credd(&["status"]).ok().to_string();
    for secret in [token.as_str(), REFRESH_TOKEN, CLIENT_SECRET] {
        assert!(!status.contains(secret), "status shows a secret");
        assert!(!daemon.log().contains(secret), "the log shows a secret");
    }
}

pub const SERVICE_ACCOUNT: &str = "vertex-runner@credd-test.iam.gserviceaccount.com";

/// A `service_account` key file for [`SERVICE_ACCOUNT`], with a new key (made in `dir`) that
/// `upstream` trusts.
pub fn service_account_key(upstream: &GoogleUpstream, dir: &Path) -> Value {
    let (private, public) = rsa_key(dir);
    upstream.trust_service_account(SERVICE_ACCOUNT, &public);
    json!({
        "type": "service_account",
        "project_id": "credd-sa-project",
        "private_key_id": "0123456789abcdef",
        "private_key": private,
        "client_email": SERVICE_ACCOUNT,
        "token_uri": upstream.token_url(),
    })
}

#[test]
fn a_service_account_key_signs_an_assertion_the_upstream_verifies() {
    let upstream = GoogleUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let key = service_account_key(&upstream, dir.path());
    let email = SERVICE_ACCOUNT;
    let world = gcp_world(&key, "");
    let daemon = world.start_daemon();
    let detail = world.credd(&["get", "vertex", "--format", "json"]).json();
    assert_eq!(upstream.issued(), vec![detail["token"].as_str().unwrap()]);
    assert_eq!(upstream.calls(google::JWT_BEARER), 1);
    assert_eq!(detail["metadata"]["account"], email);
    assert_eq!(detail["metadata"]["project"], "credd-sa-project");
    assert!(!daemon.log().contains("PRIVATE KEY"));

    // A key the upstream does not know is refused, and the refusal is reported.
    let (other_private, _) = rsa_key(dir.path());
    let mut forged = key.clone();
    forged["private_key"] = json!(other_private);
    let world = gcp_world(&forged, "");
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "vertex"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Invalid JWT"), "{}", out.stderr);
}

#[test]
fn an_external_account_exchanges_its_subject_token_and_impersonates() {
    let upstream = GoogleUpstream::start();
    let world = World::new();
    let subject = world.path("oidc-token");
    std::fs::write(&subject, "{\"id_token\": \"eyJ.subject.credd\"}").unwrap();
    let audience =
        "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/gh";
    let token_type = "urn:ietf:params:oauth:token-type:jwt";
    upstream.accept_subject_token("eyJ.subject.credd", audience, token_type);
    let account = "federated@credd-test.iam.gserviceaccount.com";
    upstream.allow_impersonation(account);
    let file = json!({
        "type": "external_account",
        "audience": audience,
        "subject_token_type": token_type,
        "token_url": upstream.token_url(),
        "credential_source": {
            "file": subject,
            "format": { "type": "json", "subject_token_field_name": "id_token" },
        },
        "service_account_impersonation_url": upstream.impersonation_url(account),
    });
    let world = gcp_world(&file, "");
    let _daemon = world.start_daemon();
    let detail = world.credd(&["get", "vertex", "--format", "json"]).json();
    assert_eq!(upstream.calls(google::TOKEN_EXCHANGE), 1);
    assert_eq!(upstream.calls(google::GENERATE_ACCESS_TOKEN), 1);
    assert_eq!(
        upstream.issued().last().map(String::as_str),
        detail["token"].as_str(),
        "the impersonated token is served, not the federated one"
    );
    assert_eq!(detail["metadata"]["account"], account);
    assert_eq!(upstream.impersonated(), vec![account.to_string()]);
    assert_eq!(detail["metadata"]["credential_type"], "external_account");
}

#[test]
fn an_executable_source_runs_only_when_allowed() {
    let upstream = GoogleUpstream::start();
    let audience = "//iam.googleapis.com/locations/global/workforcePools/p/providers/x";
    let token_type = "urn:ietf:params:oauth:token-type:id_token";
    upstream.accept_subject_token("eyJ.from-executable", audience, token_type);
    let world = World::new();
    let script = world.path("token-helper");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE\" = 0 ] || exit 9\n\
         printf '{\"version\":1,\"success\":true,\"token_type\":\"%s\",\"id_token\":\"eyJ.from-executable\",\"expiration_time\":%s}' \
         \"$GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE\" $(( $(date +%s) + 600 ))\n",
    )
    .unwrap();
    make_executable(&script);
    let file = json!({
        "type": "external_account",
        "audience": audience,
        "subject_token_type": token_type,
        "token_url": upstream.token_url(),
        "credential_source": { "executable": { "command": format!("{} --quiet", script.display()), "timeout_millis": 5000 } },
    });
    let refused = gcp_world(&file, "");
    let _daemon = refused.start_daemon();
    let out = refused.credd(&["get", "vertex"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("allow_executables = true"),
        "{}",
        out.stderr
    );
    assert_eq!(upstream.total_calls(), 0);

    let allowed = gcp_world(&file, "allow_executables = true\n");
    let _daemon = allowed.start_daemon();
    let token = allowed.credd(&["get", "vertex"]).ok().trim().to_string();
    assert_eq!(upstream.issued(), vec![token]);
    assert_eq!(upstream.calls(google::TOKEN_EXCHANGE), 1);
}

#[test]
fn impersonation_from_a_file_or_from_the_config() {
    let upstream = GoogleUpstream::start();
    let target = "deployer@credd-test.iam.gserviceaccount.com";
    let world = gcp_world(&impersonated_file(&upstream, target), "");
    let _daemon = world.start_daemon();
    let detail = world.credd(&["get", "vertex", "--format", "json"]).json();
    assert_eq!(detail["metadata"]["account"], target);
    assert_eq!(
        upstream.issued().last().map(String::as_str),
        detail["token"].as_str()
    );

    let configured = "other-sa@credd-test.iam.gserviceaccount.com";
    let world = impersonating_world(&upstream, configured);
    let _daemon = world.start_daemon();
    let detail = world.credd(&["get", "vertex", "--format", "json"]).json();
    assert_eq!(detail["metadata"]["account"], configured);
    assert_eq!(upstream.calls(google::GENERATE_ACCESS_TOKEN), 2);
    // The accounts IAM was asked for, not only what credd says it asked for.
    assert_eq!(
        upstream.impersonated(),
        vec![target.to_string(), configured.to_string()]
    );

    // An account the login may not impersonate: IAM's refusal, named.
    let forbidden = impersonating_world(&upstream, "not-mine@credd-test.iam.gserviceaccount.com");
    upstream.forbid_impersonation("not-mine@credd-test.iam.gserviceaccount.com");
    let _daemon = forbidden.start_daemon();
    let out = forbidden.credd(&["get", "vertex"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("PERMISSION_DENIED") || out.stderr.contains("denied"),
        "{}",
        out.stderr
    );
}

/// Google's clocks ten minutes off either way. The token endpoint states a lifetime
/// (`expires_in`), which no clock difference touches; IAM states `expireTime` by its own clock,
/// which credd moves onto its own by IAM's `Date`. Either way the token is kept for its true
/// hour, and is not refreshed early.
#[test]
fn google_clocks_ten_minutes_off_change_no_lifetime() {
    let upstream = GoogleUpstream::start();
    upstream.set_expires_in(3600);
    let target = "deployer@credd-test.iam.gserviceaccount.com";
    for offset in [600, -600] {
        upstream.set_clock_offset(offset);
        let user = gcp_world(&authorized_user(&upstream, REFRESH_TOKEN), "");
        let impersonating = impersonating_world(&upstream, target);
        for (world, corrected) in [(user, 0), (impersonating, offset)] {
            let _daemon = world.start_daemon();
            let first = world.assert_lifetime_and_clock_offset("vertex", "token", 3600, corrected);
            let calls = upstream.total_calls();
            // 45 minutes on, 15 are truly left, more than callers need: no refresh yet.
            world.advance_clock(45 * 60);
            assert_eq!(
                world.credd(&["get", "vertex"]).ok(),
                first.ok(),
                "{offset:+}s"
            );
            assert_eq!(
                upstream.total_calls(),
                calls,
                "clock {offset:+}s: refreshed early"
            );
        }
    }
}

#[test]
fn bad_credential_files_are_named_without_quoting_them() {
    let upstream = GoogleUpstream::start();
    let cases = [
        (
            "{\"type\": \"authorized_user\", \"refresh_token\": \"1//leaked-if-quoted\"".to_string(),
            "not a JSON credential file",
        ),
        (
            json!({"type": "gdch_service_account", "private_key": "1//leaked-if-quoted"}).to_string(),
            "credential type `gdch_service_account` is not supported",
        ),
        (
            json!({"type": "authorized_user", "client_id": "c", "refresh_token": {"t": "1//leaked-if-quoted"}}).to_string(),
            "has a field of the wrong type",
        ),
    ];
    for (text, expected) in cases {
        let world = gcp_world(&json!({}), "");
        std::fs::write(world.path("credentials.json"), &text).unwrap();
        let daemon = world.start_daemon();
        let out = world.credd(&["get", "vertex"]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains(expected), "{}", out.stderr);
        assert!(out.stderr.contains("credentials.json"), "{}", out.stderr);
        assert!(!out.stderr.contains("leaked-if-quoted"));
        assert!(!daemon.log().contains("leaked-if-quoted"));
    }
    // No file at all: nobody has logged in yet.
    let world = World::new();
    world.write_config("[sources.vertex]\nkind = \"gcp\"\n");
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "vertex"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("credd login vertex"), "{}", out.stderr);
    assert_eq!(upstream.total_calls(), 0);
}

#[test]
fn a_revoked_refresh_token_fails_fast_naming_login_and_a_login_elsewhere_is_picked_up() {
    let upstream = GoogleUpstream::start();
    upstream.revoke(REFRESH_TOKEN);
    let world = gcp_world(&authorized_user(&upstream, REFRESH_TOKEN), "");
    let _daemon = world.start_daemon();
    let started = std::time::Instant::now();
    let out = world.credd(&["get", "vertex"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("invalid_grant"), "{}", out.stderr);
    assert!(out.stderr.contains("credd login vertex"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(5));
    for _ in 0..3 {
        assert_eq!(world.credd(&["get", "vertex"]).code, 5);
    }
    assert!(
        upstream.calls(google::REFRESH) <= 2,
        "a refused refresh token is not retried in a loop: {} calls",
        upstream.calls(google::REFRESH)
    );

    // A new login rewrites the file (as gcloud does); credd notices without being asked.
    std::fs::write(
        world.path("credentials.json"),
        authorized_user(&upstream, "1//0a-new-refresh-token").to_string(),
    )
    .unwrap();
    world.eventually(Duration::from_secs(10), "the new file is used", || {
        world.source_status("vertex")["state"] == "fresh"
    });
    world.credd(&["get", "vertex"]).ok();
}

#[test]
fn every_upstream_fault_keeps_the_valid_token_served_without_a_storm_until_recovery() {
    let upstream = GoogleUpstream::start();
    upstream.set_expires_in(1800);
    let world = gcp_world(
        &authorized_user(&upstream, REFRESH_TOKEN),
        "timeout = \"1s\"\n",
    );
    let _daemon = world.start_daemon();

    let faults = [
        (Fault::ServerError, "answered HTTP 500"),
        (Fault::Garbage, "not a token response"),
        (Fault::Hang, "did not answer in time"),
        (Fault::Reset, "failed"),
        (Fault::ExpiredOnArrival, "already expired"),
        (Fault::Throttle(300), "throttling"),
    ];
    world.assert_fault_matrix(
        "vertex",
        &faults,
        |fault| upstream.set_fault(fault),
        || upstream.total_calls(),
        || upstream.set_fault(Fault::None),
    );
    assert_eq!(
        world.credd(&["get", "vertex"]).ok().trim(),
        upstream.issued().last().unwrap()
    );
}

/// A stand-in for gcloud in `world/bin`: prints what gcloud prints and writes the ADC file it
/// writes (in `CLOUDSDK_CONFIG`, else `~/.config/gcloud`), with `credential` in it; counts its
/// runs in `gcloud.runs`, and takes a second while `gcloud.slow` exists.
fn fake_gcloud(world: &World, credential: &Value) -> PathBuf {
    let bin = world.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(world.path("new-adc.json"), credential.to_string()).unwrap();
    let gcloud = bin.join("gcloud");
    std::fs::write(
        &gcloud,
        format!(
            "#!/bin/sh\n[ \"$*\" = \"auth application-default login\" ] || exit 2\n\
             echo run >> {runs}\n[ -e {slow} ] && sleep 1\n\
             echo 'Go to the following link in your browser: https://accounts.google.com/o/oauth2/auth?stub' >&2\n\
             dir=\"${{CLOUDSDK_CONFIG:-$HOME/.config/gcloud}}\"\nmkdir -p \"$dir\"\n\
             cp {src} \"$dir/application_default_credentials.json\"\n\
             echo \"Credentials saved to file: [$dir/application_default_credentials.json]\"\n",
            src = world.path("new-adc.json").display(),
            runs = world.path("gcloud.runs").display(),
            slow = world.path("gcloud.slow").display(),
        ),
    )
    .unwrap();
    make_executable(&gcloud);
    gcloud
}

fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

#[test]
fn login_runs_gcloud_and_exits_at_once_when_a_token_can_be_had() {
    let upstream = GoogleUpstream::start();
    let world = World::new();
    let gcloud = fake_gcloud(&world, &authorized_user(&upstream, REFRESH_TOKEN));
    world.write_config("[sources.vertex]\nkind = \"gcp\"\n");
    let _daemon = world.start_daemon();

    // Without gcloud on PATH: the instructions, and "needs login".
    let out = world.credd(&["login", "vertex"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stdout.contains("gcloud auth application-default login"),
        "{}",
        out.stdout
    );

    let path = path_with(gcloud.parent().unwrap());
    let mut cmd = world.credd_command(&["login", "vertex"]);
    cmd.env("PATH", &path);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Go to the following link"),
        "gcloud's stderr is shown on stdout: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Credentials saved to file: [{}]",
            gcloud_adc(&world).display()
        )),
        "{stdout}"
    );
    let token = world.credd(&["get", "vertex"]).ok().trim().to_string();
    assert!(upstream.issued().contains(&token));

    // Logged in: `credd login` is done at once, without running gcloud.
    std::fs::remove_file(&gcloud).unwrap();
    let started = std::time::Instant::now();
    let mut cmd = world.credd_command(&["login", "vertex"]);
    cmd.env("PATH", &path);
    assert!(cmd.output().unwrap().status.success());
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// gcloud wrote its file, but the token endpoint failed at that moment: the login keeps
/// trying, and finishes when the endpoint is back, without another gcloud.
#[test]
fn a_login_whose_first_try_fails_upstream_finishes_when_the_upstream_is_back() {
    let upstream = GoogleUpstream::start();
    let world = World::new();
    let gcloud = fake_gcloud(&world, &authorized_user(&upstream, REFRESH_TOKEN));
    world.write_config("[sources.vertex]\nkind = \"gcp\"\n");
    let _daemon = world.start_daemon();
    upstream.set_fault(Fault::ServerError);

    let mut cmd = world.credd_command(&["login", "vertex"]);
    cmd.env("PATH", path_with(gcloud.parent().unwrap()));
    let login = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while upstream.calls(google::REFRESH) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "gcloud's new file was never tried"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    upstream.set_fault(Fault::None);
    let started = std::time::Instant::now();
    let out = login.wait_with_output().unwrap();
    assert!(out.status.success(), "the login failed");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the login waited {:?} after the upstream was back",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(world.path("gcloud.runs"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    let token = world.credd(&["get", "vertex"]).ok().trim().to_string();
    assert!(upstream.issued().contains(&token));
}

#[test]
fn concurrent_logins_run_gcloud_once_for_every_source_on_its_file() {
    let upstream = GoogleUpstream::start();
    let world = World::new();
    let gcloud = fake_gcloud(&world, &authorized_user(&upstream, REFRESH_TOKEN));
    std::fs::write(world.path("gcloud.slow"), "").unwrap();
    // Two sources on gcloud's one ADC file, as two projects' quota might be.
    world.write_config(
        "[sources.vertex]\nkind = \"gcp\"\n\n[sources.vertex-eu]\nkind = \"gcp\"\nquota_project = \"credd-eu\"\n",
    );
    let _daemon = world.start_daemon();
    // Claude Code sessions whose Vertex credentials ran out together: gcpAuthRefresh in each.
    let path = path_with(gcloud.parent().unwrap());
    let children: Vec<_> = ["vertex", "vertex-eu", "vertex", "vertex-eu"]
        .into_iter()
        .map(|source| {
            world.spawn_credd(&["login", source], |cmd| {
                cmd.env("PATH", &path);
            })
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|child| Output::of(child).ok().to_string())
        .collect();
    let runs = std::fs::read_to_string(world.path("gcloud.runs")).unwrap();
    assert_eq!(
        runs.lines().count(),
        1,
        "gcloud ran more than once: {outputs:?}"
    );
    let ran = outputs
        .iter()
        .filter(|o| o.contains("Credentials saved to file"))
        .count();
    let waited = outputs
        .iter()
        .filter(|o| {
            o.contains("Another `credd login` is running `gcloud auth application-default login`")
        })
        .count();
    assert_eq!((ran, waited), (1, 3), "{outputs:?}");
    for source in ["vertex", "vertex-eu"] {
        let token = world.credd(&["get", source]).ok().trim().to_string();
        assert!(upstream.issued().contains(&token), "{source}");
    }
}

#[test]
fn a_login_waiting_on_a_gcloud_that_fails_runs_gcloud_itself() {
    let upstream = GoogleUpstream::start();
    let world = World::new();
    let gcloud = fake_gcloud(&world, &authorized_user(&upstream, REFRESH_TOKEN));
    // The first run fails after a second (the person closed the browser, say); the next works.
    let script = std::fs::read_to_string(&gcloud).unwrap().replacen(
        "[ -e ",
        &format!(
            "if [ ! -e {failed} ]; then touch {failed}; sleep 1; echo 'ERROR: login cancelled' >&2; exit 1; fi\n[ -e ",
            failed = world.path("gcloud.failed").display()
        ),
        1,
    );
    std::fs::write(&gcloud, script).unwrap();
    world.write_config("[sources.vertex]\nkind = \"gcp\"\n");
    let _daemon = world.start_daemon();
    let path = path_with(gcloud.parent().unwrap());
    let login = || {
        world.spawn_credd(&["login", "vertex"], |cmd| {
            cmd.env("PATH", &path);
        })
    };
    let first = login();
    world.eventually(Duration::from_secs(10), "gcloud started", || {
        world.path("gcloud.failed").exists()
    });
    let second = login();
    let first = Output::of(first);
    assert_eq!(first.code, 5, "{first:?}");
    let second = Output::of(second);
    let stdout = second.ok();
    assert!(
        stdout.contains("Another `credd login` is running"),
        "{stdout}"
    );
    assert!(stdout.contains("Credentials saved to file"), "{stdout}");
    let runs = std::fs::read_to_string(world.path("gcloud.runs")).unwrap();
    assert_eq!(
        runs.lines().count(),
        2,
        "the failed run and the second caller's"
    );
    world.credd(&["get", "vertex"]).ok();
}

#[test]
fn login_for_a_credentials_file_named_like_gclouds_writes_it_there() {
    let upstream = GoogleUpstream::start();
    let world = World::new();
    let gcloud = fake_gcloud(&world, &authorized_user(&upstream, REFRESH_TOKEN));
    let file = world.path("credd-gcloud/application_default_credentials.json");
    world.write_config(&format!(
        "[sources.vertex]\nkind = \"gcp\"\ncredentials_file = \"{}\"\n",
        file.display()
    ));
    let _daemon = world.start_daemon();
    let mut cmd = world.credd_command(&["login", "vertex"]);
    cmd.env("PATH", path_with(gcloud.parent().unwrap()));
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CLOUDSDK_CONFIG="), "{stdout}");
    assert!(file.exists(), "gcloud wrote the file credd reads");
    assert!(
        !gcloud_adc(&world).exists(),
        "and not the one Claude Code would read"
    );
    world.credd(&["get", "vertex"]).ok();
}

#[test]
fn an_external_account_authorized_user_file_refreshes_at_googles_sts() {
    let upstream = GoogleUpstream::start();
    upstream.grant_refresh_token("workforce-client", "workforce-secret", "wf-refresh-token");
    let file = json!({
        "type": "external_account_authorized_user",
        "audience": "//iam.googleapis.com/locations/global/workforcePools/p/providers/q",
        "client_id": "workforce-client",
        "client_secret": "workforce-secret",
        "refresh_token": "wf-refresh-token",
        "token_url": upstream.oauthtoken_url(),
        "token_info_url": "https://sts.googleapis.com/v1/introspect",
        "quota_project_id": "credd-quota",
        "universe_domain": "googleapis.com",
    });
    let world = gcp_world(&file, "");
    let _daemon = world.start_daemon();
    let token = world.credd(&["get", "vertex"]).ok().trim().to_string();
    assert_eq!(upstream.issued(), vec![token]);
    assert_eq!(upstream.calls(google::EXTERNAL_REFRESH), 1);
    let json = world.credd(&["get", "vertex", "--format", "json"]).json();
    assert_eq!(
        json["metadata"]["credential_type"],
        "external_account_authorized_user"
    );
    assert_eq!(json["metadata"]["quota_project"], "credd-quota");
    // A revoked refresh token needs a new login, and says so.
    upstream.revoke("wf-refresh-token");
    let out = world.credd(&["refresh", "vertex"]);
    assert_ne!(out.code, 0);
    assert!(!out.stderr.contains("wf-refresh-token"), "{}", out.stderr);
}
