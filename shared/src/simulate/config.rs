//! Every knob of the anomaly simulation with its default (docs/method.md §4); per-category
//! overrides.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ranges::{InvalidField, Section};

/// How the anomaly simulation draws its samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationConfig {
    /// Probability that a simulated sample takes the logical branch (else structural).
    pub logical_probability: f64,
    /// Within the structural branch, probability of the self-shuffled (homologous) source
    /// instead of a texture.
    pub self_source_probability: f64,
    /// Folder of texture images (searched recursively, e.g. DTD's `images/`). Without one,
    /// procedurally generated textures are used.
    pub textures: Option<PathBuf>,
    /// At most this many textures are kept in memory, chosen at random with the seed.
    pub max_textures: usize,
    /// Procedural textures generated when no folder is given.
    pub procedural_textures: usize,
    /// Augmentations applied to each texture, drawn without repetition from the ten.
    pub texture_augmentations: usize,
    /// Perlin mask for texture-sourced structural anomalies.
    pub texture_mask: PerlinConfig,
    /// Perlin mask for self-sourced structural anomalies.
    pub self_mask: PerlinConfig,
    /// Perlin mask for logical anomalies: lower frequency, then only its largest blob is kept.
    pub logical_mask: PerlinConfig,
    /// Masks covering less than this fraction of the image are redrawn (49 px at 256²).
    pub min_mask_fraction: f64,
    /// Redraws before the foreground restriction is dropped for that sample; also the most
    /// draws of a sample that changes too few pixels visibly.
    pub max_mask_attempts: u32,
    /// A masked pixel is labelled anomalous only where the blend changed it by at least this
    /// much (its most changed channel, values in `[0, 1]`); 0 labels the whole mask, as the
    /// paper does.
    pub min_visible_change: f64,
    /// Where anomalies may land; `auto` decides per category from its training images.
    pub foreground: ForegroundConfig,
    /// Transparency δ of Eq. 1 per source.
    pub transparency: TransparencyConfig,
    /// Brightness/contrast jitter of the pasted anomaly foreground.
    pub jitter: JitterConfig,
    /// Tiles per side when shuffling the image for a self-sourced anomaly, `[min, max]`.
    pub shuffle_grid: [u32; 2],
    /// Largest rotation (degrees, either way) of the other normal image in the logical branch.
    pub logical_rotation_degrees: f64,
    /// Overrides by category name (only the fields given replace the defaults above).
    pub categories: BTreeMap<String, CategoryOverride>,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            logical_probability: 0.5,
            self_source_probability: 0.5,
            textures: None,
            max_textures: 512,
            procedural_textures: 64,
            texture_augmentations: 3,
            texture_mask: PerlinConfig {
                max_scale_exponent: 4.0,
                threshold: TEXTURE_THRESHOLD,
                rotation_degrees: 90.0,
                keep_largest: false,
            },
            self_mask: PerlinConfig {
                max_scale_exponent: 3.0,
                threshold: SELF_THRESHOLD,
                rotation_degrees: 90.0,
                keep_largest: false,
            },
            logical_mask: PerlinConfig {
                max_scale_exponent: 2.0,
                threshold: LOGICAL_THRESHOLD,
                rotation_degrees: 90.0,
                keep_largest: true,
            },
            min_mask_fraction: 49.0 / 65536.0,
            max_mask_attempts: 16,
            min_visible_change: MIN_VISIBLE_CHANGE,
            foreground: ForegroundConfig::Auto,
            transparency: TransparencyConfig::default(),
            jitter: JitterConfig::default(),
            shuffle_grid: [2, 8],
            logical_rotation_degrees: 180.0,
            categories: BTreeMap::new(),
        }
    }
}

/// Thresholds in the `noise` crate's units, calibrated so the covered fraction matches the
/// reference implementation's 0.5 (texture) and 0.4 (self-sourced) thresholds on its own
/// Perlin noise (see `bench/perlin_reference_coverage.py` and the calibration test).
pub const TEXTURE_THRESHOLD: f64 = 0.70;
pub const SELF_THRESHOLD: f64 = 0.60;
/// Logical anomalies are large: a quarter of the low-frequency noise exceeds this, and only
/// the largest blob of it is kept.
pub const LOGICAL_THRESHOLD: f64 = 0.30;

/// About 13 grey levels of 255: twice what sensor noise and JPEG artefacts move a pixel.
pub const MIN_VISIBLE_CHANGE: f64 = 0.05;

/// A thresholded, rotated 2-D Perlin noise with scale `2^a` per axis, `a ∈ [0, max_scale_exponent)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerlinConfig {
    pub max_scale_exponent: f64,
    /// Noise values above this (in `[-1, 1]`) become anomalous.
    pub threshold: f64,
    /// Largest rotation of the noise, degrees either way.
    pub rotation_degrees: f64,
    /// Keep only the largest connected blob.
    pub keep_largest: bool,
}

/// Where anomalies may land: everywhere, or on the object found by a grey-level rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum ForegroundConfig {
    /// Decided per category from its training images: `otsu` where Otsu's threshold finds an
    /// object that the image border does not show (an object on a background), `none` where
    /// the border looks like the rest of the image (a texture).
    Auto,
    /// Textures: the whole image is foreground.
    None,
    /// Grey level above `level` (0–255) is foreground; below it when `invert`.
    Threshold {
        #[serde(default = "middle_grey")]
        level: u8,
        #[serde(default)]
        invert: bool,
    },
    /// Otsu's threshold; `polarity` says which side is the object.
    Otsu {
        #[serde(default)]
        polarity: Polarity,
    },
}

fn middle_grey() -> u8 {
    128
}

impl std::fmt::Display for ForegroundConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForegroundConfig::Auto => f.write_str("auto (decided from the training images)"),
            ForegroundConfig::None => f.write_str("none: the whole image (a texture)"),
            ForegroundConfig::Threshold { level, invert } => {
                let side = if *invert { "below" } else { "above" };
                write!(f, "threshold: grey level {side} {level}")
            }
            ForegroundConfig::Otsu { polarity } => {
                let polarity = match polarity {
                    Polarity::Auto => "the side the border shows less of",
                    Polarity::Bright => "the bright side",
                    Polarity::Dark => "the dark side",
                };
                write!(f, "otsu: the object at Otsu's threshold, {polarity}")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    /// The side that covers less of the image border is the object.
    #[default]
    Auto,
    Bright,
    Dark,
}

/// δ of Eq. 1: the weight of the anomaly source inside the mask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransparencyConfig {
    /// Texture source: `fixed` with probability `fixed_probability`, else uniform in `range`.
    pub texture_fixed: f64,
    pub texture_fixed_probability: f64,
    pub texture_range: [f64; 2],
    pub self_range: [f64; 2],
    pub logical_range: [f64; 2],
}

impl Default for TransparencyConfig {
    fn default() -> Self {
        Self {
            texture_fixed: 0.75,
            texture_fixed_probability: 0.25,
            texture_range: [0.0, 0.9],
            self_range: [0.0, 0.25],
            logical_range: [0.7, 1.0],
        }
    }
}

/// `I_N ← (I_N − μ)·contrast + μ + brightness` on the pasted region, values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JitterConfig {
    pub contrast: [f64; 2],
    pub brightness: [f64; 2],
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            contrast: [0.8, 1.2],
            brightness: [-0.1, 0.1],
        }
    }
}

/// Per-category replacements for the settings that depend on the product.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CategoryOverride {
    pub foreground: Option<ForegroundConfig>,
    pub transparency: Option<TransparencyConfig>,
    pub logical_probability: Option<f64>,
    pub self_source_probability: Option<f64>,
}

impl SimulationConfig {
    /// The settings for one category: the defaults with that category's overrides applied.
    pub fn for_category(&self, category: &str) -> SimulationConfig {
        let mut config = self.clone();
        if let Some(o) = self.categories.get(category) {
            if let Some(f) = &o.foreground {
                config.foreground = f.clone();
            }
            if let Some(t) = &o.transparency {
                config.transparency = t.clone();
            }
            if let Some(p) = o.logical_probability {
                config.logical_probability = p;
            }
            if let Some(p) = o.self_source_probability {
                config.self_source_probability = p;
            }
        }
        config.categories.clear();
        config
    }

    /// Checks every range; `prefix` is the config path of this section (e.g. `simulation`).
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidField> {
        let s = Section::new(prefix);
        s.real("logical_probability", self.logical_probability, 0.0, 1.0)?;
        s.real(
            "self_source_probability",
            self.self_source_probability,
            0.0,
            1.0,
        )?;
        s.whole("max_textures", self.max_textures, 1, 100_000)?;
        s.whole("procedural_textures", self.procedural_textures, 1, 10_000)?;
        s.whole(
            "texture_augmentations",
            self.texture_augmentations,
            0,
            super::augment::Augmentation::ALL.len(),
        )?;
        s.real("min_mask_fraction", self.min_mask_fraction, 0.0, 0.5)?;
        s.whole("max_mask_attempts", self.max_mask_attempts, 1, 1000)?;
        s.real("min_visible_change", self.min_visible_change, 0.0, 1.0)?;
        let t = &self.transparency;
        s.real("transparency.texture_fixed", t.texture_fixed, 0.0, 1.0)?;
        s.real(
            "transparency.texture_fixed_probability",
            t.texture_fixed_probability,
            0.0,
            1.0,
        )?;
        s.interval("transparency.texture_range", t.texture_range, 0.0, 1.0)?;
        s.interval("transparency.self_range", t.self_range, 0.0, 1.0)?;
        s.interval("transparency.logical_range", t.logical_range, 0.0, 1.0)?;
        s.interval("jitter.contrast", self.jitter.contrast, 0.0, 10.0)?;
        s.interval("jitter.brightness", self.jitter.brightness, -1.0, 1.0)?;
        for (name, p) in [
            ("texture_mask", &self.texture_mask),
            ("self_mask", &self.self_mask),
            ("logical_mask", &self.logical_mask),
        ] {
            s.real(
                &format!("{name}.max_scale_exponent"),
                p.max_scale_exponent,
                0.0,
                8.0,
            )?;
            s.below(&format!("{name}.threshold"), p.threshold, -1.0, 1.0)?;
            s.real(
                &format!("{name}.rotation_degrees"),
                p.rotation_degrees,
                0.0,
                180.0,
            )?;
        }
        s.whole("shuffle_grid", self.shuffle_grid[0], 2, 64)?;
        s.whole(
            "shuffle_grid",
            self.shuffle_grid[1],
            self.shuffle_grid[0],
            64,
        )?;
        s.real(
            "logical_rotation_degrees",
            self.logical_rotation_degrees,
            0.0,
            180.0,
        )?;
        for name in self.categories.keys() {
            self.for_category(name)
                .validate(&format!("{prefix}.categories.{name}"))?;
        }
        Ok(())
    }
}
