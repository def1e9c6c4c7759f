//! Content fingerprints and manifests of a category's files: a job's id includes the fingerprint,
//! so new or changed images give new jobs while an unchanged dataset reuses finished ones; model
//! cards record it, and a model's manifest tells which images arrived after it was trained.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::DataError;
use crate::parallel::try_map;

/// One file's size and content hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub size: u64,
    pub sha256: String,
}

/// Every file of a set by its path relative to the category folder (`/`-separated): what a model
/// was trained on, so that later arrivals can be told apart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, FileDigest>,
}

impl Manifest {
    /// Hashes `files` (below `root`) on `threads` threads.
    pub fn read(root: &Path, files: &[PathBuf], threads: usize) -> Result<Manifest, DataError> {
        let digests = try_map(files, threads, |path| {
            let bytes = crate::store::limits::read_named(path)
                .map_err(|e| DataError::io(path.as_path(), e))?;
            Ok::<_, DataError>((
                relative_name(root, path),
                FileDigest {
                    size: bytes.len() as u64,
                    sha256: hex(&Sha256::digest(&bytes)),
                },
            ))
        })?;
        Ok(Manifest {
            files: digests.into_iter().collect(),
        })
    }

    /// SHA-256 over each file's relative path, size and content hash, in path order.
    pub fn fingerprint(&self) -> String {
        let mut total = Sha256::new();
        for (name, digest) in &self.files {
            let mut entry = Sha256::new();
            entry.update((name.len() as u64).to_le_bytes());
            entry.update(name.as_bytes());
            entry.update(digest.size.to_le_bytes());
            entry.update(digest.sha256.as_bytes());
            total.update(entry.finalize());
        }
        hex(&total.finalize())
    }

    /// The files that `earlier` does not have, or has with other content.
    pub fn added_since(&self, earlier: &Manifest) -> Vec<String> {
        self.files
            .iter()
            .filter(|(name, digest)| earlier.files.get(*name) != Some(*digest))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// `path` relative to `root`, `/`-separated (non-UTF-8 bytes replaced).
pub fn relative_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The fingerprint of `files` below `root` (see [`Manifest::fingerprint`]).
pub fn fingerprint(root: &Path, files: &[PathBuf], threads: usize) -> Result<String, DataError> {
    Ok(Manifest::read(root, files, threads)?.fingerprint())
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

        let before = Manifest::read(dir.path(), std::slice::from_ref(&a), 1).unwrap();
        let c = dir.path().join("c.png");
        std::fs::write(&c, b"three").unwrap();
        std::fs::write(&a, b"ONE").unwrap();
        let after = Manifest::read(dir.path(), &[a.clone(), b.clone(), c.clone()], 2).unwrap();
        assert_eq!(after.added_since(&before), ["a.png", "b.png", "c.png"]);
        assert!(after.added_since(&after).is_empty());
        assert_eq!(
            after.fingerprint(),
            fingerprint(dir.path(), &[c, b, a], 1).unwrap()
        );
    }
}
