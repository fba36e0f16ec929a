//! A forward in a real container: Podman running a Debian root filesystem with no network,
//! started with `credd container-args`. Inside, the real Claude Code reaches Bedrock through
//! the forwarded proxy socket and boto3 gets credentials through `credential_process` over the
//! forwarded client socket; no file the container could write holds a credential afterwards; a
//! uid the forward's allow-list does not name is refused; and a source the forward does not
//! list is not served.

use std::path::Path;

use credd_tests::World;
use credd_tests::container::podman_run;
use credd_tests::model_api::{self, ModelApi};
use credd_tests::peers::Moto;

/// The uid of the container's user (a devcontainer's `vscode`, say), on the allow-list.
const CONTAINER_USER: u32 = 1000;

/// `credd container-args dev` in `world`, as words.
fn container_args(world: &World) -> Vec<String> {
    let out = world.credd(&["container-args", "dev"]);
    out.ok().split_whitespace().map(String::from).collect()
}

/// Runs `script` with `sh -c` in the container as `uid`, with `home` as its HOME and the real
/// Claude Code at /usr/local/bin/claude; (exit code, stdout, stderr).
fn in_container(world: &World, uid: u32, home: &Path, script: &str) -> (i32, String, String) {
    let mut options: Vec<String> = vec![
        "--user".into(),
        format!("{uid}:{uid}"),
        "-v".into(),
        format!("{}:/home/dev", home.display()),
        "-e".into(),
        "HOME=/home/dev".into(),
        "-w".into(),
        "/home/dev".into(),
        "-v".into(),
        format!(
            "{}:/usr/local/bin/claude:ro",
            credd_tests::claude_bin().canonicalize().unwrap().display()
        ),
    ];
    options.extend(container_args(world));
    let out = podman_run(&options, &["sh", "-c", script])
        .output()
        .expect("run podman (the README's test command installs it)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn claude_code_and_boto3_in_a_container_get_credentials_only_through_the_forward() {
    if !credd_tests::other_user::available(
        "claude_code_and_boto3_in_a_container_get_credentials_only_through_the_forward",
    ) {
        return;
    }
    let moto = Moto::start();
    let api = ModelApi::start();
    let (world, _daemon) = crate::remote::bedrock_world(
        &moto,
        &api,
        &format!("sources = [\"bedrock\"]\nallow_uids = [{CONTAINER_USER}]\n"),
    );
    crate::forwards::forward_dir(&world, "dev");
    let home = world.path("container-home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(CONTAINER_USER), Some(CONTAINER_USER)).unwrap();

    // Claude Code, set up inside by the credd mounted there, on the proxy route.
    let (code, stdout, stderr) = in_container(
        &world,
        CONTAINER_USER,
        &home,
        "credd setup claude-code bedrock --via proxy >setup.log 2>&1 && TERM=dumb CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 claude -p 'say hi' </dev/null",
    );
    assert_eq!(
        code,
        0,
        "{stdout}{stderr}\nsetup: {}",
        std::fs::read_to_string(home.join("setup.log")).unwrap_or_default()
    );
    assert!(stdout.contains(model_api::REPLY), "{stdout}");
    let messages = api.messages();
    assert!(!messages.is_empty());
    for m in &messages {
        let auth = m.header("authorization").unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIA"),
            "{auth}"
        );
    }

    // boto3 through credential_process: the same credentials the host's credd holds.
    let host = world
        .credd(&["get", "bedrock", "--format", "aws-process"])
        .json();
    let (code, stdout, stderr) = in_container(
        &world,
        CONTAINER_USER,
        &home,
        "python3 -c 'import boto3; print(boto3.Session().get_credentials().get_frozen_credentials().access_key)'",
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), host["AccessKeyId"].as_str().unwrap());

    // A source the forward does not list, and a uid its allow-list does not name.
    let (code, stdout, stderr) = in_container(&world, CONTAINER_USER, &home, "credd get gateway");
    assert_ne!(code, 0);
    assert!(
        stdout.is_empty() && stderr.contains("does not serve `gateway`"),
        "{stderr}"
    );
    assert_eq!(world.runs("gw"), 0);
    let (code, stdout, stderr) = in_container(&world, 1001, &home, "credd get bedrock");
    assert_ne!(code, 0);
    assert!(
        stdout.is_empty() && stderr.contains("does not serve this user"),
        "{stderr}"
    );

    // Nothing the container could write holds a credential.
    let secret = host["SecretAccessKey"].as_str().unwrap();
    for dir in [home.as_path(), &credd_tests::container::rootfs()] {
        assert!(
            credd_tests::world::files_containing(dir, secret).is_empty(),
            "a credential was written under {}",
            dir.display()
        );
    }
    let status = world.status();
    assert_eq!(
        status["forwards"][0]["last_peer_uid"], CONTAINER_USER,
        "{status}"
    );
}

#[test]
fn a_login_asked_in_a_container_runs_once_on_the_host_with_a_local_caller() {
    if !credd_tests::other_user::available(
        "a_login_asked_in_a_container_runs_once_on_the_host_with_a_local_caller",
    ) {
        return;
    }
    let t = crate::aws_sso::sso_world();
    let world = &t.world;
    let config = std::fs::read_to_string(&world.config).unwrap();
    world.write_config(&format!("{config}\n[forwards.dev]\nsources = [\"dev\"]\n"));
    // The host's browser: an opener that notes the pages it was asked to open.
    let (opened, path) = world.stub_browser();
    let _daemon = world.start_daemon_with(|cmd| {
        cmd.env_remove("CREDD_NO_BROWSER").env("PATH", &path);
    });
    crate::forwards::forward_dir(world, "dev");

    // `credd login` inside the container (as Claude Code's awsAuthRefresh there runs it).
    let inside = podman_run(&container_args(world), &["credd", "login", "dev"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    world.eventually(
        std::time::Duration::from_secs(20),
        "the page opened on the host",
        || opened.exists(),
    );
    // A local caller joins the same login while it waits.
    let local = world.spawn_watched(&["login", "dev"], |cmd| {
        cmd.env_remove("CREDD_NO_BROWSER").env("PATH", &path);
    });
    local.wait_for("user_code=", std::time::Duration::from_secs(20));
    t.sso.approve_all();
    let local = local.finish();
    assert!(local.ok().contains("signed in"), "{}", local.stdout);
    let inside = inside.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&inside.stdout),
        String::from_utf8_lossy(&inside.stderr),
    );
    assert!(inside.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("https://device.sso.example/?user_code="),
        "{stdout}"
    );
    assert!(
        stdout.contains("credd opens it in the browser on"),
        "{stdout}"
    );
    assert!(stdout.contains("signed in"), "{stdout}");
    // One sign-in, one page opened, on the host.
    assert_eq!(t.sso.calls("StartDeviceAuthorization"), 1);
    let opened = std::fs::read_to_string(&opened).unwrap();
    assert_eq!(opened.lines().count(), 1, "{opened}");
    assert!(
        !world
            .credd(&["get", "dev", "--format", "aws-process"])
            .ok()
            .is_empty()
    );
}

#[test]
fn the_devcontainer_feature_installs_the_client_and_names_the_forward() {
    if !credd_tests::other_user::available(
        "the_devcontainer_feature_installs_the_client_and_names_the_forward",
    ) {
        return;
    }
    let moto = Moto::start();
    let api = ModelApi::start();
    let (world, _daemon) = crate::remote::bedrock_world(&moto, &api, "sources = [\"bedrock\"]\n");
    crate::forwards::forward_dir(&world, "dev");
    // The Feature as a project holds it, with the client beside its install script.
    let feature = world.path("feature");
    std::fs::create_dir(&feature).unwrap();
    let source = credd_tests::workspace_root().join("packaging/devcontainer-feature/credd");
    for file in ["devcontainer-feature.json", "install.sh"] {
        std::fs::copy(source.join(file), feature.join(file)).unwrap();
    }
    std::fs::copy(credd_tests::bin("credd"), feature.join("credd")).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(feature.join("devcontainer-feature.json")).unwrap())
            .unwrap();
    let env = manifest["containerEnv"].as_object().unwrap();
    // Its environment is what `credd container-args` gives (its forward's name aside).
    let args = container_args(&world);
    let mut options = vec!["-v".to_string(), format!("{}:/feature", feature.display())];
    for pair in args.windows(2).filter(|w| w[0] == "-e") {
        let (name, value) = pair[1].split_once('=').unwrap();
        match name {
            // Its name, and the host user's uid a rootful container's client trusts: in a
            // devcontainer the user is the host user (updateRemoteUserUID), or root.
            "CREDD_FORWARD" => assert!(env.contains_key(name)),
            "CREDD_FORWARD_UID" => {}
            _ => assert_eq!(env[name], value, "{name}"),
        }
    }
    for (name, value) in env {
        options.extend([
            "-e".to_string(),
            format!("{name}={}", value.as_str().unwrap()),
        ]);
    }
    let mount = args
        .windows(2)
        .find(|w| w[0] == "-v" && w[1].ends_with(":/run/credd:ro"))
        .unwrap();
    options.extend(mount.iter().cloned());
    // The install step in a throwaway layer over the root filesystem, then the client it put
    // there reaches the host's credd through the forward.
    let out = credd_tests::container::podman_run_over(
        &options,
        &[
            "sh",
            "-c",
            "/feature/install.sh && credd get bedrock --format aws-process",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("credd {}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("\"AccessKeyId\":\"ASIA"), "{stdout}");
    // What it installed went with the overlay (which podman unmounts as it cleans up); what
    // may be left at that path is the empty mount point of another test's client.
    let installed = credd_tests::container::rootfs().join("usr/local/bin/credd");
    world.eventually(
        std::time::Duration::from_secs(10),
        "the overlay gone",
        || std::fs::metadata(&installed).map_or(true, |m| m.len() == 0),
    );
}
