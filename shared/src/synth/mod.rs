//! The deterministic synthetic dataset behind `slsg synth`, the demo and the tests: a woven
//! texture and a washer (MVTec AD layout) and a tray arrangement (MVTec LOCO AD layout, with
//! logical and structural anomalies). Writes files only; must not depend on the anomaly
//! simulation, so tests never see the simulation's own shapes as "real" defects.

mod draw;
mod tray;
mod washer;
mod weave;

use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::raster::Mask;
use crate::seed::rng_for;
use draw::Canvas;

/// What to generate; the defaults make a small dataset that trains in minutes.
#[derive(Clone, Debug, Serialize)]
pub struct SynthOptions {
    pub seed: u64,
    /// Side of the square images (the tray is 1.25 × wider).
    pub size: u32,
    pub train: usize,
    pub validation: usize,
    pub test_good: usize,
    pub test_per_defect: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            size: 256,
            train: 48,
            validation: 16,
            test_good: 16,
            test_per_defect: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("image size must be at least 32 px, got {0}")]
    TooSmall(u32),
    #[error("could not draw a visible `{defect}` defect at this image size; use a larger --size")]
    Degenerate { defect: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Encode {
        path: PathBuf,
        source: image::ImageError,
    },
}

/// Per category: its name, layout and how many files of each kind were written.
#[derive(Clone, Debug, Serialize)]
pub struct SynthCategory {
    pub name: String,
    pub layout: crate::data::Layout,
    pub train: usize,
    pub test: usize,
    pub defect_types: Vec<String>,
}

/// A defective sample: the picture and one named mask per defect region.
pub(crate) struct Defective {
    canvas: Canvas,
    regions: Vec<(String, Mask)>,
}

pub(crate) trait Generator {
    fn name(&self) -> &'static str;
    fn defect_types(&self) -> &'static [&'static str];
    fn normal(&self, rng: &mut ChaCha8Rng) -> Canvas;
    fn defective(&self, defect: &str, rng: &mut ChaCha8Rng) -> Defective;
}

const SENSOR_NOISE: f32 = 0.012;
/// Pixels a defect region must cover to be written (a thinner one is drawn again).
const MIN_REGION_AREA: usize = 4;
const MAX_DEFECT_ATTEMPTS: u64 = 64;

/// Writes every synthetic category under `out` and returns what was written.
pub fn write_dataset(out: &Path, options: &SynthOptions) -> Result<Vec<SynthCategory>, SynthError> {
    if options.size < 32 {
        return Err(SynthError::TooSmall(options.size));
    }
    let mvtec: [(u64, Box<dyn Generator>); 2] = [
        (1, Box::new(weave::Weave::new(options.size))),
        (2, Box::new(washer::Washer::new(options.size))),
    ];
    let mut summary = Vec::new();
    for (id, generator) in &mvtec {
        summary.push(write_mvtec_category(out, generator.as_ref(), *id, options)?);
    }
    summary.push(write_loco_category(
        out,
        &tray::Tray::new(options.size),
        3,
        options,
    )?);
    let manifest = out.join("synth.json");
    let text = serde_json::json!({ "options": options, "categories": summary });
    std::fs::write(&manifest, format!("{text:#}\n")).map_err(|source| SynthError::Io {
        path: manifest,
        source,
    })?;
    Ok(summary)
}

const SPLIT_TRAIN: u64 = 0;
const SPLIT_VALIDATION: u64 = 1;
const SPLIT_TEST_GOOD: u64 = 2;
const SPLIT_TEST_DEFECT: u64 = 3;

fn normal_images(
    generator: &dyn Generator,
    id: u64,
    split: u64,
    count: usize,
    options: &SynthOptions,
) -> impl Iterator<Item = RgbImage> {
    (0..count).map(move |i| {
        let mut rng = rng_for(options.seed, &[id, split, i as u64]);
        generator.normal(&mut rng).to_image(&mut rng, SENSOR_NOISE)
    })
}

/// A defective sample whose every region covers at least a few pixels: a defect drawn too thin
/// for this image size is drawn again from the next stream.
fn defective_image(
    generator: &dyn Generator,
    id: u64,
    defect_index: usize,
    i: usize,
    seed: u64,
) -> Result<(RgbImage, Vec<(String, Mask)>), SynthError> {
    let defect = generator.defect_types()[defect_index];
    let stream = [id, SPLIT_TEST_DEFECT, defect_index as u64, i as u64];
    for attempt in 0..MAX_DEFECT_ATTEMPTS {
        // The first attempt keeps the stream earlier versions drew from, so a dataset written
        // again is the same dataset (same fingerprint, same job ids).
        let mut rng = if attempt == 0 {
            rng_for(seed, &stream)
        } else {
            rng_for(seed, &[&stream[..], &[attempt]].concat())
        };
        let sample = generator.defective(defect, &mut rng);
        if sample
            .regions
            .iter()
            .all(|(_, mask)| mask.area() >= MIN_REGION_AREA)
        {
            return Ok((
                sample.canvas.to_image(&mut rng, SENSOR_NOISE),
                sample.regions,
            ));
        }
    }
    Err(SynthError::Degenerate {
        defect: defect.to_string(),
    })
}

fn write_mvtec_category(
    out: &Path,
    generator: &dyn Generator,
    id: u64,
    options: &SynthOptions,
) -> Result<SynthCategory, SynthError> {
    let root = out.join(generator.name());
    for (i, image) in normal_images(generator, id, SPLIT_TRAIN, options.train, options).enumerate()
    {
        save_rgb(&root.join(format!("train/good/{i:03}.png")), &image)?;
    }
    for (i, image) in
        normal_images(generator, id, SPLIT_TEST_GOOD, options.test_good, options).enumerate()
    {
        save_rgb(&root.join(format!("test/good/{i:03}.png")), &image)?;
    }
    for (d, defect) in generator.defect_types().iter().enumerate() {
        for i in 0..options.test_per_defect {
            let (image, regions) = defective_image(generator, id, d, i, options.seed)?;
            save_rgb(&root.join(format!("test/{defect}/{i:03}.png")), &image)?;
            let mut union = Mask::new(image.width(), image.height());
            for (_, mask) in &regions {
                union.union(mask);
            }
            save_mask(
                &root.join(format!("ground_truth/{defect}/{i:03}_mask.png")),
                &union,
                255,
            )?;
        }
    }
    Ok(SynthCategory {
        name: generator.name().to_string(),
        layout: crate::data::Layout::MvtecAd,
        train: options.train,
        test: options.test_good + options.test_per_defect * generator.defect_types().len(),
        defect_types: generator
            .defect_types()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    })
}

fn write_loco_category(
    out: &Path,
    tray: &tray::Tray,
    id: u64,
    options: &SynthOptions,
) -> Result<SynthCategory, SynthError> {
    let generator: &dyn Generator = tray;
    let root = out.join(generator.name());
    for (i, image) in normal_images(generator, id, SPLIT_TRAIN, options.train, options).enumerate()
    {
        save_rgb(&root.join(format!("train/good/{i:03}.png")), &image)?;
    }
    for (i, image) in
        normal_images(generator, id, SPLIT_VALIDATION, options.validation, options).enumerate()
    {
        save_rgb(&root.join(format!("validation/good/{i:03}.png")), &image)?;
    }
    for (i, image) in
        normal_images(generator, id, SPLIT_TEST_GOOD, options.test_good, options).enumerate()
    {
        save_rgb(&root.join(format!("test/good/{i:03}.png")), &image)?;
    }
    let specs = tray.defect_specs();
    let mut test = options.test_good;
    for (folder, types) in [
        ("logical_anomalies", tray::LOGICAL),
        ("structural_anomalies", tray::STRUCTURAL),
    ] {
        let mut index = 0;
        for defect in types.iter() {
            let d = generator
                .defect_types()
                .iter()
                .position(|t| t == defect)
                .expect("listed defect type");
            for i in 0..options.test_per_defect {
                let (image, regions) = defective_image(generator, id, d, i, options.seed)?;
                save_rgb(&root.join(format!("test/{folder}/{index:03}.png")), &image)?;
                for (r, (name, mask)) in regions.iter().enumerate() {
                    let value = specs
                        .iter()
                        .find(|s| &s.defect_name == name)
                        .expect("spec per defect")
                        .pixel_value;
                    save_mask(
                        &root.join(format!("ground_truth/{folder}/{index:03}/{r:03}.png")),
                        mask,
                        value,
                    )?;
                }
                index += 1;
            }
        }
        test += index;
    }
    let config_path = root.join("defects_config.json");
    let config = serde_json::to_string_pretty(&specs).expect("defect specs serialise");
    std::fs::write(&config_path, config + "\n").map_err(|source| SynthError::Io {
        path: config_path,
        source,
    })?;
    Ok(SynthCategory {
        name: generator.name().to_string(),
        layout: crate::data::Layout::MvtecLoco,
        train: options.train,
        test,
        defect_types: generator
            .defect_types()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    })
}

fn ensure_parent(path: &Path) -> Result<(), SynthError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| SynthError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

fn save_rgb(path: &Path, image: &RgbImage) -> Result<(), SynthError> {
    ensure_parent(path)?;
    image.save(path).map_err(|source| SynthError::Encode {
        path: path.to_path_buf(),
        source,
    })
}

fn save_mask(path: &Path, mask: &Mask, value: u8) -> Result<(), SynthError> {
    ensure_parent(path)?;
    let pixels = mask
        .as_bytes()
        .iter()
        .map(|&v| if v != 0 { value } else { 0 })
        .collect();
    let image = GrayImage::from_raw(mask.width(), mask.height(), pixels).expect("mask buffer size");
    image.save(path).map_err(|source| SynthError::Encode {
        path: path.to_path_buf(),
        source,
    })
}
