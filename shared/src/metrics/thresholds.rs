//! The thresholds at which pixel-level curves are evaluated, and per-threshold pixel counts.
//!
//! Exact mode uses every distinct score, which reproduces scikit-learn's pixel AUROC and the
//! official PRO and sPRO curves (the LOCO evaluation refines its thresholds towards exactly
//! this curve). Beyond `max_exact` pixels the thresholds are quantiles of a strided sample, so
//! memory stays bounded on full-resolution datasets; the result says which mode was used.

/// Distinct thresholds in descending order. Curve point `k` counts the pixels scoring
/// `≥ thresholds[k]`; the last threshold is the lowest score, so the last point counts all.
#[derive(Clone, Debug)]
pub struct ThresholdGrid {
    thresholds: Vec<f32>,
    exact: bool,
}

/// Thresholds kept when the scores are too many for exact mode.
const APPROXIMATE_THRESHOLDS: usize = 1 << 18;
/// Scores sampled to choose approximate thresholds.
const SAMPLE_SIZE: usize = 1 << 24;

impl ThresholdGrid {
    /// Chooses thresholds for the given maps. Exact when the total pixel count is at most
    /// `max_exact` and they have at most that many distinct values.
    pub fn from_maps(maps: &[&[f32]], max_exact: usize) -> ThresholdGrid {
        let total: usize = maps.iter().map(|m| m.len()).sum();
        let (min, max) = maps
            .iter()
            .flat_map(|m| m.iter())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if total == 0 {
            return ThresholdGrid {
                thresholds: Vec::new(),
                exact: true,
            };
        }
        if total <= max_exact {
            let mut values: Vec<f32> = maps.iter().flat_map(|m| m.iter().copied()).collect();
            values.sort_unstable_by(|a, b| b.total_cmp(a));
            values.dedup();
            return ThresholdGrid {
                thresholds: values,
                exact: true,
            };
        }
        let stride = total.div_ceil(SAMPLE_SIZE).max(1);
        let mut sample: Vec<f32> = maps
            .iter()
            .flat_map(|m| m.iter().copied())
            .step_by(stride)
            .collect();
        sample.sort_unstable_by(|a, b| b.total_cmp(a));
        sample.dedup();
        let keep = APPROXIMATE_THRESHOLDS.min(sample.len());
        let mut thresholds: Vec<f32> = (0..keep)
            .map(|i| sample[i * (sample.len() - 1) / (keep - 1).max(1)])
            .collect();
        thresholds.insert(0, max);
        thresholds.push(min);
        thresholds.dedup();
        ThresholdGrid {
            thresholds,
            exact: false,
        }
    }

    pub fn len(&self) -> usize {
        self.thresholds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }

    pub fn is_exact(&self) -> bool {
        self.exact
    }

    pub fn threshold(&self, point: usize) -> f32 {
        self.thresholds[point]
    }

    /// The first curve point that counts a pixel with this score.
    pub fn point_of(&self, score: f32) -> usize {
        self.thresholds
            .partition_point(|&t| t > score)
            .min(self.thresholds.len().saturating_sub(1))
    }
}

/// Running per-point sums: `add` at a point, then `cumulative` gives the value at every point.
#[derive(Clone, Debug)]
pub struct PointSums {
    deltas: Vec<f64>,
}

impl PointSums {
    pub fn new(points: usize) -> Self {
        Self {
            deltas: vec![0.0; points],
        }
    }

    pub fn add(&mut self, point: usize, value: f64) {
        self.deltas[point] += value;
    }

    pub fn merge(&mut self, other: &PointSums) {
        for (a, b) in self.deltas.iter_mut().zip(&other.deltas) {
            *a += b;
        }
    }

    pub fn cumulative(&self) -> Vec<f64> {
        let mut sum = 0.0;
        self.deltas
            .iter()
            .map(|d| {
                sum += d;
                sum
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_grid_has_every_distinct_score() {
        let a = [0.5f32, 0.1, 0.5];
        let b = [0.9f32, 0.1];
        let grid = ThresholdGrid::from_maps(&[&a, &b], 100);
        assert!(grid.is_exact());
        assert_eq!(grid.len(), 3);
        assert_eq!(
            (grid.point_of(0.9), grid.point_of(0.5), grid.point_of(0.1)),
            (0, 1, 2)
        );
    }

    #[test]
    fn approximate_grid_spans_min_to_max() {
        let values: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.37).sin()).collect();
        let grid = ThresholdGrid::from_maps(&[&values], 10);
        assert!(!grid.is_exact());
        assert_eq!(grid.point_of(f32::MAX), 0);
        let lowest = values.iter().copied().fold(f32::INFINITY, f32::min);
        assert_eq!(grid.threshold(grid.len() - 1), lowest);
        assert_eq!(grid.point_of(lowest), grid.len() - 1);
    }
}
