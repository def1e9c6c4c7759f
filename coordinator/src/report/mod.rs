//! The run report: one self-contained HTML page (`runs/<run>/report.html`) drawn from what the
//! run left in the store — per category the chosen model's curves, score histogram, training
//! curves, a gallery of test images and simulated anomalies; across the run the leaderboards with
//! their sweep points, failed and retried jobs, and each promotion decision.

pub mod chart;
mod curve;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;
use slsg::fit::report::{GalleryReason, StageFigures};
use slsg::job::{JobResult, JobState, JobStatus, Plan};
use slsg::metrics::{CurvePoints, Evaluation, ImageScore};
use slsg::store::layout::{RunKeys, RunPath, RunPathError, StageKeys};
use slsg::store::{Key, Store, StoreError};

use crate::summary::{RunSummary, sweep_point};
use chart::{Histogram, LineChart, ParallelCoordinates, Series};
use curve::TrainingCurve;

const TEMPLATE: &str = include_str!("report.html");

/// A run in a store: `<store URL>/runs/<run>` (`s3://bucket/prefix/runs/nightly`,
/// `file:///srv/store/runs/nightly` or a local path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunUrl {
    pub store: String,
    pub run: String,
}

/// A run URL that names no run.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {source}")]
pub struct RunUrlError {
    url: String,
    source: RunPathError,
}

impl RunUrl {
    pub fn parse(url: &str) -> Result<RunUrl, RunUrlError> {
        let path = RunPath::parse(url).map_err(|source| RunUrlError {
            url: url.to_string(),
            source,
        })?;
        Ok(RunUrl {
            store: path.store.to_string(),
            run: path.run.to_string(),
        })
    }
}

#[derive(Serialize)]
struct Page {
    run: String,
    finished: bool,
    retraining: bool,
    version: &'static str,
    categories: Vec<CategorySection>,
    leaderboards: Vec<Leaderboard>,
    problems: Vec<Problem>,
    promotions: Vec<PromotionRow>,
    jobs: Vec<JobRow>,
}

#[derive(Serialize)]
struct CategorySection {
    name: String,
    job: String,
    point: String,
    metrics: Vec<(String, String)>,
    charts: Vec<String>,
    gallery: Vec<GalleryGroup>,
    simulated: Option<String>,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct GalleryGroup {
    title: &'static str,
    pictures: Vec<Picture>,
}

#[derive(Serialize)]
struct Picture {
    source: String,
    caption: String,
}

#[derive(Serialize)]
struct Leaderboard {
    category: String,
    rows: Vec<Vec<String>>,
    chart: Option<String>,
    /// The SegNet steps the category's trials used, against the budget.
    steps_used: String,
}

#[derive(Serialize)]
struct Problem {
    job: String,
    kind: &'static str,
    category: String,
    state: &'static str,
    attempts: u32,
    error: String,
}

#[derive(Serialize)]
struct PromotionRow {
    category: String,
    version: String,
    decision: &'static str,
    candidate: String,
    current: String,
    reason: String,
}

#[derive(Serialize)]
struct JobRow {
    id: String,
    kind: &'static str,
    category: String,
    state: &'static str,
    attempts: u32,
}

/// The report of a finished run, from its summary, its plan and its jobs' artifacts. An
/// artifact that is missing or cannot be read becomes a note in its category's section, so a
/// run with a failed category still gets a report; only a store that cannot be read at all
/// fails it.
pub async fn build_report(
    store: &Store,
    run: &RunKeys,
    plan: &Plan,
    summary: &RunSummary,
) -> Result<String, StoreError> {
    let status = &summary.status;
    let mut categories = BTreeMap::new();
    for (category, entries) in &status.leaderboard {
        if let Some(best) = entries.first() {
            let section = category_section(store, run, plan, &status.jobs, category, best).await?;
            categories.insert(category.clone(), section);
        }
    }
    for job in &status.jobs {
        if !categories.contains_key(&job.category) {
            categories.insert(
                job.category.clone(),
                without_model(&job.category, &status.jobs),
            );
        }
    }
    let page = Page {
        run: status.run.clone(),
        finished: status.finished,
        retraining: plan.gate_tolerance.is_some(),
        version: env!("CARGO_PKG_VERSION"),
        categories: categories.into_values().collect(),
        leaderboards: status
            .leaderboard
            .iter()
            .map(|(category, entries)| leaderboard(category, entries, status.steps_used(category)))
            .collect(),
        problems: status.jobs.iter().filter_map(problem).collect(),
        promotions: summary
            .promotions
            .iter()
            .map(|(category, p)| PromotionRow {
                category: category.clone(),
                version: p.version.clone(),
                decision: if p.promoted {
                    "promoted"
                } else {
                    "kept the current model"
                },
                candidate: metric(p.candidate_score),
                current: metric(p.current_score),
                reason: p.reason.clone(),
            })
            .collect(),
        jobs: status
            .jobs
            .iter()
            .map(|job| JobRow {
                id: job.id.clone(),
                kind: job.kind.name(),
                category: job.category.clone(),
                state: job.state_name(),
                attempts: job.attempts,
            })
            .collect(),
    };
    Ok(render(&page))
}

fn render(page: &Page) -> String {
    let mut environment = Environment::new();
    environment.set_auto_escape_callback(|_| AutoEscape::Html);
    environment
        .add_template("report.html", TEMPLATE)
        .expect("the report template parses");
    environment
        .get_template("report.html")
        .and_then(|template| template.render(page))
        .expect("the report template renders the page it was written for")
}

fn metric(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{v:.4}"))
}

/// A job that failed, is blocked, or needed more than one attempt.
fn problem(job: &JobStatus) -> Option<Problem> {
    let error = match &job.state {
        JobState::Failed { error } => error.clone(),
        JobState::Blocked { by } => format!("blocked: job {by} failed"),
        JobState::Skipped { reason } => reason.clone(),
        _ if job.attempts > 1 || job.last_error.is_some() => job.last_error.clone().map_or_else(
            || format!("finished after {} attempts", job.attempts),
            |e| format!("an earlier attempt failed: {e}"),
        ),
        _ => return None,
    };
    Some(Problem {
        job: job.id.clone(),
        kind: job.kind.name(),
        category: job.category.clone(),
        state: job.state_name(),
        attempts: job.attempts,
        error,
    })
}

fn leaderboard(
    category: &str,
    entries: &[slsg::job::LeaderboardEntry],
    steps_used: String,
) -> Leaderboard {
    let rows = entries
        .iter()
        .enumerate()
        .map(|(rank, e)| {
            vec![
                (rank + 1).to_string(),
                e.job.clone(),
                sweep_point(&e.point),
                metric(e.validation_score),
                ImageScore::show_auroc(e.test_image_auroc, e.image_score, 4),
                metric(e.test_pixel_auroc),
                metric(e.test_pro_auc),
                match &e.stopped_early {
                    Some(stopped) => format!("{} (stopped early: {})", e.steps, stopped.reason),
                    None => e.steps.to_string(),
                },
            ]
        })
        .collect();
    let fields: Vec<&String> = entries
        .first()
        .map(|e| e.point.keys().collect())
        .unwrap_or_default();
    let chart = (entries.len() > 1 && !fields.is_empty()).then(|| {
        let mut axes: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        axes.push("validation score".into());
        ParallelCoordinates {
            title: format!("{category}: sweep points"),
            axes,
            rows: entries
                .iter()
                .map(|e| {
                    let mut row: Vec<String> = fields
                        .iter()
                        .map(|f| e.point.get(*f).cloned().unwrap_or_default())
                        .collect();
                    row.push(
                        e.validation_score
                            .map_or_else(String::new, |s| format!("{s:.4}")),
                    );
                    row
                })
                .collect(),
        }
        .to_svg()
    });
    Leaderboard {
        category: category.to_string(),
        rows,
        chart,
        steps_used,
    }
}

/// Reads an artifact; `Ok(None)` with a note when it is missing.
async fn artifact(
    store: &Store,
    key: &Key,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<u8>>, StoreError> {
    match store.get(key).await? {
        Some(bytes) => Ok(Some(bytes)),
        None => {
            notes.push(format!("no {what} in the store ({})", store.describe(key)));
            Ok(None)
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    store: &Store,
    key: &Key,
    notes: &mut Vec<String>,
) -> Option<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| notes.push(format!("{} could not be read: {e}", store.describe(key))))
        .ok()
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", STANDARD.encode(bytes))
}

async fn category_section(
    store: &Store,
    run: &RunKeys,
    plan: &Plan,
    jobs: &[JobStatus],
    category: &str,
    best: &slsg::job::LeaderboardEntry,
) -> Result<CategorySection, StoreError> {
    let mut notes = Vec::new();
    let mut charts = Vec::new();
    let keys = match run.job(&best.job) {
        Ok(keys) => keys,
        Err(e) => {
            notes.push(format!("job `{}`: {e}", best.job));
            return Ok(CategorySection {
                name: category.to_string(),
                job: best.job.clone(),
                point: sweep_point(&best.point),
                metrics: Vec::new(),
                charts,
                gallery: Vec::new(),
                simulated: None,
                notes,
            });
        }
    };
    let result: Option<&JobResult> = jobs.iter().find(|j| j.id == best.job).and_then(|j| match &j
        .state
    {
        JobState::Done { result } => Some(result.as_ref()),
        _ => None,
    });
    let mut metrics = vec![
        (
            "validation score".to_string(),
            metric(best.validation_score),
        ),
        (
            ImageScore::auroc_label(best.image_score).replace("image AUROC", "test image AUROC"),
            metric(best.test_image_auroc),
        ),
        (
            "test pixel AUROC".to_string(),
            metric(best.test_pixel_auroc),
        ),
        (
            "test AU-PRO (FPR ≤ 0.3)".to_string(),
            metric(best.test_pro_auc),
        ),
    ];
    if let Some(step) = result.and_then(|r| r.validation.as_ref()).map(|v| v.step) {
        metrics.push(("chosen step".to_string(), step.to_string()));
    }

    let figures_key = keys.figures();
    let figures: Option<StageFigures> = match artifact(
        store,
        &figures_key,
        "test-split figures (figures.json)",
        &mut notes,
    )
    .await?
    {
        Some(bytes) => decode(&bytes, store, &figures_key, &mut notes),
        None => None,
    };
    let eval_key = keys.eval();
    let evaluation: Option<Evaluation> = match artifact(
        store,
        &eval_key,
        "test-split metrics (eval.json)",
        &mut notes,
    )
    .await?
    {
        Some(bytes) => decode(&bytes, store, &eval_key, &mut notes),
        None => None,
    };
    let mut gallery = Vec::new();
    if let Some(figures) = &figures {
        if let Some(threshold) = figures.threshold {
            metrics.push(("decision threshold".to_string(), format!("{threshold:.4}")));
        }
        charts.extend(curve_charts(category, figures, evaluation.as_ref()));
        gallery = gallery_groups(store, &keys, figures, &mut notes).await?;
    }

    let curve_key = keys.curve();
    if let Some(bytes) = artifact(
        store,
        &curve_key,
        "SegNet training curve (curve.jsonl)",
        &mut notes,
    )
    .await?
    {
        let curve = TrainingCurve::parse(&bytes);
        if curve.unreadable > 0 {
            notes.push(format!(
                "{}: {} line(s) could not be read",
                store.describe(&curve_key),
                curve.unreadable
            ));
        }
        let chosen = result.and_then(|r| r.validation.as_ref()).map(|v| v.step);
        charts.extend(curve.charts(&format!("{category}: SegNet"), chosen));
    }
    let pretrain = plan
        .jobs
        .iter()
        .find(|j| j.id == best.job)
        .and_then(|spec| spec.depends_on.as_deref())
        .and_then(|pretrain| run.job(pretrain).ok());
    if let Some(pretrain) = pretrain {
        let key = pretrain.curve();
        if let Some(bytes) =
            artifact(store, &key, "pre-training curve (curve.jsonl)", &mut notes).await?
        {
            let curve = TrainingCurve::parse(&bytes);
            charts.extend(curve.charts(&format!("{category}: GPT-Net pre-training"), None));
        }
    }
    let simulated = artifact(
        store,
        &keys.simulated(),
        "simulated anomalies (simulated.jpg)",
        &mut notes,
    )
    .await?
    .map(|bytes| data_uri("image/jpeg", &bytes));
    Ok(CategorySection {
        name: category.to_string(),
        job: best.job.clone(),
        point: sweep_point(&best.point),
        metrics,
        charts,
        gallery,
        simulated,
        notes,
    })
}

/// A category none of whose SegNet jobs finished: why, job by job.
fn without_model(category: &str, jobs: &[JobStatus]) -> CategorySection {
    let mut notes = vec!["no model: none of this category's SegNet jobs finished".to_string()];
    notes.extend(
        jobs.iter()
            .filter(|job| job.category == category)
            .filter_map(problem)
            .map(|p| format!("{} job {} {}: {}", p.kind, p.job, p.state, p.error)),
    );
    CategorySection {
        name: category.to_string(),
        job: String::new(),
        point: String::new(),
        metrics: Vec::new(),
        charts: Vec::new(),
        gallery: Vec::new(),
        simulated: None,
        notes,
    }
}

fn points(curve: &CurvePoints) -> Vec<(f64, f64)> {
    curve
        .x
        .iter()
        .copied()
        .zip(curve.y.iter().copied())
        .collect()
}

/// ROC curves, the PRO curve, sPRO curves per type (each with its area, from the test split's
/// evaluation where it was read), and the score histogram.
fn curve_charts(
    category: &str,
    figures: &StageFigures,
    evaluation: Option<&Evaluation>,
) -> Vec<String> {
    let rate = Some((0.0, 1.0));
    let area = |name: &str, value: Option<f64>| value.map(|v| format!("{name} {v:.4}"));
    let chart = |title: &str, y_label: &str, series: Vec<Series>, x_range, note: Option<String>| {
        LineChart {
            title: format!("{category}: {title}"),
            x_label: "false-positive rate".into(),
            y_label: y_label.into(),
            diagonal: title.ends_with("ROC"),
            series,
            x_range,
            y_range: rate,
            markers: Vec::new(),
            log_y: false,
            note,
        }
        .to_svg()
    };
    let one = |name: &str, curve: &CurvePoints| {
        vec![Series {
            name: name.into(),
            points: points(curve),
        }]
    };
    let curves = &figures.curves;
    let mut charts = Vec::new();
    if let Some(curve) = &curves.image_roc {
        let note = area("AUROC", evaluation.and_then(|e| e.image_auroc));
        charts.push(chart(
            "image ROC",
            "true-positive rate",
            one("image ROC", curve),
            rate,
            note,
        ));
    }
    if let Some(curve) = &curves.pixel_roc {
        let note = area("AUROC", evaluation.and_then(|e| e.pixel_auroc));
        charts.push(chart(
            "pixel ROC",
            "true-positive rate",
            one("pixel ROC", curve),
            rate,
            note,
        ));
    }
    if let Some(curve) = &curves.pro {
        let note = area("AU-PRO", evaluation.and_then(|e| e.pro_auc));
        let limit = Some((0.0, slsg::metrics::PRO_LIMIT));
        charts.push(chart(
            "PRO curve",
            "mean per-region overlap",
            one("PRO", curve),
            limit,
            note,
        ));
    }
    if !curves.spro.is_empty() {
        // The sPRO areas at the official evaluation's headline limit.
        let headline = slsg::metrics::limit_key(0.05);
        let spro = evaluation
            .and_then(|e| e.spro_auc.as_ref())
            .and_then(|s| s.get(&headline));
        let series = curves
            .spro
            .iter()
            .map(|(kind, curve)| Series {
                name: match spro.and_then(|s| s.get(kind)).copied().flatten() {
                    Some(v) => format!("{kind} (AU-sPRO@{headline} {v:.4})"),
                    None => kind.clone(),
                },
                points: points(curve),
            })
            .collect();
        charts.push(chart(
            "sPRO curves",
            "mean saturated overlap",
            series,
            rate,
            None,
        ));
    }
    let scores = |anomalous: bool| -> Vec<f64> {
        figures
            .images
            .iter()
            .filter(|i| i.anomalous == anomalous)
            .map(|i| i.score)
            .collect()
    };
    if !figures.images.is_empty() {
        charts.push(
            Histogram {
                title: format!("{category}: test image scores"),
                x_label: format!("image score ({})", figures.image_score.name()),
                groups: vec![
                    ("good".into(), scores(false)),
                    ("defective".into(), scores(true)),
                ],
                threshold: figures.threshold,
                bins: 20,
            }
            .to_svg(),
        );
    }
    charts
}

async fn gallery_groups(
    store: &Store,
    keys: &StageKeys,
    figures: &StageFigures,
    notes: &mut Vec<String>,
) -> Result<Vec<GalleryGroup>, StoreError> {
    let mut groups: BTreeMap<GalleryReason, Vec<Picture>> = BTreeMap::new();
    for pick in &figures.gallery {
        let Ok(key) = keys.gallery(&pick.kind, &pick.id) else {
            notes.push(format!(
                "gallery: `{}/{}` is not a valid name",
                pick.kind, pick.id
            ));
            continue;
        };
        let Some(bytes) = artifact(store, &key, "gallery picture", notes).await? else {
            continue;
        };
        let decision = match figures.threshold {
            Some(t) if pick.score >= t => "anomalous",
            Some(_) => "normal",
            None => "no threshold",
        };
        groups.entry(pick.reason).or_default().push(Picture {
            source: data_uri("image/jpeg", &bytes),
            caption: format!(
                "{}/{}: score {:.3}, {decision}",
                pick.kind, pick.id, pick.score
            ),
        });
    }
    Ok(groups
        .into_iter()
        .map(|(reason, pictures)| GalleryGroup {
            title: reason.title(),
            pictures,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_urls_name_a_store_and_a_run() {
        assert_eq!(
            RunUrl::parse("s3://bucket/prefix/runs/nightly/").unwrap(),
            RunUrl {
                store: "s3://bucket/prefix".into(),
                run: "nightly".into()
            }
        );
        assert_eq!(
            RunUrl::parse("demo/store/runs/demo").unwrap().store,
            "demo/store"
        );
        assert_eq!(RunUrl::parse("runs/demo").unwrap().store, ".");
        for bad in [
            "s3://bucket/prefix",
            "s3:///runs/x",
            "store/runs/a/b",
            "store/runs/..",
        ] {
            assert!(RunUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
