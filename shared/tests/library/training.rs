//! The training loops: checkpoint → resume continues the same schedule (a run stopped half-way
//! and resumed ends with the same parameters and running statistics as an uninterrupted run of
//! the same length), and a model gone non-finite stops at the step it happened, named.

use std::sync::Arc;

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use slsg::backend::cpu_device;
use slsg::config::{PretrainConfig, SegnetConfig};
use slsg::metrics::ImageScore;
use slsg::model::init_seeded;
use slsg::simulate::{SimulationConfig, Simulator, TextureBank};
use slsg::train::{
    PretrainInputs, Progress, SegmentInputs, SegnetStart, Silent, TrainError, TrainEvent,
    ValidationSet, pretrain, train_segnet,
};

use crate::common;

use common::{checkpoints, model, normals, simulator, tensors};

/// Stops training once a given step has been reported.
struct StopAt {
    step: u64,
    reached: u64,
}

impl Progress for StopAt {
    fn on_event(&mut self, event: &TrainEvent) {
        if let TrainEvent::Step(report) = event {
            self.reached = report.step;
        }
    }

    fn stop_requested(&self) -> bool {
        self.reached >= self.step
    }
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

#[test]
fn pretraining_resumes_where_it_stopped() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let device = cpu_device().autodiff();
    let inputs = PretrainInputs {
        model: model(),
        config: PretrainConfig {
            max_steps: Some(6),
            batch_size: 2,
            checkpoint_every: 4,
            log_every: 1,
            ..Default::default()
        },
        normals: Arc::from(normals(4)),
        seed: 9,
        threads: 2,
    };
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = pretrain(
        &inputs,
        &device,
        &mut checkpoints(&straight_dir, &runtime),
        &mut Silent,
    )
    .unwrap();

    let resumed_dir = tempfile::tempdir().unwrap();
    let mut store = checkpoints(&resumed_dir, &runtime);
    let stopped = pretrain(
        &inputs,
        &device,
        &mut store,
        &mut StopAt {
            step: 3,
            reached: 0,
        },
    );
    assert!(
        matches!(stopped, Err(TrainError::Interrupted { step: 3, .. })),
        "{:?}",
        stopped.err()
    );
    let resumed = pretrain(&inputs, &device, &mut store, &mut Silent).unwrap();

    let difference = max_difference(&tensors(&straight.valid()), &tensors(&resumed.valid()));
    assert!(difference <= 1e-6, "parameters differ by {difference}");
}

#[test]
fn segnet_training_resumes_where_it_stopped() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let device = cpu_device().autodiff();
    let config = SimulationConfig::default();
    let textures = TextureBank::procedural(32, 32, 4, 1);
    let simulator = Arc::new(Simulator::new(config.clone(), normals(4), textures.clone()).unwrap());
    let validation = Simulator::new(config, normals(2), textures).unwrap();
    let inputs = || SegmentInputs {
        model: model(),
        config: SegnetConfig {
            steps: 6,
            normal_per_batch: 2,
            simulated_per_batch: 2,
            checkpoint_every: 4,
            validate_every: 2,
            log_every: 1,
            ..Default::default()
        },
        image_score: ImageScore::Top100,
        simulator: simulator.clone(),
        validation_set: Some(ValidationSet::build(&validation, 1, 5)),
        seed: 4,
        threads: 2,
        batch_size: 4,
    };
    let encoder = init_seeded(&model().encoder(), 1, &device);
    let encoder = || encoder.clone();

    let straight_dir = tempfile::tempdir().unwrap();
    let straight = train_segnet(
        &inputs(),
        SegnetStart::Encoder(Box::new(encoder())),
        &device,
        &mut checkpoints(&straight_dir, &runtime),
        &mut Silent,
    )
    .unwrap();

    let resumed_dir = tempfile::tempdir().unwrap();
    let mut store = checkpoints(&resumed_dir, &runtime);
    let stopped = train_segnet(
        &inputs(),
        SegnetStart::Encoder(Box::new(encoder())),
        &device,
        &mut store,
        &mut StopAt {
            step: 3,
            reached: 0,
        },
    );
    assert!(
        matches!(stopped, Err(TrainError::Interrupted { step: 3, .. })),
        "{:?}",
        stopped.err()
    );
    // The encoder passed in is ignored: the checkpoint's is used.
    let resumed = train_segnet(
        &inputs(),
        SegnetStart::Encoder(Box::new(encoder())),
        &device,
        &mut store,
        &mut Silent,
    )
    .unwrap();

    assert_eq!(
        (straight.steps, straight.best_step),
        (resumed.steps, resumed.best_step)
    );
    let difference = max_difference(&tensors(&straight.model), &tensors(&resumed.model));
    assert!(difference <= 1e-6, "parameters differ by {difference}");
}

/// Every weight NaN: the state a diverged run leaves behind.
struct Poison;

impl ModuleMapper for Poison {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| t.mul_scalar(f32::NAN))
    }
}

#[test]
fn fine_tuning_a_diverged_model_stops_at_its_first_step() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let device = cpu_device().autodiff();
    let simulator = simulator(4);
    let inputs = SegmentInputs {
        model: model(),
        config: SegnetConfig {
            steps: 50,
            normal_per_batch: 2,
            simulated_per_batch: 2,
            log_every: 25,
            ..Default::default()
        },
        image_score: ImageScore::Top100,
        simulator,
        validation_set: None,
        seed: 4,
        threads: 2,
        batch_size: 4,
    };
    let diverged = init_seeded(&model().segnet(), 1, &device).map(&mut Poison);
    let dir = tempfile::tempdir().unwrap();
    let trained = train_segnet(
        &inputs,
        SegnetStart::Model(Box::new(diverged)),
        &device,
        &mut checkpoints(&dir, &runtime),
        &mut Silent,
    );
    match trained {
        Err(e @ TrainError::NonFinite { step: 1, .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("step 1") && message.contains("diverged"),
                "{message}"
            );
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a NaN model trained to the end"),
    }
}
