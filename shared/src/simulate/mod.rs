//! Anomaly simulation (Eq. 1 of the paper, docs/method.md §4): Perlin masks, foreground masks, the structural branch
//! (augmented textures, self-shuffled tiles), the logical branch (another rotated normal
//! image), blending, and the threaded batch producer. Works on images in memory; must not read
//! datasets from disk (the caller loads them) or know about models.

mod augment;
mod config;
mod foreground;
mod perlin;
mod producer;
mod simulator;
mod texture;

pub use augment::Augmentation;
pub use config::{
    CategoryOverride, ForegroundConfig, JitterConfig, MIN_VISIBLE_CHANGE, PerlinConfig, Polarity,
    SimulationConfig, TransparencyConfig,
};
pub use foreground::{foreground_mask, otsu_threshold, resolve_foreground};
pub use perlin::{perlin_field, perlin_mask};
pub use producer::{Batch, EpochOrder, ProducerConfig, batch_producer, produce_batch};
pub use simulator::{Branch, SampleInfo, Simulator};
pub use texture::TextureBank;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{path}: no texture images found (png, jpg, bmp, tif)")]
    NoTextures { path: PathBuf },
    #[error("no normal images to simulate anomalies on")]
    NoNormalImages,
    #[error("images must share one size: expected {expected:?}, found {found:?}")]
    SizeMismatch {
        expected: (u32, u32),
        found: (u32, u32),
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("invalid config: {0}")]
    Config(#[from] crate::ranges::InvalidField),
}
