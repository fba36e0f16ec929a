//! `credd setup claude-code`: merges into existing settings, refuses what it must not touch,
//! and the real Claude Code runs with what it wrote.

use std::os::unix::fs::PermissionsExt;

use credd_tests::World;
use credd_tests::model_api::{self, ModelApi};
use serde_json::{Value, json};

use crate::exec_config;

fn settings_path(world: &World) -> std::path::PathBuf {
    world.home.join(".claude/settings.json")
}

fn read_settings(world: &World) -> Value {
    serde_json::from_str(&std::fs::read_to_string(settings_path(world)).unwrap()).unwrap()
}

#[test]
fn setup_for_a_gateway_keeps_other_keys_and_claude_code_uses_it() {
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-from-setup");
    world.write_config(&exec_config("gateway", &cmd, "ttl = \"1h\""));
    let api = ModelApi::start();
    let existing = json!({
        "model": "claude-sonnet-4-5",
        "permissions": {"allow": ["Bash(ls:*)"]},
        "env": {"MY_SETTING": "kept"}
    });
    std::fs::create_dir_all(settings_path(&world).parent().unwrap()).unwrap();
    std::fs::write(settings_path(&world), existing.to_string()).unwrap();

    let dry = world.credd(&[
        "setup",
        "claude-code",
        "gateway",
        "--base-url",
        &api.url(),
        "--dry-run",
    ]);
    assert!(dry.ok().contains("+ apiKeyHelper"), "{}", dry.stdout);
    assert_eq!(read_settings(&world), existing, "--dry-run wrote the file");

    let out = world.credd(&["setup", "claude-code", "gateway", "--base-url", &api.url()]);
    assert!(
        out.ok().contains("+ env.ANTHROPIC_BASE_URL"),
        "{}",
        out.stdout
    );
    let settings = read_settings(&world);
    assert_eq!(settings["model"], existing["model"]);
    assert_eq!(settings["permissions"], existing["permissions"]);
    assert_eq!(settings["env"]["MY_SETTING"], "kept");
    assert_eq!(
        settings["env"]["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"],
        "300000"
    );
    let helper = settings["apiKeyHelper"].as_str().unwrap();
    assert!(
        helper.starts_with('/') && helper.ends_with(" get gateway"),
        "{helper}"
    );
    let mode = std::fs::metadata(settings_path(&world))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let backup: Value = serde_json::from_str(
        &std::fs::read_to_string(settings_path(&world).with_extension("json.bak")).unwrap(),
    )
    .unwrap();
    assert_eq!(backup, existing);

    // Running it again changes nothing.
    let again = world.credd(&["setup", "claude-code", "gateway", "--base-url", &api.url()]);
    assert!(again.ok().contains("nothing to do"), "{}", again.stdout);

    // The real Claude Code, with nothing but the written settings.
    let mut claude = std::process::Command::new(credd_tests::claude_bin());
    world.isolate(&mut claude);
    let out = claude
        .args(["-p", "say hi"])
        .current_dir(world.dir.path())
        .env("TERM", "dumb")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(model_api::REPLY),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(api.messages()[0].header("x-api-key"), Some("sk-from-setup"));
}

#[test]
fn setup_refuses_an_invalid_or_read_only_settings_file() {
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-x");
    world.write_config(&exec_config("gateway", &cmd, ""));
    let path = settings_path(&world);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();

    std::fs::write(&path, "{\"model\": \"opus\",,}").unwrap();
    let out = world.credd(&["setup", "claude-code", "gateway"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("not valid JSON") && out.stderr.contains("line 1"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"model\": \"opus\",,}"
    );

    std::fs::write(&path, "{\"model\": \"opus\"}").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = world.credd(&["setup", "claude-code", "gateway"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("read-only"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"model\": \"opus\"}"
    );
}

#[test]
fn setup_for_bedrock_writes_what_claude_code_needs() {
    let moto = credd_tests::peers::Moto::start();
    let world = World::new().with_aws(
        "[profile base]\nregion = us-west-2\n\n[profile bedrock]\nregion = us-west-2\nrole_arn = arn:aws:iam::123456789012:role/bedrock\nsource_profile = base\n",
        "[base]\naws_access_key_id = AKIACREDDLONGTERM005\naws_secret_access_key = long-term-secret\n",
        &moto.url(),
    );
    world.write_config("[sources.bedrock]\nkind = \"aws\"\nprofile = \"bedrock\"\n");
    let project = world.path("project");
    let out = world.credd(&[
        "setup",
        "claude-code",
        "bedrock",
        "--project",
        project.to_str().unwrap(),
    ]);
    out.ok();
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(project.join(".claude/settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(settings["env"]["CLAUDE_CODE_USE_BEDROCK"], "1");
    assert_eq!(settings["env"]["AWS_REGION"], "us-west-2");
    assert!(
        settings["awsCredentialExport"]
            .as_str()
            .unwrap()
            .ends_with(" get bedrock --format aws")
    );
    assert!(
        settings["awsAuthRefresh"]
            .as_str()
            .unwrap()
            .ends_with(" login bedrock")
    );

    // Claude Code in that project signs Bedrock calls with credd's credentials.
    let bedrock = ModelApi::start();
    let served = world.credd(&["get", "bedrock", "--format", "aws"]).json();
    let mut claude = std::process::Command::new(credd_tests::claude_bin());
    world.isolate(&mut claude);
    let out = claude
        .args(["-p", "say hi"])
        .current_dir(&project)
        .env("TERM", "dumb")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("ANTHROPIC_BEDROCK_BASE_URL", bedrock.url())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(model_api::REPLY),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_id = served["Credentials"]["AccessKeyId"].as_str().unwrap();
    let auth = bedrock
        .messages()
        .last()
        .unwrap()
        .header("authorization")
        .unwrap()
        .to_string();
    assert!(auth.contains(&format!("Credential={key_id}/")), "{auth}");
    assert!(auth.contains("/us-west-2/bedrock/"), "{auth}");
}
