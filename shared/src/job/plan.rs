//! The cluster config (`slsg train`, `slsg coordinator`) and its expansion into a job graph:
//! per category one `pretrain` job per distinct pre-training configuration and one `segnet`
//! job per sweep point depending on it. Job ids hash the kind, the category, its data
//! fingerprint, the parameters and the upstream job, so a re-run reuses finished work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::retrain::{RetrainConfigError, RetrainSection};
use super::schedule::Schedule;
use super::spec::{JobId, JobKind, JobSpec};
use super::sweep::{BudgetSection, EarlyStopping, SweepSection, sweep_points};
use crate::backend::Device;
use crate::config::{Config, ConfigError};
use crate::data::{DataError, Dataset, SourceError, hex, is_url};
use crate::fit::Retraining;
use crate::ranges::Section;
use crate::store::{NameError, validate_name};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub run: RunSection,
    #[serde(rename = "dataset")]
    pub datasets: Vec<DatasetSection>,
    /// The training config (the `slsg fit` TOML schema), over the defaults.
    #[serde(default)]
    pub training: toml::Table,
    pub sweep: Option<SweepSection>,
    #[serde(default)]
    pub resources: Resources,
    /// Scheduled retraining (the coordinator service) and the promotion gate.
    pub retrain: Option<RetrainSection>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Names the run in the store (`runs/<name>/`): letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// `file:///path`, a plain path, or `s3://bucket/prefix`.
    pub store: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    pub path: PathBuf,
    /// Category names, or `["all"]`.
    #[serde(default = "all")]
    pub categories: Vec<String>,
}

fn all() -> Vec<String> {
    vec!["all".into()]
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    /// Worker slots of an embedded run (`slsg train`, `slsg demo`), one per device.
    pub workers: Vec<Device>,
    /// Leases a job gets before it fails for good.
    pub max_attempts: u32,
    /// A lease expires this long after its last heartbeat.
    pub lease_seconds: u64,
    pub heartbeat_seconds: u64,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            workers: vec![Device::Cpu],
            max_attempts: 3,
            lease_seconds: 60,
            heartbeat_seconds: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {field}: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("{origin}: {source}")]
    Retrain {
        origin: String,
        source: RetrainConfigError,
    },
    #[error(
        "category `{category}` is in two datasets ({first} and {second}); models are registered by category name"
    )]
    DuplicateCategory {
        category: String,
        first: PathBuf,
        second: PathBuf,
    },
}

impl PlanError {
    /// The error as told to a remote client: without the names of folders it did not give.
    pub fn without_listings(self) -> PlanError {
        match self {
            PlanError::Data(e) => PlanError::Data(e.without_listings()),
            PlanError::Source(e) => PlanError::Source(Box::new(e.without_listings())),
            other => other,
        }
    }
}

impl From<SourceError> for PlanError {
    fn from(e: SourceError) -> Self {
        PlanError::Source(Box::new(e))
    }
}

/// The expanded run: jobs in dependency order (every job after the one it depends on).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub run: String,
    pub store: String,
    pub resources: Resources,
    pub jobs: Vec<JobSpec>,
    /// A retraining run's promotion gate tolerance; `None` for a training run, whose best
    /// points are promoted as the operator's choice.
    #[serde(default)]
    pub gate_tolerance: Option<f64>,
    /// The sweep's early-stopping rule, applied to each category's SegNet trials.
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// Caps on SegNet steps.
    #[serde(default)]
    pub budget: Option<BudgetSection>,
}

/// Most worker slots of an embedded run.
pub const MAX_WORKERS: usize = 256;
/// Longest lease, in seconds.
pub const MAX_LEASE_SECONDS: u64 = 24 * 3600;

impl ClusterConfig {
    pub fn load(path: &Path) -> Result<ClusterConfig, PlanError> {
        let text = crate::store::limits::read_text(path).map_err(|source| PlanError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: ClusterConfig = toml::from_str(&text).map_err(|e| PlanError::Parse {
            origin: path.display().to_string(),
            message: crate::config::toml_error(&e, Some(&text)),
        })?;
        // Relative dataset and store paths are relative to the config file.
        let base = path.parent().unwrap_or(Path::new("."));
        for dataset in &mut config.datasets {
            if dataset.path.is_relative() && !is_url(&dataset.path) {
                dataset.path = base.join(&dataset.path);
            }
        }
        if !config.run.store.contains("://") && Path::new(&config.run.store).is_relative() {
            config.run.store = base.join(&config.run.store).display().to_string();
        }
        Ok(config)
    }
}

impl ClusterConfig {
    /// Checks the run's name, datasets, resources and retraining section; returns the
    /// retraining schedule, if any.
    pub fn validate(&self, origin: &str) -> Result<Option<Schedule>, PlanError> {
        let invalid = |field: &str, message: String| PlanError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        };
        validate_name(&self.run.name).map_err(|e| invalid("run.name", e.to_string()))?;
        if self.datasets.is_empty() {
            return Err(invalid(
                "dataset",
                "at least one [[dataset]] is needed".into(),
            ));
        }
        if let Some(empty) = self.datasets.iter().find(|d| d.categories.is_empty()) {
            return Err(invalid(
                "dataset.categories",
                format!(
                    "{}: name at least one category, or [\"all\"]",
                    empty.path.display()
                ),
            ));
        }
        if !self.run.store.contains("://") || self.run.store.starts_with("file://") {
            let folder = Path::new(
                self.run
                    .store
                    .strip_prefix("file://")
                    .unwrap_or(&self.run.store),
            );
            if let Some(dataset) = self
                .datasets
                .iter()
                .find(|d| !is_url(&d.path) && crate::walk::nested(folder, &d.path))
            {
                return Err(invalid(
                    "run.store",
                    format!(
                        "{} and the dataset {} are inside one another: the store would write into the data it reads",
                        folder.display(),
                        dataset.path.display()
                    ),
                ));
            }
        }
        let r = &self.resources;
        let s = Section::new("resources");
        let range = |e: crate::ranges::InvalidField| invalid(&e.field, e.message);
        s.whole("workers", r.workers.len(), 1, MAX_WORKERS)
            .map_err(|_| {
                invalid(
                    "resources.workers",
                    format!("needs 1 to {MAX_WORKERS} devices, got {}", r.workers.len()),
                )
            })?;
        s.whole("max_attempts", r.max_attempts, 1, 100)
            .map_err(range)?;
        s.whole("lease_seconds", r.lease_seconds, 2, MAX_LEASE_SECONDS)
            .map_err(range)?;
        s.whole(
            "heartbeat_seconds",
            r.heartbeat_seconds,
            1,
            r.lease_seconds / 2,
        )
        .map_err(|_| {
            invalid(
                "resources.heartbeat_seconds",
                format!(
                    "must be from 1 to half of lease_seconds ({}), got {}",
                    r.lease_seconds / 2,
                    r.heartbeat_seconds
                ),
            )
        })?;
        match &self.retrain {
            Some(section) => section.validate().map_err(|source| PlanError::Retrain {
                origin: origin.to_string(),
                source,
            }),
            None => Ok(None),
        }
    }

    /// The retraining section, or its defaults.
    pub fn retrain_section(&self) -> RetrainSection {
        self.retrain.clone().unwrap_or_default()
    }
}

impl Plan {
    /// Expands a cluster config into its training run; `origin` names it in errors.
    pub fn expand(
        cluster: &ClusterConfig,
        origin: &str,
        threads: usize,
    ) -> Result<Plan, PlanError> {
        Self::build(cluster, origin, threads, &cluster.run.name, None)
    }

    /// A retraining run named `run` of the categories in `retraining` only: each one with a
    /// model in production is compared with it at the end; one without (`None`) trains its first.
    pub fn retraining(
        cluster: &ClusterConfig,
        origin: &str,
        threads: usize,
        run: &str,
        retraining: &BTreeMap<String, Option<Retraining>>,
    ) -> Result<Plan, PlanError> {
        Self::build(cluster, origin, threads, run, Some(retraining))
    }

    fn build(
        cluster: &ClusterConfig,
        origin: &str,
        threads: usize,
        run: &str,
        retraining: Option<&BTreeMap<String, Option<Retraining>>>,
    ) -> Result<Plan, PlanError> {
        let invalid = |field: &str, message: String| PlanError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        };
        cluster.validate(origin)?;
        validate_name(run).map_err(|e| invalid("run.name", e.to_string()))?;
        let section = cluster.retrain_section();
        let points = sweep_points(cluster.sweep.as_ref()).map_err(|m| invalid("sweep", m))?;
        let configs = points
            .iter()
            .map(|point| {
                let values: Vec<(String, toml::Value)> =
                    point.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                Config::from_table(
                    cluster.training.clone(),
                    &values,
                    &format!("{origin} [training]"),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sweep = cluster.sweep.as_ref();
        let trials: Vec<(u64, u64)> = configs
            .iter()
            .map(|c| (c.segnet.steps, c.segnet.validate_every))
            .collect();
        let range = |e: crate::ranges::InvalidField| invalid(&e.field, e.message);
        let early_stopping = sweep
            .and_then(|s| s.early_stopping.as_ref())
            .map(|section| section.check(&trials))
            .transpose()
            .map_err(range)?;
        let budget = sweep.and_then(|s| s.budget);
        if let Some(budget) = &budget {
            let first_steps = match &early_stopping {
                Some(stopping) => stopping.first_decision(),
                None => trials.iter().map(|t| t.0).min().unwrap_or(0),
            };
            budget.check(first_steps).map_err(range)?;
        }

        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut pretrain_jobs: BTreeMap<JobId, JobSpec> = BTreeMap::new();
        let mut segnet_jobs = Vec::new();
        for dataset in &cluster.datasets {
            let source = Dataset::open(&dataset.path)?;
            for name in source.categories(&dataset.categories)? {
                validate_name(&name)?;
                if let Some(first) = seen.insert(name.clone(), dataset.path.clone()) {
                    return Err(PlanError::DuplicateCategory {
                        category: name,
                        first,
                        second: dataset.path.clone(),
                    });
                }
                let category_retraining = match retraining {
                    Some(triggered) => match triggered.get(&name) {
                        Some(r) => r.as_ref(),
                        None => continue,
                    },
                    None => None,
                };
                let fingerprints = source.fingerprints(&name, threads)?;
                let (train_fingerprint, full_fingerprint) =
                    (&fingerprints.training, &fingerprints.all);
                for (point, config) in points.iter().zip(&configs) {
                    let mut config = config.clone();
                    if category_retraining.is_some_and(|r| r.fine_tune) {
                        config.segnet.steps = section.fine_tune_steps;
                    }
                    let base = JobSpec {
                        id: String::new(),
                        kind: JobKind::Pretrain,
                        run: run.to_string(),
                        store: cluster.run.store.clone(),
                        dataset: dataset.path.clone(),
                        dataset_listing: fingerprints.listing.clone(),
                        category: name.clone(),
                        config: config.clone(),
                        point: point
                            .iter()
                            .map(|(k, v)| (k.clone(), v.to_string()))
                            .collect(),
                        depends_on: None,
                        retraining: category_retraining.cloned(),
                        early_stopping: None,
                    };
                    let upstream = if category_retraining.is_some_and(|r| r.fine_tune) {
                        None
                    } else {
                        let pretrain_id = job_id(
                            JobKind::Pretrain,
                            &name,
                            train_fingerprint,
                            &pretrain_parameters(&config, category_retraining),
                            None,
                        );
                        pretrain_jobs
                            .entry(pretrain_id.clone())
                            .or_insert_with(|| JobSpec {
                                id: pretrain_id.clone(),
                                point: BTreeMap::new(),
                                ..base.clone()
                            });
                        Some(pretrain_id)
                    };
                    let segnet_id = job_id(
                        JobKind::Segnet,
                        &name,
                        full_fingerprint,
                        &segnet_parameters(&config, category_retraining),
                        upstream.as_deref(),
                    );
                    segnet_jobs.push(JobSpec {
                        id: segnet_id,
                        kind: JobKind::Segnet,
                        depends_on: upstream,
                        early_stopping: early_stopping.clone(),
                        ..base
                    });
                }
            }
        }
        let mut jobs: Vec<JobSpec> = pretrain_jobs.into_values().collect();
        jobs.sort_by(|a, b| a.category.cmp(&b.category));
        jobs.extend(segnet_jobs);
        Ok(Plan {
            run: run.to_string(),
            store: cluster.run.store.clone(),
            resources: cluster.resources.clone(),
            jobs,
            gate_tolerance: retraining.map(|_| section.tolerance),
            early_stopping,
            budget,
        })
    }

    /// The job graph as a table.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "run `{}`, store {}, {} jobs\n",
            self.run,
            self.store,
            self.jobs.len()
        );
        out.push_str(&format!(
            "{:<18} {:<9} {:<16} {:<18} {}\n",
            "job", "kind", "category", "after", "sweep point"
        ));
        for job in &self.jobs {
            let point: Vec<String> = job.point.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!(
                "{:<18} {:<9} {:<16} {:<18} {}\n",
                job.id,
                job.kind.name(),
                job.category,
                job.depends_on.as_deref().unwrap_or("-"),
                point.join(" ")
            ));
        }
        out.push_str(&self.describe_search());
        out
    }

    /// The sweep's early stopping and budget: rungs, and per category the SegNet steps of its
    /// trials in the worst case (every trial to its last step) and as expected.
    fn describe_search(&self) -> String {
        let mut out = String::new();
        let mut trials: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for job in self.jobs.iter().filter(|j| j.kind == JobKind::Segnet) {
            trials
                .entry(&job.category)
                .or_default()
                .push(job.config.segnet.steps);
        }
        if let Some(stopping) = &self.early_stopping {
            let metric = stopping.metric.name();
            let mut lengths: Vec<u64> = trials.values().flatten().copied().collect();
            lengths.sort_unstable();
            lengths.dedup();
            match stopping.rule {
                super::StopRule::Asha {
                    grace_steps,
                    reduction_factor,
                } => {
                    out.push_str(&format!(
                        "early stopping: ASHA on the validation {metric}, grace {grace_steps} steps, reduction factor {reduction_factor}\n"
                    ));
                    for steps in lengths {
                        let rungs: Vec<String> = stopping
                            .rungs(steps)
                            .iter()
                            .map(u64::to_string)
                            .collect();
                        out.push_str(&format!(
                            "  trials of {steps} steps are judged at steps {}\n",
                            rungs.join(", ")
                        ));
                    }
                }
                super::StopRule::Median {
                    start_step,
                    min_trials,
                } => out.push_str(&format!(
                    "early stopping: median rule on the validation {metric} from step {start_step}, once {min_trials} other trials got there (expected steps assume half the trials stop at step {start_step})\n"
                )),
            }
        }
        if self.early_stopping.is_some() || self.budget.is_some() {
            out.push_str(&format!(
                "{:<16} {:>7} {:>18} {:>18}\n",
                "category", "trials", "SegNet steps, most", "expected"
            ));
            for (category, lengths) in &trials {
                let worst: u64 = lengths.iter().sum();
                let expected: f64 = match &self.early_stopping {
                    Some(stopping) => lengths
                        .iter()
                        .map(|&steps| stopping.expected_steps(1, steps))
                        .sum(),
                    None => worst as f64,
                };
                out.push_str(&format!(
                    "{category:<16} {:>7} {worst:>18} {:>18.0}\n",
                    lengths.len(),
                    expected
                ));
            }
        }
        if let Some(budget) = &self.budget {
            for (scope, cap) in [
                ("each category", budget.category_steps),
                ("the run", budget.run_steps),
            ] {
                if let Some(cap) = cap {
                    out.push_str(&format!(
                        "budget: at most {cap} SegNet steps for {scope}; a trial starts only if the finished trials' steps, the running trials' whole steps and its own fit\n"
                    ));
                }
            }
        }
        out
    }
}

/// Only what changes a pre-trained encoder: sweep points that differ elsewhere share it.
fn pretrain_parameters(config: &Config, retraining: Option<&Retraining>) -> serde_json::Value {
    serde_json::json!({
        "seed": config.seed,
        "model": config.model,
        "pretrain": config.pretrain,
        "holdout_fraction": config.validation.holdout_fraction,
        "retraining": retraining,
    })
}

fn segnet_parameters(config: &Config, retraining: Option<&Retraining>) -> serde_json::Value {
    let mut config = config.clone();
    // The thread count changes speed, not results.
    config.threads = 0;
    serde_json::json!({ "config": config, "retraining": retraining })
}

fn job_id(
    kind: JobKind,
    category: &str,
    fingerprint: &str,
    parameters: &serde_json::Value,
    upstream: Option<&str>,
) -> JobId {
    let mut hash = Sha256::new();
    for part in [
        kind.name(),
        category,
        fingerprint,
        &parameters.to_string(),
        upstream.unwrap_or(""),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hex(&hash.finalize()[..8])
}
