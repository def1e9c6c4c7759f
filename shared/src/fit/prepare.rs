//! The category's data for its stages: the validation split (LOCO's, or held-out training
//! images), every image loaded at the model's size, the data fingerprint, and the category's
//! anomaly simulator with its texture source.

use std::path::PathBuf;
use std::sync::Arc;

use image::RgbImage;

use crate::config::Config;
use crate::data::{Category, DataError, fingerprint, read_rgb_resized_all};
use crate::simulate::{SimulateError, SimulationConfig, Simulator, TextureBank};
use crate::train::holdout;

/// A category's images at the model's size, split into training and validation.
pub struct Prepared {
    pub train_paths: Vec<PathBuf>,
    pub validation_paths: Vec<PathBuf>,
    pub normals: Arc<[RgbImage]>,
    pub validation_normals: Vec<RgbImage>,
    /// The fingerprint of the training and validation images (as a cluster plan computes it).
    pub data_fingerprint: String,
}

/// LOCO's validation split, or held-out training images, all loaded at the model's size.
pub fn prepare(category: &Category, config: &Config) -> Result<Prepared, DataError> {
    let (threads, size) = (config.threads(), config.model.image_size);
    let (train_paths, validation_paths) = if category.validation.is_empty() {
        holdout(
            &category.train,
            config.validation.holdout_fraction,
            config.seed,
        )
    } else {
        (category.train.clone(), category.validation.clone())
    };
    let normals = read_rgb_resized_all(&train_paths, size, size, threads)?.into();
    let validation_normals = read_rgb_resized_all(&validation_paths, size, size, threads)?;
    let data_fingerprint = fingerprint(&category.root, &category.training_images(), threads)?;
    Ok(Prepared {
        train_paths,
        validation_paths,
        normals,
        validation_normals,
        data_fingerprint,
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
