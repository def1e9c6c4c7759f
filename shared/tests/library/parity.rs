//! Burn's wgpu backend against Flex, from the same seed. The wgpu backend runs the code CUDA
//! runs too (CubeCL's kernels, fusion, autotuning and the autodiff of every op), so a gap found
//! here is a gap on the GPU: every network forward and backward, every loss, the anomaly maps,
//! the first steps of both training stages, and models moved between the backends. Needs a
//! Vulkan adapter; CI runs these on Mesa's lavapipe, a Vulkan driver on the CPU.
//!
//! Sizes and batches are those of the GPU checks' tiny config (`scripts/gpu-tiny.toml`), so the
//! kernels compiled and tuned here are the ones the GPU check and the end-to-end tests use, and
//! one tuning cache (`<target>/tmp/gpu-cache/gpu`, which `.ci/run` fills first) serves all.
//!
//! Tolerances are relative to the largest magnitude of the Flex value: the two backends sum in
//! other orders (tiled matrix products, tree reductions), so float32 results agree to about
//! 1e-6 per operation and drift further through deep networks and their gradients.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;
use common::{checkpoints, normals, simulator};
use rand::RngExt;
use slsg::backend::{AutotuneLevel, GpuSettings, configure_gpu, cpu_device};
use slsg::config::Config;
use slsg::config::{PretrainConfig, SegnetConfig};
use slsg::infer::{Detector, decode_model, encode_model};
use slsg::metrics::ImageScore;
use slsg::model::loss::{focal, l1, l2, lsgan_discriminator, lsgan_generator};
use slsg::model::{
    AuxHeadConfig, DiscriminatorConfig, EncoderConfig, GptNetConfig, ModelConfig, NetworkConfig,
    SegNet, SegNetConfig, SgBlockConfig, anomaly_maps, images_tensor, init_seeded,
};
use slsg::train::{
    PretrainInputs, Progress, SegmentInputs, SegnetStart, Stage, TrainEvent, pretrain, train_segnet,
};

/// The GPU checks' tiny config.
fn tiny() -> Config {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu-tiny.toml");
    let config = Config::load_with(Some(&file), &[]).unwrap();
    assert_eq!(
        config.model.image_size, 32,
        "the shared test images are 32 px, as the tiny config was"
    );
    config
}

fn model() -> ModelConfig {
    tiny().model
}

/// Two images of the tiny model's size: the batch of every stage in the tiny config.
fn input() -> [usize; 4] {
    let size = tiny().model.image_size as usize;
    [tiny().pretrain.batch_size, 3, size, size]
}

/// Flex, for training.
fn flex() -> Device {
    cpu_device().autodiff()
}

/// The wgpu device every test uses (for training), with the settings a worker would apply and
/// the tuning cache the GPU check leaves in CI.
fn gpu() -> Device {
    configure_gpu(&GpuSettings {
        autotune: AutotuneLevel::Minimal,
        cache: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gpu-cache/gpu"),
    })
    .unwrap();
    slsg::backend::Device::Wgpu(None)
        .training()
        .unwrap_or_else(|e| {
            panic!(
                "{e}: the parity tests need a Vulkan adapter (`.ci/run` installs Mesa's lavapipe)"
            )
        })
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.try_into_vec_as::<f32>().unwrap()
}

fn uniform(n: usize, stream: u64) -> Vec<f32> {
    let mut rng = slsg::seed::rng_for(17, &[stream]);
    (0..n).map(|_| rng.random_range(0.0f32..1.0)).collect()
}

fn signed(n: usize, stream: u64) -> Vec<f32> {
    uniform(n, stream)
        .into_iter()
        .map(|v| 2.0 * v - 1.0)
        .collect()
}

fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn largest(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// `|wgpu − Flex|`'s maximum over the largest `|Flex|` value, or over `floor` where that is
/// larger: a value that is zero in exact arithmetic (the gradient of a bias that a softmax
/// cancels) is rounding noise on both backends, compared against its neighbours' scale.
fn relative_difference(flex: &[f32], gpu: &[f32], floor: f32) -> f32 {
    let worst = flex
        .iter()
        .zip(gpu)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    worst / largest(flex).max(floor).max(1e-30)
}

fn assert_close(what: &str, flex: &[f32], gpu: &[f32], tolerance: f32) {
    assert_close_above(what, flex, gpu, tolerance, 0.0);
}

fn assert_close_above(what: &str, flex: &[f32], gpu: &[f32], tolerance: f32, floor: f32) {
    assert_eq!(flex.len(), gpu.len(), "{what}: sizes differ");
    assert!(
        gpu.iter().all(|v| v.is_finite()),
        "{what}: wgpu gives non-finite values where Flex gives {:?}…",
        &flex[..flex.len().min(4)]
    );
    let difference = relative_difference(flex, gpu, floor);
    assert!(
        difference <= tolerance,
        "{what}: wgpu differs from Flex by {difference:.2e} of the largest value (tolerance {tolerance:.0e})"
    );
}

/// One network under test: its config, its input and which outputs it returns.
trait Case {
    type Config: NetworkConfig;
    fn config(&self) -> Self::Config;
    /// The input's shape: the tiny model's image batch unless the network takes another.
    fn input(&self) -> [usize; 4] {
        input()
    }
    fn outputs(
        &self,
        network: &<Self::Config as NetworkConfig>::Network,
        x: Tensor<4>,
    ) -> Vec<Tensor<4>>;
}

/// What a network computed on one backend.
struct Outcome {
    outputs: Vec<Vec<f32>>,
    input_gradient: Vec<f32>,
    /// Every parameter's gradient, in visiting order, with its shape.
    parameter_gradients: Vec<(Vec<usize>, Vec<f32>)>,
}

fn parameter_gradients<M: Module>(module: &M, grads: &Gradients) -> Vec<(Vec<usize>, Vec<f32>)> {
    struct Collect<'a> {
        grads: &'a Gradients,
        found: Vec<(Vec<usize>, Vec<f32>)>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(gradient) = param.val().grad(self.grads) {
                self.found
                    .push((param.shape().dims::<D>().to_vec(), values(gradient)));
            }
        }
    }
    let mut collect = Collect {
        grads,
        found: Vec::new(),
    };
    module.visit(&mut collect);
    collect.found
}

/// Forward, then backward of a fixed random projection of every output (so that every
/// gradient carries information).
fn run<C: Case>(case: &C, device: &Device) -> Outcome {
    let network = init_seeded(&case.config(), 7, device);
    let shape = case.input();
    let x = tensor::<4>(uniform(shape.iter().product(), 1), shape, device).require_grad();
    let outputs = case.outputs(&network, x.clone());
    let loss = outputs
        .iter()
        .enumerate()
        .map(|(k, output)| {
            let dims = output.dims();
            let projection =
                tensor::<4>(signed(dims.iter().product(), 100 + k as u64), dims, device);
            (output.clone() * projection).sum()
        })
        .reduce(|a, b| a + b)
        .expect("a network has outputs");
    let grads = loss.backward();
    Outcome {
        input_gradient: values(x.grad(&grads).expect("the input has a gradient")),
        parameter_gradients: parameter_gradients(&network, &grads),
        outputs: outputs.into_iter().map(values).collect(),
    }
}

/// Runs `case` on both backends and compares outputs within `forward` and gradients within
/// `backward`.
fn compare<C: Case>(name: &str, case: C, forward: f32, backward: f32) {
    let flex = run(&case, &flex());
    let gpu = run(&case, &gpu());
    assert_eq!(flex.outputs.len(), gpu.outputs.len());
    for (k, (a, b)) in flex.outputs.iter().zip(&gpu.outputs).enumerate() {
        assert_close(&format!("{name} output {k}"), a, b, forward);
    }
    assert_close(
        &format!("{name} input gradient"),
        &flex.input_gradient,
        &gpu.input_gradient,
        backward,
    );
    assert_eq!(
        flex.parameter_gradients.len(),
        gpu.parameter_gradients.len(),
        "{name}: parameters with a gradient"
    );
    assert!(flex.parameter_gradients.len() > 2, "{name}: no parameters");
    // A gradient is compared at least at a thousandth of the network's largest one.
    let floor = 1e-3
        * flex
            .parameter_gradients
            .iter()
            .map(|(_, g)| largest(g))
            .fold(0.0, f32::max);
    for (k, ((shape, a), (_, b))) in flex
        .parameter_gradients
        .iter()
        .zip(&gpu.parameter_gradients)
        .enumerate()
    {
        assert_close_above(
            &format!("{name} gradient of parameter {k} {shape:?}"),
            a,
            b,
            backward,
            floor,
        );
    }
}

struct EncoderCase;
impl Case for EncoderCase {
    type Config = EncoderConfig;
    fn config(&self) -> EncoderConfig {
        model().encoder()
    }
    fn outputs(
        &self,
        network: &<EncoderConfig as NetworkConfig>::Network,
        x: Tensor<4>,
    ) -> Vec<Tensor<4>> {
        let f = network.forward(x);
        vec![f.stem, f.layer1, f.layer2, f.layer3, f.layer4]
    }
}

struct GptNetCase;
impl Case for GptNetCase {
    type Config = GptNetConfig;
    fn config(&self) -> GptNetConfig {
        model().gpt_net()
    }
    fn outputs(
        &self,
        network: &<GptNetConfig as NetworkConfig>::Network,
        x: Tensor<4>,
    ) -> Vec<Tensor<4>> {
        let r = network.forward(x);
        vec![r.image, r.auxiliary]
    }
}

struct DiscriminatorCase;
impl Case for DiscriminatorCase {
    type Config = DiscriminatorConfig;
    fn config(&self) -> DiscriminatorConfig {
        model().discriminator()
    }
    fn outputs(
        &self,
        network: &<DiscriminatorConfig as NetworkConfig>::Network,
        x: Tensor<4>,
    ) -> Vec<Tensor<4>> {
        vec![network.forward(x)]
    }
}

struct SegNetCase;
impl Case for SegNetCase {
    type Config = SegNetConfig;
    fn config(&self) -> SegNetConfig {
        model().segnet()
    }
    fn outputs(
        &self,
        network: &<SegNetConfig as NetworkConfig>::Network,
        x: Tensor<4>,
    ) -> Vec<Tensor<4>> {
        let s = network.forward(x);
        vec![s.logits, s.aux_logits]
    }
}

struct SgBlockCase;
impl Case for SgBlockCase {
    type Config = SgBlockConfig;
    fn config(&self) -> SgBlockConfig {
        SgBlockConfig::new(64)
    }
    /// The tiny SegNet's bottleneck channels on an 8×8 grid: 64 nodes, so each chooses 9 of
    /// them as neighbours (SegNet's own 2×2 bottleneck at 32 px has only 4).
    fn input(&self) -> [usize; 4] {
        [2, 64, 8, 8]
    }
    fn outputs(
        &self,
        network: &<SgBlockConfig as NetworkConfig>::Network,
        x: Tensor<4>,
    ) -> Vec<Tensor<4>> {
        vec![network.forward(x)]
    }
}

struct AuxHeadCase;
impl Case for AuxHeadCase {
    type Config = AuxHeadConfig;
    fn config(&self) -> AuxHeadConfig {
        AuxHeadConfig::new([64, 8, 2])
    }
    fn input(&self) -> [usize; 4] {
        [2, 64, 2, 2]
    }
    fn outputs(
        &self,
        network: &<AuxHeadConfig as NetworkConfig>::Network,
        x: Tensor<4>,
    ) -> Vec<Tensor<4>> {
        vec![network.forward(x, [32, 32])]
    }
}

#[test]
fn initial_weights_are_the_same_on_both_backends() {
    let config = SegNetCase.config();
    let flex = common::tensors(&init_seeded(&config, 3, &flex()));
    let gpu = common::tensors(&init_seeded(&config, 3, &gpu()));
    assert_eq!(flex, gpu);
}

#[test]
fn encoder_forward_and_backward() {
    compare("encoder", EncoderCase, 1e-4, 1e-3);
}

#[test]
fn gpt_net_forward_and_backward() {
    compare("GPT-Net", GptNetCase, 1e-4, 1e-3);
}

#[test]
fn discriminator_forward_and_backward() {
    compare("D-Net", DiscriminatorCase, 1e-4, 1e-3);
}

#[test]
fn segnet_forward_and_backward() {
    compare("SegNet", SegNetCase, 1e-4, 1e-3);
}

#[test]
fn sg_block_forward_and_backward() {
    compare("SG block", SgBlockCase, 1e-4, 1e-3);
}

#[test]
fn auxiliary_head_forward_and_backward() {
    compare("auxiliary head", AuxHeadCase, 1e-4, 1e-3);
}

/// A loss input's values and shape.
type LossInput = (Vec<f32>, [usize; 4]);

/// A loss's value and the gradients of its inputs on one backend.
fn loss_run(
    inputs: &[LossInput],
    loss: impl Fn(Vec<Tensor<4>>) -> Tensor<1>,
    device: &Device,
) -> Vec<Vec<f32>> {
    let tensors: Vec<Tensor<4>> = inputs
        .iter()
        .map(|(data, shape)| tensor::<4>(data.clone(), *shape, device).require_grad())
        .collect();
    let value = loss(tensors.clone());
    let grads = value.backward();
    let mut found = vec![values(value)];
    found.extend(
        tensors
            .iter()
            .map(|t| values(t.grad(&grads).expect("an input gradient"))),
    );
    found
}

#[test]
fn losses_and_their_gradients() {
    // The shapes the losses see in training: SegNet's two-class logits and masks, GPT-Net's
    // images, the D-Net's scores.
    let image_shape @ [batch, _, size, _] = input();
    let (mask_shape, logits_shape, scores_shape) = (
        [batch, 1, size, size],
        [batch, 2, size, size],
        [batch, 1, size / 8, size / 8],
    );
    let n = |s: [usize; 4]| s.iter().product::<usize>();
    let mask: Vec<f32> = uniform(n(mask_shape), 3)
        .into_iter()
        .map(|v| if v < 0.3 { 1.0 } else { 0.0 })
        .collect();
    let logits = signed(n(logits_shape), 4)
        .into_iter()
        .map(|v| 6.0 * v)
        .collect::<Vec<_>>();
    let image = |stream| (uniform(n(image_shape), stream), image_shape);
    let scores = |stream| (signed(n(scores_shape), stream), scores_shape);
    let cases: Vec<(&str, Vec<LossInput>)> = vec![
        ("focal", vec![(logits, logits_shape), (mask, mask_shape)]),
        ("L1", vec![image(5), image(6)]),
        ("L2", vec![image(7), image(8)]),
        ("LSGAN generator", vec![scores(9)]),
        ("LSGAN discriminator", vec![scores(10), scores(11)]),
    ];
    fn apply(name: &str, t: Vec<Tensor<4>>) -> Tensor<1> {
        let mut t = t.into_iter();
        let mut next = || t.next().expect("enough inputs");
        match name {
            "focal" => focal(next(), next(), 4.0),
            "L1" => l1(next(), next()),
            "L2" => l2(next(), next()),
            "LSGAN generator" => lsgan_generator(next()),
            "LSGAN discriminator" => lsgan_discriminator(next(), next()),
            other => unreachable!("{other}"),
        }
    }
    let device = gpu();
    for (name, inputs) in cases {
        let flex = loss_run(&inputs, |t| apply(name, t), &flex());
        let gpu = loss_run(&inputs, |t| apply(name, t), &device);
        assert_close(&format!("{name} loss"), &flex[0], &gpu[0], 1e-5);
        for k in 1..flex.len() {
            assert_close(
                &format!("{name} gradient of input {k}"),
                &flex[k],
                &gpu[k],
                1e-4,
            );
        }
    }
}

#[test]
fn anomaly_maps_agree() {
    let config = SegNetCase.config();
    let images = uniform(input().iter().product(), 12);
    let maps = |device_maps: Vec<Vec<f32>>| device_maps.concat();
    let flex = maps(anomaly_maps(
        &init_seeded(&config, 5, &flex()).valid(),
        images_tensor(
            images.clone(),
            2,
            model().image_size as usize,
            &cpu_device(),
        ),
    ));
    let device = gpu();
    let gpu = maps(anomaly_maps(
        &init_seeded(&config, 5, &device).valid(),
        images_tensor(images, 2, model().image_size as usize, &device.inner()),
    ));
    assert_close("anomaly maps", &flex, &gpu, 1e-4);
}

/// Every reported loss of every step, in order.
#[derive(Default)]
struct Losses(Vec<(u64, &'static str, f64)>);

impl Progress for Losses {
    fn on_event(&mut self, event: &TrainEvent) {
        if let TrainEvent::Step(report) = event {
            for (name, value) in &report.losses {
                self.0.push((report.step, name, *value));
            }
        }
    }
}

/// The first step's losses agree within `first`; later steps start from parameters that already
/// differ by an optimiser step's rounding (Adam divides every gradient by its own magnitude, so
/// it moves even a parameter whose gradient is rounding noise by a whole learning rate, and the
/// kernels autotuning picks sum in another order from one tuning cache to the next), and agree
/// within `later`.
fn assert_same_losses(stage: &str, flex: &Losses, gpu: &Losses, first: f64, later: f64) {
    assert_eq!(flex.0.len(), gpu.0.len(), "{stage}: reported losses");
    assert!(!flex.0.is_empty(), "{stage}: no loss reported");
    for ((step, name, a), (_, _, b)) in flex.0.iter().zip(&gpu.0) {
        let tolerance = if *step == 1 { first } else { later };
        let difference = (a - b).abs() / a.abs().max(1e-6);
        assert!(
            b.is_finite() && difference <= tolerance,
            "{stage} step {step}: {name} loss {b} on wgpu, {a} on Flex (relative difference {difference:.2e}, tolerance {tolerance:.0e})"
        );
    }
}

const TRAINING_STEPS: u64 = 3;

/// The relative tolerance of the losses after the first step (measured: up to 6e-3 at step 3).
const LATER_STEPS: f64 = 2e-2;

fn pretrain_losses(device: &Device) -> Losses {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inputs = PretrainInputs {
        model: model(),
        config: PretrainConfig {
            max_steps: Some(TRAINING_STEPS),
            log_every: 1,
            ..tiny().pretrain
        },
        normals: Arc::from(normals(4)),
        seed: 9,
        threads: 2,
    };
    let mut losses = Losses::default();
    pretrain(
        &inputs,
        device,
        &mut checkpoints(&dir, &runtime),
        &mut losses,
    )
    .unwrap();
    losses
}

#[test]
fn pretraining_first_steps_give_the_same_losses() {
    let flex = pretrain_losses(&flex());
    let gpu = pretrain_losses(&gpu());
    assert_same_losses("pre-training", &flex, &gpu, 1e-4, LATER_STEPS);
}

/// SegNet trained a few steps on `B` from the same encoder and batches: its losses, and the
/// model it selected.
fn segnet_run(device: &Device) -> (Losses, SegNet) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let simulator = simulator(4);
    let inputs = SegmentInputs {
        model: model(),
        config: SegnetConfig {
            steps: TRAINING_STEPS,
            log_every: 1,
            ..tiny().segnet
        },
        image_score: ImageScore::Top100,
        simulator,
        validation_set: None,
        seed: 4,
        threads: 2,
        batch_size: tiny().inference.batch_size,
    };
    let encoder = init_seeded(&model().encoder(), 1, device);
    let mut losses = Losses::default();
    let outcome = train_segnet(
        &inputs,
        SegnetStart::Encoder(Box::new(encoder)),
        device,
        &mut checkpoints(&dir, &runtime),
        &mut losses,
    )
    .unwrap();
    (losses, outcome.model)
}

/// SegNet trained on each backend once, for the tests that compare the runs.
fn segnet_runs() -> &'static ((Losses, SegNet), (Losses, SegNet)) {
    static RUNS: std::sync::OnceLock<((Losses, SegNet), (Losses, SegNet))> =
        std::sync::OnceLock::new();
    RUNS.get_or_init(|| (segnet_run(&flex()), segnet_run(&gpu())))
}

#[test]
fn segnet_first_steps_give_the_same_losses() {
    let ((flex, _), (gpu, _)) = segnet_runs();
    assert_same_losses("SegNet", flex, gpu, 1e-4, LATER_STEPS);
}

fn maps(detector: &Detector) -> Vec<f32> {
    detector
        .predict(&normals(2))
        .into_iter()
        .flat_map(|p| p.map.values)
        .collect()
}

/// A model trained on one backend is written, read on the other, and scores the same images
/// the same way: a model trained on a GPU serves on a CPU, and the other way round.
#[test]
fn models_move_between_backends() {
    let device = gpu();
    let ((_, trained_on_flex), (_, trained_on_gpu)) = segnet_runs();
    for (origin, files, on_origin) in [
        (
            "wgpu",
            encode_model(trained_on_gpu, &common::card(model())),
            maps(&Detector::new(
                trained_on_gpu.clone(),
                common::card(model()),
                device.clone().inner(),
            )),
        ),
        (
            "Flex",
            encode_model(trained_on_flex, &common::card(model())),
            maps(&Detector::new(
                trained_on_flex.clone(),
                common::card(model()),
                cpu_device(),
            )),
        ),
    ] {
        let on_flex = decode_model(
            &files.card,
            "card",
            &files.weights,
            "weights",
            &cpu_device(),
        )
        .unwrap();
        let on_gpu = decode_model(
            &files.card,
            "card",
            &files.weights,
            "weights",
            &device.clone().inner(),
        )
        .unwrap();
        assert_close(
            &format!("a model trained on {origin}, scored on Flex"),
            &on_origin,
            &maps(&on_flex),
            1e-4,
        );
        assert_close(
            &format!("a model trained on {origin}, scored on wgpu"),
            &on_origin,
            &maps(&on_gpu),
            1e-4,
        );
    }
}

#[test]
fn the_first_step_is_timed_and_recorded() {
    struct FirstStep(Option<(Stage, u64, f64)>);
    impl Progress for FirstStep {
        fn on_event(&mut self, event: &TrainEvent) {
            if let TrainEvent::FirstStep {
                stage,
                step,
                seconds,
            } = event
            {
                assert!(self.0.is_none(), "reported twice");
                self.0 = Some((*stage, *step, *seconds));
            }
        }
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inputs = PretrainInputs {
        model: model(),
        config: PretrainConfig {
            max_steps: Some(2),
            ..tiny().pretrain
        },
        normals: Arc::from(normals(2)),
        seed: 9,
        threads: 1,
    };
    let mut first = FirstStep(None);
    pretrain(
        &inputs,
        &gpu(),
        &mut checkpoints(&dir, &runtime),
        &mut first,
    )
    .unwrap();
    let (stage, step, seconds) = first.0.expect("the first step is reported");
    assert_eq!((stage, step), (Stage::Pretrain, 1));
    assert!(seconds > 0.0);
}
