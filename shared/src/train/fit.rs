//! Both stages for one category, as `slsg fit` and the cluster's workers run them: split off the
//! validation images, load everything at the model's size, pre-train GPT-Net, train SegNet on
//! its encoder, and describe the selected model in a card.

use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::pretrain::{PretrainInputs, pretrain};
use super::progress::Progress;
use super::segment::{SegmentInputs, train_segnet};
use super::validation::{ValidationSet, holdout};
use super::{CheckpointStore, TrainError};
use crate::config::Config;
use crate::data::{Category, read_rgb_resized_all};
use crate::infer::{MODEL_FORMAT_VERSION, ModelCard, TrainingSummary};
use crate::model::SegNet;
use crate::prepare::{SimulatorInputs, texture_bank};
use crate::simulate::Simulator;

/// A trained category: the selected SegNet and its card.
pub struct Fit<B: Backend> {
    pub model: SegNet<B>,
    pub card: ModelCard,
}

pub fn fit_category<B: AutodiffBackend>(
    category: &Category,
    config: &Config,
    device: &B::Device,
    store: &mut dyn CheckpointStore,
    progress: &mut dyn Progress,
) -> Result<Fit<B::InnerBackend>, TrainError> {
    let threads = config.threads();
    let size = config.model.image_size;
    let (train_paths, validation_paths) = if category.validation.is_empty() {
        holdout(
            &category.train,
            config.validation.holdout_fraction,
            config.seed,
        )
    } else {
        (category.train.clone(), category.validation.clone())
    };
    let normals: Arc<[image::RgbImage]> =
        read_rgb_resized_all(&train_paths, size, size, threads)?.into();
    let validation_normals = read_rgb_resized_all(&validation_paths, size, size, threads)?;

    let pretrain_inputs = PretrainInputs {
        model: config.model.clone(),
        config: config.pretrain.clone(),
        normals: normals.clone(),
        seed: config.seed,
        threads,
    };
    let generator = pretrain::<B>(&pretrain_inputs, device, store, progress)?;

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
        normals.to_vec(),
        textures.clone(),
    )?);
    let validation_set = if validation_normals.is_empty() {
        None
    } else {
        let validation_simulator = Simulator::new(simulation, validation_normals, textures)?;
        Some(ValidationSet::build(
            &validation_simulator,
            config.validation.anomalies_per_image,
            config.seed,
        ))
    };
    let segment_inputs = SegmentInputs {
        model: config.model.clone(),
        config: config.segnet.clone(),
        validation: config.validation.clone(),
        simulator,
        validation_set,
        seed: config.seed,
        threads,
    };
    let outcome = train_segnet::<B>(&segment_inputs, generator.encoder, device, store, progress)?;
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
            pretrain_steps: config.pretrain.total_steps(train_paths.len()),
            segnet_steps: outcome.steps,
            selected_step: outcome.best_step,
            validation_image_auroc: validation.and_then(|v| v.image_auroc),
            validation_pixel_auroc: validation.and_then(|v| v.pixel_auroc),
            training_images: train_paths.len(),
            validation_images: validation_paths.len(),
        },
    };
    Ok(Fit {
        model: outcome.model,
        card,
    })
}
