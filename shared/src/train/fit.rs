//! Both stages for one category, as `slsg fit` runs them in one process and the cluster's
//! workers run them as two jobs: split off the validation images, load everything at the
//! model's size, pre-train GPT-Net, train SegNet on its encoder, and describe the selected
//! model in a card.

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use image::RgbImage;

use super::pretrain::{PretrainInputs, pretrain};
use super::progress::Progress;
use super::segment::{SegmentInputs, train_segnet};
use super::validation::{ValidationSet, holdout};
use super::{CheckpointStore, TrainError};
use crate::config::Config;
use crate::data::{Category, read_rgb_resized_all};
use crate::infer::{MODEL_FORMAT_VERSION, ModelCard, TrainingSummary};
use crate::model::{Encoder, SegNet};
use crate::prepare::{SimulatorInputs, texture_bank};
use crate::simulate::Simulator;

/// A trained category: the selected SegNet and its card.
pub struct Fit<B: Backend> {
    pub model: SegNet<B>,
    pub card: ModelCard,
}

/// A category's images at the model's size, split into training and validation.
pub struct Prepared {
    pub train_paths: Vec<PathBuf>,
    pub validation_paths: Vec<PathBuf>,
    pub normals: Arc<[RgbImage]>,
    pub validation_normals: Vec<RgbImage>,
}

/// LOCO's validation split, or held-out training images, all loaded at the model's size.
pub fn prepare(category: &Category, config: &Config) -> Result<Prepared, TrainError> {
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
    Ok(Prepared {
        train_paths,
        validation_paths,
        normals,
        validation_normals,
    })
}

/// Stage 1: GPT-Net pre-training; returns its encoder.
pub fn pretrain_stage<B: AutodiffBackend>(
    prepared: &Prepared,
    config: &Config,
    device: &B::Device,
    store: &mut dyn CheckpointStore,
    progress: &mut dyn Progress,
) -> Result<Encoder<B>, TrainError> {
    let inputs = PretrainInputs {
        model: config.model.clone(),
        config: config.pretrain.clone(),
        normals: prepared.normals.clone(),
        seed: config.seed,
        threads: config.threads(),
    };
    Ok(pretrain::<B>(&inputs, device, store, progress)?.encoder)
}

/// Stage 2: SegNet on `encoder`, model selection, the card.
pub fn segnet_stage<B: AutodiffBackend>(
    category: &Category,
    prepared: Prepared,
    config: &Config,
    encoder: Encoder<B>,
    device: &B::Device,
    store: &mut dyn CheckpointStore,
    progress: &mut dyn Progress,
) -> Result<Fit<B::InnerBackend>, TrainError> {
    let (threads, size) = (config.threads(), config.model.image_size);
    let simulation = config.simulation.for_category(&category.name);
    let textures = texture_bank(
        &simulation,
        &SimulatorInputs {
            size,
            seed: config.seed,
            threads,
            textures: None,
        },
    )?;
    let simulator = Arc::new(Simulator::new(
        simulation.clone(),
        prepared.normals.to_vec(),
        textures.clone(),
    )?);
    let validation_set = if prepared.validation_normals.is_empty() {
        None
    } else {
        let validation_simulator =
            Simulator::new(simulation, prepared.validation_normals, textures)?;
        Some(ValidationSet::build(
            &validation_simulator,
            config.validation.anomalies_per_image,
            config.seed,
        ))
    };
    let inputs = SegmentInputs {
        model: config.model.clone(),
        config: config.segnet.clone(),
        validation: config.validation.clone(),
        simulator,
        validation_set,
        seed: config.seed,
        threads,
    };
    let outcome = train_segnet::<B>(&inputs, encoder, device, store, progress)?;
    let validation = outcome.validation.as_ref();
    let card = ModelCard {
        format: MODEL_FORMAT_VERSION,
        slsg_version: env!("CARGO_PKG_VERSION").to_string(),
        category: category.name.clone(),
        model: config.model.clone(),
        image_score: config.inference.image_score,
        decision_threshold: validation.and_then(|v| v.threshold),
        training: TrainingSummary {
            seed: config.seed,
            pretrain_steps: config.pretrain.total_steps(prepared.train_paths.len()),
            segnet_steps: outcome.steps,
            selected_step: outcome.best_step,
            validation_image_auroc: validation.and_then(|v| v.image_auroc),
            validation_pixel_auroc: validation.and_then(|v| v.pixel_auroc),
            training_images: prepared.train_paths.len(),
            validation_images: prepared.validation_paths.len(),
        },
    };
    Ok(Fit {
        model: outcome.model,
        card,
    })
}

/// Both stages in this process.
pub fn fit_category<B: AutodiffBackend>(
    category: &Category,
    config: &Config,
    device: &B::Device,
    store: &mut dyn CheckpointStore,
    progress: &mut dyn Progress,
) -> Result<Fit<B::InnerBackend>, TrainError> {
    let prepared = prepare(category, config)?;
    let encoder = pretrain_stage::<B>(&prepared, config, device, store, progress)?;
    segnet_stage::<B>(category, prepared, config, encoder, device, store, progress)
}
