//! One run inside the coordinator: its plan, job table and journal, opened from the store (a
//! restarted coordinator recovers its table from the journal and the jobs' `result.json`), and
//! its end: the final journal and the published results.

use std::collections::HashMap;

use futures::StreamExt;
use slsg::job::{JobId, JobResult, Plan, RunOverview};
use slsg::registry::Registry;
use slsg::store::layout::RunKeys;
use slsg::store::{Store, StoreError};
use tokio::sync::oneshot;

use crate::error::CoordinatorError;
use crate::journal::JournalWriter;
use crate::publish::{RunSummary, publish_results};
use crate::table::{JobTable, Journal};

pub struct Run {
    pub plan: Plan,
    pub keys: RunKeys,
    pub table: JobTable,
    journal: JournalWriter,
    /// Set once every job finished and the results are published.
    pub summary: Option<RunSummary>,
}

impl Run {
    /// Opens `plan`'s run: stores the plan, then restores the table from the journal and the
    /// results already in the store (finished jobs are never run again).
    pub async fn open(store: &Store, plan: Plan, now_ms: u64) -> Result<Run, CoordinatorError> {
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
        for id in table.queued() {
            if let Some(result) = results.get(&id) {
                table.mark_done(&id, result.clone());
            }
        }
        let journal = JournalWriter::start(
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
        };
        run.persist().await?;
        Ok(run)
    }

    /// Writes the table's changes to the journal and waits until they are stored.
    pub async fn persist(&mut self) -> Result<(), CoordinatorError> {
        let (done, stored) = oneshot::channel();
        self.journal.write(self.table.take_changes(), Some(done));
        stored
            .await
            .map_err(|_| CoordinatorError::JournalStopped)?
            .map_err(CoordinatorError::Journal)
    }

    /// Hands the table's changes to the journal writer without waiting.
    pub fn journal_changes(&mut self) {
        if self.table.has_changes() {
            self.journal.write(self.table.take_changes(), None);
        }
    }

    /// Once every job has finished: the final journal, then the published results (once).
    pub async fn publish_if_finished(
        &mut self,
        registry: &Registry,
    ) -> Result<Option<&RunSummary>, CoordinatorError> {
        if self.table.is_finished() && self.summary.is_none() {
            self.persist().await?;
            let summary =
                publish_results(registry, &self.keys, &self.plan, &self.table.status()).await?;
            tracing::info!(run = %self.plan.run, "every job has finished; results published");
            self.summary = Some(summary);
            return Ok(self.summary.as_ref());
        }
        Ok(None)
    }

    pub fn overview(&self) -> RunOverview {
        RunOverview {
            run: self.plan.run.clone(),
            retraining: self.plan.gate_tolerance.is_some(),
            finished: self.summary.is_some(),
            jobs: self.table.len(),
            states: self.table.state_counts(),
        }
    }
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
