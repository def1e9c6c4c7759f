//! The end of a run: per category the sweep point with the best validation score is registered
//! in the model registry; a training run promotes it, a retraining run promotes it only if the
//! promotion gate passes (the job measured candidate and current model). The run's
//! `summary.json` and `report.html` (drawn by `report`) show every job, the leaderboards (test
//! metrics beside, never used to choose) and each category's decision.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use slsg::infer::ModelCard;
use slsg::job::{JobResult, Plan, RunStatus};
use slsg::registry::{GateReport, Registry, VersionCard, decide};
use slsg::store::StoreError;
use slsg::store::layout::RunKeys;

use crate::error::CoordinatorError;
use crate::summary::{Promotion, RunSummary};

pub async fn publish_results(
    registry: &Registry,
    run: &RunKeys,
    plan: &Plan,
    status: &RunStatus,
) -> Result<RunSummary, CoordinatorError> {
    let store = registry.store();
    let missing = |key: String, what: &str| StoreError::Decode {
        url: store.url().to_string(),
        key,
        message: format!("the finished job's {what} is missing"),
    };
    let mut models = BTreeMap::new();
    let mut promotions = BTreeMap::new();
    for (category, entries) in &status.leaderboard {
        let Some(best) = entries.first() else {
            continue;
        };
        let source = run.job(&best.job)?;
        let model_card: ModelCard = store
            .get_json(&source.model().card())
            .await?
            .ok_or_else(|| missing(source.model().card().to_string(), "model card"))?;
        let result: JobResult = store
            .get_json(&source.result())
            .await?
            .ok_or_else(|| missing(source.result().to_string(), "result"))?;
        let candidate = VersionCard {
            category: category.clone(),
            version: format!("{}-{}", plan.run, best.job),
            run: plan.run.clone(),
            job: best.job.clone(),
            point: best.point.clone(),
            validation_score: best.validation_score,
            evaluation_set: model_card.validation.map(|v| v.set),
            data_fingerprint: model_card.training.data_fingerprint,
            registered_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            test_image_auroc: best.test_image_auroc,
            image_score: best.image_score,
            test_pixel_auroc: best.test_pixel_auroc,
            test_pro_auc: best.test_pro_auc,
        };
        let card = registry.register(&source, candidate).await?;
        let current = registry.current(category).await?;
        let stored_score = match &current {
            Some(version) => registry.card(category, version).await?.validation_score,
            None => None,
        };
        let promotion = promotion(
            &card,
            current.as_deref(),
            stored_score,
            plan,
            result.gate.as_ref(),
        );
        let scores = (promotion.candidate_score, promotion.current_score);
        if promotion.promoted {
            registry
                .promote(category, &card.version, scores, &promotion.reason)
                .await?;
        } else if current.as_deref() != Some(card.version.as_str()) {
            registry
                .keep(category, &card.version, scores, &promotion.reason)
                .await?;
        }
        promotions.insert(category.clone(), promotion);
        models.insert(category.clone(), card);
    }
    let summary = RunSummary {
        status: status.clone(),
        models,
        promotions,
    };
    store.put_json(&run.summary(), &summary).await?;
    let report = crate::report::build_report(store, run, plan, &summary).await?;
    store.put(&run.report(), report.into_bytes()).await?;
    Ok(summary)
}

/// What a run decides for a category's best point, registered as `card`: a category's first
/// model, and the best point of an operator's training run, go into production; a retraining
/// run's only when the promotion gate passes against the model that is still in production
/// (`current`, whose stored selection score is `stored_score`).
fn promotion(
    card: &VersionCard,
    current: Option<&str>,
    stored_score: Option<f64>,
    plan: &Plan,
    gate: Option<&GateReport>,
) -> Promotion {
    let version = card.version.clone();
    match (current, plan.gate_tolerance, gate) {
        (None, _, _) => Promotion {
            version,
            promoted: true,
            candidate_score: card.validation_score,
            current_score: None,
            reason: "the category's first model".into(),
        },
        (Some(current), Some(_), Some(report))
            if report.current.version.as_deref() != Some(current) =>
        {
            Promotion {
                version,
                promoted: false,
                candidate_score: Some(report.candidate.score),
                current_score: Some(report.current.score),
                reason: format!(
                    "the model in production changed during the run (compared with `{}`, now `{current}`)",
                    report.current.version.as_deref().unwrap_or("none")
                ),
            }
        }
        (Some(_), Some(tolerance), Some(report)) => {
            let decision = decide(report, tolerance);
            Promotion {
                version,
                promoted: decision.promote,
                candidate_score: Some(report.candidate.score),
                current_score: Some(report.current.score),
                reason: decision.reason,
            }
        }
        (Some(_), Some(_), None) => Promotion {
            version,
            promoted: false,
            candidate_score: card.validation_score,
            current_score: stored_score,
            reason: "the job measured no comparison with the model in production".into(),
        },
        (Some(_), None, _) => Promotion {
            version,
            promoted: true,
            candidate_score: card.validation_score,
            current_score: stored_score,
            reason: format!(
                "the best validation point of training run `{}` (an operator's run: no gate)",
                plan.run
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use slsg::infer::EvaluationSet;
    use slsg::registry::GateScores;

    use super::*;
    use crate::testing::plan;

    fn card() -> VersionCard {
        VersionCard {
            category: "cat".into(),
            version: "r-s1".into(),
            run: "r".into(),
            job: "s1".into(),
            point: BTreeMap::new(),
            validation_score: Some(0.9),
            evaluation_set: None,
            data_fingerprint: "f".into(),
            registered_unix_ms: 0,
            test_image_auroc: None,
            image_score: None,
            test_pixel_auroc: None,
            test_pro_auc: None,
        }
    }

    fn scores(version: Option<&str>, score: f64) -> GateScores {
        GateScores {
            version: version.map(String::from),
            image_auroc: Some(score),
            pixel_auroc: Some(score),
            score,
            threshold: None,
            false_alarm_rate: None,
        }
    }

    /// The job compared the candidate (scoring `candidate`) with `compared` (scoring 0.8).
    fn gate(compared: &str, candidate: f64) -> GateReport {
        GateReport {
            evaluation_set: EvaluationSet {
                fingerprint: "e".into(),
                normal_images: 4,
                anomalies: 4,
                labelled_anomalies: 0,
                seed: 0,
            },
            new_images: 0,
            candidate: scores(None, candidate),
            current: scores(Some(compared), 0.8),
        }
    }

    fn retraining() -> Plan {
        Plan {
            gate_tolerance: Some(0.01),
            ..plan()
        }
    }

    #[test]
    fn a_first_model_goes_into_production_whatever_the_run() {
        for run in [plan(), retraining()] {
            let decided = promotion(&card(), None, None, &run, None);
            assert!(decided.promoted);
            assert_eq!(decided.reason, "the category's first model");
            assert_eq!(decided.candidate_score, Some(0.9));
        }
    }

    #[test]
    fn an_operators_training_run_promotes_its_best_point_without_a_gate() {
        let decided = promotion(
            &card(),
            Some("old"),
            Some(0.95),
            &plan(),
            Some(&gate("old", 0.1)),
        );
        assert!(decided.promoted, "no gate in a training run");
        assert_eq!(decided.current_score, Some(0.95));
        assert!(
            decided.reason.contains("training run `r`"),
            "{}",
            decided.reason
        );
    }

    #[test]
    fn a_retraining_run_promotes_only_what_passes_the_gate() {
        let better = promotion(
            &card(),
            Some("old"),
            None,
            &retraining(),
            Some(&gate("old", 0.85)),
        );
        assert!(better.promoted, "{}", better.reason);
        assert_eq!(
            (better.candidate_score, better.current_score),
            (Some(0.85), Some(0.8))
        );
        let worse = promotion(
            &card(),
            Some("old"),
            None,
            &retraining(),
            Some(&gate("old", 0.5)),
        );
        assert!(!worse.promoted, "{}", worse.reason);
        let unmeasured = promotion(&card(), Some("old"), Some(0.8), &retraining(), None);
        assert!(!unmeasured.promoted);
        assert!(
            unmeasured.reason.contains("no comparison"),
            "{}",
            unmeasured.reason
        );
    }

    #[test]
    fn a_gate_measured_against_a_model_since_replaced_promotes_nothing() {
        let decided = promotion(
            &card(),
            Some("newer"),
            None,
            &retraining(),
            Some(&gate("old", 0.99)),
        );
        assert!(!decided.promoted);
        assert!(
            decided.reason.contains("compared with `old`, now `newer`"),
            "{}",
            decided.reason
        );
    }
}
