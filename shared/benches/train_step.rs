//! Training-step time and inference throughput of the SLSG networks on a device (the CPU
//! backend by default), for the full-width model at 256×256, a mid-size one and a tiny one, at
//! batch 1 and 16; prints a Markdown table. The PyTorch side of the comparison is
//! `bench/torch_reference.py` (same architecture, same sizes).
//!
//! `cargo bench -p slsg --bench train_step [-- full|mid|tiny [BATCH] [gpt|segnet|inference]
//! [--device cpu|wgpu|cuda:N]]` (one part only: the others print `-`)
//!
//! Every timed step ends by reading its loss (or its maps) back, so a GPU backend's queued work
//! is inside the time; the first step of each kind (kernel compilation, tuning) is not.

use std::time::Instant;

use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use slsg::backend::{AutotuneLevel, BurnDevice, Device, GpuSettings, configure_gpu};
use slsg::model::loss::{focal, l1, l2, lsgan_discriminator, lsgan_generator};
use slsg::model::{ModelConfig, anomaly_probability, random_seeded};

struct Case {
    name: &'static str,
    model: ModelConfig,
    batches: [usize; 2],
    repeats: usize,
}

/// Seconds per step, or `None` when `part` leaves the step out.
fn timed_part(part: Option<&str>, name: &str, repeats: usize, step: impl FnMut()) -> Option<f64> {
    part.is_none_or(|p| p == name).then(|| timed(repeats, step))
}

fn timed(repeats: usize, mut step: impl FnMut()) -> f64 {
    step();
    let start = Instant::now();
    for _ in 0..repeats {
        step();
    }
    start.elapsed().as_secs_f64() / repeats as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device: Device = args
        .iter()
        .position(|a| a == "--device")
        .and_then(|i| args.get(i + 1))
        .map_or(Device::Cpu, |d| {
            d.parse().expect("a device: cpu, wgpu, wgpu:N, cuda:N")
        });
    let which = args
        .iter()
        .find(|a| ["full", "mid", "tiny"].contains(&a.as_str()))
        .cloned();
    let only_batch: Option<usize> = args.iter().find_map(|b| b.parse().ok());
    let part = args
        .iter()
        .find(|a| ["gpt", "segnet", "inference"].contains(&a.as_str()))
        .cloned();
    if device.is_gpu() {
        let level = std::env::var("SLSG_AUTOTUNE")
            .ok()
            .map_or(AutotuneLevel::default(), |l| {
                l.parse().expect("an autotune level")
            });
        configure_gpu(&GpuSettings {
            autotune: level,
            cache: std::env::temp_dir().join("slsg-bench-gpu"),
        })
        .expect("GPU settings");
    }
    println!(
        "device: {device}; threads: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let device = device.training().expect("the device is available");
    bench(which.as_deref(), only_batch, part.as_deref(), &device);
}

fn bench(which: Option<&str>, only_batch: Option<usize>, part: Option<&str>, device: &BurnDevice) {
    let cases = [
        Case {
            name: "full",
            model: ModelConfig::default(),
            batches: [1, 16],
            repeats: 2,
        },
        Case {
            name: "mid",
            model: ModelConfig {
                image_size: 128,
                width: 0.25,
                ..ModelConfig::default()
            },
            batches: [1, 16],
            repeats: 4,
        },
        Case {
            name: "tiny",
            model: ModelConfig {
                image_size: 64,
                width: 0.125,
                ..ModelConfig::default()
            },
            batches: [1, 16],
            repeats: 10,
        },
    ];
    println!(
        "| config | batch | GPT-Net step (D + G) s | SegNet step s | SegNet inference images/s |"
    );
    println!("|---|---|---|---|---|");
    for case in cases.iter().filter(|c| which.is_none_or(|w| w == c.name)) {
        let size = case.model.image_size as usize;
        for batch in case
            .batches
            .into_iter()
            .filter(|b| only_batch.is_none_or(|o| o == *b))
        {
            let x = random_seeded::<4>(
                [batch, 3, size, size],
                Distribution::Uniform(0.0, 1.0),
                1,
                device,
            );
            let target = random_seeded::<4>(
                [batch, 1, size, size],
                Distribution::Bernoulli(0.05),
                2,
                device,
            );

            let mut generator = case.model.gpt_net().init(device);
            let mut discriminator = case.model.discriminator().init(device);
            let (mut og, mut od) = (AdamConfig::new().init(), AdamConfig::new().init());
            let gpt = timed_part(part, "gpt", case.repeats, || {
                let fake = generator.forward(x.clone()).image.detach();
                let loss_d = lsgan_discriminator(
                    discriminator.forward(fake),
                    discriminator.forward(x.clone()),
                );
                let grads = GradientsParams::from_grads(loss_d.backward(), &discriminator);
                discriminator = od.step(6e-4, discriminator.clone(), grads);
                let r = generator.forward(x.clone());
                let loss = lsgan_generator(discriminator.forward(r.image.clone()))
                    + l1(r.image, x.clone()).mul_scalar(0.8)
                    + l2(r.auxiliary, x.clone());
                let grads = GradientsParams::from_grads(loss.clone().backward(), &generator);
                generator = og.step(1e-3, generator.clone(), grads);
                let _ = loss.into_scalar::<f32>();
            });

            let mut segnet = case.model.segnet().init(device);
            let mut sgd = SgdConfig::new()
                .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
                .init();
            let seg = timed_part(part, "segnet", case.repeats, || {
                let features = segnet
                    .encoder
                    .valid()
                    .forward(x.clone().inner())
                    .map(Tensor::from_inner);
                let out = segnet.forward_features(features, [size, size]);
                let loss = focal(out.logits.clone(), target.clone(), 4.0).mul_scalar(0.4)
                    + l1(anomaly_probability(out.logits), target.clone()).mul_scalar(0.6)
                    + focal(out.aux_logits, target.clone(), 4.0).mul_scalar(0.3);
                let grads = GradientsParams::from_grads(loss.clone().backward(), &segnet);
                segnet = sgd.step(0.04, segnet.clone(), grads);
                let _ = loss.into_scalar::<f32>();
            });

            let inference_model = segnet.valid();
            let input = x.clone().inner();
            let inference = timed_part(part, "inference", case.repeats, || {
                let _ =
                    anomaly_probability(inference_model.forward(input.clone()).logits).into_data();
            });
            println!(
                "| {} ({}×{}, width {}) | {batch} | {} | {} | {} |",
                case.name,
                size,
                size,
                case.model.width,
                shown(gpt, 3),
                shown(seg, 3),
                shown(inference.map(|s| batch as f64 / s), 1),
            );
        }
    }
}

fn shown(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}
