//! The `[model]` section of the run config: architecture sizes (docs/method.md §2, §5), turned into the
//! Burn module configs.

use serde::{Deserialize, Serialize};

use super::{DiscriminatorConfig, EncoderConfig, GptNetConfig, SegNetConfig};
use crate::ranges::{InvalidField, Section};

/// The largest input side the networks accept.
pub const MAX_IMAGE_SIZE: u32 = 2048;

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
        let s = Section::new(prefix);
        if self.image_size < 2 * self.stride()
            || !self.image_size.is_multiple_of(self.stride())
            || self.image_size > MAX_IMAGE_SIZE
        {
            return Err(s.invalid(
                "image_size",
                format!(
                    "must be a multiple of {} between {} and {MAX_IMAGE_SIZE}, got {}",
                    self.stride(),
                    2 * self.stride(),
                    self.image_size
                ),
            ));
        }
        s.positive("width", self.width, 0.0, 4.0)?;
        let bottleneck = self.encoder().channels()[4];
        s.whole("sg_reduction", self.sg_reduction, 1, bottleneck)?;
        // More neighbours than the bottleneck has nodes is clamped by the SG block.
        s.whole("neighbours", self.neighbours, 1, 1024)?;
        if self.position_channels < 4
            || !self.position_channels.is_multiple_of(4)
            || self.position_channels > 1024
        {
            return Err(s.invalid(
                "position_channels",
                format!(
                    "must be a multiple of 4 from 4 to 1024, got {}",
                    self.position_channels
                ),
            ));
        }
        s.whole("sg_skip_channels", self.sg_skip_channels, 1, 4096)?;
        s.whole("aux_hidden", self.aux_hidden, 1, 4096)?;
        Ok(())
    }
}
