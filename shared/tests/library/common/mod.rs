//! Helpers the library's integration tests share: a tiny model config and a card for it,
//! synthetic normal images, the default anomaly simulation on them, a checkpoint store in a
//! temporary folder, and a module's tensors as plain numbers.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use std::sync::Arc;

use image::RgbImage;
use slsg::checkpoint::StoreCheckpoints;
use slsg::infer::{MODEL_FORMAT_VERSION, ModelCard, TrainingSummary};
use slsg::metrics::ImageScore;
use slsg::model::ModelConfig;
use slsg::simulate::{SimulationConfig, Simulator, TextureBank};
use slsg::store::layout::StageKeys;
use slsg::store::{BlockingStore, Store};

/// Checkpoints in a local store in `dir`, as a stage of `slsg fit` keeps them.
pub fn checkpoints(dir: &tempfile::TempDir, runtime: &tokio::runtime::Runtime) -> StoreCheckpoints {
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    StoreCheckpoints::new(
        BlockingStore::new(store, runtime.handle().clone()),
        StageKeys::fit_stage("stage").unwrap(),
    )
}

pub fn model() -> ModelConfig {
    ModelConfig {
        image_size: 32,
        width: 0.125,
        sg_skip_channels: 8,
        aux_hidden: 8,
        ..ModelConfig::default()
    }
}

/// A card for `model` scored by its top-100 mean, with a decision threshold of 0.5.
pub fn card(model: ModelConfig) -> ModelCard {
    ModelCard {
        format: MODEL_FORMAT_VERSION,
        slsg_version: "test".into(),
        category: "test".into(),
        model,
        image_score: ImageScore::Top100,
        decision_threshold: Some(0.5),
        training: TrainingSummary {
            seed: 4,
            pretrain_steps: 0,
            segnet_steps: 0,
            selected_step: 0,
            training_images: 4,
            validation_images: 0,
            data_fingerprint: "test".into(),
            foreground: None,
        },
        validation: None,
    }
}

pub fn normals(count: usize) -> Vec<RgbImage> {
    (0..count)
        .map(|i| {
            RgbImage::from_fn(32, 32, |x, y| {
                image::Rgb([
                    (x * 7 + i as u32 * 13) as u8,
                    (y * 5) as u8,
                    ((x + y) * 3) as u8,
                ])
            })
        })
        .collect()
}

/// The default anomaly simulation on `count` of [`normals`], with procedural textures.
pub fn simulator(count: usize) -> Arc<Simulator> {
    let textures = TextureBank::procedural(32, 32, 4, 1);
    Arc::new(Simulator::new(SimulationConfig::default(), normals(count), textures).unwrap())
}

/// Every float tensor of a module (parameters and running statistics), in visiting order.
pub fn tensors<M: Module>(module: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().try_into_vec_as::<f32>().unwrap());
        }
    }
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    collect.0
}
