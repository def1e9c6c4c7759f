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
pub struct ConvGroup {
    conv: Conv2d,
    norm: BatchNorm2d,
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
    pub fn init(&self, device: &Device) -> ConvGroup {
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

impl ConvGroup {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.norm.forward(self.conv.forward(x)))
    }
}

/// Two stacked conv groups (the decoder's "Conv block").
#[derive(Module, Debug)]
pub struct ConvBlock {
    first: ConvGroup,
    second: ConvGroup,
}

#[derive(Config, Debug)]
pub struct ConvBlockConfig {
    pub channels: [usize; 2],
}

impl ConvBlockConfig {
    pub fn init(&self, device: &Device) -> ConvBlock {
        let [input, output] = self.channels;
        ConvBlock {
            first: ConvGroupConfig::new([input, output]).init(device),
            second: ConvGroupConfig::new([output, output]).init(device),
        }
    }
}

impl ConvBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.second.forward(self.first.forward(x))
    }
}

/// Bilinear up-sampling to a target size followed by one conv group (the decoder's
/// "up-sampling block").
#[derive(Module, Debug)]
pub struct UpBlock {
    group: ConvGroup,
}

#[derive(Config, Debug)]
pub struct UpBlockConfig {
    pub channels: [usize; 2],
}

impl UpBlockConfig {
    pub fn init(&self, device: &Device) -> UpBlock {
        UpBlock {
            group: ConvGroupConfig::new(self.channels).init(device),
        }
    }
}

impl UpBlock {
    pub fn forward(&self, x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
        self.group.forward(resize(x, size))
    }
}

/// Bilinear resize with half-pixel centres (PyTorch's `align_corners=False`). Power-of-two
/// enlargements, the only ones the networks make, are done as successive [`upsample2x`] steps,
/// which have a gradient on every backend; anything else uses Burn's `interpolate` (whose
/// backward pass the CubeCL backends did not implement in Burn 0.21).
pub fn resize(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    let factor = size[0] / h.max(1);
    if factor > 1 && factor.is_power_of_two() && size == [h * factor, w * factor] {
        return (0..factor.trailing_zeros()).fold(x, |x, _| upsample2x(x));
    }
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size(size),
    )
}

/// Bilinear ×2 up-sampling with half-pixel centres and a replicated border: along each axis,
/// output `2i` is `¾·x[i] + ¼·x[i−1]` and `2i+1` is `¾·x[i] + ¼·x[i+1]`, exactly what
/// `interpolate(bilinear, align_corners=false)` gives at scale 2.
pub fn upsample2x(x: Tensor<4>) -> Tensor<4> {
    upsample_axis(upsample_axis(x, 2), 3)
}

fn upsample_axis(x: Tensor<4>, dim: usize) -> Tensor<4> {
    let mut shape = x.dims();
    let n = shape[dim];
    shape[dim] = 2 * n;
    if n == 1 {
        return Tensor::cat(vec![x.clone(), x], dim);
    }
    let previous = Tensor::cat(
        vec![x.clone().narrow(dim, 0, 1), x.clone().narrow(dim, 0, n - 1)],
        dim,
    );
    let next = Tensor::cat(
        vec![
            x.clone().narrow(dim, 1, n - 1),
            x.clone().narrow(dim, n - 1, 1),
        ],
        dim,
    );
    let even = x.clone().mul_scalar(0.75) + previous.mul_scalar(0.25);
    let odd = x.mul_scalar(0.75) + next.mul_scalar(0.25);
    Tensor::stack::<5>(vec![even, odd], dim + 1).reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;
    use crate::model::random_seeded;
    use burn::tensor::{Distribution, Tolerance};

    /// The same values as Burn's bilinear `interpolate`, and a gradient.
    #[test]
    fn upsample2x_matches_bilinear_interpolation() {
        let device = cpu_device().autodiff();
        let normal = Distribution::Normal(0.0, 1.0);
        for [h, w] in [[1, 1], [3, 5], [8, 8]] {
            let x = random_seeded([2, 3, h, w], normal, 1, &device).require_grad();
            let expected = interpolate(
                x.clone(),
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size([2 * h, 2 * w]),
            );
            let ours = upsample2x(x.clone());
            ours.clone()
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
            let grads = ours.sum().backward();
            assert!(x.grad(&grads).is_some());
        }
        let x = random_seeded([1, 2, 2, 3], normal, 2, &device);
        assert_eq!(resize(x, [16, 24]).dims(), [1, 2, 16, 24]);
    }
}
