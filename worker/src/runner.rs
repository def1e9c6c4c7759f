//! Runs one leased job to its end on this thread (blocking): the job's stage of the category
//! pipeline, written to the job's folder of its run in the store. Whether a failure is worth
//! another attempt is decided by the error's type.

use slsg::backend::Device;
use slsg::checkpoint::CheckpointError;
use slsg::config::ConfigError;
use slsg::data::{DataError, Dataset, DatasetCache, SourceError};
use slsg::fit::{PipelineError, SegnetFrom, StageOutput, prepare, pretrain_stage, segnet_stage};
use slsg::infer::ModelError;
use slsg::job::{FailureKind, JobKind, JobResult, JobSpec};
use slsg::store::layout::RunKeys;
use slsg::store::{BlockingStore, NameError, Store, StoreError};
use slsg::train::{Progress, TrainError};
use tokio::runtime::Handle;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Pipeline(Box<PipelineError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Dataset(Box<SourceError>),
    /// The specification does not pass the checks a plan's configs pass: sent by a
    /// coordinator of another version, or altered on the way.
    #[error(transparent)]
    Spec(#[from] ConfigError),
    #[error("SegNet job {job} names no pre-training job")]
    NoUpstream { job: String },
    #[error("the job panicked: {0}")]
    Panicked(String),
}

impl JobError {
    /// The store failed (unreachable, refusing, timing out): the job is not at fault, and
    /// running it again once the store is back continues from its checkpoints.
    pub fn is_store_outage(&self) -> bool {
        let outage = |e: &StoreError| matches!(e, StoreError::Object { .. });
        match self {
            JobError::Store(e) => outage(e),
            JobError::Dataset(e) => e.is_store_outage(),
            JobError::Pipeline(e) => match e.as_ref() {
                PipelineError::Store(e) => outage(e),
                PipelineError::Checkpoint(CheckpointError::Store(e))
                | PipelineError::Train(TrainError::Checkpoint(CheckpointError::Store(e))) => {
                    outage(e)
                }
                _ => false,
            },
            _ => false,
        }
    }
}

impl From<SourceError> for JobError {
    fn from(e: SourceError) -> Self {
        JobError::Dataset(Box::new(e))
    }
}

impl From<PipelineError> for JobError {
    fn from(e: PipelineError) -> Self {
        JobError::Pipeline(Box::new(e))
    }
}

impl JobError {
    /// How the failure ends the lease: a fault of the job's input or configuration cannot be
    /// fixed by running it again; the environment (the store, a device, a bug that panicked)
    /// may behave differently next time; an interrupted job gives its lease back.
    pub fn failure_kind(&self) -> FailureKind {
        use FailureKind::{GiveBack, Permanent, Retryable, Upstream};
        match self {
            JobError::Pipeline(e) => match e.as_ref() {
                PipelineError::Data(_) | PipelineError::Simulate(_) | PipelineError::Name(_) => {
                    Permanent
                }
                PipelineError::OtherConfig { .. } => Permanent,
                PipelineError::Train(TrainError::Interrupted { .. }) => GiveBack,
                PipelineError::Train(TrainError::NonFinite { .. } | TrainError::Validation(_))
                | PipelineError::Eval(_) => Permanent,
                PipelineError::Train(TrainError::Checkpoint(e)) | PipelineError::Checkpoint(e) => {
                    checkpoint_failure(e)
                }
                PipelineError::Store(e) => store_failure(e),
                PipelineError::Device(_) => Retryable,
                PipelineError::MissingEncoder { .. } | PipelineError::Encoder(_) => Upstream,
                PipelineError::Model(e) => match e {
                    ModelError::Io { .. } => Retryable,
                    ModelError::Card { .. } | ModelError::Format { .. } => Permanent,
                    ModelError::Weights(e) => checkpoint_failure(e),
                },
                PipelineError::MissingModel { .. }
                | PipelineError::Architecture { .. }
                | PipelineError::NoEvaluationSet { .. } => Permanent,
            },
            JobError::Store(e) => store_failure(e),
            JobError::Name(_)
            | JobError::Data(_)
            | JobError::Spec(_)
            | JobError::NoUpstream { .. } => Permanent,
            JobError::Dataset(e) => match e.as_ref() {
                SourceError::Store(e) => store_failure(e),
                SourceError::Truncated { .. } | SourceError::Cache { .. } => Retryable,
                SourceError::Data(_)
                | SourceError::Url { .. }
                | SourceError::Name { .. }
                | SourceError::Changed { .. } => Permanent,
            },
            JobError::Panicked(_) => Retryable,
        }
    }
}

fn store_failure(e: &StoreError) -> FailureKind {
    match e {
        StoreError::Name(_) => FailureKind::Permanent,
        StoreError::Open { .. }
        | StoreError::Object { .. }
        | StoreError::Decode { .. }
        | StoreError::TooLarge { .. } => FailureKind::Retryable,
    }
}

fn checkpoint_failure(e: &CheckpointError) -> FailureKind {
    match e {
        CheckpointError::Store(e) => store_failure(e),
        CheckpointError::Name(_) => FailureKind::Permanent,
        CheckpointError::NotACheckpoint { .. }
        | CheckpointError::UnsupportedFormat { .. }
        | CheckpointError::Corrupt { .. }
        | CheckpointError::MissingSection { .. }
        | CheckpointError::Incompatible { .. } => FailureKind::Retryable,
    }
}

/// Why a job did not finish, ready for the coordinator.
#[derive(Clone, Debug)]
pub struct JobFailure {
    pub message: String,
    pub kind: FailureKind,
}

impl From<JobError> for JobFailure {
    fn from(e: JobError) -> Self {
        JobFailure {
            kind: e.failure_kind(),
            message: e.to_string(),
        }
    }
}

/// Runs `spec`'s stage on `device`; `progress` sees every training event. A dataset at a URL
/// is read from its copy in `cache`.
pub fn run_job(
    spec: &JobSpec,
    device: Device,
    runtime: Handle,
    cache: &DatasetCache,
    progress: &mut dyn Progress,
) -> Result<JobResult, JobError> {
    // What a coordinator sends is checked as the plan's configs are: a value out of range
    // fails this job for good, naming the field, instead of panicking in every attempt.
    spec.config.validate(&format!("job {}", spec.id))?;
    let store = BlockingStore::new(Store::open(&spec.store)?, runtime);
    let run = RunKeys::new(&spec.run)?;
    let out = StageOutput {
        store: store.clone(),
        keys: run.job(&spec.id)?,
    };
    store.put_json(&out.keys.spec(), spec)?;
    let category = Dataset::open(&spec.dataset)?.category(
        &spec.category,
        spec.dataset_listing.as_deref(),
        cache,
    )?;
    let config = &spec.config;
    let retraining = spec.retraining.as_ref();
    let prepared = prepare(&category, config, retraining)?;
    if spec.kind == JobKind::Pretrain {
        return Ok(pretrain_stage(&prepared, config, &out, device, progress)?);
    }
    let encoder;
    let from = match retraining {
        Some(retraining) if retraining.fine_tune => SegnetFrom::Version(&retraining.current),
        _ => {
            let upstream = spec
                .depends_on
                .as_deref()
                .ok_or_else(|| JobError::NoUpstream {
                    job: spec.id.clone(),
                })?;
            encoder = run.job(upstream)?.encoder();
            SegnetFrom::Encoder(&encoder)
        }
    };
    Ok(segnet_stage(
        &category, &prepared, config, from, retraining, &out, device, progress,
    )?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use slsg::config::Config;
    use slsg::synth::{SynthOptions, write_dataset};
    use slsg::train::{Silent, Stage};

    use super::*;

    /// A job of run `r` on the synthetic `weave` under `dir` (`data/`, `store/`), with a tiny
    /// model.
    fn spec(dir: &Path, id: &str, kind: JobKind, depends_on: Option<&str>) -> JobSpec {
        let mut config = Config::default();
        config.model.image_size = 32;
        config.model.width = 0.0625;
        JobSpec {
            id: id.into(),
            kind,
            run: "r".into(),
            store: dir.join("store").display().to_string(),
            dataset: dir.join("data"),
            dataset_listing: None,
            category: "weave".into(),
            config,
            point: BTreeMap::new(),
            depends_on: depends_on.map(String::from),
            retraining: None,
            early_stopping: None,
        }
    }

    fn synthetic_data(dir: &Path) {
        let options = SynthOptions {
            size: 32,
            train: 4,
            validation: 2,
            test_good: 2,
            test_per_defect: 1,
            ..SynthOptions::default()
        };
        write_dataset(&dir.join("data"), &options).unwrap();
    }

    fn run(dir: &Path, spec: &JobSpec) -> JobError {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        run_job(
            spec,
            Device::Cpu,
            runtime.handle().clone(),
            &DatasetCache::new(dir.join("cache")),
            &mut Silent,
        )
        .unwrap_err()
    }

    #[test]
    fn a_spec_out_of_range_fails_for_good_naming_the_field_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path(), "j1", JobKind::Segnet, Some("j0"));
        spec.config.segnet.lr = 2.0;
        let error = run(dir.path(), &spec);
        assert_eq!(error.failure_kind(), FailureKind::Permanent);
        let message = error.to_string();
        assert!(
            message.contains("job j1") && message.contains("segnet.lr"),
            "{message}"
        );
        assert!(!dir.path().join("store").exists(), "nothing was written");
    }

    #[test]
    fn a_segnet_job_without_a_usable_encoder_sends_its_upstream_job_again() {
        let dir = tempfile::tempdir().unwrap();
        synthetic_data(dir.path());
        let segnet = spec(dir.path(), "s", JobKind::Segnet, Some("p"));
        let missing = run(dir.path(), &segnet);
        assert!(
            matches!(&missing, JobError::Pipeline(e) if matches!(**e, PipelineError::MissingEncoder { .. })),
            "{missing}"
        );
        assert_eq!(missing.failure_kind(), FailureKind::Upstream);
        // A damaged encoder is the upstream job's to write again, too.
        let encoder = dir.path().join("store").join(
            RunKeys::new("r")
                .unwrap()
                .job("p")
                .unwrap()
                .encoder()
                .as_str(),
        );
        std::fs::create_dir_all(encoder.parent().unwrap()).unwrap();
        std::fs::write(&encoder, b"not a checkpoint").unwrap();
        let damaged = run(dir.path(), &segnet);
        assert_eq!(damaged.failure_kind(), FailureKind::Upstream, "{damaged}");
    }

    #[test]
    fn faults_of_the_input_fail_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let no_data = run(dir.path(), &spec(dir.path(), "p", JobKind::Pretrain, None));
        assert!(
            no_data.to_string().contains("data"),
            "names the folder: {no_data}"
        );
        assert_eq!(no_data.failure_kind(), FailureKind::Permanent);
        synthetic_data(dir.path());
        let orphan = run(dir.path(), &spec(dir.path(), "s", JobKind::Segnet, None));
        assert!(matches!(orphan, JobError::NoUpstream { .. }), "{orphan}");
        assert_eq!(orphan.failure_kind(), FailureKind::Permanent);
        let mut unknown = spec(dir.path(), "p", JobKind::Pretrain, None);
        unknown.category = "nope".into();
        assert_eq!(
            run(dir.path(), &unknown).failure_kind(),
            FailureKind::Permanent
        );
    }

    #[test]
    fn what_running_again_could_change_is_retried_and_an_interruption_gives_the_lease_back() {
        let interrupted = JobError::from(PipelineError::Train(TrainError::Interrupted {
            stage: Stage::Segnet,
            step: 7,
        }));
        assert_eq!(interrupted.failure_kind(), FailureKind::GiveBack);
        let diverged = JobError::from(PipelineError::Train(TrainError::NonFinite {
            stage: Stage::Segnet,
            step: 7,
            value: f64::NAN,
        }));
        assert_eq!(diverged.failure_kind(), FailureKind::Permanent);
        let corrupt = JobError::from(PipelineError::Checkpoint(CheckpointError::Corrupt {
            origin: "segnet-00000010.ckpt".into(),
            reason: "checksum mismatch".into(),
        }));
        assert_eq!(corrupt.failure_kind(), FailureKind::Retryable);
        assert_eq!(
            JobError::Panicked("index out of bounds".into()).failure_kind(),
            FailureKind::Retryable
        );
        for error in [&interrupted, &diverged, &corrupt] {
            assert!(!error.is_store_outage(), "{error}");
        }
    }
}
