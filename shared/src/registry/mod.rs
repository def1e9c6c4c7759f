//! The model registry: per category, every registered version (a model folder and its card),
//! the `current` and `previous` aliases, and `history.jsonl` recording every decision —
//! registered, promoted, kept, rolled back — with the scores and the reason. Lives in the store
//! under `models/<category>/`; the coordinator is its only writer during a run. The promotion
//! gate's rule is in `gate`.

mod gate;

pub use gate::{GateDecision, GateReport, GateScores, decide};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::{CacheError, Filling};
use crate::data::{Manifest, hex};
use crate::infer::EvaluationSet;
use crate::metrics::ImageScore;
use crate::store::layout::{
    CategoryModels, MODEL_CARD_FILE, MODEL_WEIGHTS_FILE, ModelAlias, ModelKeys, ModelPath,
    StageKeys,
};
use crate::store::{Key, NameError, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("category `{category}` has no version `{version}` in {store}")]
    UnknownVersion {
        store: String,
        category: String,
        version: String,
    },
    #[error("category `{category}` has no previous version to roll back to in {store}")]
    NoPrevious { store: String, category: String },
    #[error("{path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{url}`: {message} (expected <store>/models/<category>/current, …/previous or …/versions/<version>)"
    )]
    ModelUrl { url: String, message: String },
}

/// Which version of a category a model URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionRef {
    Current,
    Previous,
    Version(String),
}

/// A registered model named by a URL: `<store>/models/<category>/current`, `…/previous` or
/// `…/versions/<version>`, the store being any store URL (`s3://bucket/prefix`, `file:///path`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelUrl {
    pub store: String,
    pub category: String,
    pub version: VersionRef,
}

impl ModelUrl {
    pub fn parse(url: &str) -> Result<ModelUrl, RegistryError> {
        let path = ModelPath::parse(url).map_err(|e| RegistryError::ModelUrl {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        Ok(ModelUrl {
            store: path.store.to_string(),
            category: path.category.to_string(),
            version: match path.alias {
                ModelAlias::Current => VersionRef::Current,
                ModelAlias::Previous => VersionRef::Previous,
                ModelAlias::Version(version) => VersionRef::Version(version.to_string()),
            },
        })
    }
}

/// A registered version's card (`card.json`): where it came from and how it was selected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionCard {
    pub category: String,
    pub version: String,
    pub run: String,
    pub job: String,
    /// The sweep point's field values (empty without a sweep).
    pub point: BTreeMap<String, String>,
    /// The selection score on the evaluation set.
    pub validation_score: Option<f64>,
    /// What the validation score was measured on.
    pub evaluation_set: Option<EvaluationSet>,
    /// The training and validation images' fingerprint.
    pub data_fingerprint: String,
    pub registered_unix_ms: u64,
    /// Test-split metrics, shown beside, never used to decide.
    pub test_image_auroc: Option<f64>,
    /// The image score `test_image_auroc` was computed from (absent from cards registered
    /// before it was kept).
    #[serde(default)]
    pub image_score: Option<ImageScore>,
    pub test_pixel_auroc: Option<f64>,
    pub test_pro_auc: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// A version was added (not yet in production).
    Registered,
    /// A version became `current`.
    Promoted,
    /// A candidate was not promoted; `current` stayed.
    Kept,
    /// `current` went back to the version before it.
    RolledBack,
}

/// One line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub unix_ms: u64,
    pub decision: Decision,
    /// The version the decision is about.
    pub version: String,
    /// `current` before the decision.
    pub current_before: Option<String>,
    pub candidate_score: Option<f64>,
    pub current_score: Option<f64>,
    pub reason: String,
}

/// The registry in a store.
#[derive(Clone, Debug)]
pub struct Registry {
    store: Store,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Registry {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Copies the SegNet stage folder `source` (its model and the manifest of its training
    /// images) in as `card.version` and records it, unless that version is registered already
    /// (a version names one job's model, so a re-run finds it). The card is written last: its
    /// presence means the copy is whole. Returns the card registered (the earlier one if there
    /// was).
    pub async fn register(
        &self,
        source: &StageKeys,
        card: VersionCard,
    ) -> Result<VersionCard, RegistryError> {
        let models = CategoryModels::new(&card.category)?;
        let target = models.version(&card.version)?;
        if let Some(existing) = self.store.get_json::<VersionCard>(&target.card()).await? {
            return Ok(existing);
        }
        let (from, to) = (source.model(), target.model());
        self.store.copy(&from.weights(), &to.weights()).await?;
        self.store.copy(&from.card(), &to.card()).await?;
        self.store.copy(&source.data(), &target.data()).await?;
        self.store.put_json(&target.card(), &card).await?;
        let current_before = self.current(&card.category).await?;
        self.record(
            &models,
            HistoryEntry {
                unix_ms: now_ms(),
                decision: Decision::Registered,
                version: card.version.clone(),
                current_before,
                candidate_score: card.validation_score,
                current_score: None,
                reason: format!("best validation score of run `{}`", card.run),
            },
        )
        .await?;
        Ok(card)
    }

    /// The version a reference names; an error naming the category if it names none.
    pub async fn resolve(
        &self,
        category: &str,
        version: &VersionRef,
    ) -> Result<String, RegistryError> {
        let unknown = |version: &str| RegistryError::UnknownVersion {
            store: self.store.url().to_string(),
            category: category.to_string(),
            version: version.to_string(),
        };
        let resolved = match version {
            VersionRef::Current => self
                .current(category)
                .await?
                .ok_or_else(|| unknown("current"))?,
            VersionRef::Previous => self
                .previous(category)
                .await?
                .ok_or_else(|| unknown("previous"))?,
            VersionRef::Version(v) => v.clone(),
        };
        self.card(category, &resolved).await?;
        Ok(resolved)
    }

    /// The version `current` names.
    pub async fn current(&self, category: &str) -> Result<Option<String>, RegistryError> {
        self.alias(&CategoryModels::new(category)?.current()).await
    }

    /// The version `previous` names.
    pub async fn previous(&self, category: &str) -> Result<Option<String>, RegistryError> {
        self.alias(&CategoryModels::new(category)?.previous()).await
    }

    async fn alias(&self, key: &Key) -> Result<Option<String>, RegistryError> {
        Ok(self
            .store
            .get(key)
            .await?
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
            .filter(|version| !version.is_empty()))
    }

    /// A version's card; an error naming it if the category has no such version.
    pub async fn card(&self, category: &str, version: &str) -> Result<VersionCard, RegistryError> {
        let key = CategoryModels::new(category)?.version(version)?.card();
        self.store
            .get_json(&key)
            .await?
            .ok_or_else(|| RegistryError::UnknownVersion {
                store: self.store.url().to_string(),
                category: category.to_string(),
                version: version.to_string(),
            })
    }

    /// The manifest of the normal images a registered version was trained on.
    pub async fn manifest(&self, category: &str, version: &str) -> Result<Manifest, RegistryError> {
        let key = CategoryModels::new(category)?.version(version)?.data();
        self.card(category, version).await?;
        self.store.get_json(&key).await?.ok_or_else(|| {
            RegistryError::Store(StoreError::Decode {
                url: self.store.url().to_string(),
                key: key.to_string(),
                message: "the version's manifest is missing".into(),
            })
        })
    }

    /// The model folder of a registered version.
    pub async fn model(&self, category: &str, version: &str) -> Result<ModelKeys, RegistryError> {
        self.card(category, version).await?;
        Ok(CategoryModels::new(category)?.version(version)?.model())
    }

    /// Downloads a registered version's model folder into `cache` — a folder named by the hash
    /// of its card and its weights' size and entity tag, reused when it is there already — and
    /// returns that folder. The files are written under a temporary name and renamed, so a
    /// partial download is never used.
    pub async fn fetch(
        &self,
        category: &str,
        version: &str,
        cache: &Path,
    ) -> Result<PathBuf, RegistryError> {
        let keys = self.model(category, version).await?;
        let missing = |key: Key| {
            RegistryError::Store(StoreError::Decode {
                url: self.store.url().to_string(),
                key: key.to_string(),
                message: "the registered model file is missing".into(),
            })
        };
        let card = self
            .store
            .get(&keys.card())
            .await?
            .ok_or_else(|| missing(keys.card()))?;
        let (size, tag) = self
            .store
            .meta(&keys.weights())
            .await?
            .ok_or_else(|| missing(keys.weights()))?;
        let mut hash = Sha256::new();
        hash.update(&card);
        hash.update(size.to_le_bytes());
        hash.update(tag.unwrap_or_default().as_bytes());
        let name = hex(&hash.finalize());
        let models = cache.join("models");
        let folder = models.join(&name);
        if folder.join(MODEL_CARD_FILE).is_file() && folder.join(MODEL_WEIGHTS_FILE).is_file() {
            return Ok(folder);
        }
        let weights = self
            .store
            .get(&keys.weights())
            .await?
            .ok_or_else(|| missing(keys.weights()))?;
        let cache_error = |e: CacheError| RegistryError::Cache {
            path: e.path,
            source: e.source,
        };
        let filling = Filling::start(&folder).map_err(cache_error)?;
        for (file, bytes) in [(MODEL_CARD_FILE, &card), (MODEL_WEIGHTS_FILE, &weights)] {
            let path = filling.path().join(file);
            std::fs::write(&path, bytes).map_err(|source| RegistryError::Cache { path, source })?;
        }
        filling
            .finish(|folder| folder.join(MODEL_WEIGHTS_FILE).is_file())
            .map_err(cache_error)
    }

    /// The category that has registered `version`, if any.
    pub async fn category_of(&self, version: &str) -> Result<Option<String>, RegistryError> {
        for category in self.categories().await? {
            let key = CategoryModels::new(&category)?.version(version)?.card();
            if self.store.exists(&key).await? {
                return Ok(Some(category));
            }
        }
        Ok(None)
    }

    /// The registered versions of a category, oldest first.
    pub async fn versions(&self, category: &str) -> Result<Vec<VersionCard>, RegistryError> {
        let models = CategoryModels::new(category)?;
        let mut cards = Vec::new();
        for key in self.store.list(&models.versions()).await? {
            if let Some(version) = models.card_version(&key) {
                cards.push(self.card(category, version).await?);
            }
        }
        cards.sort_by(|a, b| {
            (a.registered_unix_ms, &a.version).cmp(&(b.registered_unix_ms, &b.version))
        });
        Ok(cards)
    }

    /// Every category with a registered version.
    pub async fn categories(&self) -> Result<Vec<String>, RegistryError> {
        let mut names: Vec<String> = self
            .store
            .list(&CategoryModels::all())
            .await?
            .iter()
            .filter_map(CategoryModels::category_of)
            .map(str::to_string)
            .collect();
        names.dedup();
        Ok(names)
    }

    /// Every decision about a category, oldest first.
    pub async fn history(&self, category: &str) -> Result<Vec<HistoryEntry>, RegistryError> {
        let key = CategoryModels::new(category)?.history();
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(Vec::new());
        };
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|e| {
                    RegistryError::Store(StoreError::Decode {
                        url: self.store.url().to_string(),
                        key: key.to_string(),
                        message: e.to_string(),
                    })
                })
            })
            .collect()
    }

    /// Makes `version` current (the old current becomes `previous`) and records why. Promoting
    /// the version that is current already changes and records nothing.
    pub async fn promote(
        &self,
        category: &str,
        version: &str,
        scores: (Option<f64>, Option<f64>),
        reason: &str,
    ) -> Result<(), RegistryError> {
        self.card(category, version).await?;
        let models = CategoryModels::new(category)?;
        let current_before = self.current(category).await?;
        if current_before.as_deref() == Some(version) {
            return Ok(());
        }
        if let Some(old) = &current_before {
            self.store
                .put(&models.previous(), old.clone().into_bytes())
                .await?;
        }
        self.store
            .put(&models.current(), version.to_string().into_bytes())
            .await?;
        self.record(
            &models,
            HistoryEntry {
                unix_ms: now_ms(),
                decision: Decision::Promoted,
                version: version.to_string(),
                current_before,
                candidate_score: scores.0,
                current_score: scores.1,
                reason: reason.to_string(),
            },
        )
        .await
    }

    /// Records that `version` was not promoted and why; `current` stays.
    pub async fn keep(
        &self,
        category: &str,
        version: &str,
        scores: (Option<f64>, Option<f64>),
        reason: &str,
    ) -> Result<(), RegistryError> {
        let models = CategoryModels::new(category)?;
        let current_before = self.current(category).await?;
        self.record(
            &models,
            HistoryEntry {
                unix_ms: now_ms(),
                decision: Decision::Kept,
                version: version.to_string(),
                current_before,
                candidate_score: scores.0,
                current_score: scores.1,
                reason: reason.to_string(),
            },
        )
        .await
    }

    /// Makes `previous` current again (and the version it replaces `previous`); returns the
    /// version now current.
    pub async fn rollback(&self, category: &str, reason: &str) -> Result<String, RegistryError> {
        let models = CategoryModels::new(category)?;
        let Some(previous) = self.previous(category).await? else {
            return Err(RegistryError::NoPrevious {
                store: self.store.url().to_string(),
                category: category.to_string(),
            });
        };
        self.card(category, &previous).await?;
        let current_before = self.current(category).await?;
        if let Some(old) = &current_before {
            self.store
                .put(&models.previous(), old.clone().into_bytes())
                .await?;
        }
        self.store
            .put(&models.current(), previous.clone().into_bytes())
            .await?;
        self.record(
            &models,
            HistoryEntry {
                unix_ms: now_ms(),
                decision: Decision::RolledBack,
                version: previous.clone(),
                current_before,
                candidate_score: None,
                current_score: None,
                reason: reason.to_string(),
            },
        )
        .await?;
        Ok(previous)
    }

    /// Appends a decision to the category's history (rewritten whole: objects cannot be
    /// appended to).
    async fn record(
        &self,
        models: &CategoryModels,
        entry: HistoryEntry,
    ) -> Result<(), RegistryError> {
        let key = models.history();
        let mut text = self
            .store
            .get(&key)
            .await?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&serde_json::to_string(&entry).expect("history entries serialise"));
        text.push('\n');
        self.store.put(&key, text.into_bytes()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(version: &str, score: f64) -> VersionCard {
        VersionCard {
            category: "tray".into(),
            version: version.into(),
            run: "r".into(),
            job: "j".into(),
            point: BTreeMap::new(),
            validation_score: Some(score),
            evaluation_set: None,
            data_fingerprint: "f".into(),
            registered_unix_ms: 0,
            test_image_auroc: None,
            image_score: None,
            test_pixel_auroc: None,
            test_pro_auc: None,
        }
    }

    #[test]
    fn model_urls_name_a_version() {
        let url = ModelUrl::parse("s3://bucket/prefix/models/tray/current").unwrap();
        assert_eq!(
            (url.store.as_str(), url.category.as_str(), url.version),
            ("s3://bucket/prefix", "tray", VersionRef::Current)
        );
        let url = ModelUrl::parse("file:///srv/store/models/tray/versions/r-1/").unwrap();
        assert_eq!(url.version, VersionRef::Version("r-1".into()));
        for bad in [
            "s3://bucket/prefix/tray/current",
            "s3:///models/tray/current",
            "s3://b/models/tray",
            "s3://b/models/../current",
            "s3://b/models/tray/versions/..",
            "s3://b/models/tray/latest",
        ] {
            assert!(ModelUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn register_promote_keep_and_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let source = StageKeys::fit_stage("segnet").unwrap();
        store
            .put(&source.model().card(), b"{}".to_vec())
            .await
            .unwrap();
        store
            .put(&source.model().weights(), b"w".to_vec())
            .await
            .unwrap();
        store
            .put_json(&source.data(), &Manifest::default())
            .await
            .unwrap();
        let registry = Registry::new(store.clone());

        registry.register(&source, card("v1", 0.9)).await.unwrap();
        assert_eq!(registry.current("tray").await.unwrap(), None);
        registry
            .promote("tray", "v1", (Some(0.9), None), "first model")
            .await
            .unwrap();
        registry.register(&source, card("v2", 0.95)).await.unwrap();
        registry
            .promote("tray", "v2", (Some(0.95), Some(0.9)), "better")
            .await
            .unwrap();
        registry
            .promote("tray", "v2", (Some(0.95), Some(0.9)), "again")
            .await
            .unwrap();
        assert_eq!(
            registry.current("tray").await.unwrap().as_deref(),
            Some("v2")
        );
        assert_eq!(
            registry.previous("tray").await.unwrap().as_deref(),
            Some("v1")
        );
        registry.register(&source, card("v3", 0.5)).await.unwrap();
        registry
            .keep("tray", "v3", (Some(0.5), Some(0.95)), "worse")
            .await
            .unwrap();
        assert_eq!(registry.rollback("tray", "operator").await.unwrap(), "v1");
        assert_eq!(
            registry.current("tray").await.unwrap().as_deref(),
            Some("v1")
        );
        assert_eq!(
            registry.previous("tray").await.unwrap().as_deref(),
            Some("v2")
        );

        let decisions: Vec<(Decision, String)> = registry
            .history("tray")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.decision, e.version))
            .collect();
        use Decision::*;
        assert_eq!(
            decisions,
            [
                (Registered, "v1"),
                (Promoted, "v1"),
                (Registered, "v2"),
                (Promoted, "v2"),
                (Registered, "v3"),
                (Kept, "v3"),
                (RolledBack, "v1"),
            ]
            .map(|(d, v)| (d, v.to_string()))
        );
        assert_eq!(registry.versions("tray").await.unwrap().len(), 3);
        assert_eq!(registry.categories().await.unwrap(), ["tray"]);
        let unknown = registry.promote("tray", "v9", (None, None), "x").await;
        assert!(matches!(unknown, Err(RegistryError::UnknownVersion { .. })));
        let store_model = store
            .get(&registry.model("tray", "v2").await.unwrap().weights())
            .await
            .unwrap();
        assert_eq!(store_model.as_deref(), Some(&b"w"[..]));
        let cache = tempfile::tempdir().unwrap();
        let fetched = registry.fetch("tray", "v2", cache.path()).await.unwrap();
        assert_eq!(std::fs::read(fetched.join("weights.ckpt")).unwrap(), b"w");
        assert_eq!(
            registry.fetch("tray", "v2", cache.path()).await.unwrap(),
            fetched,
            "the cached copy is reused"
        );
        assert_eq!(
            registry.category_of("v2").await.unwrap().as_deref(),
            Some("tray")
        );
        assert_eq!(registry.category_of("v9").await.unwrap(), None);
        assert_eq!(
            registry.manifest("tray", "v1").await.unwrap(),
            Manifest::default()
        );
    }
}
