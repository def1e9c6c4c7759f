//! A trained model: `model.json` (the card: format, configuration, how it was trained and
//! selected, its decision threshold) and `weights.ckpt` (the SegNet weights in a checksummed
//! checkpoint), in a folder or as bytes for the object store. A model of another format version
//! or with damaged weights is refused.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::Detector;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointMeta};
use crate::metrics::ImageScore;
use crate::model::{ModelConfig, SegNet};
use crate::simulate::ForegroundConfig;
use crate::store::layout::{MODEL_CARD_FILE, MODEL_WEIGHTS_FILE};
use crate::store::limits;

/// Bumped whenever a model written before cannot be read the same way.
pub const MODEL_FORMAT_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSummary {
    pub seed: u64,
    pub pretrain_steps: u64,
    pub segnet_steps: u64,
    /// The SegNet step whose weights were kept (best validation score).
    pub selected_step: u64,
    pub training_images: usize,
    pub validation_images: usize,
    /// The fingerprint of the training and validation images (paths, sizes, contents).
    pub data_fingerprint: String,
    /// Where simulated anomalies were allowed to land, `auto` decided (absent in cards written
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreground: Option<ForegroundConfig>,
}

/// What model selection scored on: the validation images plus anomalies simulated on them from
/// a fixed seed. Two models are comparable only on sets with the same fingerprint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSet {
    /// SHA-256 of the set's images and masks as scored.
    pub fingerprint: String,
    pub normal_images: usize,
    /// Anomalies simulated on the normal images (from `seed`) plus labelled ones.
    pub anomalies: usize,
    /// Labelled anomalies among them (the category's `validation/<defect>/` images).
    pub labelled_anomalies: usize,
    pub seed: u64,
}

/// The selected model's scores on the evaluation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionScores {
    pub image_auroc: Option<f64>,
    pub pixel_auroc: Option<f64>,
    /// The selection score (the mean of both AUROCs).
    pub score: f64,
    pub set: EvaluationSet,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub format: u32,
    pub slsg_version: String,
    pub category: String,
    pub model: ModelConfig,
    pub image_score: ImageScore,
    /// Image scores at or above this are reported anomalous (F1-max on the validation set).
    pub decision_threshold: Option<f64>,
    pub training: TrainingSummary,
    /// How the model was selected; `None` when the category had no image to spare.
    pub validation: Option<SelectionScores>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: not an slsg model card: {message}")]
    Card { origin: String, message: String },
    #[error(
        "{origin}: model format {found} was written by slsg {version}; this slsg reads format {MODEL_FORMAT_VERSION} — retrain, or predict with that version"
    )]
    Format {
        origin: String,
        found: u32,
        version: String,
    },
    #[error(transparent)]
    Weights(#[from] CheckpointError),
}

/// The two files of a model, as bytes.
pub struct ModelFiles {
    pub card: Vec<u8>,
    pub weights: Vec<u8>,
}

pub fn encode_model(model: &SegNet, card: &ModelCard) -> ModelFiles {
    let mut checkpoint = Checkpoint::new(CheckpointMeta {
        stage: "model".into(),
        step: card.training.selected_step,
        total_steps: card.training.segnet_steps,
        seed: card.training.seed,
        extra: Default::default(),
    });
    checkpoint.put_module("segnet", model);
    let card = serde_json::to_string_pretty(card).expect("the card serialises") + "\n";
    ModelFiles {
        card: card.into_bytes(),
        weights: checkpoint.encode(),
    }
}

/// Reads a model from its two files' bytes; the origins name them in errors.
pub fn decode_model(
    card: &[u8],
    card_origin: &str,
    weights: &[u8],
    weights_origin: &str,
    device: &Device,
) -> Result<Detector, ModelError> {
    let invalid = |message: String| ModelError::Card {
        origin: card_origin.to_string(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(card).map_err(|e| invalid(e.to_string()))?;
    let found = value
        .get("format")
        .and_then(|f| f.as_u64())
        .ok_or_else(|| invalid("no `format` field".into()))?;
    if found != MODEL_FORMAT_VERSION as u64 {
        let version = value
            .get("slsg_version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string();
        return Err(ModelError::Format {
            origin: card_origin.to_string(),
            found: found as u32,
            version,
        });
    }
    let card: ModelCard = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    card.model
        .validate("model")
        .map_err(|e| invalid(e.to_string()))?;
    let checkpoint = Checkpoint::decode(weights, weights_origin)?;
    let model =
        checkpoint.load_module("segnet", card.model.segnet().init(device), weights_origin)?;
    Ok(Detector::new(model, card, device.clone()))
}

/// Writes `model` and its card into `dir`.
pub fn save_model(dir: &Path, model: &SegNet, card: &ModelCard) -> Result<(), ModelError> {
    let io = |path: PathBuf| move |source| ModelError::Io { path, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let files = encode_model(model, card);
    for (name, bytes) in [
        (MODEL_WEIGHTS_FILE, files.weights),
        (MODEL_CARD_FILE, files.card),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io(path.clone()))?;
    }
    Ok(())
}

/// Reads a model folder written by [`save_model`].
pub fn load_model(dir: &Path, device: &Device) -> Result<Detector, ModelError> {
    let read = |name: &str| {
        let path = dir.join(name);
        limits::read_file(&path, limits::for_name(name))
            .map(|bytes| (bytes, path.display().to_string()))
            .map_err(|source| ModelError::Io { path, source })
    };
    let (card, card_origin) = read(MODEL_CARD_FILE)?;
    let (weights, weights_origin) = read(MODEL_WEIGHTS_FILE)?;
    decode_model(&card, &card_origin, &weights, &weights_origin, device)
}
