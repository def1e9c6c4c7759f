//! Artifact storage: `object_store` over a local folder (the default) or S3 (clusters), keys
//! built from validated names only in one layout module, and a blocking facade for training
//! threads. Writes are atomic objects; nothing here knows what the objects mean.

mod blocking;
mod key;
pub mod layout;
pub mod limits;

pub use blocking::BlockingStore;
pub use key::{Key, NameError, validate_name};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store `{url}`: {message}")]
    Open { url: String, message: String },
    #[error("store `{url}`, key `{key}`: {source}")]
    Object {
        url: String,
        key: String,
        source: object_store::Error,
    },
    #[error("store `{url}`, key `{key}`: {message}")]
    Decode {
        url: String,
        key: String,
        message: String,
    },
    #[error("store `{url}`, key `{key}`: {source}")]
    TooLarge {
        url: String,
        key: String,
        source: limits::TooLarge,
    },
    #[error(transparent)]
    Name(#[from] NameError),
}

/// Where local copies of stored things (registered models, datasets at a URL) are kept by
/// default: `$SLSG_CACHE`, else `$XDG_CACHE_HOME/slsg`, else `~/.cache/slsg`.
pub fn default_cache_dir() -> Option<std::path::PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    var("SLSG_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("slsg")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/slsg")))
}

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    pub key: Key,
    pub size: u64,
    /// The store's entity tag: changes whenever the content does.
    pub tag: Option<String>,
}

/// An object store with the URL it was opened from.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    url: String,
    /// Requests that failed, counted across every clone (for the services' metrics).
    errors: Arc<AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
    /// `s3://bucket[/prefix]` (credentials, region and endpoint from the `AWS_*` environment;
    /// with `AWS_ENDPOINT_URL` set, path-style requests, and plain HTTP when the endpoint is
    /// `http://`), or `file:///path` / a plain path (created if missing).
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, true)
    }

    /// [`open`](Self::open) for reading what is there: a local folder must exist already.
    pub fn open_existing(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, false)
    }

    fn open_with(url: &str, create: bool) -> Result<Store, StoreError> {
        let fail = |message: String| StoreError::Open {
            url: url.to_string(),
            message,
        };
        let inner: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(fail("no bucket name".into()));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .ok();
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_endpoint(&endpoint)
                    .with_virtual_hosted_style_request(false)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                builder = builder.with_region("us-east-1");
            }
            // Failures surface within half a minute: callers wait out longer outages themselves
            // (a job keeps its lease and tries again; the coordinator's writers retry).
            let retry = RetryConfig {
                max_retries: 4,
                retry_timeout: std::time::Duration::from_secs(30),
                ..RetryConfig::default()
            };
            let s3 = builder
                .with_retry(retry)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            }
        } else if url.contains("://") && !url.starts_with("file://") {
            return Err(fail(
                "unsupported scheme (use s3://, file:// or a path)".into(),
            ));
        } else {
            let path = std::path::Path::new(url.strip_prefix("file://").unwrap_or(url));
            if path.as_os_str().is_empty() {
                return Err(fail("no folder given".into()));
            }
            if create {
                std::fs::create_dir_all(path).map_err(|e| fail(e.to_string()))?;
            } else if !path.is_dir() {
                return Err(fail("no such store folder".into()));
            }
            let folder = path.canonicalize().map_err(|e| fail(e.to_string()))?;
            if folder.parent().is_none() {
                return Err(fail(
                    "a store must not be a file system's root; give it a folder of its own".into(),
                ));
            }
            Arc::new(LocalFileSystem::new_with_prefix(&folder).map_err(|e| fail(e.to_string()))?)
        };
        Ok(Store {
            inner,
            url: url.to_string(),
            errors: Arc::default(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests to the store that failed since it was opened, by this handle and its clones.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn error(&self, key: &Key) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        let key = key.to_string();
        move |source| {
            self.errors.fetch_add(1, Ordering::Relaxed);
            StoreError::Object {
                url: self.url.clone(),
                key,
                source,
            }
        }
    }

    /// Writes an object atomically (readers see the old object or the whole new one).
    pub async fn put(&self, key: &Key, bytes: impl Into<PutPayload>) -> Result<(), StoreError> {
        self.inner
            .put(&ObjectPath::from(key.as_str()), bytes.into())
            .await
            .map_err(self.error(key))?;
        Ok(())
    }

    /// Writes an object only if none exists; `false` if one did.
    pub async fn put_new(
        &self,
        key: &Key,
        bytes: impl Into<PutPayload>,
    ) -> Result<bool, StoreError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(&ObjectPath::from(key.as_str()), bytes.into(), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.error(key)(e)),
        }
    }

    /// An object's bytes, `None` if it does not exist; an object over its kind's size limit
    /// ([`limits::for_key`]) is an error naming it, and no more than the limit is read.
    pub async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_tagged(key).await?.map(|(bytes, _)| bytes))
    }

    /// Every key under `prefix`, sorted. A bucket that does not exist yet holds none (servers
    /// that create buckets on the first write, as SeaweedFS does, answer a listing of a new one
    /// with S3's `NoSuchBucket`; elsewhere the first write fails, naming it).
    pub async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        let listed: Result<Vec<_>, _> = self
            .inner
            .list(Some(&ObjectPath::from(prefix.as_str())))
            .try_collect()
            .await;
        let metas = match listed {
            Ok(metas) => metas,
            // object_store keeps a listing's HTTP status to itself; S3's error code is in the
            // message it keeps.
            Err(e) if e.to_string().contains("NoSuchBucket") => Vec::new(),
            Err(e) => return Err(self.error(prefix)(e)),
        };
        let mut keys = metas
            .into_iter()
            .map(|m| Key::parse(m.location.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort();
        Ok(keys)
    }

    /// Every object under `prefix` (the whole store when `None`) with its size and entity tag,
    /// sorted by key. Keys with a segment starting with `.` (hidden files, partial uploads) are
    /// left out; any other key that is not a valid key is an error naming it.
    pub async fn list_objects(
        &self,
        prefix: Option<&Key>,
    ) -> Result<Vec<ListedObject>, StoreError> {
        let at = prefix.map(|p| ObjectPath::from(p.as_str()));
        let shown = prefix.map_or_else(|| Key::parse("(root)"), |p| Ok(p.clone()))?;
        let metas: Vec<_> = self
            .inner
            .list(at.as_ref())
            .try_collect()
            .await
            .map_err(self.error(&shown))?;
        let mut objects = Vec::new();
        for meta in metas {
            let raw = meta.location.as_ref();
            if raw.split('/').any(|segment| segment.starts_with('.')) {
                continue;
            }
            objects.push(ListedObject {
                key: Key::parse(raw)?,
                size: meta.size,
                tag: meta.e_tag,
            });
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The names of the top-level folders (common prefixes) of the store, sorted.
    pub async fn list_folders(&self) -> Result<Vec<String>, StoreError> {
        let listing = self
            .inner
            .list_with_delimiter(None)
            .await
            .map_err(self.error(&Key::parse("(root)")?))?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// An object's bytes and entity tag, `None` if it does not exist; read like [`Store::get`].
    pub async fn get_tagged(
        &self,
        key: &Key,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        let result = match self.inner.get(&ObjectPath::from(key.as_str())).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error(key)(e)),
        };
        let limit = limits::for_key(key);
        let too_large = |size: String| StoreError::TooLarge {
            url: self.url.clone(),
            key: key.to_string(),
            source: limits::TooLarge { size, limit },
        };
        if result.meta.size > limit {
            return Err(too_large(format!("{} bytes", result.meta.size)));
        }
        let tag = result.meta.e_tag.clone();
        let mut bytes = Vec::with_capacity(result.meta.size as usize);
        // The declared size bounds the allocation; the count bounds what a server sends past it.
        let mut chunks = result.into_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(self.error(key))?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large(format!("more than {limit} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some((bytes, tag)))
    }

    /// An object's JSON value, `None` if it does not exist; an object that does not decode is
    /// an error naming it.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Decode {
                url: self.url.clone(),
                key: key.to_string(),
                message: e.to_string(),
            })
    }

    /// Writes a value as pretty-printed JSON.
    pub async fn put_json<T: serde::Serialize>(
        &self,
        key: &Key,
        value: &T,
    ) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(value).expect("values of this crate serialise");
        bytes.push(b'\n');
        self.put(key, bytes).await
    }

    /// An object's size and entity tag (its content's version), `None` if it does not exist.
    pub async fn meta(&self, key: &Key) -> Result<Option<(u64, Option<String>)>, StoreError> {
        match self.inner.head(&ObjectPath::from(key.as_str())).await {
            Ok(meta) => Ok(Some((meta.size, meta.e_tag))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(key)(e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        match self.inner.head(&ObjectPath::from(key.as_str())).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(key)(e)),
        }
    }

    /// A name for `key` in messages: the store's URL and the key.
    pub fn describe(&self, key: &Key) -> String {
        format!("{}/{key}", self.url.trim_end_matches('/'))
    }

    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        match self.inner.delete(&ObjectPath::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(key)(e)),
        }
    }

    pub async fn copy(&self, from: &Key, to: &Key) -> Result<(), StoreError> {
        self.inner
            .copy(
                &ObjectPath::from(from.as_str()),
                &ObjectPath::from(to.as_str()),
            )
            .await
            .map_err(self.error(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reading_stops_at_the_kind_of_objects_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let result = Key::new(["runs", "r", "jobs", "j", "result.json"]).unwrap();
        let over = vec![b' '; limits::RESULT_BYTES as usize + 1];
        store.put(&result, over).await.unwrap();
        for error in [
            store.get(&result).await.unwrap_err(),
            store
                .get_json::<serde_json::Value>(&result)
                .await
                .unwrap_err(),
        ] {
            let message = error.to_string();
            assert!(matches!(error, StoreError::TooLarge { .. }), "{message}");
            assert!(
                message.contains("runs/r/jobs/j/result.json")
                    && message.contains(&format!("limit of {} bytes", limits::RESULT_BYTES)),
                "{message}"
            );
        }
        let alias = Key::new(["models", "m", "current"]).unwrap();
        store
            .put(&alias, vec![b'v'; limits::OTHER_BYTES as usize + 1])
            .await
            .unwrap();
        assert!(matches!(
            store.get_tagged(&alias).await,
            Err(StoreError::TooLarge { .. })
        ));
        let journal = Key::new(["runs", "r", "state.json"]).unwrap();
        store.put(&journal, b"{}".to_vec()).await.unwrap();
        assert_eq!(store.get(&journal).await.unwrap().unwrap(), b"{}");
    }

    #[tokio::test]
    async fn local_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let key = Key::new(["runs", "r", "a.json"]).unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
        store.put(&key, b"{}".to_vec()).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().unwrap(), b"{}");
        assert!(!store.put_new(&key, b"x".to_vec()).await.unwrap());
        let other = Key::new(["runs", "r", "b", "c.txt"]).unwrap();
        store.copy(&key, &other).await.unwrap();
        assert_eq!(
            store.list(&Key::new(["runs", "r"]).unwrap()).await.unwrap(),
            vec![key.clone(), other.clone()]
        );
        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert_eq!(
            store.list(&Key::new(["runs"]).unwrap()).await.unwrap(),
            vec![other.clone()]
        );
        assert!(Store::open("ftp://nowhere").is_err());
        assert!(
            Store::open("file:///").is_err(),
            "a file system's root is refused"
        );
        assert!(Store::open_existing(dir.path().join("absent").to_str().unwrap()).is_err());
        assert!(
            !dir.path().join("absent").exists(),
            "reading creates nothing"
        );
        assert_eq!(
            store.meta(&other).await.unwrap().map(|(size, _)| size),
            Some(2)
        );
    }
}
