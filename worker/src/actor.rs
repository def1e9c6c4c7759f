//! The worker actor, one per device slot: lease → run the job on its own thread → heartbeat
//! with progress while it runs → report the result → lease again. A job that panics is reported
//! as a retryable failure carrying the panic's message. On shutdown the running job checkpoints
//! and its lease is given back. A job whose step stands still too long is failed as stalled:
//! its lease goes back and the slot reports itself not alive until the job's thread ends.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use slsg::backend::Device;
use slsg::data::DatasetCache;
use slsg::job::{FailureKind, JobResult};
use slsg::parallel::panic_message;
use slsg::train::{LogLines, Progress};
use tokio::runtime::Handle;

use crate::link::{CoordinatorLink, LeaseOutcome, LeasedJob, LinkError};
use crate::metrics::{JobOutcome, WorkerMetrics};
use crate::progress::JobSignals;
use crate::runner::{JobError, JobFailure, run_job};
use crate::watchdog::Watchdog;

/// Runs a leased job to its end on the calling thread (a dedicated one, never the runtime's).
pub type JobRunner = Arc<
    dyn Fn(&LeasedJob, Device, Handle, &JobSignals) -> Result<JobResult, JobError> + Send + Sync,
>;

/// The runner every worker uses: the job's stage of the category pipeline. With `log_lines`
/// each job also logs its progress (a worker process; an embedded run shows its own). Datasets
/// at a URL are copied into `cache`.
pub fn pipeline_runner(log_lines: bool, cache: DatasetCache) -> JobRunner {
    Arc::new(move |job, device, runtime, signals| {
        let spec = &job.spec;
        if log_lines {
            let label = format!("{} {} {}", spec.category, spec.kind.name(), spec.id);
            let mut progress = (signals.clone(), LogLines::new(label));
            run_job(spec, device, runtime, &cache, &mut progress)
        } else {
            run_job(spec, device, runtime, &cache, &mut signals.clone())
        }
    })
}

/// How long one lease request waits for a job.
const LEASE_WAIT: Duration = Duration::from_secs(5);

/// How long a job waits out a store outage before giving its lease back.
const STORE_PATIENCE: Duration = Duration::from_secs(900);

/// How long a finished job's report is retried while the coordinator cannot be reached (it may
/// be restarting); the result is in the store either way, where a restarted coordinator finds it.
const REPORT_PATIENCE: Duration = Duration::from_secs(300);

pub enum WorkerMessage {
    /// Ask for the next job.
    Poll,
    /// Renew the running job's lease and send its progress.
    Heartbeat,
    /// The job thread is done.
    Finished(Box<Result<JobResult, JobFailure>>),
    /// Stop: checkpoint the running job and give its lease back.
    Shutdown,
}

pub struct WorkerArgs<L> {
    pub link: Arc<L>,
    pub name: String,
    pub device: Device,
    /// Runs the store's futures for the job thread.
    pub runtime: Handle,
    pub runner: JobRunner,
    /// Where the slot reports its jobs for the process's metrics endpoint.
    pub metrics: WorkerMetrics,
    /// How long a job's progress may stand still before the job counts as stalled.
    pub stall: Duration,
}

pub struct WorkerState<L> {
    args: WorkerArgs<L>,
    current: Option<Running>,
    stopping: bool,
}

struct Running {
    lease_id: String,
    signals: JobSignals,
    /// The coordinator took the lease back, or the job stalled and its lease was given back:
    /// the result is not reported.
    cancelled: bool,
    watchdog: Watchdog,
    thread: JoinHandle<()>,
}

pub struct WorkerActor<L>(std::marker::PhantomData<L>);

impl<L> Default for WorkerActor<L> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<L: CoordinatorLink> Actor for WorkerActor<L> {
    type Msg = WorkerMessage;
    type State = WorkerState<L>;
    type Arguments = WorkerArgs<L>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let registration = args
            .link
            .register(&args.name, &args.device.to_string())
            .await?;
        tracing::info!(worker = %args.name, device = %args.device, run = %registration.run, "registered");
        args.metrics
            .slot_started(&args.name, &args.device.to_string());
        myself.send_interval(registration.heartbeat_interval, || WorkerMessage::Heartbeat);
        myself.send_message(WorkerMessage::Poll)?;
        Ok(WorkerState {
            args,
            current: None,
            stopping: false,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.args.metrics.slot_stopped(&state.args.name);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMessage::Poll if state.current.is_none() => {
                if state.stopping {
                    myself.stop(None);
                    return Ok(());
                }
                match state.args.link.lease(&state.args.name, LEASE_WAIT).await {
                    Ok(LeaseOutcome::Job(job)) => {
                        if state.args.link.shares_the_log() {
                            tracing::debug!(worker = %state.args.name, job = %job.spec.id, "leased");
                        } else {
                            tracing::info!(worker = %state.args.name, job = %job.spec.id, kind = job.spec.kind.name(), category = %job.spec.category, attempt = job.attempt, "leased");
                        }
                        let heartbeat_now = myself.clone();
                        let signals = JobSignals::new(
                            job.spec.early_stopping.as_ref().map(|rule| rule.metric),
                            Arc::new(move || {
                                let _ = heartbeat_now.send_message(WorkerMessage::Heartbeat);
                            }),
                        );
                        state
                            .args
                            .metrics
                            .job_started(&state.args.name, &job.spec, &signals);
                        let lease_id = job.lease_id.clone();
                        let (device, runtime, thread_signals, actor, runner) = (
                            state.args.device,
                            state.args.runtime.clone(),
                            signals.clone(),
                            myself.clone(),
                            state.args.runner.clone(),
                        );
                        let thread = std::thread::Builder::new()
                            .name(format!("{}-job", state.args.name))
                            .spawn(move || {
                                let result = run_through_outages(
                                    &runner,
                                    &job,
                                    device,
                                    runtime,
                                    &thread_signals,
                                );
                                let _ =
                                    actor.send_message(WorkerMessage::Finished(Box::new(result)));
                            })?;
                        state.current = Some(Running {
                            lease_id,
                            signals,
                            cancelled: false,
                            watchdog: Watchdog::new(state.args.stall, Instant::now()),
                            thread,
                        });
                    }
                    Ok(LeaseOutcome::Wait) => myself.send_message(WorkerMessage::Poll)?,
                    Ok(LeaseOutcome::Stopping) => {
                        tracing::info!(worker = %state.args.name, "the coordinator has finished its runs");
                        myself.stop(None);
                    }
                    Err(e @ (LinkError::Refused(_) | LinkError::Token(_))) => {
                        tracing::error!(worker = %state.args.name, "{e}; stopping");
                        myself.stop(None);
                    }
                    Err(e) => {
                        tracing::warn!(worker = %state.args.name, "lease failed: {e}; retrying");
                        myself.send_after(Duration::from_secs(1), || WorkerMessage::Poll);
                    }
                }
            }
            WorkerMessage::Poll => {}
            WorkerMessage::Heartbeat => {
                if let Some(running) = &mut state.current
                    && !running.cancelled
                {
                    let progress = running.signals.latest();
                    if let Some(still) = running.watchdog.observe(progress.as_ref(), Instant::now())
                    {
                        stalled(&state.args, running, still).await;
                        return Ok(());
                    }
                    match state
                        .args
                        .link
                        .heartbeat(&running.lease_id, &state.args.name, progress.as_ref())
                        .await
                    {
                        Ok(answer) if answer.cancel || !answer.accepted => {
                            tracing::warn!(worker = %state.args.name, lease = %running.lease_id, "the coordinator cancelled the lease; stopping the job");
                            running.cancelled = true;
                            running.signals.request_stop();
                        }
                        Ok(answer) => running
                            .signals
                            .decided(answer.judged_step, answer.stop_early),
                        Err(e) => {
                            tracing::warn!(worker = %state.args.name, "heartbeat failed: {e}")
                        }
                    }
                }
            }
            WorkerMessage::Finished(result) => {
                let Some(running) = state.current.take() else {
                    return Ok(());
                };
                let _ = running.thread.join();
                let lease = running.lease_id;
                let outcome = match result.as_ref() {
                    _ if running.cancelled => JobOutcome::Cancelled,
                    Ok(_) => JobOutcome::Done,
                    Err(failure) if failure.kind == FailureKind::GiveBack => JobOutcome::GivenBack,
                    Err(_) => JobOutcome::Failed,
                };
                state.args.metrics.job_ended(&state.args.name, outcome);
                if !running.cancelled {
                    if let Err(failure) = result.as_ref()
                        && failure.kind != FailureKind::GiveBack
                    {
                        if state.args.link.shares_the_log() {
                            tracing::debug!(worker = %state.args.name, %lease, "job failed: {}", failure.message);
                        } else {
                            tracing::error!(worker = %state.args.name, %lease, "job failed: {}", failure.message);
                        }
                    }
                    report_end(
                        state.args.link.as_ref(),
                        &state.args.name,
                        &lease,
                        result.as_ref(),
                    )
                    .await;
                }
                myself.send_message(WorkerMessage::Poll)?;
            }
            WorkerMessage::Shutdown => {
                state.stopping = true;
                match &state.current {
                    Some(running) => running.signals.request_stop(),
                    None => myself.stop(None),
                }
            }
        }
        Ok(())
    }
}

/// A job stood still for `still`: its lease goes back as a retryable failure, the job is asked
/// to stop (a slow step may still hear it), and the slot reports itself not alive until the
/// job's thread ends, so that a supervisor restarts a process whose device hangs.
async fn stalled<L: CoordinatorLink>(args: &WorkerArgs<L>, running: &mut Running, still: Duration) {
    let message = format!(
        "the job stalled: no progress for {} s at {} (--stall-seconds {})",
        still.as_secs(),
        running.watchdog.position(),
        args.stall.as_secs()
    );
    tracing::error!(worker = %args.name, lease = %running.lease_id, "{message}; giving its lease back");
    running.cancelled = true;
    running.signals.request_stop();
    args.metrics
        .job_stalled(&args.name, format!("{}: {message}", args.name));
    let failure: Result<JobResult, JobFailure> = Err(JobFailure {
        kind: FailureKind::Retryable,
        message,
    });
    report_end(args.link.as_ref(), &args.name, &running.lease_id, &failure).await;
}

/// Runs a job on this thread, a panic reported as a retryable failure carrying its message.
/// While the store is out (unreachable, refusing) the job is run again after a pause that
/// doubles up to a minute, with jitter, holding its lease (the heartbeats go on): an outage uses
/// none of the job's attempts. After [`STORE_PATIENCE`] the lease is given back.
fn run_through_outages(
    runner: &JobRunner,
    job: &LeasedJob,
    device: Device,
    runtime: Handle,
    signals: &JobSignals,
) -> Result<JobResult, JobFailure> {
    let start = std::time::Instant::now();
    let mut pause = Duration::from_secs(1);
    loop {
        let run = AssertUnwindSafe(|| runner(job, device, runtime.clone(), signals));
        let outcome = std::panic::catch_unwind(run)
            .unwrap_or_else(|panic| Err(JobError::Panicked(panic_message(panic.as_ref()))));
        let error = match outcome {
            Err(e) if e.is_store_outage() && !signals.stop_requested() => e,
            other => return other.map_err(JobFailure::from),
        };
        if start.elapsed() >= STORE_PATIENCE {
            return Err(JobFailure {
                kind: FailureKind::GiveBack,
                message: format!(
                    "the store stayed unusable for {} s: {error}",
                    start.elapsed().as_secs()
                ),
            });
        }
        let jitter = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()) as f64
            / 1e9;
        let wait = pause.mul_f64(0.5 + jitter);
        tracing::warn!(job = %job.spec.id, "the store failed ({error}); trying again in {:.1} s", wait.as_secs_f64());
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until && !signals.stop_requested() {
            std::thread::sleep(Duration::from_millis(200));
        }
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

/// Tells the coordinator how the job ended, retrying while it cannot be reached.
async fn report_end<L: CoordinatorLink>(
    link: &L,
    worker: &str,
    lease: &str,
    result: &Result<JobResult, JobFailure>,
) {
    let start = std::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        let reported = match result {
            Ok(result) => link.complete(lease, worker, result).await,
            Err(failure) => {
                link.fail(lease, worker, &failure.message, failure.kind)
                    .await
            }
        };
        match reported {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!(%worker, %lease, "the coordinator no longer holds the lease (it expired, or a restarted coordinator found the result in the store)");
                return;
            }
            Err(e) if start.elapsed() >= REPORT_PATIENCE => {
                tracing::error!(%worker, %lease, "gave up reporting the job's end: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!(%worker, %lease, "could not report the job's end ({e}); retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}
