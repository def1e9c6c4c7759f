//! The coordinator actor: owns every open run (its job table and journal) and, as a service, the
//! list of runs in the store; every submission, lease, heartbeat, completion and failure goes
//! through its mailbox. Leases go to the oldest run with a ready job; a run publishes its results
//! when its last job finishes. A one-shot coordinator (`Mode::Once`) ends when its runs have.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use slsg::job::{FailureKind, JobProgress, JobResult, Plan, RunOverview, RunStatus, ServiceStatus};
use slsg::registry::Registry;
use slsg::store::Store;
use slsg::store::layout::{RunKeys, service_runs};
use tokio::sync::watch;

use crate::error::CoordinatorError;
use crate::publish::RunSummary;
use crate::run::Run;
use crate::table::{Granted, HeartbeatOutcome};

/// How often leases are checked and the journals written.
pub const TICK: Duration = Duration::from_millis(500);
/// Finished runs a service keeps in its overview.
pub const FINISHED_RUNS_SHOWN: usize = 100;

pub enum CoordinatorMessage {
    Register {
        worker: String,
        device: String,
        reply: RpcReplyPort<()>,
    },
    Lease {
        worker: String,
        reply: RpcReplyPort<Result<LeaseAnswer, CoordinatorError>>,
    },
    Heartbeat {
        lease_id: String,
        progress: Option<JobProgress>,
        reply: RpcReplyPort<HeartbeatOutcome>,
    },
    Complete {
        lease_id: String,
        result: Box<JobResult>,
        reply: RpcReplyPort<bool>,
    },
    Fail {
        lease_id: String,
        error: String,
        kind: FailureKind,
        reply: RpcReplyPort<bool>,
    },
    /// Opens a run (or finds it open with the same plan already).
    Submit {
        plan: Box<Plan>,
        reply: RpcReplyPort<Result<Submitted, CoordinatorError>>,
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
    // Subscribed only once a first ask found nothing, so a granted lease costs one message.
    let mut changes: Option<watch::Receiver<u64>> = None;
    loop {
        if let Some(changes) = &mut changes {
            // Marked seen before asking, so a change after the answer wakes the wait below.
            changes.borrow_and_update();
        }
        let worker = worker.to_string();
        let answer = ractor::call!(actor, |reply| CoordinatorMessage::Lease { worker, reply })
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
    /// In `Once` mode, receives the first plan's summary once every run has finished.
    pub finished: watch::Sender<Option<RunSummary>>,
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
    /// Finished runs, newest last (their results are in the store).
    finished_runs: VecDeque<RunOverview>,
    index: RunIndex,
    next_check: Option<u64>,
    /// Bumped when jobs may have become leasable (see [`CoordinatorMessage::Subscribe`]).
    changes: watch::Sender<u64>,
    finished: watch::Sender<Option<RunSummary>>,
    /// The first run's summary, kept for `Once` mode's `finished`.
    first_summary: Option<RunSummary>,
}

pub struct CoordinatorActor;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 128 bits from the operating system's generator, in hex: a lease id nobody can guess.
fn new_lease_id() -> Result<String, CoordinatorError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CoordinatorError::Random(e.to_string()))?;
    Ok(slsg::data::hex(&bytes))
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
            finished,
        } = args;
        let mut state = CoordinatorState {
            registry: Registry::new(store.clone()),
            store,
            mode,
            runs: Vec::new(),
            finished_runs: VecDeque::new(),
            index: RunIndex::default(),
            next_check: None,
            changes: watch::channel(0).0,
            finished,
            first_summary: None,
        };
        if mode == Mode::Service {
            state.recover().await?;
        }
        for plan in plans {
            // A service opens its config's run once: after a restart the run is recovered (or
            // finished); changes are submitted as runs of their own.
            if mode == Mode::Service && state.index.runs.iter().any(|e| e.run == plan.run) {
                tracing::info!(run = %plan.run, "the config's run is known to this store; not opened again");
                continue;
            }
            state.submit(plan).await?;
        }
        myself.send_interval(TICK, || CoordinatorMessage::Tick);
        state.runs_changed().await?;
        Ok(state)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
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
                let _ = reply.send(());
            }
            CoordinatorMessage::Lease { worker, reply } => {
                let _ = reply.send(state.lease(&worker));
            }
            CoordinatorMessage::Heartbeat {
                lease_id,
                progress,
                reply,
            } => {
                let now = now_ms();
                let outcome = state
                    .run_of_lease(&lease_id)
                    .map(|run| run.table.heartbeat(&lease_id, progress, now))
                    .unwrap_or(HeartbeatOutcome {
                        accepted: false,
                        cancel: true,
                        deadline_ms: 0,
                    });
                let _ = reply.send(outcome);
            }
            CoordinatorMessage::Complete {
                lease_id,
                result,
                reply,
            } => {
                let accepted = state
                    .run_of_lease(&lease_id)
                    .is_some_and(|run| run.table.complete(&lease_id, result));
                if accepted {
                    tracing::info!(lease = %lease_id, "job done");
                    // The worker stored the job's result.json before reporting, and a restarted
                    // coordinator counts every job with one as done: the journal can follow
                    // within a tick instead of holding up every completion.
                    state.runs_changed().await?;
                }
                let _ = reply.send(accepted);
            }
            CoordinatorMessage::Fail {
                lease_id,
                error,
                kind,
                reply,
            } => {
                let accepted = state
                    .run_of_lease(&lease_id)
                    .is_some_and(|run| run.table.fail(&lease_id, &error, kind));
                if accepted {
                    if kind == FailureKind::GiveBack {
                        tracing::info!(lease = %lease_id, "lease given back: {error}");
                    } else {
                        tracing::warn!(lease = %lease_id, "job failed: {error}");
                    }
                    state.runs_changed().await?;
                }
                let _ = reply.send(accepted);
            }
            CoordinatorMessage::Submit { plan, reply } => {
                let submitted = state.submit(*plan).await;
                if submitted.is_ok() {
                    state.runs_changed().await?;
                }
                let _ = reply.send(submitted);
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
                let _ = reply.send(state.run_status(&run, offset, limit).await);
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
                    .collect();
                let _ = reply.send(training);
            }
            CoordinatorMessage::NextCheck { unix } => state.next_check = unix,
            CoordinatorMessage::Tick => {
                let now = now_ms();
                let mut expired_any = false;
                for run in &mut state.runs {
                    for job in run.table.expire(now) {
                        tracing::warn!(run = %run.plan.run, %job, "lease expired; the job returns to the queue");
                        expired_any = true;
                    }
                    run.journal_changes();
                }
                if expired_any {
                    state.runs_changed().await?;
                }
            }
        }
        Ok(())
    }
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
                });
                continue;
            }
            let keys = RunKeys::new(&entry.run)?;
            match self.store.get_json::<Plan>(&keys.plan()).await? {
                Some(plan) => {
                    tracing::info!(run = %entry.run, "recovering an unfinished run");
                    self.runs
                        .push(Run::open(&self.store, plan, now_ms()).await?);
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

    async fn submit(&mut self, plan: Plan) -> Result<Submitted, CoordinatorError> {
        if let Some(open) = self.runs.iter().find(|r| r.plan.run == plan.run) {
            if open.plan != plan {
                return Err(CoordinatorError::RunInProgress { run: plan.run });
            }
            return Ok(Submitted {
                run: plan.run.clone(),
                jobs: open.table.len(),
                finished_before: open.table.state_counts().get("done").copied().unwrap_or(0),
                already_open: true,
            });
        }
        let run = Run::open(&self.store, plan, now_ms()).await?;
        let submitted = Submitted {
            run: run.plan.run.clone(),
            jobs: run.table.len(),
            finished_before: run.table.state_counts().get("done").copied().unwrap_or(0),
            already_open: false,
        };
        tracing::info!(run = %submitted.run, jobs = submitted.jobs, reused = submitted.finished_before, "run submitted");
        self.finished_runs.retain(|r| r.run != submitted.run);
        self.runs.push(run);
        self.index.runs.retain(|e| e.run != submitted.run);
        self.index.runs.push(IndexEntry {
            run: submitted.run.clone(),
            finished: false,
        });
        self.write_index().await?;
        Ok(submitted)
    }

    async fn write_index(&mut self) -> Result<(), CoordinatorError> {
        if self.mode != Mode::Service {
            return Ok(());
        }
        // Beyond the runs shown, finished runs leave the list (their results stay in the store).
        let finished = self.index.runs.iter().filter(|e| e.finished).count();
        let mut drop = finished.saturating_sub(FINISHED_RUNS_SHOWN);
        self.index.runs.retain(|e| {
            let gone = e.finished && drop > 0;
            drop -= usize::from(gone);
            !gone
        });
        Ok(self.store.put_json(&service_runs(), &self.index).await?)
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
                    failure = Some(e);
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
        self.mode == Mode::Once && self.runs.iter().all(|r| r.summary.is_some())
    }

    fn run_of_lease(&mut self, lease_id: &str) -> Option<&mut Run> {
        self.runs
            .iter_mut()
            .find(|run| run.table.lease_job(lease_id).is_some())
    }

    /// After jobs finished, failed, lost their leases or were added: publishes the runs that
    /// ended, wakes the waiting lease requests, and in `Once` mode reports the end.
    async fn runs_changed(&mut self) -> Result<(), CoordinatorError> {
        let mut ended = Vec::new();
        for (i, run) in self.runs.iter_mut().enumerate() {
            if let Some(summary) = run.publish_if_finished(&self.registry).await? {
                if i == 0 && self.first_summary.is_none() {
                    self.first_summary = Some(summary.clone());
                }
                ended.push(run.plan.run.clone());
            }
        }
        if !ended.is_empty() {
            for entry in &mut self.index.runs {
                if ended.contains(&entry.run) {
                    entry.finished = true;
                }
            }
            self.write_index().await?;
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
        if self.is_stopping() && self.finished.borrow().is_none() {
            let _ = self.finished.send(self.first_summary.clone());
        }
        self.changes.send_modify(|generation| *generation += 1);
        Ok(())
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

    async fn run_status(
        &self,
        run: &str,
        offset: usize,
        limit: usize,
    ) -> Result<RunStatus, CoordinatorError> {
        if let Some(open) = self.runs.iter().find(|r| r.plan.run == run) {
            return Ok(open.table.status_page(offset, limit));
        }
        let keys = RunKeys::new(run)?;
        let summary: RunSummary = self.store.get_json(&keys.summary()).await?.ok_or_else(|| {
            CoordinatorError::UnknownRun {
                run: run.to_string(),
            }
        })?;
        let mut status = summary.status;
        status.total_jobs = status.jobs.len();
        status.offset = offset;
        status.jobs = status.jobs.into_iter().skip(offset).take(limit).collect();
        Ok(status)
    }
}
