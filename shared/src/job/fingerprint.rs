//! Content fingerprints of a category's files: a job's id includes them, so new or changed
//! images give new jobs while an unchanged dataset reuses finished ones.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::DataError;

/// SHA-256 over each file's path relative to `root`, its length and its content's SHA-256, in
/// path order; hashed on `threads` threads.
pub fn fingerprint(root: &Path, files: &[PathBuf], threads: usize) -> Result<String, DataError> {
    let mut files: Vec<&PathBuf> = files.iter().collect();
    files.sort();
    let chunk = files.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<Result<Vec<[u8; 32]>, DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|path| {
                            let bytes = std::fs::read(path)
                                .map_err(|e| DataError::io(path.as_path(), e))?;
                            let mut entry = Sha256::new();
                            entry.update(
                                path.strip_prefix(root)
                                    .unwrap_or(path)
                                    .to_string_lossy()
                                    .as_bytes(),
                            );
                            entry.update((bytes.len() as u64).to_le_bytes());
                            entry.update(Sha256::digest(&bytes));
                            Ok(entry.finalize().into())
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fingerprint thread panicked"))
            .collect()
    });
    let mut total = Sha256::new();
    for part in parts {
        for entry in part? {
            total.update(entry);
        }
    }
    Ok(hex(&total.finalize()))
}

/// Every file under `dir`, recursively (hidden entries skipped).
pub fn all_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
            let path = entry.map_err(|e| DataError::io(&dir, e))?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_changes_change_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
        std::fs::write(&a, b"one").unwrap();
        std::fs::write(&b, b"two").unwrap();
        let first = fingerprint(dir.path(), &[a.clone(), b.clone()], 2).unwrap();
        assert_eq!(
            first,
            fingerprint(dir.path(), &[b.clone(), a.clone()], 1).unwrap()
        );
        std::fs::write(&b, b"TWO").unwrap();
        assert_ne!(
            first,
            fingerprint(dir.path(), &[a.clone(), b.clone()], 2).unwrap()
        );
        assert_ne!(
            first,
            fingerprint(dir.path(), std::slice::from_ref(&a), 2).unwrap()
        );
        assert_eq!(all_files(dir.path()).unwrap().len(), 2);
    }
}
