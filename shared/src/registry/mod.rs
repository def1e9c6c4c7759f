//! The model registry: per category, every registered version (a model folder and its card),
//! the `current` and `previous` aliases, and `history.jsonl` recording every decision —
//! registered, promoted, kept, rolled back — with the scores and the reason. Lives in the store
//! under `models/<category>/`; the coordinator is its only writer during a run.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::infer::EvaluationSet;
use crate::store::layout::{CategoryModels, ModelKeys};
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
}

/// A registered version's card (`card.json`): where it came from and how it was selected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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

    /// Copies the model folder at `source` in as `card.version` and records it, unless that
    /// version is registered already (a version names one job's model, so a re-run finds it).
    /// The card is written last: its presence means the copy is whole. Returns the card
    /// registered (the earlier one if there was).
    pub async fn register(
        &self,
        source: &ModelKeys,
        card: VersionCard,
    ) -> Result<VersionCard, RegistryError> {
        let models = CategoryModels::new(&card.category)?;
        let target = models.version(&card.version)?;
        if let Some(existing) = self.store.get_json::<VersionCard>(&target.card()).await? {
            return Ok(existing);
        }
        let model = target.model();
        self.store.copy(&source.weights(), &model.weights()).await?;
        self.store.copy(&source.card(), &model.card()).await?;
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

    /// The model folder of a registered version.
    pub async fn model(&self, category: &str, version: &str) -> Result<ModelKeys, RegistryError> {
        self.card(category, version).await?;
        Ok(CategoryModels::new(category)?.version(version)?.model())
    }

    /// The registered versions of a category, oldest first.
    pub async fn versions(&self, category: &str) -> Result<Vec<VersionCard>, RegistryError> {
        let models = CategoryModels::new(category)?;
        let mut cards = Vec::new();
        for key in self.store.list(&models.versions()).await? {
            if key.name() == "card.json"
                && let Some(version) = models.version_of(&key)
            {
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
        let root = CategoryModels::all();
        let mut names: Vec<String> = self
            .store
            .list(&root)
            .await?
            .iter()
            .filter_map(|key| key.strip_prefix(&root)?.split('/').next())
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
            test_pixel_auroc: None,
            test_pro_auc: None,
        }
    }

    #[tokio::test]
    async fn register_promote_keep_and_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let source = crate::store::layout::StageKeys::fit_stage("segnet")
            .unwrap()
            .model();
        store.put(&source.card(), b"{}".to_vec()).await.unwrap();
        store.put(&source.weights(), b"w".to_vec()).await.unwrap();
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
    }
}
