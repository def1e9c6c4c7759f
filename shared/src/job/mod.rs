//! Jobs: the cluster config and its expansion into a job graph (plan), data fingerprints, and
//! the specifications, progress and results that travel between coordinator and workers. No
//! actors, clients or servers here.

mod plan;
mod retrain;
mod schedule;
mod spec;
mod sweep;

pub use plan::{
    ClusterConfig, DatasetSection, MAX_LEASE_SECONDS, MAX_WORKERS, Plan, PlanError, Resources,
    RunSection,
};
pub use retrain::{RetrainConfigError, RetrainMode, RetrainSection};
pub use schedule::{Schedule, ScheduleError, utc_stamp};
pub use spec::{
    FailureKind, JobId, JobKind, JobProgress, JobResult, JobSpec, JobState, JobStatus,
    LeaderboardEntry, RunOverview, RunStatus, ServiceStatus, StoppedEarly, ValidationPoint,
};
pub use sweep::{
    BudgetSection, DEFAULT_MIN_TRIALS, DEFAULT_REDUCTION_FACTOR, EarlyStopping,
    EarlyStoppingSection, MAX_SWEEP_POINTS, SearchRange, StopMetric, StopRule, StopRuleName,
    SweepMode, SweepSection,
};
