//! The job table: every job's state, leases with deadlines renewed by heartbeats, retries up to
//! the attempt limit, dependents blocked when a job fails for good, failed jobs given fresh
//! attempts on request, and the journal a restarted coordinator recovers from. Pure logic: the
//! actor owns it and passes the time in.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use slsg::job::{
    BudgetSection, EarlyStopping, FailureKind, JobId, JobKind, JobProgress, JobResult, JobSpec,
    JobState, JobStatus, LeaderboardEntry, Plan, RunStatus, StoppedEarly,
};

use crate::lease::LeaseDigest;
use crate::stopping::Trials;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub spec: JobSpec,
    pub state: JobState,
    pub attempts: u32,
    /// How often the job was given fresh attempts after failing for good.
    pub retries: u32,
    pub lease: Option<LeaseDigest>,
    #[serde(skip)]
    pub progress: Option<JobProgress>,
    /// Why the last failed attempt failed (kept once a later one succeeds).
    #[serde(skip)]
    pub last_error: Option<String>,
}

impl Entry {
    fn status(&self) -> JobStatus {
        JobStatus {
            id: self.spec.id.clone(),
            kind: self.spec.kind,
            category: self.spec.category.clone(),
            point: self.spec.point.clone(),
            state: self.state.clone(),
            attempts: self.attempts,
            progress: self.progress.clone(),
            last_error: self.last_error.clone(),
        }
    }
}

/// What the coordinator writes to `runs/<run>/state.json` after changes: compact states (a
/// finished job's result stays in its own `result.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Journal {
    pub run: String,
    pub jobs: BTreeMap<JobId, JournalEntry>,
    /// Per category, the early-stopping records of its sweep trials.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trials: BTreeMap<String, Trials>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JournalEntry {
    pub state: JournalState,
    pub attempts: u32,
    /// The digest of the lease id: it names the lease without granting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_sha256: Option<LeaseDigest>,
    /// A lease id in clear, as journals written before digests have it: read, digested, never
    /// written again.
    #[serde(default, rename = "lease", skip_serializing)]
    pub lease_in_clear: Option<String>,
    /// How often the job was given fresh attempts after failing for good (absent in journals
    /// written before retries existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JournalState {
    Queued,
    /// Leased when journaled; a restored lease gets a new deadline.
    Leased {
        worker: String,
        attempt: u32,
    },
    Done,
    Failed {
        error: String,
    },
    Blocked {
        by: JobId,
    },
    Skipped {
        reason: String,
    },
}

/// What changed since the journal was last written: merged into the writer's copy, so the
/// actor never serialises the whole table.
#[derive(Clone, Debug, Default)]
pub struct JournalChanges {
    pub jobs: Vec<(JobId, JournalEntry)>,
    pub trials: Vec<(String, Trials)>,
}

impl JournalChanges {
    /// Merges the changes into the writer's copy of the journal.
    pub fn apply(self, journal: &mut Journal) {
        journal.jobs.extend(self.jobs);
        journal.trials.extend(self.trials);
    }
}

/// A job handed to a worker.
#[derive(Clone, Debug)]
pub struct Granted {
    pub lease_id: String,
    pub attempt: u32,
    pub deadline_ms: u64,
    pub spec: JobSpec,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    pub accepted: bool,
    /// The lease is unknown or gone: the worker must stop the job.
    pub cancel: bool,
    pub deadline_ms: u64,
    /// A trial under early stopping: the latest validation step judged, and whether the rule
    /// stopped it.
    pub judged_step: Option<u64>,
    pub stop_early: Option<StoppedEarly>,
}

impl HeartbeatOutcome {
    /// The answer to a lease the worker does not hold.
    pub fn refused() -> HeartbeatOutcome {
        HeartbeatOutcome {
            accepted: false,
            cancel: true,
            deadline_ms: 0,
            judged_step: None,
            stop_early: None,
        }
    }
}

/// SegNet steps finished trials used plus the whole steps of running ones.
#[derive(Clone, Copy, Default)]
struct ScopeUse {
    steps: u64,
    running: bool,
}

impl ScopeUse {
    fn add(&mut self, steps: u64, running: bool) {
        self.steps += steps;
        self.running |= running;
    }
}

#[derive(Default)]
struct StepsInUse {
    categories: BTreeMap<String, ScopeUse>,
    run: ScopeUse,
}

/// Whether `spec` fits the category's and the run's caps.
fn budget_room(budget: &BudgetSection, usage: &StepsInUse, spec: &JobSpec) -> BudgetRoom {
    if spec.kind != JobKind::Segnet {
        return BudgetRoom::Fits;
    }
    let need = spec.config.segnet.steps;
    let category = usage
        .categories
        .get(&spec.category)
        .copied()
        .unwrap_or_default();
    for (scope, cap, used) in [
        ("category", budget.category_steps, category),
        ("run", budget.run_steps, usage.run),
    ] {
        if let Some(cap) = cap
            && used.steps + need > cap
        {
            return if used.running {
                BudgetRoom::Later
            } else {
                BudgetRoom::Never(format!(
                    "not started: the {scope} budget of {cap} SegNet steps has {} left, and the trial needs {need}",
                    cap.saturating_sub(used.steps)
                ))
            };
        }
    }
    BudgetRoom::Fits
}

/// Whether the step budget lets a trial start.
enum BudgetRoom {
    Fits,
    /// Not while the running trials may use their whole steps; perhaps once they end.
    Later,
    /// The finished trials leave too little: the trial is skipped.
    Never(String),
}

/// The jobs [`JobTable::retry_failed`] queued again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retried {
    /// Jobs that had failed for good, with fresh attempts now.
    pub failed: Vec<JobId>,
    /// Jobs their failure had blocked, waiting on them again.
    pub blocked: Vec<JobId>,
}

impl Retried {
    pub fn is_empty(&self) -> bool {
        self.failed.is_empty() && self.blocked.is_empty()
    }
}

pub struct JobTable {
    run: String,
    entries: Vec<Entry>,
    index: HashMap<JobId, usize>,
    leases: HashMap<LeaseDigest, usize>,
    /// Queued jobs whose upstream job is done, in plan order of arrival.
    ready: VecDeque<usize>,
    /// Queued jobs waiting on an upstream job.
    waiting: HashMap<JobId, Vec<usize>>,
    max_attempts: u32,
    lease_ms: u64,
    /// Jobs done, failed or blocked (the run is finished when all are).
    terminal: usize,
    /// Entries changed since the journal last took them.
    changed: BTreeSet<usize>,
    early_stopping: Option<EarlyStopping>,
    budget: Option<BudgetSection>,
    /// Per category, its trials' early-stopping records.
    trials: BTreeMap<String, Trials>,
    /// Categories whose records changed since the journal last took them.
    trials_changed: BTreeSet<String>,
}

impl JobTable {
    pub fn new(plan: &Plan) -> JobTable {
        let entries = plan
            .jobs
            .iter()
            .map(|spec| Entry {
                spec: spec.clone(),
                state: JobState::Queued,
                attempts: 0,
                retries: 0,
                lease: None,
                progress: None,
                last_error: None,
            })
            .collect();
        let mut table = JobTable {
            run: plan.run.clone(),
            entries,
            index: HashMap::new(),
            leases: HashMap::new(),
            ready: VecDeque::new(),
            waiting: HashMap::new(),
            max_attempts: plan.resources.max_attempts,
            lease_ms: plan.resources.lease_seconds * 1000,
            terminal: 0,
            changed: BTreeSet::new(),
            early_stopping: plan.early_stopping.clone(),
            budget: plan.budget,
            trials: BTreeMap::new(),
            trials_changed: BTreeSet::new(),
        };
        table.index = table
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.spec.id.clone(), i))
            .collect();
        table.rebuild_queues();
        table
    }

    /// The plan's table with the states a previous coordinator journaled. A job is finished when
    /// its result (its `result.json`) is in the store, whatever the journal last said (a worker
    /// may have finished while no coordinator ran); a journaled finish without a result runs
    /// again; jobs the journal does not know (a changed plan) start queued. Leases get a full
    /// period from `now_ms`, so workers that kept training while no coordinator ran can report.
    pub fn restore(
        plan: &Plan,
        journal: Journal,
        results: &HashMap<JobId, JobResult>,
        now_ms: u64,
    ) -> JobTable {
        let mut table = JobTable::new(plan);
        for (id, entry) in journal.jobs {
            let Some(&i) = table.index.get(&id) else {
                continue;
            };
            let restarted = entry.state == JournalState::Done && !results.contains_key(&id);
            let state = match (entry.state, results.get(&id)) {
                (_, Some(result)) => JobState::Done {
                    result: Box::new(result.clone()),
                },
                (JournalState::Queued, None) => JobState::Queued,
                // Its result was deleted: the job starts over, with all its attempts.
                (JournalState::Done, None) => JobState::Queued,
                (
                    JournalState::Leased {
                        worker, attempt, ..
                    },
                    None,
                ) => JobState::Leased {
                    worker,
                    attempt,
                    deadline_unix_ms: now_ms + table.lease_ms,
                },
                (JournalState::Failed { error }, None) => JobState::Failed { error },
                (JournalState::Blocked { by }, None) => JobState::Blocked { by },
                (JournalState::Skipped { reason }, None) => JobState::Skipped { reason },
            };
            let lease = entry
                .lease_sha256
                .or_else(|| entry.lease_in_clear.as_deref().map(LeaseDigest::of))
                .filter(|_| matches!(state, JobState::Leased { .. }));
            if let Some(lease) = &lease {
                table.leases.insert(lease.clone(), i);
            }
            let target = &mut table.entries[i];
            target.attempts = if restarted { 0 } else { entry.attempts };
            target.retries = entry.retries;
            target.state = state;
            target.lease = lease;
        }
        let categories: BTreeSet<&String> =
            table.entries.iter().map(|e| &e.spec.category).collect();
        table.trials = journal
            .trials
            .into_iter()
            .filter(|(category, _)| categories.contains(category))
            .collect();
        table.terminal = table
            .entries
            .iter()
            .filter(|e| e.state.is_terminal())
            .count();
        table.rebuild_queues();
        table
    }

    pub fn journal(&self) -> Journal {
        let jobs = (0..self.entries.len())
            .map(|i| self.journal_entry(i))
            .collect();
        Journal {
            run: self.run.clone(),
            jobs,
            trials: self.trials.clone(),
        }
    }

    /// The entries changed since the last call, for the journal writer to merge.
    pub fn take_changes(&mut self) -> JournalChanges {
        let changed = std::mem::take(&mut self.changed);
        let trials = std::mem::take(&mut self.trials_changed);
        JournalChanges {
            jobs: changed.into_iter().map(|i| self.journal_entry(i)).collect(),
            trials: trials
                .into_iter()
                .filter_map(|c| self.trials.get(&c).map(|t| (c, t.clone())))
                .collect(),
        }
    }

    /// Whether early-stopping records changed since the journal last took them.
    pub fn has_trial_changes(&self) -> bool {
        !self.trials_changed.is_empty()
    }

    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty() || !self.trials_changed.is_empty()
    }

    fn journal_entry(&self, i: usize) -> (JobId, JournalEntry) {
        let e = &self.entries[i];
        let state = match &e.state {
            JobState::Queued => JournalState::Queued,
            JobState::Leased {
                worker, attempt, ..
            } => JournalState::Leased {
                worker: worker.clone(),
                attempt: *attempt,
            },
            JobState::Done { .. } => JournalState::Done,
            JobState::Failed { error } => JournalState::Failed {
                error: error.clone(),
            },
            JobState::Blocked { by } => JournalState::Blocked { by: by.clone() },
            JobState::Skipped { reason } => JournalState::Skipped {
                reason: reason.clone(),
            },
        };
        (
            e.spec.id.clone(),
            JournalEntry {
                state,
                attempts: e.attempts,
                lease_sha256: e.lease.clone(),
                lease_in_clear: None,
                retries: e.retries,
            },
        )
    }

    fn rebuild_queues(&mut self) {
        self.ready.clear();
        self.waiting.clear();
        for i in 0..self.entries.len() {
            if self.entries[i].state == JobState::Queued {
                self.enqueue(i);
            }
        }
    }

    fn enqueue(&mut self, i: usize) {
        match self.entries[i].spec.depends_on.clone() {
            Some(upstream) if !self.is_done(&upstream) => {
                self.waiting.entry(upstream).or_default().push(i)
            }
            _ => self.ready.push_back(i),
        }
    }

    fn is_done(&self, id: &str) -> bool {
        self.index
            .get(id)
            .is_some_and(|&i| matches!(self.entries[i].state, JobState::Done { .. }))
    }

    /// Records a job found finished in the store (a re-run of the same plan).
    pub fn mark_done(&mut self, id: &str, result: JobResult) {
        if let Some(&i) = self.index.get(id)
            && self.entries[i].state == JobState::Queued
        {
            self.ready.retain(|&j| j != i);
            for list in self.waiting.values_mut() {
                list.retain(|&j| j != i);
            }
            self.finish(
                i,
                JobState::Done {
                    result: Box::new(result),
                },
            );
        }
    }

    /// Gives every job that failed for good a fresh set of attempts (its `retries` counts the
    /// request) and queues the jobs it blocked again, behind it: for a run whose failures had a
    /// cause outside the plan (a device, a file, the store) that is fixed now. Returns the jobs
    /// queued again, failed ones first.
    pub fn retry_failed(&mut self) -> Retried {
        let mut retried = Retried::default();
        for i in 0..self.entries.len() {
            let entry = &mut self.entries[i];
            match &entry.state {
                JobState::Failed { error } => {
                    entry.last_error = Some(error.clone());
                    entry.attempts = 0;
                    entry.retries += 1;
                    retried.failed.push(entry.spec.id.clone());
                }
                JobState::Blocked { .. } => retried.blocked.push(entry.spec.id.clone()),
                _ => continue,
            }
            entry.state = JobState::Queued;
            self.terminal -= 1;
            self.changed.insert(i);
        }
        if !retried.is_empty() {
            self.rebuild_queues();
        }
        retried
    }

    /// The jobs that have not started.
    pub fn queued(&self) -> Vec<JobId> {
        self.entries
            .iter()
            .filter(|e| e.state == JobState::Queued)
            .map(|e| e.spec.id.clone())
            .collect()
    }

    /// Leases the next ready job to `worker` under a lease id from `new_lease_id` (the caller's
    /// source of unguessable ids); the table keeps only its digest.
    pub fn lease(
        &mut self,
        worker: &str,
        now_ms: u64,
        new_lease_id: impl FnOnce() -> String,
    ) -> Option<Granted> {
        let i = self.next_in_budget()?;
        let lease_id = new_lease_id();
        let deadline_ms = now_ms + self.lease_ms;
        let entry = &mut self.entries[i];
        entry.attempts += 1;
        entry.state = JobState::Leased {
            worker: worker.to_string(),
            attempt: entry.attempts,
            deadline_unix_ms: deadline_ms,
        };
        let digest = LeaseDigest::of(&lease_id);
        entry.lease = Some(digest.clone());
        entry.progress = None;
        self.leases.insert(digest, i);
        self.changed.insert(i);
        Some(Granted {
            lease_id,
            attempt: entry.attempts,
            deadline_ms,
            spec: entry.spec.clone(),
        })
    }

    /// Takes the first ready job the step budget lets start. Trials that must wait for running
    /// ones to end stay queued in order; those the finished trials leave no room for are skipped.
    fn next_in_budget(&mut self) -> Option<usize> {
        let Some(budget) = self.budget else {
            return self.ready.pop_front();
        };
        let usage = self.steps_in_use();
        let mut later = Vec::new();
        let found = loop {
            let Some(i) = self.ready.pop_front() else {
                break None;
            };
            match budget_room(&budget, &usage, &self.entries[i].spec) {
                BudgetRoom::Fits => break Some(i),
                BudgetRoom::Later => later.push(i),
                BudgetRoom::Never(reason) => self.finish(i, JobState::Skipped { reason }),
            }
        };
        for i in later.into_iter().rev() {
            self.ready.push_front(i);
        }
        found
    }

    /// SegNet steps used by finished trials plus the whole steps of running ones, per category
    /// and for the run: counted once per lease, however many queued trials it passes over.
    fn steps_in_use(&self) -> StepsInUse {
        let mut usage = StepsInUse::default();
        for e in self
            .entries
            .iter()
            .filter(|e| e.spec.kind == JobKind::Segnet)
        {
            let (steps, running) = match &e.state {
                JobState::Done { result } => (result.steps, false),
                JobState::Leased { .. } => (e.spec.config.segnet.steps, true),
                _ => continue,
            };
            let category = usage.categories.entry(e.spec.category.clone()).or_default();
            category.add(steps, running);
            usage.run.add(steps, running);
        }
        usage
    }

    /// The job index of a valid lease held by `worker` (a lease is bound to the worker that
    /// took it: no other may renew, complete or fail it).
    fn held(&self, lease_id: &str, worker: &str) -> Option<usize> {
        let &i = self.leases.get(&LeaseDigest::of(lease_id))?;
        match &self.entries[i].state {
            JobState::Leased { worker: holder, .. } if holder == worker => Some(i),
            _ => None,
        }
    }

    /// The job of a valid lease held by `worker`.
    pub fn leased_job(&self, lease_id: &str, worker: &str) -> Option<&JobSpec> {
        self.held(lease_id, worker).map(|i| &self.entries[i].spec)
    }

    pub fn heartbeat(
        &mut self,
        lease_id: &str,
        worker: &str,
        progress: Option<JobProgress>,
        now_ms: u64,
    ) -> HeartbeatOutcome {
        let Some(i) = self.held(lease_id, worker) else {
            return HeartbeatOutcome::refused();
        };
        let deadline_ms = now_ms + self.lease_ms;
        let entry = &mut self.entries[i];
        if let JobState::Leased {
            deadline_unix_ms, ..
        } = &mut entry.state
        {
            *deadline_unix_ms = deadline_ms;
        }
        let validation = progress.as_ref().and_then(|p| p.validation);
        if progress.is_some() {
            entry.progress = progress;
        }
        let (judged_step, stop_early) = self.judge(i, validation);
        HeartbeatOutcome {
            accepted: true,
            cancel: false,
            deadline_ms,
            judged_step,
            stop_early,
        }
    }

    /// Records a trial's latest validation under the early-stopping rule; returns the latest
    /// step judged and the rule's decision to stop, if it made one.
    fn judge(
        &mut self,
        i: usize,
        validation: Option<slsg::job::ValidationPoint>,
    ) -> (Option<u64>, Option<StoppedEarly>) {
        let spec = &self.entries[i].spec;
        let Some(rule) = self
            .early_stopping
            .as_ref()
            .filter(|_| spec.kind == JobKind::Segnet)
        else {
            return (None, None);
        };
        let trials = self.trials.entry(spec.category.clone()).or_default();
        // A worker's report past the trial's last step is not believed (nor kept).
        if let Some(point) = validation.filter(|p| (1..=spec.config.segnet.steps).contains(&p.step))
        {
            if !trials.knows(&spec.id, point.step) {
                self.trials_changed.insert(spec.category.clone());
            }
            trials.report(rule, &spec.id, spec.config.segnet.steps, point);
        }
        let (step, stopped) = trials.judged(&spec.id);
        (step, stopped.cloned())
    }

    /// The leased job finished; `false` if `worker` holds no such lease.
    pub fn complete(&mut self, lease_id: &str, worker: &str, result: Box<JobResult>) -> bool {
        let Some(i) = self.held(lease_id, worker) else {
            return false;
        };
        self.leases.remove(&LeaseDigest::of(lease_id));
        self.finish(i, JobState::Done { result });
        true
    }

    /// The leased job did not finish: retried while attempts remain, failed at once when its
    /// input is at fault, queued again without using an attempt when given back, or when an
    /// artifact of its upstream job is damaged (that job runs again first). `false` if `worker`
    /// holds no such lease.
    pub fn fail(&mut self, lease_id: &str, worker: &str, error: &str, kind: FailureKind) -> bool {
        let Some(i) = self.held(lease_id, worker) else {
            return false;
        };
        self.leases.remove(&LeaseDigest::of(lease_id));
        match kind {
            FailureKind::Retryable => self.retry_or_fail(i, error),
            FailureKind::Permanent => {
                self.entries[i].progress = None;
                self.finish(
                    i,
                    JobState::Failed {
                        error: error.to_string(),
                    },
                );
            }
            FailureKind::GiveBack => self.requeue(i),
            FailureKind::Upstream => {
                self.entries[i].last_error = Some(error.to_string());
                let upstream = self.entries[i]
                    .spec
                    .depends_on
                    .as_ref()
                    .and_then(|id| self.index.get(id).copied());
                if let Some(u) = upstream
                    && matches!(self.entries[u].state, JobState::Done { .. })
                {
                    self.terminal -= 1;
                    self.entries[u].state = JobState::Queued;
                    self.entries[u].last_error = Some(format!("run again: {error}"));
                    self.changed.insert(u);
                    self.enqueue(u);
                    // Its other dependents that were ready wait for it again.
                    let id = self.entries[u].spec.id.clone();
                    let (waiting, ready): (Vec<usize>, Vec<usize>) =
                        self.ready.drain(..).partition(|&j| {
                            self.entries[j].spec.depends_on.as_deref() == Some(id.as_str())
                        });
                    self.ready = ready.into();
                    self.waiting.entry(id).or_default().extend(waiting);
                }
                self.requeue(i);
            }
        }
        true
    }

    /// Back to the queue without using an attempt.
    fn requeue(&mut self, i: usize) {
        let entry = &mut self.entries[i];
        entry.attempts = entry.attempts.saturating_sub(1);
        entry.lease = None;
        entry.progress = None;
        entry.state = JobState::Queued;
        self.changed.insert(i);
        self.enqueue(i);
    }

    /// Expires leases past their deadline; returns the affected jobs.
    pub fn expire(&mut self, now_ms: u64) -> Vec<JobId> {
        let expired: Vec<(LeaseDigest, usize)> = self
            .leases
            .iter()
            .filter(|(_, i)| matches!(self.entries[**i].state, JobState::Leased { deadline_unix_ms, .. } if deadline_unix_ms < now_ms))
            .map(|(lease, &i)| (lease.clone(), i))
            .collect();
        let mut jobs = Vec::new();
        for (lease, i) in expired {
            self.leases.remove(&lease);
            jobs.push(self.entries[i].spec.id.clone());
            self.retry_or_fail(i, "lease expired: the worker stopped sending heartbeats");
        }
        jobs
    }

    fn retry_or_fail(&mut self, i: usize, error: &str) {
        self.entries[i].lease = None;
        self.entries[i].progress = None;
        self.entries[i].last_error = Some(error.to_string());
        if self.entries[i].attempts < self.max_attempts {
            self.entries[i].state = JobState::Queued;
            self.changed.insert(i);
            self.enqueue(i);
        } else {
            let message = format!("{error} (after {} attempts)", self.entries[i].attempts);
            self.finish(i, JobState::Failed { error: message });
        }
    }

    /// Moves a job to a terminal state and releases or blocks what waits on it.
    fn finish(&mut self, i: usize, state: JobState) {
        let done = matches!(state, JobState::Done { .. });
        if !self.entries[i].state.is_terminal() {
            self.terminal += 1;
        }
        self.changed.insert(i);
        self.entries[i].state = state;
        self.entries[i].lease = None;
        let id = self.entries[i].spec.id.clone();
        for dependent in self.waiting.remove(&id).unwrap_or_default() {
            if done {
                self.ready.push_back(dependent);
            } else {
                self.finish(dependent, JobState::Blocked { by: id.clone() });
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        self.terminal == self.entries.len()
    }

    /// Every job's status and the leaderboards.
    pub fn status(&self) -> RunStatus {
        self.status_page(0, self.entries.len())
    }

    /// The status of at most `limit` jobs from `offset` on, with the leaderboards.
    pub fn status_page(&self, offset: usize, limit: usize) -> RunStatus {
        let jobs = self
            .entries
            .iter()
            .skip(offset)
            .take(limit)
            .map(Entry::status)
            .collect();
        RunStatus {
            run: self.run.clone(),
            finished: self.is_finished(),
            jobs,
            offset,
            total_jobs: self.entries.len(),
            leaderboard: self.leaderboard(),
            budget: self.budget,
        }
    }

    /// Jobs a worker asking now would be given: ready, and within the step budget. What an
    /// autoscaler should scale workers on (queued jobs also count those still waiting for an
    /// upstream job).
    pub fn leasable(&self) -> usize {
        let Some(budget) = self.budget else {
            return self.ready.len();
        };
        let usage = self.steps_in_use();
        self.ready
            .iter()
            .filter(|&&i| {
                matches!(
                    budget_room(&budget, &usage, &self.entries[i].spec),
                    BudgetRoom::Fits
                )
            })
            .count()
    }

    /// The jobs that hold a lease now.
    pub fn running_jobs(&self) -> Vec<JobStatus> {
        self.entries
            .iter()
            .filter(|e| matches!(e.state, JobState::Leased { .. }))
            .map(Entry::status)
            .collect()
    }

    /// How many jobs are in each state.
    pub fn state_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.entries {
            *counts.entry(e.state.name().to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// Jobs by kind, then by state.
    pub fn kind_state_counts(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for e in &self.entries {
            *counts
                .entry(e.spec.kind.name().to_string())
                .or_default()
                .entry(e.state.name().to_string())
                .or_insert(0) += 1;
        }
        counts
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The categories of the jobs not finished yet.
    pub fn unfinished_categories(&self) -> impl Iterator<Item = String> + '_ {
        self.entries
            .iter()
            .filter(|e| !e.state.is_terminal())
            .map(|e| e.spec.category.clone())
    }

    /// Whether the lease is valid (whoever holds it).
    pub fn has_lease(&self, lease_id: &str) -> bool {
        self.leases.contains_key(&LeaseDigest::of(lease_id))
    }

    /// Per category, the finished SegNet jobs ranked by validation score (test metrics beside).
    pub fn leaderboard(&self) -> BTreeMap<String, Vec<LeaderboardEntry>> {
        let mut board: BTreeMap<String, Vec<LeaderboardEntry>> = BTreeMap::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.spec.kind == JobKind::Segnet)
        {
            let JobState::Done { result } = &e.state else {
                continue;
            };
            let evaluation = result.evaluation.as_ref();
            board
                .entry(e.spec.category.clone())
                .or_default()
                .push(LeaderboardEntry {
                    job: e.spec.id.clone(),
                    point: e.spec.point.clone(),
                    validation_score: result.validation.as_ref().map(|v| v.score),
                    steps: result.steps,
                    stopped_early: result.stopped_early.clone(),
                    test_image_auroc: evaluation.and_then(|m| m.image_auroc),
                    image_score: evaluation.map(|m| m.image_score),
                    test_pixel_auroc: evaluation.and_then(|m| m.pixel_auroc),
                    test_pro_auc: evaluation.and_then(|m| m.pro_auc),
                });
        }
        for entries in board.values_mut() {
            entries.sort_by(|a, b| {
                b.validation_score
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&a.validation_score.unwrap_or(f64::NEG_INFINITY))
            });
        }
        board
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{next_id, plan, result, spec};

    #[test]
    fn dependents_wait_for_their_upstream_job() {
        let mut table = JobTable::new(&plan());
        let first = table.lease("w1", 0, next_id).unwrap();
        assert_eq!(first.spec.id, "p");
        assert!(
            table.lease("w2", 0, next_id).is_none(),
            "SegNet jobs wait for pre-training"
        );
        assert!(table.complete(&first.lease_id, "w1", Box::new(result())));
        let ids: Vec<String> = [
            table.lease("w1", 1, next_id).unwrap(),
            table.lease("w2", 1, next_id).unwrap(),
        ]
        .map(|g| g.spec.id)
        .to_vec();
        assert_eq!(ids, ["s1", "s2"]);
        assert!(
            !table.complete(&first.lease_id, "w1", Box::new(result())),
            "a lease completes once"
        );
    }

    #[test]
    fn only_jobs_a_worker_could_take_now_are_leasable() {
        let mut table = JobTable::new(&plan());
        assert_eq!(table.leasable(), 1, "the SegNet jobs wait for pre-training");
        let first = table.lease("w1", 0, next_id).unwrap();
        assert_eq!(table.leasable(), 0);
        assert!(table.complete(&first.lease_id, "w1", Box::new(result())));
        assert_eq!(table.leasable(), 2);
        let second = table.lease("w1", 1, next_id).unwrap();
        assert_eq!(table.leasable(), 1);
        assert!(table.fail(&second.lease_id, "w1", "lost", FailureKind::Retryable));
        assert_eq!(table.leasable(), 2, "a retry is leasable again");
    }

    #[test]
    fn counts_by_kind_and_running_jobs_follow_the_table() {
        let mut table = JobTable::new(&plan());
        let counts = |table: &JobTable| {
            table
                .kind_state_counts()
                .into_iter()
                .flat_map(|(kind, states)| {
                    states
                        .into_iter()
                        .map(move |(state, n)| format!("{kind} {state} {n}"))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(&table), ["pretrain queued 1", "segnet queued 2"]);
        assert!(table.running_jobs().is_empty());
        let first = table.lease("w1", 0, next_id).unwrap();
        assert_eq!(counts(&table), ["pretrain running 1", "segnet queued 2"]);
        let running: Vec<String> = table.running_jobs().into_iter().map(|j| j.id).collect();
        assert_eq!(running, ["p"]);
        assert!(table.complete(&first.lease_id, "w1", Box::new(result())));
        table.lease("w1", 1, next_id).unwrap();
        assert_eq!(
            counts(&table),
            ["pretrain done 1", "segnet queued 1", "segnet running 1"]
        );
        let total: usize = table.state_counts().values().sum();
        assert_eq!(total, table.len());
    }

    #[test]
    fn expired_leases_retry_then_fail_and_block_dependents() {
        let mut table = JobTable::new(&plan());
        let lease = table.lease("w1", 0, next_id).unwrap();
        assert!(table.heartbeat(&lease.lease_id, "w1", None, 5_000).accepted);
        assert!(
            table.expire(12_000).is_empty(),
            "the heartbeat moved the deadline to 15 s"
        );
        assert_eq!(table.expire(16_000), vec!["p".to_string()]);
        let outcome = table.heartbeat(&lease.lease_id, "w1", None, 16_001);
        assert!(
            !outcome.accepted && outcome.cancel,
            "a worker that lost its lease is told to stop"
        );
        let again = table.lease("w2", 16_000, next_id).unwrap();
        assert_eq!(again.attempt, 2);
        table.expire(40_000);
        assert!(table.is_finished());
        let status = table.status();
        assert!(
            matches!(&status.jobs[0].state, JobState::Failed { error } if error.contains("2 attempts"))
        );
        assert!(matches!(&status.jobs[1].state, JobState::Blocked { by } if by == "p"));
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        let mut table = JobTable::new(&plan());
        let lease = table.lease("w1", 0, next_id).unwrap();
        assert!(table.fail(
            &lease.lease_id,
            "w1",
            "train/good/003.png: unreadable",
            FailureKind::Permanent
        ));
        assert!(
            table.is_finished(),
            "one attempt of two used, yet nothing is queued again"
        );
        let status = table.status();
        assert!(
            matches!(&status.jobs[0].state, JobState::Failed { error } if error.contains("003.png"))
        );
        assert!(
            status.jobs[1..]
                .iter()
                .all(|j| matches!(&j.state, JobState::Blocked { by } if by == "p"))
        );
    }

    #[test]
    fn a_retry_gives_failed_jobs_fresh_attempts_and_queues_what_they_blocked() {
        let mut table = JobTable::new(&plan());
        for _ in 0..2 {
            let lease = table.lease("w1", 0, next_id).unwrap();
            assert!(table.fail(&lease.lease_id, "w1", "no GPU", FailureKind::Retryable));
        }
        assert!(table.is_finished(), "both attempts used");
        table.take_changes();

        let retried = table.retry_failed();
        assert_eq!(retried.failed, ["p"]);
        assert_eq!(retried.blocked, ["s1", "s2"]);
        assert!(!table.is_finished());
        assert_eq!(
            table.take_changes().jobs.len(),
            3,
            "all three are journaled"
        );
        let status = table.status();
        assert!(status.jobs.iter().all(|j| j.state == JobState::Queued));
        assert!(
            status.jobs[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("no GPU")),
            "the old failure stays visible until the job runs"
        );

        let again = table.lease("w1", 0, next_id).unwrap();
        assert_eq!((again.spec.id.as_str(), again.attempt), ("p", 1));
        assert!(
            table.lease("w2", 0, next_id).is_none(),
            "the blocked jobs wait for it again"
        );
        assert!(table.complete(&again.lease_id, "w1", Box::new(result())));
        let ids = [
            table.lease("w1", 0, next_id).unwrap(),
            table.lease("w2", 0, next_id).unwrap(),
        ]
        .map(|g| g.spec.id);
        assert_eq!(ids, ["s1", "s2"]);

        let journal = table.journal();
        assert_eq!(journal.jobs["p"].retries, 1);
        assert_eq!(
            journal.jobs["s1"].retries, 0,
            "only a failed job counts a retry"
        );
        let restored = JobTable::restore(&plan(), journal, &HashMap::new(), 0);
        assert_eq!(
            restored.journal().jobs["p"].retries,
            1,
            "the count survives a restart"
        );
    }

    #[test]
    fn a_retry_leaves_finished_and_running_jobs_alone() {
        let mut table = JobTable::new(&plan());
        let lease = table.lease("w1", 0, next_id).unwrap();
        assert!(table.complete(&lease.lease_id, "w1", Box::new(result())));
        let running = table.lease("w1", 0, next_id).unwrap();
        table.take_changes();
        assert!(table.retry_failed().is_empty());
        assert!(!table.has_changes());
        assert!(table.heartbeat(&running.lease_id, "w1", None, 1).accepted);
        assert_eq!(table.lease("w2", 0, next_id).unwrap().spec.id, "s2");
        assert!(table.lease("w3", 0, next_id).is_none());
    }

    #[test]
    fn journals_without_a_retry_count_still_load() {
        let journal: Journal = serde_json::from_str(
            r#"{"run":"r","jobs":{"p":{"state":{"state":"failed","error":"x"},"attempts":2,"lease":null}}}"#,
        )
        .unwrap();
        assert_eq!(journal.jobs["p"].retries, 0);
        let written = serde_json::to_string(&journal).unwrap();
        assert!(!written.contains("retries"), "{written}");
    }

    #[test]
    fn giving_back_uses_no_attempt_and_journal_restores() {
        let mut table = JobTable::new(&plan());
        let lease = table.lease("w1", 0, next_id).unwrap();
        assert!(table.fail(&lease.lease_id, "w1", "stopping", FailureKind::GiveBack));
        let again = table.lease("w1", 0, next_id).unwrap();
        assert_eq!(again.attempt, 1);
        let journal: Journal =
            serde_json::from_str(&serde_json::to_string(&table.journal()).unwrap()).unwrap();
        let mut restored = JobTable::restore(&plan(), journal, &HashMap::new(), 60_000);
        assert!(
            restored.expire(65_000).is_empty(),
            "a restored lease gets a new period"
        );
        assert!(
            restored
                .heartbeat(&again.lease_id, "w1", None, 65_000)
                .accepted,
            "leases survive a coordinator restart"
        );
        assert!(restored.complete(&again.lease_id, "w1", Box::new(result())));
        assert_eq!(restored.lease("w2", 2, next_id).unwrap().spec.id, "s1");
        assert!(restored.lease("w3", 2, next_id).unwrap().lease_id != again.lease_id);
    }

    #[test]
    fn the_journal_names_leases_without_granting_them() {
        let mut table = JobTable::new(&plan());
        let lease = table.lease("w1", 0, next_id).unwrap();
        let written = serde_json::to_string(&table.journal()).unwrap();
        assert!(!written.contains(&lease.lease_id), "{written}");
        let journal: Journal = serde_json::from_str(&written).unwrap();
        let journaled = journal.jobs["p"].lease_sha256.clone().unwrap();
        let mut restored = JobTable::restore(&plan(), journal, &HashMap::new(), 0);
        // Whoever reads the journal holds the digest and the holder's name: not enough.
        let forged: String = serde_json::to_value(&journaled)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        assert!(!restored.heartbeat(&forged, "w1", None, 1).accepted);
        assert!(!restored.fail(&forged, "w1", "forged", FailureKind::Permanent));
        assert!(!restored.complete(&forged, "w1", Box::new(result())));
        assert!(restored.heartbeat(&lease.lease_id, "w1", None, 2).accepted);
        assert!(restored.complete(&lease.lease_id, "w1", Box::new(result())));
    }

    #[test]
    fn a_journal_of_format_1_restores_its_run_and_lease() {
        macro_rules! fixture {
            ($name:literal) => {
                include_str!(concat!("../../fixtures/format-1/", $name))
            };
        }
        let plan: Plan = serde_json::from_str(fixture!("plan.json")).unwrap();
        let mut journal: serde_json::Value = serde_json::from_str(fixture!("state.json")).unwrap();
        journal["added_by_a_newer_minor"] = serde_json::json!(1);
        let journal: Journal = serde_json::from_value(journal).unwrap();
        let pretrain: JobResult = serde_json::from_str(fixture!("pretrain-result.json")).unwrap();
        let results = HashMap::from([("0fd773c0708591fd".to_string(), pretrain)]);
        let mut restored = JobTable::restore(&plan, journal, &results, 0);
        assert!(restored.heartbeat("fixture-lease", "w1", None, 1).accepted);
        assert!(!restored.heartbeat("fixture-lease", "w2", None, 1).accepted);
    }

    #[test]
    fn journals_with_lease_ids_in_clear_still_honour_their_leases() {
        let journal: Journal = serde_json::from_str(
            r#"{"run":"r","jobs":{"p":{"state":{"state":"leased","worker":"w1","attempt":1},"attempts":1,"lease":"0123abcd"}}}"#,
        )
        .unwrap();
        let mut restored = JobTable::restore(&plan(), journal, &HashMap::new(), 0);
        let written = serde_json::to_string(&restored.journal()).unwrap();
        assert!(!written.contains("0123abcd"), "{written}");
        assert!(restored.heartbeat("0123abcd", "w1", None, 1).accepted);
    }

    #[test]
    fn a_lease_is_bound_to_its_worker() {
        let mut table = JobTable::new(&plan());
        let lease = table.lease("w1", 0, next_id).unwrap();
        let outcome = table.heartbeat(&lease.lease_id, "intruder", None, 1);
        assert!(!outcome.accepted && outcome.cancel);
        assert!(!table.complete(&lease.lease_id, "intruder", Box::new(result())));
        assert!(!table.fail(&lease.lease_id, "intruder", "x", FailureKind::Permanent));
        assert!(
            table.heartbeat(&lease.lease_id, "w1", None, 2).accepted,
            "untouched"
        );
        assert!(table.complete(&lease.lease_id, "w1", Box::new(result())));
    }

    #[test]
    fn a_damaged_upstream_artifact_runs_the_upstream_job_again() {
        let mut table = JobTable::new(&plan());
        let pretrain = table.lease("w1", 0, next_id).unwrap();
        assert!(table.complete(&pretrain.lease_id, "w1", Box::new(result())));
        let segnet = table.lease("w1", 0, next_id).unwrap();
        assert!(table.fail(
            &segnet.lease_id,
            "w1",
            "encoder.ckpt: checksum mismatch",
            FailureKind::Upstream
        ));
        let again = table.lease("w2", 0, next_id).unwrap();
        assert_eq!((again.spec.id.as_str(), again.attempt), ("p", 2));
        assert!(
            table.lease("w3", 0, next_id).is_none(),
            "the SegNet jobs wait for it"
        );
        assert!(table.complete(&again.lease_id, "w2", Box::new(result())));
        let segnet = table.lease("w1", 0, next_id).unwrap();
        assert_eq!(
            segnet.attempt, 1,
            "the damaged artifact used none of its attempts"
        );
    }

    #[test]
    fn a_deleted_result_starts_the_job_over() {
        let mut table = JobTable::new(&plan());
        let lease = table.lease("w1", 0, next_id).unwrap();
        assert!(table.complete(&lease.lease_id, "w1", Box::new(result())));
        let mut restored = JobTable::restore(&plan(), table.journal(), &HashMap::new(), 1_000);
        let again = restored.lease("w1", 1_000, next_id).unwrap();
        assert_eq!((again.spec.id.as_str(), again.attempt), ("p", 1));
    }

    #[test]
    fn a_result_in_the_store_finishes_a_journaled_lease() {
        let mut table = JobTable::new(&plan());
        let lease = table.lease("w1", 0, next_id).unwrap();
        let results = HashMap::from([(lease.spec.id.clone(), result())]);
        let mut restored = JobTable::restore(&plan(), table.journal(), &results, 1_000);
        assert!(
            !restored.complete(&lease.lease_id, "w1", Box::new(result())),
            "the job finished while no coordinator ran"
        );
        assert_eq!(restored.lease("w2", 1_000, next_id).unwrap().spec.id, "s1");
    }

    /// Three SegNet trials of 100 steps under ASHA (rungs at 10 and 30, factor 3), after
    /// their pre-training job, with an optional budget.
    fn sweep(budget: Option<BudgetSection>) -> Plan {
        let rule = EarlyStopping::asha(10, 3);
        let mut plan = plan();
        for id in ["s3", "s4"] {
            plan.jobs.push(spec(id, JobKind::Segnet, Some("p")));
        }
        for job in plan.jobs.iter_mut().filter(|j| j.kind == JobKind::Segnet) {
            job.config.segnet.steps = 100;
            job.early_stopping = Some(rule.clone());
        }
        plan.early_stopping = Some(rule);
        plan.budget = budget;
        plan
    }

    fn validated(step: u64, score: f64) -> Option<JobProgress> {
        Some(JobProgress {
            validation: Some(slsg::job::ValidationPoint { step, score }),
            ..JobProgress::default()
        })
    }

    #[test]
    fn heartbeats_carry_trials_to_their_early_stopping_decision() {
        let plan = sweep(None);
        let mut table = JobTable::new(&plan);
        let pretrain = table.lease("w", 0, next_id).unwrap();
        table.complete(&pretrain.lease_id, "w", Box::new(result()));
        let first = table.lease("w", 0, next_id).unwrap();
        let second = table.lease("v", 0, next_id).unwrap();
        let beat = |table: &mut JobTable, lease: &Granted, worker, progress| {
            table.heartbeat(&lease.lease_id, worker, progress, 0)
        };
        // A heartbeat without a validation is judged nothing.
        let quiet = beat(&mut table, &first, "w", None);
        assert_eq!((quiet.judged_step, quiet.stop_early.clone()), (None, None));
        let ahead = beat(&mut table, &first, "w", validated(10, 0.9));
        assert_eq!((ahead.judged_step, ahead.stop_early), (Some(10), None));
        assert!(table.has_changes());
        table.take_changes();
        // The same validation again (every heartbeat repeats it) changes nothing.
        beat(&mut table, &first, "w", validated(10, 0.9));
        assert!(!table.has_changes());
        // A report past the trial's last step is ignored.
        let bogus = beat(&mut table, &second, "v", validated(1_000, 1.0));
        assert_eq!(bogus.judged_step, None);
        let behind = beat(&mut table, &second, "v", validated(10, 0.5));
        let stopped = behind
            .stop_early
            .expect("0.5 is below the rung's cutoff 0.9");
        assert_eq!((behind.judged_step, stopped.step), (Some(10), 10));
        // The decision is journaled: a restarted coordinator repeats it, and judges the next
        // trial against the same rung.
        let changes = table.take_changes();
        let mut journal = Journal {
            run: "r".into(),
            jobs: BTreeMap::new(),
            trials: BTreeMap::new(),
        };
        changes.apply(&mut journal);
        assert_eq!(journal.trials["cat"], table.trials["cat"]);
        let results = HashMap::from([("p".to_string(), result())]);
        let mut restored = JobTable::restore(&plan, table.journal(), &results, 5);
        let again = restored.heartbeat(&second.lease_id, "v", validated(20, 0.99), 5);
        assert_eq!(again.stop_early, Some(stopped));
        let third = restored.lease("u", 5, next_id).unwrap();
        let judged = restored.heartbeat(&third.lease_id, "u", validated(10, 0.6), 5);
        assert!(
            judged.stop_early.is_some(),
            "0.6 is below the cutoff 0.9 of 0.5 and 0.9"
        );
        // Pre-training jobs are never judged.
        let mut plain = JobTable::new(&plan);
        let pretrain = plain.lease("w", 0, next_id).unwrap();
        let outcome = plain.heartbeat(&pretrain.lease_id, "w", validated(10, 0.1), 0);
        assert_eq!((outcome.judged_step, outcome.stop_early), (None, None));
    }

    #[test]
    fn a_trial_starts_only_while_the_budget_has_room() {
        // 250 steps: two trials of 100 can run at once; a third waits for their steps.
        let budget = BudgetSection {
            category_steps: Some(250),
            run_steps: None,
        };
        let mut table = JobTable::new(&sweep(Some(budget)));
        let pretrain = table.lease("w", 0, next_id).unwrap();
        table.complete(&pretrain.lease_id, "w", Box::new(result()));
        let first = table.lease("w", 0, next_id).unwrap();
        let second = table.lease("v", 0, next_id).unwrap();
        assert!(table.lease("u", 0, next_id).is_none(), "200 + 100 > 250");
        assert_eq!(table.queued().len(), 2, "the trials wait, queued");
        // The first stops early after 10 steps: 110 used or held, so one more fits.
        let stopped = JobResult {
            steps: 10,
            stopped_early: Some(StoppedEarly {
                step: 10,
                reason: "rung 10".into(),
            }),
            ..result()
        };
        table.complete(&first.lease_id, "w", Box::new(stopped));
        let third = table.lease("w", 0, next_id).unwrap();
        assert_eq!(third.spec.id, "s3");
        // 10 + 100 + 100 held: nothing more while they run. The second finishes its 100
        // steps, the third too: 210 used, and the last trial can never fit.
        assert!(table.lease("u", 0, next_id).is_none());
        let full = JobResult {
            steps: 100,
            ..result()
        };
        table.complete(&second.lease_id, "v", Box::new(full.clone()));
        table.complete(&third.lease_id, "w", Box::new(full));
        assert!(table.lease("u", 0, next_id).is_none());
        assert!(table.is_finished());
        let status = table.status();
        let skipped = status.jobs.iter().find(|j| j.id == "s4").unwrap();
        let JobState::Skipped { reason } = &skipped.state else {
            panic!("s4 is {:?}", skipped.state);
        };
        assert!(
            reason.contains("budget of 250") && reason.contains("40 left"),
            "{reason}"
        );
        let board = &status.leaderboard["cat"];
        assert_eq!(board.iter().map(|e| e.steps).sum::<u64>(), 210);
        assert_eq!(
            board.iter().filter(|e| e.stopped_early.is_some()).count(),
            1
        );
        // Journaled and restored as skipped.
        let restored = JobTable::restore(&sweep(Some(budget)), table.journal(), &HashMap::new(), 0);
        assert_eq!(restored.state_counts()["skipped"], 1);
    }
}
