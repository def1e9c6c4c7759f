//! How runs reach a coordinator besides its own config: configs operators submit (expanded into
//! plans off the async runtime, their datasets confined to the allowed folders), and retraining
//! checks — at each firing of the config's `[retrain]` schedule, or when an operator asks — whose
//! retraining runs are submitted; and the one wait for a schedule's next firing that every
//! retraining loop uses.

use std::path::PathBuf;
use std::sync::Arc;

use ractor::ActorRef;
use slsg::data::{DatasetCache, Escape, escape_from, local_folder};
use slsg::job::{ClusterConfig, Plan, Schedule};
use slsg::retrain::{CheckReport, check};
use slsg::store::{BlockingStore, Store};

use crate::actor::{CoordinatorMessage, Submitted};
use crate::error::CoordinatorError;

/// Plans and checks against one store, submitted to one coordinator actor.
pub struct Intake {
    actor: ActorRef<CoordinatorMessage>,
    store: Store,
    threads: usize,
    /// Where retraining checks copy datasets at a URL.
    cache: DatasetCache,
    /// The folders submitted configs may read datasets on this machine from (canonical);
    /// empty: any.
    dataset_roots: Vec<PathBuf>,
}

/// What a retraining check found, and the run it submitted.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    pub report: CheckReport,
    pub submitted: Option<Submitted>,
}

impl Intake {
    pub fn new(
        actor: ActorRef<CoordinatorMessage>,
        store: Store,
        threads: usize,
        cache: DatasetCache,
        dataset_roots: Vec<PathBuf>,
    ) -> Self {
        Self {
            actor,
            store,
            threads,
            cache,
            dataset_roots,
        }
    }

    /// The coordinator serves one store: a config for another is refused.
    fn same_store(&self, cluster: &ClusterConfig, origin: &str) -> Result<(), CoordinatorError> {
        if cluster.run.store != self.store.url() {
            return Err(CoordinatorError::OtherStore {
                origin: origin.to_string(),
                store: cluster.run.store.clone(),
                serving: self.store.url().to_string(),
            });
        }
        Ok(())
    }

    /// Expands `cluster` into its training run and submits it.
    pub async fn submit(
        &self,
        cluster: ClusterConfig,
        origin: String,
    ) -> Result<Submitted, CoordinatorError> {
        self.same_store(&cluster, &origin)?;
        let (threads, roots) = (self.threads, self.dataset_roots.clone());
        let plan = tokio::task::spawn_blocking(move || {
            confined(&cluster, &roots, &origin)?;
            Plan::expand(&cluster, &origin, threads)
                .map_err(|e| CoordinatorError::Plan(e.without_listings()))
        })
        .await
        .map_err(CoordinatorError::gone)??;
        self.send(plan).await
    }

    async fn send(&self, plan: Plan) -> Result<Submitted, CoordinatorError> {
        ractor::call!(self.actor, |reply| CoordinatorMessage::Submit {
            plan: Box::new(plan),
            reply
        })
        .map_err(CoordinatorError::gone)?
    }

    /// Checks every category of `cluster` now and submits the retraining run it plans.
    pub async fn check(
        &self,
        cluster: ClusterConfig,
        origin: String,
    ) -> Result<CheckOutcome, CoordinatorError> {
        self.same_store(&cluster, &origin)?;
        let (threads, store, cache, roots) = (
            self.threads,
            BlockingStore::new(self.store.clone(), tokio::runtime::Handle::current()),
            self.cache.clone(),
            self.dataset_roots.clone(),
        );
        let now = crate::actor::now_ms() / 1000;
        let busy = ractor::call!(self.actor, |reply| CoordinatorMessage::Training { reply })
            .map_err(CoordinatorError::gone)?;
        let report = tokio::task::spawn_blocking(move || {
            confined(&cluster, &roots, &origin)?;
            check(&cluster, &origin, threads, &store, &cache, &busy, now)
                .map_err(|e| CoordinatorError::Retrain(e.without_listings()))
        })
        .await
        .map_err(CoordinatorError::gone)??;
        for category in &report.categories {
            tracing::info!(
                category = %category.category,
                retrain = category.retrain,
                "retraining check: {}",
                category.reason
            );
        }
        let submitted = match &report.plan {
            Some(plan) => Some(self.send(plan.clone()).await?),
            None => None,
        };
        Ok(CheckOutcome { report, submitted })
    }

    /// Runs checks of `cluster` at every firing of `schedule`, for as long as the process runs;
    /// a failed check is logged and the next firing tried.
    pub async fn run_schedule(
        self: Arc<Self>,
        cluster: ClusterConfig,
        origin: String,
        schedule: Schedule,
    ) {
        loop {
            next_firing(&schedule, |next| {
                let _ = self
                    .actor
                    .send_message(CoordinatorMessage::NextCheck { unix: Some(next) });
                tracing::info!(
                    next_unix = next,
                    "next retraining check scheduled ({schedule})"
                );
            })
            .await;
            match self.check(cluster.clone(), origin.clone()).await {
                Ok(outcome) => match outcome.submitted {
                    Some(run) => {
                        tracing::info!(run = %run.run, jobs = run.jobs, "scheduled retraining run submitted")
                    }
                    None => {
                        tracing::info!("scheduled retraining check: no category needs retraining")
                    }
                },
                Err(e) => tracing::error!("scheduled retraining check failed: {e}"),
            }
        }
    }
}

/// Waits for the next firing of `schedule` after now, first telling `announce` when it is
/// (seconds since the epoch): the one wait of every retraining loop, in a service or embedded.
pub async fn next_firing(schedule: &Schedule, announce: impl FnOnce(u64)) {
    let now = crate::actor::now_ms() / 1000;
    let next = schedule.next_after(now);
    announce(next);
    tokio::time::sleep(std::time::Duration::from_secs(next.saturating_sub(now))).await;
}

/// A config a client sent reads datasets on this machine only below `roots` (canonical; empty:
/// anywhere), after links and `..` are resolved: its own folder and every link in the selected
/// categories alike. A folder outside them and one that does not exist get the same answer, so
/// a client learns nothing of the file system. Blocking: it walks the datasets.
fn confined(
    cluster: &ClusterConfig,
    roots: &[PathBuf],
    origin: &str,
) -> Result<(), CoordinatorError> {
    if roots.is_empty() {
        return Ok(());
    }
    for dataset in &cluster.datasets {
        let Some(folder) = local_folder(&dataset.path) else {
            continue;
        };
        let every_category = dataset.categories.iter().any(|c| c == "all");
        let selected = if every_category {
            &[][..]
        } else {
            &dataset.categories[..]
        };
        let denied = |link| CoordinatorError::DatasetNotAllowed {
            origin: origin.to_string(),
            dataset: dataset.path.display().to_string(),
            link,
        };
        match escape_from(&folder, selected, roots) {
            None => {}
            Some(Escape::Folder) => return Err(denied(None)),
            Some(Escape::Link(link)) => return Err(denied(Some(link.display().to_string()))),
        }
    }
    Ok(())
}
