//! The `aws` source against moto's real STS: long-term keys become session credentials, role
//! chains and web identity resolve as the AWS CLI resolves them, and boto3 uses what credd serves.

use std::time::Duration;

use credd_tests::World;
use credd_tests::peers::{self, Moto};

const CREDENTIALS: &str = "[base]\naws_access_key_id = AKIACREDDLONGTERM001\naws_secret_access_key = credd-long-term-secret\n";

fn config(web_identity_token: &str) -> String {
    format!(
        "[profile base]\nregion = us-east-1\n\n\
         [profile mid]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/mid\nsource_profile = base\n\n\
         [profile top]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/top\nsource_profile = mid\nrole_session_name = credd-top\n\n\
         [profile wi]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/federated\nweb_identity_token_file = {web_identity_token}\nrole_session_name = credd-wi\n\n\
         [profile ci]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/ci\ncredential_source = Environment\nrole_session_name = credd-ci\n\n\
         [profile loop-a]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = loop-b\n\n\
         [profile loop-b]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/b\nsource_profile = loop-a\n"
    )
}

fn sources() -> String {
    [
        "static:base",
        "chain:top",
        "federated:wi",
        "cycle:loop-a",
        "missing:nope",
    ]
    .iter()
    .map(|s| {
        let (name, profile) = s.split_once(':').unwrap();
        format!("[sources.{name}]\nkind = \"aws\"\nprofile = \"{profile}\"\n\n")
    })
    .collect()
}

fn aws_world(moto: &Moto) -> World {
    let token_path = std::env::temp_dir().join(format!("credd-wi-{}", std::process::id()));
    std::fs::write(&token_path, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjcmVkZCJ9.").unwrap();
    let world = World::new().with_aws(
        &config(&token_path.display().to_string()),
        CREDENTIALS,
        &moto.url(),
    );
    world.write_config(&sources());
    world
}

#[test]
fn long_term_keys_become_session_credentials_with_an_expiry() {
    let moto = Moto::start();
    let world = aws_world(&moto);
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "static", "--format", "aws"]).json();
    let creds = &out["Credentials"];
    assert_ne!(
        creds["AccessKeyId"], "AKIACREDDLONGTERM001",
        "long-term key served as is"
    );
    // moto's GetSessionToken hands out this fixed session token.
    assert!(
        creds["SessionToken"]
            .as_str()
            .unwrap()
            .starts_with("AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT"),
        "{out}"
    );
    let expiration = humantime::parse_rfc3339(creds["Expiration"].as_str().unwrap()).unwrap();
    let left = expiration
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(50 * 60), "only {left:?} left");
}

#[test]
fn a_two_deep_role_chain_serves_the_credentials_moto_issued() {
    let moto = Moto::start();
    let world = aws_world(&moto);
    let _daemon = world.start_daemon();
    let creds = world
        .credd(&["get", "chain", "--format", "aws-process"])
        .json();
    assert_eq!(creds["Version"], 1);
    assert!(creds["Expiration"].is_string());
    let arn = peers::caller_arn(&moto.url(), &creds);
    assert!(arn.contains(":assumed-role/top/credd-top"), "{arn}");
    // Cached: the same credentials again.
    let again = world
        .credd(&["get", "chain", "--format", "aws-process"])
        .json();
    assert_eq!(again["AccessKeyId"], creds["AccessKeyId"]);
}

#[test]
fn web_identity_resolves_through_sts() {
    let moto = Moto::start();
    let world = aws_world(&moto);
    let _daemon = world.start_daemon();
    let creds = world
        .credd(&["get", "federated", "--format", "aws-process"])
        .json();
    let arn = peers::caller_arn(&moto.url(), &creds);
    assert!(arn.contains(":assumed-role/federated/credd-wi"), "{arn}");
}

#[test]
fn a_role_whose_credential_source_is_the_environment_is_assumed_with_the_daemons_keys() {
    let moto = Moto::start();
    // A CI runner or a VM: the keys are in the daemon's environment, the role in the profile.
    credd_tests::sigv4::trust(
        "AKIACREDDENVIRON0001",
        credd_tests::sigv4::Key {
            secret: "credd-environment-secret".into(),
            session_token: None,
        },
    );
    let world = aws_world(&moto)
        .with_env("AWS_ACCESS_KEY_ID", "AKIACREDDENVIRON0001")
        .with_env("AWS_SECRET_ACCESS_KEY", "credd-environment-secret");
    world.write_config("[sources.ci]\nkind = \"aws\"\nprofile = \"ci\"\n");
    let daemon = world.start_daemon();
    let creds = world
        .credd(&["get", "ci", "--format", "aws-process"])
        .json();
    let arn = peers::caller_arn(&moto.url(), &creds);
    assert!(arn.contains(":assumed-role/ci/credd-ci"), "{arn}");
    assert_ne!(creds["AccessKeyId"], "AKIACREDDENVIRON0001");
    assert!(!daemon.log().contains("credd-environment-secret"));

    // Without keys in the environment the error says where they were looked for.
    let world = aws_world(&moto);
    world.write_config("[sources.ci]\nkind = \"aws\"\nprofile = \"ci\"\n");
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "ci", "--format", "aws"]);
    assert_eq!(out.code, 8, "missing keys are a misconfiguration: {out:?}");
    assert!(out.stderr.contains("profile `ci`"), "{}", out.stderr);
    assert!(
        out.stderr.to_lowercase().contains("environment"),
        "{}",
        out.stderr
    );
}

#[test]
fn boto3_uses_credd_as_its_credential_process() {
    let moto = Moto::start();
    let world = aws_world(&moto);
    let _daemon = world.start_daemon();
    let credd = credd_tests::bin("credd");
    let boto_config = world.path("boto-config");
    std::fs::write(
        &boto_config,
        format!(
            "[profile via-credd]\nregion = us-east-1\ncredential_process = {} get chain --format aws-process\n",
            credd.display()
        ),
    )
    .unwrap();
    let script = r#"
import sys, boto3
session = boto3.Session(profile_name="via-credd")
print(session.client("sts", endpoint_url=sys.argv[1]).get_caller_identity()["Arn"])
"#;
    let arn = peers::run_python(script, &[&moto.url()], |cmd| {
        world.isolate(cmd);
        cmd.env("AWS_CONFIG_FILE", &boto_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    });
    assert!(arn.contains(":assumed-role/top/credd-top"), "{arn}");
}

#[test]
fn an_unknown_profile_lists_the_known_ones() {
    let moto = Moto::start();
    let world = aws_world(&moto);
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "missing", "--format", "aws"]);
    assert_eq!(out.code, 8, "a misconfigured source: {out:?}");
    assert!(out.stderr.contains("is misconfigured"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("no profile `nope`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("base") && out.stderr.contains("top"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_profile_chain_with_a_cycle_is_an_error_not_a_hang() {
    let moto = Moto::start();
    let world = aws_world(&moto);
    let _daemon = world.start_daemon();
    let out = world.credd(&["get", "cycle", "--format", "aws"]);
    assert_eq!(out.code, 8, "a cycle is a misconfiguration: {out:?}");
    assert!(
        out.stderr.to_lowercase().contains("loop") || out.stderr.contains("cycle"),
        "{}",
        out.stderr
    );
}

#[test]
fn aws_credentials_are_never_handed_out_with_less_than_fifteen_minutes_left() {
    let moto = Moto::start();
    let world = aws_world(&moto).with_env("CREDD_TEST_CLOCK", "1");
    let _daemon = world.start_daemon();
    let first = world.credd(&["get", "chain", "--format", "aws"]).json();
    // moto's role credentials live an hour; 46 minutes on, fewer than 15 are left.
    world.advance_clock(46 * 60);
    let later = world
        .credd(&["get", "chain", "--format", "aws", "--min-valid", "1m"])
        .json();
    assert_ne!(
        later["Credentials"]["AccessKeyId"], first["Credentials"]["AccessKeyId"],
        "credentials with under 15 minutes left were handed out"
    );
}

#[test]
fn sts_failures_keep_serving_valid_credentials_without_a_storm() {
    use credd_tests::fault_proxy::{Fault, FaultProxy};
    let moto = Moto::start();
    let sts = FaultProxy::start(moto.port);
    let world = aws_world(&moto)
        .with_env("AWS_ENDPOINT_URL_STS", &sts.url())
        .with_env("CREDD_TEST_CLOCK", "1");
    world.write_config(&sources().replace(
        "profile = \"top\"\n",
        "profile = \"top\"\ntimeout = \"3s\"\n",
    ));
    let _daemon = world.start_daemon();
    let first = world.credd(&["get", "chain", "--format", "aws"]).json();
    let healthy_calls = sts.requests();
    assert!(
        healthy_calls >= 2,
        "the chain went past the proxy ({healthy_calls} calls)"
    );

    let faults = [
        (Fault::ServerError, "InternalFailure"),
        (Fault::Throttle, "Throttling"),
        (Fault::Reset, "dispatch failure"),
        (Fault::Garbage, "unhandled error"),
        (Fault::ExpiredOnArrival, "already expired"),
        (Fault::Hang, "took longer than 3s"),
    ];
    let mut cached = first["Credentials"]["AccessKeyId"].clone();
    for (fault, expected) in faults {
        // Counted from before the clock moves: moving it wakes the background refresh, whose
        // call belongs to this fault.
        let before = sts.requests();
        sts.set(fault);
        // 31 minutes on, the hour-long credentials are past the half of their life that a
        // caller wanting 45 minutes accepts, so credd asks STS, which fails; with 29 minutes
        // left they are still served.
        world.advance_clock(31 * 60);
        for _ in 0..5 {
            let served = world
                .credd(&["get", "chain", "--format", "aws", "--min-valid", "45m"])
                .json();
            assert_eq!(served["Credentials"]["AccessKeyId"], cached, "{fault:?}");
        }
        let calls = sts.requests() - before;
        // One refresh attempt (the SDK retries it a few times), then backoff: no storm.
        assert!(
            (1..=4).contains(&calls),
            "{fault:?}: {calls} STS calls for 5 gets"
        );
        let status = world.source_status("chain");
        assert_eq!(status["state"], "failing", "{status}");
        let error = status["last_error"].as_str().unwrap();
        assert!(error.contains(expected), "{fault:?}: {error}");

        // The upstream recovers; so does the source, by itself, and the next fault starts
        // from a fresh credential with no backoff left over.
        sts.set(Fault::None);
        world.eventually(Duration::from_secs(30), "recovery", || {
            world.advance_clock(30);
            world.source_status("chain")["state"] == "fresh"
        });
        let renewed = world.credd(&["get", "chain", "--format", "aws"]).json();
        assert_ne!(renewed["Credentials"]["AccessKeyId"], cached, "{fault:?}");
        cached = renewed["Credentials"]["AccessKeyId"].clone();
    }
}

/// STS's clock ten minutes off either way: credd keeps the credentials for their true life
/// (the `Expiration` STS states, less the difference its `Date` header shows), so it neither
/// serves them after STS stops accepting them nor refreshes them early; `status` says so.
#[test]
fn an_sts_clock_ten_minutes_off_is_corrected() {
    use credd_tests::fault_proxy::FaultProxy;
    for offset in [600, -600] {
        let moto = Moto::start();
        let sts = FaultProxy::start(moto.port);
        sts.set_clock_offset(offset);
        let world = aws_world(&moto)
            .with_env("AWS_ENDPOINT_URL_STS", &sts.url())
            .with_env("CREDD_TEST_CLOCK", "1");
        let _daemon = world.start_daemon();
        // moto's role credentials live an hour.
        let first = world.assert_lifetime_and_clock_offset("chain", "aws", 3600, offset);
        let key = |out: &credd_tests::Output| out.json()["Credentials"]["AccessKeyId"].clone();
        let calls = sts.requests();

        // 40 minutes on, 20 are truly left: still served, and STS is not asked. (Trusting an
        // STS clock that is behind, credd would see 10 left and refresh.)
        world.advance_clock(40 * 60);
        let later = world.credd(&["get", "chain", "--format", "aws"]);
        assert_eq!(key(&later), key(&first), "clock {offset:+}s");
        assert_eq!(sts.requests(), calls, "clock {offset:+}s: refreshed early");

        // 46 minutes on, 14 are truly left, under the 15 AWS callers need: new credentials.
        // (Trusting an STS clock that is ahead, credd would see 24 left and serve the old.)
        world.advance_clock(6 * 60);
        let last = world.credd(&["get", "chain", "--format", "aws"]);
        assert_ne!(
            key(&last),
            key(&first),
            "clock {offset:+}s: served past their life"
        );
    }
}

#[test]
fn a_credential_process_profile_is_served_with_its_expiry() {
    let moto = Moto::start();
    let world = World::new();
    let helper = world.path("company-sso-helper.sh");
    std::fs::write(
        &helper,
        "#!/bin/sh\necho run >> \"$0.runs\"\necho '{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS0001\", \"SecretAccessKey\": \"process-secret\", \"SessionToken\": \"process-session\", \"Expiration\": \"2099-01-01T00:00:00Z\"}'\n",
    )
    .unwrap();
    credd_tests::world::make_executable(&helper);
    let world = world.with_aws(
        &format!(
            "[profile tool]\nregion = us-east-1\ncredential_process = {}\n",
            helper.display()
        ),
        "",
        &moto.url(),
    );
    world.write_config("[sources.tool]\nkind = \"aws\"\nprofile = \"tool\"\n");
    let _daemon = world.start_daemon();
    let creds = world.credd(&["get", "tool", "--format", "aws"]).json();
    assert_eq!(creds["Credentials"]["AccessKeyId"], "ASIAPROCESS0001");
    assert_eq!(creds["Credentials"]["SessionToken"], "process-session");
    // Stated for 2099, kept for a day at most, as a stated lifetime is.
    let expiry =
        humantime::parse_rfc3339(creds["Credentials"]["Expiration"].as_str().unwrap()).unwrap();
    let left = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((23 * 3600..=24 * 3600 + 60).contains(&left), "{left}s");
    world.credd(&["get", "tool", "--format", "aws"]).ok();
    let runs = std::fs::read_to_string(world.path("company-sso-helper.sh.runs")).unwrap();
    assert_eq!(
        runs.lines().count(),
        1,
        "the profile's process ran again for a cached credential"
    );
}

#[test]
fn a_role_chain_rooted_in_a_credential_process_is_assumed_from_what_credd_ran() {
    let moto = Moto::start();
    let world = World::new();
    // The process hands out long-term keys that STS knows, as a company's vault would.
    credd_tests::sigv4::trust_credentials_file(
        "[vault]\naws_access_key_id = AKIACREDDVAULT0001\naws_secret_access_key = vault-secret\n",
    );
    let helper = world.script(
        "vault.sh",
        &format!(
            "echo run >> '{}'\necho '{{\"Version\": 1, \"AccessKeyId\": \"AKIACREDDVAULT0001\", \"SecretAccessKey\": \"vault-secret\"}}'\n",
            world.path("vault.runs").display()
        ),
    );
    let world = world.with_aws(
        &format!(
            "[profile vault]\nregion = us-east-1\ncredential_process = {}\n\n\
             [profile app]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/app\nsource_profile = vault\nrole_session_name = credd-app\nexternal_id = credd-ext\n",
            helper.display()
        ),
        "",
        &moto.url(),
    );
    world.write_config("[sources.app]\nkind = \"aws\"\nprofile = \"app\"\n");
    let _daemon = world.start_daemon();
    let creds = world
        .credd(&["get", "app", "--format", "aws-process"])
        .json();
    let arn = peers::caller_arn(&moto.url(), &creds);
    assert!(arn.contains(":assumed-role/app/credd-app"), "{arn}");
    let runs = std::fs::read_to_string(world.path("vault.runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the vault command ran {runs:?}");
    // STS was asked by the vault's key, for the role, with the profile's external id.
    let calls = moto.sts.calls();
    let assume = calls
        .iter()
        .find(|c| c.action == "AssumeRole")
        .expect("an AssumeRole call");
    assert_eq!(assume.signed_by.as_deref(), Some("AKIACREDDVAULT0001"));
    assert_eq!(
        assume.params.get("RoleArn").map(String::as_str),
        Some("arn:aws:iam::123456789012:role/app")
    );
    assert_eq!(
        assume.params.get("ExternalId").map(String::as_str),
        Some("credd-ext")
    );
}
