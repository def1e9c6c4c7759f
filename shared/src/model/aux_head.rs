//! The auxiliary head on the bottleneck: one conv group and a 1×1 conv, up-sampled to the
//! input size (GPT-Net reconstructs the image from it, SegNet predicts the mask).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::blocks::{ConvGroup, ConvGroupConfig, resize};

#[derive(Config, Debug)]
pub struct AuxHeadConfig {
    pub channels: [usize; 3],
}

impl AuxHeadConfig {
    pub fn init(&self, device: &Device) -> AuxHead {
        let [input, hidden, output] = self.channels;
        AuxHead {
            group: ConvGroupConfig::new([input, hidden]).init(device),
            head: Conv2dConfig::new([hidden, output], [1, 1]).init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct AuxHead {
    group: ConvGroup,
    head: Conv2d,
}

impl AuxHead {
    pub fn forward(&self, x: Tensor<4>, output_size: [usize; 2]) -> Tensor<4> {
        resize(self.head.forward(self.group.forward(x)), output_size)
    }
}
