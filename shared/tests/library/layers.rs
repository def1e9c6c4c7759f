//! The library's modules form layers: each may use only the modules below it, so data flows one
//! way and there are no circles. This reads every source file and checks every `crate::` path.

use std::path::{Path, PathBuf};

/// Top to bottom, as the crate documentation and the README's layout table list them.
const LAYERS: &[&str] = &[
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
    "walk",
    "seed",
    "ranges",
    "backend",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`lib` for the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    Path::new(first)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The modules a line names as `crate::<module>`, outside comments.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // `slsg::crate::` cannot occur; skip identifiers that merely end in `crate`.
            code[..*at]
                .chars()
                .last()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_')
        })
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let rank = |module: &str| LAYERS.iter().position(|m| *m == module);
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let own = rank(&module)
            .unwrap_or_else(|| panic!("{module} ({}) is not in LAYERS", file.display()));
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            for used in crate_paths(line) {
                if used == module {
                    continue;
                }
                match rank(&used) {
                    Some(other) if other > own => {}
                    Some(_) => violations.push(format!(
                        "{}:{}: `{module}` uses `{used}`, which is not below it",
                        file.display(),
                        number + 1
                    )),
                    None => violations.push(format!(
                        "{}:{}: `crate::{used}` is not a known module",
                        file.display(),
                        number + 1
                    )),
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_crate_documents_every_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for module in LAYERS {
        assert!(
            lib.contains(&format!("pub mod {module};")) && lib.contains(&format!("`{module}`")),
            "lib.rs must declare and document `{module}`"
        );
    }
}
