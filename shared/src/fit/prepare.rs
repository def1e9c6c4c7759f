//! The category's data for its stages: the validation split (LOCO's, held-out training images,
//! and a share of newly arrived images when retraining), every image loaded at the model's size,
//! the labelled validation anomalies, the manifest of the normal images, and the category's
//! anomaly simulator with its texture source.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::data::{
    Category, DataError, GroundTruth, Manifest, TestImage, read_rgb_resized, read_rgb_resized_all,
    relative_name,
};
use crate::raster::write_chw;
use crate::simulate::{SimulateError, SimulationConfig, Simulator, TextureBank};
use crate::train::holdout;

/// What a retraining run's jobs know about the model in production.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retraining {
    /// The version `current` named when the run was planned; the gate scores it too.
    pub current: String,
    /// Normal images (paths relative to the category folder) that arrived since it was trained.
    pub new_images: Vec<String>,
    /// The share of the new training images held out for validation and the gate.
    pub new_image_holdout: f64,
    /// Fine-tune the current SegNet from its weights instead of training on a new encoder.
    pub fine_tune: bool,
}

/// A labelled anomaly at the model's size.
pub struct LabelledAnomaly {
    /// Channel-first, values in `[0, 1]`.
    pub image: Vec<f32>,
    /// Indices of its anomalous pixels.
    pub pixels: Vec<u32>,
}

/// A category's images at the model's size, split into training and validation.
pub struct Prepared {
    pub train_paths: Vec<PathBuf>,
    pub validation_paths: Vec<PathBuf>,
    pub normals: Arc<[RgbImage]>,
    pub validation_normals: Vec<RgbImage>,
    /// Indices into `validation_normals` of the newly arrived images (retraining only).
    pub new_validation: Vec<usize>,
    pub labelled_anomalies: Vec<LabelledAnomaly>,
    /// The normal images (training and validation) with their content hashes.
    pub manifest: Manifest,
}

/// The validation split, all loaded at the model's size. Without a validation split of its own
/// a category holds out `validation.holdout_fraction` of its training images; a retraining run
/// also holds out `new_image_holdout` of the newly arrived ones.
pub fn prepare(
    category: &Category,
    config: &Config,
    retraining: Option<&Retraining>,
) -> Result<Prepared, DataError> {
    let (threads, size) = (config.threads(), config.model.image_size);
    let new: BTreeSet<&str> = retraining
        .map(|r| r.new_images.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let new_fraction = retraining.map_or(0.0, |r| r.new_image_holdout);
    let old_fraction = if category.validation.is_empty() {
        config.validation.holdout_fraction
    } else {
        0.0
    };
    let (train_paths, held) = holdout(&category.root, &category.train, config.seed, |name| {
        if new.contains(name) {
            new_fraction
        } else {
            old_fraction
        }
    });
    let validation_paths: Vec<PathBuf> = category.validation.iter().cloned().chain(held).collect();
    let new_validation = validation_paths
        .iter()
        .enumerate()
        .filter(|(_, path)| new.contains(relative_name(&category.root, path).as_str()))
        .map(|(i, _)| i)
        .collect();
    let normals = read_rgb_resized_all(&train_paths, size, size, threads)?.into();
    let validation_normals = read_rgb_resized_all(&validation_paths, size, size, threads)?;
    let labelled_anomalies = category
        .validation_anomalies
        .iter()
        .map(|test| labelled_anomaly(category, test, size))
        .collect::<Result<_, _>>()?;
    let manifest = Manifest::read(&category.root, &category.training_images(), threads)?;
    Ok(Prepared {
        train_paths,
        validation_paths,
        normals,
        validation_normals,
        new_validation,
        labelled_anomalies,
        manifest,
    })
}

/// A labelled validation anomaly at `size`: the image resized, and a pixel anomalous where any
/// ground-truth pixel it covers is (so thin defects survive the down-sampling).
fn labelled_anomaly(
    category: &Category,
    test: &TestImage,
    size: u32,
) -> Result<LabelledAnomaly, DataError> {
    let resized = read_rgb_resized(&test.path, size, size)?;
    let mut image = vec![0.0f32; 3 * (size * size) as usize];
    write_chw(&resized, &mut image);
    let truth = GroundTruth::read(test, category.defects.as_ref())?.union_mask();
    let (width, height) = (truth.width().max(1) as u64, truth.height().max(1) as u64);
    let mut anomalous = BTreeSet::new();
    for index in truth.set_indices() {
        let (x, y) = (index as u64 % width, index as u64 / width);
        let (tx, ty) = (x * size as u64 / width, y * size as u64 / height);
        anomalous.insert((ty * size as u64 + tx) as u32);
    }
    Ok(LabelledAnomaly {
        image,
        pixels: anomalous.into_iter().collect(),
    })
}

/// What a category's simulator needs besides its images.
#[derive(Clone, Debug)]
pub struct SimulatorInputs {
    /// Side of the square working resolution.
    pub size: u32,
    pub seed: u64,
    pub threads: usize,
    /// Overrides `config.textures` when set.
    pub textures: Option<PathBuf>,
}

/// The texture bank for a config: the configured folder, or procedural textures.
pub fn texture_bank(
    config: &SimulationConfig,
    inputs: &SimulatorInputs,
) -> Result<TextureBank, SimulateError> {
    match inputs.textures.as_ref().or(config.textures.as_ref()) {
        Some(dir) => TextureBank::from_folder(
            dir,
            inputs.size,
            inputs.size,
            config.max_textures,
            inputs.seed,
            inputs.threads,
        ),
        None => Ok(TextureBank::procedural(
            inputs.size,
            inputs.size,
            config.procedural_textures,
            inputs.seed,
        )),
    }
}

/// Loads `category`'s training images and builds its simulator with the category's overrides.
pub fn category_simulator(
    category: &Category,
    config: &SimulationConfig,
    inputs: &SimulatorInputs,
) -> Result<Simulator, SimulateError> {
    let config = config.for_category(&category.name);
    let normals = read_rgb_resized_all(&category.train, inputs.size, inputs.size, inputs.threads)?;
    let textures = texture_bank(&config, inputs)?;
    Simulator::new(config, normals, textures)
}
