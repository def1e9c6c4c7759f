//! What the health ports answer: for the coordinator, alive while its actor answers, ready once
//! its runs are loaded (whatever its store does), metrics from one snapshot of its tables; for
//! a worker process, alive while one of its slots runs and no job is stalled, and its slots'
//! metrics.

use std::sync::OnceLock;
use std::time::Duration;

use ractor::ActorRef;
use slsg::store::Store;
use slsg_worker::WorkerMetrics;

use crate::actor::CoordinatorMessage;
use crate::http::{Probes, Unavailable};
use crate::metrics::encode;

/// Longest a probe waits for the actor before answering `503`.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The coordinator's probes. Serving starts before the actor has loaded its runs (which can
/// take a while on a large store), so the process counts as alive meanwhile, not as ready.
pub struct CoordinatorProbes {
    actor: OnceLock<ActorRef<CoordinatorMessage>>,
    store: Store,
}

impl CoordinatorProbes {
    pub fn new(store: Store) -> Self {
        Self {
            actor: OnceLock::new(),
            store,
        }
    }

    /// The actor has started: its runs are loaded.
    pub fn started(&self, actor: ActorRef<CoordinatorMessage>) {
        let _ = self.actor.set(actor);
    }

    /// The actor, once it has started.
    pub(crate) fn actor(&self) -> Result<&ActorRef<CoordinatorMessage>, Unavailable> {
        self.actor
            .get()
            .ok_or_else(|| Unavailable("loading the runs of the store".into()))
    }
}

fn no_answer(what: &str) -> Unavailable {
    Unavailable(format!(
        "{what} did not answer within {} s",
        PROBE_TIMEOUT.as_secs()
    ))
}

impl Probes for CoordinatorProbes {
    async fn alive(&self) -> Result<(), Unavailable> {
        let Some(actor) = self.actor.get() else {
            return Ok(());
        };
        ractor::call_t!(
            actor,
            |reply| CoordinatorMessage::Training { reply },
            PROBE_TIMEOUT.as_millis() as u64
        )
        .map(|_| ())
        .map_err(|_| no_answer("the coordinator actor"))
    }

    /// Ready once the runs are loaded, and during a store outage too: readiness keeps the
    /// coordinator in its Service, and workers must reach it to wait the outage out with their
    /// leases (store errors show in `/metrics` instead).
    async fn ready(&self) -> Result<(), Unavailable> {
        self.alive().await?;
        self.actor().map(|_| ())
    }

    async fn metrics(&self) -> Result<String, Unavailable> {
        let actor = self.actor()?;
        let snapshot = ractor::call_t!(
            actor,
            |reply| CoordinatorMessage::Metrics { reply },
            PROBE_TIMEOUT.as_millis() as u64
        )
        .map_err(|_| no_answer("the coordinator actor"))?;
        encode(&snapshot, self.store.errors())
            .map_err(|e| Unavailable(format!("encoding the metrics failed: {e}")))
    }
}

/// A worker process's probes: it is ready whenever it is alive (its slots ask for work on
/// their own).
pub struct WorkerProbes {
    pub metrics: WorkerMetrics,
}

impl Probes for WorkerProbes {
    async fn alive(&self) -> Result<(), Unavailable> {
        if let Some(stalled) = self.metrics.stalled() {
            return Err(Unavailable(stalled));
        }
        if self.metrics.alive() {
            Ok(())
        } else {
            Err(Unavailable("every worker slot has stopped".into()))
        }
    }

    async fn ready(&self) -> Result<(), Unavailable> {
        self.alive().await
    }

    async fn metrics(&self) -> Result<String, Unavailable> {
        self.metrics
            .encode()
            .map_err(|e| Unavailable(format!("encoding the metrics failed: {e}")))
    }
}
