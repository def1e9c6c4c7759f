//! SegNet, the anomaly segmentation network: the pre-trained encoder, the SG block on the
//! bottleneck, the U-Net decoder fed X′ at every skip level, and the auxiliary mask head whose
//! logits are added to the decoder's. Outputs two classes (normal, anomalous) per pixel.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};

use super::aux_head::{AuxHead, AuxHeadConfig};
use super::decoder::{Decoder, DecoderConfig};
use super::encoder::{Encoder, EncoderConfig, EncoderFeatures};
use super::sg_block::{SgBlock, SgBlockConfig};

#[derive(Config, Debug)]
pub struct SegNetConfig {
    pub encoder: EncoderConfig,
    #[config(default = 8)]
    pub sg_reduction: usize,
    #[config(default = 9)]
    pub neighbours: usize,
    #[config(default = 64)]
    pub position_channels: usize,
    #[config(default = true)]
    pub subtract_position: bool,
    /// Channels X′ is projected to before joining the decoder's skip levels.
    #[config(default = 64)]
    pub sg_skip_channels: usize,
    #[config(default = 64)]
    pub aux_hidden: usize,
}

impl SegNetConfig {
    pub fn init(&self, device: &Device) -> SegNet {
        let channels = self.encoder.channels();
        let c4 = channels[4];
        SegNet {
            encoder: self.encoder.init(device),
            sg: SgBlockConfig::new(c4)
                .with_reduction(self.sg_reduction)
                .with_neighbours(self.neighbours)
                .with_position_channels(self.position_channels)
                .with_subtract_position(self.subtract_position)
                .init(device),
            sg_skip: Conv2dConfig::new([c4, self.sg_skip_channels], [1, 1]).init(device),
            decoder: DecoderConfig::new(c4, self.encoder.skip_channels(), 2)
                .with_extra(self.sg_skip_channels)
                .init(device),
            aux: AuxHeadConfig::new([c4, self.aux_hidden, 2]).init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct SegNet {
    pub encoder: Encoder,
    pub sg: SgBlock,
    sg_skip: Conv2d,
    decoder: Decoder,
    aux: AuxHead,
}

/// Per-pixel class logits `[batch, 2, H, W]` (channel 1 = anomalous).
pub struct Segmentation {
    /// Decoder logits plus the auxiliary logits.
    pub logits: Tensor<4>,
    /// The auxiliary head's logits alone (for its loss).
    pub aux_logits: Tensor<4>,
}

impl SegNet {
    /// `x`: images in `[0, 1]`, `[batch, 3, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Segmentation {
        let [_, _, h, w] = x.dims();
        self.forward_features(self.encoder.forward(x), [h, w])
    }

    /// Everything after the encoder, for callers that computed the features themselves (a
    /// frozen encoder runs without autodiff).
    pub fn forward_features(
        &self,
        features: EncoderFeatures,
        output_size: [usize; 2],
    ) -> Segmentation {
        let refined = self.sg.forward(features.layer4.clone());
        let extra = relu(self.sg_skip.forward(refined.clone()));
        let skips = features.decoder_skips(self.decoder.levels());
        let decoded = self
            .decoder
            .forward(refined.clone(), &skips, Some(&extra), output_size);
        let aux_logits = self.aux.forward(refined, output_size);
        Segmentation {
            logits: decoded + aux_logits.clone(),
            aux_logits,
        }
    }
}

/// Probability of the anomalous class, `[batch, 1, H, W]`.
pub fn anomaly_probability(logits: Tensor<4>) -> Tensor<4> {
    softmax(logits, 1).narrow(1, 1, 1)
}

/// Anomalous-class probability maps of a batch `[n, 3, H, W]` at the input size, one
/// row-major `H × W` map per image.
pub fn anomaly_maps(model: &SegNet, images: Tensor<4>) -> Vec<Vec<f32>> {
    let [n, _, h, w] = images.dims();
    let probabilities = anomaly_probability(model.forward(images).logits);
    let values: Vec<f32> = probabilities
        .try_into_vec_as::<f32>()
        .expect("a float tensor converts to f32");
    values.chunks(h * w).take(n).map(|m| m.to_vec()).collect()
}
