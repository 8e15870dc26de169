//! The layer order of `docs/architecture.md`, held against the code's own
//! imports: a top-level module imports only modules below it (or to its
//! left on its own line), and no file takes part in an import cycle, apart
//! from a folder's `mod.rs` with its own children.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Imports against the order, each with the reason its module's doc gives.
/// At most two, and none today.
const EXCEPTIONS: &[(&str, &str)] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layers, bottom first; a line of the block is `N name name ...`.
fn layer_order() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let block = doc
        .split("<!-- layers -->")
        .nth(1)
        .expect("docs/architecture.md has a <!-- layers --> block");
    let mut layers: Vec<(u32, Vec<String>)> = block
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let n: u32 = words.next()?.parse().ok()?;
            Some((n, words.map(str::to_owned).collect()))
        })
        .collect();
    layers.sort_by_key(|(n, _)| *n);
    layers.into_iter().map(|(_, m)| m).collect()
}

/// A file's module path (`src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`).
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root().join("src")).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its unit tests (a
/// `#[cfg(test)] mod tests` sees its file as `super`).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            // `//` inside a string ("https://...") is rare in paths' lines;
            // cutting there can only hide an import, never invent one.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path the code names that starts with `crate::`, `super::` or
/// `self::`, as its segments (identifiers only), resolved from `module`.
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            segments.push(code[start..j].to_owned());
            if code[j..].starts_with("::") && j + 2 < bytes.len() && ident(bytes[j + 2]) {
                j += 2;
            } else {
                break;
            }
        }
        i = j.max(i + 1);
        // A file's own module: `self` is it; `super` is its parent (a
        // `mod.rs` is its folder's module already).
        let mut base: Vec<String> = match segments[0].as_str() {
            "crate" => Vec::new(),
            "self" => module.to_vec(),
            "super" => module[..module.len().saturating_sub(1)].to_vec(),
            _ => continue,
        };
        let mut rest = segments[1..].iter().peekable();
        while rest.peek().is_some_and(|s| *s == "super") {
            base.pop();
            rest.next();
        }
        base.extend(rest.cloned());
        if !base.is_empty() {
            out.push(base);
        }
    }
    out
}

struct Source {
    files: BTreeMap<Vec<String>, PathBuf>,
    /// File module → the file modules it names.
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn read_sources() -> Source {
    let mut paths = Vec::new();
    rust_files(&root().join("src"), &mut paths);
    let files: BTreeMap<Vec<String>, PathBuf> = paths
        .into_iter()
        .filter(|p| !p.ends_with("main.rs") && !p.ends_with("lib.rs"))
        .map(|p| (module_path(&p), p))
        .collect();
    let mut edges = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let targets: BTreeSet<Vec<String>> = named_paths(&code(&text), module)
            .into_iter()
            .filter_map(|named| {
                // The longest prefix that is a file's module.
                (1..=named.len())
                    .rev()
                    .map(|n| named[..n].to_vec())
                    .find(|prefix| files.contains_key(prefix))
            })
            .filter(|target| target != module)
            .collect();
        edges.insert(module.clone(), targets);
    }
    Source { files, edges }
}

#[test]
fn top_level_modules_import_only_the_layers_below() {
    let order: Vec<String> = layer_order().into_iter().flatten().collect();
    let rank = |m: &str| order.iter().position(|o| o == m);
    let source = read_sources();
    let top_levels: BTreeSet<&str> = source.files.keys().map(|m| m[0].as_str()).collect();
    let unplaced: Vec<&&str> = top_levels.iter().filter(|m| rank(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from the layers of docs/architecture.md: {unplaced:?}"
    );
    assert!(EXCEPTIONS.len() <= 2, "at most two exceptions");
    let mut against = BTreeSet::new();
    for (from, targets) in &source.edges {
        for to in targets {
            let (a, b) = (from[0].as_str(), to[0].as_str());
            if a != b && rank(b) > rank(a) && !EXCEPTIONS.contains(&(a, b)) {
                against.insert(format!("{} -> {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(
        against.is_empty(),
        "imports against the layer order of docs/architecture.md:\n{}",
        against.into_iter().collect::<Vec<_>>().join("\n")
    );
    for (from, to) in EXCEPTIONS {
        let file = source.files.get(&vec![from.to_string()]).unwrap();
        let doc = std::fs::read_to_string(file).unwrap();
        assert!(
            doc.lines()
                .take_while(|l| l.starts_with("//!"))
                .any(|l| l.contains(&format!("crate::{to}"))),
            "{from}'s module doc gives the reason it imports {to}"
        );
    }
}

#[test]
fn no_file_is_in_an_import_cycle() {
    let source = read_sources();
    // A folder's mod.rs and its own children may name each other.
    let related =
        |a: &[String], b: &[String]| a.len() != b.len() && (a.starts_with(b) || b.starts_with(a));
    let edges: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = source
        .edges
        .iter()
        .map(|(from, to)| (from, to.iter().filter(|t| !related(from, t)).collect()))
        .collect();
    // Depth-first search for a back edge, printing the cycle it closes.
    fn visit<'a>(
        node: &'a Vec<String>,
        edges: &BTreeMap<&'a Vec<String>, Vec<&'a Vec<String>>>,
        stack: &mut Vec<&'a Vec<String>>,
        done: &mut BTreeSet<&'a Vec<String>>,
    ) -> Option<String> {
        if let Some(i) = stack.iter().position(|n| *n == node) {
            let cycle: Vec<String> = stack[i..].iter().map(|m| m.join("::")).collect();
            return Some(format!("{} -> {}", cycle.join(" -> "), node.join("::")));
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("an import cycle between files: {cycle}");
        }
    }
}

/// The domain store's handlers parse, call the store and answer: every
/// query is in `src/store/` (`store::domain`), none in `src/domain/`.
#[test]
fn the_domain_store_handlers_hold_no_sql() {
    let mut files = Vec::new();
    rust_files(&root().join("src/domain"), &mut files);
    assert!(!files.is_empty());
    let sql = [
        "sqlx",
        "SELECT ",
        "INSERT INTO",
        "UPDATE ",
        "DELETE FROM",
        " WHERE ",
    ];
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let name = f.strip_prefix(root()).unwrap().display().to_string();
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim_start().starts_with("//"))
                .filter(|(_, l)| sql.iter().any(|s| l.contains(s)))
                .map(|(n, l)| format!("{name}:{}: {}", n + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(found.is_empty(), "SQL in src/domain:\n{}", found.join("\n"));
}
