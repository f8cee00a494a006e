//! The layering check: every module of `src/` names only modules of its own rank or below,
//! and no modules depend on each other in a cycle, so the pipeline's dependencies point one
//! way (`cargo test --test layers`). It reads each
//! `src/**/*.rs`, finds the paths that leave its top-level module (`crate::x`, `super::x`
//! from a module's root, `cierre::x` in `main.rs`) outside comments and string literals, and
//! prints every edge that goes up, with file and line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module's place in the pipeline: a module may name modules of its rank or
/// lower. Anything not listed (app, scheduler, http, daemon, metrics, output, cli, main)
/// sits at the top.
const RANKS: [(&str, u8); 12] = [
    ("domain", 0),
    ("clock", 0),
    ("tls", 0),
    ("error", 0),
    ("calendar", 1),
    ("config", 2),
    ("links", 2),
    ("source", 3),
    ("sync", 4),
    ("store", 5),
    ("rules", 6),
    ("findings", 7),
];
const NOTIFY: u8 = 8;
const TOP: u8 = 9;

fn rank(module: &str) -> u8 {
    match module {
        "notify" => NOTIFY,
        m => RANKS.iter().find(|(name, _)| *name == m).map_or(TOP, |(_, r)| *r),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text with comments and the contents of string and character literals blanked
/// (newlines kept, so line numbers still hold).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(rest.len(), |e| e + 4);
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"r\"") || rest.starts_with(b"r#") {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"').chain("#".repeat(hashes).chars()).collect();
            let start = i + 2 + hashes;
            let end = text[start..].find(&close).map_or(b.len(), |e| start + e + close.len());
            blank(&mut out, &b[i..end]);
            i = end;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, &rest[..(j + 1).min(rest.len())]);
            i += j + 1;
        } else if rest[0] == b'\'' && (rest.get(2) == Some(&b'\'') || rest.get(1) == Some(&b'\\')) {
            // A character literal ('{', '\n', '\''), not a lifetime.
            let end = rest[2..].iter().position(|&c| c == b'\'').map_or(rest.len(), |e| e + 3);
            blank(&mut out, &rest[..end]);
            i += end;
        } else {
            let ch = text[i..].chars().next().expect("not at the end");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a path beginning at `s` (after `crate::`) names: one, or each
/// first segment of a `{a::X, b::Y}` group.
fn named_after(s: &str) -> Vec<String> {
    let Some(group) = s.strip_prefix('{') else { return vec![ident(s).to_string()] };
    let mut names = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    for (k, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if c.is_whitespace() => {}
            _ if at_start && depth == 0 => {
                names.push(ident(&group[k..]).to_string());
                at_start = false;
            }
            _ => {}
        }
    }
    names
}

#[test]
fn modules_only_name_their_own_rank_or_below() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    // The top-level modules; any other name after `crate::` is an item of `lib.rs` itself
    // (`replica_id`), beneath every module.
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix(&src).ok()?.iter().next()?.to_str())
        .map(|first| first.trim_end_matches(".rs").to_string())
        .collect();
    let mut violations = Vec::new();
    // Every module → module edge, for the cycle check among modules of one rank.
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let parts: Vec<&str> = relative.iter().map(|p| p.to_str().expect("UTF-8")).collect();
        if parts == ["lib.rs"] {
            continue; // declares the modules
        }
        let module = parts[0].trim_end_matches(".rs");
        // How deep the file's own module is below the crate root: `src/x.rs` and
        // `src/x/mod.rs` are 1, `src/x/y.rs` is 2.
        let file_depth =
            if parts.last() == Some(&"mod.rs") { parts.len() - 1 } else { parts.len() };
        let text = std::fs::read_to_string(file).expect("readable");
        let code = code_only(&text);
        // Inline modules (`mod tests { … }`) open one level deeper until their brace closes.
        let mut braces: i64 = 0;
        let mut inline: Vec<i64> = Vec::new();
        for (n, line) in code.lines().enumerate() {
            let depth = file_depth + inline.len();
            let mut targets: Vec<String> = Vec::new();
            let prefix = if module == "main" { "cierre::" } else { "crate::" };
            for (at, _) in line.match_indices(prefix) {
                let before = line[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                targets.extend(named_after(&line[at + prefix.len()..]));
            }
            for (at, _) in line.match_indices("super::") {
                let before = line[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue; // counted from the first `super` of the chain
                }
                let mut rest = &line[at..];
                let mut ups = 0;
                while let Some(r) = rest.strip_prefix("super::") {
                    ups += 1;
                    rest = r;
                }
                if ups == depth {
                    targets.extend(named_after(rest));
                } else if ups > depth {
                    violations.push(format!(
                        "{}:{}: `super::` climbs above the crate root",
                        relative.display(),
                        n + 1
                    ));
                }
            }
            for target in targets {
                if target == module || !modules.contains(&target) {
                    continue;
                }
                edges.insert((module.to_string(), target.clone()));
                if rank(&target) <= rank(module) {
                    continue;
                }
                violations.push(format!(
                    "{}:{}: {module} (rank {}) names {target} (rank {})",
                    relative.display(),
                    n + 1,
                    rank(module),
                    rank(&target)
                ));
            }
            for (k, c) in line.char_indices() {
                match c {
                    '{' => {
                        let head = line[..k].trim_end();
                        let is_mod = head.rsplit_once("mod ").is_some_and(|(pre, name)| {
                            (pre.is_empty() || pre.ends_with(' ') || pre.ends_with(')'))
                                && !name.is_empty()
                                && name.chars().all(|c| c.is_alphanumeric() || c == '_')
                        });
                        if is_mod {
                            inline.push(braces);
                        }
                        braces += 1;
                    }
                    '}' => {
                        braces -= 1;
                        if inline.last() == Some(&braces) {
                            inline.pop();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        violations.push(format!("modules depend on each other in a cycle: {}", cycle.join(" → ")));
    }
    assert!(
        violations.is_empty(),
        "{} edge(s) against the pipeline's order:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// A cycle in the module graph, as the modules along it (the first repeated at the end).
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeSet<(String, String)>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for (_, to) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(cycle) = visit(to, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.iter().find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_check_sees_crate_paths_groups_and_super_chains() {
    let code = code_only("use crate::{store::X, rules}; // crate::notify\nlet s = \"crate::app\";");
    assert!(!code.contains("notify") && !code.contains("app"));
    assert_eq!(named_after("{store::X, rules::{a, b}}"), ["store", "rules"]);
    assert_eq!(named_after("findings::Finding;"), ["findings"]);
    let edges = |list: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    assert_eq!(find_cycle(&edges(&[("app", "store"), ("http", "app")])), None);
    assert_eq!(
        find_cycle(&edges(&[("app", "http"), ("http", "scheduler"), ("scheduler", "app")])),
        Some(vec!["app".into(), "http".into(), "scheduler".into(), "app".into()])
    );
}
