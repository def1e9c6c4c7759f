//! What a running job shares with its worker actor: the latest progress (sent with heartbeats),
//! the stop flag the actor raises (shutdown, a cancelled lease), and a sweep trial's wait at
//! each validation for its early-stopping rule's decision, which heartbeat replies bring.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use slsg::job::{JobProgress, StopMetric, StoppedEarly, ValidationPoint};
use slsg::train::{Progress, TrainEvent, ValidationReport};

/// How long a trial waits at a validation for the coordinator's decision (it may be
/// restarting) before it goes on undecided; the decision then comes with a later validation.
const DECISION_PATIENCE: Duration = Duration::from_secs(300);

/// Shared between a job's thread and its worker actor.
#[derive(Clone, Default)]
pub struct JobSignals {
    latest: Arc<Mutex<Option<JobProgress>>>,
    stop: Arc<AtomicBool>,
    /// A sweep trial under early stopping: the metric its rule compares.
    early_stopping: Option<StopMetric>,
    decisions: Arc<(Mutex<Decisions>, Condvar)>,
    /// Asks the actor for a heartbeat now (a validation waits for its reply).
    wake: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// What the coordinator has said of a trial so far.
#[derive(Default)]
struct Decisions {
    validation: Option<ValidationPoint>,
    judged_step: Option<u64>,
    stop: Option<StoppedEarly>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl JobSignals {
    /// Signals for a job; a sweep trial under early stopping (`metric`) calls `wake` when a
    /// validation waits for the coordinator's decision.
    pub fn new(early_stopping: Option<StopMetric>, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        JobSignals {
            early_stopping,
            wake: Some(wake),
            ..JobSignals::default()
        }
    }

    /// The latest progress, for the next heartbeat.
    pub fn latest(&self) -> Option<JobProgress> {
        let validation = locked(&self.decisions.0).validation;
        let latest = locked(&self.latest).clone();
        match (latest, validation) {
            (Some(progress), validation) => Some(JobProgress {
                validation,
                ..progress
            }),
            (None, Some(validation)) => Some(JobProgress {
                validation: Some(validation),
                ..JobProgress::default()
            }),
            (None, None) => None,
        }
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.decisions.1.notify_all();
    }

    /// A heartbeat reply's word on the trial.
    pub fn decided(&self, judged_step: Option<u64>, stop: Option<StoppedEarly>) {
        let mut decisions = locked(&self.decisions.0);
        decisions.judged_step = judged_step.max(decisions.judged_step);
        if stop.is_some() {
            decisions.stop = stop;
        }
        self.decisions.1.notify_all();
    }
}

impl Progress for JobSignals {
    fn on_event(&mut self, event: &TrainEvent) {
        if let TrainEvent::Step(report) = event {
            let progress = JobProgress {
                stage: report.stage.name().into(),
                step: report.step,
                total_steps: report.total_steps,
                losses: report
                    .losses
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
                images_per_second: report.images_per_second,
                queued_batches: report.queued_batches,
                validation: None,
            };
            *locked(&self.latest) = Some(progress);
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends the validation with the next heartbeat (at once) and waits for the coordinator to
    /// judge it, the job's stop, or [`DECISION_PATIENCE`].
    fn judge(&mut self, validation: &ValidationReport) -> Option<String> {
        let score = match self.early_stopping? {
            StopMetric::Score => Some(validation.score),
            StopMetric::ImageAuroc => validation.image_auroc,
            StopMetric::PixelAuroc => validation.pixel_auroc,
        }?;
        let step = validation.step;
        locked(&self.decisions.0).validation = Some(ValidationPoint { step, score });
        if let Some(wake) = &self.wake {
            wake();
        }
        let (mutex, condvar) = &*self.decisions;
        let began = Instant::now();
        let mut decisions = locked(mutex);
        loop {
            if let Some(stop) = &decisions.stop {
                return Some(stop.reason.clone());
            }
            if decisions.judged_step.is_some_and(|s| s >= step) || self.stop_requested() {
                return None;
            }
            if began.elapsed() >= DECISION_PATIENCE {
                tracing::warn!(
                    "no early-stopping decision on the validation at step {step} after {} s; training goes on",
                    DECISION_PATIENCE.as_secs()
                );
                return None;
            }
            decisions = condvar
                .wait_timeout(decisions, Duration::from_millis(500))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn report(step: u64, score: f64) -> ValidationReport {
        ValidationReport {
            step,
            image_auroc: Some(score),
            image_score: None,
            pixel_auroc: None,
            score,
            threshold: None,
            best: true,
        }
    }

    #[test]
    fn a_validation_waits_for_the_coordinators_decision() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = wakes.clone();
        let signals = JobSignals::new(
            Some(StopMetric::Score),
            Arc::new(move || {
                counter.fetch_add(1, Ordering::Relaxed);
            }),
        );
        let coordinator = signals.clone();
        let answer = std::thread::spawn(move || {
            while coordinator.latest().and_then(|p| p.validation).is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
            coordinator.decided(Some(10), None);
        });
        assert_eq!(signals.clone().judge(&report(10, 0.7)), None);
        answer.join().unwrap();
        assert_eq!(wakes.load(Ordering::Relaxed), 1);
        let sent = signals.latest().unwrap().validation.unwrap();
        assert_eq!((sent.step, sent.score), (10, 0.7));

        let stopping = signals.clone();
        let answer = std::thread::spawn(move || {
            stopping.decided(
                Some(20),
                Some(StoppedEarly {
                    step: 20,
                    reason: "rung 20".into(),
                }),
            )
        });
        answer.join().unwrap();
        assert_eq!(
            signals.clone().judge(&report(20, 0.1)),
            Some("rung 20".into())
        );
    }

    #[test]
    fn without_early_stopping_nothing_waits() {
        let mut signals = JobSignals::default();
        assert_eq!(signals.judge(&report(10, 0.5)), None);
        assert!(signals.latest().is_none());
    }

    #[test]
    fn a_stop_request_ends_the_wait() {
        let signals = JobSignals::new(Some(StopMetric::ImageAuroc), Arc::new(|| {}));
        let stopper = signals.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            stopper.request_stop();
        });
        assert_eq!(signals.clone().judge(&report(10, 0.5)), None);
    }
}
