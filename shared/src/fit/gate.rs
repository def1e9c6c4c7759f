//! A retraining job's measurements for the promotion gate: the candidate and the model in
//! production scored on the same evaluation set by the same code, and each one's false-alarm
//! rate on the held-out newly arrived normal images at its own threshold.

use burn::prelude::*;
use image::RgbImage;

use crate::infer::{Detector, EvaluationSet};
use crate::metrics::{EvalError, ImageScore};
use crate::model::{SegNet, anomaly_maps, images_tensor};
use crate::raster::write_chw;
use crate::registry::{GateReport, GateScores};
use crate::train::{ValidationSet, score};

/// One model under comparison.
pub struct Contender<'a> {
    pub model: &'a SegNet,
    /// Its registered version (`None` for the candidate).
    pub version: Option<String>,
    pub threshold: Option<f64>,
    pub image_score: ImageScore,
}

impl<'a> Contender<'a> {
    pub fn registered(detector: &'a Detector, version: &str) -> Self {
        Contender {
            model: detector.model(),
            version: Some(version.to_string()),
            threshold: detector.card().decision_threshold,
            image_score: detector.card().image_score,
        }
    }
}

/// Both contenders measured on `set` and on `new_images` (at the model's size); a model whose
/// maps are not finite is an error.
pub fn measure(
    candidate: Contender<'_>,
    current: Contender<'_>,
    set: &ValidationSet,
    evaluation_set: EvaluationSet,
    new_images: &[&RgbImage],
    batch_size: usize,
    device: &Device,
) -> Result<GateReport, EvalError> {
    let scores = |contender: Contender<'_>| -> Result<GateScores, EvalError> {
        let measured = score(
            contender.model,
            set,
            contender.image_score,
            batch_size,
            device,
        )?;
        Ok(GateScores {
            version: contender.version,
            image_auroc: measured.image_auroc,
            pixel_auroc: measured.pixel_auroc,
            score: measured.score(),
            threshold: contender.threshold,
            false_alarm_rate: contender.threshold.and_then(|threshold| {
                false_alarm_rate(
                    contender.model,
                    new_images,
                    threshold,
                    contender.image_score,
                    batch_size,
                    device,
                )
            }),
        })
    };
    Ok(GateReport {
        evaluation_set,
        new_images: new_images.len(),
        candidate: scores(candidate)?,
        current: scores(current)?,
    })
}

/// The share of `images` whose image score reaches `threshold`; `None` without images.
pub fn false_alarm_rate(
    model: &SegNet,
    images: &[&RgbImage],
    threshold: f64,
    image_score: ImageScore,
    batch_size: usize,
    device: &Device,
) -> Option<f64> {
    if images.is_empty() {
        return None;
    }
    let mut alarms = 0usize;
    for chunk in images.chunks(batch_size.max(1)) {
        let size = chunk[0].width() as usize;
        let plane = 3 * size * size;
        let mut data = vec![0.0f32; chunk.len() * plane];
        for (i, image) in chunk.iter().enumerate() {
            write_chw(image, &mut data[i * plane..(i + 1) * plane]);
        }
        let maps = anomaly_maps(model, images_tensor(data, chunk.len(), size, device));
        alarms += maps
            .iter()
            .filter(|map| image_score.score(map) >= threshold)
            .count();
    }
    Some(alarms as f64 / images.len() as f64)
}
