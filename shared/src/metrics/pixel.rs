//! Per-threshold pixel statistics of a group of test images: defect-free and defect pixel
//! counts (FPR, TPR), PRO overlaps and sPRO overlaps, accumulated one image at a time.

use super::curve::with_origin;
use super::pro::add_pro_regions;
use super::spro::add_spro_regions;
use super::thresholds::{PointSums, ThresholdGrid};
use crate::data::GroundTruth;

#[derive(Clone, Debug)]
pub struct PixelStats {
    /// Defect-free pixels (FPR numerator per point).
    pub negatives: PointSums,
    pub negative_total: u64,
    /// Defect pixels (TPR numerator per point).
    pub positives: PointSums,
    pub positive_total: u64,
    /// Sum over connected components of the per-component overlap.
    pub pro: PointSums,
    pub pro_regions: usize,
    /// Sum over LOCO regions of the saturated overlap.
    pub spro: PointSums,
    pub spro_regions: usize,
}

impl PixelStats {
    pub fn new(points: usize) -> Self {
        Self {
            negatives: PointSums::new(points),
            negative_total: 0,
            positives: PointSums::new(points),
            positive_total: 0,
            pro: PointSums::new(points),
            pro_regions: 0,
            spro: PointSums::new(points),
            spro_regions: 0,
        }
    }

    /// Adds one image; `map` is row-major at the ground truth's size.
    pub fn add_image(&mut self, grid: &ThresholdGrid, map: &[f32], ground_truth: &GroundTruth) {
        let points: Vec<u32> = map.iter().map(|&s| grid.point_of(s) as u32).collect();
        let union = ground_truth.union_mask();
        for (&point, &defect) in points.iter().zip(union.as_bytes()) {
            if defect != 0 {
                self.positives.add(point as usize, 1.0);
                self.positive_total += 1;
            } else {
                self.negatives.add(point as usize, 1.0);
                self.negative_total += 1;
            }
        }
        self.pro_regions += add_pro_regions(&mut self.pro, &points, &union);
        self.spro_regions += add_spro_regions(&mut self.spro, &points, &ground_truth.regions);
    }

    pub fn merge(&mut self, other: &PixelStats) {
        self.negatives.merge(&other.negatives);
        self.negative_total += other.negative_total;
        self.positives.merge(&other.positives);
        self.positive_total += other.positive_total;
        self.pro.merge(&other.pro);
        self.pro_regions += other.pro_regions;
        self.spro.merge(&other.spro);
        self.spro_regions += other.spro_regions;
    }

    /// FPR at every point, `None` without defect-free pixels.
    pub fn false_positive_rates(&self) -> Option<Vec<f64>> {
        (self.negative_total > 0).then(|| {
            let n = self.negative_total as f64;
            self.negatives
                .cumulative()
                .into_iter()
                .map(|c| c / n)
                .collect()
        })
    }

    /// TPR at every point, `None` without defect pixels.
    pub fn true_positive_rates(&self) -> Option<Vec<f64>> {
        (self.positive_total > 0).then(|| {
            let p = self.positive_total as f64;
            self.positives
                .cumulative()
                .into_iter()
                .map(|c| c / p)
                .collect()
        })
    }

    /// Pixel AUROC over all pixels (scikit-learn's `roc_auc_score` on the flattened maps).
    pub fn auroc(&self) -> Option<f64> {
        let fpr = self.false_positive_rates()?;
        let tpr = self.true_positive_rates()?;
        Some(super::curve::trapezoid(
            &with_origin(&fpr),
            &with_origin(&tpr),
            None,
        ))
    }

    /// The largest F1 over thresholds, with the threshold that reaches it.
    pub fn f1_max(&self, grid: &ThresholdGrid) -> Option<(f64, f64)> {
        if self.positive_total == 0 {
            return None;
        }
        let (tp, fp) = (self.positives.cumulative(), self.negatives.cumulative());
        let p = self.positive_total as f64;
        let mut best: Option<(f64, f64)> = None;
        for k in 0..tp.len() {
            let f1 = 2.0 * tp[k] / (tp[k] + fp[k] + p);
            if best.is_none_or(|(b, _)| f1 > b) {
                best = Some((f1, grid.threshold(k) as f64));
            }
        }
        best
    }
}
