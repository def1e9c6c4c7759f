//! A running job's progress: the latest step for heartbeats, the stop flag the actor raises,
//! and the curve (`curve.jsonl`), continued across attempts and written to the store at every
//! checkpoint and at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use slsg::job::JobProgress;
use slsg::store::{Key, Store, StoreError};
use slsg::train::{Progress, TrainEvent};
use tokio::runtime::Handle;

/// Shared between a job's thread and its worker actor.
#[derive(Clone, Default)]
pub struct JobSignals {
    pub latest: Arc<Mutex<Option<JobProgress>>>,
    pub stop: Arc<AtomicBool>,
}

pub struct Reporter {
    signals: JobSignals,
    lines: Vec<String>,
    store: Store,
    key: Key,
    runtime: Handle,
}

impl Reporter {
    /// Continues the curve an earlier attempt left at `key`, if any.
    pub fn open(
        store: Store,
        key: Key,
        runtime: Handle,
        signals: JobSignals,
    ) -> Result<Reporter, StoreError> {
        let existing = runtime.block_on(store.get(&key))?;
        let lines = existing
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .lines()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Reporter {
            signals,
            lines,
            store,
            key,
            runtime,
        })
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        let mut text = self.lines.join("\n");
        text.push('\n');
        self.runtime
            .block_on(self.store.put(&self.key, text.into_bytes()))
    }
}

impl Progress for Reporter {
    fn on_event(&mut self, event: &TrainEvent) {
        if let Ok(line) = serde_json::to_string(event) {
            self.lines.push(line);
        }
        match event {
            TrainEvent::Step(report) => {
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
                };
                *self
                    .signals
                    .latest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(progress);
            }
            TrainEvent::Checkpoint { .. } | TrainEvent::Resumed { .. } => {
                if let Err(e) = self.flush() {
                    tracing::warn!("could not write the curve: {e}");
                }
            }
            TrainEvent::Validation(_) => {}
        }
    }

    fn stop_requested(&self) -> bool {
        self.signals.stop.load(Ordering::Relaxed)
    }
}
