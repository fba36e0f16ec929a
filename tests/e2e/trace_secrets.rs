//! No secret an upstream issues, that credd is configured with, or that a person types reaches
//! anything credd writes or prints, even with `CREDD_LOG=trace`: not the daemon's log, not
//! `status`, not an error, not any file in the world but the credential files it was given.
//! The HTTP stacks under credd print whole requests at trace level (aws-smithy's "transmitting
//! request" line showed the `x-amz-sso_bearer_token` header), so the daemon caps their events at
//! debug whatever `CREDD_LOG` asks for; and upstreams that quote a request back in their error
//! have their words redacted. One test per provider, every way it signs in, each calling its
//! upstream at least twice, then once more against an upstream that echoes the request.

use std::path::PathBuf;
use std::time::Duration;

use credd_tests::entra::{self, EntraUpstream};
use credd_tests::google::{self, GoogleUpstream};
use credd_tests::peers::{Moto, TestCa};
use credd_tests::{Daemon, Output, World};
use serde_json::{Value, json};

use crate::{aws_mfa, aws_sso, entra_source, gcp_source};

/// Asks every process of `world` for the finest log level (`World::new` set `debug`; the later
/// entry wins).
fn log_at_trace(world: &mut World) {
    world.env.push(("CREDD_LOG".into(), "trace".into()));
}

/// What one test saw: the daemon's log and everything `credd` printed.
struct Seen<'a> {
    world: &'a World,
    log: String,
    printed: Vec<String>,
}

impl<'a> Seen<'a> {
    fn new(world: &'a World) -> Self {
        Seen {
            world,
            log: String::new(),
            printed: Vec::new(),
        }
    }

    /// Runs `credd ARGS`, keeps what it printed, and returns it.
    fn credd(&mut self, args: &[&str]) -> Output {
        let out = self.world.credd(args);
        self.printed.push(out.stdout.clone());
        self.printed.push(out.stderr.clone());
        out
    }

    /// Keeps both forms of `status`.
    fn status(&mut self) {
        self.credd(&["status"]).ok();
        self.credd(&["status", "--json"]).ok();
    }

    /// With the upstream echoing requests: moves the clock on, refreshes every source in
    /// `names` (each must fail), keeps `status`, and reads the log, which must hold `echoed`
    /// (the upstream's refusal, so the echo was met).
    fn refresh_against_echo(&mut self, names: &[&str], daemon: &Daemon, echoed: &str) {
        self.world.advance_clock(58 * 60);
        for name in names {
            let out = self.credd(&["refresh", name]);
            assert_ne!(out.code, 0, "{name}: the echoing upstream was not asked");
        }
        self.status();
        self.log = daemon.log();
        assert!(
            self.log.contains(echoed),
            "the echoed refusals are not in the log"
        );
    }

    /// Fails, naming `what` and where, if any of `secrets` is in the log, in what credd
    /// printed other than on stdout of a `get` that served it (`served` lists those), or in
    /// any file of the world but `inputs` (the credential files the test wrote). Shows where
    /// with the secret masked, never the secret itself.
    fn assert_nowhere(&self, secrets: &[(String, &str)], served: &[String], inputs: &[PathBuf]) {
        assert!(
            self.log.contains("DEBUG"),
            "debug logging was not on ({} lines of log)",
            self.log.lines().count()
        );
        for (secret, what) in secrets {
            assert!(secret.len() >= 6, "no {what} to look for");
            if let Some(line) = self.log.lines().find(|l| l.contains(secret.as_str())) {
                panic!(
                    "{what} is in the daemon log: {}",
                    line.replace(secret.as_str(), "<SECRET>")
                );
            }
            for text in &self.printed {
                if text.contains(secret.as_str()) && !served.contains(text) {
                    panic!(
                        "{what} was printed: {}",
                        text.replace(secret.as_str(), "<SECRET>")
                    );
                }
            }
            let files: Vec<_> = self
                .world
                .files_containing(secret)
                .into_iter()
                .filter(|f| !inputs.contains(f))
                .collect();
            assert!(files.is_empty(), "{what} was written to {files:?}");
        }
    }
}

#[test]
fn aws_sso_secrets_stay_out_of_trace_logs_files_and_output() {
    let mut t = aws_sso::sso_world();
    log_at_trace(&mut t.world);
    // As `aws sso login` left it, five minutes to go: credd renews it with its refresh token,
    // then sends the new access token to GetRoleCredentials in the header that once leaked.
    let issued = t.sso.issue_session();
    aws_sso::write_cli_cache(
        &t.world,
        &issued.access_token,
        &issued.refresh_token,
        Duration::from_secs(300),
    );
    let daemon = t.world.start_daemon();
    let mut seen = Seen::new(&t.world);

    let first = seen.credd(&["get", "dev", "--format", "aws"]);
    seen.credd(&["refresh", "dev"]).ok();
    let second = seen.credd(&["get", "dev", "--format", "aws"]);
    seen.status();
    assert!(t.sso.calls("CreateToken:refresh_token") >= 1);
    assert!(t.sso.calls("GetRoleCredentials") >= 2);

    let mut secrets = vec![
        (issued.access_token.clone(), "the seeded SSO access token"),
        (issued.refresh_token.clone(), "the seeded SSO refresh token"),
        (issued.client_secret.clone(), "the SSO client secret"),
    ];
    for creds in [first.json(), second.json()] {
        for key in ["SecretAccessKey", "SessionToken"] {
            let value = creds["Credentials"][key].as_str().unwrap_or_default();
            secrets.push((value.to_string(), key));
        }
    }
    // The token file is the AWS CLI's, shared on purpose: the renewed tokens belong there
    // and nowhere else.
    let cache = aws_sso::cache_file(&t.world);
    let file: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_ne!(
        file["accessToken"],
        issued.access_token.as_str(),
        "the token file was not renewed"
    );
    for (key, what) in [
        ("accessToken", "the renewed SSO access token"),
        ("refreshToken", "the renewed SSO refresh token"),
    ] {
        if let Some(value) = file[key].as_str() {
            secrets.push((value.to_string(), what));
        }
    }

    seen.log = daemon.log();
    assert!(
        seen.log.contains("aws_smithy_runtime"),
        "the AWS SDK's debug lines are missing from the log"
    );
    seen.assert_nowhere(&secrets, &[first.stdout, second.stdout], &[cache]);
}

/// A role with MFA over a long-term key: the key's secret, the code typed and the session STS
/// issued for it.
#[test]
fn aws_sts_and_mfa_secrets_stay_out_of_trace_logs_files_and_output() {
    let moto = Moto::start();
    let mut world = World::new().with_aws(aws_mfa::CONFIG, aws_mfa::CREDENTIALS, &moto.url());
    log_at_trace(&mut world);
    world.write_config("[sources.admin]\nkind = \"aws\"\nprofile = \"admin\"\n");
    // Six digits that no timestamp or counter in the log is likely to hold next to a
    // non-digit on both sides.
    let code = "907153";
    moto.sts.set_mfa_code(aws_mfa::SERIAL, code);
    let daemon = world.start_daemon();
    let mut seen = Seen::new(&world);

    let (exit, shown) = aws_mfa::login_on_a_terminal(&world, code);
    assert_eq!(exit, 0, "{shown}");
    let served = seen.credd(&["get", "admin", "--format", "aws-process"]);
    let env = seen.credd(&["get", "admin", "--format", "env"]);
    env.ok();
    seen.status();
    let creds = served.json();

    seen.log = daemon.log();
    let secrets = [
        ("long-term-secret".to_string(), "the long-term secret key"),
        (
            creds["SecretAccessKey"].as_str().unwrap().to_string(),
            "the session's secret key",
        ),
        (
            creds["SessionToken"].as_str().unwrap().to_string(),
            "the session token",
        ),
    ];
    seen.assert_nowhere(
        &secrets,
        &[served.stdout.clone(), env.stdout.clone()],
        &[world.home.join(".aws/credentials")],
    );
    // The code, as a word of its own (not inside a longer number such as a timestamp).
    let as_word = |text: &str| {
        text.match_indices(code).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + code.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
                && !after.is_some_and(|c| c.is_ascii_digit())
        })
    };
    assert!(!as_word(&seen.log), "the MFA code is in the daemon log");
    assert!(
        seen.printed.iter().all(|p| !as_word(p)),
        "the MFA code was printed"
    );
    let sts_calls = moto.sts.calls();
    assert!(
        sts_calls
            .iter()
            .any(|c| c.params.get("TokenCode").map(String::as_str) == Some(code)),
        "the code never reached STS: {sts_calls:?}"
    );
}

#[test]
fn gcp_secrets_stay_out_of_trace_logs_files_and_output_even_when_echoed() {
    let keys = tempfile::tempdir().unwrap();
    let upstream = GoogleUpstream::start();
    let mut world = World::new().with_env("CREDD_TEST_CLOCK", "1");
    log_at_trace(&mut world);
    // A user's login (refresh token), a service account key (signed JWT), and a federated
    // identity exchanged at STS and impersonating a service account.
    let user = gcp_source::authorized_user(&upstream, gcp_source::REFRESH_TOKEN);
    let sa = gcp_source::service_account_key(&upstream, keys.path());
    let subject_token = "eyJ.credd-federated-subject-token-5e1d";
    let audience =
        "//iam.googleapis.com/projects/9/locations/global/workloadIdentityPools/p/providers/x";
    let token_type = "urn:ietf:params:oauth:token-type:jwt";
    upstream.accept_subject_token(subject_token, audience, token_type);
    let account = "federated@credd-test.iam.gserviceaccount.com";
    upstream.allow_impersonation(account);
    let subject_file = keys.path().join("subject-token");
    std::fs::write(&subject_file, subject_token).unwrap();
    let federated = json!({
        "type": "external_account",
        "audience": audience,
        "subject_token_type": token_type,
        "token_url": upstream.token_url(),
        "credential_source": { "file": subject_file },
        "service_account_impersonation_url": upstream.impersonation_url(account),
    });
    let mut config = String::new();
    for (name, credential) in [("user", &user), ("sa", &sa), ("federated", &federated)] {
        let file = keys.path().join(format!("{name}.json"));
        std::fs::write(&file, credential.to_string()).unwrap();
        config += &format!(
            "[sources.{name}]\nkind = \"gcp\"\ncredentials_file = \"{}\"\n\n",
            file.display()
        );
    }
    world.write_config(&config);
    let daemon = world.start_daemon();
    let mut seen = Seen::new(&world);

    let names = ["user", "sa", "federated"];
    let mut served = Vec::new();
    for name in names {
        served.push(seen.credd(&["get", name]).ok().to_string());
        seen.credd(&["refresh", name]).ok();
        served.push(seen.credd(&["get", name]).ok().to_string());
    }
    assert!(upstream.calls(google::REFRESH) >= 2);
    assert!(upstream.calls(google::JWT_BEARER) >= 2);
    assert!(upstream.calls(google::TOKEN_EXCHANGE) >= 2);
    assert!(upstream.calls(google::GENERATE_ACCESS_TOKEN) >= 2);

    // Now the upstream quotes every request back in its refusal.
    upstream.set_fault(google::Fault::EchoRequest);
    seen.refresh_against_echo(&names, &daemon, "Invalid request");

    let private_key = sa["private_key"].as_str().unwrap();
    // Not the first line of base64: that is the same ASN.1 header in every RSA key.
    let key_line = private_key.lines().nth(3).unwrap().to_string();
    let mut secrets = vec![
        (gcp_source::REFRESH_TOKEN.to_string(), "the refresh token"),
        (
            gcp_source::CLIENT_SECRET.to_string(),
            "the OAuth client secret",
        ),
        (key_line, "the service account's private key"),
        (subject_token.to_string(), "the federated subject token"),
    ];
    for token in upstream.issued() {
        secrets.push((token, "an issued access token"));
    }
    seen.assert_nowhere(&secrets, &served, &[]);
}

#[test]
fn entra_secrets_stay_out_of_trace_logs_files_and_output_even_when_echoed() {
    let keys = tempfile::tempdir().unwrap();
    let ca = TestCa::create(keys.path());
    let upstream = EntraUpstream::start(&ca);
    let (secret_app, cert_app, public_app) = (
        entra_source::CLIENT_ID,
        "5a0c9e21-0000-4000-8000-0000000ce47e",
        "6b1d0f32-0000-4000-8000-00000000de71",
    );
    upstream.register_secret(secret_app, entra_source::CLIENT_SECRET, false);
    let secret_file = keys.path().join("client-secret");
    std::fs::write(&secret_file, entra_source::CLIENT_SECRET).unwrap();
    let (pem, public, thumbprint) = entra::app_certificate(keys.path());
    upstream.register_certificate(cert_app, &public, &thumbprint);
    upstream.register_public(public_app);
    let mut world = World::new()
        .with_env("SSL_CERT_FILE", &ca.ca_pem.display().to_string())
        .with_env("AZURE_AUTHORITY_HOST", &upstream.authority())
        .with_env("CREDD_TEST_CLOCK", "1")
        .with_env("CREDD_NO_BROWSER", "1");
    log_at_trace(&mut world);
    let tenant = entra::TENANT;
    world.write_config(&format!(
        "[sources.secret]\nkind = \"entra\"\nmethod = \"client-secret\"\ntenant_id = \"{tenant}\"\nclient_id = \"{secret_app}\"\nclient_secret_file = \"{}\"\n\n\
         [sources.cert]\nkind = \"entra\"\nmethod = \"client-certificate\"\ntenant_id = \"{tenant}\"\nclient_id = \"{cert_app}\"\ncertificate = \"{}\"\n\n\
         [sources.device]\nkind = \"entra\"\nmethod = \"device-code\"\ntenant_id = \"{tenant}\"\nclient_id = \"{public_app}\"\n",
        secret_file.display(),
        pem.display()
    ));
    let daemon = world.start_daemon();
    let mut seen = Seen::new(&world);

    seen.credd(&["login", "device"]).ok();
    let names = ["secret", "cert", "device"];
    let mut served = Vec::new();
    for name in names {
        served.push(seen.credd(&["get", name]).ok().to_string());
        seen.credd(&["refresh", name]).ok();
        served.push(seen.credd(&["get", name]).ok().to_string());
    }
    assert!(upstream.calls("client_secret") >= 2);
    assert!(upstream.calls("client_assertion") >= 2);
    assert!(upstream.calls("refresh_token") >= 1);

    upstream.set_fault(entra::Fault::EchoRequest);
    seen.refresh_against_echo(&names, &daemon, "AADSTS900144");

    let key = std::fs::read_to_string(&pem).unwrap();
    let key_line = key
        .lines()
        .skip_while(|l| !l.contains("PRIVATE KEY"))
        .nth(3)
        .unwrap()
        .to_string();
    let mut secrets = vec![
        (entra_source::CLIENT_SECRET.to_string(), "the client secret"),
        (key_line, "the certificate's private key"),
    ];
    for token in upstream.issued() {
        secrets.push((token, "an issued access token"));
    }
    for token in upstream.refresh_tokens() {
        secrets.push((token, "an issued refresh token"));
    }
    seen.assert_nowhere(&secrets, &served, &[]);
}

#[test]
fn oidc_secrets_stay_out_of_trace_logs_files_and_output() {
    use credd_tests::oidc::{OidcProvider, Options};
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path(), &Options::default());
    let (_, path) = provider.person_browser(dir.path(), "alice", &["--stop-at-redirect"]);
    let mut world = World::new().with_env("PATH", &path);
    log_at_trace(&mut world);
    world.write_config(&provider.source_table("corp", ""));
    let daemon = world.start_daemon();
    let mut seen = Seen::new(&world);

    let login = world.spawn_credd(&["login", "corp"], |_| {});
    let redirect = crate::oidc::person_saw_line(dir.path(), "http://127.0.0.1:");
    let query: std::collections::BTreeMap<String, String> =
        form_urlencoded::parse(redirect.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    assert!(crate::oidc::get(&redirect, false).starts_with("HTTP/1.1 200"));
    let out = login.wait_with_output().unwrap();
    seen.printed
        .push(String::from_utf8_lossy(&out.stdout).into_owned());
    seen.printed
        .push(String::from_utf8_lossy(&out.stderr).into_owned());

    let first = seen.credd(&["get", "corp"]);
    std::thread::sleep(Duration::from_millis(1100));
    seen.credd(&["refresh", "corp"]).ok();
    let second = seen.credd(&["get", "corp"]);
    seen.status();
    assert_eq!(provider.grants("refresh_token"), 1);
    seen.log = daemon.log();
    let secrets = vec![
        (query["code"].clone(), "the authorization code"),
        (first.stdout.trim().to_string(), "the first ID token"),
        (second.stdout.trim().to_string(), "the renewed ID token"),
    ];
    // (The state is no secret: it is in the page's URL the person is shown.)
    assert_ne!(secrets[1].0, secrets[2].0);
    seen.assert_nowhere(&secrets, &[first.stdout, second.stdout], &[]);
}
