//! Training: GPT-Net pre-training, SegNet training, model selection on validation data,
//! checkpoints that resume the same schedule exactly, and progress events for the caller (the
//! category pipeline), on any Burn device with autodiff.
//!
//! Burn provides the optimisers (Adam; SGD with momentum and weight decay), gradients, and the
//! records every checkpoint section is written with. The loops themselves are written here rather
//! than run by burn-train's `Learner`, because no part of burn-train fits without losing a
//! feature: pre-training alternates two optimisers (D, then G) in each step, which a
//! single-optimiser learner cannot express; SegNet's batches come from a simulation stream
//! indexed by step, so a resume continues mid-"epoch" exactly, where the learner resumes at
//! epoch boundaries; its checkpointer stores one record per epoch in a directory, where a job
//! stores model, optimiser, schedule and best-so-far model together in one checksummed object in
//! the object store; model selection scores AUROC on a simulated validation set, which is no
//! per-item metric of its event store, and its early-stopping and checkpoint strategies read
//! that store. burn-train would also add over 100 crates to every build (bundled SQLite and
//! image codecs through burn-dataset, rstest as a normal dependency), measured with
//! `cargo tree`.

mod masking;
mod pretrain;
mod progress;
mod segment;
mod validation;

pub use masking::inpainting_mask;
pub use pretrain::{PretrainInputs, pretrain};
pub use progress::{
    LOG_INTERVAL, LogLines, Progress, Silent, Stage, StepReport, StoppedEarly, TrainEvent,
    ValidationReport, short_duration,
};
pub use segment::{SegmentInputs, SegmentOutcome, SegnetStart, train_segnet};
pub use validation::{ValidationScores, ValidationSet, holdout, score};

use burn::prelude::*;

use crate::checkpoint::CheckpointError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{} training stopped at step {step}; a checkpoint was written to resume from", stage.name())]
    Interrupted { stage: Stage, step: u64 },
    #[error("{} loss (or its validation maps) is {value} at step {step}: training diverged (lower the learning rate)", stage.name())]
    NonFinite { stage: Stage, step: u64, value: f64 },
    #[error("scoring the validation set: {0}")]
    Validation(crate::metrics::EvalError),
}

/// The loss value, or an error if training diverged.
fn finite(loss: Tensor<1>, stage: Stage, step: u64) -> Result<f64, TrainError> {
    let value = f64::from(loss.into_scalar::<f32>());
    if value.is_finite() {
        Ok(value)
    } else {
        Err(TrainError::NonFinite { stage, step, value })
    }
}
