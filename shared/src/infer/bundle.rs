//! A trained model on disk: `model.json` (the card: format, configuration, how it was trained,
//! its decision threshold) and `weights.ckpt` (the SegNet weights in a checksummed checkpoint).
//! A folder from another format version or with damaged weights is refused.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::Detector;
use crate::metrics::ImageScore;
use crate::model::{ModelConfig, SegNet};
use crate::train::{Checkpoint, CheckpointError, CheckpointMeta};

/// Bumped whenever a model folder written before cannot be read the same way.
pub const MODEL_FORMAT_VERSION: u32 = 1;
const CARD: &str = "model.json";
const WEIGHTS: &str = "weights.ckpt";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub seed: u64,
    pub pretrain_steps: u64,
    pub segnet_steps: u64,
    /// The SegNet step whose weights were kept (best validation score).
    pub selected_step: u64,
    pub validation_image_auroc: Option<f64>,
    pub validation_pixel_auroc: Option<f64>,
    pub training_images: usize,
    pub validation_images: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: u32,
    pub slsg_version: String,
    pub category: String,
    pub model: ModelConfig,
    pub image_score: ImageScore,
    /// Image scores at or above this are reported anomalous (F1-max on the validation set).
    pub decision_threshold: Option<f64>,
    pub training: TrainingSummary,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an slsg model card: {message}")]
    Card { path: PathBuf, message: String },
    #[error(
        "{path}: model format {found} was written by slsg {version}; this slsg reads format {MODEL_FORMAT_VERSION} — retrain, or predict with that version"
    )]
    Format {
        path: PathBuf,
        found: u32,
        version: String,
    },
    #[error(transparent)]
    Weights(#[from] CheckpointError),
}

/// Writes `model` and its card into `dir`.
pub fn save_model<B: Backend>(
    dir: &Path,
    model: &SegNet<B>,
    card: &ModelCard,
) -> Result<(), ModelError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut checkpoint = Checkpoint::new(CheckpointMeta {
        stage: "model".into(),
        step: card.training.selected_step,
        total_steps: card.training.segnet_steps,
        seed: card.training.seed,
        extra: Default::default(),
    });
    checkpoint.put_module::<B, _>("segnet", model);
    let weights = dir.join(WEIGHTS);
    std::fs::write(&weights, checkpoint.encode()).map_err(io(&weights))?;
    let card_path = dir.join(CARD);
    let text = serde_json::to_string_pretty(card).expect("the card serialises");
    std::fs::write(&card_path, text + "\n").map_err(io(&card_path))
}

/// Reads a model folder written by [`save_model`].
pub fn load_model<B: Backend>(dir: &Path, device: &B::Device) -> Result<Detector<B>, ModelError> {
    let card_path = dir.join(CARD);
    let text = std::fs::read_to_string(&card_path).map_err(|source| ModelError::Io {
        path: card_path.clone(),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Card {
        path: card_path.clone(),
        message: e.to_string(),
    })?;
    let found = value
        .get("format")
        .and_then(|f| f.as_u64())
        .ok_or_else(|| ModelError::Card {
            path: card_path.clone(),
            message: "no `format` field".into(),
        })?;
    if found != MODEL_FORMAT_VERSION as u64 {
        let version = value
            .get("slsg_version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string();
        return Err(ModelError::Format {
            path: card_path,
            found: found as u32,
            version,
        });
    }
    let card: ModelCard = serde_json::from_value(value).map_err(|e| ModelError::Card {
        path: card_path.clone(),
        message: e.to_string(),
    })?;
    let weights_path = dir.join(WEIGHTS);
    let bytes = std::fs::read(&weights_path).map_err(|source| ModelError::Io {
        path: weights_path.clone(),
        source,
    })?;
    let origin = weights_path.display().to_string();
    let checkpoint = Checkpoint::decode(&bytes, &origin)?;
    let model = checkpoint.load_module(
        "segnet",
        card.model.segnet().init::<B>(device),
        device,
        &origin,
    )?;
    Ok(Detector::new(model, card, device.clone()))
}
