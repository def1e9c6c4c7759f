//! SegNet training (docs/method.md §5): the pre-trained encoder (frozen by default), batches of
//! normal and simulated images from the CPU producer, focal + L1 + auxiliary loss (Eq. 11), SGD
//! with momentum and weight decay under a cosine schedule; periodic validation keeps the
//! best model. Every step's loss is checked, so a diverged run stops at the step it diverged.

use std::sync::Arc;
use std::time::Instant;

use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig};
use burn::prelude::*;

use super::progress::{
    FirstStepClock, Progress, Stage, StepReport, StoppedEarly, TrainEvent, ValidationReport,
};
use super::validation::{ValidationSet, score};
use super::{TrainError, finite};
use crate::checkpoint::{
    Checkpoint, CheckpointMeta, CheckpointStore, latest_checkpoint, save_checkpoint,
};
use crate::config::SegnetConfig;
use crate::metrics::{EvalError, ImageScore};
use crate::model::loss::{focal, l1};
use crate::model::{Encoder, ModelConfig, SegNet, anomaly_probability, images_tensor, init_seeded};
use crate::parallel::OrderedProducer;
use crate::simulate::{ProducerConfig, Simulator, batch_producer};

const INIT_STREAM: u64 = 0x5E6;

pub struct SegmentInputs {
    pub model: ModelConfig,
    pub config: SegnetConfig,
    /// How validation maps become image scores (and so the decision threshold).
    pub image_score: ImageScore,
    pub simulator: Arc<Simulator>,
    /// `None` when the category has no image to spare for validation: the last model is kept.
    pub validation_set: Option<ValidationSet>,
    pub seed: u64,
    pub threads: usize,
    /// Images per forward pass when scoring the validation set.
    pub batch_size: usize,
}

/// Where SegNet training starts (a checkpoint of the same job, when there is one, wins).
pub enum SegnetStart {
    /// A pre-trained encoder; the rest of the network initialised from the seed.
    Encoder(Box<Encoder>),
    /// A whole trained SegNet, fine-tuned.
    Model(Box<SegNet>),
}

/// The selected model and how it was selected.
pub struct SegmentOutcome {
    pub model: SegNet,
    pub steps: u64,
    pub best_step: u64,
    pub validation: Option<ValidationReport>,
    /// The sweep's early-stopping rule ended training before its last step.
    pub stopped_early: Option<StoppedEarly>,
}

/// Trains SegNet from `start` on `device` (an autodiff device), resuming from the latest
/// checkpoint in `store`.
pub fn train_segnet(
    inputs: &SegmentInputs,
    start: SegnetStart,
    device: &Device,
    store: &mut dyn CheckpointStore,
    progress: &mut dyn Progress,
) -> Result<SegmentOutcome, TrainError> {
    let c = &inputs.config;
    let mut clock = FirstStepClock::start();
    let mut model: SegNet = match start {
        SegnetStart::Encoder(encoder) => {
            let mut model: SegNet = init_seeded(
                &inputs.model.segnet(),
                crate::seed::derive_seed(inputs.seed, &[INIT_STREAM]),
                device,
            );
            model.encoder = *encoder;
            model
        }
        SegnetStart::Model(model) => *model,
    };
    let mut optimizer = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(c.momentum)
                .with_dampening(0.0),
        ))
        .with_weight_decay(
            (c.weight_decay > 0.0).then(|| WeightDecayConfig::new(c.weight_decay as f32)),
        )
        .init();
    let mut step = 0;
    let mut best: Option<(SegNet, ValidationReport)> = None;
    if let Some(checkpoint) = latest_checkpoint(store, Stage::Segnet.name())? {
        let origin = store.describe(Stage::Segnet.name(), checkpoint.meta.step);
        model = checkpoint.load_module("model", model, &origin)?;
        optimizer = checkpoint.load_optimizer("optimizer", optimizer, &origin)?;
        if checkpoint.has("best") {
            let best_model = checkpoint.load_module("best", model.valid(), &origin)?;
            let report = checkpoint
                .meta
                .extra
                .get("best")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok());
            best = report.map(|r| (best_model, r));
        }
        step = checkpoint.meta.step;
        progress.on_event(&TrainEvent::Resumed {
            stage: Stage::Segnet,
            step,
        });
    }

    let size = inputs.model.image_size as usize;
    let producer_config = ProducerConfig {
        seed: inputs.seed,
        threads: inputs.threads,
        capacity: 2 * inputs.threads.max(1),
        normal_per_batch: c.normal_per_batch,
        simulated_per_batch: c.simulated_per_batch,
        start_batch: step,
    };
    let mut batches =
        (step < c.steps).then(|| batch_producer(inputs.simulator.clone(), producer_config));
    let save = |step: u64,
                model: &SegNet,
                optimizer: &ModuleOptimizer,
                best: &Option<(SegNet, ValidationReport)>,
                store: &mut dyn CheckpointStore| {
        let mut checkpoint = Checkpoint::new(CheckpointMeta {
            stage: Stage::Segnet.name().into(),
            step,
            total_steps: c.steps,
            seed: inputs.seed,
            extra: Default::default(),
        });
        checkpoint.put_module("model", model);
        checkpoint.put_optimizer("optimizer", optimizer);
        if let Some((best_model, report)) = best {
            checkpoint.put_module("best", best_model);
            checkpoint.meta.extra.insert(
                "best".into(),
                serde_json::to_value(report).expect("report serialises"),
            );
        }
        save_checkpoint(store, &checkpoint, c.keep_checkpoints)
    };

    if step < c.steps {
        progress.on_event(&TrainEvent::Started {
            stage: Stage::Segnet,
            step,
            total_steps: c.steps,
        });
    }
    let mut window = (Instant::now(), 0usize);
    let mut stopped_early = None;
    while let Some(batch) = batches.as_mut().and_then(Iterator::next) {
        let n = batch.len();
        let x = images_tensor(batch.images, n, size, device);
        let target =
            Tensor::<4>::from_data(TensorData::new(batch.masks, [n, 1, size, size]), device);
        let segmentation = if c.freeze_encoder {
            let features = model
                .encoder
                .valid()
                .forward(x.inner())
                .map(Tensor::from_inner);
            model.forward_features(features, [size, size])
        } else {
            model.forward(x)
        };
        let focal_loss = focal(segmentation.logits.clone(), target.clone(), c.focal_gamma);
        let l1_loss = l1(anomaly_probability(segmentation.logits), target.clone());
        let aux_loss = focal(segmentation.aux_logits, target, c.focal_gamma);
        let loss = focal_loss.clone().mul_scalar(c.alpha[0])
            + l1_loss.clone().mul_scalar(c.alpha[1])
            + aux_loss.clone().mul_scalar(c.alpha[2]);
        let learning_rate = c.learning_rate(step);
        let grads = GradientsParams::from_grads(loss.clone().backward(), &model);
        model = optimizer.step(learning_rate, model, grads);

        step += 1;
        window.1 += n;
        let total_loss = finite(loss, Stage::Segnet, step)?;
        clock.step_done(Stage::Segnet, step, progress);
        if step % c.log_every == 0 || step == c.steps {
            let losses = vec![
                ("total", total_loss),
                ("focal", f64::from(focal_loss.into_scalar::<f32>())),
                ("l1", f64::from(l1_loss.into_scalar::<f32>())),
                ("auxiliary", f64::from(aux_loss.into_scalar::<f32>())),
            ];
            let images_per_second = window.1 as f64 / window.0.elapsed().as_secs_f64();
            window = (Instant::now(), 0);
            progress.on_event(&TrainEvent::Step(StepReport {
                stage: Stage::Segnet,
                step,
                total_steps: c.steps,
                losses,
                learning_rate,
                images_per_second,
                queued_batches: batches.as_ref().map_or(0, OrderedProducer::ready),
            }));
        }
        if let Some(set) = &inputs.validation_set
            && (step % c.validate_every == 0 || step == c.steps)
        {
            let candidate = model.valid();
            let scores = score(
                &candidate,
                set,
                inputs.image_score,
                inputs.batch_size,
                &device.clone().inner(),
            )
            .map_err(|e| match e {
                EvalError::NonFinite { value, .. } => TrainError::NonFinite {
                    stage: Stage::Segnet,
                    step,
                    value: value.into(),
                },
                other => TrainError::Validation(other),
            })?;
            let improved = best.as_ref().is_none_or(|(_, b)| scores.score() > b.score);
            let report = ValidationReport {
                step,
                image_auroc: scores.image_auroc,
                image_score: Some(inputs.image_score),
                pixel_auroc: scores.pixel_auroc,
                score: scores.score(),
                threshold: scores.threshold,
                best: improved,
            };
            progress.on_event(&TrainEvent::Validation(report.clone()));
            let judged = progress.judge(&report);
            if improved {
                best = Some((candidate, report));
            }
            if let Some(reason) = judged.filter(|_| step < c.steps) {
                stopped_early = Some(StoppedEarly { step, reason });
            }
        }
        progress.on_step(Stage::Segnet, step, c.steps);
        let stop = progress.stop_requested();
        let ending = stopped_early.is_some();
        if step % c.checkpoint_every == 0 || step == c.steps || stop || ending {
            save(step, &model, &optimizer, &best, store)?;
            progress.on_event(&TrainEvent::Checkpoint {
                stage: Stage::Segnet,
                step,
            });
        }
        if let Some(stopped) = &stopped_early {
            progress.on_event(&TrainEvent::StoppedEarly(stopped.clone()));
            break;
        }
        if stop && step < c.steps {
            return Err(TrainError::Interrupted {
                stage: Stage::Segnet,
                step,
            });
        }
        if step >= c.steps {
            break;
        }
    }
    Ok(match best {
        Some((model, report)) => SegmentOutcome {
            model,
            steps: step,
            best_step: report.step,
            validation: Some(report),
            stopped_early,
        },
        None => SegmentOutcome {
            model: model.valid(),
            steps: step,
            best_step: step,
            validation: None,
            stopped_early,
        },
    })
}
