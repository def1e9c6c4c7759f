//! Training progress on the terminal (a bar with losses and images/s) and as a JSONL curve.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use slsg::train::{Progress, Stage, TrainEvent};

pub struct ConsoleProgress {
    bar: Option<(Stage, ProgressBar)>,
    curve: BufWriter<File>,
}

impl ConsoleProgress {
    /// Appends every event to `curve` (JSON lines) and draws a bar on standard error.
    pub fn new(curve: &Path) -> std::io::Result<Self> {
        if let Some(parent) = curve.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(curve)?;
        Ok(Self {
            bar: None,
            curve: BufWriter::new(file),
        })
    }

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
        let _ = self.curve.flush();
    }
}

impl Progress for ConsoleProgress {
    fn on_event(&mut self, event: &TrainEvent) {
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(self.curve, "{line}");
        }
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
                    "validation @ {}: image AUROC {}, pixel AUROC {}{}",
                    v.step,
                    v.image_auroc.map_or("—".into(), |a| format!("{a:.4}")),
                    v.pixel_auroc.map_or("—".into(), |a| format!("{a:.4}")),
                    if v.best { " (best so far)" } else { "" }
                );
                match &self.bar {
                    Some((_, bar)) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
            TrainEvent::Resumed { stage, step } => eprintln!(
                "resuming {} from its checkpoint at step {step}",
                stage.name()
            ),
            TrainEvent::Checkpoint { .. } => {
                let _ = self.curve.flush();
            }
        }
    }
}
