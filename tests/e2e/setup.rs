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

/// The ```json block of the README that contains `marker`: the README shows what `setup`
/// writes, and these tests hold the two to each other.
fn readme_settings(marker: &str) -> Value {
    let readme = std::fs::read_to_string(credd_tests::workspace_root().join("README.md")).unwrap();
    let block = readme
        .split("```json")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("no README settings block with {marker}"));
    serde_json::from_str(block)
        .unwrap_or_else(|e| panic!("README block is not JSON ({e}): {block}"))
}

/// Settings reduced to what must agree: the keys, and the commands with credd's path removed.
fn shape(settings: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in settings.as_object().unwrap() {
        match value {
            Value::Object(env) if key == "env" => {
                out.extend(env.keys().map(|k| format!("env.{k}")));
            }
            Value::String(command) if command.contains("credd ") => {
                let args = command.split_once("credd ").unwrap().1;
                out.push(format!("{key} = credd {args}"));
            }
            _ => out.push(key.clone()),
        }
    }
    out.sort();
    out
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
    let backup = world.settings_backup(&settings_path(&world));
    let backup_mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(backup_mode & 0o777, 0o600);
    let backup: Value = serde_json::from_str(&std::fs::read_to_string(&backup).unwrap()).unwrap();
    assert_eq!(backup, existing);
    assert!(
        !settings_path(&world).with_extension("json.bak").exists(),
        "a backup beside the settings"
    );

    // The README shows exactly this.
    let mut written = settings.clone();
    written["env"].as_object_mut().unwrap().remove("MY_SETTING");
    for key in ["model", "permissions"] {
        written.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(shape(&written), shape(&readme_settings("\"apiKeyHelper\"")));

    // Running it again changes nothing.
    let again = world.credd(&["setup", "claude-code", "gateway", "--base-url", &api.url()]);
    assert!(again.ok().contains("nothing to do"), "{}", again.stdout);

    // The real Claude Code, with nothing but the written settings.
    let stdout = credd_tests::claude_say_hi(&world, world.dir.path(), &[]);
    assert!(stdout.contains(model_api::REPLY), "{stdout}");
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
    // The per-user path to credd stays out of the settings the project commits.
    assert!(!project.join(".claude/settings.json").exists());
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(project.join(".claude/settings.local.json")).unwrap(),
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
    let stdout = credd_tests::claude_say_hi(
        &world,
        &project,
        &[("ANTHROPIC_BEDROCK_BASE_URL", &bedrock.url())],
    );
    assert!(stdout.contains(model_api::REPLY), "{stdout}");
    let key_id = served["Credentials"]["AccessKeyId"].as_str().unwrap();
    let auth = bedrock.last_authorization();
    assert!(auth.contains(&format!("Credential={key_id}/")), "{auth}");
    assert!(auth.contains("/us-west-2/bedrock/"), "{auth}");
}

#[test]
fn setup_via_the_container_endpoint_serves_claude_code_without_helpers() {
    let moto = credd_tests::peers::Moto::start();
    let port = credd_tests::peers::free_port();
    let world = World::new().with_aws(
        "[profile base]\nregion = us-east-1\n\n[profile bedrock]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/bedrock\nsource_profile = base\n",
        "[base]\naws_access_key_id = AKIACREDDLONGTERM007\naws_secret_access_key = long-term-secret\n",
        &moto.url(),
    );
    world.write_config(&format!(
        "[sources.bedrock]\nkind = \"aws\"\nprofile = \"bedrock\"\ncontainer_endpoint = {{ port = {port} }}\n"
    ));
    let _daemon = world.start_daemon();
    credd_tests::peers::wait_for_port(
        port,
        std::time::Duration::from_secs(10),
        "the container endpoint",
    );
    world
        .credd(&["setup", "claude-code", "bedrock", "--via", "endpoint"])
        .ok();
    let settings = read_settings(&world);
    assert!(settings.get("awsCredentialExport").is_none(), "{settings}");
    assert_eq!(
        settings["env"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        format!("http://127.0.0.1:{port}/aws/credentials")
    );

    // No AWS files for Claude Code: only the endpoint can give it credentials.
    let bedrock = ModelApi::start();
    let served = world.credd(&["get", "bedrock", "--format", "aws"]).json();
    let stdout = credd_tests::claude_say_hi(
        &world,
        world.dir.path(),
        &[
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("ANTHROPIC_BEDROCK_BASE_URL", &bedrock.url()),
        ],
    );
    assert!(stdout.contains(model_api::REPLY), "{stdout}");
    let key_id = served["Credentials"]["AccessKeyId"].as_str().unwrap();
    let auth = bedrock.last_authorization();
    assert!(auth.contains(&format!("Credential={key_id}/")), "{auth}");
}

/// git in `dir`, isolated from this machine's own configuration; what it printed.
fn git(world: &World, dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=credd", "-c", "user.email=credd@localhost"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &world.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_project_set_up_for_the_proxy_keeps_its_secret_out_of_git_and_output() {
    let api = ModelApi::start();
    let world = crate::proxy::gateway_through_the_proxy(&api, "sk-gateway-token-1");
    let _daemon = world.start_daemon();
    let (url, secret) = crate::proxy::proxy_of(&world, "gateway");

    // A project whose committed settings hold what an older credd wrote there (its proxy, with
    // a caller secret), and whose own local settings send a header of the team's.
    let project = world.dir.path().join("app");
    let claude_dir = project.join(".claude");
    std::fs::create_dir_all(&claude_dir).unwrap();
    git(&world, &project, &["init", "-q"]);
    let old_secret = "0ld5ecret0ld5ecret0ld5ecret";
    std::fs::write(
        claude_dir.join("settings.json"),
        json!({"model": "opus", "env": {
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_CUSTOM_HEADERS": format!("X-Credd-Proxy-Secret: {old_secret}"),
        }})
        .to_string(),
    )
    .unwrap();
    git(&world, &project, &["add", ".claude/settings.json"]);
    git(&world, &project, &["commit", "-q", "-m", "settings"]);
    let local = claude_dir.join("settings.local.json");
    std::fs::write(
        &local,
        json!({"env": {"ANTHROPIC_CUSTOM_HEADERS": "X-Team: blue"}}).to_string(),
    )
    .unwrap();
    // A backup an older credd left beside it, with a caller secret in it.
    let old_backup = claude_dir.join("settings.local.json.bak");
    std::fs::write(
        &old_backup,
        json!({"env": {"ANTHROPIC_CUSTOM_HEADERS": format!("X-Credd-Proxy-Secret: {old_secret}")}})
            .to_string(),
    )
    .unwrap();
    let before = std::fs::read(&local).unwrap();

    let project_arg = project.to_str().unwrap();
    let setup = |extra: &[&str]| {
        let mut args = vec!["setup", "claude-code", "gateway", "--project", project_arg];
        args.extend(extra);
        let out = world.credd(&args);
        for (i, s) in [&secret, old_secret].iter().enumerate() {
            assert!(
                !out.stdout.contains(*s) && !out.stderr.contains(*s),
                "setup {extra:?} printed secret {i}"
            );
        }
        out
    };
    let dry = setup(&["--via", "proxy", "--tcp", "--dry-run"]);
    assert!(
        dry.ok()
            .contains("Would add `**/.claude/settings.local.json`"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("Would move"), "{}", dry.stdout);
    // (Compared without printing: the file may hold a caller secret.)
    assert!(std::fs::read(&local).unwrap() == before, "--dry-run wrote");
    assert!(old_backup.exists(), "--dry-run moved the old backup");
    setup(&["--via", "proxy", "--tcp"]).ok();

    // The team's header is kept beside the caller secret.
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&local).unwrap()).unwrap();
    assert!(
        written["env"]["ANTHROPIC_CUSTOM_HEADERS"]
            == format!("X-Team: blue\nX-Credd-Proxy-Secret: {secret}").as_str(),
        "the headers are not the team's and the caller secret"
    );
    // The committed file no longer holds the older secret, and nothing git would take holds
    // either: settings.local.json is ignored, and no backup is left in the project.
    let committed = std::fs::read_to_string(claude_dir.join("settings.json")).unwrap();
    assert!(
        !committed.contains(old_secret),
        "the older secret is still committed"
    );
    assert!(!committed.contains("127.0.0.1"), "{committed}");
    git(
        &world,
        &project,
        &["check-ignore", "-q", ".claude/settings.local.json"],
    );
    let status = git(
        &world,
        &project,
        &["status", "--porcelain", "--untracked-files=all"],
    );
    assert_eq!(status.trim(), "M .claude/settings.json", "{status}");
    for entry in std::fs::read_dir(&claude_dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            ["settings.json", "settings.local.json"].contains(&name.to_str().unwrap()),
            "{name:?} is left in the project"
        );
    }
    // The previous files are kept where credd keeps its own, readable by this user alone.
    let backup = world.settings_backup(&claude_dir.join("settings.json"));
    let kept = std::fs::read_to_string(&backup).unwrap();
    assert!(kept.contains("\"model\""));
    let moved = world
        .settings_backup(&local)
        .with_file_name("settings.local.json.bak");
    assert!(
        std::fs::read_to_string(&moved)
            .unwrap()
            .contains(old_secret),
        "the older backup was not kept"
    );
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Back to the helper, and the output still shows no secret.
    setup(&[]).ok();

    // A project that tracks settings.local.json would commit the secret: refused, untouched.
    git(
        &world,
        &project,
        &["add", "-f", ".claude/settings.local.json"],
    );
    let before = std::fs::read(&local).unwrap();
    let refused = setup(&["--via", "proxy", "--tcp"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("is tracked by git"),
        "{}",
        refused.stderr
    );
    assert!(
        std::fs::read(&local).unwrap() == before,
        "the refused setup wrote"
    );
}

#[test]
fn a_project_settings_file_git_cannot_keep_the_secret_out_of_is_left_alone() {
    let api = ModelApi::start();
    let world = crate::proxy::gateway_through_the_proxy(&api, "sk-gateway-token-1");
    let _daemon = world.start_daemon();
    let repo = world.dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&world, &repo, &["init", "-q"]);
    let setup_in =
        |cwd: &std::path::Path, project: &std::path::Path, env: &[(&str, &std::path::Path)]| {
            let mut command = world.credd_command(&[
                "setup",
                "claude-code",
                "gateway",
                "--via",
                "proxy",
                "--tcp",
                "--project",
                project.to_str().unwrap(),
            ]);
            command.current_dir(cwd);
            for (name, value) in env {
                command.env(name, value);
            }
            credd_tests::Output::from(command.output().unwrap())
        };
    let setup = |project: &std::path::Path, env: &[(&str, &std::path::Path)]| {
        setup_in(world.dir.path(), project, env)
    };

    // A relative --project, not made yet, in a repository of its own.
    let fresh = world.dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    git(&world, &fresh, &["init", "-q"]);
    setup_in(&fresh, std::path::Path::new("relative"), &[]).ok();
    git(
        &world,
        &fresh,
        &["check-ignore", "-q", "relative/.claude/settings.local.json"],
    );
    assert!(fresh.join("relative/.claude/settings.local.json").exists());

    // A project not made yet, in a subdirectory of the repository, with the caller's GIT_DIR
    // naming another repository (as inside a git hook): the rule goes to this one, and the new
    // file is ignored.
    let elsewhere = world.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    git(&world, &elsewhere, &["init", "-q"]);
    let service = repo.join("service");
    setup(&service, &[("GIT_DIR", &elsewhere.join(".git"))]).ok();
    git(
        &world,
        &repo,
        &["check-ignore", "-q", "service/.claude/settings.local.json"],
    );
    let excluded = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join(".git/info/exclude")).unwrap_or_default()
    };
    assert!(excluded(&repo).contains("**/.claude/settings.local.json"));
    assert!(!excluded(&elsewhere).contains("settings.local.json"));
    // Once is enough.
    setup(&service, &[]).ok();
    assert_eq!(
        excluded(&repo)
            .matches("**/.claude/settings.local.json")
            .count(),
        1
    );

    // A rule of the project's own that un-ignores the file wins over info/exclude: refused.
    let negated = repo.join("negated");
    std::fs::create_dir_all(&negated).unwrap();
    std::fs::write(negated.join(".gitignore"), "!.claude/settings.local.json\n").unwrap();
    let refused = setup(&negated, &[]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("un-ignores"), "{}", refused.stderr);
    assert!(!negated.join(".claude/settings.local.json").exists());

    // A .claude that is a link to a tracked directory: git cannot see through it. Refused.
    let linked = repo.join("linked");
    std::fs::create_dir_all(repo.join("shared")).unwrap();
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink("../shared", linked.join(".claude")).unwrap();
    let refused = setup(&linked, &[]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("symbolic link"),
        "{}",
        refused.stderr
    );
    assert!(!repo.join("shared/settings.local.json").exists());

    // A home kept in git (dotfiles) that tracks the user's settings: written, and said so.
    let settings = world.home.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, "{}").unwrap();
    git(&world, &world.home, &["init", "-q"]);
    git(&world, &world.home, &["add", ".claude/settings.json"]);
    let noted = world.credd(&["setup", "claude-code", "gateway", "--via", "proxy", "--tcp"]);
    assert!(
        noted
            .ok()
            .contains(&format!("git tracks {}", settings.display())),
        "{}",
        noted.stdout
    );
}

/// What `gcloud auth application-default login` leaves in the user's home: a file a
/// repository's symbolic link could point `setup` at. Where it is, and its secrets (for the
/// tests to look for, never to print).
fn application_default_credentials(world: &World) -> (std::path::PathBuf, [&'static str; 2]) {
    let secrets = [
        "1//0fake-adc-refresh-token-of-the-user",
        "fake-adc-client-secret",
    ];
    let path = world
        .home
        .join(".config/gcloud/application_default_credentials.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let adc = json!({
        "client_id": "fake-client.apps.googleusercontent.com",
        "client_secret": secrets[1],
        "refresh_token": secrets[0],
        "type": "authorized_user",
    });
    std::fs::write(&path, adc.to_string()).unwrap();
    (path, secrets)
}

#[test]
fn setup_never_reads_or_writes_settings_through_a_symbolic_link() {
    let api = ModelApi::start();
    let world = crate::proxy::gateway_through_the_proxy(&api, "sk-gateway-token-1");
    let _daemon = world.start_daemon();
    let (adc, secrets) = application_default_credentials(&world);
    let before = std::fs::read(&adc).unwrap();
    // A cloned repository that ships its settings as links to the user's credentials.
    let project = world.dir.path().join("cloned");
    let claude_dir = project.join(".claude");
    std::fs::create_dir_all(&claude_dir).unwrap();
    let user_settings = settings_path(&world);
    std::fs::create_dir_all(user_settings.parent().unwrap()).unwrap();
    let project_arg = project.to_str().unwrap();
    let committed = claude_dir.join("settings.json");
    let local = claude_dir.join("settings.local.json");
    // Each route's own file and the other one it tidies, with and without --dry-run; and the
    // user's own file (their ~/.claude may be a link, a file in it may not).
    let cases: [(&std::path::Path, &[&str]); 8] = [
        (&committed, &["--project", project_arg]),
        (&committed, &["--project", project_arg, "--dry-run"]),
        (&committed, &["--project", project_arg, "--via", "proxy"]),
        (&local, &["--project", project_arg, "--via", "proxy"]),
        (
            &local,
            &["--project", project_arg, "--via", "proxy", "--dry-run"],
        ),
        (&local, &["--project", project_arg]),
        (&user_settings, &[]),
        (&user_settings, &["--via", "proxy", "--dry-run"]),
    ];
    for (link, extra) in cases {
        std::os::unix::fs::symlink(&adc, link).unwrap();
        let mut args = vec!["setup", "claude-code", "gateway"];
        args.extend(extra);
        let out = world.credd(&args);
        // (Checked first, and never printed: what follows may print the output.)
        for (i, secret) in secrets.iter().enumerate() {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "setup {extra:?} printed the credentials file's secret {i}"
            );
        }
        assert_eq!(
            out.code,
            2,
            "setup {extra:?} with {} a link: {}{}",
            link.display(),
            out.stdout,
            out.stderr
        );
        assert_refused_the_link(&out, link);
        let kind = std::fs::symlink_metadata(link).unwrap().file_type();
        assert!(kind.is_symlink(), "setup {extra:?} replaced the link");
        assert!(
            std::fs::read(&adc).unwrap() == before,
            "setup {extra:?} changed the credentials file"
        );
        std::fs::remove_file(link).unwrap();
    }
    // Nor is a copy of them kept anywhere (a backup, say).
    for (i, secret) in secrets.iter().enumerate() {
        let found = world.files_containing(secret);
        assert!(found == [adc.clone()], "secret {i} is also in {found:?}");
    }
}

#[test]
fn a_project_whose_claude_directory_is_a_symbolic_link_is_refused() {
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-x");
    world.write_config(&exec_config("gateway", &cmd, ""));
    // A repository whose `.claude` points at a directory of the user's own.
    let elsewhere = world.home.join(".config/some-tool");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("settings.json"), "{\"model\": \"opus\"}").unwrap();
    let project = world.dir.path().join("cloned");
    std::fs::create_dir_all(&project).unwrap();
    let linked = project.join(".claude");
    std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
    let project_arg = project.to_str().unwrap();
    // The helper route, with --dry-run, and the status line alone (no daemon asked).
    for extra in [
        &["gateway"][..],
        &["gateway", "--dry-run"],
        &["--statusline"],
    ] {
        let mut args = vec!["setup", "claude-code", "--project", project_arg];
        args.extend(extra);
        let out = world.credd(&args);
        assert_eq!(out.code, 2, "setup {extra:?}: {}{}", out.stdout, out.stderr);
        assert_refused_the_link(&out, &linked);
    }
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("settings.json")).unwrap(),
        "{\"model\": \"opus\"}"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        1,
        "setup left a file where the link points"
    );
}

#[test]
fn a_home_claude_directory_linked_into_a_dotfiles_repository_is_followed_and_noted() {
    let api = ModelApi::start();
    let world = crate::proxy::gateway_through_the_proxy(&api, "sk-gateway-token-1");
    let _daemon = world.start_daemon();
    let (_, secret) = crate::proxy::proxy_of(&world, "gateway");
    // A dotfiles repository that tracks the user's Claude Code settings, linked in as ~/.claude.
    let dotfiles = world.dir.path().join("dotfiles");
    let real = dotfiles.join("claude/settings.json");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, "{\"model\": \"opus\"}\n").unwrap();
    git(&world, &dotfiles, &["init", "-q"]);
    git(&world, &dotfiles, &["add", "claude/settings.json"]);
    let home_claude = world.home.join(".claude");
    std::os::unix::fs::symlink(real.parent().unwrap(), &home_claude).unwrap();

    let out = world.credd(&["setup", "claude-code", "gateway", "--via", "proxy", "--tcp"]);
    assert!(
        !out.stdout.contains(&secret) && !out.stderr.contains(&secret),
        "setup printed the caller secret"
    );
    let settings = settings_path(&world);
    assert!(
        out.ok()
            .contains(&format!("git tracks {}", settings.display())),
        "{}",
        out.stdout
    );
    // Written where the link leads, as a file; the link is the user's, and stays.
    let kind = |path: &std::path::Path| std::fs::symlink_metadata(path).unwrap().file_type();
    assert!(kind(&home_claude).is_symlink());
    assert!(kind(&real).is_file());
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(written["model"], "opus");
    assert!(
        written["env"]["ANTHROPIC_CUSTOM_HEADERS"].is_string(),
        "the proxy's settings are not in the file the link leads to"
    );
}

/// `setup` refused, before printing anything, because `link` is a symbolic link.
fn assert_refused_the_link(out: &credd_tests::Output, link: &std::path::Path) {
    assert!(
        out.stdout.is_empty(),
        "printed before refusing: {}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains(&format!("{} is a symbolic link", link.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn a_projects_helper_settings_go_to_the_local_file_that_git_leaves_alone() {
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-from-setup");
    world.write_config(&exec_config("gateway", &cmd, ""));
    let project = world.dir.path().join("app");
    std::fs::create_dir_all(project.join(".claude")).unwrap();
    git(&world, &project, &["init", "-q"]);
    // What an older credd wrote to the committed file: its path to credd, this machine's.
    std::fs::write(
        project.join(".claude/settings.json"),
        json!({"model": "opus", "apiKeyHelper": "/home/someone/.cargo/bin/credd get gateway"})
            .to_string(),
    )
    .unwrap();
    let out = world.credd(&[
        "setup",
        "claude-code",
        "gateway",
        "--project",
        project.to_str().unwrap(),
    ]);
    let said = out.ok().to_string();
    assert!(
        said.contains("so that git leaves credd's settings for this machine"),
        "{said}"
    );
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(project.join(".claude").join(name)).unwrap())
            .unwrap()
    };
    assert!(read("settings.local.json")["apiKeyHelper"].is_string());
    // The committed file keeps the team's settings, and loses credd's.
    assert_eq!(read("settings.json"), json!({"model": "opus"}));
    git(
        &world,
        &project,
        &["check-ignore", "-q", ".claude/settings.local.json"],
    );

    // A project that tracks settings.local.json would commit them: refused, untouched.
    let tracked = world.dir.path().join("tracked");
    std::fs::create_dir_all(tracked.join(".claude")).unwrap();
    git(&world, &tracked, &["init", "-q"]);
    std::fs::write(tracked.join(".claude/settings.local.json"), "{}").unwrap();
    git(
        &world,
        &tracked,
        &["add", "-f", ".claude/settings.local.json"],
    );
    let out = world.credd(&[
        "setup",
        "claude-code",
        "gateway",
        "--project",
        tracked.to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("is tracked by git"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(tracked.join(".claude/settings.local.json")).unwrap(),
        "{}"
    );
}
