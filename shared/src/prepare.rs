//! Glue between the dataset on disk and the in-memory stages: loads a category's normal images
//! at the working size and its texture source, and builds the category's anomaly simulator.

use std::path::PathBuf;

use crate::data::{Category, read_rgb_resized_all};
use crate::simulate::{SimulateError, SimulationConfig, Simulator, TextureBank};

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
