//! The crate's layering: no two source files refer to each other (`crate::a::b` or
//! `super::b` paths, resolved to the file of the longest module prefix). A pair that does is
//! one module split in two, or a missing layer.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` -> ["a", "b"]; lib.rs and main.rs -> [].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The path segments after each `crate::` or `super::` in `text`, with which of the two.
fn paths(text: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    for (start, root) in [("crate::", true), ("super::", false)] {
        for (i, _) in text.match_indices(start) {
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &text[i + start.len()..];
            let mut segs = Vec::new();
            for s in rest.split("::") {
                let id: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let whole = id.len() == s.len();
                if !id.is_empty() {
                    segs.push(id);
                }
                if !whole || segs.is_empty() {
                    break;
                }
            }
            out.push((root, segs));
        }
    }
    out
}

#[test]
fn no_two_source_files_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files.iter().map(|f| (module_path(&src, f), f.clone())).collect();
    let mut edges = BTreeSet::new();
    for f in &files {
        let here = module_path(&src, f);
        let text = std::fs::read_to_string(f).unwrap();
        for (from_crate, segs) in paths(&text) {
            let mut full = if from_crate { Vec::new() } else { here[..here.len().saturating_sub(1)].to_vec() };
            full.extend(segs);
            let target = (1..=full.len()).rev().find_map(|n| modules.get(&full[..n]));
            if let Some(t) = target.filter(|t| *t != f) {
                edges.insert((f.clone(), t.clone()));
            }
        }
    }
    let mutual: Vec<String> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .map(|(a, b)| format!("{} <-> {}", a.display(), b.display()))
        .collect();
    assert!(edges.len() > 50, "the scan found only {} references: is it reading src/?", edges.len());
    assert!(mutual.is_empty(), "files that import each other:\n{}", mutual.join("\n"));
}

/// Each function in `text` (a Rust file formatted by rustfmt) as (name, first line, lines):
/// from its `fn` line to the closing brace at the same indentation.
fn function_lengths(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let rest = ["pub(crate) ", "pub(super) ", "pub ", "const ", "async ", "unsafe "]
            .iter()
            .fold(body, |b, prefix| b.strip_prefix(prefix).unwrap_or(b));
        let Some(rest) = rest.strip_prefix("fn ") else { continue };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        // The signature ends at the first line ending in `{` (a body) or `;` (a declaration).
        let Some(open) = (i..lines.len()).find(|&j| lines[j].trim_end().ends_with(['{', ';'])) else { continue };
        if lines[open].trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = (open + 1..lines.len()).find(|&j| lines[j] == close) {
            out.push((name, i + 1, end - i + 1));
        }
    }
    out
}

/// Functions stay short enough to read in one screen: none in `src/` over 80 lines.
#[test]
fn no_function_in_src_is_longer_than_80_lines() {
    const MAX: usize = 80;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let (mut count, mut long) = (0, Vec::new());
    for f in &files {
        for (name, line, len) in function_lengths(&std::fs::read_to_string(f).unwrap()) {
            count += 1;
            if len > MAX {
                long.push(format!("{}:{line} {name}: {len} lines", f.display()));
            }
        }
    }
    // The scan itself works: it finds the crate's functions, and measures a known one.
    assert!(count > 500, "the scan found only {count} functions: is it reading src/?");
    let sample = "fn a() {\n    one();\n    two();\n}\n    fn b(x: u8) -> u8;\n";
    assert_eq!(function_lengths(sample), vec![("a".to_string(), 1, 4)]);
    assert!(long.is_empty(), "functions over {MAX} lines:\n{}", long.join("\n"));
}

/// Whether line `i` lies under `#[cfg(feature = "test-hooks")]`: looking back through the
/// attributes, comments and fields above it, up to the end of the statement or item before.
fn under_test_hooks(lines: &[&str], i: usize) -> bool {
    for l in lines[..i].iter().rev() {
        let t = l.trim();
        if t.contains("cfg(feature = \"test-hooks\")") {
            return true;
        }
        if !t.starts_with("//") && (t.starts_with('}') || t.ends_with(';')) {
            return false;
        }
    }
    false
}

#[test]
fn test_hooks_exist_only_in_test_builds() {
    // A hidden flag or an environment variable only the tests set is compiled in test builds
    // alone (feature `test-hooks`, on for `cargo test` through the dev-dependency of the
    // crate on itself), so that `cargo build` offers nothing that exists for the tests.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bare = Vec::new();
    let mut hooks = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let code = l.split("//").next().unwrap_or_default();
            let hook = ["hide = true", "\"SWAV_WGPU_TEST_", "\"SWAV_WGPU_CHECK_ARGS\"", "fn inject_"]
                .iter()
                .any(|h| code.contains(h));
            if hook {
                hooks += 1;
                if !under_test_hooks(&lines, i) {
                    bare.push(format!("{}:{}: {}", f.strip_prefix(&src).unwrap().display(), i + 1, l.trim()));
                }
            }
        }
    }
    assert!(hooks >= 5, "found only {hooks} test hooks: did their names change?");
    assert!(bare.is_empty(), "test hooks outside #[cfg(feature = \"test-hooks\")]:\n{}", bare.join("\n"));
}
