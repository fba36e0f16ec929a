//! The `oidc` source against a real OpenID Provider (`oidc-provider` from npm, over HTTPS):
//! the browser sign-in (authorization code with PKCE, the loopback redirect) followed by an
//! HTTP client and by headless Chromium, the device sign-in, refresh-token rotation, the
//! refusals that must leave nothing behind, and the gateway token served to callers.

use std::time::Duration;

use base64::Engine as _;
use credd_tests::oidc::{CLIENT_ID, OidcProvider, Options};
use credd_tests::world::World;

/// A world with source `corp` signing in at `provider`, whose browser is a person signing
/// in as alice with `how`.
fn corp_world(provider: &OidcProvider, dir: &std::path::Path, how: &[&str], extra: &str) -> World {
    let (_, path) = provider.person_browser(dir, "alice", how);
    let world = World::new().with_env("PATH", &path);
    world.write_config(&provider.source_table("corp", extra));
    world
}

/// The claims of a JWT, unverified (the test reads what it was given).
fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// What the person saw at the end, once they have said it (they tell after credd has the
/// answer).
fn person_saw(dir: &std::path::Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = std::fs::read_to_string(dir.join("person.log")).unwrap_or_default();
        if seen.contains("credd") || std::time::Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn opened(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("opened"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_browser_sign_in_serves_the_id_token_and_refreshes_with_a_rotated_token() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let world = corp_world(&provider, dir.path(), &[], "");
    let daemon = world.start_daemon();

    let before = world.credd(&["get", "corp"]);
    assert_eq!(before.code, 5, "{}", before.stderr);
    assert!(
        before.stderr.contains("credd login corp"),
        "{}",
        before.stderr
    );

    let login = world.credd(&["login", "corp"]);
    let shown = login.ok();
    let page = format!("{}/auth?", provider.issuer());
    assert!(shown.contains(&page), "{shown}");
    // One page opened, the person saw credd's own page at the end.
    assert_eq!(opened(dir.path()).len(), 1);
    let person = person_saw(dir.path());
    assert!(
        person.starts_with("200 ") && person.contains("credd has the sign-in"),
        "{person}"
    );

    let token = world.credd(&["get", "corp"]).ok().trim().to_string();
    let id = claims(&token);
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["aud"], CLIENT_ID);
    assert_eq!(id["iss"], provider.issuer());
    assert_eq!(provider.grants("authorization_code"), 1);

    let status = world.credd(&["status"]).ok().to_string();
    assert!(
        status.contains(&format!(
            "corp: signed in as alice@example.com at {}",
            provider.issuer()
        )),
        "{status}"
    );

    // Renewed with the refresh token, twice: the provider rotates it at each use, so the
    // second works only if the first's new token was kept. (A second later, so the renewed
    // ID token's `iat` differs.)
    std::thread::sleep(Duration::from_millis(1100));
    for round in 1..=2 {
        world.credd(&["refresh", "corp"]).ok();
        assert_eq!(provider.grants("refresh_token"), round);
    }
    let renewed = world.credd(&["get", "corp"]).ok().trim().to_string();
    assert!(renewed != token, "the ID token was not renewed");
    assert_eq!(claims(&renewed)["sub"], "alice");
    assert_eq!(opened(dir.path()).len(), 1, "no second browser sign-in");
    assert!(
        !provider.events().iter().any(|e| e.contains("error")),
        "{:?}",
        provider.events()
    );

    // No token on disk, in the log or in status.
    assert!(!daemon.log().is_empty());
    for secret in [&token, &renewed] {
        assert_eq!(
            world.files_containing(secret),
            Vec::<std::path::PathBuf>::new()
        );
        assert!(!status.contains(secret.as_str()));
    }

    // Signing out revokes the refresh token and forgets the sign-in.
    world.credd(&["logout", "corp"]).ok();
    let after = world.credd(&["get", "corp"]);
    assert_eq!(after.code, 5, "{}", after.stderr);
}

#[test]
fn headless_chromium_signs_in_on_the_providers_own_pages() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let world = corp_world(&provider, dir.path(), &["--chromium"], "");
    let _daemon = world.start_daemon();
    world.credd(&["login", "corp"]).ok();
    let person = person_saw(dir.path());
    assert!(
        person.contains("/callback") && person.contains("credd has the sign-in"),
        "{person}"
    );
    let token = world.credd(&["get", "corp"]).ok().trim().to_string();
    assert_eq!(claims(&token)["sub"], "alice");
    assert_eq!(provider.grants("authorization_code"), 1);
}

#[test]
fn a_device_sign_in_needs_no_browser_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let world = World::new().with_env("CREDD_NO_BROWSER", "1");
    world.write_config(&provider.source_table("corp", "method = \"device-code\"\n"));
    let _daemon = world.start_daemon();
    let mut login = world.spawn_credd(&["login", "corp"], |_| {});
    // The person reads the page and code from what `credd login` printed.
    let mut shown = String::new();
    let stdout = login.stdout.take().unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    let (page, code) = loop {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0,
            "credd login ended before showing a code: {shown}"
        );
        shown.push_str(&line);
        let words: Vec<&str> = shown.split_whitespace().collect();
        let code = words
            .iter()
            .position(|w| *w == "code")
            .map(|i| words[i + 1].trim_end_matches(':').to_string());
        let page = words.iter().find(|w| w.starts_with("https://")).cloned();
        if let (Some(code), Some(page)) = (code, page) {
            break (page.to_string(), code);
        }
    };
    provider.person(&["--device", &page, &code]);
    let status = login.wait().unwrap();
    assert!(status.success(), "{shown}");
    let token = world.credd(&["get", "corp"]).ok().trim().to_string();
    assert_eq!(claims(&token)["sub"], "alice");
    assert_eq!(
        provider.grants("urn:ietf:params:oauth:grant-type:device_code"),
        1
    );
}

#[test]
fn the_access_token_is_served_when_asked_for_and_refreshes_once_per_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let lifetime = 20;
    let provider = OidcProvider::start(
        dir.path(),
        &Options {
            id_token_ttl: lifetime,
            access_token_ttl: lifetime,
            ..Options::default()
        },
    );
    let world = corp_world(&provider, dir.path(), &[], "token = \"access\"\n");
    let _daemon = world.start_daemon();
    world.credd(&["login", "corp"]).ok();
    let access = world.credd(&["get", "corp"]).ok().trim().to_string();
    // oidc-provider's access tokens are opaque, unlike its ID tokens.
    assert!(
        !access.is_empty() && access.split('.').count() != 3,
        "{access}"
    );
    // A soak over three lifetimes with no browser. A token that lives less than the ten
    // minutes callers ask for is served for its first half (credd's policy for every short
    // token), less up to a quarter of the rest as jitter: so one refresh per 7.5 to 10 s here,
    // each renewing the one before, and no more.
    let soak = Duration::from_secs(3 * lifetime);
    std::thread::sleep(soak);
    let refreshes = provider.grants("refresh_token");
    assert!(
        (5..=9).contains(&refreshes),
        "{refreshes} refreshes in three lifetimes"
    );
    assert_eq!(opened(dir.path()).len(), 1, "no second browser sign-in");
    let later = world.credd(&["get", "corp"]).ok().trim().to_string();
    assert!(later != access, "the access token was not renewed");
}

/// `impostor get URL` as this user, or as another when `other` is set: what came back.
pub(crate) fn get(url: &str, other: bool) -> String {
    let bin = credd_tests::bin("impostor");
    let mut command = if other {
        credd_tests::other_user::command(&bin)
    } else {
        std::process::Command::new(&bin)
    };
    let out = command.args(["get", url]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_redirect_is_taken_from_this_user_with_this_sign_ins_state_once_and_a_stolen_code_is_useless()
{
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let world = corp_world(&provider, dir.path(), &["--stop-at-redirect"], "");
    let _daemon = world.start_daemon();
    let mut login = world.spawn_credd(&["login", "corp"], |_| {});
    // The person signed in; the provider's redirect is in their hands, not yet delivered.
    let redirect = person_saw_line(dir.path(), "http://127.0.0.1:");
    assert!(redirect.contains("code=") && redirect.contains("state="));

    // The port is credd's on ::1 too, where a browser may go for `localhost`.
    let port: u16 = redirect["http://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let v6 = std::net::TcpListener::bind(("::1", port)).map(drop);
    assert_eq!(v6.map_err(|e| e.kind()), Err(std::io::ErrorKind::AddrInUse));

    // Someone who took the code cannot redeem it without the PKCE verifier.
    let token_endpoint = format!("{}/token", provider.issuer());
    let stolen = provider.person(&["--redeem", &token_endpoint, CLIENT_ID, &redirect]);
    assert_eq!(stolen.trim(), "400 invalid_grant");

    // Another local user's connection is closed unread, whatever it carries.
    if credd_tests::other_user::available("oidc redirect") {
        let theirs = get(&redirect, true);
        assert_eq!(theirs.trim(), "", "another user was answered");
    }
    // An answer for another sign-in (its state differs) is refused, and the sign-in waits on.
    let forged = redirect.replace("state=", "state=x");
    assert!(get(&forged, false).starts_with("HTTP/1.1 400"));
    let waiting = world.credd(&["get", "corp"]);
    assert_eq!(waiting.code, 5, "{}", waiting.stderr);

    // The real answer ends the sign-in; the listener is gone after it.
    let answer = get(&redirect, false);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(login.wait().unwrap().success());
    assert_eq!(get(&redirect, false).trim(), "refused");
    let token = world.credd(&["get", "corp"]).ok().trim().to_string();
    assert_eq!(claims(&token)["sub"], "alice");
    assert_eq!(provider.grants("authorization_code"), 1);
}

/// The first line the person wrote that starts with `prefix`, once they wrote it.
pub(crate) fn person_saw_line(dir: &std::path::Path, prefix: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = std::fs::read_to_string(dir.join("person.log")).unwrap_or_default();
        if let Some(line) = seen.lines().find(|l| l.starts_with(prefix)) {
            return line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the person did not get there: {seen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The role the `bedrock` source assumes with `corp`'s ID token.
const ROLE: &str = "arn:aws:iam::123456789012:role/claude-code";

/// A world whose `bedrock` source assumes [`ROLE`] with the sign-in of `corp` at `provider`,
/// through moto's STS (which trusts the provider for `trusted_client`), proxied to `api`.
fn web_identity_world(
    provider: &OidcProvider,
    moto: &credd_tests::peers::Moto,
    trusted_client: &str,
    api: &credd_tests::model_api::ModelApi,
    dir: &std::path::Path,
) -> World {
    web_identity_world_with(provider, moto, trusted_client, api, dir, "")
}

/// [`web_identity_world`] with `extra` config.
fn web_identity_world_with(
    provider: &OidcProvider,
    moto: &credd_tests::peers::Moto,
    trusted_client: &str,
    api: &credd_tests::model_api::ModelApi,
    dir: &std::path::Path,
    extra: &str,
) -> World {
    moto.sts
        .trust_oidc_provider(&provider.issuer(), trusted_client, &provider.jwks());
    let (_, path) = provider.person_browser(dir, "alice", &[]);
    let world = World::new()
        .with_aws("", "", &moto.url())
        .with_env("PATH", &path);
    world.write_config(&format!(
        "{}\n[sources.bedrock]\nkind = \"aws\"\nregion = \"us-east-1\"\nproxy = {{ upstream = \"{}\" }}\n[sources.bedrock.web_identity]\noidc = \"corp\"\nrole_arn = \"{ROLE}\"\n{extra}",
        provider.source_table("corp", ""),
        api.url()
    ));
    world
}

#[test]
fn a_role_assumed_with_the_sign_in_serves_boto3_and_claude_code_on_bedrock() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let moto = credd_tests::peers::Moto::start();
    let api = credd_tests::model_api::ModelApi::start();
    let world = web_identity_world(&provider, &moto, CLIENT_ID, &api, dir.path());
    let _daemon = world.start_daemon();

    let before = world.credd(&["get", "bedrock", "--format", "aws"]);
    assert_eq!(before.code, 5, "{}", before.stderr);
    assert!(
        before.stderr.contains("credd login bedrock"),
        "{}",
        before.stderr
    );
    // Claude Code's awsAuthRefresh: `credd login bedrock` signs in at `corp`.
    let login = world.credd(&["login", "bedrock"]);
    assert!(
        login.ok().contains("signed in: `bedrock`"),
        "{}",
        login.stdout
    );
    assert_eq!(opened(dir.path()).len(), 1);
    let assumed: Vec<_> = moto
        .sts
        .calls()
        .into_iter()
        .filter(|c| c.action == "AssumeRoleWithWebIdentity")
        .collect();
    assert_eq!(assumed.len(), 1);
    assert_eq!(assumed[0].status, 200);
    assert_eq!(assumed[0].params["RoleArn"], ROLE);
    assert_eq!(assumed[0].params["RoleSessionName"], "alice@example.com");

    // boto3, with credd as its credential_process.
    let boto_config = world.path("boto-config");
    std::fs::write(
        &boto_config,
        format!(
            "[profile via-credd]\nregion = us-east-1\ncredential_process = {} get bedrock --format aws-process\n",
            credd_tests::bin("credd").display()
        ),
    )
    .unwrap();
    let script = r#"
import sys, boto3
session = boto3.Session(profile_name="via-credd")
print(session.client("sts", endpoint_url=sys.argv[1]).get_caller_identity()["Arn"])
"#;
    let arn = credd_tests::peers::run_python(script, &[&moto.url()], |cmd| {
        world.isolate(cmd);
        cmd.env("AWS_CONFIG_FILE", &boto_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    });
    assert!(
        arn.contains(":assumed-role/claude-code/alice@example.com"),
        "{arn}"
    );

    // Claude Code on Bedrock through the proxy, signed with the role's credentials (the stub
    // checks each signature with the secret STS issued).
    let (reply, _) = crate::proxy::claude_through_the_proxy(&world, "bedrock", &[]);
    assert!(reply.contains(credd_tests::model_api::REPLY), "{reply}");
    assert!(!api.messages().is_empty());
    // One sign-in, one role, however many asked.
    assert_eq!(provider.grants("authorization_code"), 1);
    assert_eq!(opened(dir.path()).len(), 1);
}

#[test]
fn sts_refusing_the_id_token_leaves_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let moto = credd_tests::peers::Moto::start();
    let api = credd_tests::model_api::ModelApi::start();
    // The account's IAM trusts the provider for another client: the token's `aud` is wrong.
    let world = web_identity_world(&provider, &moto, "another-client", &api, dir.path());
    let _daemon = world.start_daemon();
    let login = world.credd(&["login", "bedrock"]);
    assert_ne!(login.code, 0);
    assert!(
        login.stderr.contains("Incorrect token audience"),
        "{}",
        login.stderr
    );
    let token = world.credd(&["get", "corp"]).ok().trim().to_string();
    assert!(!login.stderr.contains(&token) && !login.stdout.contains(&token));
    let out = world.credd(&["get", "bedrock", "--format", "aws"]);
    assert_ne!(out.code, 0);
    assert!(out.stdout.is_empty());
}

#[test]
fn claude_code_sends_the_id_token_to_a_gateway_as_helper_and_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let api = credd_tests::model_api::ModelApi::start();
    let world = corp_world(
        &provider,
        dir.path(),
        &[],
        &format!(
            "proxy = {{ upstream = \"{}\", send_as = \"bearer\" }}\n",
            api.url()
        ),
    );
    let _daemon = world.start_daemon();
    world.credd(&["login", "corp"]).ok();
    let token = world.credd(&["get", "corp"]).ok().trim().to_string();

    // apiKeyHelper, as `credd setup claude-code` writes it.
    world
        .credd(&["setup", "claude-code", "corp", "--base-url", &api.url()])
        .ok();
    let reply = credd_tests::claude_say_hi(
        &world,
        world.dir.path(),
        &[("ANTHROPIC_BASE_URL", &api.url())],
    );
    assert!(reply.contains(credd_tests::model_api::REPLY), "{reply}");
    let helped = api.messages();
    assert!(!helped.is_empty());
    for m in &helped {
        let bearer = m.header("authorization").unwrap_or_default();
        assert!(bearer == format!("Bearer {token}"), "not the ID token");
    }

    // The proxy, its Bearer added on the way.
    let (reply, _) = crate::proxy::claude_through_the_proxy(&world, "corp", &[]);
    assert!(reply.contains(credd_tests::model_api::REPLY), "{reply}");
    let proxied = &api.messages()[helped.len()..];
    assert!(!proxied.is_empty());
    for m in proxied {
        let bearer = m.header("authorization").unwrap_or_default();
        let jwt = bearer.strip_prefix("Bearer ").expect("a Bearer token");
        assert_eq!(claims(jwt)["aud"], CLIENT_ID);
        assert!(m.header("x-api-key").is_none());
    }
}

/// The workforce pool provider that trusts `corp`'s sign-in.
const WORKFORCE: &str =
    "//iam.googleapis.com/locations/global/workforcePools/credd-pool/providers/corp-oidc";

#[test]
fn workforce_identity_from_the_sign_in_serves_google_auth_and_claude_code_on_vertex() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let google = credd_tests::google::GoogleUpstream::start();
    google.trust_workforce_provider(WORKFORCE, &provider.issuer(), CLIENT_ID, &provider.jwks());
    let api = credd_tests::model_api::ModelApi::start();
    let (_, path) = provider.person_browser(dir.path(), "alice", &[]);
    let world = World::new().with_env("PATH", &path);
    let port = credd_tests::peers::free_port();
    world.write_config(&format!(
        "{}\n[sources.vertex]\nkind = \"gcp\"\nmetadata_endpoint = {{ port = {port} }}\nproxy = {{ upstream = \"{}\" }}\n[sources.vertex.workforce]\noidc = \"corp\"\naudience = \"{WORKFORCE}\"\nuser_project = \"credd-vertex\"\ntoken_url = \"{}\"\n",
        provider.source_table("corp", ""),
        api.url(),
        google.token_url(),
    ));
    let _daemon = world.start_daemon();

    // Claude Code's gcpAuthRefresh: `credd login vertex` signs in at `corp`.
    let login = world.credd(&["login", "vertex"]);
    assert!(
        login.ok().contains("signed in: `vertex`"),
        "{}",
        login.stdout
    );
    assert_eq!(google.calls(credd_tests::google::WORKFORCE_EXCHANGE), 1);
    assert_eq!(
        google.workforce_options(),
        vec![r#"{"userProject":"credd-vertex"}"#.to_string()]
    );

    // google-auth, through the metadata endpoint.
    credd_tests::peers::wait_for_port(port, Duration::from_secs(10), "the metadata endpoint");
    let env = world.endpoint_env("vertex", "gce-metadata");
    let script = "import google.auth, google.auth.transport.requests as tr\n\
        creds, project = google.auth.default()\n\
        creds.refresh(tr.Request())\n\
        print(project, creds.token, sep='\\n')\n";
    let out = credd_tests::peers::run_python(script, &[], |cmd| {
        world.isolate(cmd);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "credd-vertex");
    assert_eq!(google.issued(), vec![lines[1].to_string()]);

    // Claude Code on Vertex through the proxy, with the workforce token.
    let (reply, _) =
        crate::proxy::claude_through_the_proxy(&world, "vertex", &["--region", "us-east5"]);
    assert!(reply.contains(credd_tests::model_api::REPLY), "{reply}");
    let messages = api.messages();
    assert!(!messages.is_empty());
    for m in &messages {
        assert!(
            m.path
                .starts_with("/v1/projects/credd-vertex/locations/us-east5/")
        );
        let bearer = m.header("authorization").unwrap_or_default();
        assert!(
            bearer == format!("Bearer {}", lines[1]),
            "not the workforce token"
        );
    }
    assert_eq!(google.calls(credd_tests::google::WORKFORCE_EXCHANGE), 1);
    assert_eq!(opened(dir.path()).len(), 1);
}

#[test]
fn a_workforce_exchange_with_a_token_for_another_client_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let google = credd_tests::google::GoogleUpstream::start();
    google.trust_workforce_provider(
        WORKFORCE,
        &provider.issuer(),
        "another-client",
        &provider.jwks(),
    );
    let (_, path) = provider.person_browser(dir.path(), "alice", &[]);
    let world = World::new().with_env("PATH", &path);
    world.write_config(&format!(
        "{}\n[sources.vertex]\nkind = \"gcp\"\n[sources.vertex.workforce]\noidc = \"corp\"\naudience = \"{WORKFORCE}\"\nuser_project = \"credd-vertex\"\ntoken_url = \"{}\"\n",
        provider.source_table("corp", ""),
        google.token_url(),
    ));
    let _daemon = world.start_daemon();
    let login = world.credd(&["login", "vertex"]);
    assert_ne!(login.code, 0);
    assert!(
        login.stderr.contains("could not be verified"),
        "{}",
        login.stderr
    );
    assert!(google.issued().is_empty());
}

#[test]
fn a_sign_in_asked_through_a_forward_happens_on_the_host_and_tells_the_other_side_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let moto = credd_tests::peers::Moto::start();
    let api = credd_tests::model_api::ModelApi::start();
    let world = web_identity_world_with(
        &provider,
        &moto,
        CLIENT_ID,
        &api,
        dir.path(),
        "[forwards.dev]\nsources = [\"bedrock\"]\n",
    );
    let _daemon = world.start_daemon();
    // A container's `credd login bedrock` (its awsAuthRefresh).
    let login = crate::forwards::credd_in(&world, "dev", &["login", "bedrock"]);
    let shown = login.ok().to_string();
    assert!(shown.contains("signed in: `bedrock`"), "{shown}");
    let page = format!("{}/auth", provider.issuer());
    assert!(shown.contains(&page), "{shown}");
    assert!(
        !shown.contains("state=") && !shown.contains("code_challenge"),
        "{shown}"
    );
    // The host's browser got the whole page, once.
    let opened = opened(dir.path());
    assert_eq!(opened.len(), 1);
    assert!(opened[0].contains("state=") && opened[0].contains("code_challenge="));
    let assumed = || {
        moto.sts
            .calls()
            .iter()
            .filter(|c| c.action == "AssumeRoleWithWebIdentity")
            .count()
    };
    assert_eq!(assumed(), 1);
    // Asking again, in a loop, costs STS nothing: the role is cached. (A LoginWait, as a
    // client sends after a prompt, straight to the forward's socket, too.)
    for _ in 0..3 {
        let again = crate::forwards::credd_in(&world, "dev", &["login", "bedrock"]);
        assert!(again.ok().contains("needs no login"), "{}", again.stdout);
    }
    let frame = world.path("login-wait.frame");
    std::fs::write(
        &frame,
        credd_proto::frame::encode_request(credd_proto::Request::LoginWait {
            source: "bedrock".into(),
        }),
    )
    .unwrap();
    let socket = crate::forwards::forward_dir(&world, "dev").join("credd.sock");
    for _ in 0..3 {
        let out = std::process::Command::new(credd_tests::bin("impostor"))
            .arg("ask")
            .args([&socket, &frame])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("signed in"));
    }
    assert_eq!(assumed(), 1);
    // The sign-in it stands on is not served there.
    let corp = crate::forwards::credd_in(&world, "dev", &["get", "corp"]);
    assert_ne!(corp.code, 0);
    assert!(corp.stdout.is_empty());
}
