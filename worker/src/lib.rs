//! The slsg worker: a ractor actor per device slot that leases jobs from the coordinator, runs
//! them (anomaly simulation on CPU threads, training on its device) on a dedicated thread,
//! keeps checkpoints, curves and results in the store, and reports progress in heartbeats.
//! The same actor runs in-process (embedded) and in its own process talking gRPC.

mod access;
mod actor;
pub mod grpc;
mod link;
mod metrics;
mod progress;
mod runner;
mod watchdog;

pub use access::{Access, ClientTls, is_loopback_host};
pub use actor::{JobRunner, WorkerActor, WorkerArgs, WorkerMessage, pipeline_runner};
pub use grpc::GrpcLink;
pub use link::{
    CoordinatorLink, HeartbeatAnswer, LeaseOutcome, LeasedJob, LinkError, Registration,
};
pub use metrics::{JobOutcome, Labels, ProgressGauges, WorkerMetrics};
pub use progress::JobSignals;
pub use runner::{JobError, JobFailure, run_job};
pub use watchdog::DEFAULT_STALL_SECONDS;
