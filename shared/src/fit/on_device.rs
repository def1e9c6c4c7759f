//! The pipeline's entry points on a [`Device`]: the device is checked and started here, and the
//! stages run on Burn's device for it (with autodiff: they train).

use super::{
    Fitted, PipelineError, Prepared, Retraining, SegnetFrom, StageOutput, StageResult,
    fit_category_in, pretrain_stage_in, segnet_stage_in,
};
use crate::backend::Device;
use crate::config::Config;
use crate::data::Category;
use crate::store::BlockingStore;
use crate::train::Progress;

/// Stage 1 on `device`: GPT-Net pre-training; stores the encoder (`encoder.ckpt`).
pub fn pretrain_stage(
    prepared: &Prepared,
    config: &Config,
    out: &StageOutput,
    device: Device,
    progress: &mut dyn Progress,
) -> Result<StageResult, PipelineError> {
    pretrain_stage_in(prepared, config, out, &device.training()?, progress)
}

/// Stage 2 on `device`: SegNet from `from`, model selection on validation data, the model
/// (`model/`) and the manifest of its training images (`data.json`), and the test split's maps
/// and metrics. In a retraining run the candidate and the model in production are then scored
/// for the gate.
#[allow(clippy::too_many_arguments)]
pub fn segnet_stage(
    category: &Category,
    prepared: &Prepared,
    config: &Config,
    from: SegnetFrom<'_>,
    retraining: Option<&Retraining>,
    out: &StageOutput,
    device: Device,
    progress: &mut dyn Progress,
) -> Result<StageResult, PipelineError> {
    segnet_stage_in(
        category,
        prepared,
        config,
        from,
        retraining,
        out,
        &device.training()?,
        progress,
    )
}

/// Both stages of one category on `device` into `store`, skipping a stage that finished before
/// and resuming one that was interrupted. A store that holds a fit of another config is refused.
pub fn fit_category(
    category: &Category,
    config: &Config,
    store: &BlockingStore,
    device: Device,
    progress: &mut dyn Progress,
) -> Result<Fitted, PipelineError> {
    fit_category_in(category, config, store, &device.training()?, progress)
}
