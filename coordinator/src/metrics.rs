//! The coordinator's Prometheus metrics: counters its actor keeps as things happen (leases,
//! expiries, retries, failures, refused completions, lease waits, registry decisions) and gauges
//! read at each scrape from a snapshot of its tables, encoded in the Prometheus text format.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use slsg::job::{FailureKind, JobStatus, ServiceStatus};
use slsg_worker::{Labels, ProgressGauges};

/// Counters that only grow while the coordinator runs; cloning shares them.
#[derive(Clone, Debug)]
pub struct CoordinatorCounters {
    pub leases_granted: Counter,
    pub leases_expired: Counter,
    /// Leases of a job's second or later attempt.
    pub retries: Counter,
    /// Accepted failure reports, by kind (`retryable`, `permanent`, `give_back`, `upstream`).
    pub failures: Family<Labels, Counter>,
    /// Reported completions whose artifacts did not verify, or from a worker without the lease.
    pub completions_refused: Counter,
    /// Seconds from a worker's lease request to its grant (a long poll included).
    pub lease_wait: Histogram,
    /// Registry decisions at the end of runs, by `decision` (`promoted`, `kept`).
    pub decisions: Family<Labels, Counter>,
}

impl Default for CoordinatorCounters {
    fn default() -> Self {
        Self {
            leases_granted: Counter::default(),
            leases_expired: Counter::default(),
            retries: Counter::default(),
            failures: Family::default(),
            completions_refused: Counter::default(),
            // 1 ms to about 33 s: a lease from a ready queue up to a whole long poll.
            lease_wait: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            decisions: Family::default(),
        }
    }
}

impl CoordinatorCounters {
    pub fn failed(&self, kind: FailureKind) {
        let name = match kind {
            FailureKind::Retryable => "retryable",
            FailureKind::Permanent => "permanent",
            FailureKind::GiveBack => "give_back",
            FailureKind::Upstream => "upstream",
        };
        self.failures
            .get_or_create(&vec![("kind", name.to_string())])
            .inc();
    }

    pub fn decided(&self, promoted: bool) {
        let decision = if promoted { "promoted" } else { "kept" };
        self.decisions
            .get_or_create(&vec![("decision", decision.to_string())])
            .inc();
    }
}

/// A running job with the run it belongs to.
#[derive(Clone, Debug)]
pub struct RunningJob {
    pub run: String,
    pub status: JobStatus,
}

/// A worker the coordinator heard from recently.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WorkerPresence {
    pub name: String,
    /// The device it registered with (`cpu`, `cuda:0`, …).
    pub device: Option<String>,
    pub seen_ms_ago: u64,
}

/// What one scrape reports, taken from the actor in one message.
#[derive(Clone, Debug)]
pub struct MetricsSnapshot {
    pub overview: ServiceStatus,
    pub running: Vec<RunningJob>,
    /// Jobs a worker asking now would be given, over every open run.
    pub leasable: usize,
    /// Workers heard from within [`crate::presence::WORKER_SEEN_MS`], by name.
    pub workers: Vec<WorkerPresence>,
    pub counters: CoordinatorCounters,
}

/// The snapshot and the store's error count in the Prometheus text format (version 0.0.4).
pub fn encode(snapshot: &MetricsSnapshot, store_errors: u64) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("slsg");
    let counters = &snapshot.counters;
    registry.register(
        "leases_granted",
        "Leases granted to workers",
        counters.leases_granted.clone(),
    );
    registry.register(
        "leases_expired",
        "Leases that expired without a heartbeat (their jobs were queued again)",
        counters.leases_expired.clone(),
    );
    registry.register(
        "retries",
        "Leases of a job's second or later attempt",
        counters.retries.clone(),
    );
    registry.register(
        "job_failures",
        "Failure reports accepted, by kind",
        counters.failures.clone(),
    );
    registry.register(
        "completions_refused",
        "Reported completions refused (artifacts not verified, or the lease not held)",
        counters.completions_refused.clone(),
    );
    registry.register(
        "lease_wait_seconds",
        "Seconds from a worker's lease request to its grant",
        counters.lease_wait.clone(),
    );
    registry.register(
        "registry_decisions",
        "Registry decisions at the end of runs, by decision",
        counters.decisions.clone(),
    );
    registry.register(
        "store_errors",
        "Store requests that failed",
        ConstCounter::new(store_errors),
    );

    let jobs = Family::<Labels, Gauge>::default();
    let runs = Family::<Labels, Gauge>::default();
    for run in &snapshot.overview.runs {
        let state = if run.finished { "finished" } else { "open" };
        runs.get_or_create(&vec![("state", state.to_string())])
            .inc();
        for (kind, states) in &run.kinds {
            for (state, count) in states {
                jobs.get_or_create(&vec![
                    ("run", run.run.clone()),
                    ("kind", kind.clone()),
                    ("state", state.clone()),
                ])
                .set(*count as i64);
            }
        }
    }
    registry.register(
        "jobs",
        "Jobs of the runs the coordinator shows, by run, kind and state",
        jobs,
    );
    registry.register("runs", "Runs the coordinator shows, by state", runs);
    let leasable = Gauge::<i64>::default();
    leasable.set(snapshot.leasable as i64);
    registry.register(
        "jobs_leasable",
        "Jobs a worker asking now would be given (ready and within their run's step budget): what to scale workers on",
        leasable,
    );
    let workers = Gauge::<i64>::default();
    workers.set(snapshot.workers.len() as i64);
    registry.register(
        "workers_connected",
        "Workers heard from recently (a request or a heartbeat within the lease time)",
        workers,
    );

    let progress = ProgressGauges::default();
    for job in &snapshot.running {
        if let Some(report) = &job.status.progress {
            progress.record(
                vec![
                    ("run", job.run.clone()),
                    ("job", job.status.id.to_string()),
                    ("kind", job.status.kind.name().to_string()),
                    ("category", job.status.category.clone()),
                ],
                report,
            );
        }
    }
    progress.register(&mut registry);
    if let Some(next) = snapshot.overview.next_check_unix {
        let gauge = Gauge::<i64>::default();
        gauge.set(next as i64);
        registry.register(
            "next_retraining_check_unix_seconds",
            "When the next scheduled retraining check runs",
            gauge,
        );
    }
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}
