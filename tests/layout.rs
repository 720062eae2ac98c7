//! The source tree's shape (docs/ARCHITECTURE.md): no import circle between modules that are not
//! parent and child, and no file over 600 lines of code, so a newcomer can read one module
//! without the rest and one file at a sitting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a file in `src/` may be, in lines that are neither blank nor `//` comments.
const MAX_CODE_LINES: usize = 600;

/// A module's path below the crate root (`["http", "ops", "web"]`).
type ModulePath = Vec<String>;

fn source_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a readable src/ entry").path();
        if path.is_dir() {
            source_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The module a file defines: `src/http/ops/web.rs` and `src/http/ops/web/mod.rs` are both
/// `http::ops::web`; `src/lib.rs` is the root.
fn module_of(src: &Path, file: &Path) -> ModulePath {
    let relative = file.strip_prefix(src).expect("a file below src/");
    let mut parts: ModulePath = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The text of a file without its inline `#[cfg(test)] mod tests { ... }` (tests may import
/// anything) and without comments.
fn code_of(text: &str) -> String {
    let without_tests = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    without_tests
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `use` item names, with first-level braces expanded
/// (`use crate::a::{b, c::d};` names `crate::a::b` and `crate::a::c`).
fn used_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let preceded_ok = at == 0
            || rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_whitespace() || matches!(c, ';' | '{' | '}' | ')'));
        let tail = &rest[at + 4..];
        let Some(end) = tail.find(';') else { break };
        let item: String = tail[..end].split_whitespace().collect();
        rest = &tail[end..];
        if !preceded_ok {
            continue;
        }
        let (base, inner) = match item.split_once('{') {
            Some((base, inner)) => (base.trim_end_matches("::"), Some(inner)),
            None => (item.as_str(), None),
        };
        let split = |s: &str| -> Vec<String> {
            s.split("::")
                .filter(|p| !p.is_empty())
                .map(|p| p.split(" as ").next().unwrap_or(p).to_owned())
                .collect()
        };
        match inner {
            None => paths.push(split(base)),
            Some(inner) => {
                let mut depth = 0;
                let mut first_level = String::new();
                for c in inner.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ if depth == 0 => first_level.push(c),
                        _ => {}
                    }
                }
                for name in first_level.split(',').filter(|n| !n.is_empty()) {
                    let head = name.split("::").next().unwrap_or(name);
                    let mut path = split(base);
                    path.push(head.to_owned());
                    paths.push(path);
                }
            }
        }
    }
    paths
}

/// The module a `use` path lands in, from the module `from` (`crate::`, `super::`, `self::`
/// paths; external crates are not ours), as the longest prefix that is one of our modules.
fn target_of(
    from: &ModulePath,
    path: &[String],
    modules: &BTreeSet<ModulePath>,
) -> Option<ModulePath> {
    let (mut absolute, rest): (ModulePath, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (from.clone(), &path[1..]),
        Some("super") => {
            // In `a/b.rs` and in `a/b/mod.rs` alike, `super` is `a`.
            let mut at = from.clone();
            let mut i = 0;
            while path.get(i).is_some_and(|p| p == "super") {
                at.pop();
                i += 1;
            }
            (at, &path[i..])
        }
        _ => return None,
    };
    absolute.extend(rest.iter().cloned());
    (1..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|candidate| modules.contains(candidate))
}

fn is_prefix(short: &ModulePath, long: &ModulePath) -> bool {
    long.len() >= short.len() && long[..short.len()] == short[..]
}

fn find_circle(
    node: &ModulePath,
    edges: &BTreeMap<ModulePath, BTreeSet<ModulePath>>,
    state: &mut BTreeMap<ModulePath, bool>,
    stack: &mut Vec<ModulePath>,
) -> Option<Vec<ModulePath>> {
    state.insert(node.clone(), false);
    stack.push(node.clone());
    for next in edges.get(node).into_iter().flatten() {
        match state.get(next) {
            Some(false) => {
                let start = stack.iter().position(|m| m == next).unwrap_or(0);
                let mut circle = stack[start..].to_vec();
                circle.push(next.clone());
                return Some(circle);
            }
            Some(true) => {}
            None => {
                if let Some(circle) = find_circle(next, edges, state, stack) {
                    return Some(circle);
                }
            }
        }
    }
    stack.pop();
    state.insert(node.clone(), true);
    None
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_circle_between_modules() {
    let src = src_dir();
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let modules: BTreeSet<ModulePath> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: BTreeMap<ModulePath, BTreeSet<ModulePath>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        // Test modules may import anything.
        if from
            .last()
            .is_some_and(|m| m == "tests" || m.ends_with("proptests"))
        {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for path in used_paths(&code_of(&text)) {
            let Some(to) = target_of(&from, &path, &modules) else {
                continue;
            };
            // A parent re-exports its children and a child uses its parent's items: that
            // pair is one unit, not a circle.
            if is_prefix(&to, &from) || is_prefix(&from, &to) {
                continue;
            }
            edges.entry(from.clone()).or_default().insert(to);
        }
    }
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 100,
        "the import graph looks empty: is the parser reading `use` items?"
    );
    let mut state = BTreeMap::new();
    for module in &modules {
        if state.contains_key(module) {
            continue;
        }
        if let Some(circle) = find_circle(module, &edges, &mut state, &mut Vec::new()) {
            let shown: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
            panic!("import circle: {}", shown.join(" -> "));
        }
    }
}

#[test]
fn no_source_file_over_600_lines_of_code() {
    let src = src_dir();
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(file).expect("a readable source file");
            let code = text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
                .count();
            (code > MAX_CODE_LINES).then(|| format!("{} ({code})", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_CODE_LINES} lines of code: {long:?}"
    );
}
