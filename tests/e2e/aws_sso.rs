//! SSO sessions: device login shared by concurrent callers (of one source, and of profiles on
//! one session), renewal with the refresh token and
//! no browser, token files interoperable with the AWS CLI's format in both directions, and the
//! bad cases (corrupted cache file, refresh token refused).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use credd_tests::World;
use credd_tests::peers::{self, Moto};
use credd_tests::sso_stub::{SEEDED_CLIENT, SsoStub};
use serde_json::{Value, json};
use sha1::Digest;

const CONFIG: &str = "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Developer\nregion = us-east-1\n\n\
[profile prod]\nsso_session = corp\nsso_account_id = 444455556666\nsso_role_name = Admin\nregion = us-east-1\n\n\
[sso-session corp]\nsso_start_url = https://corp.awsapps.example/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n";

pub(crate) struct SsoWorld {
    pub(crate) world: World,
    pub(crate) sso: SsoStub,
    _moto: Moto,
}

pub(crate) fn sso_world() -> SsoWorld {
    let moto = Moto::start();
    let sso = SsoStub::start();
    let world = World::new()
        .with_aws(CONFIG, "", &moto.url())
        .with_env("AWS_ENDPOINT_URL_SSO", &sso.url())
        .with_env("AWS_ENDPOINT_URL_SSO_OIDC", &sso.url())
        .with_env("CREDD_NO_BROWSER", "1");
    world.write_config("[sources.dev]\nkind = \"aws\"\nprofile = \"dev\"\n");
    SsoWorld {
        world,
        sso,
        _moto: moto,
    }
}

/// Where the AWS CLI keeps the token of sso-session `corp`.
pub(crate) fn cache_file(world: &World) -> PathBuf {
    let digest = sha1::Sha1::digest(b"corp");
    world
        .home
        .join(".aws/sso/cache")
        .join(format!("{}.json", hex::encode(digest)))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A token file as `aws sso login` writes it.
pub(crate) fn write_cli_cache(world: &World, access: &str, refresh: &str, expires_in: Duration) {
    let path = cache_file(world);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let token = json!({
        "startUrl": "https://corp.awsapps.example/start",
        "region": "us-east-1",
        "accessToken": access,
        "expiresAt": rfc3339(SystemTime::now() + expires_in),
        "clientId": SEEDED_CLIENT.0,
        "clientSecret": SEEDED_CLIENT.1,
        "registrationExpiresAt": rfc3339(SystemTime::now() + Duration::from_secs(60 * 86400)),
        "refreshToken": refresh,
    });
    std::fs::write(path, token.to_string()).unwrap();
}

#[test]
fn get_never_starts_a_login_and_names_the_command() {
    let t = sso_world();
    let _daemon = t.world.start_daemon();
    let out = t.world.credd(&["get", "dev", "--format", "aws"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("credd login dev"), "{}", out.stderr);
    assert_eq!(t.sso.calls("StartDeviceAuthorization"), 0);
    assert_eq!(t.world.source_status("dev")["state"], "needs_login");
}

#[test]
fn concurrent_logins_share_one_device_flow_and_the_aws_cli_can_use_the_result() {
    let t = sso_world();
    let _daemon = t.world.start_daemon();
    // A browser opener that notes the pages it was asked to open.
    let (opened, path) = t.world.stub_browser();
    let children: Vec<_> = (0..5)
        .map(|_| {
            t.world.spawn_watched(&["login", "dev"], |cmd| {
                cmd.env_remove("CREDD_NO_BROWSER").env("PATH", &path);
            })
        })
        .collect();
    // The person approves once every caller shows the page: all five have joined the login.
    for child in &children {
        child.wait_for("user_code=", Duration::from_secs(20));
    }
    t.sso.approve_all();
    let mut codes = Vec::new();
    for child in children {
        let stdout = child.finish().ok().to_string();
        assert!(
            stdout.contains("https://device.sso.example/?user_code="),
            "{stdout}"
        );
        assert!(stdout.contains("signed in"), "{stdout}");
        codes.push(stdout.lines().next().unwrap().to_string());
    }
    codes.dedup();
    assert_eq!(codes.len(), 1, "callers saw different codes: {codes:?}");
    assert_eq!(t.sso.calls("StartDeviceAuthorization"), 1);
    assert_eq!(t.sso.calls("RegisterClient"), 1);
    // Five callers, one browser tab.
    let opened = std::fs::read_to_string(&opened).unwrap();
    assert_eq!(opened.lines().count(), 1, "{opened}");
    assert!(
        opened.starts_with("https://device.sso.example/?user_code="),
        "{opened}"
    );
    // The page's lock is gone with its login.
    let dir = t.world.socket.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".login-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The token file is in the AWS CLI's format, private.
    let path = cache_file(&t.world);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for key in [
        "accessToken",
        "expiresAt",
        "refreshToken",
        "clientId",
        "clientSecret",
        "registrationExpiresAt",
        "region",
        "startUrl",
    ] {
        assert!(token[key].is_string(), "{key} missing from {token}");
    }
    assert!(
        t.sso
            .access_token_valid(token["accessToken"].as_str().unwrap())
    );

    // credd serves role credentials now; a second login has nothing to do.
    let creds = t.world.credd(&["get", "dev", "--format", "aws"]).json();
    assert!(
        creds["Credentials"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .starts_with("ASIASSOSTUB"),
        "{creds}"
    );
    let again = t.world.credd(&["login", "dev"]);
    assert!(again.ok().contains("needs no login"), "{}", again.stdout);
    assert_eq!(t.sso.calls("StartDeviceAuthorization"), 1);

    // boto3 reads the token file credd wrote.
    let script = r#"
import boto3
c = boto3.Session(profile_name="dev").get_credentials().get_frozen_credentials()
print(c.access_key)
"#;
    let key = peers::run_python(script, &[], |cmd| t.world.isolate(cmd));
    assert!(key.starts_with("ASIASSOSTUB"), "{key}");
}

#[test]
fn profiles_on_one_sso_session_share_one_login() {
    let t = sso_world();
    t.world.write_config(
        "[sources.dev]\nkind = \"aws\"\nprofile = \"dev\"\n\n[sources.prod]\nkind = \"aws\"\nprofile = \"prod\"\n",
    );
    let _daemon = t.world.start_daemon();
    // Two sessions' awsAuthRefresh at once, one for each account.
    let children: Vec<_> = ["dev", "prod", "dev", "prod"]
        .into_iter()
        .map(|source| t.world.spawn_watched(&["login", source], |_| {}))
        .collect();
    // Every caller shows a page before the person approves, so all four have joined.
    for child in &children {
        child.wait_for("user_code=", Duration::from_secs(20));
    }
    assert_eq!(
        t.sso.pending_devices(),
        1,
        "two device logins for one session"
    );
    t.sso.approve_all();
    let mut codes = Vec::new();
    for child in children {
        let stdout = child.finish().ok().to_string();
        assert!(stdout.contains("signed in"), "{stdout}");
        // The first line names the source; the page and its code are the same for all.
        let page = stdout.lines().find(|l| l.contains("user_code="));
        codes.push(page.expect("a verification page").trim().to_string());
    }
    codes.dedup();
    assert_eq!(codes.len(), 1, "callers saw different codes: {codes:?}");
    assert_eq!(t.sso.calls("StartDeviceAuthorization"), 1);
    // Each profile's own account and role, as the SSO portal issued them.
    for (source, account, role) in [
        ("dev", "111122223333", "Developer"),
        ("prod", "444455556666", "Admin"),
    ] {
        let creds = t.world.credd(&["get", source, "--format", "aws"]).json();
        let key_id = creds["Credentials"]["AccessKeyId"].as_str().unwrap();
        assert_eq!(
            t.sso.role_of(key_id),
            Some((account.to_string(), role.to_string())),
            "{source}: {creds}"
        );
    }
}

#[test]
fn an_expiring_session_is_renewed_with_its_refresh_token_without_a_browser() {
    let t = sso_world();
    // As `aws sso login` left it: five minutes to go.
    let issued = t.sso.issue_session();
    write_cli_cache(
        &t.world,
        &issued.access_token,
        &issued.refresh_token,
        Duration::from_secs(300),
    );
    let _daemon = t.world.start_daemon();

    let creds = t.world.credd(&["get", "dev", "--format", "aws"]).json();
    assert!(
        creds["Credentials"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .starts_with("ASIASSOSTUB")
    );
    assert_eq!(t.sso.calls("CreateToken:refresh_token"), 1);
    assert_eq!(t.sso.calls("StartDeviceAuthorization"), 0);

    let token: Value =
        serde_json::from_slice(&std::fs::read(cache_file(&t.world)).unwrap()).unwrap();
    assert_ne!(
        token["accessToken"],
        issued.access_token.as_str(),
        "the token file was not renewed"
    );
    let expires = humantime::parse_rfc3339(token["expiresAt"].as_str().unwrap()).unwrap();
    assert!(expires > SystemTime::now() + Duration::from_secs(50 * 60));
    assert_eq!(
        token["startUrl"], "https://corp.awsapps.example/start",
        "fields of the CLI's file were lost"
    );
}

#[test]
fn a_token_the_portal_refuses_asks_for_a_login() {
    let t = sso_world();
    // Not expired by the file's word, but the portal never issued it (a session ended
    // elsewhere): GetRoleCredentials answers UnauthorizedException.
    write_cli_cache(
        &t.world,
        "sso-access-never-issued",
        "sso-refresh-never-issued",
        Duration::from_secs(3600),
    );
    let _daemon = t.world.start_daemon();
    let out = t.world.credd(&["get", "dev", "--format", "aws"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("was refused"), "{}", out.stderr);
    assert!(out.stderr.contains("credd login dev"), "{}", out.stderr);
    assert_eq!(t.sso.calls("GetRoleCredentials"), 1);
}

#[test]
fn a_corrupted_token_file_is_reported_and_left_in_place() {
    let t = sso_world();
    let path = cache_file(&t.world);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{\"accessToken\": \"trunc").unwrap();
    let _daemon = t.world.start_daemon();
    let out = t.world.credd(&["get", "dev", "--format", "aws"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.contains("not an SSO token file"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("credd login dev"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"accessToken\": \"trunc"
    );
    assert_eq!(t.world.status()["sources"][0]["state"], "needs_login");
}

#[test]
fn a_refused_refresh_token_asks_for_a_login() {
    let t = sso_world();
    let issued = t.sso.issue_session();
    write_cli_cache(
        &t.world,
        &issued.access_token,
        &issued.refresh_token,
        Duration::from_secs(60),
    );
    t.sso.revoke_refresh_tokens();
    let _daemon = t.world.start_daemon();
    let out = t.world.credd(&["get", "dev", "--format", "aws"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.contains("refresh token was refused"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("credd login dev"), "{}", out.stderr);
    assert_eq!(t.sso.calls("CreateToken:refresh_token"), 1);
}

#[test]
fn a_login_done_by_the_aws_cli_is_picked_up_at_once() {
    let t = sso_world();
    let _daemon = t.world.start_daemon();
    // Fail a few times so the backoff is long: only the file watch can bring it back quickly.
    for _ in 0..5 {
        assert_eq!(t.world.credd(&["refresh", "dev"]).code, 5);
    }
    let status = t.world.source_status("dev");
    assert_eq!(status["state"], "needs_login", "{status}");
    let retry_in =
        status["next_refresh_at"].as_i64().unwrap() - t.world.status()["now"].as_i64().unwrap();
    assert!(
        retry_in >= 10,
        "backoff too short for this test: {retry_in}s"
    );

    // `aws sso login` writes the token file.
    let issued = t.sso.issue_session();
    write_cli_cache(
        &t.world,
        &issued.access_token,
        &issued.refresh_token,
        Duration::from_secs(3600),
    );
    t.world
        .eventually(Duration::from_secs(5), "the new session to be used", || {
            t.world.source_status("dev")["state"] == "fresh"
        });
    let creds = t.world.credd(&["get", "dev", "--format", "aws"]).json();
    assert!(
        creds["Credentials"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .starts_with("ASIASSOSTUB")
    );
}

#[test]
fn a_legacy_sso_profile_uses_the_token_cached_under_its_start_url() {
    let moto = Moto::start();
    let sso = SsoStub::start();
    let world = World::new()
        .with_aws(
            "[profile legacy]\nsso_start_url = https://legacy.awsapps.example/start\nsso_region = us-east-1\nsso_account_id = 111122223333\nsso_role_name = ReadOnly\nregion = us-east-1\n",
            "",
            &moto.url(),
        )
        .with_env("AWS_ENDPOINT_URL_SSO", &sso.url())
        .with_env("AWS_ENDPOINT_URL_SSO_OIDC", &sso.url());
    world.write_config("[sources.legacy]\nkind = \"aws\"\nprofile = \"legacy\"\n");
    // Legacy profiles are keyed by their start URL, as the AWS CLI keys them.
    let issued = sso.issue_session();
    let digest = sha1::Sha1::digest(b"https://legacy.awsapps.example/start");
    let path = world
        .home
        .join(".aws/sso/cache")
        .join(format!("{}.json", hex::encode(digest)));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        json!({
            "startUrl": "https://legacy.awsapps.example/start",
            "region": "us-east-1",
            "accessToken": issued.access_token,
            "expiresAt": rfc3339(SystemTime::now() + Duration::from_secs(3600)),
        })
        .to_string(),
    )
    .unwrap();
    let _daemon = world.start_daemon();
    let creds = world.credd(&["get", "legacy", "--format", "aws"]).json();
    assert!(
        creds["Credentials"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .starts_with("ASIASSOSTUB"),
        "{creds}"
    );
    assert_eq!(sso.calls("GetRoleCredentials"), 1);
}
