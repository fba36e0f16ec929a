//! The man page, shell completions and `--help` snapshots in packaging/ are what the CLI
//! definition produces, and what the built `credd` prints; the README and docs/ hold valid
//! config examples, the client's exit codes and links that lead somewhere: docs cannot drift
//! from the program.

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
        // credd-setup-claude-code -> ["setup", "claude-code"]; credd-ssh-config -> ["ssh-config"]
        let args: Vec<String> = match name.strip_prefix("credd-") {
            None => vec![],
            Some(sub) if sub.starts_with("setup-") => {
                vec!["setup".into(), sub["setup-".len()..].to_string()]
            }
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

/// README.md and every page under docs/, for the tests that read what users read.
fn user_docs() -> Vec<std::path::PathBuf> {
    let root = credd_tests::workspace_root();
    let mut pages: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root.join("README.md"));
    pages.push(root.join("CONTRIBUTING.md"));
    pages
}

/// The ```toml blocks of a page, joined: one config, as a user would paste them together.
fn toml_examples(text: &str) -> Vec<&str> {
    text.split("```toml")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect()
}

#[test]
fn the_config_examples_in_the_docs_are_valid() {
    let mut shown = std::collections::BTreeSet::new();
    for page in user_docs() {
        let text = std::fs::read_to_string(&page).unwrap();
        let examples = toml_examples(&text);
        if examples.is_empty() {
            continue;
        }
        let world = credd_tests::World::new();
        world.write_config(&examples.join("\n"));
        let _daemon = world.start_daemon();
        let status = world.status();
        assert!(
            status["config_error"].is_null(),
            "{}: a config example: {}",
            page.display(),
            status["config_error"]
        );
        let names: Vec<String> = status["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        let tables = examples
            .iter()
            .flat_map(|e| e.lines())
            // `[sources.NAME]`, not a sub-table such as `[sources.NAME.web_identity]`.
            .filter_map(|l| l.strip_prefix("[sources."))
            .filter(|rest| !rest.split(']').next().unwrap_or_default().contains('.'))
            .count();
        assert_eq!(names.len(), tables, "{}: {names:?}", page.display());
        shown.extend(names);
    }
    // One of each kind, and the proxy's.
    for name in ["bedrock", "claude-bedrock", "foundry", "gateway", "vertex"] {
        assert!(
            shown.contains(name),
            "no doc shows [sources.{name}] any more"
        );
    }
}

/// Every relative link of the user docs names a file that exists, and a heading in it when it
/// names one.
#[test]
fn the_docs_links_lead_somewhere() {
    let anchor_of = |heading: &str| -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    };
    let anchors = |text: &str| -> Vec<String> {
        let mut fenced = false;
        text.lines()
            .filter(|l| {
                if l.starts_with("```") {
                    fenced = !fenced;
                }
                !fenced && l.starts_with('#')
            })
            .map(|l| anchor_of(l.trim_start_matches('#')))
            .collect()
    };
    let mut checked = 0;
    for page in user_docs() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (at, _) in text.match_indices("](") {
            let target = text[at + 2..].split(')').next().unwrap();
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            assert!(
                file.exists(),
                "{}: the link `{target}` leads nowhere",
                page.display()
            );
            if !anchor.is_empty() && file.extension().is_some_and(|e| e == "md") {
                let linked = std::fs::read_to_string(&file).unwrap();
                assert!(
                    anchors(&linked).iter().any(|a| a == anchor),
                    "{}: no heading for `{target}`",
                    page.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "too few links found; is the reader broken?");
}

/// Everything moved out of the README is reachable from it.
#[test]
fn the_readme_links_every_doc() {
    let readme = std::fs::read_to_string(credd_tests::workspace_root().join("README.md")).unwrap();
    for page in user_docs().iter().skip(1) {
        let root = credd_tests::workspace_root();
        let relative = page.strip_prefix(&root).unwrap().display().to_string();
        assert!(
            readme.contains(&format!("]({relative}")),
            "README.md does not link {relative}"
        );
    }
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
