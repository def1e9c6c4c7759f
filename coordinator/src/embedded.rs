//! An embedded run: the coordinator actor and one worker actor per device slot in this process,
//! talking through the in-process link; returns when every job has finished.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use slsg::job::Plan;
use slsg::store::Store;
use slsg_worker::{DEFAULT_STALL_SECONDS, JobRunner, WorkerActor, WorkerArgs, WorkerMetrics};
use tokio::sync::watch;

use crate::actor::{
    CoordinatorActor, CoordinatorArgs, CoordinatorMessage, DEFAULT_OPEN_RUNS, Mode,
};
use crate::error::CoordinatorError;
use crate::local_link::LocalLink;
use crate::summary::RunSummary;

/// A running embedded cluster.
pub struct Embedded {
    pub coordinator: ActorRef<CoordinatorMessage>,
    /// The run it trains.
    pub run: String,
    finished: watch::Receiver<Option<RunSummary>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    coordinator_task: tokio::task::JoinHandle<()>,
}

/// How the embedded worker slots run their jobs.
pub struct Slots {
    pub runner: JobRunner,
    /// How long a job's progress may stand still before it counts as stalled.
    pub stall: Duration,
    /// Where every slot reports its jobs (one set of metrics, as in a worker process).
    pub metrics: WorkerMetrics,
}

impl Slots {
    /// Slots running their jobs with `runner`, with the default stall limit.
    pub fn new(runner: JobRunner) -> Self {
        Self {
            runner,
            stall: Duration::from_secs(DEFAULT_STALL_SECONDS),
            metrics: WorkerMetrics::default(),
        }
    }
}

impl Embedded {
    /// Starts the coordinator for `plan` and the plan's worker slots; with `retry_failed`,
    /// jobs an earlier attempt at the run failed for good get fresh attempts.
    pub async fn start(
        plan: Plan,
        store: Store,
        slots: Slots,
        retry_failed: bool,
    ) -> Result<Embedded, CoordinatorError> {
        let (finished_sender, finished) = watch::channel(None);
        let devices = plan.resources.workers.clone();
        let heartbeat_interval = Duration::from_secs(plan.resources.heartbeat_seconds);
        let run = plan.run.clone();
        let (coordinator, coordinator_task) = Actor::spawn(
            None,
            CoordinatorActor,
            CoordinatorArgs {
                store,
                mode: Mode::Once,
                plans: vec![plan],
                retry_failed,
                finished: finished_sender,
                open_runs_limit: DEFAULT_OPEN_RUNS as usize,
            },
        )
        .await?;
        let mut workers = Vec::new();
        for (i, device) in devices.into_iter().enumerate() {
            let link = Arc::new(LocalLink {
                coordinator: coordinator.clone(),
                run: run.clone(),
                heartbeat_interval,
            });
            let args = WorkerArgs {
                link,
                name: format!("worker-{i}"),
                device,
                runtime: tokio::runtime::Handle::current(),
                runner: slots.runner.clone(),
                metrics: slots.metrics.clone(),
                stall: slots.stall,
            };
            let (_, task) = Actor::spawn(None, WorkerActor::<LocalLink>::default(), args).await?;
            workers.push(task);
        }
        Ok(Embedded {
            coordinator,
            run,
            finished,
            workers,
            coordinator_task,
        })
    }

    /// The run's jobs and leaderboards.
    pub async fn status(&self) -> Result<slsg::job::RunStatus, CoordinatorError> {
        let run = self.run.clone();
        ractor::call!(self.coordinator, |reply| CoordinatorMessage::RunStatus {
            run,
            offset: 0,
            limit: usize::MAX,
            reply
        })
        .map_err(CoordinatorError::gone)?
    }

    /// Waits for every job to finish, then for the workers and the coordinator to stop.
    pub async fn wait(mut self) -> Result<RunSummary, CoordinatorError> {
        let summary = self
            .finished
            .wait_for(|s| s.is_some())
            .await
            .map_err(CoordinatorError::gone)?
            .clone()
            .expect("checked by wait_for");
        for worker in self.workers {
            let _ = worker.await;
        }
        self.coordinator.stop(None);
        let _ = self.coordinator_task.await;
        Ok(summary)
    }
}
