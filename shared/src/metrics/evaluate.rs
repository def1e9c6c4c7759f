//! Every applicable metric of one category: image AUROC (overall and per anomaly type), pixel
//! AUROC, AU-PRO up to FPR 0.3, LOCO's AU-sPRO per type at every limit, F1-max thresholds; from
//! maps in memory or from a folder in the official layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::f1::f1_max;
use super::figures::{self, Figures};
use super::image_score::ImageScore;
use super::maps::{MapError, find_map, map_path, read_tiff};
use super::pixel::PixelStats;
use super::pro::pro_auc;
use super::roc::{auroc, roc_curve};
use super::spro::{SPRO_LIMITS, limit_key, spro_auc};
use super::thresholds::ThresholdGrid;
use crate::data::{Category, DataError, GroundTruth};

pub const PRO_LIMIT: f64 = 0.3;

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub image_score: ImageScore,
    /// Up to this many pixels, pixel curves use every distinct score (see `ThresholdGrid`).
    pub max_exact_pixels: usize,
    pub threads: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            image_score: ImageScore::Max,
            max_exact_pixels: 1 << 25,
            threads,
        }
    }
}

/// One test image: its test folder, label, ground truth and anomaly map (same size).
#[derive(Clone, Debug)]
pub struct EvalSample {
    /// Names the sample in errors (the test image's path, or the validation sample).
    pub name: String,
    pub kind: String,
    pub anomalous: bool,
    pub ground_truth: GroundTruth,
    pub map: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct F1Max {
    pub f1: f64,
    pub threshold: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindMetrics {
    pub images: usize,
    /// This kind against the defect-free images (absent for the defect-free kind).
    pub image_auroc: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdInfo {
    pub count: usize,
    /// True when every distinct score is a threshold (the exact curves).
    pub exact: bool,
}

/// The metrics of one category. JSON keys follow the benchmarks' names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub category: String,
    pub image_score: ImageScore,
    pub images: usize,
    pub anomalous_images: usize,
    pub image_auroc: Option<f64>,
    pub pixel_auroc: Option<f64>,
    #[serde(rename = "pro_auc_0.3")]
    pub pro_auc: Option<f64>,
    /// LOCO: limit (`"0.05"`) → anomaly type (`logical`, `structural`, `mean`) → AU-sPRO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spro_auc: Option<BTreeMap<String, BTreeMap<String, Option<f64>>>>,
    /// LOCO: `image_auroc_<type>` for each anomaly type and `image_auroc_mean`.
    #[serde(flatten)]
    pub image_auroc_by_type: BTreeMap<String, Option<f64>>,
    pub image_f1_max: Option<F1Max>,
    pub pixel_f1_max: Option<F1Max>,
    pub per_kind: BTreeMap<String, KindMetrics>,
    pub thresholds: ThresholdInfo,
    /// Why a metric could not be computed, and what in the data looks wrong (anomalous images
    /// whose masks mark no pixel, …). Each is also logged as a warning.
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error("no anomaly map for test image {image} (expected {expected})")]
    MissingMap { image: PathBuf, expected: PathBuf },
    #[error("category `{0}` has no test images")]
    NoTestImages(String),
    #[error("{name}: the anomaly map has a non-finite score ({value}) at pixel ({x}, {y})")]
    NonFinite {
        name: String,
        value: f32,
        x: u32,
        y: u32,
    },
}

/// The anomaly-type name of a LOCO test folder (`logical_anomalies` → `logical`).
pub fn type_name(kind: &str) -> &str {
    kind.strip_suffix("_anomalies").unwrap_or(kind)
}

/// Computes every metric of `samples`; a map with a non-finite score is refused, naming it.
pub fn evaluate(
    category: &str,
    samples: &[EvalSample],
    options: &EvalOptions,
) -> Result<Evaluation, EvalError> {
    evaluate_with_figures(category, samples, options).map(|(evaluation, _)| evaluation)
}

/// `evaluate`, with the curves behind the metrics.
pub fn evaluate_with_figures(
    category: &str,
    samples: &[EvalSample],
    options: &EvalOptions,
) -> Result<(Evaluation, Figures), EvalError> {
    for sample in samples {
        if let Some(i) = sample.map.iter().position(|v| !v.is_finite()) {
            let width = sample.ground_truth.width.max(1) as usize;
            return Err(EvalError::NonFinite {
                name: sample.name.clone(),
                value: sample.map[i],
                x: (i % width) as u32,
                y: (i / width) as u32,
            });
        }
    }
    let scores: Vec<f64> = samples
        .iter()
        .map(|s| options.image_score.score(&s.map))
        .collect();
    let labels: Vec<bool> = samples.iter().map(|s| s.anomalous).collect();
    let maps: Vec<&[f32]> = samples.iter().map(|s| s.map.as_slice()).collect();
    let grid = ThresholdGrid::from_maps(&maps, options.max_exact_pixels);

    let mut kinds: Vec<String> = Vec::new();
    for s in samples {
        if !kinds.contains(&s.kind) {
            kinds.push(s.kind.clone());
        }
    }
    let per_kind_stats = pixel_stats_by_kind(samples, &kinds, &grid, options.threads);
    let mut total = PixelStats::new(grid.len());
    for stats in per_kind_stats.values() {
        total.merge(stats);
    }
    let good_kinds: Vec<&String> = kinds
        .iter()
        .filter(|k| samples.iter().all(|s| &s.kind != *k || !s.anomalous))
        .collect();
    let good_indices: Vec<usize> = (0..samples.len())
        .filter(|&i| !samples[i].anomalous)
        .collect();

    let mut per_kind = BTreeMap::new();
    for kind in &kinds {
        let members: Vec<usize> = (0..samples.len())
            .filter(|&i| &samples[i].kind == kind)
            .collect();
        let image_auroc = if good_kinds.contains(&kind) {
            None
        } else {
            subset_auroc(&scores, &labels, &good_indices, &members)
        };
        per_kind.insert(
            kind.clone(),
            KindMetrics {
                images: members.len(),
                image_auroc,
            },
        );
    }

    let has_loco_regions = samples
        .iter()
        .any(|s| s.ground_truth.regions.iter().any(|r| r.defect.is_some()));
    let mut spro = None;
    let mut spro_curves = BTreeMap::new();
    let mut image_auroc_by_type = BTreeMap::new();
    if has_loco_regions {
        let anomalous_kinds: Vec<&String> =
            kinds.iter().filter(|k| !good_kinds.contains(k)).collect();
        let mut by_limit: BTreeMap<String, BTreeMap<String, Option<f64>>> = BTreeMap::new();
        for kind in &anomalous_kinds {
            let mut stats = PixelStats::new(grid.len());
            for good in &good_kinds {
                stats.merge(&per_kind_stats[*good]);
            }
            stats.merge(&per_kind_stats[*kind]);
            if let Some(curve) = figures::spro(&stats, SPRO_LIMITS[SPRO_LIMITS.len() - 1]) {
                spro_curves.insert(type_name(kind).to_string(), curve);
            }
            for limit in SPRO_LIMITS {
                by_limit
                    .entry(limit_key(limit))
                    .or_default()
                    .insert(type_name(kind).to_string(), spro_auc(&stats, limit));
            }
            image_auroc_by_type.insert(
                format!("image_auroc_{}", type_name(kind)),
                per_kind[*kind].image_auroc,
            );
        }
        for values in by_limit.values_mut() {
            let mean = mean_of(values.values());
            values.insert("mean".into(), mean);
        }
        let mean = mean_of(image_auroc_by_type.values());
        image_auroc_by_type.insert("image_auroc_mean".into(), mean);
        spro = Some(by_limit);
    }

    let evaluation = Evaluation {
        category: category.to_string(),
        image_score: options.image_score,
        images: samples.len(),
        anomalous_images: labels.iter().filter(|&&l| l).count(),
        image_auroc: auroc(&scores, &labels),
        pixel_auroc: total.auroc(),
        pro_auc: pro_auc(&total, PRO_LIMIT),
        spro_auc: spro,
        image_auroc_by_type,
        image_f1_max: f1_max(&scores, &labels).map(|(f1, threshold)| F1Max { f1, threshold }),
        pixel_f1_max: total
            .f1_max(&grid)
            .map(|(f1, threshold)| F1Max { f1, threshold }),
        per_kind,
        thresholds: ThresholdInfo {
            count: grid.len(),
            exact: grid.is_exact(),
        },
        warnings: Vec::new(),
    };
    let figures = Figures {
        image_roc: roc_curve(&scores, &labels).map(|curve| figures::image_roc(&curve)),
        pixel_roc: figures::pixel_roc(&total),
        pro: figures::pro(&total, PRO_LIMIT),
        spro: spro_curves,
    };
    Ok((with_warnings(evaluation, samples), figures))
}

/// Adds the reasons metrics are missing, and masks that mark nothing, to `evaluation`.
fn with_warnings(mut evaluation: Evaluation, samples: &[EvalSample]) -> Evaluation {
    let mut warnings = Vec::new();
    let empty: Vec<&str> = samples
        .iter()
        .filter(|s| s.anomalous && s.ground_truth.regions.iter().all(|r| r.pixels.is_empty()))
        .map(|s| s.name.as_str())
        .collect();
    if !empty.is_empty() {
        let shown: Vec<&str> = empty.iter().take(5).copied().collect();
        warnings.push(format!(
            "{} anomalous test image(s) have a mask that marks no pixel ({}{}): they count as anomalous images but add no defect pixels",
            empty.len(),
            shown.join(", "),
            if empty.len() > shown.len() { ", …" } else { "" }
        ));
    }
    if evaluation.image_auroc.is_none() {
        warnings.push(format!(
            "image AUROC: needs defect-free and anomalous images, found {} and {}",
            evaluation.images - evaluation.anomalous_images,
            evaluation.anomalous_images
        ));
    }
    if evaluation.pixel_auroc.is_none() {
        warnings.push(
            "pixel AUROC and AU-PRO: no mask marks a defect pixel (or no pixel is defect-free)"
                .into(),
        );
    } else if evaluation.pro_auc.is_none() {
        warnings.push("AU-PRO: no ground-truth region".into());
    }
    for warning in &warnings {
        tracing::warn!(category = %evaluation.category, "{warning}");
    }
    evaluation.warnings = warnings;
    evaluation
}

/// The mean of the values, `None` if any is missing.
fn mean_of<'a>(values: impl Iterator<Item = &'a Option<f64>>) -> Option<f64> {
    let values: Option<Vec<f64>> = values.copied().collect();
    values
        .filter(|v| !v.is_empty())
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
}

fn subset_auroc(scores: &[f64], labels: &[bool], good: &[usize], kind: &[usize]) -> Option<f64> {
    let indices: Vec<usize> = good.iter().chain(kind).copied().collect();
    let s: Vec<f64> = indices.iter().map(|&i| scores[i]).collect();
    let l: Vec<bool> = indices.iter().map(|&i| labels[i]).collect();
    auroc(&s, &l)
}

/// Pixel statistics per test kind, accumulated on `threads` threads over slices of the samples.
fn pixel_stats_by_kind(
    samples: &[EvalSample],
    kinds: &[String],
    grid: &ThresholdGrid,
    threads: usize,
) -> BTreeMap<String, PixelStats> {
    let partials = crate::parallel::map_chunks(samples, threads, |part| {
        let mut stats: BTreeMap<String, PixelStats> = BTreeMap::new();
        for s in part {
            stats
                .entry(s.kind.clone())
                .or_insert_with(|| PixelStats::new(grid.len()))
                .add_image(grid, &s.map, &s.ground_truth);
        }
        stats
    });
    let mut merged: BTreeMap<String, PixelStats> = kinds
        .iter()
        .map(|k| (k.clone(), PixelStats::new(grid.len())))
        .collect();
    for partial in partials {
        for (kind, stats) in partial {
            merged.get_mut(&kind).expect("kind listed").merge(&stats);
        }
    }
    merged
}

/// Reads the maps of every test image of `category` from `maps_root` (official layout) with
/// their ground truth, checking that each exists and has its image's size.
pub fn load_samples(
    category: &Category,
    maps_root: &Path,
    threads: usize,
) -> Result<Vec<EvalSample>, EvalError> {
    if category.test.is_empty() {
        return Err(EvalError::NoTestImages(category.name.clone()));
    }
    for test in &category.test {
        if find_map(maps_root, &category.name, &test.kind, test.id()).is_none() {
            return Err(EvalError::MissingMap {
                image: test.path.clone(),
                expected: map_path(maps_root, &category.name, &test.kind, test.id()),
            });
        }
    }
    crate::parallel::try_map(&category.test, threads, |test| {
        let path = find_map(maps_root, &category.name, &test.kind, test.id()).ok_or_else(|| {
            EvalError::MissingMap {
                image: test.path.clone(),
                expected: map_path(maps_root, &category.name, &test.kind, test.id()),
            }
        })?;
        let ground_truth = GroundTruth::read(test, category.defects.as_ref())?;
        let map = read_tiff(&path, Some((ground_truth.width, ground_truth.height)))?;
        Ok(EvalSample {
            name: test.path.display().to_string(),
            kind: test.kind.clone(),
            anomalous: test.anomalous,
            ground_truth,
            map: map.values,
        })
    })
}

/// Evaluates a folder of maps in the official layout against a dataset category.
pub fn evaluate_folder(
    category: &Category,
    maps_root: &Path,
    options: &EvalOptions,
) -> Result<Evaluation, EvalError> {
    let samples = load_samples(category, maps_root, options.threads)?;
    evaluate(&category.name, &samples, options)
}

impl Evaluation {
    /// A human-readable table of the headline metrics.
    pub fn table(&self) -> String {
        let fmt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.4}", v));
        let mut rows = vec![
            ("image AUROC".to_string(), fmt(self.image_auroc)),
            ("pixel AUROC".to_string(), fmt(self.pixel_auroc)),
            (format!("AU-PRO (FPR ≤ {PRO_LIMIT})"), fmt(self.pro_auc)),
        ];
        for (key, value) in &self.image_auroc_by_type {
            rows.push((
                key.replace('_', " ").replace("image auroc", "image AUROC"),
                fmt(*value),
            ));
        }
        if let Some(spro) = &self.spro_auc {
            for (limit, values) in spro {
                for (kind, value) in values {
                    rows.push((format!("AU-sPRO {kind} (FPR ≤ {limit})"), fmt(*value)));
                }
            }
        }
        if let Some(f1) = &self.image_f1_max {
            rows.push((
                "image F1-max (threshold)".into(),
                format!("{:.4} ({:.6})", f1.f1, f1.threshold),
            ));
        }
        if let Some(f1) = &self.pixel_f1_max {
            rows.push((
                "pixel F1-max (threshold)".into(),
                format!("{:.4} ({:.6})", f1.f1, f1.threshold),
            ));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = format!(
            "{} — {} test images ({} anomalous), image score `{}`, {} thresholds ({})\n",
            self.category,
            self.images,
            self.anomalous_images,
            self.image_score.name(),
            self.thresholds.count,
            if self.thresholds.exact {
                "exact"
            } else {
                "quantiles"
            }
        );
        for (key, value) in rows {
            out.push_str(&format!("  {key:<width$}  {value}\n"));
        }
        out
    }
}
