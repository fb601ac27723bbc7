//! The shim's house rules, read from its own `use` lines (run by `make lint`):
//! - each top-level module stands on a floor, and imports only from floors
//!   below it (modules sharing a floor do not import each other);
//! - no circle of imports between the files of one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Floors, bottom first.
const FLOORS: &[&[&str]] = &[
    &["assets", "mounts"],
    &["net"],
    &["vm"],
    &["guest", "io"],
    &["otel"],
    &["config", "error"],
    &["spec"],
    &["sandbox"],
    &["container"],
    &["task"],
    &["shim"],
];

fn floor(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment after each `prefix` in `text` (`crate::` gives
/// module names); for a group (`prefix{a::x, b}`), each item's.
fn names_after(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        let rest = &text[i + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0;
                let mut item_start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        _ if item_start && !c.is_whitespace() => {
                            out.push(ident(&group[j..]));
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            }
            None => out.push(ident(rest)),
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// Source text without comments (a `crate::x` in a doc comment is no import).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

struct House {
    src: PathBuf,
    files: Vec<PathBuf>,
}

impl House {
    fn read() -> House {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        House { src, files }
    }

    /// The top-level module of a file (`task` for src/task/create.rs), if any.
    fn module(&self, file: &Path) -> Option<String> {
        let rel = file.strip_prefix(&self.src).ok()?;
        let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_string();
        (module != "lib" && module != "main").then_some(module)
    }

    fn rel(&self, file: &Path) -> String {
        file.strip_prefix(&self.src).unwrap().display().to_string()
    }
}

/// Imports of a module on the same floor or above.
fn upward_imports(house: &House) -> Vec<String> {
    let mut bad = Vec::new();
    for file in &house.files {
        let Some(own) = house.module(file) else { continue };
        let own_floor = floor(&own).unwrap_or_else(|| panic!("module {own} has no floor in FLOORS"));
        let text = code(&std::fs::read_to_string(file).unwrap());
        for m in names_after(&text, "crate::") {
            if m == own {
                continue;
            }
            match floor(&m) {
                Some(f) if f < own_floor => {}
                Some(_) => bad.push(format!(
                    "{} imports crate::{m}, which is not below {own}",
                    house.rel(file)
                )),
                None => {}
            }
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

/// File → files of the same module it imports (`super::x`, `crate::own::x`).
fn file_edges(house: &House) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &house.files {
        let Some(own) = house.module(file) else { continue };
        let dir = file.parent().unwrap();
        // `super` of a mod.rs is its parent folder's module.
        let super_dir = if file.file_name().is_some_and(|n| n == "mod.rs") {
            dir.parent().unwrap()
        } else {
            dir
        };
        let text = code(&std::fs::read_to_string(file).unwrap());
        let mut targets: Vec<PathBuf> = names_after(&text, "super::")
            .iter()
            .map(|n| super_dir.join(n))
            .collect();
        let own_prefix = format!("crate::{own}::");
        targets.extend(
            names_after(&text, &own_prefix)
                .iter()
                .map(|n| house.src.join(&own).join(n)),
        );
        for t in targets {
            for candidate in [t.with_extension("rs"), t.join("mod.rs")] {
                if candidate != *file && house.files.contains(&candidate) {
                    edges.entry(file.clone()).or_default().insert(candidate);
                }
            }
        }
    }
    edges
}

/// Every circle of files, each as the files around it.
fn circles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    fn visit(
        node: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        path: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
        out: &mut Vec<Vec<PathBuf>>,
    ) {
        if let Some(at) = path.iter().position(|p| p == node) {
            out.push(path[at..].to_vec());
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, path, done, out);
        }
        path.pop();
        done.insert(node.clone());
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, edges, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

#[test]
fn no_module_imports_one_on_its_floor_or_above() {
    let bad = upward_imports(&House::read());
    assert!(
        bad.is_empty(),
        "imports that run up the floors {FLOORS:?}:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_circle_of_imports_between_files() {
    let house = House::read();
    let found: Vec<String> = circles(&file_edges(&house))
        .iter()
        .map(|c| c.iter().map(|f| house.rel(f)).collect::<Vec<_>>().join(" -> "))
        .collect();
    assert!(found.is_empty(), "circles of imports:\n{}", found.join("\n"));
}

#[test]
fn the_rules_see_what_they_must() {
    assert_eq!(
        names_after("use crate::{vm::X, net};\nlet a = crate::task::f();", "crate::"),
        ["vm", "net", "task"]
    );
    assert_eq!(names_after("use super::create::vm_id;", "super::"), ["create"]);
    let (a, b) = (PathBuf::from("a.rs"), PathBuf::from("b.rs"));
    let edges = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([a.clone()])),
    ]);
    assert_eq!(circles(&edges), [vec![a, b]]);
}
