//! Model selection data (never the test set): defect-free validation images (LOCO's
//! `validation/good` or held-out training images) plus anomalies simulated on them with a
//! fixed seed, scored by image and pixel AUROC.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use sha2::{Digest, Sha256};

use crate::data::{GroundTruth, GroundTruthRegion, hex, relative_name};
use crate::metrics::{EvalError, EvalOptions, EvalSample, ImageScore, evaluate};
use crate::model::{SegNet, anomaly_maps, images_tensor};
use crate::seed::rng_for;
use crate::simulate::Simulator;

const VALIDATION_STREAM: u64 = 0x7A11;

/// Splits training images into (train, validation) when a category has no validation split.
/// Each image is held out by its own seeded draw, with probability `fraction(name)` for its path
/// relative to `root`, so images added later never move an earlier image from one side to the
/// other. When any fraction is above zero and two or more images exist, at least one is held
/// out and at least one stays for training.
pub fn holdout(
    root: &Path,
    paths: &[PathBuf],
    seed: u64,
    fraction: impl Fn(&str) -> f64,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let draws: Vec<(f64, f64)> = paths
        .iter()
        .map(|path| {
            let name = relative_name(root, path);
            let mut hash = Sha256::new();
            hash.update(VALIDATION_STREAM.to_le_bytes());
            hash.update(seed.to_le_bytes());
            hash.update(name.as_bytes());
            let bits = u64::from_le_bytes(hash.finalize()[..8].try_into().expect("8 bytes"));
            (bits as f64 / u64::MAX as f64, fraction(&name))
        })
        .collect();
    let mut held: Vec<bool> = draws.iter().map(|(draw, p)| draw < p).collect();
    let lowest = |keep: &dyn Fn(usize) -> bool| {
        (0..paths.len())
            .filter(|&i| keep(i))
            .min_by(|&a, &b| draws[a].0.total_cmp(&draws[b].0))
    };
    if paths.len() > 1
        && !held.contains(&true)
        && let Some(i) = lowest(&|i| draws[i].1 > 0.0)
    {
        held[i] = true;
    }
    if held.iter().all(|h| *h)
        && let Some(i) = (0..paths.len()).max_by(|&a, &b| draws[a].0.total_cmp(&draws[b].0))
    {
        held[i] = false;
    }
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (path, held) in paths.iter().zip(held) {
        if held {
            validation.push(path.clone());
        } else {
            train.push(path.clone());
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
                let pixels: Vec<u32> = mask
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| **m > 0.5)
                    .map(|(i, _)| i as u32)
                    .collect();
                // A sample the simulation could not make visible is a normal image.
                samples.push((!pixels.is_empty(), pixels));
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

    /// Adds a labelled anomaly: an image at the set's size (channel-first, values in `[0, 1]`)
    /// and the indices of its anomalous pixels.
    pub fn add_labelled(&mut self, image: &[f32], anomalous_pixels: Vec<u32>) {
        assert_eq!(
            image.len(),
            3 * self.size * self.size,
            "an image at the set's size"
        );
        self.images.extend_from_slice(image);
        self.samples.push((true, anomalous_pixels));
    }

    /// The image at `index` (channel-first) and whether it is anomalous.
    pub fn image(&self, index: usize) -> (&[f32], bool) {
        let len = 3 * self.size * self.size;
        (
            &self.images[index * len..(index + 1) * len],
            self.samples[index].0,
        )
    }

    /// Defect-free images in the set.
    pub fn normal_images(&self) -> usize {
        self.samples
            .iter()
            .filter(|(anomalous, _)| !anomalous)
            .count()
    }

    /// Anomalies in the set (simulated and labelled).
    pub fn anomalies(&self) -> usize {
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

/// `model`'s scores on the set; a map with a non-finite score (a diverged model) is an error.
pub fn score(
    model: &SegNet,
    set: &ValidationSet,
    image_score: ImageScore,
    batch_size: usize,
    device: &Device,
) -> Result<ValidationScores, EvalError> {
    let plane = set.size * set.size;
    let mut samples = Vec::with_capacity(set.len());
    for start in (0..set.len()).step_by(batch_size.max(1)) {
        let end = (start + batch_size.max(1)).min(set.len());
        let data = set.images[start * 3 * plane..end * 3 * plane].to_vec();
        let maps = anomaly_maps(model, images_tensor(data, end - start, set.size, device));
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
                name: format!("validation sample {}", start + i),
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
    )?;
    Ok(ValidationScores {
        image_auroc: evaluation.image_auroc,
        pixel_auroc: evaluation.pixel_auroc,
        threshold: evaluation.image_f1_max.map(|f| f.threshold),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_seeded_stable_and_keeps_training_images() {
        let root = Path::new("/data/cat");
        let paths: Vec<PathBuf> = (0..200).map(|i| root.join(format!("{i:03}.png"))).collect();
        let tenth = |_: &str| 0.1;
        let (train, validation) = holdout(root, &paths, 3, tenth);
        assert_eq!(train.len() + validation.len(), 200);
        assert!(
            (10..=30).contains(&validation.len()),
            "{}",
            validation.len()
        );
        assert_eq!(holdout(root, &paths, 3, tenth).1, validation, "seeded");
        assert_ne!(holdout(root, &paths, 4, tenth).1, validation);
        // Another location of the same dataset splits the same way.
        let moved: Vec<PathBuf> = (0..200)
            .map(|i| Path::new("/elsewhere/cat").join(format!("{i:03}.png")))
            .collect();
        let names = |v: &[PathBuf]| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(&holdout(Path::new("/elsewhere/cat"), &moved, 3, tenth).1),
            names(&validation)
        );
        // Adding images moves none of the earlier ones.
        let mut more = paths.clone();
        more.extend((200..260).map(|i| root.join(format!("{i:03}.png"))));
        let (_, more_validation) = holdout(root, &more, 3, tenth);
        for p in &validation {
            assert!(more_validation.contains(p));
        }
        for p in more_validation.iter().filter(|p| paths.contains(p)) {
            assert!(validation.contains(p));
        }
        // A per-image fraction: every new image held out, none of the old.
        let (train, validation) = holdout(
            root,
            &more,
            3,
            |name: &str| {
                if name >= "200" { 1.0 } else { 0.0 }
            },
        );
        assert_eq!((train.len(), validation.len()), (200, 60));
        assert_eq!(holdout(root, &paths[..1], 3, |_: &str| 0.5).1.len(), 0);
        assert_eq!(holdout(root, &paths[..3], 3, |_: &str| 0.01).1.len(), 1);
        assert_eq!(holdout(root, &paths[..2], 3, |_: &str| 0.99).0.len(), 1);
        assert_eq!(holdout(root, &paths, 3, |_: &str| 0.0).1.len(), 0);
    }
}
