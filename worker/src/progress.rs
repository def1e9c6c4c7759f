//! What a running job shares with its worker actor: the latest progress (sent with heartbeats)
//! and the stop flag the actor raises (shutdown, a cancelled lease).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use slsg::job::JobProgress;
use slsg::train::{Progress, TrainEvent};

/// Shared between a job's thread and its worker actor.
#[derive(Clone, Default)]
pub struct JobSignals {
    pub latest: Arc<Mutex<Option<JobProgress>>>,
    pub stop: Arc<AtomicBool>,
}

impl JobSignals {
    /// The latest progress, for the next heartbeat.
    pub fn latest(&self) -> Option<JobProgress> {
        self.latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
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
            };
            *self
                .latest
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(progress);
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
