#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! No two modules of the crate import each other, directly or through
//! others: each top-level module (`src/X.rs` with `src/X/**`) names the
//! modules it uses as `crate::Y` (comments aside), and that graph has no
//! cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Edges known to close a cycle, to be removed: `ingress` uses the
/// accept loop and TLS handshake of `server`, which starts the ingresses.
const KNOWN: &[(&str, &str)] = &[("ingress", "server")];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module names `text` uses as `crate::NAME` or `crate::{NAME, ...}`.
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let code = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let list = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or_default(),
            None => rest,
        };
        for item in list.split(',') {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
            if !rest.starts_with('{') {
                break;
            }
        }
    }
    names
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: BTreeMap<String, Vec<std::path::PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            if name != "bin" {
                rust_files(&path, files.entry(name).or_default());
            }
        } else if name != "lib" {
            files.entry(name).or_default().push(path);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(module, paths)| {
            let uses = paths
                .iter()
                .flat_map(|p| crate_uses(&std::fs::read_to_string(p).unwrap()))
                .filter(|used| used != module && modules.contains(used))
                .filter(|used| !KNOWN.contains(&(module.as_str(), used.as_str())))
                .collect();
            (module.clone(), uses)
        })
        .collect()
}

/// A cycle through `from`, as the modules on it.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_string(), vec![from.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in &graph[&module] {
            if next == from {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let graph = graph();
    assert!(graph.contains_key("routes") && graph["routes"].contains("verify_api"));
    let cycles: Vec<Vec<String>> = graph.keys().filter_map(|m| cycle_from(&graph, m)).collect();
    assert!(cycles.is_empty(), "module cycles: {cycles:?}");
}

#[test]
fn the_use_scan_reads_groups_and_skips_comments() {
    let text = "use crate::app::App;\nuse crate::{api, verify_api};\n// crate::server\n";
    let found = crate_uses(text);
    assert_eq!(found, ["api", "app", "verify_api"].map(String::from).into());
}
