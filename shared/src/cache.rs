//! Folders of a local cache filled beside their place and renamed into it whole: a reader never
//! sees a partial folder, and when two processes fill the same one, both end with a whole copy.

use std::path::{Path, PathBuf};

/// A cache folder that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cache folder {path}: {source}")]
pub struct CacheError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError {
        path: path.to_path_buf(),
        source,
    }
}

/// A folder being filled beside `target` (in the same parent, so the rename is atomic); it is
/// removed if dropped before [`finish`](Self::finish).
pub struct Filling {
    partial: tempfile::TempDir,
    target: PathBuf,
}

impl Filling {
    /// Starts filling `target`, creating its parent folder.
    pub fn start(target: &Path) -> Result<Filling, CacheError> {
        let parent = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(at(parent))?;
        let partial = tempfile::Builder::new()
            .prefix(".partial-")
            .tempdir_in(parent)
            .map_err(at(parent))?;
        Ok(Filling {
            partial,
            target: target.to_path_buf(),
        })
    }

    /// Where to write the folder's contents.
    pub fn path(&self) -> &Path {
        self.partial.path()
    }

    /// Renames the filled folder into place. Where another process got there first, its copy
    /// is kept if `whole` says it is complete (this one is discarded), else the rename's error
    /// is returned.
    pub fn finish(self, whole: impl Fn(&Path) -> bool) -> Result<PathBuf, CacheError> {
        let partial = self.partial.keep();
        if let Err(source) = std::fs::rename(&partial, &self.target) {
            let _ = std::fs::remove_dir_all(&partial);
            if !whole(&self.target) {
                return Err(CacheError {
                    path: self.target,
                    source,
                });
            }
        }
        Ok(self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(folder: &Path, text: &str) -> bool {
        std::fs::read_to_string(folder.join("f")).is_ok_and(|t| t == text)
    }

    #[test]
    fn a_folder_appears_whole_or_not_at_all() {
        let cache = tempfile::tempdir().unwrap();
        let target = cache.path().join("entries/one");
        let filling = Filling::start(&target).unwrap();
        std::fs::write(filling.path().join("f"), "first").unwrap();
        assert!(!target.exists(), "nothing at the target while filling");
        assert_eq!(filling.finish(|_| false).unwrap(), target);
        assert!(holds(&target, "first"));
        let entries: Vec<_> = std::fs::read_dir(cache.path().join("entries"))
            .unwrap()
            .collect();
        assert_eq!(entries.len(), 1, "no partial folder left");
    }

    #[test]
    fn a_filling_dropped_half_way_leaves_nothing() {
        let cache = tempfile::tempdir().unwrap();
        let target = cache.path().join("one");
        let filling = Filling::start(&target).unwrap();
        std::fs::write(filling.path().join("f"), "half").unwrap();
        drop(filling);
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    }

    #[test]
    fn when_another_copy_got_there_first_a_whole_one_is_kept() {
        let cache = tempfile::tempdir().unwrap();
        let target = cache.path().join("one");
        let first = Filling::start(&target).unwrap();
        let second = Filling::start(&target).unwrap();
        std::fs::write(first.path().join("f"), "first").unwrap();
        std::fs::write(second.path().join("f"), "second").unwrap();
        first.finish(|_| false).unwrap();
        let kept = second.finish(|folder| holds(folder, "first")).unwrap();
        assert!(holds(&kept, "first"));
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
        // A copy found incomplete is an error naming the folder.
        let third = Filling::start(&target).unwrap();
        let error = third.finish(|_| false).unwrap_err();
        assert_eq!(error.path, target);
    }
}
