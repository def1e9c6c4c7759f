//! D-Net: a Markov (PatchGAN) discriminator of four conv-BN-LeakyReLU groups, stride 2 on the
//! first three, ending in a one-channel map of real/fake scores.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};

use super::norm::{BatchNorm2d, BatchNorm2dConfig};
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;

#[derive(Config, Debug)]
pub struct DiscriminatorConfig {
    #[config(default = 1.0)]
    pub width: f64,
    #[config(default = 0.2)]
    pub negative_slope: f64,
}

impl DiscriminatorConfig {
    pub fn init(&self, device: &Device) -> Discriminator {
        let scale = |c: f64| ((c * self.width).round() as usize).max(1);
        let widths = [3, scale(64.0), scale(128.0), scale(256.0), scale(512.0)];
        let groups = (0..4)
            .map(|i| {
                let (kernel, stride) = if i < 3 { (4, 2) } else { (3, 1) };
                LeakyGroup {
                    conv: Conv2dConfig::new([widths[i], widths[i + 1]], [kernel, kernel])
                        .with_stride([stride, stride])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .with_bias(false)
                        .init(device),
                    norm: BatchNorm2dConfig::new(widths[i + 1]).init(device),
                }
            })
            .collect();
        Discriminator {
            groups,
            head: Conv2dConfig::new([widths[4], 1], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            negative_slope: self.negative_slope,
        }
    }
}

#[derive(Module, Debug)]
struct LeakyGroup {
    conv: Conv2d,
    norm: BatchNorm2d,
}

#[derive(Module, Debug)]
pub struct Discriminator {
    groups: Vec<LeakyGroup>,
    head: Conv2d,
    negative_slope: f64,
}

impl Discriminator {
    /// Patch scores for images in `[0, 1]`: `[batch, 1, H/8, W/8]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.groups.iter().fold(x, |x, g| {
            leaky_relu(g.norm.forward(g.conv.forward(x)), self.negative_slope)
        });
        self.head.forward(x)
    }
}
