//! What travels between the coordinator and workers (as JSON inside the gRPC messages): the
//! job specification, progress, results and the run's status.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::metrics::ImageScore;

/// A content hash identifying a job (hex).
pub type JobId = String;

/// A job runs one stage of a category's pipeline.
pub type JobKind = crate::train::Stage;

/// What a finished job reports: its stage's result (`result.json`).
pub type JobResult = crate::fit::StageResult;

/// How a job that did not finish ends its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Something that may not happen again (a lost device, a diverged run): retried while
    /// attempts remain.
    Retryable,
    /// The job's input is wrong (an unreadable image, a missing mask): retrying cannot help.
    Permanent,
    /// The job was not at fault (its worker is stopping): queued again without using an attempt.
    GiveBack,
    /// An artifact of the job's upstream job is missing or damaged: that job runs again first,
    /// and this one waits for it without using an attempt.
    Upstream,
}

/// Everything a worker needs to run a job; artifacts go to the store under the run's prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: JobId,
    pub kind: JobKind,
    pub run: String,
    /// The store URL (`file:///…` or `s3://bucket/prefix`).
    pub store: String,
    /// The dataset folder, or its object-store URL.
    pub dataset: PathBuf,
    /// For a dataset URL: the fingerprint of the category's listing when the run was planned,
    /// which the worker's copy must match.
    #[serde(default)]
    pub dataset_listing: Option<String>,
    pub category: String,
    /// The training configuration of this job (the sweep point's values applied); a spec
    /// recorded before a field existed keeps the behaviour it was planned with.
    #[serde(deserialize_with = "Config::deserialize_recorded")]
    pub config: Config,
    /// The sweep point's field values (empty without a sweep).
    pub point: BTreeMap<String, String>,
    /// The pre-training job whose encoder a SegNet job starts from.
    pub depends_on: Option<JobId>,
    /// A retraining run's comparison with the model in production.
    #[serde(default)]
    pub retraining: Option<crate::fit::Retraining>,
    /// A SegNet trial of a sweep with early stopping: its worker waits at each validation for
    /// the coordinator's word to go on.
    #[serde(default)]
    pub early_stopping: Option<super::EarlyStopping>,
}

/// The latest training progress of a leased job, sent with heartbeats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    pub stage: String,
    pub step: u64,
    pub total_steps: u64,
    pub losses: BTreeMap<String, f64>,
    pub images_per_second: f64,
    /// Simulated batches waiting for the training step (see `StepReport::queued_batches`).
    #[serde(default)]
    pub queued_batches: usize,
    /// The latest validation of a trial under early stopping, in the rule's metric.
    #[serde(default)]
    pub validation: Option<ValidationPoint>,
}

/// A trial's validation result as its early-stopping rule compares it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationPoint {
    pub step: u64,
    pub score: f64,
}

pub use crate::train::StoppedEarly;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Leased {
        worker: String,
        attempt: u32,
        deadline_unix_ms: u64,
    },
    Done {
        result: Box<JobResult>,
    },
    Failed {
        error: String,
    },
    /// An upstream job failed, so this one cannot run.
    Blocked {
        by: JobId,
    },
    /// A sweep trial the step budget left no room for.
    Skipped {
        reason: String,
    },
}

impl JobState {
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Leased { .. } => "running",
            JobState::Done { .. } => "done",
            JobState::Failed { .. } => "failed",
            JobState::Blocked { .. } => "blocked",
            JobState::Skipped { .. } => "skipped",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Done { .. }
                | JobState::Failed { .. }
                | JobState::Blocked { .. }
                | JobState::Skipped { .. }
        )
    }
}

/// One job as `slsg status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: JobId,
    pub kind: JobKind,
    pub category: String,
    pub point: BTreeMap<String, String>,
    pub state: JobState,
    pub attempts: u32,
    pub progress: Option<JobProgress>,
    /// Why the last failed attempt of a retried job failed (kept once a later one succeeds).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// One sweep point of a category in the leaderboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardEntry {
    pub job: JobId,
    pub point: BTreeMap<String, String>,
    /// The selection score on validation data (mean of image and pixel AUROC).
    pub validation_score: Option<f64>,
    pub test_image_auroc: Option<f64>,
    /// SegNet steps the trial trained.
    #[serde(default)]
    pub steps: u64,
    /// Where and why the sweep's early-stopping rule stopped the trial.
    #[serde(default)]
    pub stopped_early: Option<StoppedEarly>,
    /// The image score `test_image_auroc` was computed from.
    #[serde(default)]
    pub image_score: Option<ImageScore>,
    pub test_pixel_auroc: Option<f64>,
    pub test_pro_auc: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    pub run: String,
    pub finished: bool,
    /// The jobs from `offset` on (a page of them when the run is large).
    pub jobs: Vec<JobStatus>,
    /// Where the page starts, and how many jobs the run has in all.
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub total_jobs: usize,
    /// Per category, the sweep points ranked by validation score, best first.
    pub leaderboard: BTreeMap<String, Vec<LeaderboardEntry>>,
    /// The sweep's caps on SegNet steps, if it has any.
    #[serde(default)]
    pub budget: Option<super::BudgetSection>,
}

impl JobStatus {
    /// The state as `slsg status` names it: a trial its early-stopping rule ended is
    /// `stopped early`.
    pub fn state_name(&self) -> &'static str {
        match &self.state {
            JobState::Done { result } if result.stopped_early.is_some() => "stopped early",
            state => state.name(),
        }
    }
}

impl RunStatus {
    /// The SegNet steps a category's finished trials used, and the budget's caps.
    pub fn steps_used(&self, category: &str) -> String {
        let used = |category: Option<&str>| -> u64 {
            self.leaderboard
                .iter()
                .filter(|(c, _)| category.is_none_or(|wanted| wanted == c.as_str()))
                .flat_map(|(_, entries)| entries.iter().map(|e| e.steps))
                .sum()
        };
        let stopped = self.leaderboard.get(category).map_or(0, |entries| {
            entries.iter().filter(|e| e.stopped_early.is_some()).count()
        });
        let mut line = format!("SegNet steps used: {}", used(Some(category)));
        let budget = self.budget.unwrap_or_default();
        if let Some(cap) = budget.category_steps {
            line.push_str(&format!(" of the category's budget of {cap}"));
        }
        if let Some(cap) = budget.run_steps {
            line.push_str(&format!(" (the run: {} of {cap})", used(None)));
        }
        if stopped > 0 {
            line.push_str(&format!("; {stopped} trial(s) stopped early"));
        }
        line
    }
}

/// One run in a coordinator's overview.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOverview {
    pub run: String,
    /// A retraining run (its models pass the promotion gate).
    pub retraining: bool,
    pub finished: bool,
    pub jobs: usize,
    /// Jobs by state (`queued`, `running`, `done`, `failed`, `blocked`).
    pub states: BTreeMap<String, usize>,
    /// Jobs by kind (`pretrain`, `segment`), then by state.
    #[serde(default)]
    pub kinds: BTreeMap<String, BTreeMap<String, usize>>,
}

/// What a coordinator service is doing: its runs, oldest first, and its retraining schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub runs: Vec<RunOverview>,
    /// When the next scheduled retraining check runs (seconds since the epoch), if scheduled.
    pub next_check_unix: Option<u64>,
}
