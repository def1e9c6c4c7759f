//! Training progress of a command: on a terminal a bar per stage with losses and images/s and a
//! line per validation and resume; elsewhere (a file, a pod's log) the same as log lines. (The
//! curve itself is kept in the store by the pipeline.)

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use slsg::metrics::ImageScore;
use slsg::train::{LogLines, Progress, Stage, TrainEvent};

use super::process::stop_signal;
use super::streams::errln;

/// A bar on a terminal, log lines elsewhere.
pub enum CommandProgress {
    Bar(ConsoleProgress),
    Lines(LogLines),
}

impl CommandProgress {
    /// For standard error; `label` starts every log line.
    pub fn for_stderr(label: &str) -> CommandProgress {
        if std::io::stderr().is_terminal() {
            CommandProgress::Bar(ConsoleProgress { bar: None })
        } else {
            CommandProgress::Lines(LogLines::new(label))
        }
    }

    pub fn finish(&mut self) {
        if let CommandProgress::Bar(console) = self {
            console.finish();
        }
    }
}

impl Progress for CommandProgress {
    fn on_event(&mut self, event: &TrainEvent) {
        match self {
            CommandProgress::Bar(console) => console.on_event(event),
            CommandProgress::Lines(lines) => lines.on_event(event),
        }
    }

    fn on_step(&mut self, stage: Stage, step: u64, total_steps: u64) {
        match self {
            CommandProgress::Bar(console) => console.on_step(stage, step, total_steps),
            CommandProgress::Lines(lines) => lines.on_step(stage, step, total_steps),
        }
    }
}

pub struct ConsoleProgress {
    bar: Option<(Stage, ProgressBar)>,
}

impl ConsoleProgress {
    fn bar(&mut self, stage: Stage, total: u64, position: u64) -> &ProgressBar {
        if self.bar.as_ref().is_none_or(|(s, _)| *s != stage) {
            if let Some((_, old)) = self.bar.take() {
                old.finish();
            }
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(stage.name());
            bar.set_position(position);
            self.bar = Some((stage, bar));
        }
        &self.bar.as_ref().expect("just set").1
    }

    pub fn finish(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Progress for ConsoleProgress {
    fn on_event(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Step(report) => {
                let losses: Vec<String> = report
                    .losses
                    .iter()
                    .take(2)
                    .map(|(name, v)| format!("{name} {v:.4}"))
                    .collect();
                let message = format!(
                    "{} · {:.1} img/s",
                    losses.join(" "),
                    report.images_per_second
                );
                let bar = self.bar(report.stage, report.total_steps, report.step);
                bar.set_position(report.step);
                bar.set_message(message);
            }
            TrainEvent::Validation(v) => {
                let line = format!(
                    "validation @ {}: {} {}, pixel AUROC {}{}",
                    v.step,
                    ImageScore::auroc_label(v.image_score),
                    v.image_auroc.map_or("—".into(), |a| format!("{a:.4}")),
                    v.pixel_auroc.map_or("—".into(), |a| format!("{a:.4}")),
                    if v.best { " (best so far)" } else { "" }
                );
                match &self.bar {
                    Some((_, bar)) => bar.println(line),
                    None => errln!("{line}"),
                }
            }
            TrainEvent::Started {
                stage,
                step,
                total_steps,
            } => {
                self.bar(*stage, *total_steps, *step);
            }
            TrainEvent::Resumed { stage, step } => errln!(
                "resuming {} from its checkpoint at step {step}",
                stage.name()
            ),
            TrainEvent::StoppedEarly(stopped) => {
                errln!("stopped early at step {}: {}", stopped.step, stopped.reason)
            }
            TrainEvent::FirstStep { .. } | TrainEvent::Checkpoint { .. } => {}
        }
    }

    fn on_step(&mut self, stage: Stage, step: u64, total_steps: u64) {
        self.bar(stage, total_steps, step).set_position(step);
    }
}

/// Asks the training loop to stop once SIGINT (Ctrl-C) or SIGTERM has come: it writes a
/// checkpoint of the step it is at and returns, so the next run resumes there. A second signal
/// ends the process at once, for a step that takes too long to wait for.
pub struct StopOnSignal(Arc<AtomicBool>);

impl StopOnSignal {
    /// Listens for the signals on `runtime` from now on.
    pub fn listen(runtime: &tokio::runtime::Runtime) -> StopOnSignal {
        let requested = Arc::new(AtomicBool::new(false));
        let flag = requested.clone();
        runtime.spawn(async move {
            stop_signal().await;
            flag.store(true, Ordering::Relaxed);
            tracing::warn!(
                "stopping after the current step, with a checkpoint (a second Ctrl-C stops at once)"
            );
            stop_signal().await;
            tracing::warn!("stopped at once; a rerun resumes from the last checkpoint written");
            std::process::exit(130);
        });
        StopOnSignal(requested)
    }
}

impl Progress for StopOnSignal {
    fn on_event(&mut self, _: &TrainEvent) {}

    fn stop_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
