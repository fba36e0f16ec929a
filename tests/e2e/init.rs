//! A newcomer's first minutes: with no config, `credd status` lists the sign-ins the machine
//! already has (an SSO profile and a role profile in `~/.aws/config`, gcloud's ADC file, an
//! `az login`, Claude Code set up for Bedrock) without asking any upstream; `credd init --yes`
//! turns them into a config that serves each, offers `setup claude-code` for Bedrock, and
//! changes nothing when run again; a config edited by hand is not replaced without a yes; and
//! files it cannot read are named, with nothing written.

use std::time::Duration;

use credd_tests::World;
use credd_tests::google::GoogleUpstream;
use credd_tests::peers::Moto;
use credd_tests::sso_stub::SsoStub;

use crate::aws_sso::write_cli_cache;
use crate::gcp_source::{REFRESH_TOKEN, authorized_user};

const AWS_CONFIG: &str = "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Developer\nregion = us-east-1\n\n\
[profile base]\nregion = us-east-1\n\n\
[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = base\nregion = us-east-1\n\n\
[sso-session corp]\nsso_start_url = https://corp.awsapps.example/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n";

#[test]
fn init_turns_the_sign_ins_found_into_a_config_that_serves_each() {
    let moto = Moto::start();
    let sso = SsoStub::start();
    let google = GoogleUpstream::start();
    let world = World::new()
        .with_aws(
            AWS_CONFIG,
            "[base]\naws_access_key_id = AKIACREDDLONGTERM012\naws_secret_access_key = long-term-secret\n",
            &moto.url(),
        )
        .with_env("AWS_ENDPOINT_URL_SSO", &sso.url())
        .with_env("AWS_ENDPOINT_URL_SSO_OIDC", &sso.url());
    // The Azure CLI, signed in: its profile file (with the byte-order mark it writes), and the
    // CLI itself for the tokens.
    let azure = world.home.join(".azure");
    std::fs::create_dir_all(&azure).unwrap();
    std::fs::write(
        azure.join("azureProfile.json"),
        format!(
            "\u{feff}{}",
            serde_json::json!({"subscriptions": [{"id": "sub", "isDefault": true, "tenantId": credd_tests::entra::TENANT, "user": {"name": "dev@example.com", "type": "user"}}]})
        ),
    )
    .unwrap();
    let flag = world.path("az-logged-in");
    std::fs::write(&flag, "").unwrap();
    let bin = crate::entra_source::fake_az(&world, &flag);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let world = world.with_env("PATH", &path);
    let issued = sso.issue_session();
    write_cli_cache(
        &world,
        &issued.access_token,
        &issued.refresh_token,
        Duration::from_secs(3600),
    );
    let gcloud = world.home.join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        authorized_user(&google, REFRESH_TOKEN).to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(world.home.join(".claude")).unwrap();
    std::fs::write(
        world.home.join(".claude/settings.json"),
        r#"{"env": {"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_PROFILE": "admin", "AWS_REGION": "us-east-1"}}"#,
    )
    .unwrap();

    // Found, and nothing asked of any upstream.
    let status = world.credd(&["status"]).ok().to_string();
    for found in [
        "AWS profile `dev`: SSO through the session `corp` (as the source `dev`)",
        "AWS profile `admin`: the role arn:aws:iam::123456789012:role/admin, from `base` (as the source `admin`)",
        "Google Application Default Credentials: your gcloud login",
        "the Azure CLI, signed in as dev@example.com",
        "AWS profile `base`: long-term keys (as the source `base`)",
        "Claude Code, set up for Amazon Bedrock",
        "Run `credd init`",
    ] {
        assert!(status.contains(found), "{found}: {status}");
    }
    assert_eq!(
        sso.calls("GetRoleCredentials") + sso.calls("CreateToken"),
        0
    );
    assert_eq!(google.total_calls(), 0);
    assert!(!world.path("az.log").exists(), "az was run to look");

    // Adopted: a config that validates, with no secret, serving each.
    let init = world.credd(&["init", "--yes"]);
    let said = init.ok().to_string();
    assert!(said.contains("`credd setup claude-code admin`"), "{said}");
    let config = std::fs::read_to_string(&world.config).unwrap();
    for secret in [
        "long-term-secret",
        REFRESH_TOKEN,
        issued.access_token.as_str(),
    ] {
        assert!(!config.contains(secret), "a secret went into the config");
    }
    assert!(world.status()["config_error"].is_null());
    for aws in ["dev", "admin"] {
        let credentials = world.credd(&["get", aws, "--format", "aws-process"]).json();
        assert!(
            credentials["AccessKeyId"]
                .as_str()
                .unwrap()
                .starts_with("ASIA"),
            "{aws}: {credentials}"
        );
    }
    assert!(world.credd(&["get", "gcp"]).ok().trim().len() > 10);
    assert!(
        world
            .credd(&["get", "azure"])
            .ok()
            .starts_with("az-cli-token-")
    );

    // Again: byte for byte the same.
    let again = world.credd(&["init", "--yes"]);
    assert!(again.ok().contains("nothing to do"), "{}", again.stdout);
    assert_eq!(std::fs::read_to_string(&world.config).unwrap(), config);

    // Edited by hand: shown, not replaced without a yes.
    let edited = format!("{config}\n# mine\n");
    world.write_config(&edited);
    let refused = world.credd(&["init", "--yes"]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("- # mine"), "{}", refused.stderr);
    assert_eq!(std::fs::read_to_string(&world.config).unwrap(), edited);
}

#[test]
fn files_init_cannot_read_are_named_and_nothing_is_written() {
    let world = World::new().with_env("PATH", "/usr/bin:/bin");
    let aws = world.home.join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("config"),
        "[profile dev]\nsso_session = corp\nthis is not ini\n",
    )
    .unwrap();
    let world = world.with_env("AWS_CONFIG_FILE", &aws.join("config").display().to_string());
    // An ADC "file" that cannot be read (a directory), and settings that are not JSON.
    std::fs::create_dir_all(
        world
            .home
            .join(".config/gcloud/application_default_credentials.json"),
    )
    .unwrap();
    std::fs::create_dir_all(world.home.join(".claude")).unwrap();
    std::fs::write(world.home.join(".claude/settings.json"), "{ not json").unwrap();
    let status = world.credd(&["status"]).ok().to_string();
    assert!(
        status.contains(".aws/config line 3: neither a `[section]` nor a `key = value`"),
        "{status}"
    );
    assert!(
        status.contains("application_default_credentials.json cannot be read"),
        "{status}"
    );
    assert!(
        status.contains("settings.json is not valid JSON"),
        "{status}"
    );
    let init = world.credd(&["init", "--yes"]);
    assert!(
        init.ok().contains("Found no sign-ins to use"),
        "{}",
        init.stdout
    );
    assert!(!world.config.exists(), "a config was written");
    assert_eq!(
        std::fs::read_to_string(world.home.join(".claude/settings.json")).unwrap(),
        "{ not json"
    );
}

/// Drives `credd ARGS...` on a pseudo-terminal: the argument is JSON, `{"args": [...],
/// "answers": [[prompt, typed], ...]}`: each answer typed once its prompt has been shown.
const ON_A_TERMINAL: &str = r#"
import json, os, pty, sys
credd, plan = sys.argv[1], json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execv(credd, [credd] + plan["args"])
out = b""
def read():
    global out
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        return False
    out += chunk
    return bool(chunk)
for prompt, typed in plan["answers"]:
    while prompt.encode() not in out:
        if not read():
            break
    os.write(fd, typed.encode() + b"\n")
while read():
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn init_on_a_terminal_asks_which_sign_ins_and_whether_to_set_up_claude_code() {
    let moto = Moto::start();
    let world = World::new().with_aws(
        AWS_CONFIG,
        "[base]\naws_access_key_id = AKIACREDDLONGTERM012\naws_secret_access_key = long-term-secret\n",
        &moto.url(),
    );
    std::fs::create_dir_all(world.home.join(".claude")).unwrap();
    std::fs::write(
        world.home.join(".claude/settings.json"),
        r#"{"env": {"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_PROFILE": "admin", "AWS_REGION": "us-east-1"}}"#,
    )
    .unwrap();
    let plan = serde_json::json!({
        "args": ["init"],
        "answers": [["Use which?", "3"], ["now? [y/N]", "y"]],
    });
    let (code, shown) = crate::aws_mfa::run_on_a_terminal(&world, ON_A_TERMINAL, &plan.to_string());
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("1. AWS profile `dev`: SSO"), "{shown}");
    assert!(
        shown.contains("3. AWS profile `admin`: the role"),
        "{shown}"
    );
    // Only the one picked.
    let config = std::fs::read_to_string(&world.config).unwrap();
    assert!(config.contains("[sources.admin]"), "{config}");
    assert!(
        !config.contains("[sources.dev]") && !config.contains("[sources.base]"),
        "{config}"
    );
    // And Claude Code set up for it.
    let settings = std::fs::read_to_string(world.home.join(".claude/settings.json")).unwrap();
    assert!(settings.contains("get admin --format aws"), "{settings}");
    let admin = world
        .credd(&["get", "admin", "--format", "aws-process"])
        .json();
    assert!(
        admin["AccessKeyId"].as_str().unwrap().starts_with("ASIA"),
        "{admin}"
    );
}
