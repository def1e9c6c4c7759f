//! The workspace's modules form layers: inside each crate a module may use only the modules
//! listed below it, so data flows one way and there are no circles; inside a folder module (the
//! binary's `commands/`, the coordinator's `actor/`, the library's `data/` …) the files use each
//! other without circles. The orders are those of the README's layout table.
//!
//! Every source file is read as Rust tokens (comments, strings and character literals set
//! aside), and every path it names is resolved: the trees of `use` items (`use
//! crate::{a::b, c};`) and the paths in code (`crate::a::f()`, `super::b::T`).
//!
//! The same tokens hold one more rule no compiler checks: Burn draws random numbers from one
//! process-wide generator, so only `model::init_seeded` (under its lock) may seed or draw from
//! it; a draw anywhere else, run beside a training in the same process (tests run in
//! parallel), would change that training's initial weights.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's modules, top to bottom.
const LIBRARY: &[&str] = &[
    "proto",
    "retrain",
    "job",
    "fit",
    "registry",
    "train",
    "infer",
    "config",
    "checkpoint",
    "model",
    "picture",
    "metrics",
    "simulate",
    "synth",
    "data",
    "store",
    "raster",
    "parallel",
    "cache",
    "walk",
    "seed",
    "ranges",
    "backend",
];

/// The worker's modules, top to bottom.
const WORKER: &[&str] = &[
    "actor", "grpc", "access", "runner", "metrics", "progress", "watchdog", "link",
];

/// The coordinator library's modules, top to bottom (the binary's `commands` sit on all of
/// them).
const COORDINATOR: &[&str] = &[
    "embedded",
    "dashboard",
    "probes",
    "service",
    "local_link",
    "client",
    "scheduler",
    "actor",
    "run",
    "publish",
    "report",
    "summary",
    "table",
    "stopping",
    "lease",
    "presence",
    "metrics",
    "writer",
    "fence",
    "http",
    "guard",
    "tls",
    "error",
    "testing",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A crate's source: its root file and every module file below the root's folder that the
/// root declares (the coordinator's folder holds a library and a binary).
struct CrateSource {
    name: &'static str,
    src: PathBuf,
    order: Vec<&'static str>,
    /// The root's own modules (`mod x;` in the root file).
    modules: BTreeSet<String>,
}

impl CrateSource {
    fn new(name: &'static str, src: &str, root: &str, order: &[&'static str]) -> Self {
        let src = workspace().join(src);
        let text = std::fs::read_to_string(src.join(root)).unwrap();
        let tokens = tokens(&text);
        let modules = tokens
            .windows(3)
            .filter(|w| w[0] == "mod" && w[2] == ";")
            .map(|w| w[1].clone())
            .collect();
        CrateSource {
            name,
            src,
            order: order.to_vec(),
            modules,
        }
    }

    /// Every file of the crate with its module path (`["actor", "runs"]`).
    fn files(&self) -> Vec<(PathBuf, Vec<String>)> {
        let mut out = Vec::new();
        for module in &self.modules {
            let file = self.src.join(format!("{module}.rs"));
            let folder = self.src.join(module);
            if file.is_file() {
                out.push((file, vec![module.clone()]));
            }
            if folder.is_dir() {
                collect(&folder, vec![module.clone()], &mut out);
            }
        }
        out
    }
}

fn collect(folder: &Path, prefix: Vec<String>, out: &mut Vec<(PathBuf, Vec<String>)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut inner = prefix.clone();
            inner.push(stem);
            collect(&path, inner, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut module = prefix.clone();
            if stem != "mod" {
                module.push(stem);
            }
            out.push((path, module));
        }
    }
}

/// The tokens of Rust source that matter to paths: identifiers, `::` and single punctuation,
/// without comments, string and character literals.
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' || ((c == 'r' || c == 'b') && raw_string_start(&chars, i).is_some()) {
            i = skip_string(&chars, i);
        } else if c == '\'' {
            i = skip_quote(&chars, i);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && next == Some(':') {
            out.push("::".into());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// Where a string literal starting at `i` with a prefix (`r"`, `r#"`, `b"`, `br#"`) has its
/// opening quote and how many `#` it has; `None` if `i` starts an identifier instead.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if chars[j] == 'b' {
        j += 1;
    }
    let raw = chars.get(j) == Some(&'r');
    if raw {
        j += 1;
    }
    let mut hashes = 0;
    while raw && chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"') && j > i).then_some((j, hashes))
}

fn skip_string(chars: &[char], i: usize) -> usize {
    let (quote, hashes, raw) = match raw_string_start(chars, i) {
        Some((quote, hashes)) => (quote, hashes, chars[i..quote].contains(&'r')),
        None => (i, 0, false),
    };
    let mut j = quote + 1;
    while j < chars.len() {
        if !raw && chars[j] == '\\' {
            j += 2;
            continue;
        }
        if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
            return j + 1 + hashes;
        }
        j += 1;
    }
    j
}

/// Skips a character literal (`'x'`, `'\n'`, `'\u{1F600}'`) or a lifetime's quote.
fn skip_quote(chars: &[char], i: usize) -> usize {
    if chars.get(i + 1) == Some(&'\\') {
        let mut j = i + 2;
        while j < chars.len() && chars[j] != '\'' {
            j += 1;
        }
        return j + 1;
    }
    if chars.get(i + 2) == Some(&'\'') {
        return i + 3;
    }
    i + 1
}

/// Every path a file names: each `use` tree expanded, and each path in code that starts at
/// `crate`, `super` or `self`.
fn paths(tokens: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == "use" && (i == 0 || !matches!(tokens[i - 1].as_str(), "::" | ".")) {
            let (end, trees) = use_tree(tokens, i + 1, Vec::new());
            out.extend(trees);
            i = end;
            continue;
        }
        let starts = matches!(tokens[i].as_str(), "crate" | "super" | "self")
            && (i == 0 || tokens[i - 1] != "::");
        if starts && tokens.get(i + 1).is_some_and(|t| t == "::") {
            let mut path = vec![tokens[i].clone()];
            let mut j = i + 1;
            while tokens.get(j).is_some_and(|t| t == "::")
                && tokens.get(j + 1).is_some_and(|t| is_name(t))
            {
                path.push(tokens[j + 1].clone());
                j += 2;
            }
            out.push(path);
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

fn is_name(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Parses the use tree at `i` under `prefix`; returns where it ends and its paths.
fn use_tree(tokens: &[String], mut i: usize, mut prefix: Vec<String>) -> (usize, Vec<Vec<String>>) {
    let mut out = Vec::new();
    if tokens.get(i).is_some_and(|t| t == "::") {
        i += 1;
    }
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("{") => {
                i += 1;
                loop {
                    if tokens.get(i).is_some_and(|t| t == "}") {
                        i += 1;
                        break;
                    }
                    let (end, inner) = use_tree(tokens, i, prefix.clone());
                    out.extend(inner);
                    i = end;
                    if tokens.get(i).is_some_and(|t| t == ",") {
                        i += 1;
                    }
                }
                break;
            }
            Some("*") => {
                i += 1;
                out.push(prefix.clone());
                break;
            }
            Some(name) if is_name(name) => {
                prefix.push(name.to_string());
                i += 1;
                if tokens.get(i).is_some_and(|t| t == "::") {
                    i += 1;
                    continue;
                }
                if tokens.get(i).is_some_and(|t| t == "as") {
                    i += 2;
                }
                out.push(prefix.clone());
                break;
            }
            _ => break,
        }
    }
    if tokens.get(i).is_some_and(|t| t == ";") {
        i += 1;
    }
    (i, out)
}

/// The module a path names, absolute from the crate root, for a file at `module`; `None` for
/// a path into another crate or the standard library.
/// A file `a/b.rs` is module `a::b` (its `super` is `a`); a folder's `mod.rs` is the folder's
/// module.
fn resolve(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "self" | "super" => module.to_vec(),
        _ => return None,
    };
    let mut rest = path;
    if rest[0] == "crate" {
        rest = &rest[1..];
    } else {
        while let Some(first) = rest.first() {
            match first.as_str() {
                "self" => rest = &rest[1..],
                "super" => {
                    base.pop()?;
                    rest = &rest[1..];
                }
                _ => break,
            }
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Every use of one module of a crate by another: (file, user, used), as absolute module paths.
fn uses(source: &CrateSource) -> Vec<(PathBuf, Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for (file, module) in source.files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for path in paths(&tokens(&text)) {
            if let Some(used) = resolve(&path, &module) {
                out.push((file.clone(), module.clone(), used));
            }
        }
    }
    out
}

fn rank(order: &[&str], module: &str) -> Option<usize> {
    order.iter().position(|m| *m == module)
}

/// The violations of `source`'s order between its top-level modules.
fn layer_violations(source: &CrateSource) -> Vec<String> {
    let mut violations = Vec::new();
    let is_binary = source.order.is_empty();
    for (file, user, used) in uses(source) {
        let (Some(top), Some(other)) = (user.first(), used.first()) else {
            continue;
        };
        if top == other || !source.modules.contains(other) || is_binary {
            continue;
        }
        let shown = format!(
            "{}: `{}` uses `{}`",
            file.display(),
            user.join("::"),
            used.join("::")
        );
        match (rank(&source.order, top), rank(&source.order, other)) {
            (Some(own), Some(theirs)) if theirs > own => {}
            (Some(_), Some(_)) => violations.push(format!("{shown}, which is not below it")),
            (None, _) => violations.push(format!(
                "{}: `{top}` is not in the {} order",
                file.display(),
                source.name
            )),
            (_, None) => violations.push(format!(
                "{}: `{other}` is not in the {} order",
                file.display(),
                source.name
            )),
        }
    }
    violations
}

/// The circles between the files of one folder module (siblings using each other).
fn circles(source: &CrateSource) -> Vec<String> {
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (_, user, used) in uses(source) {
        if user.len() < 2
            || used.len() < user.len()
            || used[..user.len() - 1] != user[..user.len() - 1]
        {
            continue;
        }
        let sibling = used[..user.len()].to_vec();
        if sibling != user {
            graph.entry(user).or_default().insert(sibling);
        }
    }
    let mut found = Vec::new();
    for start in graph.keys() {
        let mut stack = vec![vec![start.clone()]];
        while let Some(trail) = stack.pop() {
            let last = trail.last().unwrap();
            for next in graph.get(last).into_iter().flatten() {
                // Each circle once: from its least module.
                if next == start && trail.iter().all(|m| m >= start) {
                    let names: Vec<String> =
                        trail.iter().chain([next]).map(|m| m.join("::")).collect();
                    found.push(format!("{}: {}", source.name, names.join(" → ")));
                } else if !trail.contains(next) {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
    found
}

fn crates() -> Vec<CrateSource> {
    vec![
        CrateSource::new("slsg", "shared/src", "lib.rs", LIBRARY),
        CrateSource::new("slsg-worker", "worker/src", "lib.rs", WORKER),
        CrateSource::new("slsg-coordinator", "coordinator/src", "lib.rs", COORDINATOR),
        CrateSource::new("slsg (binary)", "coordinator/src", "main.rs", &[]),
    ]
}

#[test]
fn every_module_uses_only_the_modules_below_it() {
    let violations: Vec<String> = crates().iter().flat_map(layer_violations).collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_files_of_a_folder_module_use_each_other_without_circles() {
    let found: Vec<String> = crates().iter().flat_map(circles).collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn every_module_of_each_crate_is_in_its_order_and_the_readme_states_them() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    for source in crates().iter().filter(|s| !s.order.is_empty()) {
        let listed: BTreeSet<String> = source.order.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            listed, source.modules,
            "{}: the order lists its modules",
            source.name
        );
        let stated = source
            .order
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(" → ");
        assert!(
            readme.contains(&stated),
            "README states the {} order: {stated}",
            source.name
        );
    }
    let lib = std::fs::read_to_string(workspace().join("shared/src/lib.rs")).unwrap();
    for module in LIBRARY {
        assert!(
            lib.contains(&format!("`{module}`")),
            "lib.rs documents `{module}`"
        );
    }
}

/// Every Rust file of the workspace: crates, their tests and benches.
fn workspace_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in ["shared", "worker", "coordinator", "tests"] {
        let mut found = Vec::new();
        collect(&workspace().join(folder), Vec::new(), &mut found);
        files.extend(found.into_iter().map(|(path, _)| path));
    }
    files
}

/// The calls in `tokens` that seed or draw from Burn's process-wide generator:
/// `Tensor::random(…)`, `Tensor::<B, D>::random(…)` and a backend's `::seed(…)`.
fn generator_calls(tokens: &[String]) -> Vec<String> {
    let mut calls = Vec::new();
    for i in 1..tokens.len().saturating_sub(1) {
        let name = tokens[i].as_str();
        if tokens[i - 1] != "::" || tokens[i + 1] != "(" || !matches!(name, "random" | "seed") {
            continue;
        }
        let mut j = i - 1;
        if j > 0 && tokens[j - 1] == ">" {
            let mut depth = 0;
            j -= 1;
            loop {
                match tokens[j].as_str() {
                    ">" => depth += 1,
                    "<" => depth -= 1,
                    _ => {}
                }
                if depth == 0 || j == 0 {
                    break;
                }
                j -= 1;
            }
            j = j.saturating_sub(1);
        }
        let owner = j.checked_sub(1).map_or("", |k| tokens[k].as_str());
        if name == "seed" || owner == "Tensor" {
            calls.push(format!("{owner}::{name}"));
        }
    }
    calls
}

#[test]
fn only_init_seeded_draws_from_burns_process_wide_generator() {
    let allowed = workspace().join("shared/src/model/mod.rs");
    let mut found = Vec::new();
    for file in workspace_rust_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for call in generator_calls(&tokens(&text)) {
            if !(file == allowed && call.ends_with("::seed")) {
                found.push(format!("{}: {call}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "draw from a generator of its own (model::random_seeded) instead:\n{}",
        found.join("\n")
    );
    let text = "Tensor::random(s, d, &x); Tensor::<B, 4>::random([1], d, &x); Cpu::seed(&c, 1); \
                TensorData::random::<f32, _, _>(s, d, &mut r); crate::seed::rng_for(1, &[]);";
    assert_eq!(
        generator_calls(&tokens(text)),
        ["Tensor::random", "Tensor::random", "Cpu::seed"]
    );
}

#[test]
fn paths_are_read_from_use_trees_and_code_not_from_comments_or_strings() {
    let text = r#"
        // use crate::hidden;
        /* crate::also_hidden::x */
        use crate::{a::{b, c as d}, e, f::*};
        pub(crate) use super::g;
        fn x() { let s = "crate::in_string"; let c = '{'; crate::h::call(); self::i::j(); }
        fn y<'a>(v: &'a str) -> &'a str { v }
        use std::path::Path;
    "#;
    let found: Vec<String> = paths(&tokens(text)).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        found,
        [
            "crate::a::b",
            "crate::a::c",
            "crate::e",
            "crate::f",
            "super::g",
            "crate::h::call",
            "self::i::j",
            "std::path::Path"
        ]
    );
    let module = vec!["actor".to_string(), "runs".to_string()];
    let resolved = |path: &str| {
        let path: Vec<String> = path.split("::").map(String::from).collect();
        resolve(&path, &module).map(|m| m.join("::"))
    };
    assert_eq!(
        resolved("super::index::RunIndex").as_deref(),
        Some("actor::index::RunIndex")
    );
    assert_eq!(
        resolved("crate::table::Granted").as_deref(),
        Some("table::Granted")
    );
    assert_eq!(resolved("std::path::Path"), None);
}
