//! How a worker talks to its coordinator: the same calls in-process (embedded runs) and over
//! gRPC (clusters).

use std::future::Future;
use std::time::Duration;

use slsg::job::{FailureKind, JobProgress, JobResult, JobSpec, StoppedEarly};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The coordinator turned the token away (missing or wrong): asking again cannot help.
    #[error("the coordinator refused the token: {0}")]
    Token(String),
    /// The connection was refused for good (a certificate the CA given did not sign): asking
    /// again cannot help.
    #[error("the coordinator refused the connection: {0}")]
    Refused(String),
    /// Unreachable, or a reply that made no sense: worth another try.
    #[error("coordinator: {0}")]
    Failed(String),
    /// The link cannot be set up as given (a URL, a CA file, plain text off this machine).
    #[error("{0}")]
    Setup(String),
}

pub struct Registration {
    pub run: String,
    pub heartbeat_interval: Duration,
}

pub struct LeasedJob {
    pub lease_id: String,
    pub attempt: u32,
    pub spec: JobSpec,
}

pub struct HeartbeatAnswer {
    pub accepted: bool,
    /// The coordinator no longer wants the job (its lease expired and moved on).
    pub cancel: bool,
    /// A sweep trial: the latest validation step its early-stopping rule judged...
    pub judged_step: Option<u64>,
    /// ...and the rule's decision to stop it, once made.
    pub stop_early: Option<StoppedEarly>,
}

/// What a lease request found.
pub enum LeaseOutcome {
    Job(Box<LeasedJob>),
    /// Nothing leasable right now; ask again.
    Wait,
    /// The coordinator has no more work and is stopping: the worker can stop.
    Stopping,
}

pub trait CoordinatorLink: Send + Sync + 'static {
    fn register(
        &self,
        worker: &str,
        device: &str,
    ) -> impl Future<Output = Result<Registration, LinkError>> + Send;
    /// Waits up to `wait` for a job.
    fn lease(
        &self,
        worker: &str,
        wait: Duration,
    ) -> impl Future<Output = Result<LeaseOutcome, LinkError>> + Send;
    /// Renews `worker`'s lease (a lease is bound to the worker that took it).
    fn heartbeat(
        &self,
        lease_id: &str,
        worker: &str,
        progress: Option<&JobProgress>,
    ) -> impl Future<Output = Result<HeartbeatAnswer, LinkError>> + Send;
    fn complete(
        &self,
        lease_id: &str,
        worker: &str,
        result: &JobResult,
    ) -> impl Future<Output = Result<bool, LinkError>> + Send;
    fn fail(
        &self,
        lease_id: &str,
        worker: &str,
        error: &str,
        kind: FailureKind,
    ) -> impl Future<Output = Result<bool, LinkError>> + Send;
    /// Whether the coordinator writes to this process's log (it runs in this process): it
    /// already logs each lease and failed job, so the worker keeps its own lines for those at
    /// the debug level rather than repeat them.
    fn shares_the_log(&self) -> bool {
        false
    }
}
