//! `slsg status URL --watch`: follows runs until they end — on a terminal a line per run and a
//! bar per running job (step, losses, images/s), elsewhere their progress lines every 10
//! seconds — then prints each run's final table. Owns only the drawing.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slsg::job::{JobState, RunStatus};
use slsg_coordinator::client::Operator;

use super::cluster_output::{progress_lines, status_table};
use super::streams::{out, outln};

/// How often the coordinator is asked.
const POLL: Duration = Duration::from_secs(2);
/// How often progress lines are printed off a terminal.
const LINES_EVERY: Duration = Duration::from_secs(10);
/// How long the coordinator may stay unreachable before the watch gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// Bars on a terminal: one line per run, one bar per running job.
struct Bars {
    multi: MultiProgress,
    runs: BTreeMap<String, ProgressBar>,
    jobs: BTreeMap<String, ProgressBar>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            runs: BTreeMap::new(),
            jobs: BTreeMap::new(),
        }
    }

    fn show(&mut self, status: &RunStatus) {
        let done = status
            .jobs
            .iter()
            .filter(|j| matches!(j.state, JobState::Done { .. }))
            .count();
        let failed = status
            .jobs
            .iter()
            .filter(|j| matches!(j.state, JobState::Failed { .. } | JobState::Blocked { .. }))
            .count();
        let run_line = self.runs.entry(status.run.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(status.jobs.len() as u64));
            bar.set_style(
                ProgressStyle::with_template("run {prefix}: {pos}/{len} jobs done {wide_msg}")
                    .expect("a valid template"),
            );
            bar.set_prefix(status.run.clone());
            bar
        });
        run_line.set_length(status.jobs.len() as u64);
        run_line.set_position(done as u64);
        run_line.set_message(if failed > 0 {
            format!("· {failed} failed or blocked")
        } else {
            String::new()
        });
        let mut running = Vec::new();
        for job in &status.jobs {
            let JobState::Leased {
                worker, attempt, ..
            } = &job.state
            else {
                continue;
            };
            running.push(job.id.clone());
            let bar = self.jobs.entry(job.id.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(1));
                bar.set_style(
                    ProgressStyle::with_template("  {prefix} [{bar:30}] {pos}/{len} {wide_msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar
            });
            bar.set_prefix(format!(
                "{} {} · {worker} (attempt {attempt})",
                job.category,
                job.kind.name()
            ));
            match &job.progress {
                Some(progress) => {
                    bar.set_length(progress.total_steps.max(1));
                    bar.set_position(progress.step);
                    let losses: Vec<String> = progress
                        .losses
                        .iter()
                        .map(|(name, value)| format!("{name} {value:.4}"))
                        .collect();
                    bar.set_message(format!(
                        "{} · {:.1} img/s",
                        losses.join(" "),
                        progress.images_per_second
                    ));
                }
                None => bar.set_message("starting"),
            }
        }
        let ended: Vec<String> = self
            .jobs
            .keys()
            .filter(|id| !running.contains(id) && status.jobs.iter().any(|j| &j.id == *id))
            .cloned()
            .collect();
        for id in ended {
            if let Some(bar) = self.jobs.remove(&id) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
    }

    fn clear(self) {
        for bar in self.jobs.values().chain(self.runs.values()) {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// Follows `runs` until every one has finished, then prints their tables; an error once the
/// coordinator stayed unreachable for `PATIENCE`, and when a run ended with failed jobs.
pub async fn watch(operator: &Operator, runs: &[String]) -> anyhow::Result<()> {
    let mut bars = std::io::stdout().is_terminal().then(Bars::new);
    let mut last_lines: Option<Instant> = None;
    let mut unreachable_since: Option<Instant> = None;
    let statuses = loop {
        let mut statuses = Vec::new();
        for run in runs {
            match operator.run_status(run).await {
                Ok(status) => statuses.push(status),
                Err(e) => {
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= PATIENCE {
                        anyhow::bail!(
                            "the coordinator did not answer for {} s: {e}",
                            PATIENCE.as_secs()
                        );
                    }
                    tracing::warn!("the coordinator did not answer ({e}); asking again");
                    break;
                }
            }
        }
        if statuses.len() == runs.len() {
            unreachable_since = None;
            match &mut bars {
                Some(bars) => statuses.iter().for_each(|status| bars.show(status)),
                None if last_lines.is_none_or(|at| at.elapsed() >= LINES_EVERY) => {
                    for status in &statuses {
                        outln!("run `{}`:", status.run);
                        for line in progress_lines(status) {
                            outln!("{line}");
                        }
                    }
                    last_lines = Some(Instant::now());
                }
                None => {}
            }
            if statuses.iter().all(|s| s.finished) {
                break statuses;
            }
        }
        tokio::time::sleep(POLL).await;
    };
    if let Some(bars) = bars {
        bars.clear();
    }
    let mut failed = 0;
    for status in &statuses {
        out!("{}", status_table(status));
        failed += status
            .jobs
            .iter()
            .filter(|j| matches!(j.state, JobState::Failed { .. } | JobState::Blocked { .. }))
            .count();
    }
    if failed > 0 {
        anyhow::bail!("{failed} job(s) failed or were blocked");
    }
    Ok(())
}
