//! The SLSG networks in Burn, on any device: the ResNet-18 encoder, GPT-Net and its
//! discriminator (pre-training), SegNet with the SG block (segmentation) and its anomaly maps,
//! and the losses. Each `Module` sits beside its `Config`; nothing here reads files or knows
//! about training loops.

mod aux_head;
mod blocks;
mod config;
mod decoder;
mod discriminator;
mod encoder;
mod gpt_net;
pub mod loss;
mod norm;
mod segnet;
mod sg_block;

pub use aux_head::{AuxHead, AuxHeadConfig};
pub use blocks::resize;
pub use config::ModelConfig;
pub use decoder::{Decoder, DecoderConfig};
pub use discriminator::{Discriminator, DiscriminatorConfig};
pub use encoder::{Encoder, EncoderConfig, EncoderFeatures};
pub use gpt_net::{GptNet, GptNetConfig, Reconstruction};
pub use norm::{BatchNorm2d, BatchNorm2dConfig};
pub use segnet::{SegNet, SegNetConfig, Segmentation, anomaly_maps, anomaly_probability};
pub use sg_block::{SgBlock, SgBlockConfig, position_encoding};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

use crate::backend::cpu_device;

/// A batch of channel-first images (values in `[0, 1]`) as a `[n, 3, size, size]` tensor.
pub fn images_tensor(data: Vec<f32>, n: usize, size: usize, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data, [n, 3, size, size]), device)
}

/// A `shape` tensor drawn from `distribution` by a generator of its own seeded with `seed`,
/// never Burn's process-wide one: concurrent draws elsewhere cannot change it, nor it them.
pub fn random_seeded<const D: usize>(
    shape: [usize; D],
    distribution: Distribution,
    seed: u64,
    device: &Device,
) -> Tensor<D> {
    let mut rng = crate::seed::rng_for(seed, &[]);
    Tensor::from_data(
        TensorData::random::<f32, _, _>(shape, distribution, &mut rng),
        device,
    )
}

/// A network's config: builds the network on any backend.
pub trait NetworkConfig {
    type Network: Module;
    fn init(&self, device: &Device) -> Self::Network;
}

macro_rules! network_config {
    ($($config:ty => $network:ident),* $(,)?) => {$(
        impl NetworkConfig for $config {
            type Network = $network;
            fn init(&self, device: &Device) -> $network {
                <$config>::init(self, device)
            }
        }
    )*};
}

network_config!(
    EncoderConfig => Encoder,
    GptNetConfig => GptNet,
    DiscriminatorConfig => Discriminator,
    SegNetConfig => SegNet,
    SgBlockConfig => SgBlock,
    AuxHeadConfig => AuxHead,
);

/// Builds a network with initial weights drawn from `seed`, the same on every backend: the
/// weights are drawn by the CPU backend and copied to `device` (GPU backends draw other
/// numbers from the same seed). Burn draws initial weights from one process-wide generator and
/// materialises parameters lazily, so concurrent trainings (embedded workers, parallel tests)
/// would interleave their draws: seeding, building and materialising happen under one lock, and
/// nothing else in the workspace draws from that generator (random test inputs come from
/// [`random_seeded`], networks from here; `tests/tests/layers.rs` holds every file to that).
pub fn init_seeded<C: NetworkConfig>(config: &C, seed: u64, device: &Device) -> C::Network {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let cpu = cpu_device();
    // Building a network may draw from the generator too, on any backend: everything here
    // holds the lock.
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    cpu.seed(seed);
    let drawn = config.init(&cpu).materialize();
    config.init(device).load_record(drawn.into_record())
}

/// Trainable parameters (BatchNorm running statistics are state, not parameters), counted as
/// PyTorch counts `p.numel()` over `parameters()`. Needs a module on an autodiff device,
/// where only trainable tensors require gradients.
pub fn trainable_parameters<M: Module>(module: &M) -> usize {
    struct Counter(usize);
    impl ModuleVisitor for Counter {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0 += param.shape().num_elements();
            }
        }
    }
    let mut counter = Counter(0);
    module.visit(&mut counter);
    counter.0
}
