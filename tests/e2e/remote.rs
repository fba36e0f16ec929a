//! `credd ssh` against a real OpenSSH server on 127.0.0.1, logging in as a second local
//! account that stands for the remote user: on the remote, the real Claude Code reaches Bedrock
//! through the forwarded proxy socket (the stub checks each SigV4 signature), boto3 gets
//! credentials through `credential_process` over the forwarded client socket, and none is
//! written there; when the session ends its sockets go, and the client there says so.

use std::path::Path;

use credd_tests::World;
use credd_tests::model_api::{self, ModelApi};
use credd_tests::peers::Moto;
use credd_tests::sshd::{self, Sshd};

/// A world with an aws source `bedrock` (a role moto issues, proxied to `api`), an exec source
/// `gateway` (its command `gw`), and the forward `dev` (`forward`: its table's body), its
/// daemon running.
pub(crate) fn bedrock_world(
    moto: &Moto,
    api: &ModelApi,
    forward: &str,
) -> (World, credd_tests::world::Daemon) {
    let world = World::new().with_aws(
        "[profile base]\nregion = us-east-1\n\n[profile bedrock]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/bedrock-user\nsource_profile = base\n",
        "[base]\naws_access_key_id = AKIACREDDLONGTERM012\naws_secret_access_key = long-term-secret\n",
        &moto.url(),
    );
    let gateway = world.counting_command("gw", "sk-forwarded-gateway");
    world.write_config(&format!(
        "[sources.bedrock]\nkind = \"aws\"\nprofile = \"bedrock\"\nregion = \"us-east-1\"\nproxy = {{ upstream = \"{}\" }}\n\n{}\n[forwards.dev]\n{forward}",
        api.url(),
        crate::exec_config("gateway", &gateway, ""),
    ));
    let daemon = world.start_daemon();
    (world, daemon)
}

/// Runs `script` on the remote through `credd ssh` (the forward `dev`), with the test's
/// remote directory as HOME and its `credd` first on PATH.
fn credd_ssh(world: &World, sshd: &Sshd, home: &Path, script: &str) -> credd_tests::world::Output {
    let mut args = vec!["ssh".to_string(), sshd.destination()];
    args.extend(sshd.options());
    args.push("--".into());
    args.push(format!(
        "export HOME={h} PATH={h}/bin:$PATH TERM=dumb; cd {h} && {script}",
        h = home.display()
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    world.credd(&args)
}

#[test]
fn claude_code_and_boto3_on_a_remote_get_credentials_through_credd_ssh() {
    if !credd_tests::other_user::available(
        "claude_code_and_boto3_on_a_remote_get_credentials_through_credd_ssh",
    ) {
        return;
    }
    let moto = Moto::start();
    let api = ModelApi::start();
    let (world, _daemon) = bedrock_world(&moto, &api, "sources = [\"bedrock\", \"gateway\"]\n");
    let sshd = Sshd::start(world.dir.path());
    let name = world
        .dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let home = sshd::remote_workdir(&name);

    // Claude Code, set up on the remote by credd there (through the forward), on the proxy
    // route: it holds no credential, and each request is signed on this side.
    let claude = credd_tests::claude_bin();
    let out = credd_ssh(
        &world,
        &sshd,
        &home,
        &format!(
            "credd setup claude-code bedrock --via proxy >setup.log 2>&1 && CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 {} -p 'say hi' </dev/null",
            claude.display()
        ),
    );
    assert_eq!(
        out.code,
        0,
        "{out:?}\nsetup: {}\nsshd: {}",
        std::fs::read_to_string(home.join("setup.log")).unwrap_or_default(),
        sshd.log()
    );
    assert!(out.stdout.contains(model_api::REPLY), "{out:?}");
    let messages = api.messages();
    assert!(!messages.is_empty());
    for m in &messages {
        let auth = m.header("authorization").unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIA"),
            "{auth}"
        );
    }
    let settings = std::fs::read_to_string(home.join(".claude/settings.json")).unwrap();
    assert!(settings.contains("bedrock.credd.localhost"), "{settings}");

    // Claude Code on a gateway through apiKeyHelper: `credd get` over the forwarded socket.
    // (A helper route, so Claude Code starts without the proxy socket, as on the host.)
    let helper_home = sshd::remote_workdir(&format!("{name}-helper"));
    let out = credd_ssh(
        &world,
        &sshd,
        &helper_home,
        &format!(
            "credd setup claude-code gateway --base-url {} >setup.log 2>&1 && CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 env -u ANTHROPIC_UNIX_SOCKET {} -p 'say hi' </dev/null",
            api.url(),
            claude.display()
        ),
    );
    let log = std::fs::read_to_string(helper_home.join("setup.log")).unwrap_or_default();
    assert_eq!(out.code, 0, "{out:?}\nsetup: {log}");
    assert!(out.stdout.contains(model_api::REPLY), "{out:?}");
    let settings = std::fs::read_to_string(helper_home.join(".claude/settings.json")).unwrap();
    assert!(settings.contains("apiKeyHelper"), "{settings}");
    assert!(
        api.messages()
            .iter()
            .any(|m| m.header("x-api-key") == Some("sk-forwarded-gateway")
                || m.header("authorization") == Some("Bearer sk-forwarded-gateway")),
        "the gateway never saw the helper's key"
    );

    // boto3 (Debian's, as a remote machine has it) through credential_process, from the AWS
    // config the forward carries.
    let script = format!(
        "/usr/bin/python3 -c 'import boto3; print(boto3.Session().client(\"sts\", endpoint_url=\"{}\", region_name=\"us-east-1\").get_caller_identity()[\"Arn\"])' && echo \"socket=$CREDD_SOCKET\"",
        moto.url()
    );
    let out = credd_ssh(&world, &sshd, &home, &script);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("assumed-role/bedrock-user/"),
        "{}",
        out.stdout
    );
    let socket = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("socket="))
        .expect("the session's socket")
        .to_string();
    let sessions = sshd::remote_home().join(".credd/forward");
    assert!(
        socket.starts_with(&sessions.join("dev-").display().to_string()),
        "{socket}"
    );

    // No credential was written on the remote.
    let secret = world
        .credd(&["get", "bedrock", "--format", "aws-process"])
        .json();
    let secret = secret["SecretAccessKey"].as_str().unwrap().to_string();
    assert!(
        credd_tests::world::files_containing(&sshd::remote_home(), &secret).is_empty(),
        "a credential was written on the remote"
    );

    // The session is over: its socket is gone, and the client there says so.
    assert!(
        !Path::new(&socket).exists(),
        "the remote socket outlived the session"
    );
    let (code, stdout, stderr) = sshd.run(&format!(
        "CREDD_SOCKET={socket} CREDD_FORWARD=dev@laptop {}/bin/credd get bedrock --format aws-process",
        home.display()
    ));
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("the credd forward from laptop (`dev`) is gone; reconnect"),
        "{stderr}"
    );
    // The host's status saw the forward used.
    let status = world.status();
    assert!(status["forwards"][0]["last_used_at"].is_i64(), "{status}");
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(&helper_home);
}
