//! The daemon's, the sources' and the client's modules import one way: no two modules
//! (top-level ones, and the kinds of source beside each other) reach each other through
//! `crate::` or `super::` paths, directly or around a loop. (That the sources reach nothing of
//! the daemon's the compiler holds: they are a crate below it.) A module may use its own children and its parents; tests
//! are left out. A cycle found is printed as the path that closes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Every module of the crate whose sources are in `root`, and its file's text (tests cut off).
fn modules(root: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut module: Module = relative
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if module[0] == "bin" {
                continue;
            }
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            // Doc comments may name anything.
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            out.insert(module, code.join("\n"));
        }
    }
    out
}

/// The paths a file names: `crate::a::b`, `super::c`, and the items of `use crate::{a, b::c}`.
fn named_paths(module: &Module, text: &str) -> Vec<Module> {
    let mut out = Vec::new();
    let words = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|w| {
                w.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            })
            .take_while(|w: &String| !w.is_empty())
            .collect()
    };
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            for item in group.split('}').next().unwrap_or_default().split(',') {
                out.push(words(item.trim()));
            }
        } else {
            out.push(words(rest));
        }
    }
    for (at, _) in text.match_indices("super::") {
        let preceded = text[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        if preceded {
            continue;
        }
        let mut path: Module = module[..module.len().saturating_sub(1)].to_vec();
        let mut rest = &text[at..];
        while let Some(after) = rest.strip_prefix("super::") {
            rest = after;
        }
        let ups = (text[at..].len() - rest.len()) / "super::".len();
        path.truncate((module.len() + 1).saturating_sub(ups + 1));
        path.extend(words(rest));
        out.push(path);
    }
    out
}

/// The graph of module dependencies, each module cut to its first `depth` names.
fn graph(root: &Path, depth: usize) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules(root);
    let resolve = |path: &Module| {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains_key(p))
    };
    let related = |a: &Module, b: &Module| a.starts_with(b) || b.starts_with(a);
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, text) in &modules {
        for path in named_paths(module, text) {
            let Some(target) = resolve(&path) else {
                continue;
            };
            let (from, to) = (
                module[..module.len().min(depth)].to_vec(),
                target[..target.len().min(depth)].to_vec(),
            );
            if !related(&from, &to) {
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    edges
}

/// A loop in `edges`, as the modules along it.
fn cycle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<String>> {
    fn visit(
        at: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == at) {
            let mut loop_: Vec<String> = path[start..].iter().map(|m| m.join("::")).collect();
            loop_.push(at.join("::"));
            return Some(loop_);
        }
        if !done.insert(at.clone()) {
            return None;
        }
        path.push(at.clone());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut Vec::new(), &mut done))
}

fn assert_acyclic(crate_dir: &str) {
    let root = credd_tests::workspace_root().join(crate_dir).join("src");
    for depth in [1, 2] {
        let edges = graph(&root, depth);
        assert!(
            edges.len() > 3,
            "{crate_dir}: too few imports found; is the reader broken?"
        );
        if let Some(found) = cycle(&edges) {
            panic!(
                "{crate_dir}'s modules import each other in a loop: {}",
                found.join(" -> ")
            );
        }
    }
}

#[test]
fn the_daemons_modules_import_one_way() {
    assert_acyclic("daemon");
}

#[test]
fn the_sources_modules_import_one_way() {
    assert_acyclic("sources");
}

#[test]
fn the_clients_modules_import_one_way() {
    assert_acyclic("helper-cli");
}

/// Time in the daemon comes from its clock module: `Clock::now` for anything compared with
/// credd's deadlines and expiries (a test may move it), `clock::wall` for what an upstream
/// checks against its own clock. A bare `SystemTime::now` would be neither, unnoticed.
#[test]
fn the_daemon_reads_time_from_its_clock() {
    let mut bare = Vec::new();
    for crate_dir in ["daemon", "sources"] {
        let root = credd_tests::workspace_root().join(crate_dir).join("src");
        bare.extend(
            modules(&root)
                .into_iter()
                .filter(|(module, text)| module != &["clock"] && text.contains("SystemTime::now"))
                .map(|(module, _)| format!("{crate_dir}: {}", module.join("::"))),
        );
    }
    assert!(
        bare.is_empty(),
        "these read the time around the daemon's clock (use Clock::now, or clock::wall for an upstream's checks): {bare:?}"
    );
}

#[test]
fn the_reader_sees_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("lib.rs", "mod a; mod b; mod c; mod d;"),
        ("a.rs", "use crate::b::thing;"),
        ("b/mod.rs", "pub mod inner; use super::d;"),
        ("b/inner.rs", "use crate::{c::x, a};"),
        ("c.rs", "fn f() { crate::d::g() }"),
        ("d.rs", "//! see crate::a\nfn g() {}"),
    ];
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let found = cycle(&graph(dir.path(), 1));
    assert_eq!(found, Some(vec!["a".into(), "b".into(), "a".into()]));
    std::fs::write(dir.path().join("b/inner.rs"), "use crate::c::x;").unwrap();
    assert_eq!(cycle(&graph(dir.path(), 1)), None);
}
