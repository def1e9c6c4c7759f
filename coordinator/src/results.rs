//! The end of a run: per category the sweep point with the best validation score becomes the
//! registered model (`models/<category>/<version>/`, `models/<category>/current`); the run's
//! `summary.json` and `report.html` show every job and the leaderboards (test metrics beside,
//! never used to choose).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slsg::infer::{CARD_FILE, WEIGHTS_FILE};
use slsg::job::{JobId, Plan, RunStatus};
use slsg::store::{Key, Store};

use crate::actor::{now_ms, run_key};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub category: String,
    pub version: String,
    pub run: String,
    pub job: JobId,
    pub point: BTreeMap<String, String>,
    pub validation_score: Option<f64>,
    pub test_image_auroc: Option<f64>,
    pub test_pixel_auroc: Option<f64>,
    pub test_pro_auc: Option<f64>,
    pub registered_unix_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub status: RunStatus,
    /// The model registered per category.
    pub models: BTreeMap<String, RegisteredModel>,
}

pub async fn publish_results(
    store: &Store,
    plan: &Plan,
    status: &RunStatus,
) -> Result<RunSummary, Box<dyn std::error::Error + Send + Sync>> {
    let run = run_key(&plan.run)?;
    let mut models = BTreeMap::new();
    for (category, entries) in &status.leaderboard {
        let Some(best) = entries.first() else {
            continue;
        };
        let version = format!("{}-{}", plan.run, best.job);
        let source = run.join_all(["jobs", best.job.as_str(), "model"])?;
        let target = Key::new(["models", category.as_str(), version.as_str()])?;
        let registration = target.join("card.json")?;
        // A version names one job's model, so a re-run finds it registered already; its card is
        // written last, so its presence means the copy is whole.
        let model = match store.get(&registration).await? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{registration}: {e}"))?
            }
            None => {
                for file in [WEIGHTS_FILE, CARD_FILE] {
                    store.copy(&source.join(file)?, &target.join(file)?).await?;
                }
                let model = RegisteredModel {
                    category: category.clone(),
                    version: version.clone(),
                    run: plan.run.clone(),
                    job: best.job.clone(),
                    point: best.point.clone(),
                    validation_score: best.validation_score,
                    test_image_auroc: best.test_image_auroc,
                    test_pixel_auroc: best.test_pixel_auroc,
                    test_pro_auc: best.test_pro_auc,
                    registered_unix_ms: now_ms(),
                };
                store
                    .put(&registration, serde_json::to_vec_pretty(&model)?)
                    .await?;
                model
            }
        };
        store
            .put(
                &Key::new(["models", category.as_str(), "current"])?,
                version.into_bytes(),
            )
            .await?;
        models.insert(category.clone(), model);
    }
    let summary = RunSummary {
        status: status.clone(),
        models,
    };
    store
        .put(
            &run.join("summary.json")?,
            serde_json::to_vec_pretty(&summary)?,
        )
        .await?;
    store
        .put(
            &run.join("report.html")?,
            render_report(&summary).into_bytes(),
        )
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
            "<li>{}: models/{}/{}</li>",
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
