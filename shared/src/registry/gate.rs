//! The promotion gate: a retrained candidate replaces the model in production only if, scored on
//! the same evaluation set by the same code in the same job, its validation score is not worse
//! than the current model's by more than a tolerance, and its false-alarm rate on the newly
//! arrived normal images (at its own threshold) is not higher. Pure: the job measures, this
//! decides.

use serde::{Deserialize, Serialize};

use crate::infer::EvaluationSet;

/// One model's scores in a gate comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateScores {
    /// The registered version scored (`None` for the candidate, which is not registered yet).
    pub version: Option<String>,
    pub image_auroc: Option<f64>,
    pub pixel_auroc: Option<f64>,
    /// The selection score (the mean of both AUROCs).
    pub score: f64,
    /// The model's own decision threshold on image scores.
    pub threshold: Option<f64>,
    /// The share of the held-out newly arrived normal images scored at or above the threshold;
    /// `None` without a threshold or without such images.
    pub false_alarm_rate: Option<f64>,
}

/// What a retraining job measured for the gate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// The set both models were scored on.
    pub evaluation_set: EvaluationSet,
    /// Newly arrived normal images held out from training and scored for false alarms.
    pub new_images: usize,
    pub candidate: GateScores,
    pub current: GateScores,
}

/// The gate's verdict and why.
#[derive(Clone, Debug, PartialEq)]
pub struct GateDecision {
    pub promote: bool,
    pub reason: String,
}

fn show(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{v:.4}"))
}

/// Promote when the candidate's score is at least the current one's minus `tolerance` and its
/// false-alarm rate on the new normal images is not higher (when both could be measured).
pub fn decide(report: &GateReport, tolerance: f64) -> GateDecision {
    let (candidate, current) = (&report.candidate, &report.current);
    if candidate.score < current.score - tolerance {
        return GateDecision {
            promote: false,
            reason: format!(
                "validation score {:.4} is below the current model's {:.4} by more than the tolerance {tolerance}",
                candidate.score, current.score
            ),
        };
    }
    if let (Some(new), Some(old)) = (candidate.false_alarm_rate, current.false_alarm_rate)
        && new > old
    {
        return GateDecision {
            promote: false,
            reason: format!(
                "false-alarm rate {new:.4} on the {} new normal images is above the current model's {old:.4}",
                report.new_images
            ),
        };
    }
    GateDecision {
        promote: true,
        reason: format!(
            "validation score {:.4} vs the current model's {:.4} (tolerance {tolerance}); false-alarm rate on the {} new normal images {} vs {}",
            candidate.score,
            current.score,
            report.new_images,
            show(candidate.false_alarm_rate),
            show(current.false_alarm_rate)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(candidate: (f64, Option<f64>), current: (f64, Option<f64>)) -> GateReport {
        let scores = |(score, far): (f64, Option<f64>), version: Option<&str>| GateScores {
            version: version.map(String::from),
            image_auroc: Some(score),
            pixel_auroc: Some(score),
            score,
            threshold: Some(0.5),
            false_alarm_rate: far,
        };
        GateReport {
            evaluation_set: EvaluationSet {
                fingerprint: "f".into(),
                normal_images: 4,
                anomalies: 12,
                labelled_anomalies: 0,
                seed: 0,
            },
            new_images: 3,
            candidate: scores(candidate, None),
            current: scores(current, Some("v1")),
        }
    }

    #[test]
    fn the_gate_weighs_score_and_false_alarms() {
        let d = decide(&report((0.95, Some(0.0)), (0.90, Some(0.67))), 0.01);
        assert!(d.promote, "{}", d.reason);
        assert!(
            d.reason.contains("0.9500") && d.reason.contains("0.9000"),
            "{}",
            d.reason
        );
        // Within the tolerance.
        assert!(decide(&report((0.895, None), (0.90, None)), 0.01).promote);
        let worse = decide(&report((0.60, Some(0.0)), (0.90, Some(0.67))), 0.01);
        assert!(
            !worse.promote && worse.reason.contains("below"),
            "{}",
            worse.reason
        );
        let alarms = decide(&report((0.95, Some(0.67)), (0.90, Some(0.33))), 0.01);
        assert!(
            !alarms.promote && alarms.reason.contains("false-alarm rate"),
            "{}",
            alarms.reason
        );
        // Equal false alarms are not higher.
        assert!(decide(&report((0.95, Some(0.33)), (0.90, Some(0.33))), 0.0).promote);
    }
}
