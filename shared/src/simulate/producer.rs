//! Training batches of `normal + simulated` images, produced on a pool of CPU threads. Sample
//! `j` of batch `b` draws from its own seeded stream, and batches come out in index order, so
//! the sequence is the same whatever the thread count.

use std::sync::Arc;

use rand::seq::SliceRandom;

use super::simulator::{SampleInfo, Simulator};
use crate::parallel::OrderedProducer;
use crate::seed::rng_for;

const EPOCH_STREAM: u64 = 0xE90C;
const SAMPLE_STREAM: u64 = 0x5A3F;

#[derive(Clone, Debug)]
pub struct ProducerConfig {
    pub seed: u64,
    /// Simulation threads (at least one).
    pub threads: usize,
    /// Batches buffered ahead of the consumer, in total.
    pub capacity: usize,
    pub normal_per_batch: usize,
    pub simulated_per_batch: usize,
    /// Index of the first batch: a resumed run continues the same sequence.
    pub start_batch: u64,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            threads: 1,
            capacity: 8,
            normal_per_batch: 4,
            simulated_per_batch: 4,
            start_batch: 0,
        }
    }
}

/// One training batch: images `[n, 3, H, W]` and masks `[n, 1, H, W]`, normal samples first.
pub struct Batch {
    pub index: u64,
    pub width: u32,
    pub height: u32,
    pub images: Vec<f32>,
    pub masks: Vec<f32>,
    /// Per sample: the normal image it starts from, and what was simulated on it.
    pub samples: Vec<(usize, Option<SampleInfo>)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Starts simulating batches `start_batch, start_batch + 1, …` on `config.threads` threads;
/// iterate it to receive them in order.
pub fn batch_producer(simulator: Arc<Simulator>, config: ProducerConfig) -> OrderedProducer<Batch> {
    let (threads, capacity, first) = (config.threads, config.capacity, config.start_batch);
    OrderedProducer::start("slsg-simulate", threads, capacity, first, move || {
        let (simulator, config) = (simulator.clone(), config.clone());
        let mut epochs = EpochOrder::default();
        move |index| produce_batch(&simulator, &config, index, &mut epochs)
    })
}

/// Produces batch `index` of the sequence defined by `config.seed`.
pub fn produce_batch(
    simulator: &Simulator,
    config: &ProducerConfig,
    index: u64,
    epochs: &mut EpochOrder,
) -> Batch {
    let size = config.normal_per_batch + config.simulated_per_batch;
    let (image_len, mask_len) = (simulator.image_len(), simulator.image_len() / 3);
    let mut images = vec![0.0f32; size * image_len];
    let mut masks = vec![0.0f32; size * mask_len];
    let mut samples = Vec::with_capacity(size);
    for j in 0..size {
        let slot = index * size as u64 + j as u64;
        let base = epochs.image_at(slot, simulator.len(), config.seed);
        let image = &mut images[j * image_len..(j + 1) * image_len];
        let mask = &mut masks[j * mask_len..(j + 1) * mask_len];
        if j < config.normal_per_batch {
            simulator.normal_into(base, image, mask);
            samples.push((base, None));
        } else {
            let mut rng = rng_for(config.seed, &[SAMPLE_STREAM, index, j as u64]);
            samples.push((
                base,
                Some(simulator.simulate_into(base, &mut rng, image, mask)),
            ));
        }
    }
    Batch {
        index,
        width: simulator.width(),
        height: simulator.height(),
        images,
        masks,
        samples,
    }
}

/// Visits the normal images in a fresh seeded permutation every epoch, so each image is used
/// equally often; caches the current epoch's permutation.
#[derive(Default)]
pub struct EpochOrder {
    epoch: Option<u64>,
    order: Vec<usize>,
}

impl EpochOrder {
    pub fn image_at(&mut self, slot: u64, count: usize, seed: u64) -> usize {
        let epoch = slot / count as u64;
        if self.epoch != Some(epoch) || self.order.len() != count {
            self.order = (0..count).collect();
            self.order
                .shuffle(&mut rng_for(seed, &[EPOCH_STREAM, epoch]));
            self.epoch = Some(epoch);
        }
        self.order[(slot % count as u64) as usize]
    }
}
