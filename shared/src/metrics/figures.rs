//! The curves behind the metrics, kept for drawing: image and pixel ROC, the PRO curve up to its
//! limit and LOCO's sPRO curve per anomaly type, each thinned to a few hundred points.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::curve::with_origin;
use super::pixel::PixelStats;
use super::pro::mean_overlaps;
use super::roc::RocCurve;

/// At most this many points per curve: a drawn curve needs no more, and a stage's figures stay
/// a few tens of kilobytes however many pixels its test split has.
pub const MAX_CURVE_POINTS: usize = 256;

/// A curve from its first point to its last, `x` ascending.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CurvePoints {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

impl CurvePoints {
    /// The points up to `x_limit` (the curve interpolated at the limit ends it), thinned to
    /// `MAX_CURVE_POINTS` keeping the first and last.
    pub fn new(x: &[f64], y: &[f64], x_limit: Option<f64>) -> CurvePoints {
        assert_eq!(x.len(), y.len(), "one y per x");
        let mut points = CurvePoints::default();
        for i in 0..x.len() {
            if let Some(limit) = x_limit
                && x[i] > limit
            {
                if i > 0 && x[i - 1] < limit {
                    let t = (limit - x[i - 1]) / (x[i] - x[i - 1]);
                    points.x.push(limit);
                    points.y.push(y[i - 1] + t * (y[i] - y[i - 1]));
                }
                break;
            }
            points.x.push(x[i]);
            points.y.push(y[i]);
        }
        points.thinned(MAX_CURVE_POINTS)
    }

    /// Every k-th point, k chosen so that at most `most` remain, and always the last.
    fn thinned(self, most: usize) -> CurvePoints {
        let n = self.x.len();
        if n <= most || most < 2 {
            return self;
        }
        let step = (n - 1).div_ceil(most - 1);
        let keep = |i: usize| i.is_multiple_of(step) || i == n - 1;
        CurvePoints {
            x: (0..n).filter(|&i| keep(i)).map(|i| self.x[i]).collect(),
            y: (0..n).filter(|&i| keep(i)).map(|i| self.y[i]).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.x.len()
    }

    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
}

/// The curves of one category's evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// False-positive rate → true-positive rate over images.
    pub image_roc: Option<CurvePoints>,
    /// False-positive rate → true-positive rate over pixels.
    pub pixel_roc: Option<CurvePoints>,
    /// False-positive rate (up to the AU-PRO limit) → mean per-region overlap.
    pub pro: Option<CurvePoints>,
    /// LOCO: anomaly type → false-positive rate → mean saturated per-region overlap.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spro: BTreeMap<String, CurvePoints>,
}

pub(crate) fn image_roc(curve: &RocCurve) -> CurvePoints {
    CurvePoints::new(&curve.fpr, &curve.tpr, None)
}

pub(crate) fn pixel_roc(stats: &PixelStats) -> Option<CurvePoints> {
    let fpr = stats.false_positive_rates()?;
    let tpr = stats.true_positive_rates()?;
    Some(CurvePoints::new(
        &with_origin(&fpr),
        &with_origin(&tpr),
        None,
    ))
}

/// The PRO curve up to `limit`.
pub(crate) fn pro(stats: &PixelStats, limit: f64) -> Option<CurvePoints> {
    let fpr = stats.false_positive_rates()?;
    let overlap = mean_overlaps(&stats.pro, stats.pro_regions)?;
    Some(CurvePoints::new(
        &with_origin(&fpr),
        &with_origin(&overlap),
        Some(limit),
    ))
}

/// The sPRO curve up to `limit`.
pub(crate) fn spro(stats: &PixelStats, limit: f64) -> Option<CurvePoints> {
    let fpr = stats.false_positive_rates()?;
    let overlap = mean_overlaps(&stats.spro, stats.spro_regions)?;
    Some(CurvePoints::new(
        &with_origin(&fpr),
        &with_origin(&overlap),
        Some(limit),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_curve_ends_at_its_limit_interpolated() {
        let curve = CurvePoints::new(&[0.0, 0.2, 0.4], &[0.0, 0.5, 1.0], Some(0.3));
        assert_eq!(curve.x, [0.0, 0.2, 0.3]);
        assert!((curve.y[2] - 0.75).abs() < 1e-12);
    }

    #[test]
    fn a_curve_exactly_at_its_limit_keeps_its_point_and_stops() {
        let curve = CurvePoints::new(&[0.0, 0.3, 0.3, 0.5], &[0.0, 0.4, 0.6, 1.0], Some(0.3));
        assert_eq!(curve.x, [0.0, 0.3, 0.3]);
        assert_eq!(curve.y, [0.0, 0.4, 0.6]);
    }

    #[test]
    fn long_curves_are_thinned_keeping_both_ends() {
        let x: Vec<f64> = (0..10_001).map(|i| i as f64 / 10_000.0).collect();
        let y: Vec<f64> = x.iter().map(|v| v.sqrt()).collect();
        let curve = CurvePoints::new(&x, &y, None);
        assert!(curve.len() <= MAX_CURVE_POINTS, "{} points", curve.len());
        assert!(curve.len() > MAX_CURVE_POINTS / 2, "{} points", curve.len());
        assert_eq!((curve.x[0], curve.y[0]), (0.0, 0.0));
        assert_eq!(curve.x.last(), Some(&1.0));
        assert!(curve.x.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn short_curves_are_kept_whole() {
        let curve = CurvePoints::new(&[0.0, 0.5, 1.0], &[0.0, 1.0, 1.0], None);
        assert_eq!(curve.len(), 3);
    }
}
