//! Jobs: the cluster config and its expansion into a job graph (plan), data fingerprints, and
//! the specifications, progress and results that travel between coordinator and workers. No
//! actors, clients or servers here.

mod plan;
mod spec;

pub use plan::{
    ClusterConfig, DatasetSection, Plan, PlanError, Resources, RunSection, SweepMode, SweepSection,
};
pub use spec::{
    FailureKind, JobId, JobKind, JobProgress, JobResult, JobSpec, JobState, JobStatus,
    LeaderboardEntry, RunStatus,
};
