//! Content fingerprints of a category's files: a job's id includes them, so new or changed
//! images give new jobs while an unchanged dataset reuses finished ones; model cards record them.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::DataError;
use crate::parallel::try_map;

/// SHA-256 over each file's path relative to `root`, its length and its content's SHA-256, in
/// path order; hashed on `threads` threads.
pub fn fingerprint(root: &Path, files: &[PathBuf], threads: usize) -> Result<String, DataError> {
    let mut files: Vec<&PathBuf> = files.iter().collect();
    files.sort();
    let entries = try_map(&files, threads, |path| {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path.as_path(), e))?;
        let mut entry = Sha256::new();
        entry.update(
            path.strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .as_bytes(),
        );
        entry.update((bytes.len() as u64).to_le_bytes());
        entry.update(Sha256::digest(&bytes));
        Ok::<[u8; 32], DataError>(entry.finalize().into())
    })?;
    let mut total = Sha256::new();
    for entry in entries {
        total.update(entry);
    }
    Ok(hex(&total.finalize()))
}

/// Every regular file below `dir`, recursively (hidden entries skipped, links followed safely).
pub fn all_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    Ok(crate::walk::files(dir, |_| true)?)
}

/// Lower-case hexadecimal.
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
