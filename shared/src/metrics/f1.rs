//! The F1-maximising threshold of image-level scores.

/// The largest F1 over thresholds `score ≥ t`, with that threshold; `None` without positives.
pub fn f1_max(scores: &[f64], labels: &[bool]) -> Option<(f64, f64)> {
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    if positives == 0.0 {
        return None;
    }
    let curve = super::roc::roc_curve(scores, labels).map(|c| (c.tpr, c.fpr, c.thresholds));
    let negatives = labels.len() as f64 - positives;
    match curve {
        Some((tpr, fpr, thresholds)) => {
            let mut best: Option<(f64, f64)> = None;
            for k in 1..tpr.len() {
                let (tp, fp) = (tpr[k] * positives, fpr[k] * negatives);
                let f1 = 2.0 * tp / (tp + fp + positives);
                if best.is_none_or(|(b, _)| f1 > b) {
                    best = Some((f1, thresholds[k]));
                }
            }
            best
        }
        // Only anomalous images: flagging all of them is perfect.
        None => Some((1.0, scores.iter().copied().fold(f64::INFINITY, f64::min))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_scores_reach_one() {
        let (f1, t) = f1_max(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]).unwrap();
        assert_eq!((f1, t), (1.0, 0.8));
    }

    #[test]
    fn overlapping_scores() {
        // thresholds 0.9: P=1 R=.5 F1=.667; 0.6: P=.5 R=.5; 0.4: P=.667 R=1 F1=.8; 0.1: .667
        let (f1, t) = f1_max(&[0.9, 0.6, 0.4, 0.1], &[true, false, true, false]).unwrap();
        assert!((f1 - 0.8).abs() < 1e-12 && t == 0.4, "{f1} {t}");
        assert_eq!(f1_max(&[0.3], &[false]), None);
    }
}
