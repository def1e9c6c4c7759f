//! The convolution groups the networks are built from: conv3×3-BN-ReLU, the two-group conv
//! block, the bilinear up-sampling block.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};

use super::norm::{BatchNorm2d, BatchNorm2dConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

/// `conv k×k (stride s, same padding) → BatchNorm → ReLU`.
#[derive(Module, Debug)]
pub struct ConvGroup<B: Backend> {
    conv: Conv2d<B>,
    norm: BatchNorm2d<B>,
}

#[derive(Config, Debug)]
pub struct ConvGroupConfig {
    pub channels: [usize; 2],
    #[config(default = 3)]
    pub kernel: usize,
    #[config(default = 1)]
    pub stride: usize,
}

impl ConvGroupConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ConvGroup<B> {
        let pad = self.kernel / 2;
        ConvGroup {
            conv: Conv2dConfig::new(self.channels, [self.kernel, self.kernel])
                .with_stride([self.stride, self.stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device),
            norm: BatchNorm2dConfig::new(self.channels[1]).init(device),
        }
    }
}

impl<B: Backend> ConvGroup<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.norm.forward(self.conv.forward(x)))
    }
}

/// Two stacked conv groups (the decoder's "Conv block").
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    first: ConvGroup<B>,
    second: ConvGroup<B>,
}

#[derive(Config, Debug)]
pub struct ConvBlockConfig {
    pub channels: [usize; 2],
}

impl ConvBlockConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ConvBlock<B> {
        let [input, output] = self.channels;
        ConvBlock {
            first: ConvGroupConfig::new([input, output]).init(device),
            second: ConvGroupConfig::new([output, output]).init(device),
        }
    }
}

impl<B: Backend> ConvBlock<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.second.forward(self.first.forward(x))
    }
}

/// Bilinear up-sampling to a target size followed by one conv group (the decoder's
/// "up-sampling block").
#[derive(Module, Debug)]
pub struct UpBlock<B: Backend> {
    group: ConvGroup<B>,
}

#[derive(Config, Debug)]
pub struct UpBlockConfig {
    pub channels: [usize; 2],
}

impl UpBlockConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> UpBlock<B> {
        UpBlock {
            group: ConvGroupConfig::new(self.channels).init(device),
        }
    }
}

impl<B: Backend> UpBlock<B> {
    pub fn forward(&self, x: Tensor<B, 4>, size: [usize; 2]) -> Tensor<B, 4> {
        self.group.forward(resize(x, size))
    }
}

/// Bilinear resize with half-pixel centres (PyTorch's `align_corners=False`).
pub fn resize<B: Backend>(x: Tensor<B, 4>, size: [usize; 2]) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    interpolate(
        x,
        size,
        InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false),
    )
}
