//! A worker process's Prometheus metrics: per slot, the job it runs and that job's latest step,
//! images/s and simulation queue depth, and the jobs its slots ended, by outcome.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use slsg::job::{JobProgress, JobSpec};

use crate::progress::JobSignals;

/// Label pairs of one series.
pub type Labels = Vec<(&'static str, String)>;

/// The gauges of running jobs' progress (step, steps of the stage, images/s, simulated batches
/// waiting), one series per job; the coordinator reports them from heartbeats, a worker from
/// its own jobs.
#[derive(Default)]
pub struct ProgressGauges {
    step: Family<Labels, Gauge>,
    total_steps: Family<Labels, Gauge>,
    images_per_second: Family<Labels, Gauge<f64, AtomicU64>>,
    queued_batches: Family<Labels, Gauge>,
}

impl ProgressGauges {
    /// One job's progress under `labels` (a `stage` label is added).
    pub fn record(&self, mut labels: Labels, progress: &JobProgress) {
        labels.push(("stage", progress.stage.clone()));
        self.step.get_or_create(&labels).set(progress.step as i64);
        self.total_steps
            .get_or_create(&labels)
            .set(progress.total_steps as i64);
        self.images_per_second
            .get_or_create(&labels)
            .set(progress.images_per_second);
        self.queued_batches
            .get_or_create(&labels)
            .set(progress.queued_batches as i64);
    }

    /// Registers the four gauges as `job_step`, `job_total_steps`, `job_images_per_second` and
    /// `job_queued_batches` under the registry's prefix.
    pub fn register(self, registry: &mut Registry) {
        registry.register("job_step", "A running job's step", self.step);
        registry.register(
            "job_total_steps",
            "A running job's steps in its current stage",
            self.total_steps,
        );
        registry.register(
            "job_images_per_second",
            "A running job's training images per second",
            self.images_per_second,
        );
        registry.register(
            "job_queued_batches",
            "Simulated batches waiting for a running job's training step",
            self.queued_batches,
        );
    }
}

/// Shared by a process's worker actors and its metrics endpoint; cloning shares it.
#[derive(Clone, Default)]
pub struct WorkerMetrics {
    slots: Arc<Mutex<BTreeMap<String, Slot>>>,
    /// Jobs ended, by `outcome` (`done`, `failed`, `given_back`, `cancelled`).
    ended: Family<Labels, Counter>,
}

struct Slot {
    device: String,
    running: Option<RunningJob>,
    stopped: bool,
    /// Why the slot's job counts as stalled (its thread may be hung for good).
    stalled: Option<String>,
}

struct RunningJob {
    run: String,
    job: String,
    kind: &'static str,
    category: String,
    signals: JobSignals,
}

/// How a slot's job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    Failed,
    GivenBack,
    /// The coordinator took the lease back.
    Cancelled,
}

impl JobOutcome {
    fn name(self) -> &'static str {
        match self {
            JobOutcome::Done => "done",
            JobOutcome::Failed => "failed",
            JobOutcome::GivenBack => "given_back",
            JobOutcome::Cancelled => "cancelled",
        }
    }
}

impl WorkerMetrics {
    fn slots(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn slot_started(&self, worker: &str, device: &str) {
        self.slots().insert(
            worker.to_string(),
            Slot {
                device: device.to_string(),
                running: None,
                stopped: false,
                stalled: None,
            },
        );
    }

    /// The slot's job stopped moving: until it ends, the process is not alive.
    pub(crate) fn job_stalled(&self, worker: &str, reason: String) {
        if let Some(slot) = self.slots().get_mut(worker) {
            slot.stalled = Some(reason);
        }
    }

    /// Why a slot's job counts as stalled, if one does.
    pub fn stalled(&self) -> Option<String> {
        self.slots().values().find_map(|slot| slot.stalled.clone())
    }

    pub(crate) fn slot_stopped(&self, worker: &str) {
        if let Some(slot) = self.slots().get_mut(worker) {
            slot.stopped = true;
            slot.running = None;
        }
    }

    pub(crate) fn job_started(&self, worker: &str, spec: &JobSpec, signals: &JobSignals) {
        if let Some(slot) = self.slots().get_mut(worker) {
            slot.running = Some(RunningJob {
                run: spec.run.clone(),
                job: spec.id.to_string(),
                kind: spec.kind.name(),
                category: spec.category.clone(),
                signals: signals.clone(),
            });
        }
    }

    pub(crate) fn job_ended(&self, worker: &str, outcome: JobOutcome) {
        if let Some(slot) = self.slots().get_mut(worker) {
            slot.running = None;
            slot.stalled = None;
        }
        self.ended
            .get_or_create(&vec![("outcome", outcome.name().to_string())])
            .inc();
    }

    /// Whether the process still works: no slot has started yet (it is registering), or one
    /// runs.
    pub fn alive(&self) -> bool {
        let slots = self.slots();
        slots.is_empty() || slots.values().any(|slot| !slot.stopped)
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("slsg_worker");
        let slots = Family::<Labels, Gauge>::default();
        let progress_gauges = ProgressGauges::default();
        for (worker, slot) in self.slots().iter() {
            let state = match (&slot.running, slot.stopped) {
                (_, true) => "stopped",
                (Some(_), false) => "busy",
                (None, false) => "idle",
            };
            slots
                .get_or_create(&vec![
                    ("worker", worker.clone()),
                    ("device", slot.device.clone()),
                    ("state", state.to_string()),
                ])
                .set(1);
            let Some(running) = &slot.running else {
                continue;
            };
            let Some(progress) = running.signals.latest() else {
                continue;
            };
            progress_gauges.record(
                vec![
                    ("worker", worker.clone()),
                    ("run", running.run.clone()),
                    ("job", running.job.clone()),
                    ("kind", running.kind.to_string()),
                    ("category", running.category.clone()),
                ],
                &progress,
            );
        }
        registry.register(
            "slots",
            "Device slots of this process, by state (idle, busy, stopped)",
            slots,
        );
        registry.register(
            "jobs_ended",
            "Jobs this process's slots ended, by outcome",
            self.ended.clone(),
        );
        progress_gauges.register(&mut registry);
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry)?;
        Ok(text)
    }
}
