//! What a training loop reports while it runs, and how its caller can stop it.

use serde::{Deserialize, Serialize};

/// The two stages of a category (and the two kinds of cluster job).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// GPT-Net pre-training; stores the encoder.
    Pretrain,
    /// SegNet training on a pre-trained encoder, then the test-split evaluation.
    Segnet,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Pretrain => "pretrain",
            Stage::Segnet => "segnet",
        }
    }
}

/// One point of a training curve.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub stage: Stage,
    /// Steps completed.
    pub step: u64,
    pub total_steps: u64,
    pub losses: Vec<(&'static str, f64)>,
    pub learning_rate: f64,
    /// Training images per second over the last reporting interval.
    pub images_per_second: f64,
}

/// A validation pass during SegNet training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub step: u64,
    pub image_auroc: Option<f64>,
    pub pixel_auroc: Option<f64>,
    /// The selection score (mean of the two AUROCs).
    pub score: f64,
    /// The image score threshold maximising F1 on the validation set.
    pub threshold: Option<f64>,
    pub best: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    Step(StepReport),
    Validation(ValidationReport),
    Checkpoint { stage: Stage, step: u64 },
    Resumed { stage: Stage, step: u64 },
}

/// Receives every event, and is asked after every step whether to stop (then the loop writes
/// a checkpoint and returns [`TrainError::Interrupted`](super::TrainError::Interrupted)).
pub trait Progress {
    fn on_event(&mut self, event: &TrainEvent);

    fn stop_requested(&self) -> bool {
        false
    }
}

/// Discards every event and never stops.
pub struct Silent;

impl Progress for Silent {
    fn on_event(&mut self, _: &TrainEvent) {}
}
