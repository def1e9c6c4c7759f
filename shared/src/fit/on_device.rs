//! The pipeline's entry points on a [`Device`]: the one place the training backends are chosen.
//! Instantiating Burn's GPU backends costs minutes of compile time per crate; the crates above
//! reuse these instances instead of making their own.

use burn::tensor::backend::AutodiffBackend;

use super::{
    Fitted, PipelineError, Prepared, Retraining, SegnetFrom, StageOutput, StageResult,
    fit_category_in, pretrain_stage_in, segnet_stage_in,
};
use crate::backend::{BackendJob, Device, run_on};
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
    struct Job<'a> {
        prepared: &'a Prepared,
        config: &'a Config,
        out: &'a StageOutput,
        progress: &'a mut dyn Progress,
    }
    impl BackendJob for Job<'_> {
        type Output = Result<StageResult, PipelineError>;
        fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
            pretrain_stage_in::<B>(self.prepared, self.config, self.out, &device, self.progress)
        }
    }
    let job = Job {
        prepared,
        config,
        out,
        progress,
    };
    run_on(device, job)?
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
    struct Job<'a> {
        category: &'a Category,
        prepared: &'a Prepared,
        config: &'a Config,
        from: SegnetFrom<'a>,
        retraining: Option<&'a Retraining>,
        out: &'a StageOutput,
        progress: &'a mut dyn Progress,
    }
    impl BackendJob for Job<'_> {
        type Output = Result<StageResult, PipelineError>;
        fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
            segnet_stage_in::<B>(
                self.category,
                self.prepared,
                self.config,
                self.from,
                self.retraining,
                self.out,
                &device,
                self.progress,
            )
        }
    }
    let job = Job {
        category,
        prepared,
        config,
        from,
        retraining,
        out,
        progress,
    };
    run_on(device, job)?
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
    struct Job<'a> {
        category: &'a Category,
        config: &'a Config,
        store: &'a BlockingStore,
        progress: &'a mut dyn Progress,
    }
    impl BackendJob for Job<'_> {
        type Output = Result<Fitted, PipelineError>;
        fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
            fit_category_in::<B>(
                self.category,
                self.config,
                self.store,
                &device,
                self.progress,
            )
        }
    }
    let job = Job {
        category,
        config,
        store,
        progress,
    };
    run_on(device, job)?
}
