//! GPT-Net, the generator of the pre-training stage: encoder, symmetric U-Net decoder to RGB,
//! and the auxiliary head reconstructing the image from the bottleneck alone.

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::aux_head::{AuxHead, AuxHeadConfig};
use super::decoder::{Decoder, DecoderConfig};
use super::encoder::{Encoder, EncoderConfig};

#[derive(Config, Debug)]
pub struct GptNetConfig {
    pub encoder: EncoderConfig,
    #[config(default = 64)]
    pub aux_hidden: usize,
}

impl GptNetConfig {
    pub fn init(&self, device: &Device) -> GptNet {
        let channels = self.encoder.channels();
        GptNet {
            encoder: self.encoder.init(device),
            decoder: DecoderConfig::new(channels[4], self.encoder.skip_channels(), 3).init(device),
            aux: AuxHeadConfig::new([channels[4], self.aux_hidden, 3]).init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct GptNet {
    pub encoder: Encoder,
    decoder: Decoder,
    aux: AuxHead,
}

/// The two reconstructions of a masked batch, in `[0, 1]`.
pub struct Reconstruction {
    /// `G(x_m)`: through the decoder with skip connections.
    pub image: Tensor<4>,
    /// From the bottleneck features only.
    pub auxiliary: Tensor<4>,
}

impl GptNet {
    pub fn forward(&self, masked: Tensor<4>) -> Reconstruction {
        let [_, _, h, w] = masked.dims();
        let features = self.encoder.forward(masked);
        let skips = features.decoder_skips(self.decoder.levels());
        let image = sigmoid(
            self.decoder
                .forward(features.layer4.clone(), &skips, None, [h, w]),
        );
        let auxiliary = sigmoid(self.aux.forward(features.layer4, [h, w]));
        Reconstruction { image, auxiliary }
    }
}
