//! The slsg worker: a ractor actor per device slot that leases jobs from the coordinator, runs
//! them (anomaly simulation on CPU threads, training on its device) on a dedicated thread,
//! keeps checkpoints, curves and results in the store, and reports progress in heartbeats.
//! The same actor runs in-process (embedded) and in its own process talking gRPC.

mod actor;
mod grpc;
mod link;
mod reporter;
mod runner;

pub use actor::{WorkerActor, WorkerArgs, WorkerMessage};
pub use grpc::GrpcLink;
pub use link::{
    CoordinatorLink, HeartbeatAnswer, LeaseOutcome, LeasedJob, LinkError, Registration,
};
pub use runner::{JobFailure, run_job};
