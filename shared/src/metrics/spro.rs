//! AU-sPRO of MVTec LOCO AD as its official evaluation defines it: per ground-truth region
//! (one PNG), sPRO = min(TP / saturation area, 1), with the saturation area from
//! `defects_config.json` (relative or absolute); FPR over pixels that are defect-free in every
//! region; the mean over regions integrated up to each FPR limit and divided by it.

use super::thresholds::PointSums;
use crate::data::GroundTruthRegion;

/// The integration limits the official evaluation reports.
pub const SPRO_LIMITS: [f64; 5] = [0.01, 0.05, 0.1, 0.3, 1.0];

/// A limit written as the official evaluation's JSON writes it (Python's float repr).
pub fn limit_key(limit: f64) -> String {
    if limit.fract() == 0.0 {
        format!("{limit:.1}")
    } else {
        format!("{limit}")
    }
}

/// Adds every region that has a defect type: its `s` (saturation area) lowest-point pixels
/// each add `1 / s`, so the sum at a point is `min(TP, s) / s`. Returns the region count.
pub(crate) fn add_spro_regions(
    sums: &mut PointSums,
    points: &[u32],
    regions: &[GroundTruthRegion],
) -> usize {
    let mut count = 0;
    for region in regions {
        let Some(defect) = &region.defect else {
            continue;
        };
        let mut region_points: Vec<u32> =
            region.pixels.iter().map(|&p| points[p as usize]).collect();
        region_points.sort_unstable();
        let saturation = defect.saturation_area(region_points.len() as u64) as usize;
        for &point in region_points.iter().take(saturation) {
            sums.add(point as usize, 1.0 / saturation as f64);
        }
        count += 1;
    }
    count
}

/// The AU-sPRO at `limit` of accumulated statistics, `None` without regions or defect-free
/// pixels.
pub fn spro_auc(stats: &super::PixelStats, limit: f64) -> Option<f64> {
    let fpr = stats.false_positive_rates()?;
    let overlap = super::pro::mean_overlaps(&stats.spro, stats.spro_regions)?;
    Some(super::pro::area_to_limit(&fpr, &overlap, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_keys_match_python() {
        let keys: Vec<String> = SPRO_LIMITS.iter().map(|&l| limit_key(l)).collect();
        assert_eq!(keys, ["0.01", "0.05", "0.1", "0.3", "1.0"]);
    }
}
