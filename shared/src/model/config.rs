//! The `[model]` section of the run config: architecture sizes (docs/method.md §2, §5), turned into the
//! Burn module configs.

use serde::{Deserialize, Serialize};

use super::{DiscriminatorConfig, EncoderConfig, GptNetConfig, SegNetConfig};
use crate::ranges::InvalidField;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Side of the square input; images are resized to it.
    pub image_size: u32,
    /// Channel multiplier of every network (1.0 = the paper's ResNet-18 widths).
    pub width: f64,
    /// Skip the max-pool after the encoder's stem (the reference implementation does).
    pub skip_max_pool: bool,
    /// SG block: channel reduction `z` of f and g.
    pub sg_reduction: usize,
    /// SG block: neighbours per node `K`.
    pub neighbours: usize,
    /// SG block: channels of the position encoding.
    pub position_channels: usize,
    /// SG block: subtract the position similarity (Eq. 5); off only for ablations.
    pub subtract_position: bool,
    /// Channels of X′ where it joins the decoder's skip levels (scaled by `width`).
    pub sg_skip_channels: usize,
    /// Hidden channels of the auxiliary heads (scaled by `width`).
    pub aux_hidden: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            image_size: 256,
            width: 1.0,
            skip_max_pool: true,
            sg_reduction: 8,
            neighbours: 9,
            position_channels: 64,
            subtract_position: true,
            sg_skip_channels: 64,
            aux_hidden: 64,
        }
    }
}

impl ModelConfig {
    fn scaled(&self, channels: usize) -> usize {
        ((channels as f64 * self.width).round() as usize).max(1)
    }

    pub fn encoder(&self) -> EncoderConfig {
        EncoderConfig::new()
            .with_width(self.width)
            .with_skip_max_pool(self.skip_max_pool)
    }

    pub fn gpt_net(&self) -> GptNetConfig {
        GptNetConfig::new(self.encoder()).with_aux_hidden(self.scaled(self.aux_hidden))
    }

    pub fn discriminator(&self) -> DiscriminatorConfig {
        DiscriminatorConfig::new().with_width(self.width)
    }

    pub fn segnet(&self) -> SegNetConfig {
        SegNetConfig::new(self.encoder())
            .with_sg_reduction(self.sg_reduction)
            .with_neighbours(self.neighbours)
            .with_position_channels(self.position_channels)
            .with_subtract_position(self.subtract_position)
            .with_sg_skip_channels(self.scaled(self.sg_skip_channels))
            .with_aux_hidden(self.scaled(self.aux_hidden))
    }

    /// The encoder's total down-sampling: the input side must be a multiple of it.
    pub fn stride(&self) -> u32 {
        if self.skip_max_pool { 16 } else { 32 }
    }

    pub fn validate(&self, prefix: &str) -> Result<(), InvalidField> {
        let invalid = |field: &str, message: String| {
            Err(InvalidField {
                field: format!("{prefix}.{field}"),
                message,
            })
        };
        if self.image_size < 2 * self.stride()
            || !self.image_size.is_multiple_of(self.stride())
            || self.image_size > 4096
        {
            return invalid(
                "image_size",
                format!(
                    "must be a multiple of {} between {} and 4096, got {}",
                    self.stride(),
                    2 * self.stride(),
                    self.image_size
                ),
            );
        }
        if !(self.width > 0.0 && self.width <= 4.0) {
            return invalid("width", format!("must be in (0, 4], got {}", self.width));
        }
        let bottleneck = self.encoder().channels()[4];
        if self.sg_reduction == 0 || self.sg_reduction > bottleneck {
            return invalid(
                "sg_reduction",
                format!(
                    "must be in 1..={bottleneck} (the bottleneck's channels), got {}",
                    self.sg_reduction
                ),
            );
        }
        if self.neighbours == 0 {
            return invalid("neighbours", "must be at least 1".into());
        }
        if self.position_channels < 4 || !self.position_channels.is_multiple_of(4) {
            return invalid(
                "position_channels",
                format!(
                    "must be a positive multiple of 4, got {}",
                    self.position_channels
                ),
            );
        }
        for (field, value) in [
            ("sg_skip_channels", self.sg_skip_channels),
            ("aux_hidden", self.aux_hidden),
        ] {
            if value == 0 {
                return invalid(field, "must be at least 1".into());
            }
        }
        Ok(())
    }
}
