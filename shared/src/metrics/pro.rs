//! PRO (per-region overlap, MVTec AD): every 8-connected component of the ground truth weighs
//! the same; the overlap curve against the FPR is integrated up to a limit (0.3) and normalised.

use super::curve::{trapezoid, with_origin};
use super::thresholds::PointSums;
use crate::raster::{Connectivity, Mask, label_components};

/// Adds each connected component of `union`: every pixel adds `1 / component area` at its
/// point. Returns the number of components.
pub(crate) fn add_pro_regions(sums: &mut PointSums, points: &[u32], union: &Mask) -> usize {
    let components = label_components(
        union.as_bytes(),
        union.width(),
        union.height(),
        Connectivity::Eight,
    );
    let areas = components.areas();
    for (&label, &point) in components.labels.iter().zip(points) {
        if label > 0 {
            sums.add(point as usize, 1.0 / areas[label as usize - 1] as f64);
        }
    }
    components.count as usize
}

/// Area under an overlap-versus-FPR curve up to `limit`, divided by `limit`. `fpr` and
/// `overlap` hold one value per threshold point, starting from the highest threshold.
pub fn area_to_limit(fpr: &[f64], overlap: &[f64], limit: f64) -> f64 {
    trapezoid(&with_origin(fpr), &with_origin(overlap), Some(limit)) / limit
}

/// The AU-PRO of accumulated statistics, `None` without regions or defect-free pixels.
pub fn pro_auc(stats: &super::PixelStats, limit: f64) -> Option<f64> {
    let fpr = stats.false_positive_rates()?;
    let overlap = mean_overlaps(&stats.pro, stats.pro_regions)?;
    Some(area_to_limit(&fpr, &overlap, limit))
}

/// The mean overlap over `regions` at every point, `None` without regions.
pub(crate) fn mean_overlaps(sums: &PointSums, regions: usize) -> Option<Vec<f64>> {
    (regions > 0).then(|| {
        sums.cumulative()
            .into_iter()
            .map(|v| v / regions as f64)
            .collect()
    })
}
