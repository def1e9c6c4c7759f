//! Model selection data (never the test set): defect-free validation images (LOCO's
//! `validation/good` or held-out training images) plus anomalies simulated on them with a
//! fixed seed, scored by image and pixel AUROC.

use std::path::PathBuf;

use burn::prelude::*;

use sha2::{Digest, Sha256};

use crate::data::{GroundTruth, GroundTruthRegion, hex};
use crate::metrics::{EvalOptions, EvalSample, ImageScore, evaluate};
use crate::model::{SegNet, anomaly_maps, images_tensor};
use crate::seed::rng_for;
use crate::simulate::Simulator;

const VALIDATION_STREAM: u64 = 0x7A11;

/// Splits training image paths into (train, validation) when a category has no validation
/// split: `fraction` of them (at least one, if any can be spared) chosen by the seed.
pub fn holdout(paths: &[PathBuf], fraction: f64, seed: u64) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let count = ((paths.len() as f64 * fraction).round() as usize).clamp(
        usize::from(fraction > 0.0 && paths.len() > 1),
        paths.len().saturating_sub(1),
    );
    let mut order: Vec<usize> = (0..paths.len()).collect();
    rand::seq::SliceRandom::shuffle(
        order.as_mut_slice(),
        &mut rng_for(seed, &[VALIDATION_STREAM]),
    );
    let held: std::collections::BTreeSet<usize> = order.into_iter().take(count).collect();
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (i, path) in paths.iter().enumerate() {
        if held.contains(&i) {
            validation.push(path.clone())
        } else {
            train.push(path.clone())
        }
    }
    (train, validation)
}

/// The validation images at the model's input size (CHW floats) with their masks.
pub struct ValidationSet {
    pub size: usize,
    images: Vec<f32>,
    samples: Vec<(bool, Vec<u32>)>,
    /// The seed the anomalies were simulated with.
    pub seed: u64,
}

impl ValidationSet {
    /// Every validation image as it is, plus `anomalies_per_image` simulated anomalies on each.
    pub fn build(simulator: &Simulator, anomalies_per_image: usize, seed: u64) -> ValidationSet {
        let size = simulator.width() as usize;
        let (image_len, mask_len) = (simulator.image_len(), simulator.image_len() / 3);
        let mut images = Vec::new();
        let mut samples = Vec::new();
        let (mut image, mut mask) = (vec![0.0f32; image_len], vec![0.0f32; mask_len]);
        for base in 0..simulator.len() {
            simulator.normal_into(base, &mut image, &mut mask);
            images.extend_from_slice(&image);
            samples.push((false, Vec::new()));
            for k in 0..anomalies_per_image {
                let mut rng = rng_for(seed, &[VALIDATION_STREAM, base as u64, k as u64]);
                simulator.simulate_into(base, &mut rng, &mut image, &mut mask);
                images.extend_from_slice(&image);
                let pixels = mask
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| **m > 0.5)
                    .map(|(i, _)| i as u32)
                    .collect();
                samples.push((true, pixels));
            }
        }
        ValidationSet {
            size,
            images,
            samples,
            seed,
        }
    }

    /// SHA-256 of the set as scored (every image's pixels and every anomaly's mask): two
    /// scores are comparable only on sets with the same fingerprint.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update((self.size as u64).to_le_bytes());
        for value in &self.images {
            hash.update(value.to_le_bytes());
        }
        for (anomalous, pixels) in &self.samples {
            hash.update([u8::from(*anomalous)]);
            hash.update((pixels.len() as u64).to_le_bytes());
            for pixel in pixels {
                hash.update(pixel.to_le_bytes());
            }
        }
        hex(&hash.finalize())
    }

    /// Defect-free images in the set.
    pub fn normal_images(&self) -> usize {
        self.samples
            .iter()
            .filter(|(anomalous, _)| !anomalous)
            .count()
    }

    /// Simulated anomalies in the set.
    pub fn simulated_anomalies(&self) -> usize {
        self.len() - self.normal_images()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Image and pixel AUROC of `model` on the validation set.
pub struct ValidationScores {
    pub image_auroc: Option<f64>,
    pub pixel_auroc: Option<f64>,
    /// The image score threshold maximising F1.
    pub threshold: Option<f64>,
}

impl ValidationScores {
    /// The selection score: the mean of both AUROCs (a missing one counts 0).
    pub fn score(&self) -> f64 {
        (self.image_auroc.unwrap_or(0.0) + self.pixel_auroc.unwrap_or(0.0)) / 2.0
    }
}

pub fn score<B: Backend>(
    model: &SegNet<B>,
    set: &ValidationSet,
    image_score: ImageScore,
    batch_size: usize,
    device: &B::Device,
) -> ValidationScores {
    let plane = set.size * set.size;
    let mut samples = Vec::with_capacity(set.len());
    for start in (0..set.len()).step_by(batch_size.max(1)) {
        let end = (start + batch_size.max(1)).min(set.len());
        let data = set.images[start * 3 * plane..end * 3 * plane].to_vec();
        let maps = anomaly_maps(
            model,
            images_tensor::<B>(data, end - start, set.size, device),
        );
        for (i, map) in maps.into_iter().enumerate() {
            let (anomalous, pixels) = &set.samples[start + i];
            let regions = if pixels.is_empty() {
                Vec::new()
            } else {
                vec![GroundTruthRegion {
                    source: PathBuf::from("validation"),
                    pixels: pixels.clone(),
                    defect: None,
                }]
            };
            samples.push(EvalSample {
                kind: if *anomalous {
                    "simulated".into()
                } else {
                    "good".into()
                },
                anomalous: *anomalous,
                ground_truth: GroundTruth {
                    width: set.size as u32,
                    height: set.size as u32,
                    regions,
                },
                map,
            });
        }
    }
    let evaluation = evaluate(
        "validation",
        &samples,
        &EvalOptions {
            image_score,
            max_exact_pixels: 1 << 22,
            ..EvalOptions::default()
        },
    );
    ValidationScores {
        image_auroc: evaluation.image_auroc,
        pixel_auroc: evaluation.pixel_auroc,
        threshold: evaluation.image_f1_max.map(|f| f.threshold),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_seeded_and_keeps_training_images() {
        let paths: Vec<PathBuf> = (0..20).map(|i| PathBuf::from(format!("{i}.png"))).collect();
        let (train, validation) = holdout(&paths, 0.1, 3);
        assert_eq!((train.len(), validation.len()), (18, 2));
        assert_eq!(holdout(&paths, 0.1, 3).1, validation);
        assert_eq!(holdout(&paths[..1], 0.5, 3).1.len(), 0);
        assert_eq!(holdout(&paths[..3], 0.01, 3).1.len(), 1);
        assert_eq!(holdout(&paths, 0.0, 3).1.len(), 0);
    }
}
