//! Inference: a trained SegNet's anomaly maps brought back to each image's original size, with
//! image scores, batched and timed, on the device named; the test split scored by a
//! detector. The saved model (card and weights) lives in `bundle`.

mod bundle;

pub use bundle::{
    EvaluationSet, MODEL_FORMAT_VERSION, ModelCard, ModelError, ModelFiles, SelectionScores,
    TrainingSummary, decode_model, encode_model, load_model, save_model,
};

use std::path::Path;
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::backend::{BurnDevice, Device, DeviceError};

use crate::metrics::{AnomalyMap, ImageScore};
use crate::model::{SegNet, anomaly_maps, images_tensor};
use crate::raster::{resize_bilinear_f32, resize_rgb, write_chw};

/// One image's result.
pub struct Prediction {
    /// At the image's original size.
    pub map: AnomalyMap,
    /// Taken from the map at the model's size, where the decision threshold was chosen: a
    /// top-k mean over an up-sampled map covers a smaller share of the image and runs higher.
    pub score: f64,
}

/// A trained SegNet ready to score images of any size.
pub struct Detector {
    model: SegNet,
    card: ModelCard,
    device: BurnDevice,
}

impl Detector {
    /// `device` is where `model` lives, without autodiff.
    pub fn new(model: SegNet, card: ModelCard, device: BurnDevice) -> Self {
        Self {
            model,
            card,
            device,
        }
    }

    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The network and its card.
    pub fn into_parts(self) -> (SegNet, ModelCard) {
        (self.model, self.card)
    }

    pub fn model(&self) -> &SegNet {
        &self.model
    }

    pub fn image_score(&self) -> ImageScore {
        self.card.image_score
    }

    /// Scores a batch: resize to the model's size, one forward pass, maps resized back.
    pub fn predict(&self, images: &[RgbImage]) -> Vec<Prediction> {
        if images.is_empty() {
            return Vec::new();
        }
        let size = self.card.model.image_size;
        let plane = (size * size) as usize;
        let mut data = vec![0.0f32; images.len() * 3 * plane];
        for (i, image) in images.iter().enumerate() {
            write_chw(
                &resize_rgb(image, size, size),
                &mut data[i * 3 * plane..(i + 1) * 3 * plane],
            );
        }
        let input = images_tensor(data, images.len(), size as usize, &self.device);
        anomaly_maps(&self.model, input)
            .into_iter()
            .zip(images)
            .map(|(map, image)| {
                let (w, h) = image.dimensions();
                let score = self.card.image_score.score(&map);
                let values = resize_bilinear_f32(&map, size, size, w, h);
                Prediction {
                    map: AnomalyMap {
                        width: w,
                        height: h,
                        values,
                    },
                    score,
                }
            })
            .collect()
    }

    /// [`predict`](Self::predict) in batches of `batch_size`, returning the time spent in
    /// prediction as well.
    pub fn predict_all(
        &self,
        images: &[RgbImage],
        batch_size: usize,
    ) -> (Vec<Prediction>, Duration) {
        let start = Instant::now();
        let predictions = images
            .chunks(batch_size.max(1))
            .flat_map(|chunk| self.predict(chunk))
            .collect();
        (predictions, start.elapsed())
    }
}

/// A detector on whichever backend a [`Device`] names, for code that does not choose one itself.
pub trait Predictor {
    fn card(&self) -> &ModelCard;
    /// [`Detector::predict_all`].
    fn predict_all(&self, images: &[RgbImage], batch_size: usize) -> (Vec<Prediction>, Duration);
}

impl Predictor for Detector {
    fn card(&self) -> &ModelCard {
        Detector::card(self)
    }

    fn predict_all(&self, images: &[RgbImage], batch_size: usize) -> (Vec<Prediction>, Duration) {
        Detector::predict_all(self, images, batch_size)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Reads a model folder written by [`save_model`] onto `device`. The backends are instantiated
/// here, once, rather than in every command that predicts.
pub fn load_detector(dir: &Path, device: Device) -> Result<Box<dyn Predictor>, DetectorError> {
    Ok(Box::new(load_model(dir, &device.inference()?)?))
}

/// A test image and the model's score of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredTest {
    pub kind: String,
    pub id: String,
    pub anomalous: bool,
    pub score: f64,
}

/// The test split of a category scored by a detector.
pub struct TestRun {
    pub evaluation: crate::metrics::Evaluation,
    /// The curves behind the metrics.
    pub figures: crate::metrics::Figures,
    /// Each test image with the model's own score (the one its decision threshold applies to),
    /// in the split's order.
    pub scored: Vec<ScoredTest>,
    /// The maps and ground truth the metrics were computed from, in the split's order (for
    /// pictures of a few; dropped with the run).
    pub samples: Vec<crate::metrics::EvalSample>,
    /// Seconds spent predicting (reading images and writing maps excluded).
    pub seconds: f64,
    pub images: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TestRunError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Eval(#[from] crate::metrics::EvalError),
    /// The sink could not keep a map.
    #[error(transparent)]
    Sink(E),
}

/// Predicts every test image of `category` in batches, hands each map to `sink` (to write it
/// somewhere) and computes every metric.
pub fn evaluate_test_split<E: std::error::Error + 'static>(
    detector: &Detector,
    category: &crate::data::Category,
    batch_size: usize,
    sink: &mut dyn FnMut(&crate::data::TestImage, &AnomalyMap) -> Result<(), E>,
) -> Result<TestRun, TestRunError<E>> {
    let mut samples = Vec::with_capacity(category.test.len());
    let mut scored = Vec::with_capacity(category.test.len());
    let mut seconds = 0.0;
    for chunk in category.test.chunks(batch_size.max(1)) {
        let images = chunk
            .iter()
            .map(|t| crate::data::read_rgb(&t.path))
            .collect::<Result<Vec<_>, _>>()?;
        let (predictions, elapsed) = detector.predict_all(&images, batch_size);
        seconds += elapsed.as_secs_f64();
        for (test, prediction) in chunk.iter().zip(predictions) {
            sink(test, &prediction.map).map_err(TestRunError::Sink)?;
            scored.push(ScoredTest {
                kind: test.kind.clone(),
                id: test.id().to_string(),
                anomalous: test.anomalous,
                score: prediction.score,
            });
            let ground_truth = crate::data::GroundTruth::read(test, category.defects.as_ref())?;
            samples.push(crate::metrics::EvalSample {
                name: test.path.display().to_string(),
                kind: test.kind.clone(),
                anomalous: test.anomalous,
                ground_truth,
                map: prediction.map.values,
            });
        }
    }
    let options = crate::metrics::EvalOptions {
        image_score: detector.image_score(),
        ..Default::default()
    };
    let (evaluation, figures) =
        crate::metrics::evaluate_with_figures(&category.name, &samples, &options)?;
    Ok(TestRun {
        evaluation,
        figures,
        scored,
        images: samples.len(),
        samples,
        seconds,
    })
}
