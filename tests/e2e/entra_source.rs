//! The `entra` source against a Microsoft-identity-platform stub over HTTPS (a local CA in
//! `SSL_CERT_FILE`): client secret, certificate, workload identity, Azure CLI and device-code
//! logins, and the failures each can meet.

use std::path::PathBuf;
use std::time::Duration;

use credd_tests::World;
use credd_tests::entra::{self, EntraUpstream, Fault, TENANT};
use credd_tests::peers::TestCa;
use credd_tests::world::make_executable;

pub const CLIENT_ID: &str = "3c1d2e4f-0000-4000-8000-0000000f0d12";
pub const CLIENT_SECRET: &str = "Q8~credd.client.secret-value_0123456789";

/// A world with the test CA trusted and the authority named by `AZURE_AUTHORITY_HOST`; its
/// `foundry` source uses `method` with `extra` config lines.
pub fn entra_world(ca: &TestCa, upstream: &EntraUpstream, method: &str, extra: &str) -> World {
    let world = World::new()
        .with_env("SSL_CERT_FILE", &ca.ca_pem.display().to_string())
        .with_env("AZURE_AUTHORITY_HOST", &upstream.authority())
        .with_env("CREDD_TEST_CLOCK", "1");
    world.write_config(&format!(
        "[sources.foundry]\nkind = \"entra\"\nmethod = \"{method}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n{extra}"
    ));
    world
}

/// An upstream with the app registered under `CLIENT_SECRET`, and a world using it.
pub fn secret_world(dir: &tempfile::TempDir, extra: &str) -> (TestCa, EntraUpstream, World) {
    let ca = TestCa::create(dir.path());
    let upstream = EntraUpstream::start(&ca);
    upstream.register_secret(CLIENT_ID, CLIENT_SECRET, false);
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    let world = entra_world(
        &ca,
        &upstream,
        "client-secret",
        &format!(
            "client_secret_file = \"{}\"\n{extra}",
            secret_file.display()
        ),
    );
    (ca, upstream, world)
}

#[test]
fn a_client_secret_gets_a_token_with_its_expiry_and_never_shows_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, upstream, world) = secret_world(&dir, "");
    let daemon = world.start_daemon();
    let token = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert_eq!(upstream.issued(), vec![token.clone()]);
    // What Entra was asked for, not only what credd reports.
    assert_eq!(
        upstream.scopes(),
        vec!["https://cognitiveservices.azure.com/.default".to_string()]
    );
    let detail = world.credd(&["get", "foundry", "--format", "json"]).json();
    assert_eq!(detail["metadata"]["tenant"], TENANT);
    assert_eq!(
        detail["metadata"]["scopes"],
        serde_json::json!(["https://cognitiveservices.azure.com/.default"])
    );
    assert_eq!(detail["metadata"]["method"], "client-secret");
    let lifetime = detail["expires_at"].as_str().map(|t| {
        humantime::parse_rfc3339(t)
            .unwrap()
            .duration_since(std::time::SystemTime::now())
            .unwrap()
    });
    assert!(
        lifetime.is_some_and(|l| l > Duration::from_secs(3500)),
        "the stated expires_in is an hour: {lifetime:?}"
    );
    for _ in 0..3 {
        world.credd(&["get", "foundry"]).ok();
    }
    assert_eq!(upstream.calls("client_secret"), 1);
    let status = world.credd(&["status"]).ok().to_string();
    for secret in [token.as_str(), CLIENT_SECRET] {
        assert!(!status.contains(secret));
        assert!(!daemon.log().contains(secret));
    }
}

/// Entra's clock ten minutes off either way: its token endpoint states a lifetime
/// (`expires_in`), so the token is kept for its true hour whatever its `Date` says, and nothing
/// is corrected.
#[test]
fn an_entra_clock_ten_minutes_off_changes_no_lifetime() {
    for offset in [600, -600] {
        let dir = tempfile::tempdir().unwrap();
        let (_ca, upstream, world) = secret_world(&dir, "");
        upstream.set_clock_offset(offset);
        let _daemon = world.start_daemon();
        let first = world.assert_lifetime_and_clock_offset("foundry", "token", 3599, 0);
        world.advance_clock(45 * 60);
        assert_eq!(
            world.credd(&["get", "foundry"]).ok(),
            first.ok(),
            "{offset:+}s"
        );
        assert_eq!(
            upstream.total_calls(),
            1,
            "clock {offset:+}s: refreshed early"
        );
    }
}

#[test]
fn wrong_tenant_unknown_client_and_an_expired_secret_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, upstream, _) = secret_world(&dir, "");
    let secret_file = dir.path().join("client-secret");
    let cases = [
        (
            format!(
                "tenant_id = \"00000000-0000-4000-8000-000000000bad\"\nclient_id = \"{CLIENT_ID}\"\n"
            ),
            "Tenant '00000000-0000-4000-8000-000000000bad' not found",
        ),
        (
            format!(
                "tenant_id = \"{TENANT}\"\nclient_id = \"00000000-0000-4000-8000-0000000a9915\"\n"
            ),
            "AADSTS700016: Application with identifier '00000000-0000-4000-8000-0000000a9915' was not found",
        ),
    ];
    for (ids, expected) in cases {
        let world = World::new().with_env("SSL_CERT_FILE", &ca.ca_pem.display().to_string());
        world.write_config(&format!(
            "[sources.foundry]\nkind = \"entra\"\nmethod = \"client-secret\"\nauthority = \"{}\"\n{ids}client_secret_file = \"{}\"\n",
            upstream.authority(),
            secret_file.display()
        ));
        let _daemon = world.start_daemon();
        let out = world.credd(&["get", "foundry"]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains(expected), "{}", out.stderr);
        assert!(!out.stderr.contains(CLIENT_SECRET));
    }

    upstream.register_secret(CLIENT_ID, CLIENT_SECRET, true);
    let world = entra_world(
        &ca,
        &upstream,
        "client-secret",
        &format!("client_secret_file = \"{}\"\n", secret_file.display()),
    );
    let daemon = world.start_daemon();
    let out = world.credd(&["get", "foundry"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("client secret keys"), "{}", out.stderr);
    assert!(out.stderr.contains("are expired"), "{}", out.stderr);
    assert!(!out.stderr.contains(CLIENT_SECRET) && !daemon.log().contains(CLIENT_SECRET));
}

#[test]
fn a_certificate_signs_an_assertion_the_authority_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let upstream = EntraUpstream::start(&ca);
    let (pem, public, thumbprint) = entra::app_certificate(dir.path());
    upstream.register_certificate(CLIENT_ID, &public, &thumbprint);
    let world = entra_world(
        &ca,
        &upstream,
        "client-certificate",
        &format!("certificate = \"{}\"\n", pem.display()),
    );
    let daemon = world.start_daemon();
    let token = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert_eq!(upstream.issued(), vec![token]);
    assert_eq!(upstream.calls("client_assertion"), 1);
    assert!(!daemon.log().contains("PRIVATE KEY"));
}

#[test]
fn workload_identity_presents_the_federated_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let upstream = EntraUpstream::start(&ca);
    let federated = "eyJhbGciOiJSUzI1NiJ9.credd-federated.sig";
    upstream.register_federated(CLIENT_ID, federated);
    let token_file = dir.path().join("azure-identity-token");
    let world = entra_world(&ca, &upstream, "workload-identity", "").with_env(
        "AZURE_FEDERATED_TOKEN_FILE",
        &token_file.display().to_string(),
    );
    let daemon = world.start_daemon();
    // No file yet: a clear error, nothing sent.
    let out = world.credd(&["get", "foundry"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("federated token file"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert_eq!(upstream.total_calls(), 0);

    std::fs::write(&token_file, federated).unwrap();
    world.credd(&["refresh", "foundry"]).ok();
    let token = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert_eq!(upstream.issued(), vec![token]);
    assert!(!daemon.log().contains(federated));
}

/// A stand-in for the Azure CLI: `az account get-access-token` prints what the real one does,
/// once `az login` (or the test) has made `logged_in_flag`.
pub(crate) fn fake_az(world: &World, logged_in_flag: &std::path::Path) -> PathBuf {
    let bin = world.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let az = bin.join("az");
    std::fs::write(
        &az,
        format!(
            "#!/bin/sh\necho \"$*\" >> {log}\n\
             if [ \"$1\" = login ]; then touch {flag}; echo 'Logged in as dev@example.com'; exit 0; fi\n\
             [ -e {flag} ] || {{ echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1; }}\n\
             exp=$(( $(date +%s) + 3000 ))\n\
             printf '{{\"accessToken\": \"az-cli-token-%s\", \"expiresOn\": \"%s\", \"expires_on\": %s, \"subscription\": \"sub\", \"tenant\": \"{TENANT}\", \"tokenType\": \"Bearer\"}}\\n' $(date +%s%N) \"$(date -d @$exp '+%Y-%m-%d %H:%M:%S.000000')\" $exp\n",
            log = world.path("az.log").display(),
            flag = logged_in_flag.display(),
        ),
    )
    .unwrap();
    make_executable(&az);
    bin
}

#[test]
fn azure_cli_tokens_and_az_login_through_credd_login() {
    let world = World::new();
    let flag = world.path("az-logged-in");
    let bin = fake_az(&world, &flag);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let world = world.with_env("PATH", &path);
    world.write_config(&format!(
        "[sources.foundry]\nkind = \"entra\"\nmethod = \"azure-cli\"\ntenant_id = \"{TENANT}\"\n"
    ));
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "foundry"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("az login"), "{}", out.stderr);
    assert!(out.stderr.contains("credd login foundry"), "{}", out.stderr);

    let login = world.credd(&["login", "foundry"]);
    assert!(
        login.ok().contains("Logged in as dev@example.com"),
        "{}",
        login.stdout
    );
    let token = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert!(token.starts_with("az-cli-token-"), "{token}");
    let log = std::fs::read_to_string(world.path("az.log")).unwrap();
    assert!(log.contains(&format!("login --tenant {TENANT}")), "{log}");
    assert!(
        log.contains("account get-access-token")
            && log.contains("https://cognitiveservices.azure.com/.default"),
        "{log}"
    );
}

#[test]
fn device_code_login_prints_the_code_then_refreshes_without_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let upstream = EntraUpstream::start(&ca);
    upstream.register_public(CLIENT_ID);
    upstream.set_expires_in(1800);
    let world = entra_world(&ca, &upstream, "device-code", "").with_env("CREDD_NO_BROWSER", "1");
    let daemon = world.start_daemon();
    let out = world.credd(&["get", "foundry"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("credd login foundry"), "{}", out.stderr);

    let login = world.credd(&["login", "foundry"]);
    let stdout = login.ok();
    assert!(
        stdout.contains("https://microsoft.com/devicelogin"),
        "{stdout}"
    );
    assert!(stdout.contains("CREDD-42"), "{stdout}");
    assert_eq!(upstream.calls("devicecode"), 1);
    let first = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert!(upstream.issued().contains(&first));

    // Later, the refresh token renews the access token with no one at the keyboard.
    world.advance_clock(25 * 60);
    world.eventually(Duration::from_secs(10), "a refresh", || {
        upstream.calls("refresh_token") >= 1
    });
    let second = world.credd(&["get", "foundry"]).ok().trim().to_string();
    let issued = upstream.issued();
    assert_eq!(issued.len(), 2, "the login's token, then the refreshed one");
    assert_eq!(issued.last(), Some(&second));
    // The device code asked for the source's scope and a refresh token; the refresh asked
    // for the same.
    let scope = "https://cognitiveservices.azure.com/.default offline_access";
    assert_eq!(upstream.scopes().last().map(String::as_str), Some(scope));
    let refresh_tokens = upstream.refresh_tokens();
    // The count only: the tokens themselves stay out of the test's output.
    assert_eq!(refresh_tokens.len(), 2, "refresh tokens issued");
    // Nowhere on disk: not the log, the state directory or anything else the world holds.
    assert!(
        !daemon.log().is_empty(),
        "the daemon wrote no log to search"
    );
    for refresh in refresh_tokens {
        assert_eq!(
            world.files_containing(&refresh),
            Vec::<std::path::PathBuf>::new(),
            "a refresh token was written to disk"
        );
    }
}

#[test]
fn every_upstream_fault_keeps_the_valid_token_served_without_a_storm_until_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, upstream, world) = secret_world(&dir, "timeout = \"1s\"\n");
    upstream.set_expires_in(1800);
    let _daemon = world.start_daemon();

    let faults = [
        (Fault::ServerError, "There was an error issuing a token"),
        (Fault::Garbage, "authentication failed"),
        (Fault::Hang, "timed out"),
        (Fault::Reset, "failed"),
        (Fault::ExpiredOnArrival, "already expired"),
        (Fault::Throttle(300), "throttling"),
    ];
    world.assert_fault_matrix(
        "foundry",
        &faults,
        |fault| upstream.set_fault(fault),
        || upstream.total_calls(),
        || upstream.set_fault(Fault::None),
    );
    assert_eq!(
        world.credd(&["get", "foundry"]).ok().trim(),
        upstream.issued().last().unwrap()
    );
}

#[test]
fn a_missing_setting_shows_in_status_at_once_and_calls_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let upstream = EntraUpstream::start(&ca);
    let world = World::new()
        .with_env("SSL_CERT_FILE", &ca.ca_pem.display().to_string())
        .with_env("AZURE_AUTHORITY_HOST", &upstream.authority());
    // No tenant_id in the config and no AZURE_TENANT_ID in the daemon's environment.
    world.write_config(&format!(
        "[sources.foundry]\nkind = \"entra\"\nmethod = \"client-secret\"\nclient_id = \"{CLIENT_ID}\"\n"
    ));
    let _daemon = world.start_daemon();
    let status = world.source_status("foundry");
    assert_eq!(status["state"], "failing", "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("needs `tenant_id` in the config (or AZURE_TENANT_ID)"),
        "{status}"
    );
    let out = world.credd(&["get", "foundry"]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(out.stderr.contains("is misconfigured"), "{}", out.stderr);
    assert_eq!(upstream.total_calls(), 0);
}

#[test]
fn a_browser_sign_in_uses_pkce_and_then_refreshes_without_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let upstream = EntraUpstream::start(&ca);
    upstream.register_public(CLIENT_ID);
    upstream.set_expires_in(1800);
    // The person's browser has an Entra session: the sign-in page sends it straight back.
    let (opened, path) =
        credd_tests::oidc::person_browser(dir.path(), &ca.ca_pem, "alice", &["--follow"]);
    let world = entra_world(&ca, &upstream, "browser", "").with_env("PATH", &path);
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "foundry"]);
    assert_eq!(out.code, 5, "{}", out.stderr);

    let login = world.credd(&["login", "foundry"]);
    let person = std::fs::read_to_string(dir.path().join("person.log")).unwrap_or_default();
    assert_eq!(login.code, 0, "{}\n{person}", login.stderr);
    let shown = login.stdout.clone();
    let page = std::fs::read_to_string(&opened).unwrap();
    assert_eq!(page.lines().count(), 1, "one page opened");
    assert!(
        page.starts_with(&format!(
            "{}/{TENANT}/oauth2/v2.0/authorize?",
            upstream.authority()
        )),
        "{page}"
    );
    assert!(page.contains("code_challenge_method=S256"), "{page}");
    assert!(
        page.contains("redirect_uri=http%3A%2F%2Flocalhost%3A"),
        "{page}"
    );
    assert!(shown.contains("signed in: `foundry`"), "{shown}");
    assert_eq!(upstream.calls("authorize"), 1);
    assert_eq!(upstream.calls("authorization_code"), 1);
    let first = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert!(upstream.issued().contains(&first));

    // The refresh token renews it with no browser.
    world.credd(&["refresh", "foundry"]).ok();
    assert_eq!(upstream.calls("refresh_token"), 1);
    let second = world.credd(&["get", "foundry"]).ok().trim().to_string();
    assert_eq!(upstream.issued().last(), Some(&second));
    assert_eq!(std::fs::read_to_string(&opened).unwrap().lines().count(), 1);
}
