//! Folder walks that always end: only regular files are returned (a FIFO, socket or device named
//! like an image is never opened), symbolic links are followed but never twice into the same
//! folder, hidden entries are skipped, and depth and file count are limited. Results are sorted.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Folders nested deeper than this below the root are refused.
pub const MAX_DEPTH: usize = 32;
/// A walk that finds more files than this is refused.
pub const MAX_FILES: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{root}: more than {limit} files below this folder; point at a smaller one")]
    TooManyFiles { root: PathBuf, limit: usize },
    #[error("{path}: nested more than {limit} folders deep below {root}")]
    TooDeep {
        root: PathBuf,
        path: PathBuf,
        limit: usize,
    },
}

/// Every regular file below `root` (recursively) that `keep` accepts, sorted, within the
/// default limits.
pub fn files(root: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, WalkError> {
    files_within(root, MAX_DEPTH, MAX_FILES, keep)
}

/// [`files`] with explicit limits.
pub fn files_within(
    root: &Path,
    max_depth: usize,
    max_files: usize,
    keep: impl Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, WalkError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WalkError::Io { path, source }
    };
    let mut visited = HashSet::new();
    let root_meta = std::fs::metadata(root).map_err(io(root))?;
    visited.insert((root_meta.dev(), root_meta.ino()));
    let mut out = Vec::new();
    let mut pending = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if path
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
            {
                continue;
            }
            // Follows a link to what it names; a dangling link names nothing and is skipped.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if !visited.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                if depth + 1 > max_depth {
                    return Err(WalkError::TooDeep {
                        root: root.to_path_buf(),
                        path,
                        limit: max_depth,
                    });
                }
                pending.push((path, depth + 1));
            } else if meta.is_file() && keep(&path) {
                if out.len() == max_files {
                    return Err(WalkError::TooManyFiles {
                        root: root.to_path_buf(),
                        limit: max_files,
                    });
                }
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `path` made absolute with links resolved as far as it exists (the rest appended as given).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Whether one of two folders is inside the other (or they are the same), links resolved:
/// writing into one would change what is read from the other.
pub fn nested(a: &Path, b: &Path) -> bool {
    let (a, b) = (resolved(a), resolved(b));
    a.starts_with(&b) || b.starts_with(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_special_files_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/one.png"), b"1").unwrap();
        std::fs::write(root.join("a/b/two.png"), b"2").unwrap();
        std::fs::write(root.join(".hidden.png"), b"h").unwrap();
        std::os::unix::fs::symlink(".", root.join("a/b/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("again")).unwrap();
        std::os::unix::fs::symlink(root.join("gone"), root.join("dangling.png")).unwrap();
        let fifo = root.join("pipe.png");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let found = files(root, |_| true).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.ends_with("one.png") || n.ends_with("two.png"))
        );
        assert!(matches!(
            files_within(root, 1, 100, |_| true),
            Err(WalkError::TooDeep { .. })
        ));
        assert!(matches!(
            files_within(root, 10, 1, |_| true),
            Err(WalkError::TooManyFiles { limit: 1, .. })
        ));
        let only_one = files(root, |p| p.ends_with("one.png")).unwrap();
        assert_eq!(only_one.len(), 1);
        assert!(files(&root.join("missing"), |_| true).is_err());

        assert!(nested(&root.join("a"), &root.join("a/b/new")));
        assert!(
            nested(&root.join("again/b"), &root.join("a")),
            "links resolved"
        );
        assert!(!nested(&root.join("a/b"), &root.join("a2")));
    }
}
