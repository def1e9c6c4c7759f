//! Retraining checks: which categories of a cluster config need a new model — their normal
//! images changed since the model in production was trained and, with a drift limit, that model
//! flags too many of the newly arrived images — and the retraining run that trains only those,
//! each ending in the promotion gate. Blocking: the caller runs it off the async runtime.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::backend::cpu_device;
use crate::data::{Category, DataError, Dataset, DatasetCache, Manifest, SourceError, read_rgb};
use crate::fit::{PipelineError, Retraining, load_version};
use crate::job::{ClusterConfig, Plan, PlanError, RetrainMode, utc_stamp};
use crate::registry::{Decision, Registry, RegistryError};
use crate::store::{BlockingStore, NameError};

/// Images scored per forward pass by the drift check.
const DRIFT_BATCH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("drift check of `{category}`: {source}")]
    Drift {
        category: String,
        source: Box<PipelineError>,
    },
    #[error(transparent)]
    Name(#[from] NameError),
}

impl RetrainError {
    /// The error as told to a remote client: without the names of folders it did not give.
    pub fn without_listings(self) -> RetrainError {
        match self {
            RetrainError::Plan(e) => RetrainError::Plan(e.without_listings()),
            RetrainError::Data(e) => RetrainError::Data(e.without_listings()),
            RetrainError::Source(e) => RetrainError::Source(Box::new(e.without_listings())),
            RetrainError::Drift { category, source } => RetrainError::Drift {
                category,
                source: Box::new(source.without_listings()),
            },
            other => other,
        }
    }
}

impl From<SourceError> for RetrainError {
    fn from(e: SourceError) -> Self {
        RetrainError::Source(Box::new(e))
    }
}

/// What the check decided for one category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoryCheck {
    pub category: String,
    /// The version in production, if any.
    pub current: Option<String>,
    /// Normal images added or changed since that version was trained.
    pub new_images: usize,
    /// The current model's false-alarm rate on them (drift check only).
    pub false_alarm_rate: Option<f64>,
    pub retrain: bool,
    pub reason: String,
}

/// A check of every category of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub categories: Vec<CategoryCheck>,
    /// The retraining run, when a category needs one.
    pub plan: Option<Plan>,
}

/// Checks every category of `cluster` against the registry in `store` and plans a retraining
/// run (named `<run>-retrain-<UTC time>`) for those that need one. Categories in `busy` (a run in
/// progress trains them) are left alone. `now` is seconds since the epoch. Categories at a
/// dataset URL are read from their copies in `cache` (fetched when their listing changed).
pub fn check(
    cluster: &ClusterConfig,
    origin: &str,
    threads: usize,
    store: &BlockingStore,
    cache: &DatasetCache,
    busy: &BTreeSet<String>,
    now: u64,
) -> Result<CheckReport, RetrainError> {
    cluster.validate(origin)?;
    let section = cluster.retrain_section();
    let registry = Registry::new(store.store().clone());
    let runtime = store.runtime();
    let mut categories = Vec::new();
    let mut triggered: BTreeMap<String, Option<Retraining>> = BTreeMap::new();
    for dataset in &cluster.datasets {
        let source = Dataset::open(&dataset.path)?;
        for name in source.categories(&dataset.categories)? {
            if busy.contains(&name) {
                categories.push(CategoryCheck {
                    current: runtime.block_on(registry.current(&name))?,
                    category: name,
                    new_images: 0,
                    false_alarm_rate: None,
                    retrain: false,
                    reason: "a run in progress trains it".into(),
                });
                continue;
            }
            let category = source.category(&name, None, cache)?;
            let manifest = Manifest::read(&category.root, &category.training_images(), threads)?;
            let Some(current) = runtime.block_on(registry.current(&name))? else {
                triggered.insert(name.clone(), None);
                categories.push(CategoryCheck {
                    category: name,
                    current: None,
                    new_images: manifest.files.len(),
                    false_alarm_rate: None,
                    retrain: true,
                    reason: "no model in production yet".into(),
                });
                continue;
            };
            let card = runtime.block_on(registry.card(&name, &current))?;
            if card.data_fingerprint == manifest.fingerprint() {
                categories.push(CategoryCheck {
                    category: name,
                    current: Some(current.clone()),
                    new_images: 0,
                    false_alarm_rate: None,
                    retrain: false,
                    reason: format!("its images are those version `{current}` was trained on"),
                });
                continue;
            }
            if let Some(reason) =
                runtime.block_on(tried_before(&registry, &name, &current, &manifest))?
            {
                categories.push(CategoryCheck {
                    category: name,
                    current: Some(current),
                    new_images: 0,
                    false_alarm_rate: None,
                    retrain: false,
                    reason,
                });
                continue;
            }
            let trained_on = runtime.block_on(registry.manifest(&name, &current))?;
            let new_images = manifest.added_since(&trained_on);
            let (retrain, false_alarm_rate, reason) = match section.drift_limit {
                None => (
                    true,
                    None,
                    format!(
                        "{} normal images arrived or changed since version `{current}`",
                        new_images.len()
                    ),
                ),
                Some(_) if new_images.is_empty() => (
                    false,
                    None,
                    "images were removed, none arrived: nothing for the drift check to score"
                        .to_string(),
                ),
                Some(limit) => {
                    let newest =
                        &new_images[new_images.len().saturating_sub(section.max_drift_images)..];
                    match drift(store, &category, &current, newest).map_err(|source| {
                        RetrainError::Drift {
                            category: name.clone(),
                            source: Box::new(source),
                        }
                    })? {
                        Some(rate) if rate > limit => (
                            true,
                            Some(rate),
                            format!(
                                "version `{current}` flags {rate:.2} of {} new normal images (limit {limit})",
                                newest.len()
                            ),
                        ),
                        Some(rate) => (
                            false,
                            Some(rate),
                            format!(
                                "version `{current}` flags {rate:.2} of {} new normal images, within the limit {limit}",
                                newest.len()
                            ),
                        ),
                        None => (
                            true,
                            None,
                            format!(
                                "version `{current}` has no decision threshold to check drift with; its images changed"
                            ),
                        ),
                    }
                }
            };
            if retrain {
                triggered.insert(
                    name.clone(),
                    Some(Retraining {
                        current: current.clone(),
                        new_images: new_images.clone(),
                        new_image_holdout: section.new_image_holdout,
                        fine_tune: section.mode == RetrainMode::FineTune,
                    }),
                );
            }
            categories.push(CategoryCheck {
                category: name,
                current: Some(current),
                new_images: new_images.len(),
                false_alarm_rate,
                retrain,
                reason,
            });
        }
    }
    let plan = if triggered.is_empty() {
        None
    } else {
        let run = format!("{}-retrain-{}", cluster.run.name, utc_stamp(now));
        Some(Plan::retraining(
            cluster, origin, threads, &run, &triggered,
        )?)
    };
    Ok(CheckReport { categories, plan })
}

/// Why not to retrain on these images again: a candidate trained on exactly them was kept out
/// of production while `current` stayed current (retrying would train the same candidate).
async fn tried_before(
    registry: &Registry,
    category: &str,
    current: &str,
    manifest: &Manifest,
) -> Result<Option<String>, RegistryError> {
    let history = registry.history(category).await?;
    let Some(kept) = history
        .iter()
        .rev()
        .find(|e| e.decision != Decision::Registered)
    else {
        return Ok(None);
    };
    if kept.decision != Decision::Kept || kept.current_before.as_deref() != Some(current) {
        return Ok(None);
    }
    let card = registry.card(category, &kept.version).await?;
    Ok((card.data_fingerprint == manifest.fingerprint()).then(|| {
        format!(
            "candidate `{}` was trained on these images and not promoted ({}); waiting for new images",
            kept.version, kept.reason
        )
    }))
}

/// The share of `images` (relative to the category folder) the version flags at its threshold,
/// on the CPU; `None` if the version has no threshold.
fn drift(
    store: &BlockingStore,
    category: &Category,
    version: &str,
    images: &[String],
) -> Result<Option<f64>, PipelineError> {
    let detector = load_version(store, &category.name, version, &cpu_device())?;
    let Some(threshold) = detector.card().decision_threshold else {
        return Ok(None);
    };
    let mut alarms = 0usize;
    for chunk in images.chunks(DRIFT_BATCH) {
        let pictures = chunk
            .iter()
            .map(|name| read_rgb(&category.root.join(name)))
            .collect::<Result<Vec<_>, _>>()?;
        alarms += detector
            .predict(&pictures)
            .iter()
            .filter(|p| p.score >= threshold)
            .count();
    }
    Ok(Some(alarms as f64 / images.len().max(1) as f64))
}
