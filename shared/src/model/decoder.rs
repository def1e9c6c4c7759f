//! The U-Net decoder shared by GPT-Net (RGB out) and SegNet (two classes out): one
//! up-sampling block and conv block per skip level, coarsest first, then a last up-sampling to
//! the input size and a 1×1 head. SegNet's X′ joins every skip level as an extra input.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::blocks::{ConvBlock, ConvBlockConfig, UpBlock, UpBlockConfig, resize};

#[derive(Config, Debug)]
pub struct DecoderConfig {
    /// Channels of the tensor decoding starts from.
    pub bottleneck: usize,
    /// Channels of the skip features, coarsest first.
    pub skips: Vec<usize>,
    /// Channels of the extra input concatenated at every skip level (0: none).
    #[config(default = 0)]
    pub extra: usize,
    pub out_channels: usize,
}

impl DecoderConfig {
    pub fn init(&self, device: &Device) -> Decoder {
        let mut channels = self.bottleneck;
        let (mut ups, mut blocks) = (Vec::new(), Vec::new());
        for &skip in &self.skips {
            ups.push(UpBlockConfig::new([channels, skip]).init(device));
            blocks.push(ConvBlockConfig::new([2 * skip + self.extra, skip]).init(device));
            channels = skip;
        }
        let last = (channels / 2).max(1);
        Decoder {
            ups,
            blocks,
            final_up: UpBlockConfig::new([channels, last]).init(device),
            final_block: ConvBlockConfig::new([last, last]).init(device),
            head: Conv2dConfig::new([last, self.out_channels], [1, 1]).init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct Decoder {
    ups: Vec<UpBlock>,
    blocks: Vec<ConvBlock>,
    final_up: UpBlock,
    final_block: ConvBlock,
    head: Conv2d,
}

impl Decoder {
    /// Number of skip levels (each needs one skip tensor).
    pub fn levels(&self) -> usize {
        self.ups.len()
    }

    /// Decodes `bottleneck` with `skips` (coarsest first) to `output_size`; `extra` is
    /// up-sampled level by level and concatenated at every skip level.
    pub fn forward(
        &self,
        bottleneck: Tensor<4>,
        skips: &[Tensor<4>],
        extra: Option<&Tensor<4>>,
        output_size: [usize; 2],
    ) -> Tensor<4> {
        let mut x = bottleneck;
        let mut extra = extra.cloned();
        for ((up, block), skip) in self.ups.iter().zip(&self.blocks).zip(skips) {
            let [_, _, h, w] = skip.dims();
            x = up.forward(x, [h, w]);
            let mut parts = vec![x, skip.clone()];
            if let Some(e) = extra.take() {
                let e = resize(e, [h, w]);
                parts.push(e.clone());
                extra = Some(e);
            }
            x = block.forward(Tensor::cat(parts, 1));
        }
        let x = self
            .final_block
            .forward(self.final_up.forward(x, output_size));
        self.head.forward(x)
    }
}
