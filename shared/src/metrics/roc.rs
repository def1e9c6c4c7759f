//! Image-level ROC and AUROC with scikit-learn's handling of ties: samples with equal scores
//! form one step of the curve, so a tie between a positive and a negative counts one half.

/// Points of the ROC curve, from `(0, 0)` to `(1, 1)`, one per distinct score (descending).
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    /// The score at which each point starts predicting "anomalous" (`score ≥ threshold`);
    /// the first point has `+∞`.
    pub thresholds: Vec<f64>,
}

/// The ROC curve of `scores` against `labels` (`true` = anomalous); `None` unless both classes
/// are present.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Option<RocCurve> {
    assert_eq!(scores.len(), labels.len(), "one label per score");
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut curve = RocCurve {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let score = scores[order[i]];
        // `total_cmp` equality: a NaN (which callers refuse) still ends the run instead of
        // looping forever.
        while i < order.len() && scores[order[i]].total_cmp(&score).is_eq() {
            if labels[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        curve.fpr.push(fp as f64 / negatives as f64);
        curve.tpr.push(tp as f64 / positives as f64);
        curve.thresholds.push(score);
    }
    Some(curve)
}

/// Area under the ROC curve (`roc_auc_score`); `None` unless both classes are present.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let curve = roc_curve(scores, labels)?;
    Some(super::curve::trapezoid(&curve.fpr, &curve.tpr, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_inverted_and_tied() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(
            auroc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]),
            Some(0.5)
        );
        // one positive tied with one of two negatives: (1 + 0.5) / 2
        assert_eq!(auroc(&[0.3, 0.7, 0.7], &[false, false, true]), Some(0.75));
    }

    #[test]
    fn one_class_has_no_auroc() {
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auroc(&[], &[]), None);
    }
}
