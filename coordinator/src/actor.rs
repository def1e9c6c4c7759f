//! The coordinator actor: owns every open run (its job table and journal) and, as a service, the
//! list of runs in the store; every submission, lease, heartbeat, completion and failure goes
//! through its mailbox. Leases go to the oldest run with a ready job; a run publishes its results
//! when its last job finishes. A one-shot coordinator (`Mode::Once`) ends when its runs have.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use slsg::job::{FailureKind, JobProgress, JobResult, Plan, RunOverview, RunStatus, ServiceStatus};
use slsg::registry::Registry;
use slsg::store::Store;
use slsg::store::layout::{RunKeys, service_runs};
use tokio::sync::watch;

use crate::error::CoordinatorError;
use crate::lease::new_lease_id;
use crate::metrics::{CoordinatorCounters, MetricsSnapshot, RunningJob};
use crate::presence::Presence;
use crate::publish::{RunSummary, publish_results};
use crate::run::{Run, Unverified, verify_completion};
use crate::table::{Granted, HeartbeatOutcome};
use crate::writer::DocumentWriter;

/// How often leases are checked and the journals written.
pub const TICK: Duration = Duration::from_millis(500);
/// Finished runs a service keeps in its overview.
pub const FINISHED_RUNS_SHOWN: usize = 100;
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
    Verified {
        run: String,
        lease_id: String,
        worker: String,
        outcome: Box<Result<JobResult, Unverified>>,
        reply: RpcReplyPort<Result<bool, CoordinatorError>>,
    },
    /// A submitted run was opened (beside the actor).
    Opened {
        run: String,
        opened: Box<Result<Run, CoordinatorError>>,
        reply: RpcReplyPort<Result<Submitted, CoordinatorError>>,
    },
    /// A finished run's results were published (beside the actor).
    Published {
        run: String,
        outcome: Box<Result<RunSummary, CoordinatorError>>,
    },
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

/// What a submission found or started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub run: String,
    pub jobs: usize,
    /// Jobs found finished in the store (reused, not run again).
    pub finished_before: usize,
    /// The run was open with the same plan already.
    pub already_open: bool,
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

/// The service's list of runs (`service/runs.json`), oldest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RunIndex {
    runs: Vec<IndexEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct IndexEntry {
    run: String,
    finished: bool,
}

pub struct CoordinatorState {
    store: Store,
    registry: Registry,
    mode: Mode,
    /// Open runs, oldest first: leases go to the first with a ready job.
    runs: Vec<Run>,
    /// Runs being opened beside the actor.
    opening: BTreeSet<String>,
    open_runs_limit: usize,
    /// Finished runs, newest last (their results are in the store).
    finished_runs: VecDeque<RunOverview>,
    index: RunIndex,
    index_writer: Option<DocumentWriter<RunIndex>>,
    next_check: Option<u64>,
    /// Bumped when jobs may have become leasable (see [`CoordinatorMessage::Subscribe`]).
    changes: watch::Sender<u64>,
    finished: watch::Sender<Option<RunSummary>>,
    /// The first run's summary, kept for `Once` mode's `finished`.
    first_run: Option<String>,
    first_summary: Option<RunSummary>,
    counters: CoordinatorCounters,
    /// The workers heard from lately, with their devices.
    presence: Presence,
}

pub struct CoordinatorActor;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long a failed publication waits before it is tried again.
const PUBLISH_RETRY_MS: u64 = 5_000;

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
            runs: Vec::new(),
            opening: BTreeSet::new(),
            open_runs_limit,
            finished_runs: VecDeque::new(),
            index: RunIndex::default(),
            index_writer: None,
            next_check: None,
            changes: watch::channel(0).0,
            finished,
            first_run: plans.first().map(|p| p.run.clone()),
            first_summary: None,
            counters: CoordinatorCounters::default(),
            presence: Presence::default(),
        };
        if mode == Mode::Service {
            state.recover().await?;
            state.index_writer = Some(
                DocumentWriter::start(
                    "index-writer",
                    state.store.clone(),
                    service_runs(),
                    state.index.clone(),
                    tokio::runtime::Handle::current(),
                )
                .map_err(CoordinatorError::Thread)?,
            );
        }
        for plan in plans {
            // A service opens its config's run once: after a restart the run is recovered (or
            // finished); changes are submitted as runs of their own.
            if mode == Mode::Service && state.index.runs.iter().any(|e| e.run == plan.run) {
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
            } => {
                tracing::info!(%worker, %device, "worker joined");
                state.presence.registered(&worker, &device, now_ms());
                let _ = reply.send(());
            }
            CoordinatorMessage::Lease {
                worker,
                asked_at,
                reply,
            } => {
                state.seen(&worker);
                let answer = state.lease(&worker);
                if let Ok(LeaseAnswer {
                    granted: Some(granted),
                    ..
                }) = &answer
                {
                    let counters = &state.counters;
                    counters.leases_granted.inc();
                    if granted.attempt > 1 {
                        counters.retries.inc();
                    }
                    counters
                        .lease_wait
                        .observe(asked_at.elapsed().as_secs_f64());
                }
                let _ = reply.send(answer);
            }
            CoordinatorMessage::Heartbeat {
                lease_id,
                worker,
                progress,
                reply,
            } => {
                let now = now_ms();
                state.seen(&worker);
                match state.run_of_lease(&lease_id) {
                    Some(run) => {
                        let outcome = run.table.heartbeat(&lease_id, &worker, progress, now);
                        if run.table.has_trial_changes() {
                            // An early-stopping record is answered once journaled, so a
                            // restarted coordinator judges the next trials by the same records.
                            let stored = run.persist_later();
                            tokio::spawn(async move {
                                let _ = stored.await;
                                let _ = reply.send(outcome);
                            });
                        } else {
                            let _ = reply.send(outcome);
                        }
                    }
                    None => {
                        let _ = reply.send(HeartbeatOutcome::refused());
                    }
                }
            }
            CoordinatorMessage::Complete {
                lease_id,
                worker,
                reply,
            } => {
                let store = state.store.clone();
                state.seen(&worker);
                let refused = state.counters.completions_refused.clone();
                let Some(run) = state.run_of_lease(&lease_id) else {
                    refused.inc();
                    let _ = reply.send(Ok(false));
                    return Ok(());
                };
                let Some(spec) = run.table.leased_job(&lease_id, &worker) else {
                    tracing::warn!(lease = %lease_id, %worker, "a completion from a worker that does not hold the lease");
                    refused.inc();
                    let _ = reply.send(Ok(false));
                    return Ok(());
                };
                let (keys, kind, run_name) =
                    (run.keys.job(&spec.id)?, spec.kind, run.plan.run.clone());
                tokio::spawn(async move {
                    let outcome = verify_completion(&store, &keys, kind).await;
                    let _ = myself.send_message(CoordinatorMessage::Verified {
                        run: run_name,
                        lease_id,
                        worker,
                        outcome: Box::new(outcome),
                        reply,
                    });
                });
            }
            CoordinatorMessage::Verified {
                run,
                lease_id,
                worker,
                outcome,
                reply,
            } => {
                let Some(open) = state.runs.iter_mut().find(|r| r.plan.run == run) else {
                    let _ = reply.send(Ok(false));
                    return Ok(());
                };
                let job = open
                    .table
                    .leased_job(&lease_id, &worker)
                    .map(|s| (s.id.clone(), s.kind, s.category.clone()));
                let answer = match *outcome {
                    Ok(result) => {
                        let accepted = open.table.complete(&lease_id, &worker, Box::new(result));
                        if let Some((job, kind, category)) = job.filter(|_| accepted) {
                            tracing::info!(%run, %job, kind = kind.name(), %category, %worker, "job done");
                        }
                        Ok(accepted)
                    }
                    Err(Unverified::Store(e)) => Err(CoordinatorError::Store(e)),
                    Err(e @ Unverified::Artifact { .. }) => {
                        let error = format!("its artifacts did not verify in the store: {e}");
                        tracing::warn!(%run, lease = %lease_id, "a reported completion refused: {error}");
                        state.counters.completions_refused.inc();
                        open.table
                            .fail(&lease_id, &worker, &error, FailureKind::Retryable);
                        Ok(false)
                    }
                };
                // The worker stored the job's result.json before reporting, and a restarted
                // coordinator counts every job with one as done: the journal can follow within
                // a tick instead of holding up every completion.
                state.runs_changed(&myself);
                let _ = reply.send(answer);
            }
            CoordinatorMessage::Fail {
                lease_id,
                worker,
                error,
                kind,
                reply,
            } => {
                state.seen(&worker);
                let failed = state.run_of_lease(&lease_id).and_then(|run| {
                    let spec = run.table.leased_job(&lease_id, &worker)?;
                    let job = (spec.id.clone(), spec.kind, spec.category.clone());
                    run.table
                        .fail(&lease_id, &worker, &error, kind)
                        .then(|| (run.plan.run.clone(), job))
                });
                let accepted = failed.is_some();
                if let Some((run, (id, job_kind, category))) = failed {
                    state.counters.failed(kind);
                    let kind_name = job_kind.name();
                    match kind {
                        FailureKind::GiveBack => {
                            tracing::info!(%run, job = %id, kind = kind_name, %category, %worker, "lease given back: {error}")
                        }
                        FailureKind::Upstream => {
                            tracing::warn!(%run, job = %id, kind = kind_name, %category, %worker, "an upstream artifact is unusable, its job runs again: {error}")
                        }
                        FailureKind::Retryable | FailureKind::Permanent => {
                            tracing::warn!(%run, job = %id, kind = kind_name, %category, %worker, "job failed: {error}")
                        }
                    }
                    state.runs_changed(&myself);
                }
                let _ = reply.send(accepted);
            }
            CoordinatorMessage::Submit { plan, reply } => {
                if let Some(open) = state.runs.iter().find(|r| r.plan.run == plan.run) {
                    let answer = if open.plan == *plan {
                        Ok(submitted(open, true))
                    } else {
                        Err(CoordinatorError::RunInProgress { run: plan.run })
                    };
                    let _ = reply.send(answer);
                    return Ok(());
                }
                let open =
                    state.runs.iter().filter(|r| r.summary.is_none()).count() + state.opening.len();
                if open >= state.open_runs_limit {
                    let limit = state.open_runs_limit;
                    let _ = reply.send(Err(CoordinatorError::TooManyRuns { limit }));
                    return Ok(());
                }
                if !state.opening.insert(plan.run.clone()) {
                    let _ = reply.send(Err(CoordinatorError::RunInProgress { run: plan.run }));
                    return Ok(());
                }
                let store = state.store.clone();
                tokio::spawn(async move {
                    let run = plan.run.clone();
                    let opened = Run::open(&store, *plan, false, now_ms()).await;
                    let _ = myself.send_message(CoordinatorMessage::Opened {
                        run,
                        opened: Box::new(opened),
                        reply,
                    });
                });
            }
            CoordinatorMessage::Opened { run, opened, reply } => {
                state.opening.remove(&run);
                let answer = match *opened {
                    Ok(open) => {
                        let answer = submitted(&open, false);
                        tracing::info!(run = %answer.run, jobs = answer.jobs, reused = answer.finished_before, "run submitted");
                        state.adopt(open);
                        state.runs_changed(&myself);
                        Ok(answer)
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(answer);
            }
            CoordinatorMessage::Published { run, outcome } => {
                state.published(&run, *outcome);
                state.runs_changed(&myself);
            }
            CoordinatorMessage::Overview { reply } => {
                let _ = reply.send(state.overview());
            }
            CoordinatorMessage::RunStatus {
                run,
                offset,
                limit,
                reply,
            } => {
                if let Some(open) = state.runs.iter().find(|r| r.plan.run == run) {
                    let _ = reply.send(Ok(open.table.status_page(offset, limit)));
                } else {
                    let store = state.store.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(stored_status(&store, &run, offset, limit).await);
                    });
                }
            }
            CoordinatorMessage::Subscribe { reply } => {
                let _ = reply.send(state.changes.subscribe());
            }
            CoordinatorMessage::Training { reply } => {
                let training = state
                    .runs
                    .iter()
                    .filter(|run| run.summary.is_none())
                    .flat_map(|run| run.table.unfinished_categories())
                    .chain(state.opening.iter().cloned())
                    .collect();
                let _ = reply.send(training);
            }
            CoordinatorMessage::NextCheck { unix } => state.next_check = unix,
            CoordinatorMessage::Metrics { reply } => {
                let _ = reply.send(state.metrics());
            }
            CoordinatorMessage::Tick => {
                let now = now_ms();
                let mut changed = false;
                state.presence.prune(now);
                for run in &mut state.runs {
                    for job in run.table.expire(now) {
                        tracing::warn!(run = %run.plan.run, %job, "lease expired; the job returns to the queue");
                        state.counters.leases_expired.inc();
                        changed = true;
                    }
                    run.journal_changes();
                    changed |= run.table.is_finished() && run.summary.is_none() && !run.publishing;
                }
                if changed {
                    state.runs_changed(&myself);
                }
            }
        }
        Ok(())
    }
}

fn submitted(run: &Run, already_open: bool) -> Submitted {
    Submitted {
        run: run.plan.run.clone(),
        jobs: run.table.len(),
        finished_before: run.table.state_counts().get("done").copied().unwrap_or(0),
        already_open,
    }
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

impl CoordinatorState {
    /// Reopens every unfinished run of the service's list from its stored plan.
    async fn recover(&mut self) -> Result<(), CoordinatorError> {
        let Some(index) = self.store.get_json::<RunIndex>(&service_runs()).await? else {
            return Ok(());
        };
        for entry in &index.runs {
            if entry.finished {
                self.finished_runs.push_back(RunOverview {
                    run: entry.run.clone(),
                    retraining: false,
                    finished: true,
                    jobs: 0,
                    states: Default::default(),
                    kinds: Default::default(),
                });
                continue;
            }
            let keys = RunKeys::new(&entry.run)?;
            match self.store.get_json::<Plan>(&keys.plan()).await? {
                Some(plan) => {
                    tracing::info!(run = %entry.run, "recovering an unfinished run");
                    self.runs
                        .push(Run::open(&self.store, plan, false, now_ms()).await?);
                }
                None => {
                    tracing::warn!(run = %entry.run, "its plan is missing from the store; not recovered")
                }
            }
        }
        self.index = index;
        while self.finished_runs.len() > FINISHED_RUNS_SHOWN {
            self.finished_runs.pop_front();
        }
        Ok(())
    }

    /// Takes an opened run into the table of runs and the service's list.
    fn adopt(&mut self, run: Run) {
        let name = run.plan.run.clone();
        self.finished_runs.retain(|r| r.run != name);
        self.runs.push(run);
        self.index.runs.retain(|e| e.run != name);
        self.index.runs.push(IndexEntry {
            run: name,
            finished: false,
        });
        self.write_index();
    }

    fn write_index(&mut self) {
        // Beyond the runs shown, finished runs leave the list (their results stay in the store).
        let finished = self.index.runs.iter().filter(|e| e.finished).count();
        let mut surplus = finished.saturating_sub(FINISHED_RUNS_SHOWN);
        self.index.runs.retain(|e| {
            let gone = e.finished && surplus > 0;
            surplus -= usize::from(gone);
            !gone
        });
        if let Some(writer) = &self.index_writer {
            let snapshot = self.index.clone();
            writer.update(move |index| *index = snapshot, None);
        }
    }

    fn lease(&mut self, worker: &str) -> Result<LeaseAnswer, CoordinatorError> {
        let now = now_ms();
        for run in &mut self.runs {
            if run.summary.is_some() {
                continue;
            }
            let mut failure = None;
            let granted = run.table.lease(worker, now, || match new_lease_id() {
                Ok(id) => id,
                Err(e) => {
                    failure = Some(CoordinatorError::Random(e.to_string()));
                    String::new()
                }
            });
            if let Some(e) = failure {
                return Err(e);
            }
            if let Some(granted) = granted {
                tracing::info!(%worker, run = %run.plan.run, job = %granted.spec.id, kind = granted.spec.kind.name(), category = %granted.spec.category, attempt = granted.attempt, "leased");
                return Ok(LeaseAnswer {
                    granted: Some(granted),
                    stopping: false,
                });
            }
        }
        Ok(LeaseAnswer {
            granted: None,
            stopping: self.is_stopping(),
        })
    }

    /// A one-shot coordinator whose runs have all finished.
    fn is_stopping(&self) -> bool {
        self.mode == Mode::Once
            && self.opening.is_empty()
            && self.runs.iter().all(|r| r.summary.is_some())
    }

    fn run_of_lease(&mut self, lease_id: &str) -> Option<&mut Run> {
        self.runs
            .iter_mut()
            .find(|run| run.table.has_lease(lease_id))
    }

    /// After jobs finished, failed, lost their leases or were added: starts publishing the runs
    /// that ended (beside the actor, so a slow or absent store never holds up leases), wakes the
    /// waiting lease requests, and in `Once` mode reports the end.
    fn runs_changed(&mut self, myself: &ActorRef<CoordinatorMessage>) {
        let now = now_ms();
        for run in &mut self.runs {
            if !run.table.is_finished()
                || run.summary.is_some()
                || run.publishing
                || now < run.publish_after_ms
            {
                continue;
            }
            run.publishing = true;
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
                let _ = actor.send_message(CoordinatorMessage::Published {
                    run: plan.run,
                    outcome: Box::new(outcome),
                });
            });
        }
        if self.is_stopping() && self.finished.borrow().is_none() {
            let _ = self.finished.send(self.first_summary.clone());
        }
        self.changes.send_modify(|generation| *generation += 1);
    }

    fn published(&mut self, name: &str, outcome: Result<RunSummary, CoordinatorError>) {
        let Some(run) = self.runs.iter_mut().find(|r| r.plan.run == name) else {
            return;
        };
        run.publishing = false;
        match outcome {
            Err(e) => {
                tracing::error!(run = %name, "publishing the results failed: {e}; trying again");
                run.publish_after_ms = now_ms() + PUBLISH_RETRY_MS;
            }
            Ok(summary) => {
                tracing::info!(run = %name, "every job has finished; results published");
                for promotion in summary.promotions.values() {
                    self.counters.decided(promotion.promoted);
                }
                if self.first_run.as_deref() == Some(name) {
                    self.first_summary = Some(summary.clone());
                }
                run.summary = Some(summary);
                for entry in &mut self.index.runs {
                    if entry.run == name {
                        entry.finished = true;
                    }
                }
                self.write_index();
                if self.mode == Mode::Service {
                    let (done, open): (Vec<Run>, Vec<Run>) = std::mem::take(&mut self.runs)
                        .into_iter()
                        .partition(|r| r.summary.is_some());
                    self.runs = open;
                    for run in done {
                        self.finished_runs.push_back(run.overview());
                    }
                    while self.finished_runs.len() > FINISHED_RUNS_SHOWN {
                        self.finished_runs.pop_front();
                    }
                }
            }
        }
    }

    fn seen(&mut self, worker: &str) {
        self.presence.seen(worker, now_ms());
    }

    fn metrics(&self) -> MetricsSnapshot {
        let running = self
            .runs
            .iter()
            .flat_map(|run| {
                run.table
                    .running_jobs()
                    .into_iter()
                    .map(|status| RunningJob {
                        run: run.plan.run.clone(),
                        status,
                    })
            })
            .collect();
        let now = now_ms();
        MetricsSnapshot {
            overview: self.overview(),
            running,
            workers: self.presence.active(now),
            counters: self.counters.clone(),
        }
    }

    fn overview(&self) -> ServiceStatus {
        ServiceStatus {
            runs: self
                .finished_runs
                .iter()
                .cloned()
                .chain(self.runs.iter().map(Run::overview))
                .collect(),
            next_check_unix: self.next_check,
        }
    }
}
