//! The `[pretrain]`, `[segnet]` and `[validation]` sections of the run config (docs/method.md
//! §3, §5, §6), with their defaults and range checks.

use serde::{Deserialize, Serialize};

use crate::ranges::{InvalidField, Section};

/// The most training steps a stage may be given.
pub const MAX_STEPS: u64 = 10_000_000;
/// The largest batch: 512 images of 256² px are 400 MB of input alone.
pub const MAX_BATCH: usize = 512;
/// The largest weight of a loss term.
pub const MAX_LOSS_WEIGHT: f64 = 100.0;

/// What masked pixels are set to before in-painting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskFill {
    Zero,
    /// The per-channel mean of the category's training images.
    Mean,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    pub epochs: u32,
    /// Caps the steps (`epochs × images / batch_size` otherwise).
    pub max_steps: Option<u64>,
    pub batch_size: usize,
    pub lr_generator: f64,
    pub lr_discriminator: f64,
    pub adam_betas: [f64; 2],
    /// α1 (adversarial), α2 (L1), α3 (auxiliary L2) of Eq. 10.
    pub alpha: [f64; 3],
    /// The image is split into `grid × grid` cells…
    pub grid: u32,
    /// …of which this fraction is masked…
    pub mask_ratio: f64,
    /// …and `[min, max]` rectangles are laid over them…
    pub rectangles: [u32; 2],
    /// …with sides in `[min, max]` pixels at 256 px, scaled with the image size.
    pub rectangle_size: [u32; 2],
    pub fill: MaskFill,
    pub checkpoint_every: u64,
    /// Checkpoints kept per stage.
    pub keep_checkpoints: usize,
    pub log_every: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            epochs: 40,
            max_steps: None,
            batch_size: 6,
            lr_generator: 1e-3,
            lr_discriminator: 6e-4,
            adam_betas: [0.9, 0.999],
            alpha: [1.0, 0.8, 1.0],
            grid: 8,
            mask_ratio: 0.8,
            rectangles: [1, 3],
            rectangle_size: [40, 150],
            fill: MaskFill::Zero,
            checkpoint_every: 500,
            keep_checkpoints: 2,
            log_every: 10,
        }
    }
}

impl PretrainConfig {
    /// Steps for a category with `images` training images.
    pub fn total_steps(&self, images: usize) -> u64 {
        let epochs = (self.epochs as u64 * images as u64).div_ceil(self.batch_size.max(1) as u64);
        self.max_steps.map_or(epochs, |cap| cap.min(epochs))
    }

    pub fn validate(&self, prefix: &str) -> Result<(), InvalidField> {
        let s = Section::new(prefix);
        s.whole("epochs", self.epochs, 1, 10_000)?;
        if let Some(steps) = self.max_steps {
            s.whole("max_steps", steps, 1, MAX_STEPS)?;
        }
        s.whole("batch_size", self.batch_size, 1, MAX_BATCH)?;
        s.positive("lr_generator", self.lr_generator, 0.0, 1.0)?;
        s.positive("lr_discriminator", self.lr_discriminator, 0.0, 1.0)?;
        for beta in self.adam_betas {
            s.below("adam_betas", beta, 0.0, 1.0)?;
        }
        for weight in self.alpha {
            s.real("alpha", weight, 0.0, MAX_LOSS_WEIGHT)?;
        }
        s.whole("grid", self.grid, 1, 64)?;
        s.real("mask_ratio", self.mask_ratio, 0.0, 1.0)?;
        s.whole("rectangles", self.rectangles[0], 0, 16)?;
        s.whole("rectangles", self.rectangles[1], self.rectangles[0], 16)?;
        s.whole("rectangle_size", self.rectangle_size[0], 1, 4096)?;
        s.whole(
            "rectangle_size",
            self.rectangle_size[1],
            self.rectangle_size[0],
            4096,
        )?;
        s.whole("checkpoint_every", self.checkpoint_every, 1, MAX_STEPS)?;
        s.whole("keep_checkpoints", self.keep_checkpoints, 1, 100)?;
        s.whole("log_every", self.log_every, 1, MAX_STEPS)?;
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegnetConfig {
    pub steps: u64,
    pub normal_per_batch: usize,
    pub simulated_per_batch: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// The cosine schedule decays `lr` to this.
    pub min_lr: f64,
    pub focal_gamma: f64,
    /// α4 (focal), α5 (L1), α6 (auxiliary) of Eq. 11.
    pub alpha: [f64; 3],
    /// Keep the pre-trained encoder fixed (the reference does).
    pub freeze_encoder: bool,
    pub checkpoint_every: u64,
    pub keep_checkpoints: usize,
    /// Score the validation set every this many steps (and at the end) to select the model.
    pub validate_every: u64,
    pub log_every: u64,
}

impl Default for SegnetConfig {
    fn default() -> Self {
        Self {
            steps: 3500,
            normal_per_batch: 4,
            simulated_per_batch: 4,
            lr: 0.04,
            momentum: 0.9,
            weight_decay: 3e-5,
            min_lr: 0.0,
            focal_gamma: 4.0,
            alpha: [0.4, 0.6, 0.3],
            freeze_encoder: true,
            checkpoint_every: 500,
            keep_checkpoints: 2,
            validate_every: 500,
            log_every: 10,
        }
    }
}

impl SegnetConfig {
    /// The learning rate of the step after `done` steps: cosine annealing from `lr` to `min_lr`
    /// over `steps`, `min_lr + ½(lr − min_lr)(1 + cos(π·done/steps))`, the values Burn 0.21's
    /// cosine scheduler gave (computed from the step, so a resume needs no schedule state).
    pub fn learning_rate(&self, done: u64) -> f64 {
        let progress = done as f64 / self.steps.max(1) as f64;
        self.min_lr
            + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    pub fn validate(&self, prefix: &str) -> Result<(), InvalidField> {
        let s = Section::new(prefix);
        s.whole("steps", self.steps, 1, MAX_STEPS)?;
        s.whole("normal_per_batch", self.normal_per_batch, 0, MAX_BATCH)?;
        s.whole(
            "simulated_per_batch",
            self.simulated_per_batch,
            1,
            MAX_BATCH,
        )?;
        s.positive("lr", self.lr, 0.0, 1.0)?;
        s.real("min_lr", self.min_lr, 0.0, self.lr)?;
        s.below("momentum", self.momentum, 0.0, 1.0)?;
        s.below("weight_decay", self.weight_decay, 0.0, 1.0)?;
        s.real("focal_gamma", self.focal_gamma, 0.0, 10.0)?;
        for weight in self.alpha {
            s.real("alpha", weight, 0.0, MAX_LOSS_WEIGHT)?;
        }
        s.whole("checkpoint_every", self.checkpoint_every, 1, MAX_STEPS)?;
        s.whole("keep_checkpoints", self.keep_checkpoints, 1, 100)?;
        s.whole("validate_every", self.validate_every, 1, MAX_STEPS)?;
        s.whole("log_every", self.log_every, 1, MAX_STEPS)?;
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Without a validation split (LOCO has `validation/good`), this fraction of the training
    /// images is held out for model selection and not trained on.
    pub holdout_fraction: f64,
    /// Simulated anomalies per validation image.
    pub anomalies_per_image: usize,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            holdout_fraction: 0.1,
            anomalies_per_image: 3,
        }
    }
}

impl ValidationConfig {
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidField> {
        let s = Section::new(prefix);
        s.below("holdout_fraction", self.holdout_fraction, 0.0, 0.9)?;
        s.whole("anomalies_per_image", self.anomalies_per_image, 1, 100)?;
        Ok(())
    }
}
