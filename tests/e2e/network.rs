//! Corporate networks: upstream calls go through the proxy the environment names (tinyproxy
//! here), skip it for NO_PROXY hosts, and trust a locally generated CA given as `ca_bundle` or
//! `AWS_CA_BUNDLE` — and fail clearly without it.

use credd_tests::World;
use credd_tests::peers::{Moto, TestCa, Tinyproxy};

const CONFIG: &str = "[profile base]\nregion = us-east-1\n";
const CREDENTIALS: &str =
    "[base]\naws_access_key_id = AKIACREDDLONGTERM006\naws_secret_access_key = long-term-secret\n";
/// What moto's GetSessionToken hands out.
const MOTO_SESSION_TOKEN: &str = "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT";

fn world(moto_url: &str, source_extra: &str) -> World {
    let world = World::new().with_aws(CONFIG, CREDENTIALS, moto_url);
    world.write_config(&format!(
        "[sources.corp]\nkind = \"aws\"\nprofile = \"base\"\n{source_extra}\n"
    ));
    world
}

#[test]
fn aws_calls_use_the_proxy_and_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let moto = Moto::start_tls(&ca.server_pem, &ca.server_key);
    let moto_url = moto.url();
    // Each phase has its own proxy and stops its daemon before the next starts, so a CONNECT
    // counted in one phase cannot come from another's background retries.
    let phase_dir = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };

    // Without the CA, the upstream's certificate is refused, and the error says so.
    {
        let proxy = Tinyproxy::start(&phase_dir("untrusting"));
        let untrusting = world(&moto_url, "").with_env("HTTPS_PROXY", &proxy.url());
        let _daemon = untrusting.start_daemon();
        let out = untrusting.credd(&["get", "corp", "--format", "aws"]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr.to_lowercase().contains("certificate"),
            "{}",
            out.stderr
        );
    }

    // With the CA as the source's ca_bundle: served, through the proxy.
    {
        let proxy = Tinyproxy::start(&phase_dir("trusting"));
        let trusting = world(
            &moto_url,
            &format!("ca_bundle = \"{}\"", ca.ca_pem.display()),
        )
        .with_env("HTTPS_PROXY", &proxy.url());
        let _daemon = trusting.start_daemon();
        let creds = trusting.credd(&["get", "corp", "--format", "aws"]).json();
        assert!(
            creds["Credentials"]["SessionToken"]
                .as_str()
                .unwrap()
                .starts_with(MOTO_SESSION_TOKEN)
        );
        let relayed = proxy.connect_requests();
        assert!(
            relayed
                .iter()
                .any(|l| l.contains(&format!("CONNECT 127.0.0.1:{}", moto.port))),
            "the call did not go through the proxy: {relayed:?}"
        );
    }

    // With the CA from AWS_CA_BUNDLE and the host in NO_PROXY: served directly. The proxy
    // is this phase's own and the earlier daemons are stopped, so any CONNECT is this one's.
    {
        let proxy = Tinyproxy::start(&phase_dir("direct"));
        let direct = world(&moto_url, "")
            .with_env("AWS_CA_BUNDLE", &ca.ca_pem.display().to_string())
            .with_env("HTTPS_PROXY", &proxy.url())
            .with_env("NO_PROXY", "127.0.0.1,localhost");
        let _daemon = direct.start_daemon();
        let creds = direct.credd(&["get", "corp", "--format", "aws"]).json();
        assert!(
            creds["Credentials"]["SessionToken"]
                .as_str()
                .unwrap()
                .starts_with(MOTO_SESSION_TOKEN)
        );
        assert_eq!(
            proxy.connects(),
            0,
            "NO_PROXY was not honoured: {:?}",
            proxy.connect_requests()
        );
    }
    // Every call that reached STS was signed with the long-term key.
    let calls = moto.sts.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.signed_by.as_deref() == Some("AKIACREDDLONGTERM006")),
        "{calls:?}"
    );
}
