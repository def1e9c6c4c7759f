//! Whether a dataset folder stays below a set of allowed folders once every link in it is
//! followed: what a coordinator checks before it reads a dataset a remote client named.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where a dataset leaves the allowed folders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Escape {
    /// The dataset's folder itself is not below one, or is missing.
    Folder,
    /// A link inside the dataset (a selected category's folder, or anything in it), named
    /// relative to the dataset's folder, leads outside them, or nowhere.
    Link(PathBuf),
}

/// Checks that `folder` and, with links followed, every file and folder of the `categories`
/// selected in it (all of them when empty) resolve below one of `roots` (canonical paths). A
/// link that resolves nowhere counts as outside. Folders that cannot be read are left to the
/// reader of the dataset, which names them; a folder reached twice is walked once, so link
/// loops end.
pub fn escape_from(folder: &Path, categories: &[String], roots: &[PathBuf]) -> Option<Escape> {
    let inside = |path: &Path| roots.iter().any(|root| path.starts_with(root));
    let Some(real_folder) = std::fs::canonicalize(folder).ok().filter(|c| inside(c)) else {
        return Some(Escape::Folder);
    };
    // Paths are shown as the client named them: relative to the dataset's folder.
    let escape = |real: &Path| {
        Escape::Link(
            real.strip_prefix(&real_folder)
                .unwrap_or(real)
                .to_path_buf(),
        )
    };
    let mut pending = Vec::new();
    if categories.is_empty() {
        pending.push(real_folder.clone());
    }
    for name in categories {
        let start = folder.join(name);
        match std::fs::canonicalize(&start) {
            Ok(real) if inside(&real) => pending.push(real),
            // A category that is not there at all is reported by the dataset's reader.
            Err(_) if std::fs::symlink_metadata(&start).is_err() => {}
            _ => return Some(Escape::Link(PathBuf::from(name))),
        }
    }
    let mut walked = BTreeSet::new();
    while let Some(dir) = pending.pop() {
        if !walked.insert(dir.clone()) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_symlink() {
                match std::fs::canonicalize(entry.path()) {
                    Ok(real) if inside(&real) => {
                        if real.is_dir() {
                            pending.push(real);
                        }
                    }
                    _ => return Some(escape(&entry.path())),
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A root holding dataset `data` with category `cat` (one image), and a folder outside it.
    struct Fixture {
        root: tempfile::TempDir,
        outside: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let root = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            let good = root.path().join("data/cat/train/good");
            std::fs::create_dir_all(&good).unwrap();
            std::fs::write(good.join("000.png"), b"png").unwrap();
            std::fs::write(outside.path().join("secret.png"), b"png").unwrap();
            Self { root, outside }
        }

        fn data(&self) -> PathBuf {
            self.root.path().join("data")
        }

        fn escape(&self, categories: &[&str]) -> Option<Escape> {
            let categories: Vec<String> = categories.iter().map(|c| c.to_string()).collect();
            let roots = [std::fs::canonicalize(self.root.path()).unwrap()];
            escape_from(&self.data(), &categories, &roots)
        }
    }

    #[test]
    fn a_dataset_without_links_stays_inside() {
        let fixture = Fixture::new();
        assert_eq!(fixture.escape(&[]), None);
        assert_eq!(fixture.escape(&["cat"]), None);
        assert_eq!(fixture.escape(&["absent"]), None, "left to the reader");
    }

    #[test]
    fn a_dataset_folder_outside_the_roots_or_missing_escapes() {
        let fixture = Fixture::new();
        let roots = [std::fs::canonicalize(fixture.root.path()).unwrap()];
        assert_eq!(
            escape_from(fixture.outside.path(), &[], &roots),
            Some(Escape::Folder)
        );
        assert_eq!(
            escape_from(&fixture.root.path().join("nope"), &[], &roots),
            Some(Escape::Folder)
        );
        symlink(fixture.outside.path(), fixture.root.path().join("linked")).unwrap();
        assert_eq!(
            escape_from(&fixture.root.path().join("linked"), &[], &roots),
            Some(Escape::Folder)
        );
    }

    #[test]
    fn a_link_to_a_file_outside_is_named_relative_to_the_dataset() {
        let fixture = Fixture::new();
        let link = fixture.data().join("cat/train/good/001.png");
        symlink(fixture.outside.path().join("secret.png"), &link).unwrap();
        let expected = Some(Escape::Link(PathBuf::from("cat/train/good/001.png")));
        assert_eq!(fixture.escape(&[]), expected);
        assert_eq!(fixture.escape(&["cat"]), expected);
    }

    #[test]
    fn a_category_that_links_outside_escapes_and_others_beside_it_do_not() {
        let fixture = Fixture::new();
        symlink(fixture.outside.path(), fixture.data().join("away")).unwrap();
        assert_eq!(
            fixture.escape(&["away"]),
            Some(Escape::Link(PathBuf::from("away")))
        );
        assert_eq!(fixture.escape(&["cat"]), None);
        assert_eq!(
            fixture.escape(&[]),
            Some(Escape::Link(PathBuf::from("away")))
        );
    }

    #[test]
    fn links_inside_the_roots_are_followed_and_checked_through() {
        let fixture = Fixture::new();
        // A shared folder of images elsewhere in the root, linked into the category.
        let shared = fixture.root.path().join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        symlink(&shared, fixture.data().join("cat/train/more")).unwrap();
        assert_eq!(fixture.escape(&["cat"]), None);
        // What the linked folder holds is checked as well.
        symlink(
            fixture.outside.path().join("secret.png"),
            shared.join("x.png"),
        )
        .unwrap();
        assert!(matches!(fixture.escape(&["cat"]), Some(Escape::Link(_))));
    }

    #[test]
    fn dangling_links_escape_and_link_loops_end() {
        let fixture = Fixture::new();
        symlink(fixture.data(), fixture.data().join("cat/loop")).unwrap();
        assert_eq!(fixture.escape(&[]), None);
        symlink(
            "/nonexistent/target",
            fixture.data().join("cat/dangling.png"),
        )
        .unwrap();
        assert_eq!(
            fixture.escape(&["cat"]),
            Some(Escape::Link(PathBuf::from("cat/dangling.png")))
        );
    }
}
