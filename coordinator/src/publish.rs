//! The end of a run: per category the sweep point with the best validation score is registered
//! in the model registry and promoted; the run's `summary.json` and `report.html` show every job
//! and the leaderboards (test metrics beside, never used to choose).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use slsg::infer::ModelCard;
use slsg::job::{Plan, RunStatus};
use slsg::registry::{Registry, VersionCard};
use slsg::store::StoreError;
use slsg::store::layout::RunKeys;

use crate::error::CoordinatorError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub status: RunStatus,
    /// The version registered per category.
    pub models: BTreeMap<String, VersionCard>,
}

pub async fn publish_results(
    registry: &Registry,
    run: &RunKeys,
    plan: &Plan,
    status: &RunStatus,
) -> Result<RunSummary, CoordinatorError> {
    let store = registry.store();
    let mut models = BTreeMap::new();
    for (category, entries) in &status.leaderboard {
        let Some(best) = entries.first() else {
            continue;
        };
        let source = run.job(&best.job)?.model();
        let model_card: ModelCard =
            store
                .get_json(&source.card())
                .await?
                .ok_or_else(|| StoreError::Decode {
                    url: store.url().to_string(),
                    key: source.card().to_string(),
                    message: "the finished job's model card is missing".into(),
                })?;
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
            test_pixel_auroc: best.test_pixel_auroc,
            test_pro_auc: best.test_pro_auc,
        };
        let card = registry.register(&source, candidate).await?;
        let current = registry.current(category).await?;
        let current_score = match &current {
            Some(version) => registry.card(category, version).await?.validation_score,
            None => None,
        };
        let reason = if current.is_none() {
            "the category's first model".to_string()
        } else {
            format!("the best validation score of run `{}`", plan.run)
        };
        registry
            .promote(
                category,
                &card.version,
                (card.validation_score, current_score),
                &reason,
            )
            .await?;
        models.insert(category.clone(), card);
    }
    let summary = RunSummary {
        status: status.clone(),
        models,
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
            let point: Vec<String> = e.point.iter().map(|(k, v)| format!("{k}={v}")).collect();
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rank + 1,
                escape(&e.job),
                escape(&point.join(" ")),
                metric(e.validation_score),
                metric(e.test_image_auroc),
                metric(e.test_pixel_auroc),
                metric(e.test_pro_auc)
            ));
        }
        html.push_str("</table>");
    }
    html.push_str("<h2>Registered models</h2><ul>");
    for model in summary.models.values() {
        html.push_str(&format!(
            "<li>{}: models/{}/versions/{}</li>",
            escape(&model.category),
            escape(&model.category),
            escape(&model.version)
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
