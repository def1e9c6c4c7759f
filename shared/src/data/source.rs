//! Where a dataset comes from: a local folder, or an object-store URL (`s3://bucket/prefix`,
//! `file:///…`) whose categories are fingerprinted from their object listing (key, size, entity
//! tag; nothing downloaded) and copied once into a local cache keyed by that fingerprint,
//! checked against the listing, and reused; a partial copy is never used.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fingerprint::{Manifest, all_files, fingerprint, relative_name};
use super::layout::{resolve_categories, select_categories};
use super::{Category, DataError, hex};
use crate::cache::{CacheError, Filling};
use crate::store::layout::{dataset_category, dataset_file, dataset_object, dataset_push_record};
use crate::store::{NameError, Store, StoreError};

/// Whether a `[[dataset]] path` is an object-store URL rather than a folder.
pub fn is_url(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.contains("://"))
}

/// The folder on this machine a dataset path names: the path itself, or a `file://` URL's;
/// `None` for a dataset in an object store.
pub fn local_folder(path: &Path) -> Option<PathBuf> {
    if !is_url(path) {
        return Some(path.to_path_buf());
    }
    let url = path.to_str()?;
    url.strip_prefix("file://").map(PathBuf::from)
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("dataset {url}: {message}")]
    Url { url: String, message: String },
    #[error("dataset {url}: {source}")]
    Name { url: String, source: NameError },
    #[error(
        "dataset {url}, category `{category}`: its objects changed since the run was planned; submit the config again"
    )]
    Changed { url: String, category: String },
    #[error("dataset {url}: `{key}` arrived with {got} bytes, the listing has {expected}")]
    Truncated {
        url: String,
        key: String,
        got: u64,
        expected: u64,
    },
    #[error("dataset cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SourceError {
    /// The error as told to a remote client: without the names of folders it did not give.
    pub fn without_listings(self) -> SourceError {
        match self {
            SourceError::Data(e) => SourceError::Data(e.without_listings()),
            other => other,
        }
    }

    /// Whether the store failed to answer (an outage to wait out), rather than the data being
    /// wrong.
    pub fn is_store_outage(&self) -> bool {
        matches!(self, SourceError::Store(StoreError::Object { .. }))
    }
}

fn filling_error(e: CacheError) -> SourceError {
    SourceError::Cache {
        path: e.path,
        source: e.source,
    }
}

fn cache_error(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Cache {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs a store future from blocking code (never from a runtime's async tasks): on the current
/// runtime's handle when called from one of its blocking threads, otherwise on a runtime of its
/// own.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, SourceError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(future)),
        Err(_) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(cache_error(Path::new("(runtime)")))?;
            Ok(runtime.block_on(future))
        }
    }
}

/// One file of a remote category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedFile {
    pub size: u64,
    pub tag: Option<String>,
}

/// A remote category's files by path relative to the category, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub url: String,
    pub category: String,
    pub files: BTreeMap<String, ListedFile>,
}

impl Listing {
    /// Lists `category` under the dataset `store`; a category without objects is an error.
    pub async fn read(store: &Store, category: &str) -> Result<Listing, SourceError> {
        let prefix = dataset_category(category).map_err(|source| SourceError::Name {
            url: store.url().to_string(),
            source,
        })?;
        let objects = store.list_objects(Some(&prefix)).await?;
        let files: BTreeMap<String, ListedFile> = objects
            .into_iter()
            .filter_map(|o| {
                let relative = o.key.as_str().strip_prefix(prefix.as_str())?;
                Some((
                    relative.trim_start_matches('/').to_string(),
                    ListedFile {
                        size: o.size,
                        tag: o.tag,
                    },
                ))
            })
            .filter(|(name, _)| !name.is_empty())
            .collect();
        if files.is_empty() {
            let available = store.list_folders().await?;
            return Err(DataError::UnknownCategory {
                category: category.to_string(),
                root: PathBuf::from(store.url()),
                available,
            }
            .into());
        }
        Ok(Listing {
            url: store.url().to_string(),
            category: category.to_string(),
            files,
        })
    }

    /// A hash of the named files' names, sizes and entity tags.
    fn hash<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> String {
        let mut total = Sha256::new();
        for name in names {
            let Some(file) = self.files.get(name) else {
                continue;
            };
            let mut entry = Sha256::new();
            entry.update((name.len() as u64).to_le_bytes());
            entry.update(name.as_bytes());
            entry.update(file.size.to_le_bytes());
            let tag = file.tag.as_deref().unwrap_or("");
            entry.update((tag.len() as u64).to_le_bytes());
            entry.update(tag.as_bytes());
            total.update(entry.finalize());
        }
        hex(&total.finalize())
    }

    /// The fingerprint of every file: what a cached copy is keyed by.
    pub fn fingerprint(&self) -> String {
        self.hash(self.files.keys().map(String::as_str))
    }

    /// The training images' names, from the names alone: the dataset readers list an outline of
    /// empty files in a scratch folder, so every layout is detected exactly as for a folder.
    fn training_names(&self) -> Result<Vec<String>, SourceError> {
        let scratch = tempfile::tempdir().map_err(cache_error(&std::env::temp_dir()))?;
        let root = scratch.path().join(&self.category);
        for name in self.files.keys() {
            let path = root.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(cache_error(parent))?;
            }
            std::fs::File::create(&path).map_err(cache_error(&path))?;
        }
        let category = Category::scan(scratch.path(), &self.category)?;
        Ok(category
            .training_images()
            .iter()
            .map(|path| relative_name(&category.root, path))
            .collect())
    }

    /// (fingerprint of the training images, fingerprint of every file).
    pub fn fingerprints(&self) -> Result<(String, String), SourceError> {
        let training = self.training_names()?;
        Ok((
            self.hash(training.iter().map(String::as_str)),
            self.fingerprint(),
        ))
    }
}

/// A dataset as a `[[dataset]] path` names it.
#[derive(Clone, Debug)]
pub enum Dataset {
    Folder(PathBuf),
    Remote(Store),
}

/// What a category's jobs are keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoryFingerprints {
    pub training: String,
    pub all: String,
    /// For a remote category, the listing's fingerprint a worker's copy must have.
    pub listing: Option<String>,
}

impl Dataset {
    pub fn open(path: &Path) -> Result<Dataset, SourceError> {
        if !is_url(path) {
            return Ok(Dataset::Folder(path.to_path_buf()));
        }
        let url = path.to_string_lossy().trim_end_matches('/').to_string();
        if url.starts_with("file://") {
            let folder = Path::new(url.trim_start_matches("file://"));
            if !folder.is_dir() {
                return Err(DataError::NotFound {
                    path: folder.to_path_buf(),
                }
                .into());
            }
        }
        Ok(Dataset::Remote(Store::open_existing(&url)?))
    }

    /// The categories a selection (`["all"]` or names) names.
    pub fn categories(&self, selection: &[String]) -> Result<Vec<String>, SourceError> {
        match self {
            Dataset::Folder(root) => Ok(resolve_categories(root, selection)?),
            Dataset::Remote(store) => {
                let available = block_on(store.list_folders())??;
                if available.is_empty() {
                    return Err(SourceError::Url {
                        url: store.url().to_string(),
                        message: "no category folders under it (wrong URL, or nothing pushed yet)"
                            .into(),
                    });
                }
                Ok(select_categories(
                    available,
                    selection,
                    Path::new(store.url()),
                )?)
            }
        }
    }

    /// A category's fingerprints: of its files' content for a folder, of its listing for a URL.
    pub fn fingerprints(
        &self,
        category: &str,
        threads: usize,
    ) -> Result<CategoryFingerprints, SourceError> {
        match self {
            Dataset::Folder(root) => {
                let opened = Category::open(root, category)?;
                Ok(CategoryFingerprints {
                    training: fingerprint(&opened.root, &opened.training_images(), threads)?,
                    all: fingerprint(&opened.root, &all_files(&opened.root)?, threads)?,
                    listing: None,
                })
            }
            Dataset::Remote(store) => {
                let listing = block_on(Listing::read(store, category))??;
                let (training, all) = listing.fingerprints()?;
                Ok(CategoryFingerprints {
                    training,
                    all,
                    listing: Some(listing.fingerprint()),
                })
            }
        }
    }

    /// The category, read: a folder's own, or a remote category's checked copy in `cache`. With
    /// `planned` (the listing fingerprint a job was planned with), a remote category whose
    /// objects changed since is an error.
    pub fn category(
        &self,
        name: &str,
        planned: Option<&str>,
        cache: &DatasetCache,
    ) -> Result<Category, SourceError> {
        match self {
            Dataset::Folder(root) => Ok(Category::open(root, name)?),
            Dataset::Remote(store) => {
                let listing = block_on(Listing::read(store, name))??;
                if planned.is_some_and(|planned| planned != listing.fingerprint()) {
                    return Err(SourceError::Changed {
                        url: store.url().to_string(),
                        category: name.to_string(),
                    });
                }
                let root = block_on(cache.fetch(store, &listing))??;
                Ok(Category::open(&root, name)?)
            }
        }
    }

    /// The training images' manifest (names and content hashes) of a category read with
    /// [`Dataset::category`].
    pub fn manifest(category: &Category, threads: usize) -> Result<Manifest, SourceError> {
        Ok(Manifest::read(
            &category.root,
            &category.training_images(),
            threads,
        )?)
    }
}

/// Downloads at once per category copy.
const PARALLEL_DOWNLOADS: usize = 8;
/// The file a complete copy holds: the listing it was made from.
const COMPLETE: &str = ".listing.json";

/// Local copies of remote categories under `<dir>/datasets/<fingerprint>/<category>/`.
#[derive(Clone, Debug)]
pub struct DatasetCache {
    dir: PathBuf,
}

impl DatasetCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The dataset root holding `<category>/` exactly as `listing` has it: a checked copy
    /// already in the cache, or one downloaded now. A copy whose files no longer match its
    /// listing (a truncated file, one missing) is downloaded again.
    pub async fn fetch(&self, store: &Store, listing: &Listing) -> Result<PathBuf, SourceError> {
        let datasets = self.dir.join("datasets");
        let root = datasets.join(listing.fingerprint());
        if copy_matches(&root, listing) {
            tracing::info!(url = %listing.url, category = %listing.category, copy = %root.display(), "using the cached dataset copy");
            return Ok(root);
        }
        let started = std::time::Instant::now();
        if root.exists() {
            tracing::warn!(copy = %root.display(), "a cached dataset copy does not match its listing; fetching it again");
            std::fs::remove_dir_all(&root).map_err(cache_error(&root))?;
        }
        let filling = Filling::start(&root).map_err(filling_error)?;
        let category = filling.path().join(&listing.category);
        let name_error = |source| SourceError::Name {
            url: listing.url.clone(),
            source,
        };
        let prefix = dataset_category(&listing.category).map_err(name_error)?;
        futures::stream::iter(listing.files.iter().map(Ok::<_, SourceError>))
            .try_for_each_concurrent(PARALLEL_DOWNLOADS, |(name, file)| {
                let (prefix, category) = (&prefix, &category);
                async move {
                    let key = dataset_file(prefix, name).map_err(name_error)?;
                    let (bytes, tag) =
                        store
                            .get_tagged(&key)
                            .await?
                            .ok_or_else(|| SourceError::Changed {
                                url: listing.url.clone(),
                                category: listing.category.clone(),
                            })?;
                    if file.tag.is_some() && tag != file.tag {
                        return Err(SourceError::Changed {
                            url: listing.url.clone(),
                            category: listing.category.clone(),
                        });
                    }
                    if bytes.len() as u64 != file.size {
                        return Err(SourceError::Truncated {
                            url: listing.url.clone(),
                            key: key.to_string(),
                            got: bytes.len() as u64,
                            expected: file.size,
                        });
                    }
                    let path = category.join(name);
                    if let Some(parent) = path.parent() {
                        tokio::fs::create_dir_all(parent)
                            .await
                            .map_err(cache_error(parent))?;
                    }
                    tokio::fs::write(&path, &bytes)
                        .await
                        .map_err(cache_error(&path))
                }
            })
            .await?;
        let marker = filling.path().join(COMPLETE);
        let text = serde_json::to_vec(listing).map_err(|e| SourceError::Cache {
            path: marker.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&marker, text).map_err(cache_error(&marker))?;
        let bytes: u64 = listing.files.values().map(|f| f.size).sum();
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            url = %listing.url,
            category = %listing.category,
            files = listing.files.len(),
            "fetched the dataset copy: {:.1} MB in {seconds:.2} s ({:.1} MB/s)",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / seconds.max(1e-9)
        );
        // Another worker on this machine may finish the same copy first: its copy is as good.
        filling
            .finish(|root| copy_matches(root, listing))
            .map_err(filling_error)
    }
}

/// Whether `root` holds a complete copy of `listing`: its marker, and every file at its size.
fn copy_matches(root: &Path, listing: &Listing) -> bool {
    let Ok(text) = std::fs::read(root.join(COMPLETE)) else {
        return false;
    };
    if serde_json::from_slice::<Listing>(&text).ok().as_ref() != Some(listing) {
        return false;
    }
    let category = root.join(&listing.category);
    listing.files.iter().all(|(name, file)| {
        std::fs::metadata(category.join(name)).is_ok_and(|m| m.is_file() && m.len() == file.size)
    })
}

/// What `push` has uploaded to a dataset URL: each file's size and content hash, so the next
/// push sends only what changed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pushed {
    files: BTreeMap<String, (u64, String)>,
}

/// Uploads the files of a local dataset folder to `store` (files whose size and content hash
/// match the last push are skipped; nothing is deleted); returns (uploaded, unchanged).
pub async fn push(
    folder: &Path,
    store: &Store,
    threads: usize,
) -> Result<(usize, usize), SourceError> {
    let files = all_files(folder)?;
    if files.is_empty() {
        return Err(SourceError::Url {
            url: store.url().to_string(),
            message: format!("{}: no files to push", folder.display()),
        });
    }
    let manifest = Manifest::read(folder, &files, threads)?;
    let record = dataset_push_record();
    let mut pushed: Pushed = store.get_json(&record).await?.unwrap_or_default();
    // Files the record names are checked against the listing (one deleted by other means is
    // sent again); before a first push there may be no bucket to list yet (S3-compatible
    // servers create it on the first write).
    let listed: BTreeMap<String, u64> = if pushed.files.is_empty() {
        BTreeMap::new()
    } else {
        store
            .list_objects(None)
            .await?
            .into_iter()
            .map(|o| (o.key.as_str().to_string(), o.size))
            .collect()
    };
    let changed: Vec<(&String, u64, String)> = manifest
        .files
        .iter()
        .filter(|(name, digest)| {
            let recorded = pushed.files.get(*name);
            recorded != Some(&(digest.size, digest.sha256.clone()))
                || listed.get(*name) != Some(&digest.size)
        })
        .map(|(name, digest)| (name, digest.size, digest.sha256.clone()))
        .collect();
    futures::stream::iter(changed.iter().map(Ok::<_, SourceError>))
        .try_for_each_concurrent(PARALLEL_DOWNLOADS, |(name, _, _)| async move {
            let path = folder.join(name.as_str());
            let key = dataset_object(name).map_err(|e| DataError::ImageName {
                path: path.clone(),
                reason: format!("cannot be a store key: {}", e.reason),
            })?;
            let reading = path.clone();
            let bytes =
                tokio::task::spawn_blocking(move || crate::store::limits::read_named(&reading))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|read| read)
                    .map_err(|source| DataError::Io { path, source })?;
            store.put(&key, bytes).await?;
            Ok(())
        })
        .await?;
    for (name, size, sha256) in &changed {
        pushed
            .files
            .insert((*name).clone(), (*size, sha256.clone()));
    }
    store.put_json(&record, &pushed).await?;
    Ok((changed.len(), manifest.files.len() - changed.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(files: &[(&str, &str)]) -> Listing {
        Listing {
            url: "s3://bucket/data".into(),
            category: "bottle".into(),
            files: files
                .iter()
                .map(|(name, tag)| {
                    (
                        name.to_string(),
                        ListedFile {
                            size: 10,
                            tag: Some(tag.to_string()),
                        },
                    )
                })
                .collect(),
        }
    }

    const MVTEC: [(&str, &str); 4] = [
        ("train/good/000.png", "a"),
        ("train/good/001.png", "b"),
        ("test/good/000.png", "c"),
        ("test/crack/000.png", "d"),
    ];

    #[test]
    fn the_layout_comes_from_the_names_and_only_training_images_key_pretraining() {
        let mut files = MVTEC.to_vec();
        files.push(("ground_truth/crack/000_mask.png", "e"));
        let base = listing(&files);
        let (training, all) = base.fingerprints().unwrap();

        files[2].1 = "changed";
        let (test_changed_training, test_changed_all) = listing(&files).fingerprints().unwrap();
        assert_eq!(training, test_changed_training);
        assert_ne!(all, test_changed_all);

        files[0].1 = "changed";
        let (train_changed, _) = listing(&files).fingerprints().unwrap();
        assert_ne!(training, train_changed);
    }

    #[test]
    fn a_listing_without_a_layout_or_its_masks_is_a_data_error() {
        let no_layout = listing(&[("readme.txt", "a")]);
        assert!(matches!(
            no_layout.fingerprints(),
            Err(SourceError::Data(_))
        ));
        let no_mask = listing(&MVTEC);
        let error = no_mask.fingerprints().unwrap_err().to_string();
        assert!(error.contains("mask"), "{error}");
    }
}
