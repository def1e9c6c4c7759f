//! What a training loop reports while it runs, and how its caller can stop it; progress as log
//! lines for where no terminal shows a bar (a pod, a file, a log collector).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::metrics::ImageScore;

/// The two stages of a category (and the two kinds of cluster job).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// GPT-Net pre-training; stores the encoder.
    Pretrain,
    /// SegNet training on a pre-trained encoder, then the test-split evaluation.
    Segnet,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Pretrain => "pretrain",
            Stage::Segnet => "segnet",
        }
    }
}

/// One point of a training curve.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub stage: Stage,
    /// Steps completed.
    pub step: u64,
    pub total_steps: u64,
    pub losses: Vec<(&'static str, f64)>,
    pub learning_rate: f64,
    /// Training images per second over the last reporting interval.
    pub images_per_second: f64,
    /// Batches simulated ahead and waiting for the training step: zero means training waits
    /// for the simulation (add threads); near the buffer's capacity, the device is the limit.
    pub queued_batches: usize,
}

/// A validation pass during SegNet training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub step: u64,
    pub image_auroc: Option<f64>,
    /// The image score `image_auroc` was computed from (absent from reports written before it
    /// was kept).
    #[serde(default)]
    pub image_score: Option<ImageScore>,
    pub pixel_auroc: Option<f64>,
    /// The selection score (mean of the two AUROCs).
    pub score: f64,
    /// The image score threshold maximising F1 on the validation set.
    pub threshold: Option<f64>,
    pub best: bool,
}

/// Where and why a sweep's early-stopping rule ended a SegNet trial before its last step (its
/// best model so far is kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedEarly {
    pub step: u64,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// The loop starts (or continues from a checkpoint) at `step`.
    Started {
        stage: Stage,
        step: u64,
        total_steps: u64,
    },
    Step(StepReport),
    /// The first step of this attempt finished, `seconds` after the stage began (building or
    /// loading the networks included). On GPU backends this is when kernels are compiled and
    /// tuned, so it shows what a kept tuning cache saves.
    FirstStep {
        stage: Stage,
        step: u64,
        seconds: f64,
    },
    Validation(ValidationReport),
    Checkpoint {
        stage: Stage,
        step: u64,
    },
    Resumed {
        stage: Stage,
        step: u64,
    },
    StoppedEarly(StoppedEarly),
}

/// Receives every event, is told of every step, and is asked after every step whether to stop
/// (then the loop writes a checkpoint and returns
/// [`TrainError::Interrupted`](super::TrainError::Interrupted)).
pub trait Progress {
    fn on_event(&mut self, event: &TrainEvent);

    /// `step` of `total_steps` is done (called every step; events come every `log_every`).
    fn on_step(&mut self, _stage: Stage, _step: u64, _total_steps: u64) {}

    fn stop_requested(&self) -> bool {
        false
    }

    /// After a SegNet validation: `Some(reason)` ends the trial here, keeping its best model (a
    /// sweep's early-stopping rule said so). May wait for the rule's decision.
    fn judge(&mut self, _validation: &ValidationReport) -> Option<String> {
        None
    }
}

/// Discards every event and never stops.
pub struct Silent;

impl Progress for Silent {
    fn on_event(&mut self, _: &TrainEvent) {}
}

/// Both receive every event; stopping is asked of either.
impl<A: Progress, Z: Progress> Progress for (A, Z) {
    fn on_event(&mut self, event: &TrainEvent) {
        self.0.on_event(event);
        self.1.on_event(event);
    }

    fn on_step(&mut self, stage: Stage, step: u64, total_steps: u64) {
        self.0.on_step(stage, step, total_steps);
        self.1.on_step(stage, step, total_steps);
    }

    fn stop_requested(&self) -> bool {
        self.0.stop_requested() || self.1.stop_requested()
    }

    fn judge(&mut self, validation: &ValidationReport) -> Option<String> {
        self.0
            .judge(validation)
            .or_else(|| self.1.judge(validation))
    }
}

/// Reports [`TrainEvent::FirstStep`] once, timed from when the stage began.
pub(crate) struct FirstStepClock {
    began: Instant,
    reported: bool,
}

impl FirstStepClock {
    pub(crate) fn start() -> FirstStepClock {
        FirstStepClock {
            began: Instant::now(),
            reported: false,
        }
    }

    /// Called after every step, once its loss has been read back from the device.
    pub(crate) fn step_done(&mut self, stage: Stage, step: u64, progress: &mut dyn Progress) {
        if !self.reported {
            self.reported = true;
            progress.on_event(&TrainEvent::FirstStep {
                stage,
                step,
                seconds: self.began.elapsed().as_secs_f64(),
            });
        }
    }
}

/// The shortest gap between two logged step lines.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Progress as `tracing` lines: one when a stage starts or resumes, one per validation, and
/// the latest step (losses, images/s, time left) at most every [`LOG_INTERVAL`], whether or
/// not a step report came in that time.
pub struct LogLines {
    /// Says whose progress it is (a job, a category), at the start of every line.
    label: String,
    interval: Duration,
    last_line: Instant,
    /// When the current stage started, and at which step.
    stage_start: Option<(Instant, u64)>,
    /// The stage's latest step report.
    report: Option<StepReport>,
}

impl LogLines {
    pub fn new(label: impl Into<String>) -> LogLines {
        LogLines::every(label, LOG_INTERVAL)
    }

    pub fn every(label: impl Into<String>, interval: Duration) -> LogLines {
        LogLines {
            label: label.into(),
            interval,
            last_line: Instant::now(),
            stage_start: None,
            report: None,
        }
    }

    /// Time left at the stage's average pace since it started here.
    fn remaining(&self, step: u64, total: u64) -> Option<Duration> {
        let (start, first) = self.stage_start?;
        let done = step.checked_sub(first).filter(|&d| d > 0)?;
        let per_step = start.elapsed().as_secs_f64() / done as f64;
        Some(Duration::from_secs_f64(
            per_step * total.saturating_sub(step) as f64,
        ))
    }

    fn step_line(&mut self, stage: Stage, step: u64, total: u64) {
        self.last_line = Instant::now();
        let measured =
            self.report
                .as_ref()
                .filter(|r| r.stage == stage)
                .map_or(String::new(), |r| {
                    let losses: Vec<String> = r
                        .losses
                        .iter()
                        .map(|(name, v)| format!("{name} {v:.4}"))
                        .collect();
                    format!(
                        "; {} (step {}); {:.1} img/s",
                        losses.join(", "),
                        r.step,
                        r.images_per_second
                    )
                });
        let left = self
            .remaining(step, total)
            .map_or(String::new(), |d| format!("; {} left", short_duration(d)));
        tracing::info!(
            "{}: {} step {step}/{total}{measured}{left}",
            self.label,
            stage.name()
        );
    }
}

/// `1h02m`, `4m05s`, `12s`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

impl Progress for LogLines {
    fn on_event(&mut self, event: &TrainEvent) {
        let label = &self.label;
        match event {
            TrainEvent::Started {
                stage,
                step,
                total_steps,
            } => {
                self.stage_start = Some((Instant::now(), *step));
                self.last_line = Instant::now();
                self.report = None;
                let from = if *step > 0 {
                    format!(" from step {step}")
                } else {
                    String::new()
                };
                tracing::info!(
                    "{label}: {} started{from} ({total_steps} steps)",
                    stage.name()
                );
            }
            TrainEvent::Step(report) => self.report = Some(report.clone()),
            TrainEvent::FirstStep {
                stage,
                step,
                seconds,
            } => tracing::info!(
                "{label}: {} reached its first step (step {step}) {seconds:.1} s after it began",
                stage.name()
            ),
            TrainEvent::Validation(v) => tracing::info!(
                "{label}: validation at step {}: {} {}, pixel AUROC {}{}",
                v.step,
                ImageScore::auroc_label(v.image_score),
                v.image_auroc.map_or("—".into(), |a| format!("{a:.4}")),
                v.pixel_auroc.map_or("—".into(), |a| format!("{a:.4}")),
                if v.best { " (best so far)" } else { "" }
            ),
            TrainEvent::Resumed { stage, step } => tracing::info!(
                "{label}: {} resumes from its checkpoint at step {step}",
                stage.name()
            ),
            TrainEvent::StoppedEarly(stopped) => tracing::info!(
                "{label}: stopped early at step {}: {}",
                stopped.step,
                stopped.reason
            ),
            TrainEvent::Checkpoint { .. } => {}
        }
    }

    fn on_step(&mut self, stage: Stage, step: u64, total_steps: u64) {
        if step == total_steps || self.last_line.elapsed() >= self.interval {
            self.step_line(stage, step, total_steps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        assert_eq!(short_duration(Duration::from_secs(12)), "12s");
        assert_eq!(short_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(short_duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn time_left_follows_the_pace_since_the_stage_started() {
        let mut lines = LogLines::every("t", Duration::ZERO);
        assert_eq!(lines.remaining(5, 10), None, "no stage started");
        lines.stage_start = Some((Instant::now() - Duration::from_secs(20), 100));
        let left = lines.remaining(110, 150).unwrap().as_secs_f64();
        assert!((79.0..=81.0).contains(&left), "{left}");
        assert_eq!(lines.remaining(100, 150), None, "no step done yet");
    }
}
