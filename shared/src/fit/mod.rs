//! The category pipeline: prepare the data, pre-train GPT-Net (or reuse its encoder), train
//! SegNet, select on validation data, score the test split — every artifact of a stage written
//! to its folder in a store. `slsg fit`, the cluster's job runner and retraining all call it, so
//! a fit's output and a cluster job's are the same files.

mod curve;
mod gate;
mod on_device;
mod prepare;
pub mod report;

pub use curve::Curve;
pub use gate::false_alarm_rate;
pub use on_device::{fit_category, pretrain_stage, segnet_stage};
pub use prepare::{
    LabelledAnomaly, Prepared, Retraining, SimulatorInputs, category_simulator, prepare,
    texture_bank,
};

use std::sync::Arc;
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::DeviceError;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointMeta, StoreCheckpoints};
use crate::config::Config;
use crate::data::{Category, DataError, TestImage};
use crate::infer::{
    Detector, EvaluationSet, MODEL_FORMAT_VERSION, ModelCard, ModelError, SelectionScores,
    TestRunError, TrainingSummary, decode_model, encode_model, evaluate_test_split,
};
use crate::metrics::{AnomalyMap, EvalError, Evaluation, MapsInfo, encode_tiff};
use crate::model::Encoder;
use crate::registry::GateReport;
use crate::simulate::{SimulateError, Simulator, resolve_foreground};
use crate::store::layout::{CategoryModels, StageKeys, fit_config};
use crate::store::{BlockingStore, Key, NameError, StoreError};
use crate::train::{
    PretrainInputs, Progress, SegmentInputs, SegnetStart, Stage, StoppedEarly, TrainError,
    ValidationReport, ValidationSet, pretrain, train_segnet,
};

/// The checkpoint section holding a pre-training stage's encoder.
const ENCODER_SECTION: &str = "encoder";

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Simulate(#[from] SimulateError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("{location}: the pre-training stage's encoder is missing")]
    MissingEncoder { location: String },
    #[error("the pre-training stage's encoder is unusable: {0}")]
    Encoder(CheckpointError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("{location}: the model is missing")]
    MissingModel { location: String },
    #[error(
        "version `{version}` has another architecture than the config's [model] ({message}); fine-tuning needs the same"
    )]
    Architecture { version: String, message: String },
    #[error(
        "cannot compare with the model in production: category `{category}` has no validation images"
    )]
    NoEvaluationSet { category: String },
    #[error(
        "{location} holds a fit of another config ({difference}); use another --out, or delete the folder to start over"
    )]
    OtherConfig {
        location: String,
        difference: String,
    },
}

impl PipelineError {
    /// The error as told to a remote client: without the names of folders it did not give.
    pub fn without_listings(self) -> PipelineError {
        match self {
            PipelineError::Data(e) => PipelineError::Data(e.without_listings()),
            other => other,
        }
    }
}

impl From<TestRunError<StoreError>> for PipelineError {
    fn from(e: TestRunError<StoreError>) -> Self {
        match e {
            TestRunError::Data(e) => PipelineError::Data(e),
            TestRunError::Eval(e) => PipelineError::Eval(e),
            TestRunError::Sink(e) => PipelineError::Store(e),
        }
    }
}

/// What a finished stage reports (`result.json`, written last).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub steps: u64,
    /// SegNet: the validation pass whose model was kept.
    pub validation: Option<ValidationReport>,
    /// SegNet: the test-split metrics (reported beside, never used to choose).
    pub evaluation: Option<Evaluation>,
    /// SegNet: test images scored per second (prediction only, reading and writing excluded).
    pub inference_images_per_second: Option<f64>,
    /// SegNet in a retraining run: the candidate against the model in production.
    pub gate: Option<GateReport>,
    /// Time this attempt spent in the stage.
    pub seconds: f64,
    /// SegNet in a sweep: the early-stopping rule ended training at this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<StoppedEarly>,
}

/// Where one stage writes: its folder in a store.
#[derive(Clone, Debug)]
pub struct StageOutput {
    pub store: BlockingStore,
    pub keys: StageKeys,
}

impl StageOutput {
    /// A stage folder of `slsg fit`'s output.
    pub fn fit(store: &BlockingStore, stage: Stage) -> Result<StageOutput, NameError> {
        Ok(StageOutput {
            store: store.clone(),
            keys: StageKeys::fit_stage(stage.name())?,
        })
    }

    /// The stage's result, if it finished before.
    pub fn finished(&self) -> Result<Option<StageResult>, StoreError> {
        self.store.get_json(&self.keys.result())
    }

    fn checkpoints(&self) -> StoreCheckpoints {
        StoreCheckpoints::new(self.store.clone(), self.keys.clone())
    }

    fn finish(&self, result: StageResult) -> Result<StageResult, PipelineError> {
        self.store.put_json(&self.keys.result(), &result)?;
        Ok(result)
    }
}

/// [`pretrain_stage`] on Burn's `device` (with autodiff).
fn pretrain_stage_in(
    prepared: &Prepared,
    config: &Config,
    out: &StageOutput,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<StageResult, PipelineError> {
    let start = Instant::now();
    let inputs = PretrainInputs {
        model: config.model.clone(),
        config: config.pretrain.clone(),
        normals: prepared.normals.clone(),
        seed: config.seed,
        threads: config.threads(),
    };
    let mut curve = Curve::open(out.store.clone(), out.keys.curve(), progress)?;
    let trained = pretrain(&inputs, device, &mut out.checkpoints(), &mut curve);
    curve.flush()?;
    let generator = trained?;
    let steps = config.pretrain.total_steps(prepared.train_paths.len());
    let mut checkpoint = Checkpoint::new(CheckpointMeta {
        stage: ENCODER_SECTION.into(),
        step: steps,
        total_steps: steps,
        seed: config.seed,
        extra: Default::default(),
    });
    checkpoint.put_module(ENCODER_SECTION, &generator.encoder);
    out.store.put(&out.keys.encoder(), checkpoint.encode())?;
    out.finish(StageResult {
        steps,
        validation: None,
        evaluation: None,
        inference_images_per_second: None,
        gate: None,
        seconds: start.elapsed().as_secs_f64(),
        stopped_early: None,
    })
}

/// Where a SegNet stage starts.
pub enum SegnetFrom<'a> {
    /// The encoder a pre-training stage stored at this key (in the output's store).
    Encoder(&'a Key),
    /// The registered version's whole SegNet (in the output's store), fine-tuned.
    Version(&'a str),
}

/// [`segnet_stage`] on Burn's `device` (with autodiff).
#[allow(clippy::too_many_arguments)]
fn segnet_stage_in(
    category: &Category,
    prepared: &Prepared,
    config: &Config,
    from: SegnetFrom<'_>,
    retraining: Option<&Retraining>,
    out: &StageOutput,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<StageResult, PipelineError> {
    let start = Instant::now();
    let segnet_start = match from {
        SegnetFrom::Encoder(key) => {
            SegnetStart::Encoder(Box::new(load_encoder(&out.store, key, config, device)?))
        }
        SegnetFrom::Version(version) => {
            let (model, card) =
                load_version(&out.store, &category.name, version, device)?.into_parts();
            if card.model != config.model {
                return Err(PipelineError::Architecture {
                    version: version.to_string(),
                    message: config_difference_of(&card.model, &config.model),
                });
            }
            SegnetStart::Model(Box::new(model))
        }
    };
    let (threads, size) = (config.threads(), config.model.image_size);
    let mut simulation = config.simulation.for_category(&category.name);
    // Decided once from the training images, so validation anomalies land by the same rule.
    simulation.foreground = resolve_foreground(&simulation.foreground, &prepared.normals);
    let foreground = simulation.foreground.clone();
    tracing::info!(category = %category.name, %foreground, "anomalies are simulated on the foreground");
    let textures = texture_bank(
        &simulation,
        &SimulatorInputs {
            size,
            seed: config.seed,
            threads,
            textures: None,
        },
    )?;
    let simulator = Arc::new(Simulator::new(
        simulation.clone(),
        prepared.normals.to_vec(),
        textures.clone(),
    )?);
    let validation_set = if prepared.validation_normals.is_empty() {
        None
    } else {
        let simulator = Simulator::new(simulation, prepared.validation_normals.clone(), textures)?;
        let mut set = ValidationSet::build(
            &simulator,
            config.validation.anomalies_per_image,
            config.seed,
        );
        for labelled in &prepared.labelled_anomalies {
            set.add_labelled(&labelled.image, labelled.pixels.clone());
        }
        Some(set)
    };
    let evaluation_set = validation_set.as_ref().map(|set| EvaluationSet {
        fingerprint: set.fingerprint(),
        normal_images: set.normal_images(),
        anomalies: set.anomalies(),
        labelled_anomalies: prepared.labelled_anomalies.len(),
        seed: set.seed,
    });
    if retraining.is_some() && validation_set.is_none() {
        return Err(PipelineError::NoEvaluationSet {
            category: category.name.clone(),
        });
    }
    out.store.put(
        &out.keys.simulated(),
        report::render_simulated(&simulator, config.seed),
    )?;
    let inputs = SegmentInputs {
        model: config.model.clone(),
        config: config.segnet.clone(),
        image_score: config.inference.image_score,
        simulator,
        validation_set,
        seed: config.seed,
        threads,
        batch_size: config.inference.batch_size,
    };
    let mut curve = Curve::open(out.store.clone(), out.keys.curve(), progress)?;
    let trained = train_segnet(
        &inputs,
        segnet_start,
        device,
        &mut out.checkpoints(),
        &mut curve,
    );
    curve.flush()?;
    let outcome = trained?;

    let card =
        ModelCard {
            format: MODEL_FORMAT_VERSION,
            slsg_version: env!("CARGO_PKG_VERSION").to_string(),
            category: category.name.clone(),
            model: config.model.clone(),
            image_score: config.inference.image_score,
            decision_threshold: outcome.validation.as_ref().and_then(|v| v.threshold),
            training: TrainingSummary {
                seed: config.seed,
                pretrain_steps: config.pretrain.total_steps(prepared.train_paths.len()),
                segnet_steps: outcome.steps,
                selected_step: outcome.best_step,
                training_images: prepared.train_paths.len(),
                validation_images: prepared.validation_paths.len(),
                data_fingerprint: prepared.manifest.fingerprint(),
                foreground: Some(foreground),
            },
            validation: outcome.validation.as_ref().zip(evaluation_set.clone()).map(
                |(report, set)| SelectionScores {
                    image_auroc: report.image_auroc,
                    pixel_auroc: report.pixel_auroc,
                    score: report.score,
                    set,
                },
            ),
        };

    let gate = match (retraining, &inputs.validation_set, evaluation_set) {
        (Some(retraining), Some(set), Some(evaluation_set)) => {
            let current = load_version(
                &out.store,
                &category.name,
                &retraining.current,
                &device.clone().inner(),
            )?;
            let new_images: Vec<&image::RgbImage> = prepared
                .new_validation
                .iter()
                .map(|&i| &prepared.validation_normals[i])
                .collect();
            Some(gate::measure(
                gate::Contender {
                    model: &outcome.model,
                    version: None,
                    threshold: card.decision_threshold,
                    image_score: card.image_score,
                },
                gate::Contender::registered(&current, &retraining.current),
                set,
                evaluation_set,
                &new_images,
                config.inference.batch_size,
                &device.clone().inner(),
            )?)
        }
        _ => None,
    };

    let files = encode_model(&outcome.model, &card);
    let model = out.keys.model();
    out.store.put(&model.weights(), files.weights)?;
    out.store.put(&model.card(), files.card)?;
    out.store.put_json(&out.keys.data(), &prepared.manifest)?;

    let detector = Detector::new(outcome.model, card, device.clone().inner());
    let (evaluation, inference_images_per_second) = if category.test.is_empty() {
        (None, None)
    } else {
        let mut keep_map = |test: &TestImage, map: &AnomalyMap| -> Result<(), StoreError> {
            let key = out.keys.map(&category.name, &test.kind, test.id())?;
            out.store.put(&key, encode_tiff(map))
        };
        let run = evaluate_test_split(
            &detector,
            category,
            config.inference.batch_size,
            &mut keep_map,
        )?;
        out.store.put_json(&out.keys.eval(), &run.evaluation)?;
        let info = MapsInfo {
            image_score: detector.image_score(),
        };
        out.store.put(&out.keys.maps_info(), info.to_json())?;
        let gallery = report::pick_gallery(&run.scored);
        let pictures = report::render_gallery(
            category,
            &run.samples,
            &gallery,
            detector.card().decision_threshold,
            detector.image_score(),
        )?;
        drop(run.samples);
        for (pick, picture) in gallery.iter().zip(pictures) {
            out.store
                .put(&out.keys.gallery(&pick.kind, &pick.id)?, picture)?;
        }
        out.store.put_json(
            &out.keys.figures(),
            &report::StageFigures {
                category: category.name.clone(),
                image_score: detector.image_score(),
                threshold: detector.card().decision_threshold,
                curves: run.figures,
                images: run.scored,
                gallery,
            },
        )?;
        let speed = run.images as f64 / run.seconds.max(1e-9);
        (Some(run.evaluation), Some(speed))
    };
    out.finish(StageResult {
        steps: outcome.steps,
        validation: outcome.validation,
        evaluation,
        inference_images_per_second,
        gate,
        seconds: start.elapsed().as_secs_f64(),
        stopped_early: outcome.stopped_early,
    })
}

/// A registered version of `category` from the store.
pub fn load_version(
    store: &BlockingStore,
    category: &str,
    version: &str,
    device: &Device,
) -> Result<Detector, PipelineError> {
    let keys = CategoryModels::new(category)?.version(version)?.model();
    let read = |key: Key| -> Result<(Vec<u8>, String), PipelineError> {
        let location = store.describe(&key);
        let bytes = store
            .get(&key)?
            .ok_or_else(|| PipelineError::MissingModel {
                location: location.clone(),
            })?;
        Ok((bytes, location))
    };
    let (card, card_origin) = read(keys.card())?;
    let (weights, weights_origin) = read(keys.weights())?;
    Ok(decode_model(
        &card,
        &card_origin,
        &weights,
        &weights_origin,
        device,
    )?)
}

/// The encoder a pre-training stage stored at `key`.
fn load_encoder(
    store: &BlockingStore,
    key: &Key,
    config: &Config,
    device: &Device,
) -> Result<Encoder, PipelineError> {
    let location = store.describe(key);
    let bytes = store
        .get(key)?
        .ok_or_else(|| PipelineError::MissingEncoder {
            location: location.clone(),
        })?;
    Checkpoint::decode(&bytes, &location)
        .and_then(|checkpoint| {
            checkpoint.load_module(
                ENCODER_SECTION,
                config.model.encoder().init(device),
                &location,
            )
        })
        .map_err(PipelineError::Encoder)
}

/// Both stages of `slsg fit`, in `store` (`pretrain/`, `segnet/`, `config.toml`).
pub struct Fitted {
    pub pretrain: StageResult,
    pub segnet: StageResult,
    /// Stages found finished in the store and not run again.
    pub reused: Vec<Stage>,
}

/// [`fit_category`] on Burn's `device` (with autodiff).
fn fit_category_in(
    category: &Category,
    config: &Config,
    store: &BlockingStore,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Fitted, PipelineError> {
    let config = &claim_for(store, config)?;
    let prepared = prepare(category, config, None)?;
    let mut reused = Vec::new();
    let pretrain_out = StageOutput::fit(store, Stage::Pretrain)?;
    let pretrain = match pretrain_out.finished()? {
        Some(result) => {
            reused.push(Stage::Pretrain);
            result
        }
        None => pretrain_stage_in(&prepared, config, &pretrain_out, device, progress)?,
    };
    let segnet_out = StageOutput::fit(store, Stage::Segnet)?;
    let segnet = match segnet_out.finished()? {
        Some(result) => {
            reused.push(Stage::Segnet);
            result
        }
        None => segnet_stage_in(
            category,
            &prepared,
            config,
            SegnetFrom::Encoder(&pretrain_out.keys.encoder()),
            None,
            &segnet_out,
            device,
            progress,
        )?,
    };
    Ok(Fitted {
        pretrain,
        segnet,
        reused,
    })
}

/// Records `config` as the fit's (`config.toml`), or checks that it is the one recorded: a
/// folder's checkpoints must not continue under another config. The thread count changes
/// speed, not results, so it may differ. Returns the config to run: `config`, except that a
/// field the record predates keeps the behaviour the record ran under.
fn claim_for(store: &BlockingStore, config: &Config) -> Result<Config, PipelineError> {
    let key = fit_config();
    let location = store.describe(&key);
    let Some(bytes) = store.get(&key)? else {
        store.put(&key, config.to_toml().into_bytes())?;
        return Ok(config.clone());
    };
    let other = |difference: String| PipelineError::OtherConfig {
        location: location.clone(),
        difference,
    };
    let text = String::from_utf8_lossy(&bytes);
    let recorded = Config::parse(&text, &location).map_err(|e| other(e.to_string()))?;
    let normalised = |c: &Config| {
        let mut c = c.clone();
        c.threads = 0;
        c
    };
    if normalised(&recorded) != normalised(config) {
        return Err(other(config_difference(&recorded, config)));
    }
    let as_recorded = Config::parse_recorded(&text, &location).map_err(|e| other(e.to_string()))?;
    if as_recorded != recorded {
        tracing::info!(
            "{location} predates a setting; the fit continues as it began ({})",
            config_difference(&recorded, &as_recorded)
        );
    }
    Ok(Config {
        threads: config.threads,
        ..as_recorded
    })
}

/// The first field whose value differs between two configs, as `field: old → new`.
fn config_difference(old: &Config, new: &Config) -> String {
    config_difference_of(old, new)
}

/// The first field whose value differs between two serialisable sections.
fn config_difference_of<T: Serialize>(old: &T, new: &T) -> String {
    let flatten = |c: &T| {
        let mut fields = Vec::new();
        let table = toml::Table::try_from(c).expect("the config serialises");
        flatten_into("", &toml::Value::Table(table), &mut fields);
        fields
    };
    let (old, new) = (flatten(old), flatten(new));
    let keys: std::collections::BTreeSet<&String> =
        old.iter().chain(&new).map(|(k, _)| k).collect();
    for key in keys {
        let find = |fields: &[(String, String)]| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "unset".into())
        };
        let (a, b) = (find(&old), find(&new));
        if a != b && key != "threads" {
            return format!("{key}: {a} → {b}");
        }
    }
    "the configs differ".into()
}

fn flatten_into(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten_into(&path, value, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}
