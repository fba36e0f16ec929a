//! The Python path a helper would otherwise run (boto3, google-auth, azure-identity loading the
//! same credentials), against a cached `credd get`.

use std::process::{Command, Stdio};
use std::time::Duration;

use credd_tests::World;

use crate::timing::{print_ratio, report, time_runs};

/// Google and Entra tokens: a cached `credd get` against what a helper would otherwise run, the
/// Python library getting a token from the same credentials (from the same local upstreams the
/// tests use: oauth2-mock-server behind the Google and Entra shims).
pub fn providers(runs: usize, floor: &[Duration]) {
    use credd_tests::entra::{EntraUpstream, TENANT};
    use credd_tests::google::GoogleUpstream;
    use credd_tests::peers::TestCa;

    println!("\n## tokens: cached credd get against the Python library ({runs} runs, python 30)");
    let python = credd_tests::peers::python();
    let has = |module: &str| {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    let mock = credd_tests::peers_dir().join("node_modules/oauth2-mock-server");
    if !mock.exists() || !has("google.auth") || !has("azure.identity") {
        println!("  not measured: run the README's test command first (it installs the peers)");
        return;
    }
    let time_credd = |world: &World, source: &str| {
        time_runs(runs, || {
            world
                .credd_command(&["get", source])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        })
    };
    let time_python = |code: &str, env: &[(&str, String)]| {
        time_runs(30, || {
            Command::new(&python)
                .args(["-c", code])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        })
    };

    let google = GoogleUpstream::start();
    // The login the file holds, as the upstream granted it.
    google.grant_refresh_token("c", "s", "r");
    let world = World::new().with_env("CREDD_LOG", "warn");
    let adc = world.path("adc.json");
    std::fs::write(
        &adc,
        serde_json::json!({"type": "authorized_user", "client_id": "c", "client_secret": "s",
            "refresh_token": "r", "token_uri": google.token_url()})
        .to_string(),
    )
    .unwrap();
    world.write_config(&format!(
        "[sources.vertex]\nkind = \"gcp\"\ncredentials_file = \"{}\"\n",
        adc.display()
    ));
    let _gcp_daemon = world.start_daemon();
    world.credd(&["get", "vertex"]).ok();
    let credd = time_credd(&world, "vertex");
    let python_gcp = time_python(
        // google-auth always sends authorized_user refreshes to Google's own endpoint
        // (it ignores the file's token_uri), so the local one is named explicitly.
        "import os, google.auth, google.auth.transport.requests as r\n\
         c, _ = google.auth.load_credentials_from_file(os.environ['ADC'])\n\
         c = c.with_token_uri(os.environ['TOKEN_URI'])\n\
         c.refresh(r.Request()); print(c.token)",
        &[
            ("ADC", adc.display().to_string()),
            ("TOKEN_URI", google.token_url()),
        ],
    );
    assert_eq!(
        world.source_status("vertex")["upstream_calls"],
        1,
        "credd asked Google once"
    );
    report("credd get vertex (gcp)", &credd, Some(floor));
    report(
        "python3 google-auth (file + refresh)",
        &python_gcp,
        Some(floor),
    );
    print_ratio("google-auth / credd", &python_gcp, &credd);

    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path());
    let entra = EntraUpstream::start(&ca);
    let client = "3c1d2e4f-0000-4000-8000-0000000be0c4";
    entra.register_secret(client, "bench-secret", false);
    let world = World::new()
        .with_env("CREDD_LOG", "warn")
        .with_env("SSL_CERT_FILE", &ca.ca_pem.display().to_string())
        .with_env("AZURE_CLIENT_SECRET", "bench-secret");
    world.write_config(&format!(
        "[sources.foundry]\nkind = \"entra\"\nmethod = \"client-secret\"\nauthority = \"{}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{client}\"\n",
        entra.authority()
    ));
    let _entra_daemon = world.start_daemon();
    world.credd(&["get", "foundry"]).ok();
    let credd = time_credd(&world, "foundry");
    let python_entra = time_python(
        "import os\nfrom azure.identity import ClientSecretCredential as C\n\
         c = C(os.environ['T'], os.environ['CID'], 'bench-secret', authority=os.environ['AUTH'], disable_instance_discovery=True)\n\
         print(c.get_token('https://cognitiveservices.azure.com/.default').token)",
        &[
            ("T", TENANT.to_string()),
            ("CID", client.to_string()),
            ("AUTH", entra.authority()),
            ("REQUESTS_CA_BUNDLE", ca.ca_pem.display().to_string()),
        ],
    );
    report("credd get foundry (entra)", &credd, Some(floor));
    report(
        "python3 azure-identity (secret)",
        &python_entra,
        Some(floor),
    );
    print_ratio("azure-identity / credd", &python_entra, &credd);
    assert_eq!(
        world.source_status("foundry")["upstream_calls"],
        1,
        "credd asked Entra once"
    );
}

/// boto3 loading static credentials from a profile: what `credential_process` or an SDK costs
/// in Python before any request is made.
pub fn boto3_command(world: &World) -> Option<impl FnMut() -> Command> {
    let python = std::env::var("CREDD_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import boto3"])
        .status()
        .ok()?;
    if !probe.success() {
        return None;
    }
    let config = world.path("aws-config");
    std::fs::write(
        &config,
        "[profile bench]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\nregion = us-east-1\n",
    )
    .unwrap();
    let python_code = "import boto3; c = boto3.Session(profile_name='bench').get_credentials().get_frozen_credentials(); print(c.access_key, c.secret_key, c.token)";
    Some(move || {
        let mut cmd = Command::new(&python);
        cmd.args(["-c", python_code])
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .stdout(Stdio::null());
        cmd
    })
}
