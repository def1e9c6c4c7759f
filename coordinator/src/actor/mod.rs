//! The coordinator actor: every submission, lease, heartbeat, completion and failure goes
//! through its mailbox, one method per message. Its state is in parts with one concern each: the
//! runs (`runs.rs`: admissions, leasing, publishing), the service's list of runs (`index.rs`),
//! the workers heard from (`presence.rs`) and the counters (`metrics.rs`). Store work runs beside
//! the actor and comes back as a message. A one-shot coordinator (`Mode::Once`) ends when its
//! runs have.

mod index;
mod runs;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use slsg::job::{FailureKind, JobProgress, JobResult, Plan, RunStatus, ServiceStatus};
use slsg::registry::Registry;
use slsg::store::Store;
use slsg::store::layout::RunKeys;
use tokio::sync::watch;

use crate::error::CoordinatorError;
use crate::lease::new_lease_id;
use crate::metrics::{CoordinatorCounters, MetricsSnapshot};
use crate::presence::Presence;
use crate::publish::publish_results;
use crate::run::{Run, Unverified, verify_completion};
use crate::summary::RunSummary;
use crate::table::{Granted, HeartbeatOutcome};
use index::{RunIndex, ServiceIndex};
pub use runs::{Admission, FINISHED_RUNS_SHOWN, RunBook, Submitted};

/// How often leases are checked and the journals written.
pub const TICK: Duration = Duration::from_millis(500);
/// Runs a coordinator holds open at once unless told otherwise (`--max-open-runs`): each holds
/// its plan and job table in memory, so submissions past it are refused, not queued.
pub const DEFAULT_OPEN_RUNS: u32 = 64;

pub enum CoordinatorMessage {
    Register {
        worker: String,
        device: String,
        reply: RpcReplyPort<()>,
    },
    Lease {
        worker: String,
        /// When the worker's request arrived (the first ask of a long poll).
        asked_at: Instant,
        reply: RpcReplyPort<Result<LeaseAnswer, CoordinatorError>>,
    },
    Heartbeat {
        lease_id: String,
        worker: String,
        progress: Option<JobProgress>,
        reply: RpcReplyPort<HeartbeatOutcome>,
    },
    /// A worker reports its job finished; accepted once the job's artifacts verify in the
    /// store (an error: the store did not answer, report again).
    Complete {
        lease_id: String,
        worker: String,
        reply: RpcReplyPort<Result<bool, CoordinatorError>>,
    },
    Fail {
        lease_id: String,
        worker: String,
        error: String,
        kind: FailureKind,
        reply: RpcReplyPort<bool>,
    },
    /// Opens a run (or finds it open with the same plan already).
    Submit {
        plan: Box<Plan>,
        reply: RpcReplyPort<Result<Submitted, CoordinatorError>>,
    },
    /// A completion's artifacts were checked (beside the actor).
    Verified(Box<Verification>),
    /// A submitted run was opened (beside the actor).
    Opened(Box<Opening>),
    /// A finished run's results were published (beside the actor).
    Published(Box<Publication>),
    /// Every run, and the retraining schedule.
    Overview { reply: RpcReplyPort<ServiceStatus> },
    /// One run's jobs from `offset` (at most `limit`) and its leaderboards.
    RunStatus {
        run: String,
        offset: usize,
        limit: usize,
        reply: RpcReplyPort<Result<RunStatus, CoordinatorError>>,
    },
    /// A receiver that changes whenever a job may have become leasable or the coordinator is
    /// stopping, so waiting lease requests sleep instead of polling.
    Subscribe {
        reply: RpcReplyPort<watch::Receiver<u64>>,
    },
    /// The categories an open run still trains.
    Training {
        reply: RpcReplyPort<BTreeSet<String>>,
    },
    /// The scheduler's next retraining check (seconds since the epoch), for the overview.
    NextCheck { unix: Option<u64> },
    /// The figures of one metrics scrape.
    Metrics {
        reply: RpcReplyPort<MetricsSnapshot>,
    },
    /// Timer: expire leases, write the journals that changed.
    Tick,
}

/// What checking a completion's artifacts found.
pub struct Verification {
    run: String,
    lease_id: String,
    worker: String,
    outcome: Result<JobResult, Unverified>,
    reply: RpcReplyPort<Result<bool, CoordinatorError>>,
}

/// A submitted run, opened or not.
pub struct Opening {
    run: String,
    opened: Result<Run, CoordinatorError>,
    reply: RpcReplyPort<Result<Submitted, CoordinatorError>>,
}

/// A finished run's publication, done or failed.
pub struct Publication {
    run: String,
    outcome: Result<RunSummary, CoordinatorError>,
}

/// Asks for a job until one is granted, the coordinator is stopping or `wait` passes; between
/// asks it sleeps until the tables change. The long poll of both links (in-process and gRPC).
pub async fn lease_waiting(
    actor: &ActorRef<CoordinatorMessage>,
    worker: &str,
    wait: Duration,
) -> Result<LeaseAnswer, CoordinatorError> {
    let deadline = tokio::time::Instant::now() + wait;
    let asked_at = Instant::now();
    // Subscribed only once a first ask found nothing, so a granted lease costs one message.
    let mut changes: Option<watch::Receiver<u64>> = None;
    loop {
        if let Some(changes) = &mut changes {
            // Marked seen before asking, so a change after the answer wakes the wait below.
            changes.borrow_and_update();
        }
        let worker = worker.to_string();
        let answer = ractor::call!(actor, |reply| CoordinatorMessage::Lease {
            worker,
            asked_at,
            reply
        })
        .map_err(CoordinatorError::gone)??;
        if answer.granted.is_some() || answer.stopping {
            return Ok(answer);
        }
        match &mut changes {
            None => {
                changes = Some(
                    ractor::call!(actor, |reply| CoordinatorMessage::Subscribe { reply })
                        .map_err(CoordinatorError::gone)?,
                )
            }
            Some(changes) => match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(answer),
            },
        }
    }
}

pub struct LeaseAnswer {
    pub granted: Option<Granted>,
    /// The coordinator has no more work and is stopping: the worker may stop too.
    pub stopping: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A long-lived service: runs come and go, the list of runs is kept in the store and every
    /// unfinished run is recovered after a restart.
    Service,
    /// One-shot: the coordinator ends when its runs have finished.
    Once,
}

pub struct CoordinatorArgs {
    pub store: Store,
    pub mode: Mode,
    /// Runs opened at start (the config's run).
    pub plans: Vec<Plan>,
    /// The runs opened at start give the jobs that failed for good fresh attempts (`slsg train
    /// --retry-failed`).
    pub retry_failed: bool,
    /// In `Once` mode, receives the first plan's summary once every run has finished.
    pub finished: watch::Sender<Option<RunSummary>>,
    /// Submissions are refused while this many runs are open (those opened at start and
    /// recovered count, and are never refused).
    pub open_runs_limit: usize,
}

pub struct CoordinatorState {
    store: Store,
    registry: Registry,
    mode: Mode,
    runs: RunBook,
    /// The service's list of runs in the store; none in `Once` mode.
    index: Option<ServiceIndex>,
    /// The scheduler's next retraining check (seconds since the epoch).
    next_check: Option<u64>,
    watchers: Watchers,
    counters: CoordinatorCounters,
    /// The workers heard from lately, with their devices.
    presence: Presence,
}

/// What callers outside the actor wait on.
struct Watchers {
    /// Bumped when jobs may have become leasable (see [`CoordinatorMessage::Subscribe`]).
    changes: watch::Sender<u64>,
    /// In `Once` mode, the first run's summary once every run has finished.
    finished: watch::Sender<Option<RunSummary>>,
    first_run: Option<String>,
    first_summary: Option<RunSummary>,
}

pub struct CoordinatorActor;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Actor for CoordinatorActor {
    type Msg = CoordinatorMessage;
    type State = CoordinatorState;
    type Arguments = CoordinatorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let CoordinatorArgs {
            store,
            mode,
            plans,
            retry_failed,
            finished,
            open_runs_limit,
        } = args;
        let mut state = CoordinatorState {
            registry: Registry::new(store.clone()),
            store,
            mode,
            runs: RunBook::new(open_runs_limit),
            index: None,
            next_check: None,
            watchers: Watchers {
                changes: watch::channel(0).0,
                finished,
                first_run: plans.first().map(|p| p.run.clone()),
                first_summary: None,
            },
            counters: CoordinatorCounters::default(),
            presence: Presence::default(),
        };
        if mode == Mode::Service {
            state.recover().await?;
        }
        for plan in plans {
            // A service opens its config's run once: after a restart the run is recovered (or
            // finished); changes are submitted as runs of their own.
            if state
                .index
                .as_ref()
                .is_some_and(|index| index.knows(&plan.run))
            {
                tracing::info!(run = %plan.run, "the config's run is known to this store; not opened again");
                continue;
            }
            let run = Run::open(&state.store, plan, retry_failed, now_ms()).await?;
            state.adopt(run);
        }
        myself.send_interval(TICK, || CoordinatorMessage::Tick);
        state.runs_changed(&myself);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CoordinatorMessage::Register {
                worker,
                device,
                reply,
            } => state.on_register(&worker, &device, reply),
            CoordinatorMessage::Lease {
                worker,
                asked_at,
                reply,
            } => state.on_lease(&worker, asked_at, reply),
            CoordinatorMessage::Heartbeat {
                lease_id,
                worker,
                progress,
                reply,
            } => state.on_heartbeat(&lease_id, &worker, progress, reply),
            CoordinatorMessage::Complete {
                lease_id,
                worker,
                reply,
            } => state.on_complete(myself, lease_id, worker, reply)?,
            CoordinatorMessage::Verified(verified) => state.on_verified(&myself, *verified),
            CoordinatorMessage::Fail {
                lease_id,
                worker,
                error,
                kind,
                reply,
            } => state.on_fail(&myself, &lease_id, &worker, &error, kind, reply),
            CoordinatorMessage::Submit { plan, reply } => state.on_submit(myself, *plan, reply),
            CoordinatorMessage::Opened(opening) => state.on_opened(&myself, *opening),
            CoordinatorMessage::Published(publication) => state.on_published(&myself, *publication),
            CoordinatorMessage::Overview { reply } => answer(reply, state.overview()),
            CoordinatorMessage::RunStatus {
                run,
                offset,
                limit,
                reply,
            } => state.on_run_status(run, offset, limit, reply),
            CoordinatorMessage::Subscribe { reply } => {
                answer(reply, state.watchers.changes.subscribe())
            }
            CoordinatorMessage::Training { reply } => answer(reply, state.runs.training()),
            CoordinatorMessage::NextCheck { unix } => state.next_check = unix,
            CoordinatorMessage::Metrics { reply } => answer(reply, state.metrics()),
            CoordinatorMessage::Tick => state.on_tick(&myself),
        }
        Ok(())
    }
}

/// The job a lease holds, for log lines: its id, kind and category.
type JobLabel = (String, &'static str, String);

impl CoordinatorState {
    /// Reopens every unfinished run of the service's list from its stored plan, and starts
    /// keeping the list.
    async fn recover(&mut self) -> Result<(), CoordinatorError> {
        let index = RunIndex::read(&self.store).await?;
        for entry in &index.runs {
            if entry.finished {
                self.runs.listed_finished(&entry.run);
                continue;
            }
            let keys = RunKeys::new(&entry.run)?;
            match self.store.get_json::<Plan>(&keys.plan()).await? {
                Some(plan) => {
                    tracing::info!(run = %entry.run, "recovering an unfinished run");
                    self.runs
                        .adopt(Run::open(&self.store, plan, false, now_ms()).await?);
                }
                None => {
                    tracing::warn!(run = %entry.run, "its plan is missing from the store; not recovered")
                }
            }
        }
        self.index = Some(ServiceIndex::start(&self.store, index)?);
        Ok(())
    }

    /// Takes an opened run into the runs and the service's list.
    fn adopt(&mut self, run: Run) {
        if let Some(index) = &mut self.index {
            index.opened(&run.plan.run);
        }
        self.runs.adopt(run);
    }

    fn on_register(&mut self, worker: &str, device: &str, reply: RpcReplyPort<()>) {
        tracing::info!(%worker, %device, "worker joined");
        self.presence.registered(worker, device, now_ms());
        let _ = reply.send(());
    }

    fn on_lease(
        &mut self,
        worker: &str,
        asked_at: Instant,
        reply: RpcReplyPort<Result<LeaseAnswer, CoordinatorError>>,
    ) {
        self.seen(worker);
        let leased = self.runs.lease(worker, now_ms(), || {
            new_lease_id().map_err(|e| CoordinatorError::Random(e.to_string()))
        });
        let answer = leased.map(|leased| match leased {
            Some(leased) => {
                let granted = leased.granted;
                let spec = &granted.spec;
                tracing::info!(%worker, run = %leased.run, job = %spec.id, kind = spec.kind.name(), category = %spec.category, attempt = granted.attempt, "leased");
                self.counters.leases_granted.inc();
                if granted.attempt > 1 {
                    self.counters.retries.inc();
                }
                self.counters
                    .lease_wait
                    .observe(asked_at.elapsed().as_secs_f64());
                LeaseAnswer {
                    granted: Some(granted),
                    stopping: false,
                }
            }
            None => LeaseAnswer {
                granted: None,
                stopping: self.is_stopping(),
            },
        });
        let _ = reply.send(answer);
    }

    fn on_heartbeat(
        &mut self,
        lease_id: &str,
        worker: &str,
        progress: Option<JobProgress>,
        reply: RpcReplyPort<HeartbeatOutcome>,
    ) {
        self.seen(worker);
        let Some(run) = self.runs.of_lease(lease_id) else {
            let _ = reply.send(HeartbeatOutcome::refused());
            return;
        };
        let outcome = run.table.heartbeat(lease_id, worker, progress, now_ms());
        if run.table.has_trial_changes() {
            // An early-stopping record is answered once journaled, so a restarted coordinator
            // judges the next trials by the same records.
            let stored = run.persist_later();
            tokio::spawn(async move {
                let _ = stored.await;
                let _ = reply.send(outcome);
            });
        } else {
            let _ = reply.send(outcome);
        }
    }

    /// A completion is accepted only once its artifacts verify in the store, checked beside
    /// the actor ([`CoordinatorMessage::Verified`] follows).
    fn on_complete(
        &mut self,
        myself: ActorRef<CoordinatorMessage>,
        lease_id: String,
        worker: String,
        reply: RpcReplyPort<Result<bool, CoordinatorError>>,
    ) -> Result<(), CoordinatorError> {
        self.seen(&worker);
        let store = self.store.clone();
        let leased = self.runs.of_lease(&lease_id).and_then(|run| {
            let spec = run.table.leased_job(&lease_id, &worker)?;
            Some((run.keys.job(&spec.id), spec.kind, run.plan.run.clone()))
        });
        let Some((keys, kind, run)) = leased else {
            tracing::warn!(lease = %lease_id, %worker, "a completion from a worker that does not hold the lease");
            self.counters.completions_refused.inc();
            let _ = reply.send(Ok(false));
            return Ok(());
        };
        let keys = keys?;
        tokio::spawn(async move {
            let outcome = verify_completion(&store, &keys, kind).await;
            let verified = Verification {
                run,
                lease_id,
                worker,
                outcome,
                reply,
            };
            let _ = myself.send_message(CoordinatorMessage::Verified(Box::new(verified)));
        });
        Ok(())
    }

    fn on_verified(&mut self, myself: &ActorRef<CoordinatorMessage>, verified: Verification) {
        let Verification {
            run,
            lease_id,
            worker,
            outcome,
            reply,
        } = verified;
        let (run, lease_id, worker) = (run.as_str(), lease_id.as_str(), worker.as_str());
        let Some(open) = self.runs.named_mut(run) else {
            let _ = reply.send(Ok(false));
            return;
        };
        let job = open.table.leased_job(lease_id, worker).map(label);
        let answer = match outcome {
            Ok(result) => {
                let accepted = open.table.complete(lease_id, worker, Box::new(result));
                if let Some((job, kind, category)) = job.filter(|_| accepted) {
                    tracing::info!(%run, %job, kind, %category, %worker, "job done");
                }
                Ok(accepted)
            }
            Err(Unverified::Store(e)) => Err(CoordinatorError::Store(e)),
            Err(e @ Unverified::Artifact { .. }) => {
                let error = format!("its artifacts did not verify in the store: {e}");
                tracing::warn!(%run, lease = %lease_id, "a reported completion refused: {error}");
                self.counters.completions_refused.inc();
                open.table
                    .fail(lease_id, worker, &error, FailureKind::Retryable);
                Ok(false)
            }
        };
        // The worker stored the job's result.json before reporting, and a restarted coordinator
        // counts every job with one as done: the journal can follow within a tick instead of
        // holding up every completion.
        self.runs_changed(myself);
        let _ = reply.send(answer);
    }

    fn on_fail(
        &mut self,
        myself: &ActorRef<CoordinatorMessage>,
        lease_id: &str,
        worker: &str,
        error: &str,
        kind: FailureKind,
        reply: RpcReplyPort<bool>,
    ) {
        self.seen(worker);
        let failed = self.runs.of_lease(lease_id).and_then(|run| {
            let job = label(run.table.leased_job(lease_id, worker)?);
            run.table
                .fail(lease_id, worker, error, kind)
                .then(|| (run.plan.run.clone(), job))
        });
        let accepted = failed.is_some();
        if let Some((run, (job, job_kind, category))) = failed {
            self.counters.failed(kind);
            match kind {
                FailureKind::GiveBack => {
                    tracing::info!(%run, %job, kind = job_kind, %category, %worker, "lease given back: {error}")
                }
                FailureKind::Upstream => {
                    tracing::warn!(%run, %job, kind = job_kind, %category, %worker, "an upstream artifact is unusable, its job runs again: {error}")
                }
                FailureKind::Retryable | FailureKind::Permanent => {
                    tracing::warn!(%run, %job, kind = job_kind, %category, %worker, "job failed: {error}")
                }
            }
            self.runs_changed(myself);
        }
        let _ = reply.send(accepted);
    }

    /// An admitted run is opened beside the actor ([`CoordinatorMessage::Opened`] follows).
    fn on_submit(
        &mut self,
        myself: ActorRef<CoordinatorMessage>,
        plan: Plan,
        reply: RpcReplyPort<Result<Submitted, CoordinatorError>>,
    ) {
        match self.runs.admit(&plan) {
            Admission::AlreadyOpen(submitted) => {
                let _ = reply.send(Ok(submitted));
            }
            Admission::Refused(e) => {
                let _ = reply.send(Err(e));
            }
            Admission::Open => {
                let store = self.store.clone();
                tokio::spawn(async move {
                    let run = plan.run.clone();
                    let opened = Run::open(&store, plan, false, now_ms()).await;
                    let opening = Opening { run, opened, reply };
                    let _ = myself.send_message(CoordinatorMessage::Opened(Box::new(opening)));
                });
            }
        }
    }

    fn on_opened(&mut self, myself: &ActorRef<CoordinatorMessage>, opening: Opening) {
        let Opening { run, opened, reply } = opening;
        self.runs.opened(&run);
        let answer = opened.map(|open| {
            let answer = Submitted::of(&open, false);
            tracing::info!(run = %answer.run, jobs = answer.jobs, reused = answer.finished_before, "run submitted");
            self.adopt(open);
            self.runs_changed(myself);
            answer
        });
        let _ = reply.send(answer);
    }

    fn on_published(&mut self, myself: &ActorRef<CoordinatorMessage>, publication: Publication) {
        let Publication { run, outcome } = publication;
        let run = run.as_str();
        let retire = self.mode == Mode::Service;
        if let Some(summary) = self.runs.published(run, outcome, now_ms(), retire) {
            tracing::info!(%run, "every job has finished; results published");
            for promotion in summary.promotions.values() {
                self.counters.decided(promotion.promoted);
            }
            if self.watchers.first_run.as_deref() == Some(run) {
                self.watchers.first_summary = Some(summary);
            }
            if let Some(index) = &mut self.index {
                index.finished(run);
            }
        }
        self.runs_changed(myself);
    }

    /// An open run's page from its table; any other from its published summary in the store.
    fn on_run_status(
        &self,
        run: String,
        offset: usize,
        limit: usize,
        reply: RpcReplyPort<Result<RunStatus, CoordinatorError>>,
    ) {
        if let Some(open) = self.runs.named(&run) {
            let _ = reply.send(Ok(open.table.status_page(offset, limit)));
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            let _ = reply.send(stored_status(&store, &run, offset, limit).await);
        });
    }

    /// Expires leases past their time and hands the journals their changes.
    fn on_tick(&mut self, myself: &ActorRef<CoordinatorMessage>) {
        let now = now_ms();
        self.presence.prune(now);
        let expired = self.runs.expire(now);
        for (run, job) in &expired {
            tracing::warn!(%run, %job, "lease expired; the job returns to the queue");
            self.counters.leases_expired.inc();
        }
        if !expired.is_empty() || self.runs.has_unpublished() {
            self.runs_changed(myself);
        }
    }

    /// A one-shot coordinator whose runs have all finished.
    fn is_stopping(&self) -> bool {
        self.mode == Mode::Once && self.runs.all_finished()
    }

    /// After jobs finished, failed, lost their leases or were added: starts publishing the runs
    /// that ended (beside the actor, so a slow or absent store never holds up leases), wakes the
    /// waiting lease requests, and in `Once` mode reports the end.
    fn runs_changed(&mut self, myself: &ActorRef<CoordinatorMessage>) {
        for run in self.runs.start_publishing(now_ms()) {
            let stored = run.persist_later();
            let (registry, keys, plan, status, actor) = (
                self.registry.clone(),
                run.keys.clone(),
                run.plan.clone(),
                run.table.status(),
                myself.clone(),
            );
            tokio::spawn(async move {
                let outcome = async {
                    stored
                        .await
                        .map_err(|_| CoordinatorError::JournalStopped)?
                        .map_err(CoordinatorError::Journal)?;
                    publish_results(&registry, &keys, &plan, &status).await
                }
                .await;
                let publication = Publication {
                    run: plan.run,
                    outcome,
                };
                let _ = actor.send_message(CoordinatorMessage::Published(Box::new(publication)));
            });
        }
        if self.is_stopping() && self.watchers.finished.borrow().is_none() {
            let _ = self
                .watchers
                .finished
                .send(self.watchers.first_summary.clone());
        }
        self.watchers
            .changes
            .send_modify(|generation| *generation += 1);
    }

    fn seen(&mut self, worker: &str) {
        self.presence.seen(worker, now_ms());
    }

    fn metrics(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            overview: self.overview(),
            running: self.runs.running_jobs(),
            leasable: self.runs.leasable(),
            workers: self.presence.active(now_ms()),
            counters: self.counters.clone(),
        }
    }

    fn overview(&self) -> ServiceStatus {
        ServiceStatus {
            runs: self.runs.overviews(),
            next_check_unix: self.next_check,
        }
    }
}

/// Replies to a caller; one that stopped waiting needs no answer.
fn answer<T>(reply: RpcReplyPort<T>, value: T) {
    let _ = reply.send(value);
}

fn label(spec: &slsg::job::JobSpec) -> JobLabel {
    (spec.id.to_string(), spec.kind.name(), spec.category.clone())
}

/// A run that is not open: its published summary's jobs from `offset`.
async fn stored_status(
    store: &Store,
    run: &str,
    offset: usize,
    limit: usize,
) -> Result<RunStatus, CoordinatorError> {
    let keys = RunKeys::new(run)?;
    let summary: RunSummary =
        store
            .get_json(&keys.summary())
            .await?
            .ok_or_else(|| CoordinatorError::UnknownRun {
                run: run.to_string(),
            })?;
    let mut status = summary.status;
    status.total_jobs = status.jobs.len();
    status.offset = offset;
    status.jobs = status.jobs.into_iter().skip(offset).take(limit).collect();
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::plan_in;
    use slsg::store::layout::service_runs;

    /// A coordinator actor on a local store in a temporary folder.
    struct Started {
        actor: ActorRef<CoordinatorMessage>,
        task: tokio::task::JoinHandle<()>,
        finished: watch::Receiver<Option<RunSummary>>,
    }

    async fn start(store: &Store, mode: Mode, plans: Vec<Plan>, limit: usize) -> Started {
        let (sender, finished) = watch::channel(None);
        let args = CoordinatorArgs {
            store: store.clone(),
            mode,
            plans,
            retry_failed: false,
            finished: sender,
            open_runs_limit: limit,
        };
        let (actor, task) = Actor::spawn(None, CoordinatorActor, args).await.unwrap();
        Started {
            actor,
            task,
            finished,
        }
    }

    impl Started {
        async fn stop(self) {
            self.actor.stop(None);
            self.task.await.unwrap();
        }

        async fn lease(&self, worker: &str) -> LeaseAnswer {
            lease_waiting(&self.actor, worker, Duration::from_millis(50))
                .await
                .unwrap()
        }

        async fn fail(&self, granted: &Granted, worker: &str, kind: FailureKind) -> bool {
            let (lease_id, worker, error) = (
                granted.lease_id.clone(),
                worker.to_string(),
                "broken".to_string(),
            );
            ractor::call!(self.actor, |reply| CoordinatorMessage::Fail {
                lease_id,
                worker,
                error,
                kind,
                reply
            })
            .unwrap()
        }

        async fn submit(&self, plan: Plan) -> Result<Submitted, CoordinatorError> {
            ractor::call!(self.actor, |reply| CoordinatorMessage::Submit {
                plan: Box::new(plan),
                reply
            })
            .unwrap()
        }

        async fn runs(&self) -> Vec<(String, bool)> {
            let overview =
                ractor::call!(self.actor, |reply| CoordinatorMessage::Overview { reply }).unwrap();
            overview
                .runs
                .into_iter()
                .map(|run| (run.run, run.finished))
                .collect()
        }
    }

    fn local_store() -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap().to_string();
        let store = Store::open(&url).unwrap();
        (dir, store, url)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_one_shot_coordinator_ends_once_its_run_has_ended() {
        let (_dir, store, url) = local_store();
        let mut started = start(&store, Mode::Once, vec![plan_in("r", &url)], 4).await;
        let granted = started.lease("w").await.granted.expect("the first job");
        assert_eq!(granted.spec.id.as_str(), "p");
        assert!(
            !started.fail(&granted, "x", FailureKind::Permanent).await,
            "only the holder may report"
        );
        assert!(started.fail(&granted, "w", FailureKind::Permanent).await);
        // Its dependents are blocked, so the run has ended: it publishes, and the end is told.
        tokio::time::timeout(
            Duration::from_secs(30),
            started.finished.wait_for(|s| s.is_some()),
        )
        .await
        .expect("the run's end within 30 s")
        .unwrap();
        let summary = started.finished.borrow().clone().unwrap();
        let states: Vec<&str> = summary.status.jobs.iter().map(|j| j.state.name()).collect();
        assert_eq!(states, ["failed", "blocked", "blocked"]);
        let last = started.lease("w").await;
        assert!(last.granted.is_none() && last.stopping);
        started.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_recovers_its_runs_and_refuses_submissions_past_its_limit() {
        let (_dir, store, url) = local_store();
        let started = start(&store, Mode::Service, vec![plan_in("config", &url)], 2).await;
        let submitted = started.submit(plan_in("second", &url)).await.unwrap();
        assert_eq!((submitted.jobs, submitted.already_open), (3, false));
        let again = started.submit(plan_in("second", &url)).await.unwrap();
        assert!(again.already_open);
        assert!(matches!(
            started.submit(plan_in("third", &url)).await,
            Err(CoordinatorError::TooManyRuns { limit: 2 })
        ));
        let open = started.runs().await;
        started.stop().await;
        // The service's list is written by a thread of its own, which may still be writing
        // (a coordinator process waits for it before letting the next one start).
        let listed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let stored = store
                    .get(&service_runs())
                    .await
                    .unwrap()
                    .unwrap_or_default();
                if String::from_utf8_lossy(&stored).contains("second") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(listed.is_ok(), "the service's list names the submitted run");
        // Started again on the same store, with the same config: the config's run is not
        // opened twice, and the submitted run is recovered from the service's list.
        let restarted = start(&store, Mode::Service, vec![plan_in("config", &url)], 2).await;
        assert_eq!(restarted.runs().await, open);
        assert_eq!(
            open,
            [("config".to_string(), false), ("second".to_string(), false)]
        );
        restarted.stop().await;
    }
}
