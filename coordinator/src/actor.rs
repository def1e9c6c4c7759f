//! The coordinator actor: owns the job table; every lease, heartbeat, completion and failure
//! goes through its mailbox. Journals the table to the store within a tick of a change (a
//! finished job is durable sooner, through the `result.json` its worker stored), expires leases
//! on a timer, and publishes the results when every job has finished.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use slsg::job::{FailureKind, JobId, JobProgress, JobResult, Plan, RunStatus};
use slsg::registry::Registry;
use slsg::store::layout::RunKeys;
use slsg::store::{Key, Store, StoreError};
use tokio::sync::{oneshot, watch};

use crate::error::CoordinatorError;
use crate::publish::{RunSummary, publish_results};
use crate::table::{Granted, HeartbeatOutcome, JobTable, Journal, JournalChanges};

/// How often leases are checked and the journal written.
pub const TICK: Duration = Duration::from_millis(500);

pub enum CoordinatorMessage {
    Register {
        worker: String,
        device: String,
        reply: RpcReplyPort<()>,
    },
    Lease {
        worker: String,
        reply: RpcReplyPort<LeaseAnswer>,
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
    Status {
        reply: RpcReplyPort<RunStatus>,
    },
    /// A receiver that changes whenever a job may have become leasable or the run finished,
    /// so waiting lease requests sleep instead of polling.
    Subscribe {
        reply: RpcReplyPort<watch::Receiver<u64>>,
    },
    /// Timer: expire leases, write the journal if it changed.
    Tick,
}

/// Asks for a job until one is granted, the run finishes or `wait` passes; between asks it
/// sleeps until the table changes. The long poll of both links (in-process and gRPC).
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
            .map_err(CoordinatorError::gone)?;
        if answer.granted.is_some() || answer.run_finished {
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
    pub run_finished: bool,
}

pub struct CoordinatorArgs {
    pub plan: Plan,
    pub store: Store,
    /// Receives the summary once every job has finished and the results are published.
    pub finished: watch::Sender<Option<RunSummary>>,
}

pub struct CoordinatorState {
    table: JobTable,
    plan: Plan,
    run: RunKeys,
    registry: Registry,
    journal: JournalWriter,
    /// Bumped when jobs may have become leasable (see [`CoordinatorMessage::Subscribe`]).
    changes: watch::Sender<u64>,
    finished: watch::Sender<Option<RunSummary>>,
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
            plan,
            store,
            finished,
        } = args;
        let run = RunKeys::new(&plan.run).map_err(CoordinatorError::from)?;
        store
            .put_json(&run.plan(), &plan)
            .await
            .map_err(CoordinatorError::from)?;
        let results = load_results(&store, &run, &plan).await?;
        let journal: Option<Journal> = store
            .get_json(&run.journal())
            .await
            .map_err(CoordinatorError::from)?;
        let mut table = match journal {
            Some(journal) => {
                tracing::info!(run = %plan.run, "recovering the run from its journal");
                JobTable::restore(&plan, journal, &results, now_ms())
            }
            None => JobTable::new(&plan),
        };
        for id in table.queued() {
            if let Some(result) = results.get(&id) {
                table.mark_done(&id, result.clone());
            }
        }
        let reused = results.len();
        tracing::info!(run = %plan.run, jobs = plan.jobs.len(), finished_before = reused, "coordinator ready");
        let journal = JournalWriter::start(
            store.clone(),
            run.journal(),
            table.journal(),
            tokio::runtime::Handle::current(),
        );
        myself.send_interval(TICK, || CoordinatorMessage::Tick);
        let mut state = CoordinatorState {
            table,
            plan,
            run,
            registry: Registry::new(store),
            journal,
            changes: watch::channel(0).0,
            finished,
        };
        state.persist().await?;
        state.publish_if_finished().await?;
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
                let granted = state.table.lease(&worker, now_ms());
                if let Some(g) = &granted {
                    tracing::info!(%worker, job = %g.spec.id, kind = g.spec.kind.name(), category = %g.spec.category, attempt = g.attempt, "leased");
                }
                let _ = reply.send(LeaseAnswer {
                    granted,
                    run_finished: state.table.is_finished(),
                });
            }
            CoordinatorMessage::Heartbeat {
                lease_id,
                progress,
                reply,
            } => {
                let _ = reply.send(state.table.heartbeat(&lease_id, progress, now_ms()));
            }
            CoordinatorMessage::Complete {
                lease_id,
                result,
                reply,
            } => {
                let accepted = state.table.complete(&lease_id, result);
                if accepted {
                    tracing::info!(lease = %lease_id, "job done");
                    // The worker stored the job's result.json before reporting, and a restarted
                    // coordinator counts every job with one as done: the journal can follow
                    // within a tick instead of holding up every completion.
                    state.jobs_changed().await?;
                }
                let _ = reply.send(accepted);
            }
            CoordinatorMessage::Fail {
                lease_id,
                error,
                kind,
                reply,
            } => {
                let accepted = state.table.fail(&lease_id, &error, kind);
                if accepted {
                    if kind == FailureKind::GiveBack {
                        tracing::info!(lease = %lease_id, "lease given back: {error}");
                    } else {
                        tracing::warn!(lease = %lease_id, "job failed: {error}");
                    }
                    state.jobs_changed().await?;
                }
                let _ = reply.send(accepted);
            }
            CoordinatorMessage::Status { reply } => {
                let _ = reply.send(state.table.status());
            }
            CoordinatorMessage::Subscribe { reply } => {
                let _ = reply.send(state.changes.subscribe());
            }
            CoordinatorMessage::Tick => {
                let expired = state.table.expire(now_ms());
                for job in &expired {
                    tracing::warn!(%job, "lease expired; the job returns to the queue");
                }
                if !expired.is_empty() {
                    state.jobs_changed().await?;
                }
                if state.table.has_changes() {
                    state.journal.write(state.table.take_changes(), None);
                }
            }
        }
        Ok(())
    }
}

impl CoordinatorState {
    /// Writes the journal and waits until it is stored.
    async fn persist(&mut self) -> Result<(), CoordinatorError> {
        let (done, stored) = oneshot::channel();
        self.journal.write(self.table.take_changes(), Some(done));
        stored
            .await
            .map_err(|_| CoordinatorError::JournalStopped)?
            .map_err(CoordinatorError::Journal)
    }

    /// After a job finished, failed or lost its lease: publishes the results if that was the
    /// last job, and wakes the waiting lease requests.
    async fn jobs_changed(&mut self) -> Result<(), CoordinatorError> {
        self.publish_if_finished().await?;
        self.changes.send_modify(|generation| *generation += 1);
        Ok(())
    }

    /// Once every job has finished: the final journal, then the results.
    async fn publish_if_finished(&mut self) -> Result<(), CoordinatorError> {
        if self.table.is_finished() && self.finished.borrow().is_none() {
            self.persist().await?;
            let summary =
                publish_results(&self.registry, &self.run, &self.plan, &self.table.status())
                    .await?;
            tracing::info!(run = %self.plan.run, "every job has finished; results published");
            let _ = self.finished.send(Some(summary));
        }
        Ok(())
    }
}

/// Every `result.json` the plan's jobs already have in the store (finished earlier).
async fn load_results(
    store: &Store,
    run: &RunKeys,
    plan: &Plan,
) -> Result<HashMap<JobId, JobResult>, CoordinatorError> {
    let mut lookups = Vec::with_capacity(plan.jobs.len());
    for job in &plan.jobs {
        let (store, id, key) = (store.clone(), job.id.clone(), run.job(&job.id)?.result());
        lookups.push(async move {
            // An unreadable result is treated as missing: the job runs again.
            let result = match store.get_json::<JobResult>(&key).await {
                Ok(result) => result,
                Err(e @ StoreError::Decode { .. }) => {
                    tracing::warn!("{e}; the job will run again");
                    None
                }
                Err(e) => return Err(CoordinatorError::from(e)),
            };
            Ok((id, result))
        });
    }
    let found: Vec<_> = futures::stream::iter(lookups)
        .buffer_unordered(32)
        .collect()
        .await;
    let mut results = HashMap::new();
    for entry in found {
        if let (id, Some(result)) = entry? {
            results.insert(id, result);
        }
    }
    Ok(results)
}

type Waiter = oneshot::Sender<Result<(), Arc<StoreError>>>;

/// Keeps the journal on its own thread: merges the table's changes into its copy, serialises
/// and stores it, coalescing bursts, so the actor never serialises the whole table (a few
/// milliseconds at 10 000 jobs) and never waits for the store except where it asks to.
struct JournalWriter {
    sender: std::sync::mpsc::Sender<(JournalChanges, Option<Waiter>)>,
}

impl JournalWriter {
    fn start(
        store: Store,
        key: Key,
        mut journal: Journal,
        runtime: tokio::runtime::Handle,
    ) -> JournalWriter {
        let (sender, receiver) = std::sync::mpsc::channel::<(JournalChanges, Option<Waiter>)>();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    let mut waiters = Vec::new();
                    for (changes, waiter) in std::iter::once(first).chain(receiver.try_iter()) {
                        journal.next_lease = changes.next_lease;
                        journal.jobs.extend(changes.jobs);
                        waiters.extend(waiter);
                    }
                    let bytes = serde_json::to_vec(&journal).expect("the journal serialises");
                    let outcome = runtime.block_on(store.put(&key, bytes)).map_err(Arc::new);
                    if let Err(e) = &outcome {
                        tracing::error!("writing the journal: {e}");
                    }
                    for waiter in waiters {
                        let _ = waiter.send(outcome.clone());
                    }
                }
            })
            .expect("spawning the journal writer");
        JournalWriter { sender }
    }

    fn write(&self, changes: JournalChanges, waiter: Option<Waiter>) {
        let _ = self.sender.send((changes, waiter));
    }
}
