//! How runs are shown on the terminal: running jobs while they train, the per-category results
//! at the end.

use slsg::job::{JobState, RunStatus, ServiceStatus};
use slsg::metrics::ImageScore;
use slsg_coordinator::summary::{RunSummary, after_model, sweep_point};

use super::streams::out;

fn metric(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{v:.3}"))
}

/// One line per running job.
pub fn progress_lines(status: &RunStatus) -> Vec<String> {
    let done = status
        .jobs
        .iter()
        .filter(|j| matches!(j.state, JobState::Done { .. }))
        .count();
    let mut lines = vec![format!("{done}/{} jobs done", status.jobs.len())];
    for job in &status.jobs {
        if let JobState::Leased {
            worker, attempt, ..
        } = &job.state
        {
            let progress = job.progress.as_ref().map_or("starting".to_string(), |p| {
                let losses: Vec<String> = p
                    .losses
                    .iter()
                    .take(2)
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
                format!(
                    "{} step {}/{} {} · {:.1} img/s",
                    p.stage,
                    p.step,
                    p.total_steps,
                    losses.join(" "),
                    p.images_per_second
                )
            });
            lines.push(format!(
                "  {worker} · {} {} (attempt {attempt}): {progress}",
                job.category,
                job.kind.name()
            ));
        }
    }
    lines
}

/// Every run of a coordinator, oldest first, with its jobs by state.
pub fn overview_table(status: &ServiceStatus) -> String {
    let mut out = format!(
        "{:<40} {:<11} {:<11} {:>6}  {}\n",
        "run", "kind", "state", "jobs", "jobs by state"
    );
    for run in &status.runs {
        let states: Vec<String> = run.states.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!(
            "{:<40} {:<11} {:<11} {:>6}  {}\n",
            run.run,
            if run.retraining {
                "retraining"
            } else {
                "training"
            },
            if run.finished {
                "finished"
            } else {
                "in progress"
            },
            run.jobs,
            states.join(", ")
        ));
    }
    if let Some(next) = status.next_check_unix {
        out.push_str(&format!(
            "next retraining check: {} UTC\n",
            slsg::job::utc_stamp(next)
        ));
    }
    out
}

/// Jobs and their states, then the leaderboards.
pub fn status_table(status: &RunStatus) -> String {
    let mut out = format!(
        "run `{}`: {}\n",
        status.run,
        if status.finished {
            "finished"
        } else {
            "in progress"
        }
    );
    out.push_str(&format!(
        "{:<18} {:<8} {:<16} {:<13} {:>8}  {}\n",
        "job", "kind", "category", "state", "attempts", "progress / error"
    ));
    for job in &status.jobs {
        let detail = match &job.state {
            JobState::Failed { error } => error.clone(),
            JobState::Blocked { by } => format!("blocked by {by}"),
            JobState::Skipped { reason } => reason.clone(),
            JobState::Done { result } => match &result.stopped_early {
                Some(stopped) => format!("at step {}: {}", stopped.step, stopped.reason),
                None => "finished".into(),
            },
            _ => job.progress.as_ref().map_or_else(
                || {
                    job.last_error
                        .as_ref()
                        .map_or(String::new(), |e| format!("last attempt: {e}"))
                },
                |p| format!("{} {}/{}", p.stage, p.step, p.total_steps),
            ),
        };
        out.push_str(&format!(
            "{:<18} {:<8} {:<16} {:<13} {:>8}  {detail}\n",
            job.id,
            job.kind.name(),
            job.category,
            job.state_name(),
            job.attempts
        ));
    }
    out.push_str(&leaderboards(status));
    out
}

fn leaderboards(status: &RunStatus) -> String {
    let mut out = String::new();
    for (category, entries) in &status.leaderboard {
        out.push_str(&format!(
            "\n{category} (ranked on validation; test metrics beside, not used to choose)\n"
        ));
        out.push_str(&format!(
            "  {:<4} {:<18} {:>10} {:>15} {:>10} {:>10} {:>15}  {}\n",
            "rank",
            "job",
            "validation",
            "image AUC",
            "pixel AUC",
            "AU-PRO",
            "SegNet steps",
            "sweep point"
        ));
        for (rank, e) in entries.iter().enumerate() {
            let steps = match &e.stopped_early {
                Some(_) => format!("{} stopped", e.steps),
                None => e.steps.to_string(),
            };
            out.push_str(&format!(
                "  {:<4} {:<18} {:>10} {:>15} {:>10} {:>10} {:>15}  {}\n",
                rank + 1,
                e.job,
                metric(e.validation_score),
                ImageScore::show_auroc(e.test_image_auroc, e.image_score, 3),
                metric(e.test_pixel_auroc),
                metric(e.test_pro_auc),
                steps,
                sweep_point(&e.point)
            ));
        }
        out.push_str(&format!("  {}\n", status.steps_used(category)));
    }
    out
}

/// The final table: per category the registered model and its test metrics.
pub fn summary_table(summary: &RunSummary, store: &str) -> String {
    let mut out = format!(
        "{:<16} {:>10} {:>15} {:>10} {:>10}  {}\n",
        "category", "validation", "image AUC", "pixel AUC", "AU-PRO", "model (winning sweep point)"
    );
    for model in summary.models.values() {
        out.push_str(&format!(
            "{:<16} {:>10} {:>15} {:>10} {:>10}  models/{}/versions/{}{}\n",
            model.category,
            metric(model.validation_score),
            ImageScore::show_auroc(model.test_image_auroc, model.image_score, 3),
            metric(model.test_pixel_auroc),
            metric(model.test_pro_auc),
            model.category,
            model.version,
            after_model(&model.point)
        ));
        if summary
            .status
            .leaderboard
            .get(&model.category)
            .is_some_and(|trials| trials.len() > 1)
        {
            out.push_str(&format!(
                "{:<16} {}\n",
                "",
                summary.status.steps_used(&model.category)
            ));
        }
        if let Some(p) = summary.promotions.get(&model.category) {
            out.push_str(&format!(
                "{:<16} {}: {}\n",
                "",
                if p.promoted {
                    "promoted"
                } else {
                    "not promoted (current kept)"
                },
                p.reason
            ));
        }
    }
    for job in &summary.status.jobs {
        match &job.state {
            JobState::Failed { error } => out.push_str(&format!(
                "FAILED  {} {} {}: {error}\n",
                job.category,
                job.kind.name(),
                job.id
            )),
            JobState::Blocked { by } => out.push_str(&format!(
                "BLOCKED {} {} {}: upstream job {by} failed\n",
                job.category,
                job.kind.name(),
                job.id
            )),
            JobState::Skipped { reason } => out.push_str(&format!(
                "SKIPPED {} {} {}: {reason}\n",
                job.category,
                job.kind.name(),
                job.id
            )),
            _ => {}
        }
    }
    let run = &summary.status.run;
    out.push_str(&format!(
        "store: {store} (runs/{run}/summary.json)\nthe run's report, with curves and pictures of what each model does: {}/runs/{run}/report.html\n",
        store.trim_end_matches('/')
    ));
    out
}

/// Says how many jobs a re-run found finished in the store.
pub fn reuse_line(status: &RunStatus) -> String {
    let done = status
        .jobs
        .iter()
        .filter(|j| matches!(j.state, JobState::Done { .. }))
        .count();
    format!(
        "{done} of {} jobs already finished in the store (reused, not trained again)",
        status.jobs.len()
    )
}

/// Prints the final table, then fails the command (a non-zero exit status) if any job failed,
/// naming `retry`, the command that gives failed jobs fresh attempts, where there is one.
pub fn finish(summary: &RunSummary, store: &str, retry: Option<&str>) -> anyhow::Result<()> {
    out!("{}", summary_table(summary, store));
    let count = |blocked: bool| {
        summary
            .status
            .jobs
            .iter()
            .filter(|j| {
                matches!(
                    (&j.state, blocked),
                    (JobState::Failed { .. }, false) | (JobState::Blocked { .. }, true)
                )
            })
            .count()
    };
    let retry = retry
        .map(|command| format!("; once the cause is fixed, `{command}` runs them again"))
        .unwrap_or_default();
    match (count(false), count(true)) {
        (0, 0) => Ok(()),
        (failed, blocked) => anyhow::bail!(
            "{failed} job(s) failed and {blocked} were blocked by them; the other jobs' results are published{retry}"
        ),
    }
}
