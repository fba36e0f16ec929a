//! Claude Code's newer providers, each on credd's helper route and on its proxy route, with the
//! real Claude Code: Bedrock's Anthropic-compatible API (Mantle, SigV4 for `bedrock-mantle`),
//! Claude Platform on AWS (SigV4 for `aws-external-anthropic` and its workspace header), and
//! Claude on Google Cloud (a Google access token, under the workspace's path). The stubs check
//! what the services check: the signature against the key moto issued, its service and region;
//! the bearer token against the ones Google issued. And the small fast model's second region,
//! and a region out of capacity.

use credd_tests::World;
use credd_tests::google::GoogleUpstream;
use credd_tests::model_api::{self, ModelApi};
use serde_json::Value;

use crate::gcp_source;
use crate::proxy::claude_through_the_proxy;

/// A world whose `aws` source is a role moto issues credentials for in us-east-1, with `extra`
/// in its table.
fn aws_world(moto: &credd_tests::peers::Moto, extra: &str) -> World {
    let world = World::new().with_aws(
        "[profile base]\nregion = us-east-1\n\n[profile claude]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/claude-user\nsource_profile = base\n",
        "[base]\naws_access_key_id = AKIACREDDLONGTERM031\naws_secret_access_key = long-term-secret\n",
        &moto.url(),
    );
    world.write_config(&format!(
        "[sources.aws]\nkind = \"aws\"\nprofile = \"claude\"\n{extra}\n"
    ));
    world
}

fn settings_of(world: &World) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(world.home.join(".claude/settings.json")).unwrap(),
    )
    .unwrap()
}

/// Every message request reached the stub signed with credentials moto issued (the stub
/// verified each signature, its service and its region), for `region`.
fn assert_signed_in(api: &ModelApi, region: &str) {
    let messages = api.messages();
    assert!(!messages.is_empty(), "no message reached the API");
    for m in &messages {
        let auth = m.header("authorization").unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIA"),
            "{auth}"
        );
        assert!(auth.contains(&format!("/{region}/")), "{auth}");
    }
}

#[test]
fn claude_code_on_mantle_and_claude_platform_signs_with_the_credentials_credd_exports() {
    let moto = credd_tests::peers::Moto::start();
    for (provider, service, base_url) in [
        (
            "mantle",
            "bedrock-mantle",
            "ANTHROPIC_BEDROCK_MANTLE_BASE_URL",
        ),
        (
            "anthropic-aws",
            "aws-external-anthropic",
            "ANTHROPIC_AWS_BASE_URL",
        ),
    ] {
        let world = aws_world(&moto, "");
        let api = ModelApi::aws(service, &["us-east-1"]);
        let mut setup = vec!["setup", "claude-code", "aws", "--provider", provider];
        if provider == "anthropic-aws" {
            // The workspace is required, and said so.
            let out = world.credd(&setup);
            assert!(out.stderr.contains("--workspace"), "{}", out.stderr);
            setup.extend(["--workspace", "wrkspc_01credd"]);
            api.require_workspace("wrkspc_01credd");
        }
        world.credd(&setup).ok();
        let settings = settings_of(&world);
        let chosen = credd_proto::claude_code::provider_named(provider).unwrap();
        assert_eq!(settings["env"][chosen.selection], "1", "{settings}");
        assert_eq!(settings["env"]["AWS_REGION"], "us-east-1");
        assert!(settings["env"].get("CLAUDE_CODE_USE_BEDROCK").is_none());
        assert!(
            settings["awsCredentialExport"]
                .as_str()
                .unwrap()
                .ends_with("get aws --format aws")
        );
        let reply = credd_tests::claude_say_hi(&world, world.dir.path(), &[(base_url, &api.url())]);
        assert!(reply.contains(model_api::REPLY), "{provider}: {reply}");
        assert_signed_in(&api, "us-east-1");
    }
}

#[test]
fn claude_code_reaches_mantle_and_claude_platform_through_the_proxy() {
    let moto = credd_tests::peers::Moto::start();
    for (provider, service, extra) in [
        ("mantle", "bedrock-mantle", ""),
        (
            "anthropic-aws",
            "aws-external-anthropic",
            ", workspace = \"wrkspc_01credd\"",
        ),
    ] {
        let api = ModelApi::aws(service, &["us-east-1"]);
        if provider == "anthropic-aws" {
            api.require_workspace("wrkspc_01credd");
        }
        let world = aws_world(
            &moto,
            &format!(
                "proxy = {{ provider = \"{provider}\", upstream = \"{}\"{extra} }}",
                api.url()
            ),
        );
        let _daemon = world.start_daemon();
        // A --provider that is not the route's is refused, and says what the route speaks.
        let wrong = world.credd(&[
            "setup",
            "claude-code",
            "aws",
            "--via",
            "proxy",
            "--provider",
            "bedrock",
        ]);
        assert!(
            wrong.stderr.contains(&format!("speaks {provider}")),
            "{}",
            wrong.stderr
        );
        let (reply, settings) = claude_through_the_proxy(&world, "aws", &[]);
        assert!(reply.contains(model_api::REPLY), "{provider}: {reply}");
        let chosen = credd_proto::claude_code::provider_named(provider).unwrap();
        assert_eq!(settings["env"][chosen.skip_auth], "1", "{settings}");
        assert_eq!(settings["env"][chosen.selection], "1", "{settings}");
        assert_signed_in(&api, "us-east-1");
    }
}

/// A gcp world with a project, a metadata endpoint and `extra` in its table.
fn google_world(upstream: &GoogleUpstream, extra: &str) -> World {
    gcp_source::gcp_world(
        &gcp_source::authorized_user(upstream, gcp_source::REFRESH_TOKEN),
        &format!("project = \"credd-claude\"\n{extra}\n"),
    )
}

/// Every message request carried a token Google issued.
fn assert_google_tokens(api: &ModelApi, upstream: &GoogleUpstream, path: &str) {
    let issued = upstream.issued();
    let messages = api.messages();
    assert!(!messages.is_empty(), "no message reached the API");
    for m in &messages {
        assert!(m.path.starts_with(path), "{}", m.path);
        let bearer = m.header("authorization").unwrap_or_default();
        assert!(
            issued.iter().any(|t| bearer == format!("Bearer {t}")),
            "the API did not get a token Google issued"
        );
    }
}

#[test]
fn claude_code_on_claude_on_google_cloud_uses_the_metadata_endpoint() {
    let upstream = GoogleUpstream::start();
    let port = credd_tests::peers::free_port();
    let world = google_world(
        &upstream,
        &format!("metadata_endpoint = {{ port = {port} }}"),
    );
    let _daemon = world.start_daemon();
    world
        .credd(&[
            "setup",
            "claude-code",
            "vertex",
            "--provider",
            "anthropic-google-cloud",
            "--workspace",
            "wrkspc_g1",
            "--region",
            "us-east5",
        ])
        .ok();
    let settings = settings_of(&world);
    let env = &settings["env"];
    assert_eq!(env["CLAUDE_CODE_USE_ANTHROPIC_GOOGLE_CLOUD"], "1");
    assert_eq!(env["GCE_METADATA_HOST"], format!("127.0.0.1:{port}"));
    assert!(
        settings["gcpAuthRefresh"]
            .as_str()
            .unwrap()
            .ends_with("login vertex")
    );
    // Claude Code builds the workspace's URL from these; a base URL replaces the whole of it,
    // so the stub's is built from them the same way.
    let path = format!(
        "/v1/projects/{}/locations/{}/workspaces/{}/invoke",
        env["ANTHROPIC_GOOGLE_CLOUD_PROJECT"].as_str().unwrap(),
        env["ANTHROPIC_GOOGLE_CLOUD_LOCATION"].as_str().unwrap(),
        env["ANTHROPIC_GOOGLE_CLOUD_WORKSPACE_ID"].as_str().unwrap()
    );
    assert_eq!(
        path,
        "/v1/projects/credd-claude/locations/us-east5/workspaces/wrkspc_g1/invoke"
    );
    let api = ModelApi::start();
    let reply = credd_tests::claude_say_hi(
        &world,
        world.dir.path(),
        &[(
            "ANTHROPIC_GOOGLE_CLOUD_BASE_URL",
            &format!("{}{path}", api.url()),
        )],
    );
    assert!(reply.contains(model_api::REPLY), "{reply}");
    assert_google_tokens(&api, &upstream, &format!("{path}/v1/messages"));
}

#[test]
fn claude_code_reaches_claude_on_google_cloud_through_the_proxy() {
    let upstream = GoogleUpstream::start();
    let api = ModelApi::start();
    let world = google_world(
        &upstream,
        &format!(
            "proxy = {{ provider = \"anthropic-google-cloud\", workspace = \"wrkspc_g1\", upstream = \"{}\" }}",
            api.url()
        ),
    );
    let _daemon = world.start_daemon();
    let (reply, settings) = claude_through_the_proxy(&world, "vertex", &[]);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    assert_eq!(
        settings["env"]["CLAUDE_CODE_SKIP_ANTHROPIC_GOOGLE_CLOUD_AUTH"],
        "1"
    );
    assert!(settings["env"].get("ANTHROPIC_VERTEX_PROJECT_ID").is_none());
    assert_google_tokens(
        &api,
        &upstream,
        "/v1/projects/credd-claude/locations/global/workspaces/wrkspc_g1/invoke/v1/messages",
    );
}

/// Settings with a prompt hook: Claude Code asks its small fast model (named, as Claude Code
/// sends it elsewhere only when it is) about each prompt, the one request of a `-p` run that
/// goes to that model.
fn with_a_prompt_hook(world: &World) {
    let path = world.home.join(".claude/settings.json");
    let mut settings: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    settings["hooks"]["UserPromptSubmit"] = serde_json::json!([
        { "hooks": [{ "type": "prompt", "prompt": "Is this prompt fine? $ARGUMENTS" }] }
    ]);
    settings["env"]["ANTHROPIC_DEFAULT_HAIKU_MODEL"] = HAIKU.into();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, settings.to_string()).unwrap();
}

const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

/// The small fast model's requests went to `fast` and signed for it, the rest to us-east-1.
fn assert_each_in_its_region(api: &ModelApi, fast: &str) {
    let regions = api.regions_of_messages();
    assert!(
        regions.iter().any(|(model, _)| model.contains("haiku")),
        "no request for the small fast model: {regions:?}"
    );
    assert!(
        regions.iter().any(|(model, _)| !model.contains("haiku")),
        "no request for the main model: {regions:?}"
    );
    for (model, region) in &regions {
        let wanted = if model.contains("haiku") {
            fast
        } else {
            "us-east-1"
        };
        assert_eq!(region, wanted, "{model}: {regions:?}");
    }
}

#[test]
fn the_small_fast_models_requests_are_signed_for_its_own_region() {
    let moto = credd_tests::peers::Moto::start();
    // As credd's awsCredentialExport: Claude Code signs each request itself.
    let world = aws_world(&moto, "");
    world.credd(&["setup", "claude-code", "aws"]).ok();
    with_a_prompt_hook(&world);
    let api = ModelApi::aws("bedrock", &["us-east-1", "us-west-2"]);
    let reply = credd_tests::claude_say_hi(
        &world,
        world.dir.path(),
        &[
            ("ANTHROPIC_BEDROCK_BASE_URL", &api.url()),
            ("ANTHROPIC_SMALL_FAST_MODEL_AWS_REGION", "us-west-2"),
        ],
    );
    assert!(reply.contains(model_api::REPLY), "{reply}");
    assert_each_in_its_region(&api, "us-west-2");

    // Through the proxy, Claude Code signs nothing: the proxy signs the model's requests for
    // the region its table names for that model.
    let api = ModelApi::aws("bedrock", &["us-east-1", "us-west-2"]);
    let world = aws_world(
        &moto,
        &format!(
            "proxy = {{ upstream = \"{}\", model_regions = {{ \"{HAIKU}\" = \"us-west-2\" }} }}",
            api.url()
        ),
    );
    let _daemon = world.start_daemon();
    world
        .credd(&[
            "setup",
            "claude-code",
            "aws",
            "--via",
            "proxy",
            "--shell-profile",
            "bash",
        ])
        .ok();
    with_a_prompt_hook(&world);
    let reply = credd_tests::claude_say_hi_from_a_shell(&world, world.dir.path());
    assert!(reply.contains(model_api::REPLY), "{reply}");
    assert_each_in_its_region(&api, "us-west-2");
}

/// A world whose `aws` route fails over from us-east-1 to us-west-2, in front of `api`.
fn failover_world(moto: &credd_tests::peers::Moto, api: &ModelApi) -> World {
    aws_world(
        moto,
        &format!(
            "proxy = {{ upstream = \"{}\", failover = [\"us-east-1\", \"us-west-2\"] }}",
            api.url()
        ),
    )
}

/// A Bedrock request on `world`'s `aws` route: the status of its answer, and the answer.
fn invoke(world: &World) -> (u16, Vec<u8>) {
    let (socket, host) = crate::proxy::socket_route_of(world, "aws");
    crate::proxy::exchange_on_socket(
        &socket,
        &format!(
            "POST /model/anthropic.claude/invoke HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    )
}

#[test]
fn a_region_out_of_capacity_fails_over_once_to_the_next() {
    let moto = credd_tests::peers::Moto::start();
    let api = ModelApi::aws("bedrock", &["us-east-1", "us-west-2"]);
    api.overload("us-east-1");
    let world = failover_world(&moto, &api);
    let _daemon = world.start_daemon();
    let (status, _) = invoke(&world);
    assert_eq!(status, 200);
    assert_eq!(
        api.regions_of_messages()
            .iter()
            .map(|(_, r)| r.as_str())
            .collect::<Vec<_>>(),
        ["us-east-1", "us-west-2"],
        "one try in each region, in order"
    );

    // Both regions out of capacity: one retry, then the refusal reaches the caller.
    api.overload("us-west-2");
    let before = api.messages().len();
    let (status, body) = invoke(&world);
    assert_eq!(status, 529, "{}", String::from_utf8_lossy(&body));
    assert_eq!(api.messages().len() - before, 2, "retried once, not more");

    // Any other refusal is not retried elsewhere.
    let api = ModelApi::aws("bedrock", &["us-east-1", "us-west-2"]);
    let world = failover_world(&moto, &api);
    let _daemon = world.start_daemon();
    api.reject_next(2);
    assert_eq!(invoke(&world).0, 401);
    assert!(
        api.regions_of_messages()
            .iter()
            .all(|(_, r)| r == "us-east-1"),
        "a 401 went to another region: {:?}",
        api.regions_of_messages()
    );
}

#[test]
fn claude_code_on_vertex_fails_over_to_the_next_location() {
    let upstream = GoogleUpstream::start();
    let api = ModelApi::start();
    api.overload("us-east5");
    let world = gcp_source::gcp_world(
        &gcp_source::authorized_user(&upstream, gcp_source::REFRESH_TOKEN),
        &format!(
            "project = \"credd-vertex\"\nproxy = {{ upstream = \"{}\", failover = [\"europe-west1\"] }}\n",
            api.url()
        ),
    );
    let _daemon = world.start_daemon();
    let (reply, _) = claude_through_the_proxy(&world, "vertex", &["--region", "us-east5"]);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    // Each request tried us-east5 once, then went to europe-west1.
    let regions = api.regions_of_messages();
    let tried = regions.iter().filter(|(_, r)| r == "us-east5").count();
    let served = regions.iter().filter(|(_, r)| r == "europe-west1").count();
    assert!(served > 0 && tried == served, "{regions:?}");
}

/// How many times the daemon was asked for a credential of `source` (its debug log names each
/// request).
fn gets_of(world: &World, source: &str) -> usize {
    std::fs::read_to_string(world.path("daemon.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("request=Get") && l.contains(&format!("source: \"{source}\"")))
        .count()
}

/// `CLAUDE_CODE_SKIP_AWS_CRED_CACHE` with credd as the `credential_process` of Claude Code's
/// profile: what it costs (a `credd get` per request), as docs/claude-code.md says.
#[test]
fn skipping_claude_codes_aws_credential_cache_asks_credd_for_each_client() {
    let moto = credd_tests::peers::Moto::start();
    let world = aws_world(&moto, "");
    // The profile Claude Code uses runs credd as its credential_process.
    let config = world.home.join(".aws/config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "\n[profile via-credd]\nregion = us-east-1\ncredential_process = {} get aws --format aws-process\n",
        credd_tests::bin("credd").display()
    );
    std::fs::write(&config, text).unwrap();
    let _daemon = world.start_daemon();
    let mut asked = Vec::new();
    for skip in [false, true] {
        let api = ModelApi::start();
        let before = gets_of(&world, "aws");
        let mut env = vec![
            ("CLAUDE_CODE_USE_BEDROCK", "1".to_string()),
            ("AWS_PROFILE", "via-credd".to_string()),
            ("ANTHROPIC_BEDROCK_BASE_URL", api.url()),
        ];
        if skip {
            env.push(("CLAUDE_CODE_SKIP_AWS_CRED_CACHE", "1".to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = credd_tests::claude_say_hi(&world, world.dir.path(), &env);
        assert!(reply.contains(model_api::REPLY), "{reply}");
        assert_signed_in(&api, "us-east-1");
        asked.push((gets_of(&world, "aws") - before, api.messages().len()));
    }
    // Claude Code's cache asks once a session; without it, once for each request's client.
    let [(cached, _), (uncached, requests)] = asked[..] else {
        unreachable!()
    };
    assert_eq!(cached, 1, "{asked:?}");
    assert!(requests > 1 && uncached >= requests, "{asked:?}");
}
