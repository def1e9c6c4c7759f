//! The end of a run: per category the sweep point with the best validation score is registered
//! in the model registry; a training run promotes it, a retraining run promotes it only if the
//! promotion gate passes (the job measured candidate and current model). The run's
//! `summary.json` and `report.html` show every job, the leaderboards (test metrics beside, never
//! used to choose) and each category's decision.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use slsg::infer::ModelCard;
use slsg::job::{JobResult, Plan, RunStatus};
use slsg::metrics::ImageScore;
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
    store
        .put(&run.report(), render_report(&summary).into_bytes())
        .await?;
    Ok(summary)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn metric(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{v:.4}"))
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

/// A self-contained HTML page: the leaderboards, the registered models, every job.
pub fn render_report(summary: &RunSummary) -> String {
    let mut html = format!(
        "<!doctype html><meta charset=utf-8><title>slsg run {0}</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px}}</style><h1>Run {0}</h1>",
        escape(&summary.status.run)
    );
    html.push_str("<h2>Leaderboards (ranked on validation data; test metrics shown beside)</h2>");
    for (category, entries) in &summary.status.leaderboard {
        html.push_str(&format!("<h3>{}</h3><table><tr><th>rank</th><th>job</th><th>sweep point</th><th>validation score</th><th>test image AUROC</th><th>test pixel AUROC</th><th>test AU-PRO</th></tr>", escape(category)));
        for (rank, e) in entries.iter().enumerate() {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rank + 1,
                escape(&e.job),
                escape(&sweep_point(&e.point)),
                metric(e.validation_score),
                ImageScore::show_auroc(e.test_image_auroc, e.image_score, 4),
                metric(e.test_pixel_auroc),
                metric(e.test_pro_auc)
            ));
        }
        html.push_str("</table>");
    }
    html.push_str("<h2>Registered models</h2><ul>");
    for model in summary.models.values() {
        let decision = summary
            .promotions
            .get(&model.category)
            .map_or(String::new(), |p| {
                format!(
                    " — {}: {}",
                    if p.promoted {
                        "promoted"
                    } else {
                        "kept the current model"
                    },
                    escape(&p.reason)
                )
            });
        html.push_str(&format!(
            "<li>{}: models/{}/versions/{}{}{decision}</li>",
            escape(&model.category),
            escape(&model.category),
            escape(&model.version),
            escape(&after_model(&model.point))
        ));
    }
    html.push_str("</ul><h2>Jobs</h2><table><tr><th>job</th><th>kind</th><th>category</th><th>state</th><th>attempts</th></tr>");
    for job in &summary.status.jobs {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&job.id),
            job.kind.name(),
            escape(&job.category),
            job.state.name(),
            job.attempts
        ));
    }
    html.push_str("</table>");
    html
}
