//! Jobs: the cluster config and its expansion into a job graph (plan), data fingerprints, and
//! the specifications, progress and results that travel between coordinator and workers. No
//! actors, clients or servers here.

mod plan;
mod retrain;
mod schedule;
mod spec;

pub use plan::{
    ClusterConfig, DatasetSection, MAX_LEASE_SECONDS, MAX_SWEEP_POINTS, MAX_WORKERS, Plan,
    PlanError, Resources, RunSection, SweepMode, SweepSection,
};
pub use retrain::{RetrainConfigError, RetrainMode, RetrainSection};
pub use schedule::{Schedule, ScheduleError, utc_stamp};
pub use spec::{
    FailureKind, JobId, JobKind, JobProgress, JobResult, JobSpec, JobState, JobStatus,
    LeaderboardEntry, RunOverview, RunStatus, ServiceStatus,
};
