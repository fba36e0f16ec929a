//! The real Claude Code (`@anthropic-ai/claude-code` from npm) using `credd get` as its
//! `apiKeyHelper` against a stub of the Messages API, and as its `awsCredentialExport` against a
//! stub of the Bedrock runtime, with credentials moto issued.

use credd_tests::World;
use credd_tests::model_api::{self, ModelApi};

use crate::exec_config;

/// Runs `claude -p "say hi"` in `world` against the first-party API stub; returns stdout.
fn claude_say_hi(world: &World, api: &ModelApi) -> String {
    claude_say_hi_with(world, &[("ANTHROPIC_BASE_URL", &api.url())])
}

fn claude_say_hi_with(world: &World, env: &[(&str, &str)]) -> String {
    credd_tests::claude_say_hi(world, world.dir.path(), env)
}

fn write_settings(world: &World) {
    let helper = format!("{} get gateway", credd_tests::bin("credd").display());
    write_settings_json(world, serde_json::json!({ "apiKeyHelper": helper }));
}

fn write_settings_json(world: &World, settings: serde_json::Value) {
    let path = world.home.join(".claude/settings.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, settings.to_string()).unwrap();
}

#[test]
fn claude_code_sends_the_token_from_the_exec_source() {
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-gateway-token-first");
    world.write_config(&exec_config("gateway", &cmd, "ttl = \"1h\""));
    write_settings(&world);
    let api = ModelApi::start();

    let reply = claude_say_hi(&world, &api);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let messages = api.messages();
    assert!(!messages.is_empty(), "Claude Code sent no message request");
    for m in &messages {
        assert_eq!(
            m.header("x-api-key"),
            Some("sk-gateway-token-first"),
            "{m:?}"
        );
        assert_eq!(
            m.header("authorization"),
            Some("Bearer sk-gateway-token-first"),
            "{m:?}"
        );
    }
    // A second session reuses the daemon's cache: no new upstream call.
    claude_say_hi(&world, &api);
    assert_eq!(world.runs("gw"), 1);
}

#[test]
fn after_a_401_claude_code_retries_with_the_rotated_token() {
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-gateway-token-old");
    world.write_config(&exec_config("gateway", &cmd, "ttl = \"1h\""));
    write_settings(&world);
    let api = ModelApi::start();

    // Warm the cache with the old token, then rotate it upstream and reject the old one once.
    assert_eq!(
        world.credd(&["get", "gateway"]).ok(),
        "sk-gateway-token-old\n"
    );
    std::fs::write(world.path("gw.out"), "sk-gateway-token-new").unwrap();
    api.reject_next(1);

    let reply = claude_say_hi(&world, &api);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let messages = api.messages();
    assert!(messages.len() >= 2, "no retry after the 401: {messages:?}");
    assert_eq!(
        messages[0].header("x-api-key"),
        Some("sk-gateway-token-old")
    );
    let last = messages.last().unwrap();
    assert_eq!(
        last.header("x-api-key"),
        Some("sk-gateway-token-new"),
        "{last:?}"
    );
    assert_eq!(
        last.header("authorization"),
        Some("Bearer sk-gateway-token-new")
    );
    assert_eq!(world.runs("gw"), 2, "one forced refresh, no more");
}

#[test]
fn claude_code_on_bedrock_signs_with_the_credentials_credd_exports() {
    let moto = credd_tests::peers::Moto::start();
    let world = World::new().with_aws(
        "[profile base]\nregion = us-east-1\n\n[profile bedrock]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/bedrock-user\nsource_profile = base\n",
        "[base]\naws_access_key_id = AKIACREDDLONGTERM002\naws_secret_access_key = long-term-secret\n",
        &moto.url(),
    );
    world.write_config("[sources.bedrock]\nkind = \"aws\"\nprofile = \"bedrock\"\n");
    let export = format!(
        "{} get bedrock --format aws",
        credd_tests::bin("credd").display()
    );
    write_settings_json(&world, serde_json::json!({ "awsCredentialExport": export }));
    let served = world.credd(&["get", "bedrock", "--format", "aws"]).json();
    let key_id = served["Credentials"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let session = served["Credentials"]["SessionToken"]
        .as_str()
        .unwrap()
        .to_string();

    let bedrock = ModelApi::start();
    let reply = claude_say_hi_with(
        &world,
        &[
            ("CLAUDE_CODE_USE_BEDROCK", "1"),
            ("AWS_REGION", "us-east-1"),
            ("ANTHROPIC_BEDROCK_BASE_URL", &bedrock.url()),
        ],
    );
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let invocations = bedrock.messages();
    assert!(
        invocations
            .iter()
            .any(|r| r.path.ends_with("/invoke-with-response-stream")),
        "{invocations:?}"
    );
    for r in &invocations {
        let auth = r.header("authorization").unwrap_or_default();
        assert!(
            auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={key_id}/")),
            "{auth}"
        );
        assert_eq!(r.header("x-amz-security-token"), Some(session.as_str()));
    }
}
