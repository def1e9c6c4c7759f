//! The `[pretrain]`, `[segnet]` and `[validation]` sections of the run config (SPEC §3, §5,
//! §7), with their defaults and range checks.

use serde::{Deserialize, Serialize};

use crate::metrics::ImageScore;
use crate::simulate::InvalidField;

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
        let invalid = |field: &str, message: String| {
            Err(InvalidField {
                field: format!("{prefix}.{field}"),
                message,
            })
        };
        if self.epochs == 0 {
            return invalid("epochs", "must be at least 1".into());
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "must be at least 1".into());
        }
        for (field, lr) in [
            ("lr_generator", self.lr_generator),
            ("lr_discriminator", self.lr_discriminator),
        ] {
            if !(lr > 0.0 && lr < 10.0) {
                return invalid(field, format!("must be in (0, 10), got {lr}"));
            }
        }
        if !self.adam_betas.iter().all(|b| (0.0..1.0).contains(b)) {
            return invalid(
                "adam_betas",
                format!("each must be in [0, 1), got {:?}", self.adam_betas),
            );
        }
        if self.alpha.iter().any(|a| *a < 0.0) {
            return invalid("alpha", "weights must not be negative".into());
        }
        if self.grid == 0 {
            return invalid("grid", "must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.mask_ratio) {
            return invalid(
                "mask_ratio",
                format!("must be in [0, 1], got {}", self.mask_ratio),
            );
        }
        if self.rectangles[0] > self.rectangles[1] {
            return invalid("rectangles", "must be [min, max]".into());
        }
        if self.rectangle_size[0] == 0 || self.rectangle_size[0] > self.rectangle_size[1] {
            return invalid("rectangle_size", "must be [min, max] with min ≥ 1".into());
        }
        if self.checkpoint_every == 0 || self.log_every == 0 || self.keep_checkpoints == 0 {
            return invalid(
                "checkpoint_every",
                "checkpoint_every, keep_checkpoints and log_every must be at least 1".into(),
            );
        }
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
    /// The cosine-annealed learning rate after `step` of `steps`.
    pub fn learning_rate(&self, step: u64) -> f64 {
        let progress = step as f64 / self.steps.max(1) as f64;
        self.min_lr
            + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    pub fn validate(&self, prefix: &str) -> Result<(), InvalidField> {
        let invalid = |field: &str, message: String| {
            Err(InvalidField {
                field: format!("{prefix}.{field}"),
                message,
            })
        };
        if self.steps == 0 {
            return invalid("steps", "must be at least 1".into());
        }
        if self.simulated_per_batch == 0 {
            return invalid("simulated_per_batch", "must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr < 10.0) {
            return invalid("lr", format!("must be in (0, 10), got {}", self.lr));
        }
        if !(0.0..=self.lr).contains(&self.min_lr) {
            return invalid("min_lr", format!("must be in [0, lr], got {}", self.min_lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return invalid(
                "momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            );
        }
        if !(0.0..1.0).contains(&self.weight_decay) {
            return invalid(
                "weight_decay",
                format!("must be in [0, 1), got {}", self.weight_decay),
            );
        }
        if !(0.0..=10.0).contains(&self.focal_gamma) {
            return invalid(
                "focal_gamma",
                format!("must be in [0, 10], got {}", self.focal_gamma),
            );
        }
        if self.alpha.iter().any(|a| *a < 0.0) {
            return invalid("alpha", "weights must not be negative".into());
        }
        if self.checkpoint_every == 0
            || self.validate_every == 0
            || self.log_every == 0
            || self.keep_checkpoints == 0
        {
            return invalid("checkpoint_every", "checkpoint_every, keep_checkpoints, validate_every and log_every must be at least 1".into());
        }
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
    pub image_score: ImageScore,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            holdout_fraction: 0.1,
            anomalies_per_image: 3,
            image_score: ImageScore::Top100,
        }
    }
}

impl ValidationConfig {
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidField> {
        if !(0.0..0.9).contains(&self.holdout_fraction) {
            return Err(InvalidField {
                field: format!("{prefix}.holdout_fraction"),
                message: format!("must be in [0, 0.9), got {}", self.holdout_fraction),
            });
        }
        if self.anomalies_per_image == 0 {
            return Err(InvalidField {
                field: format!("{prefix}.anomalies_per_image"),
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}
