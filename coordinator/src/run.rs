//! One run inside the coordinator: its plan, job table and journal, opened from the store (a
//! restarted coordinator recovers its table from the journal and the jobs' `result.json`), the
//! check that a reported completion's artifacts are in the store and intact, and the run's end.

use std::collections::HashMap;

use futures::StreamExt;
use slsg::checkpoint::Checkpoint;
use slsg::data::Manifest;
use slsg::infer::ModelCard;
use slsg::job::{JobId, JobKind, JobResult, Plan, RunOverview};
use slsg::store::layout::{RunKeys, StageKeys};
use slsg::store::{Key, Store, StoreError};
use tokio::sync::oneshot;

use crate::error::CoordinatorError;
use crate::summary::RunSummary;
use crate::table::{JobTable, Journal};
use crate::writer::DocumentWriter;

pub struct Run {
    pub plan: Plan,
    pub keys: RunKeys,
    pub table: JobTable,
    journal: DocumentWriter<Journal>,
    /// Set once every job finished and the results are published.
    pub summary: Option<RunSummary>,
    /// Publishing is under way (it runs beside the actor).
    pub publishing: bool,
    /// After a failed publication: not before this time (ms since the epoch).
    pub publish_after_ms: u64,
}

impl Run {
    /// Opens `plan`'s run: stores the plan, then restores the table from the journal and the
    /// results already in the store (finished jobs are never run again). With `retry_failed`,
    /// jobs the journal says failed for good get fresh attempts, and the jobs they blocked run
    /// after them.
    pub async fn open(
        store: &Store,
        plan: Plan,
        retry_failed: bool,
        now_ms: u64,
    ) -> Result<Run, CoordinatorError> {
        let keys = RunKeys::new(&plan.run)?;
        store.put_json(&keys.plan(), &plan).await?;
        let results = load_results(store, &keys, &plan).await?;
        let journal: Option<Journal> = store.get_json(&keys.journal()).await?;
        let mut table = match journal {
            Some(journal) => {
                tracing::info!(run = %plan.run, "recovering the run from its journal");
                JobTable::restore(&plan, journal, &results, now_ms)
            }
            None => JobTable::new(&plan),
        };
        if retry_failed {
            let retried = table.retry_failed();
            for job in &retried.failed {
                tracing::info!(run = %plan.run, %job, "a failed job gets fresh attempts");
            }
            if !retried.blocked.is_empty() {
                tracing::info!(run = %plan.run, jobs = retried.blocked.len(), "jobs the failures blocked are queued again");
            }
        }
        for id in table.queued() {
            if let Some(result) = results.get(&id) {
                table.mark_done(&id, result.clone());
            }
        }
        let journal = DocumentWriter::start(
            "journal-writer",
            store.clone(),
            keys.journal(),
            table.journal(),
            tokio::runtime::Handle::current(),
        )
        .map_err(CoordinatorError::Thread)?;
        tracing::info!(run = %plan.run, jobs = plan.jobs.len(), finished_before = results.len(), "run open");
        let mut run = Run {
            plan,
            keys,
            table,
            journal,
            summary: None,
            publishing: false,
            publish_after_ms: 0,
        };
        run.persist().await?;
        Ok(run)
    }

    /// Writes the table's changes to the journal and waits until they are stored.
    pub async fn persist(&mut self) -> Result<(), CoordinatorError> {
        let stored = self.persist_later();
        stored
            .await
            .map_err(|_| CoordinatorError::JournalStopped)?
            .map_err(CoordinatorError::Journal)
    }

    /// Hands the table's changes to the journal writer; the receiver hears when they are stored.
    pub fn persist_later(&mut self) -> oneshot::Receiver<Result<(), std::sync::Arc<StoreError>>> {
        let (done, stored) = oneshot::channel();
        let changes = self.table.take_changes();
        self.journal
            .update(move |journal| changes.apply(journal), Some(done));
        stored
    }

    /// Hands the table's changes to the journal writer without waiting.
    pub fn journal_changes(&mut self) {
        if self.table.has_changes() {
            let changes = self.table.take_changes();
            self.journal
                .update(move |journal| changes.apply(journal), None);
        }
    }

    pub fn overview(&self) -> RunOverview {
        RunOverview {
            run: self.plan.run.clone(),
            retraining: self.plan.gate_tolerance.is_some(),
            finished: self.summary.is_some(),
            jobs: self.table.len(),
            states: self.table.state_counts(),
            kinds: self.table.kind_state_counts(),
        }
    }
}

/// Why a reported completion was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Unverified {
    /// The store did not answer: the worker reports again later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An artifact is missing or damaged: the job did not finish.
    #[error("{store}/{key}: {reason}")]
    Artifact {
        store: String,
        key: String,
        reason: String,
    },
}

/// The job's `result.json` as stored, once every artifact of its stage is in the store and
/// intact (checkpoints pass their checksums, cards and manifests decode): what a worker reports
/// is never taken on its word.
pub async fn verify_completion(
    store: &Store,
    keys: &StageKeys,
    kind: JobKind,
) -> Result<JobResult, Unverified> {
    let artifact = |key: &Key, reason: String| Unverified::Artifact {
        store: store.url().to_string(),
        key: key.to_string(),
        reason,
    };
    let present = |key: Key| async move {
        match store.get(&key).await {
            Ok(Some(bytes)) => Ok((key, bytes)),
            Ok(None) => Err(artifact(&key, "missing".into())),
            // Over its size limit: damaged, not a store that did not answer.
            Err(StoreError::TooLarge { source, .. }) => Err(artifact(&key, source.to_string())),
            Err(e) => Err(e.into()),
        }
    };
    let checkpoint = |(key, bytes): (Key, Vec<u8>)| {
        Checkpoint::decode(&bytes, key.as_str())
            .map(|_| ())
            .map_err(|e| artifact(&key, e.to_string()))
    };
    fn decoded<T: serde::de::DeserializeOwned>(
        (key, bytes): (Key, Vec<u8>),
        artifact: impl Fn(&Key, String) -> Unverified,
    ) -> Result<T, Unverified> {
        serde_json::from_slice(&bytes).map_err(|e| artifact(&key, e.to_string()))
    }
    let result: JobResult = decoded(present(keys.result()).await?, artifact)?;
    match kind {
        JobKind::Pretrain => checkpoint(present(keys.encoder()).await?)?,
        JobKind::Segnet => {
            let model = keys.model();
            decoded::<ModelCard>(present(model.card()).await?, artifact)?;
            checkpoint(present(model.weights()).await?)?;
            decoded::<Manifest>(present(keys.data()).await?, artifact)?;
        }
    }
    Ok(result)
}

/// Every `result.json` the plan's jobs already have in the store (finished earlier).
async fn load_results(
    store: &Store,
    keys: &RunKeys,
    plan: &Plan,
) -> Result<HashMap<JobId, JobResult>, CoordinatorError> {
    let mut lookups = Vec::with_capacity(plan.jobs.len());
    for job in &plan.jobs {
        let (store, id, key) = (store.clone(), job.id.clone(), keys.job(&job.id)?.result());
        // A trial an early-stopping rule ended is finished only for a sweep with that rule:
        // without one it trains on from its checkpoint.
        let stopped_counts = job.early_stopping.is_some();
        lookups.push(async move {
            // An unreadable or oversized result is treated as missing: the job runs again.
            let result = match store.get_json::<JobResult>(&key).await {
                Ok(result) => result,
                Err(e @ (StoreError::Decode { .. } | StoreError::TooLarge { .. })) => {
                    tracing::warn!("{e}; the job will run again");
                    None
                }
                Err(e) => return Err(CoordinatorError::from(e)),
            };
            Ok((
                id,
                result.filter(|r| stopped_counts || r.stopped_early.is_none()),
            ))
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
