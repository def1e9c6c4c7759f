//! The networks on tiny configurations: output shapes, gradients reaching every trainable
//! parameter, over-fitting a fixed batch, the SG block's neighbour choice, parameter counts, and
//! a detector's image score taken where its threshold was chosen.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, Gradients};
use slsg::backend::cpu_device;
use slsg::infer::Detector;
use slsg::model::loss::{focal, l1, l2, lsgan_discriminator, lsgan_generator};
use slsg::model::{
    DiscriminatorConfig, EncoderConfig, GptNetConfig, ModelConfig, SegNetConfig, SgBlockConfig,
    anomaly_maps, anomaly_probability, images_tensor, init_seeded, random_seeded,
    trainable_parameters,
};
use slsg::raster::{resize_rgb, write_chw};

use crate::common;

fn tiny() -> EncoderConfig {
    EncoderConfig::new().with_width(0.125)
}

fn batch(n: usize, size: usize) -> Tensor<4> {
    random_seeded(
        [n, 3, size, size],
        Distribution::Uniform(0.0, 1.0),
        n as u64,
        &cpu_device().autodiff(),
    )
}

#[test]
fn output_shapes() {
    let device = cpu_device().autodiff();
    let x = batch(2, 64);
    let encoder = init_seeded(&tiny(), 1, &device);
    let f = encoder.forward(x.clone());
    let dims = [
        f.stem.dims(),
        f.layer1.dims(),
        f.layer2.dims(),
        f.layer3.dims(),
        f.layer4.dims(),
    ];
    assert_eq!(
        dims,
        [
            [2, 8, 32, 32],
            [2, 8, 32, 32],
            [2, 16, 16, 16],
            [2, 32, 8, 8],
            [2, 64, 4, 4]
        ]
    );

    let pooled = init_seeded(&tiny().with_skip_max_pool(false), 2, &device).forward(x.clone());
    assert_eq!(
        [pooled.layer1.dims(), pooled.layer4.dims()],
        [[2, 8, 16, 16], [2, 64, 2, 2]]
    );

    let gpt =
        init_seeded(&GptNetConfig::new(tiny()).with_aux_hidden(8), 3, &device).forward(x.clone());
    assert_eq!(
        [gpt.image.dims(), gpt.auxiliary.dims()],
        [[2, 3, 64, 64]; 2]
    );
    let gpt_pooled = init_seeded(
        &GptNetConfig::new(tiny().with_skip_max_pool(false)),
        4,
        &device,
    )
    .forward(x.clone());
    assert_eq!(gpt_pooled.image.dims(), [2, 3, 64, 64]);

    let d =
        init_seeded(&DiscriminatorConfig::new().with_width(0.125), 5, &device).forward(x.clone());
    assert_eq!(d.dims(), [2, 1, 8, 8]);

    let sg = init_seeded(&SgBlockConfig::new(64), 6, &device).forward(f.layer4.clone());
    assert_eq!(sg.dims(), [2, 64, 4, 4]);

    let seg = init_seeded(
        &SegNetConfig::new(tiny()).with_sg_skip_channels(8),
        7,
        &device,
    )
    .forward(x);
    assert_eq!(
        [seg.logits.dims(), seg.aux_logits.dims()],
        [[2, 2, 64, 64]; 2]
    );
    assert_eq!(anomaly_probability(seg.logits).dims(), [2, 1, 64, 64]);
}

/// Names of trainable parameters without a non-zero gradient.
fn missing_gradients<M: Module>(module: &M, grads: &Gradients) -> Vec<String> {
    struct Check<'a> {
        grads: &'a Gradients,
        missing: Vec<String>,
        seen: usize,
    }
    impl ModuleVisitor for Check<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !param.is_require_grad() {
                return;
            }
            self.seen += 1;
            let reached = param
                .val()
                .grad(self.grads)
                .is_some_and(|g| g.abs().sum().into_scalar::<f32>() > 0.0);
            if !reached {
                self.missing
                    .push(format!("{} {:?}", param.id, param.shape()));
            }
        }
    }
    let mut check = Check {
        grads,
        missing: Vec::new(),
        seen: 0,
    };
    module.visit(&mut check);
    assert!(check.seen > 10, "visited only {} parameters", check.seen);
    check.missing
}

#[test]
fn gradients_reach_every_trainable_parameter() {
    let device = cpu_device().autodiff();
    let x = batch(2, 64);
    let target = random_seeded::<4>([2, 1, 64, 64], Distribution::Bernoulli(0.3), 8, &device);

    let segnet = init_seeded(
        &SegNetConfig::new(tiny()).with_sg_skip_channels(8),
        9,
        &device,
    );
    let out = segnet.forward(x.clone());
    let loss = focal(out.logits.clone(), target.clone(), 4.0)
        + l1(anomaly_probability(out.logits), target.clone())
        + focal(out.aux_logits, target, 4.0);
    let grads = loss.backward();
    assert_eq!(
        missing_gradients(&segnet, &grads),
        Vec::<String>::new(),
        "SegNet"
    );

    let gpt = init_seeded(&GptNetConfig::new(tiny()), 10, &device);
    let d = init_seeded(&DiscriminatorConfig::new().with_width(0.125), 11, &device);
    let reconstruction = gpt.forward(x.clone());
    let loss = lsgan_generator(d.forward(reconstruction.image.clone()))
        + l1(reconstruction.image, x.clone())
        + l2(reconstruction.auxiliary, x.clone());
    let grads = loss.backward();
    assert_eq!(
        missing_gradients(&gpt, &grads),
        Vec::<String>::new(),
        "GPT-Net"
    );
    let loss = lsgan_discriminator(
        d.forward(gpt.forward(x.clone()).image.detach()),
        d.forward(x),
    );
    assert_eq!(
        missing_gradients(&d, &loss.backward()),
        Vec::<String>::new(),
        "D-Net"
    );
}

#[test]
fn segnet_overfits_a_fixed_batch() {
    let device = cpu_device().autodiff();
    let n = 4;
    // Bright squares on noise, the mask marks the squares.
    let mut images = vec![0.0f32; n * 3 * 64 * 64];
    let mut masks = vec![0.0f32; n * 64 * 64];
    let mut rng = slsg::seed::rng_for(3, &[]);
    for k in 0..n {
        let (x0, y0) = (8 + 10 * k, 40 - 8 * k);
        for c in 0..3 {
            for i in 0..64 * 64 {
                let inside =
                    (i % 64) >= x0 && (i % 64) < x0 + 12 && (i / 64) >= y0 && (i / 64) < y0 + 12;
                images[k * 3 * 4096 + c * 4096 + i] = if inside {
                    0.9
                } else {
                    rand::RngExt::random_range(&mut rng, 0.0..0.5)
                };
                masks[k * 4096 + i] = if inside { 1.0 } else { 0.0 };
            }
        }
    }
    let x = Tensor::<4>::from_data(TensorData::new(images, [n, 3, 64, 64]), &device);
    let target = Tensor::<4>::from_data(TensorData::new(masks, [n, 1, 64, 64]), &device);
    let mut model = init_seeded(
        &SegNetConfig::new(tiny()).with_sg_skip_channels(8),
        12,
        &device,
    );
    let mut optimizer = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
        ))
        .init();
    let mut losses = Vec::new();
    for _ in 0..80 {
        let out = model.forward(x.clone());
        let loss = focal(out.logits.clone(), target.clone(), 4.0).mul_scalar(0.4)
            + l1(anomaly_probability(out.logits), target.clone()).mul_scalar(0.6)
            + focal(out.aux_logits, target.clone(), 4.0).mul_scalar(0.3);
        losses.push(f64::from(loss.clone().into_scalar::<f32>()));
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(0.04, model, grads);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(
        last * 10.0 <= first,
        "loss {first:.4} → {last:.4}: {losses:?}"
    );
}

/// Features that vary smoothly down the rows and repeat with period 8 across the columns of a
/// 16×16 grid: every node has an exact copy 8 columns away, and its adjacent nodes are nearly
/// as similar. By feature similarity alone, about a quarter of the chosen neighbours are adjacent; after
/// subtracting the position similarity (Eq. 5) the copy and its surroundings are chosen.
#[test]
fn position_similarity_moves_neighbours_to_repeated_content() {
    let device = cpu_device();
    let (h, w) = (16usize, 16usize);
    let mut features = vec![0.0f32; 4 * h * w];
    for i in 0..h {
        for j in 0..w {
            let (a, b) = (
                std::f32::consts::TAU * i as f32 / 32.0,
                std::f32::consts::TAU * j as f32 / 8.0,
            );
            for (c, v) in [a.cos(), a.sin(), b.cos(), b.sin()].into_iter().enumerate() {
                features[c * h * w + i * w + j] = v;
            }
        }
    }
    let x = Tensor::<4>::from_data(TensorData::new(features, [1, 4, h, w]), &device);
    let identity = || Tensor::<2>::eye(4, &device).reshape([4, 4, 1, 1]);
    let block = |subtract: bool| {
        let config = SgBlockConfig::new(4)
            .with_reduction(1)
            .with_subtract_position(subtract);
        let mut block = init_seeded(&config, 16, &device);
        for conv in [&mut block.f, &mut block.g] {
            conv.weight = Param::from_tensor(identity());
            conv.bias = Some(Param::from_tensor(Tensor::zeros([4], &device)));
        }
        block
    };
    let stats = |subtract: bool| {
        let indices: Vec<i64> = block(subtract)
            .neighbours_of(x.clone())
            .try_into_vec_as::<i64>()
            .unwrap();
        let (mut adjacent, mut copies, mut total) = (0, 0, 0);
        for node in 0..h * w {
            let (i, j) = ((node / w) as i64, (node % w) as i64);
            for &other in &indices[node * 9..node * 9 + 9] {
                let (oi, oj) = (other / w as i64, other % w as i64);
                if other as usize == node {
                    continue;
                }
                total += 1;
                adjacent += usize::from((oi - i).abs() <= 1 && (oj - j).abs() <= 1);
                copies += usize::from(oi == i && (oj - j).abs() == 8);
            }
        }
        (adjacent as f64 / total as f64, copies)
    };
    let (adjacent_plain, _) = stats(false);
    let (adjacent_sg, copies_sg) = stats(true);
    assert!(
        adjacent_plain >= 0.2,
        "feature similarity alone picks adjacent nodes {adjacent_plain:.2} of the time"
    );
    assert!(
        adjacent_sg <= 0.02,
        "with W_p subtracted {adjacent_sg:.2} of the neighbours are adjacent"
    );
    assert_eq!(
        copies_sg,
        h * w,
        "every node's repeated copy is among its neighbours"
    );
}

#[test]
fn full_size_parameter_counts() {
    let device = cpu_device().autodiff();
    let config = ModelConfig::default();
    // torchvision's resnet18 has 11 689 512 parameters, 513 000 of them in the classifier.
    assert_eq!(
        trainable_parameters(&init_seeded(&config.encoder(), 13, &device)),
        11_176_512
    );
    let segnet = trainable_parameters(&init_seeded(&config.segnet(), 14, &device));
    let gpt = trainable_parameters(&init_seeded(&config.gpt_net(), 15, &device));
    println!("SegNet {segnet} parameters (the paper reports 20.46 M), GPT-Net {gpt}");
    assert!(
        (15_000_000..25_000_000).contains(&segnet),
        "SegNet {segnet}"
    );
}

/// A detector scores an image of any size from its map at the model's size, the size its
/// decision threshold was chosen at (a top-100 mean over an up-sampled map covers less of the
/// image), and hands the map back at the image's size.
#[test]
fn detector_scores_images_at_the_model_size() {
    let device = cpu_device();
    let card = common::card(common::model());
    let size = card.model.image_size;
    let segnet = init_seeded(&card.model.segnet(), 9, &device);
    let large: Vec<_> = common::normals(2)
        .iter()
        .map(|image| resize_rgb(image, 3 * size, 2 * size))
        .collect();
    let plane = 3 * (size * size) as usize;
    let mut data = vec![0.0f32; large.len() * plane];
    for (i, image) in large.iter().enumerate() {
        write_chw(
            &resize_rgb(image, size, size),
            &mut data[i * plane..(i + 1) * plane],
        );
    }
    let expected: Vec<f64> = anomaly_maps(
        &segnet,
        images_tensor(data, large.len(), size as usize, &device),
    )
    .iter()
    .map(|map| card.image_score.score(map))
    .collect();
    let image_score = card.image_score;
    let predictions = Detector::new(segnet, card, device).predict(&large);
    for (prediction, expected) in predictions.iter().zip(expected) {
        assert_eq!(prediction.score, expected);
        assert_ne!(image_score.score(&prediction.map.values), expected);
        assert_eq!(
            (prediction.map.width, prediction.map.height),
            (3 * size, 2 * size)
        );
    }
}
