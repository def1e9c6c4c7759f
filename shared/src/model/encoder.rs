//! The ResNet-18 encoder shared by GPT-Net and SegNet: BasicBlock ×[2, 2, 2, 2], widths
//! 64/128/256/512 times a width multiplier, ImageNet input normalisation, and (as the
//! reference does) no max-pool after the stem by default.

use burn::module::{Initializer, Module};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};

use super::norm::{BatchNorm2d, BatchNorm2dConfig, per_sample};
use burn::prelude::*;
use burn::tensor::Slice;
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// torchvision's ResNet initialisation: He normal, fan-out, for ReLU.
fn he_normal() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

fn conv(channels: [usize; 2], kernel: usize, stride: usize) -> Conv2dConfig {
    let pad = kernel / 2;
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(he_normal())
}

#[derive(Config, Debug)]
pub struct EncoderConfig {
    /// Channel multiplier: 1.0 is ResNet-18; small values make test-sized models.
    #[config(default = 1.0)]
    pub width: f64,
    /// Skip the max-pool after the stem (the reference), keeping a 2× finer feature pyramid.
    #[config(default = true)]
    pub skip_max_pool: bool,
}

impl EncoderConfig {
    /// Channels of the stem and the four layers.
    pub fn channels(&self) -> [usize; 5] {
        let scale = |c: f64| ((c * self.width).round() as usize).max(1);
        [
            scale(64.0),
            scale(64.0),
            scale(128.0),
            scale(256.0),
            scale(512.0),
        ]
    }

    /// Channels of the decoder's skip features, coarsest first: layers 3, 2, 1, and the stem
    /// when a max-pool puts layer 1 at a quarter of the input size.
    pub fn skip_channels(&self) -> Vec<usize> {
        let [stem, c1, c2, c3, _] = self.channels();
        let mut skips = vec![c3, c2, c1];
        if !self.skip_max_pool {
            skips.push(stem);
        }
        skips
    }

    pub fn init(&self, device: &Device) -> Encoder {
        let [stem, c1, c2, c3, c4] = self.channels();
        let layer = |input: usize, output: usize, stride: usize| ResLayer {
            blocks: vec![
                BasicBlock::new(input, output, stride, device),
                BasicBlock::new(output, output, 1, device),
            ],
        };
        Encoder {
            stem: conv([3, stem], 7, 2).init(device),
            stem_norm: BatchNorm2dConfig::new(stem).init(device),
            pool: (!self.skip_max_pool).then(|| {
                MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init()
            }),
            layer1: layer(stem, c1, 1),
            layer2: layer(c1, c2, 2),
            layer3: layer(c2, c3, 2),
            layer4: layer(c3, c4, 2),
        }
    }
}

/// Feature maps of every stage, finest first.
#[derive(Clone, Debug)]
pub struct EncoderFeatures {
    pub stem: Tensor<4>,
    pub layer1: Tensor<4>,
    pub layer2: Tensor<4>,
    pub layer3: Tensor<4>,
    pub layer4: Tensor<4>,
}

impl EncoderFeatures {
    /// The first `levels` skip features for the decoder, coarsest first.
    pub fn decoder_skips(&self, levels: usize) -> Vec<Tensor<4>> {
        [&self.layer3, &self.layer2, &self.layer1, &self.stem]
            .into_iter()
            .take(levels)
            .cloned()
            .collect()
    }

    /// Applies `f` to every feature map (e.g. to move features between devices).
    pub fn map(self, f: impl Fn(Tensor<4>) -> Tensor<4>) -> EncoderFeatures {
        EncoderFeatures {
            stem: f(self.stem),
            layer1: f(self.layer1),
            layer2: f(self.layer2),
            layer3: f(self.layer3),
            layer4: f(self.layer4),
        }
    }
}

#[derive(Module, Debug)]
pub struct Encoder {
    stem: Conv2d,
    stem_norm: BatchNorm2d,
    pool: Option<MaxPool2d>,
    layer1: ResLayer,
    layer2: ResLayer,
    layer3: ResLayer,
    layer4: ResLayer,
}

impl Encoder {
    /// `x`: images in `[0, 1]`, shape `[batch, 3, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> EncoderFeatures {
        let device = x.device();
        let batch = x.dims()[0];
        let scale = IMAGENET_STD.map(|s| 1.0 / s);
        let shift = [0, 1, 2].map(|c| -IMAGENET_MEAN[c] / IMAGENET_STD[c]);
        let x = x * per_sample(Tensor::from_floats(scale, &device), batch)
            + per_sample(Tensor::from_floats(shift, &device), batch);
        let stem = relu(self.stem_norm.forward(self.stem.forward(x)));
        let pooled = match &self.pool {
            Some(pool) => pool.forward(stem.clone()),
            None => stem.clone(),
        };
        let layer1 = self.layer1.forward(pooled);
        let layer2 = self.layer2.forward(layer1.clone());
        let layer3 = self.layer3.forward(layer2.clone());
        let layer4 = self.layer4.forward(layer3.clone());
        EncoderFeatures {
            stem,
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

#[derive(Module, Debug)]
struct ResLayer {
    blocks: Vec<BasicBlock>,
}

impl ResLayer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}

/// `relu(bn(conv3×3(relu(bn(conv3×3(x))))) + shortcut(x))`.
#[derive(Module, Debug)]
struct BasicBlock {
    conv1: Conv2d,
    norm1: BatchNorm2d,
    conv2: Conv2d,
    norm2: BatchNorm2d,
    shortcut: Option<Shortcut>,
}

/// 1×1 projection when the block changes resolution or width.
#[derive(Module, Debug)]
struct Shortcut {
    conv: Conv2d,
    norm: BatchNorm2d,
}

impl BasicBlock {
    fn new(input: usize, output: usize, stride: usize, device: &Device) -> Self {
        let shortcut = (stride != 1 || input != output).then(|| Shortcut {
            conv: conv([input, output], 1, stride).init(device),
            norm: BatchNorm2dConfig::new(output).init(device),
        });
        BasicBlock {
            conv1: conv([input, output], 3, stride).init(device),
            norm1: BatchNorm2dConfig::new(output).init(device),
            conv2: conv([output, output], 3, 1).init(device),
            norm2: BatchNorm2dConfig::new(output).init(device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.norm1.forward(self.conv1.forward(x.clone())));
        let out = self.norm2.forward(self.conv2.forward(out));
        let identity = match &self.shortcut {
            Some(shortcut) => shortcut.forward(x),
            None => x,
        };
        relu(out + identity)
    }
}

impl Shortcut {
    /// The strided 1×1 projection as a subsampling followed by an unstrided 1×1 convolution:
    /// the same values and gradients, but the input gradient no longer goes through a
    /// transposed convolution whose stride exceeds its kernel. In Burn 0.21 one of the two
    /// kernels CubeCL's autotuner picks from for that (`conv_transpose2d_direct`) gives zeros
    /// there, so a GPU trained with wrong gradients whenever the tuning chose it.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [stride_y, stride_x] = self.conv.stride.map(|s| s as isize);
        let subsampled = x.slice([
            Slice::full(),
            Slice::full(),
            Slice::new(0, None, stride_y),
            Slice::new(0, None, stride_x),
        ]);
        let projected = conv2d(
            subsampled,
            self.conv.weight.val(),
            self.conv.bias.as_ref().map(|bias| bias.val()),
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        );
        self.norm.forward(projected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;
    use crate::model::random_seeded;
    use burn::module::Param;
    use burn::tensor::{Distribution, Tolerance};

    /// The subsampled projection gives the strided convolution's values and input gradient, on
    /// even and odd sizes.
    #[test]
    fn shortcut_matches_the_strided_convolution() {
        let device = cpu_device().autodiff();
        let normal = Distribution::Normal(0.0, 1.0);
        let mut projection_conv = conv([3, 5], 1, 2).init(&device);
        projection_conv.weight =
            Param::from_tensor(random_seeded([5, 3, 1, 1], normal, 1, &device));
        let shortcut = Shortcut {
            conv: projection_conv,
            norm: BatchNorm2dConfig::new(5).init(&device),
        };
        for [h, w] in [[8usize, 8], [7, 5], [1, 3]] {
            let x = random_seeded([2, 3, h, w], normal, 2, &device);
            let projection =
                random_seeded([2, 5, h.div_ceil(2), w.div_ceil(2)], normal, 3, &device);
            // Each result with the gradient of its own copy of the input.
            let run = |forward: &dyn Fn(Tensor<4>) -> Tensor<4>| {
                let x = x.clone().detach().require_grad();
                let y = forward(x.clone());
                let grads = (y.clone() * projection.clone()).sum().backward();
                (
                    y.into_data(),
                    x.grad(&grads).expect("a gradient").into_data(),
                )
            };
            let (ours, ours_grad) = run(&|x| shortcut.forward(x));
            let (strided, strided_grad) = run(&|x| shortcut.norm.forward(shortcut.conv.forward(x)));
            ours.assert_approx_eq::<f32>(&strided, Tolerance::absolute(1e-5));
            ours_grad.assert_approx_eq::<f32>(&strided_grad, Tolerance::absolute(1e-5));
        }
    }
}
