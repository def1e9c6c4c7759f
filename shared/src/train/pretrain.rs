//! Pre-training (docs/method.md §3): GPT-Net learns to in-paint masked normal images against the
//! D-Net, with two Adam optimisers alternating a discriminator step (Eq. 9) and a generator step
//! (Eq. 10) — a loop of its own, as no single-optimiser learner expresses it. Checkpoints let a
//! run resume on the same schedule.

use std::sync::Arc;
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use image::RgbImage;

use super::masking::inpainting_mask;
use super::progress::{FirstStepClock, Progress, Stage, StepReport, TrainEvent};
use super::{TrainError, finite};
use crate::checkpoint::{
    Checkpoint, CheckpointMeta, CheckpointStore, latest_checkpoint, save_checkpoint,
};
use crate::config::{MaskFill, PretrainConfig};
use crate::model::loss::{l1, l2, lsgan_discriminator, lsgan_generator};
use crate::model::{Discriminator, GptNet, ModelConfig, images_tensor, init_seeded};
use crate::parallel::OrderedProducer;
use crate::seed::rng_for;
use crate::simulate::EpochOrder;

const MASK_STREAM: u64 = 0x6A5C;
const INIT_STREAM: u64 = 0x1417;

/// Everything pre-training needs besides a device and somewhere to checkpoint.
#[derive(Clone)]
pub struct PretrainInputs {
    pub model: ModelConfig,
    pub config: PretrainConfig,
    /// Normal training images at the model's input size.
    pub normals: Arc<[RgbImage]>,
    pub seed: u64,
    pub threads: usize,
}

struct MaskedBatch {
    images: Vec<f32>,
    masked: Vec<f32>,
}

/// Trains GPT-Net on `device` (an autodiff device), resuming from the latest checkpoint in
/// `store`, and returns it.
pub fn pretrain(
    inputs: &PretrainInputs,
    device: &Device,
    store: &mut dyn CheckpointStore,
    progress: &mut dyn Progress,
) -> Result<GptNet, TrainError> {
    let c = &inputs.config;
    let mut clock = FirstStepClock::start();
    let seed = crate::seed::derive_seed(inputs.seed, &[INIT_STREAM]);
    let mut generator: GptNet = init_seeded(&inputs.model.gpt_net(), seed, device);
    let mut discriminator: Discriminator =
        init_seeded(&inputs.model.discriminator(), seed ^ 1, device);
    let adam = AdamConfig::new()
        .with_beta_1(c.adam_betas[0] as f32)
        .with_beta_2(c.adam_betas[1] as f32);
    let mut optimizer_g = adam.init();
    let mut optimizer_d = adam.init();
    let total = c.total_steps(inputs.normals.len());
    let mut step = 0;
    if let Some(checkpoint) = latest_checkpoint(store, Stage::Pretrain.name())? {
        let origin = store.describe(Stage::Pretrain.name(), checkpoint.meta.step);
        generator = checkpoint.load_module("generator", generator, &origin)?;
        discriminator = checkpoint.load_module("discriminator", discriminator, &origin)?;
        optimizer_g = checkpoint.load_optimizer("optimizer_generator", optimizer_g, &origin)?;
        optimizer_d = checkpoint.load_optimizer("optimizer_discriminator", optimizer_d, &origin)?;
        step = checkpoint.meta.step;
        progress.on_event(&TrainEvent::Resumed {
            stage: Stage::Pretrain,
            step,
        });
    }
    if step >= total {
        return Ok(generator);
    }

    let size = inputs.model.image_size as usize;
    let fill = match c.fill {
        MaskFill::Zero => [0.0; 3],
        MaskFill::Mean => channel_means(&inputs.normals),
    };
    let producer = {
        let (normals, config, seed) = (inputs.normals.clone(), c.clone(), inputs.seed);
        OrderedProducer::start("slsg-inpaint", inputs.threads, 4, step, move || {
            let (normals, config) = (normals.clone(), config.clone());
            let mut epochs = EpochOrder::default();
            move |index| masked_batch(&normals, &config, fill, seed, index, &mut epochs)
        })
    };
    let save = |step: u64,
                g: &GptNet,
                d: &Discriminator,
                og: &ModuleOptimizer,
                od: &ModuleOptimizer,
                store: &mut dyn CheckpointStore| {
        let mut checkpoint = Checkpoint::new(CheckpointMeta {
            stage: Stage::Pretrain.name().into(),
            step,
            total_steps: total,
            seed: inputs.seed,
            extra: Default::default(),
        });
        checkpoint.put_module("generator", g);
        checkpoint.put_module("discriminator", d);
        checkpoint.put_optimizer("optimizer_generator", og);
        checkpoint.put_optimizer("optimizer_discriminator", od);
        save_checkpoint(store, &checkpoint, c.keep_checkpoints)
    };

    progress.on_event(&TrainEvent::Started {
        stage: Stage::Pretrain,
        step,
        total_steps: total,
    });
    let mut window = (Instant::now(), 0usize);
    let mut producer = producer;
    while let Some(batch) = producer.next() {
        let n = batch.images.len() / (3 * size * size);
        let x = images_tensor(batch.images, n, size, device);
        let masked = images_tensor(batch.masked, n, size, device);

        let fake = generator.forward(masked.clone()).image.detach();
        let loss_d = lsgan_discriminator(
            discriminator.forward(fake),
            discriminator.forward(x.clone()),
        );
        let grads = GradientsParams::from_grads(loss_d.backward(), &discriminator);
        discriminator = optimizer_d.step(c.lr_discriminator, discriminator, grads);

        let reconstruction = generator.forward(masked);
        let adversarial = lsgan_generator(discriminator.forward(reconstruction.image.clone()));
        let pixel = l1(reconstruction.image, x.clone());
        let auxiliary = l2(reconstruction.auxiliary, x);
        let loss_g = adversarial.clone().mul_scalar(c.alpha[0])
            + pixel.clone().mul_scalar(c.alpha[1])
            + auxiliary.clone().mul_scalar(c.alpha[2]);
        let grads = GradientsParams::from_grads(loss_g.clone().backward(), &generator);
        generator = optimizer_g.step(c.lr_generator, generator, grads);

        step += 1;
        window.1 += n;
        let generator_loss = finite(loss_g, Stage::Pretrain, step)?;
        let discriminator_loss = finite(loss_d, Stage::Pretrain, step)?;
        clock.step_done(Stage::Pretrain, step, progress);
        if step % c.log_every == 0 || step == total {
            let losses = vec![
                ("generator", generator_loss),
                ("discriminator", discriminator_loss),
                ("adversarial", scalar(adversarial)),
                ("l1", scalar(pixel)),
                ("auxiliary_l2", scalar(auxiliary)),
            ];
            let images_per_second = window.1 as f64 / window.0.elapsed().as_secs_f64();
            window = (Instant::now(), 0);
            progress.on_event(&TrainEvent::Step(StepReport {
                stage: Stage::Pretrain,
                step,
                total_steps: total,
                losses,
                learning_rate: c.lr_generator,
                images_per_second,
                queued_batches: producer.ready(),
            }));
        }
        progress.on_step(Stage::Pretrain, step, total);
        let stop = progress.stop_requested();
        if step % c.checkpoint_every == 0 || step == total || stop {
            save(
                step,
                &generator,
                &discriminator,
                &optimizer_g,
                &optimizer_d,
                store,
            )?;
            progress.on_event(&TrainEvent::Checkpoint {
                stage: Stage::Pretrain,
                step,
            });
        }
        if stop && step < total {
            return Err(TrainError::Interrupted {
                stage: Stage::Pretrain,
                step,
            });
        }
        if step >= total {
            break;
        }
    }
    Ok(generator)
}

fn scalar(t: Tensor<1>) -> f64 {
    f64::from(t.into_scalar::<f32>())
}

/// Batch `index`: images from the epoch permutation, each with its own in-painting mask.
fn masked_batch(
    normals: &[RgbImage],
    config: &PretrainConfig,
    fill: [f32; 3],
    seed: u64,
    index: u64,
    epochs: &mut EpochOrder,
) -> MaskedBatch {
    let size = normals[0].width();
    let plane = (size * size) as usize;
    let mut images = vec![0.0f32; config.batch_size * 3 * plane];
    let mut masked = vec![0.0f32; config.batch_size * 3 * plane];
    for j in 0..config.batch_size {
        let slot = index * config.batch_size as u64 + j as u64;
        let normal = &normals[epochs.image_at(slot, normals.len(), seed)];
        let mask = inpainting_mask(
            size,
            config,
            &mut rng_for(seed, &[MASK_STREAM, index, j as u64]),
        );
        let out = &mut images[j * 3 * plane..(j + 1) * 3 * plane];
        crate::raster::write_chw(normal, out);
        let hidden = &mut masked[j * 3 * plane..(j + 1) * 3 * plane];
        hidden.copy_from_slice(out);
        for (c, value) in fill.iter().enumerate() {
            for (i, &m) in mask.as_bytes().iter().enumerate() {
                if m != 0 {
                    hidden[c * plane + i] = *value;
                }
            }
        }
    }
    MaskedBatch { images, masked }
}

fn channel_means(normals: &[RgbImage]) -> [f32; 3] {
    let mut sums = [0f64; 3];
    let mut count = 0u64;
    for image in normals {
        for p in image.pixels() {
            for (sum, value) in sums.iter_mut().zip(p.0) {
                *sum += value as f64;
            }
            count += 1;
        }
    }
    sums.map(|s| (s / count.max(1) as f64 / 255.0) as f32)
}
