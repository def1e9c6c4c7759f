//! The end of a run: per category the sweep point with the best validation score is registered
//! in the model registry; a training run promotes it, a retraining run promotes it only if the
//! promotion gate passes (the job measured candidate and current model). The run's
//! `summary.json` and `report.html` (drawn by `report`) show every job, the leaderboards (test
//! metrics beside, never used to choose) and each category's decision.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use slsg::infer::ModelCard;
use slsg::job::{JobResult, Plan, RunStatus};
use slsg::registry::{Registry, VersionCard, decide};
use slsg::store::StoreError;
use slsg::store::layout::RunKeys;

use crate::error::CoordinatorError;

/// What a run decided for one category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub version: String,
    pub promoted: bool,
    pub candidate_score: Option<f64>,
    pub current_score: Option<f64>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub status: RunStatus,
    /// The version registered per category.
    pub models: BTreeMap<String, VersionCard>,
    /// Per category, whether its version went into production and why.
    #[serde(default)]
    pub promotions: BTreeMap<String, Promotion>,
}

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
        let promotion = match (&current, plan.gate_tolerance, &result.gate) {
            (None, _, _) => Promotion {
                version: card.version.clone(),
                promoted: true,
                candidate_score: card.validation_score,
                current_score: None,
                reason: "the category's first model".into(),
            },
            (Some(current), Some(_), Some(report))
                if report.current.version.as_deref() != Some(current.as_str()) =>
            {
                Promotion {
                    version: card.version.clone(),
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
                    version: card.version.clone(),
                    promoted: decision.promote,
                    candidate_score: Some(report.candidate.score),
                    current_score: Some(report.current.score),
                    reason: decision.reason,
                }
            }
            (Some(_), Some(_), None) => Promotion {
                version: card.version.clone(),
                promoted: false,
                candidate_score: card.validation_score,
                current_score: stored_score,
                reason: "the job measured no comparison with the model in production".into(),
            },
            (Some(_), None, _) => Promotion {
                version: card.version.clone(),
                promoted: true,
                candidate_score: card.validation_score,
                current_score: stored_score,
                reason: format!(
                    "the best validation point of training run `{}` (an operator's run: no gate)",
                    plan.run
                ),
            },
        };
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

/// A sweep point as `key=value key=value` (empty for a run without a sweep).
pub fn sweep_point(point: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = point.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(" ")
}

/// A sweep point in parentheses after a model's name; nothing for a run without a sweep.
pub fn after_model(point: &BTreeMap<String, String>) -> String {
    if point.is_empty() {
        String::new()
    } else {
        format!(" ({})", sweep_point(point))
    }
}
