//! Training: GPT-Net pre-training, SegNet training, model selection on validation data,
//! checkpoints that resume the same schedule, and progress events for the caller (the command
//! line or the cluster worker). Generic over Burn's `AutodiffBackend`.

mod checkpoint;
mod config;
mod fit;
mod masking;
mod pretrain;
mod progress;
mod segment;
mod validation;

pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointMeta, CheckpointStore, DirCheckpoints, FORMAT_VERSION,
    latest_checkpoint, save_checkpoint,
};
pub use config::{MaskFill, PretrainConfig, SegnetConfig, ValidationConfig};
pub use fit::{Fit, Prepared, fit_category, prepare, pretrain_stage, segnet_stage};
pub use masking::inpainting_mask;
pub use pretrain::{PretrainInputs, pretrain};
pub use progress::{Progress, Silent, Stage, StepReport, TrainEvent, ValidationReport};
pub use segment::{SegmentInputs, SegmentOutcome, train_segnet};
pub use validation::{ValidationScores, ValidationSet, holdout, score};

use burn::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Simulate(#[from] crate::simulate::SimulateError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{} training stopped at step {step}; a checkpoint was written to resume from", stage.name())]
    Interrupted { stage: Stage, step: u64 },
    #[error("{} loss is {value} at step {step}: training diverged (lower the learning rate)", stage.name())]
    NonFinite { stage: Stage, step: u64, value: f64 },
}

/// A batch of channel-first images as a `[n, 3, size, size]` tensor.
pub fn images_tensor<B: Backend>(
    data: Vec<f32>,
    n: usize,
    size: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    Tensor::from_data(TensorData::new(data, [n, 3, size, size]), device)
}

/// The loss value, or an error if training diverged.
fn finite<B: Backend>(loss: Tensor<B, 1>, stage: Stage, step: u64) -> Result<f64, TrainError> {
    let value = loss.into_scalar().elem::<f64>();
    if value.is_finite() {
        Ok(value)
    } else {
        Err(TrainError::NonFinite { stage, step, value })
    }
}
