//! Runs one leased job to completion on this thread (blocking): the pre-training stage
//! publishes the encoder; the SegNet stage starts from it, publishes the model, the test maps
//! and the metrics. Everything goes to the store under `runs/<run>/jobs/<job>/`.

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use slsg::backend::{BackendJob, Device, run_on};
use slsg::data::Category;
use slsg::infer::{
    CARD_FILE, Detector, TestRunError, WEIGHTS_FILE, encode_model, evaluate_test_split,
};
use slsg::job::{FailureKind, JobKind, JobResult, JobSpec};
use slsg::metrics::encode_tiff;
use slsg::store::{Key, Store, StoreCheckpoints};
use slsg::train::{
    Checkpoint, CheckpointMeta, TrainError, ValidationReport, prepare, pretrain_stage, segnet_stage,
};
use tokio::runtime::Handle;

use crate::reporter::{JobSignals, Reporter};

/// Why a job did not finish, and whether running it again could help.
#[derive(Debug)]
pub struct JobFailure {
    pub message: String,
    /// `GiveBack` when the job stopped on request (shutdown, cancelled lease) after writing a
    /// checkpoint; `Permanent` when its input is at fault.
    pub kind: FailureKind,
}

impl JobFailure {
    fn permanent(e: impl std::fmt::Display) -> JobFailure {
        JobFailure {
            message: e.to_string(),
            kind: FailureKind::Permanent,
        }
    }
}

/// Store, checkpoint and other environmental errors: worth another attempt.
impl<E: std::fmt::Display> From<E> for JobFailure {
    fn from(e: E) -> Self {
        JobFailure {
            message: e.to_string(),
            kind: FailureKind::Retryable,
        }
    }
}

/// The keys of a job's artifacts.
pub fn job_key(run: &str, job: &str) -> Result<Key, slsg::store::NameError> {
    Key::new(["runs", run, "jobs", job])
}

pub fn run_job(
    spec: &JobSpec,
    device: Device,
    runtime: Handle,
    signals: JobSignals,
) -> Result<JobResult, JobFailure> {
    let start = Instant::now();
    let store = Store::open(&spec.store)?;
    let key = job_key(&spec.run, &spec.id).map_err(JobFailure::permanent)?;
    runtime.block_on(store.put(&key.join("spec.json")?, serde_json::to_vec_pretty(spec)?))?;
    let category = Category::open(&spec.dataset, &spec.category).map_err(JobFailure::permanent)?;
    let reporter = Reporter::open(
        store.clone(),
        key.join("curve.jsonl")?,
        runtime.clone(),
        signals,
    )?;
    let checkpoints = StoreCheckpoints::new(store.clone(), &key, runtime.clone())?;
    let job = StageJob {
        spec,
        category,
        store: store.clone(),
        key: key.clone(),
        checkpoints,
        reporter,
        runtime: runtime.clone(),
    };
    let (result, reporter) = run_on(device, job)?;
    reporter.flush()?;
    let mut result = result?;
    result.seconds = start.elapsed().as_secs_f64();
    runtime.block_on(store.put(
        &key.join("result.json")?,
        serde_json::to_vec_pretty(&result)?,
    ))?;
    Ok(result)
}

struct StageJob<'a> {
    spec: &'a JobSpec,
    category: Category,
    store: Store,
    key: Key,
    checkpoints: StoreCheckpoints,
    reporter: Reporter,
    runtime: Handle,
}

fn training_failure(e: TrainError) -> JobFailure {
    let kind = match e {
        TrainError::Interrupted { .. } => FailureKind::GiveBack,
        TrainError::Data(_) | TrainError::Simulate(_) => FailureKind::Permanent,
        TrainError::Checkpoint(_) | TrainError::NonFinite { .. } => FailureKind::Retryable,
    };
    JobFailure {
        message: e.to_string(),
        kind,
    }
}

impl BackendJob for StageJob<'_> {
    type Output = (Result<JobResult, JobFailure>, Reporter);

    fn run<B: AutodiffBackend>(mut self, device: B::Device) -> Self::Output {
        let result = self.stage::<B>(&device);
        (result, self.reporter)
    }
}

impl StageJob<'_> {
    fn stage<B: AutodiffBackend>(&mut self, device: &B::Device) -> Result<JobResult, JobFailure> {
        let config = &self.spec.config;
        let prepared = prepare(&self.category, config).map_err(training_failure)?;
        match self.spec.kind {
            JobKind::Pretrain => {
                let steps = config.pretrain.total_steps(prepared.train_paths.len());
                let encoder = pretrain_stage::<B>(
                    &prepared,
                    config,
                    device,
                    &mut self.checkpoints,
                    &mut self.reporter,
                )
                .map_err(training_failure)?;
                let mut checkpoint = Checkpoint::new(CheckpointMeta {
                    stage: "encoder".into(),
                    step: steps,
                    total_steps: steps,
                    seed: config.seed,
                    extra: Default::default(),
                });
                checkpoint.put_module::<B, _>("encoder", &encoder);
                self.runtime.block_on(
                    self.store
                        .put(&self.key.join("encoder.ckpt")?, checkpoint.encode()),
                )?;
                Ok(JobResult {
                    steps,
                    validation: None,
                    evaluation: None,
                    seconds: 0.0,
                })
            }
            JobKind::Segnet => {
                let upstream = self
                    .spec
                    .depends_on
                    .as_deref()
                    .ok_or("a SegNet job needs its pre-training job")?;
                let encoder_key = job_key(&self.spec.run, upstream)?.join("encoder.ckpt")?;
                let bytes = self
                    .runtime
                    .block_on(self.store.get(&encoder_key))?
                    .ok_or_else(|| {
                        format!(
                            "the encoder of pre-training job {upstream} is missing ({encoder_key})"
                        )
                    })?;
                let origin = format!("{}/{encoder_key}", self.store.url());
                let encoder = Checkpoint::decode(&bytes, &origin)?.load_module(
                    "encoder",
                    config.model.encoder().init::<B>(device),
                    device,
                    &origin,
                )?;
                let fit = segnet_stage::<B>(
                    &self.category,
                    prepared,
                    config,
                    encoder,
                    device,
                    &mut self.checkpoints,
                    &mut self.reporter,
                )
                .map_err(training_failure)?;
                let files = encode_model(&fit.model, &fit.card);
                let model_key = self.key.join("model")?;
                self.runtime.block_on(
                    self.store
                        .put(&model_key.join(WEIGHTS_FILE)?, files.weights),
                )?;
                self.runtime
                    .block_on(self.store.put(&model_key.join(CARD_FILE)?, files.card))?;
                let training = &fit.card.training;
                let validation =
                    training
                        .validation_image_auroc
                        .map(|image_auroc| ValidationReport {
                            step: training.selected_step,
                            image_auroc: Some(image_auroc),
                            pixel_auroc: training.validation_pixel_auroc,
                            score: (image_auroc + training.validation_pixel_auroc.unwrap_or(0.0))
                                / 2.0,
                            threshold: fit.card.decision_threshold,
                            best: true,
                        });
                let steps = training.segnet_steps;
                let detector = Detector::new(fit.model, fit.card, device.clone());
                let evaluation = if self.category.test.is_empty() {
                    None
                } else {
                    let maps = self
                        .key
                        .join_all(["maps", self.category.name.as_str(), "test"])?;
                    let (store, runtime) = (&self.store, &self.runtime);
                    let mut write =
                        |test: &slsg::data::TestImage, map: &slsg::metrics::AnomalyMap| {
                            let key = maps
                                .join_all([test.kind.as_str(), &format!("{}.tiff", test.id())])
                                .map_err(|e| e.to_string())?;
                            runtime
                                .block_on(store.put(&key, encode_tiff(map)))
                                .map_err(|e| e.to_string())
                        };
                    let run = evaluate_test_split(
                        &detector,
                        &self.category,
                        config.inference.batch_size,
                        &mut write,
                    )
                    .map_err(|e| match e {
                        TestRunError::Data(_) => JobFailure::permanent(e),
                        TestRunError::Sink { .. } => JobFailure::from(e),
                    })?;
                    self.runtime.block_on(self.store.put(
                        &self.key.join("eval.json")?,
                        serde_json::to_vec_pretty(&run.evaluation)?,
                    ))?;
                    Some(run.evaluation)
                };
                Ok(JobResult {
                    steps,
                    validation,
                    evaluation,
                    seconds: 0.0,
                })
            }
        }
    }
}
