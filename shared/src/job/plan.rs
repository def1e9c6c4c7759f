//! The cluster config (`slsg train`, `slsg coordinator`) and its expansion into a job graph:
//! per category one `pretrain` job per distinct pre-training configuration and one `segnet`
//! job per sweep point depending on it. Job ids hash the kind, the category, its data
//! fingerprint, the parameters and the upstream job, so a re-run reuses finished work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::spec::{JobId, JobKind, JobSpec};
use crate::backend::Device;
use crate::config::{Config, ConfigError};
use crate::data::{Category, DataError, all_files, fingerprint, hex, resolve_categories};
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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepMode {
    #[default]
    Grid,
    /// `samples` points drawn without replacement from the grid.
    Random,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    #[serde(default)]
    pub mode: SweepMode,
    #[serde(default)]
    pub samples: usize,
    #[serde(default)]
    pub seed: u64,
    /// Config field (`segnet.lr`) → the values to try.
    pub values: BTreeMap<String, Vec<toml::Value>>,
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
    Name(#[from] NameError),
    #[error(
        "category `{category}` is in two datasets ({first} and {second}); models are registered by category name"
    )]
    DuplicateCategory {
        category: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// The expanded run: jobs in dependency order (every job after the one it depends on).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub run: String,
    pub store: String,
    pub resources: Resources,
    pub jobs: Vec<JobSpec>,
}

impl ClusterConfig {
    pub fn load(path: &Path) -> Result<ClusterConfig, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: ClusterConfig = toml::from_str(&text).map_err(|e| PlanError::Parse {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        // Relative dataset and store paths are relative to the config file.
        let base = path.parent().unwrap_or(Path::new("."));
        for dataset in &mut config.datasets {
            if dataset.path.is_relative() {
                dataset.path = base.join(&dataset.path);
            }
        }
        if !config.run.store.contains("://") && Path::new(&config.run.store).is_relative() {
            config.run.store = base.join(&config.run.store).display().to_string();
        }
        Ok(config)
    }
}

impl Plan {
    /// Expands a cluster config; `origin` names it in errors.
    pub fn expand(
        cluster: &ClusterConfig,
        origin: &str,
        threads: usize,
    ) -> Result<Plan, PlanError> {
        let invalid = |field: &str, message: String| PlanError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        };
        validate_name(&cluster.run.name).map_err(|e| invalid("run.name", e.to_string()))?;
        if cluster.datasets.is_empty() {
            return Err(invalid(
                "dataset",
                "at least one [[dataset]] is needed".into(),
            ));
        }
        let r = &cluster.resources;
        if r.workers.is_empty()
            || r.max_attempts == 0
            || r.lease_seconds == 0
            || r.heartbeat_seconds == 0
        {
            return Err(invalid(
                "resources",
                "workers, max_attempts, lease_seconds and heartbeat_seconds must not be empty or 0"
                    .into(),
            ));
        }
        if r.heartbeat_seconds * 2 > r.lease_seconds {
            return Err(invalid(
                "resources.heartbeat_seconds",
                "must be at most half of lease_seconds".into(),
            ));
        }
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

        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut pretrain_jobs: BTreeMap<JobId, JobSpec> = BTreeMap::new();
        let mut segnet_jobs = Vec::new();
        for dataset in &cluster.datasets {
            for name in resolve_categories(&dataset.path, &dataset.categories)? {
                validate_name(&name)?;
                if let Some(first) = seen.insert(name.clone(), dataset.path.clone()) {
                    return Err(PlanError::DuplicateCategory {
                        category: name,
                        first,
                        second: dataset.path.clone(),
                    });
                }
                let category = Category::open(&dataset.path, &name)?;
                let train_fingerprint =
                    fingerprint(&category.root, &category.training_images(), threads)?;
                let full_fingerprint =
                    fingerprint(&category.root, &all_files(&category.root)?, threads)?;
                for (point, config) in points.iter().zip(&configs) {
                    let base = JobSpec {
                        id: String::new(),
                        kind: JobKind::Pretrain,
                        run: cluster.run.name.clone(),
                        store: cluster.run.store.clone(),
                        dataset: dataset.path.clone(),
                        category: name.clone(),
                        config: config.clone(),
                        point: point
                            .iter()
                            .map(|(k, v)| (k.clone(), v.to_string()))
                            .collect(),
                        depends_on: None,
                    };
                    let pretrain_id = job_id(
                        JobKind::Pretrain,
                        &name,
                        &train_fingerprint,
                        &pretrain_parameters(config),
                        None,
                    );
                    pretrain_jobs
                        .entry(pretrain_id.clone())
                        .or_insert_with(|| JobSpec {
                            id: pretrain_id.clone(),
                            point: BTreeMap::new(),
                            ..base.clone()
                        });
                    let segnet_id = job_id(
                        JobKind::Segnet,
                        &name,
                        &full_fingerprint,
                        &segnet_parameters(config),
                        Some(&pretrain_id),
                    );
                    segnet_jobs.push(JobSpec {
                        id: segnet_id,
                        kind: JobKind::Segnet,
                        depends_on: Some(pretrain_id),
                        ..base
                    });
                }
            }
        }
        let mut jobs: Vec<JobSpec> = pretrain_jobs.into_values().collect();
        jobs.sort_by(|a, b| a.category.cmp(&b.category));
        jobs.extend(segnet_jobs);
        Ok(Plan {
            run: cluster.run.name.clone(),
            store: cluster.run.store.clone(),
            resources: cluster.resources.clone(),
            jobs,
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
        out
    }
}

/// The sweep's points, each a field → value assignment (one empty point without a sweep).
fn sweep_points(
    sweep: Option<&SweepSection>,
) -> Result<Vec<BTreeMap<String, toml::Value>>, String> {
    let Some(sweep) = sweep else {
        return Ok(vec![BTreeMap::new()]);
    };
    let mut grid: Vec<BTreeMap<String, toml::Value>> = vec![BTreeMap::new()];
    for (field, values) in &sweep.values {
        if values.is_empty() {
            return Err(format!("values.\"{field}\" is empty"));
        }
        grid = grid
            .into_iter()
            .flat_map(|point| {
                values.iter().map(move |v| {
                    let mut p = point.clone();
                    p.insert(field.clone(), v.clone());
                    p
                })
            })
            .collect();
    }
    if sweep.mode == SweepMode::Random {
        if sweep.samples == 0 {
            return Err("random mode needs samples ≥ 1".into());
        }
        grid.shuffle(&mut crate::seed::rng_for(sweep.seed, &[0x5EE9]));
        grid.truncate(sweep.samples);
    }
    Ok(grid)
}

/// Only what changes a pre-trained encoder: sweep points that differ elsewhere share it.
fn pretrain_parameters(config: &Config) -> serde_json::Value {
    serde_json::json!({
        "seed": config.seed,
        "model": config.model,
        "pretrain": config.pretrain,
        "holdout_fraction": config.validation.holdout_fraction,
    })
}

fn segnet_parameters(config: &Config) -> serde_json::Value {
    let mut config = config.clone();
    // The thread count changes speed, not results.
    config.threads = 0;
    serde_json::to_value(config).expect("the config serialises")
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
