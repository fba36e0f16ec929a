//! The man page, shell completions and `--help` snapshots in packaging/ are what the CLI
//! definition produces, and what the built `credd` prints: docs cannot drift from the program.

use std::path::Path;
use std::process::Command;

const REGENERATE: &str = "cargo run -p credd --features docs --bin credd-docs -- packaging";

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["completions", "man", "help"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            out.push(format!(
                "{sub}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn committed_docs_match_the_cli_definition() {
    let fresh = tempfile::tempdir().unwrap();
    let status = Command::new(credd_tests::bin("credd-docs"))
        .arg(fresh.path())
        .status()
        .unwrap();
    assert!(status.success());
    let committed = credd_tests::workspace_root().join("packaging");
    assert_eq!(
        files_under(fresh.path()),
        files_under(&committed),
        "run `{REGENERATE}`"
    );
    for file in files_under(fresh.path()) {
        let want = std::fs::read_to_string(fresh.path().join(&file)).unwrap();
        let have = std::fs::read_to_string(committed.join(&file)).unwrap();
        assert!(
            want == have,
            "packaging/{file} is out of date; run `{REGENERATE}`"
        );
    }
}

#[test]
fn the_binary_prints_the_committed_help() {
    let help_dir = credd_tests::workspace_root().join("packaging/help");
    for entry in std::fs::read_dir(&help_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        // credd-setup-claude-code -> ["setup", "claude-code"]
        let args: Vec<String> = match name.strip_prefix("credd-") {
            None => vec![],
            Some("setup-claude-code") => vec!["setup".into(), "claude-code".into()],
            Some(sub) => vec![sub.to_string()],
        };
        let out = Command::new(credd_tests::bin("credd"))
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success());
        let printed = String::from_utf8_lossy(&out.stdout);
        let committed = std::fs::read_to_string(&path).unwrap();
        assert!(
            printed == committed,
            "`credd {} --help` differs from {}; run `{REGENERATE}`",
            args.join(" "),
            path.display()
        );
    }
}

#[test]
fn the_readme_config_examples_are_valid() {
    let readme = std::fs::read_to_string(credd_tests::workspace_root().join("README.md")).unwrap();
    let examples: Vec<&str> = readme
        .split("```toml")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert!(examples.len() >= 2, "the README lost its config examples");
    let world = credd_tests::World::new();
    world.write_config(&examples.join("\n"));
    let _daemon = world.start_daemon();
    let status = world.status();
    assert!(
        status["config_error"].is_null(),
        "README config example: {}",
        status["config_error"]
    );
    let names: Vec<&str> = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["bedrock", "claude-bedrock", "foundry", "gateway", "vertex"]
    );
}

#[test]
fn the_readme_exit_code_table_is_the_clients() {
    let readme = std::fs::read_to_string(credd_tests::workspace_root().join("README.md")).unwrap();
    let table = credd_proto::exit::markdown_table();
    assert!(
        readme.contains(&table),
        "the README's exit code table differs from credd_proto::exit; it should read:\n{table}"
    );
}
