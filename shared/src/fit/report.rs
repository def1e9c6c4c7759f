//! What a SegNet stage leaves for the run report: the test split's curves and the model's score
//! of every test image (`figures.json`), pictures of the test images worth a look (the gallery),
//! and a contact sheet of the simulated training anomalies.

use std::collections::BTreeMap;
use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{RgbImage, imageops};
use serde::{Deserialize, Serialize};

use crate::data::{Category, DataError, GroundTruth, read_rgb};
use crate::infer::ScoredTest;
use crate::metrics::{EvalSample, Figures, ImageScore};
use crate::picture::simulated::{SimulatedSample, contact_sheet, simulate_samples};
use crate::picture::{Prediction, panel};
use crate::raster::{resize_bilinear_f32, resize_rgb};
use crate::simulate::Simulator;

/// False alarms and misses shown per category.
pub const GALLERY_EXTREMES: usize = 4;
/// Examples shown per defect type.
pub const GALLERY_PER_TYPE: usize = 2;
/// Simulated anomalies on the contact sheet (one row).
pub const SIMULATED_SAMPLES: usize = 4;
/// The longest side of a picture in the report: large enough to see where a map fires, small
/// enough that the report of a 15-category run stays under 10 MB (`docs/benchmarks.md`).
pub const THUMBNAIL_SIDE: u32 = 144;
const JPEG_QUALITY: u8 = 75;

/// Why a test image is in the gallery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GalleryReason {
    /// One of the highest-scoring defect-free images.
    FalseAlarm,
    /// One of the lowest-scoring defective images.
    Miss,
    /// An example of its defect type.
    Example,
}

impl GalleryReason {
    pub fn title(self) -> &'static str {
        match self {
            GalleryReason::FalseAlarm => "highest-scoring good images (false alarms)",
            GalleryReason::Miss => "lowest-scoring defective images (misses)",
            GalleryReason::Example => "examples of each defect type",
        }
    }
}

/// A test image chosen for the gallery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GalleryPick {
    pub reason: GalleryReason,
    pub kind: String,
    pub id: String,
    pub anomalous: bool,
    pub score: f64,
}

/// `figures.json`: what the run report draws of one category's test split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageFigures {
    pub category: String,
    pub image_score: ImageScore,
    /// The model's decision threshold on its image score, where validation chose one.
    pub threshold: Option<f64>,
    pub curves: Figures,
    /// Every test image with the model's score, in the split's order.
    pub images: Vec<ScoredTest>,
    pub gallery: Vec<GalleryPick>,
}

/// The gallery of a scored test split: the `GALLERY_EXTREMES` highest-scoring defect-free
/// images, the `GALLERY_EXTREMES` lowest-scoring defective ones, and up to `GALLERY_PER_TYPE`
/// more of each defect type spread over its scores (each image once). Ties fall to the kind and
/// id, so the choice is the same on every run.
pub fn pick_gallery(images: &[ScoredTest]) -> Vec<GalleryPick> {
    let mut order: Vec<&ScoredTest> = images.iter().collect();
    order.sort_by(|a, b| {
        a.score
            .total_cmp(&b.score)
            .then_with(|| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)))
    });
    let pick = |reason, image: &ScoredTest| GalleryPick {
        reason,
        kind: image.kind.clone(),
        id: image.id.clone(),
        anomalous: image.anomalous,
        score: image.score,
    };
    let mut gallery: Vec<GalleryPick> = order
        .iter()
        .rev()
        .filter(|i| !i.anomalous)
        .take(GALLERY_EXTREMES)
        .map(|i| pick(GalleryReason::FalseAlarm, i))
        .collect();
    gallery.extend(
        order
            .iter()
            .filter(|i| i.anomalous)
            .take(GALLERY_EXTREMES)
            .map(|i| pick(GalleryReason::Miss, i)),
    );
    let mut by_type: BTreeMap<&str, Vec<&ScoredTest>> = BTreeMap::new();
    for image in order.iter().filter(|i| i.anomalous) {
        by_type.entry(&image.kind).or_default().push(image);
    }
    for members in by_type.values() {
        let fresh: Vec<&ScoredTest> = members
            .iter()
            .filter(|m| !gallery.iter().any(|g| g.kind == m.kind && g.id == m.id))
            .copied()
            .collect();
        let count = GALLERY_PER_TYPE.min(fresh.len());
        for j in 0..count {
            // At the middle of each of `count` equal slices of the type's scores.
            let at = ((2 * j + 1) * fresh.len()) / (2 * count);
            gallery.push(pick(GalleryReason::Example, fresh[at]));
        }
    }
    gallery
}

/// Each gallery pick drawn as a prediction panel with its true defect outlined, small and as
/// JPEG, from the maps and ground truth the test split was scored with (`samples`, in the
/// split's order) and the image itself.
pub fn render_gallery(
    category: &Category,
    samples: &[EvalSample],
    gallery: &[GalleryPick],
    threshold: Option<f64>,
    image_score: ImageScore,
) -> Result<Vec<Vec<u8>>, DataError> {
    gallery
        .iter()
        .map(|pick| {
            let (test, sample) = category
                .test
                .iter()
                .zip(samples)
                .find(|(t, _)| t.kind == pick.kind && t.id() == pick.id)
                .ok_or_else(|| DataError::NotFound {
                    path: category.root.join("test").join(&pick.kind).join(&pick.id),
                })?;
            let image = read_rgb(&test.path)?;
            let (width, height) = thumbnail_size(image.width(), image.height());
            let small = resize_rgb(&image, width, height);
            let map =
                resize_bilinear_f32(&sample.map, image.width(), image.height(), width, height);
            let truth = truth_pixels(&sample.ground_truth, width, height);
            let picture = panel(&Prediction {
                image: &small,
                map: &map,
                score: pick.score,
                image_score,
                threshold,
                truth: Some(&truth),
            });
            Ok(jpeg(&picture))
        })
        .collect()
}

/// A contact sheet of `SIMULATED_SAMPLES` simulated anomalies, as JPEG.
pub fn render_simulated(simulator: &Simulator, seed: u64) -> Vec<u8> {
    let samples: Vec<SimulatedSample> = simulate_samples(simulator, SIMULATED_SAMPLES, seed)
        .into_iter()
        .map(|sample| {
            let (width, height) = thumbnail_size(sample.normal.width(), sample.normal.height());
            let shrink = |image: &RgbImage| resize_rgb(image, width, height);
            SimulatedSample {
                normal: shrink(&sample.normal),
                simulated: shrink(&sample.simulated),
                mask: imageops::resize(&sample.mask, width, height, imageops::Nearest),
                info: sample.info,
            }
        })
        .collect();
    jpeg(&contact_sheet(&samples))
}

/// The size with the longer side at most `THUMBNAIL_SIDE`, aspect kept.
fn thumbnail_size(width: u32, height: u32) -> (u32, u32) {
    let longest = width.max(height).max(1);
    if longest <= THUMBNAIL_SIDE {
        return (width.max(1), height.max(1));
    }
    let shrink = |side: u32| {
        ((u64::from(side) * u64::from(THUMBNAIL_SIDE)) / u64::from(longest)).max(1) as u32
    };
    (shrink(width), shrink(height))
}

/// The union of the true regions at `width × height` (nearest pixel), row by row.
fn truth_pixels(truth: &GroundTruth, width: u32, height: u32) -> Vec<bool> {
    let full = (truth.width as usize) * (truth.height as usize);
    let mut marked = vec![false; full];
    for region in &truth.regions {
        for &p in &region.pixels {
            if let Some(m) = marked.get_mut(p as usize) {
                *m = true;
            }
        }
    }
    (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .map(|(x, y)| {
            let sx = (u64::from(x) * u64::from(truth.width) / u64::from(width)) as usize;
            let sy = (u64::from(y) * u64::from(truth.height) / u64::from(height)) as usize;
            marked
                .get(sy * truth.width as usize + sx)
                .copied()
                .unwrap_or(false)
        })
        .collect()
}

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
        .encode_image(image)
        .expect("encoding an image in memory");
    bytes.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(kind: &str, id: &str, score: f64) -> ScoredTest {
        ScoredTest {
            kind: kind.into(),
            id: id.into(),
            anomalous: kind != "good",
            score,
        }
    }

    #[test]
    fn the_gallery_shows_false_alarms_misses_and_each_type() {
        let mut images: Vec<ScoredTest> = (0..10)
            .map(|i| scored("good", &format!("{i:03}"), f64::from(i) / 10.0))
            .collect();
        images
            .extend((0..6).map(|i| scored("crack", &format!("{i:03}"), 0.5 + f64::from(i) / 20.0)));
        images
            .extend((0..3).map(|i| scored("hole", &format!("{i:03}"), 0.9 + f64::from(i) / 100.0)));
        let gallery = pick_gallery(&images);
        let of = |reason| -> Vec<(String, String)> {
            gallery
                .iter()
                .filter(|g| g.reason == reason)
                .map(|g| (g.kind.clone(), g.id.clone()))
                .collect()
        };
        let ids = |kind: &str, ids: &[&str]| -> Vec<(String, String)> {
            ids.iter()
                .map(|id| (kind.to_string(), id.to_string()))
                .collect()
        };
        assert_eq!(
            of(GalleryReason::FalseAlarm),
            ids("good", &["009", "008", "007", "006"])
        );
        assert_eq!(
            of(GalleryReason::Miss),
            ids("crack", &["000", "001", "002", "003"])
        );
        // crack has 004 and 005 left; hole all three, of which the middle ones of two halves.
        let examples = of(GalleryReason::Example);
        assert_eq!(
            examples,
            [ids("crack", &["004", "005"]), ids("hole", &["000", "002"])].concat()
        );
        let mut seen: Vec<_> = gallery.iter().map(|g| (&g.kind, &g.id)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), gallery.len(), "each image once");
    }

    #[test]
    fn ties_are_broken_by_name_and_small_splits_give_small_galleries() {
        let images = vec![
            scored("good", "b", 0.5),
            scored("good", "a", 0.5),
            scored("dent", "x", 0.5),
        ];
        let gallery = pick_gallery(&images);
        assert_eq!(gallery.len(), 3);
        assert_eq!((gallery[0].id.as_str(), gallery[1].id.as_str()), ("b", "a"));
        assert_eq!(gallery[2].reason, GalleryReason::Miss);
        assert!(pick_gallery(&[]).is_empty());
    }

    #[test]
    fn thumbnails_keep_the_aspect_and_never_grow() {
        assert_eq!(thumbnail_size(64, 64), (64, 64));
        assert_eq!(
            thumbnail_size(1024, 512),
            (THUMBNAIL_SIDE, THUMBNAIL_SIDE / 2)
        );
        assert_eq!(thumbnail_size(10_000, 1), (THUMBNAIL_SIDE, 1));
    }

    #[test]
    fn the_truth_is_scaled_by_the_nearest_pixel() {
        let truth = GroundTruth {
            width: 4,
            height: 4,
            regions: vec![crate::data::GroundTruthRegion {
                source: "mask.png".into(),
                pixels: vec![0, 1, 4, 5],
                defect: None,
            }],
        };
        assert_eq!(truth_pixels(&truth, 2, 2), [true, false, false, false]);
    }
}
