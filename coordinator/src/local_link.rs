//! The in-process coordinator link of embedded runs: worker actors call the coordinator actor
//! directly, with the same long poll as over gRPC.

use std::time::Duration;

use ractor::{ActorRef, call};
use slsg::job::{FailureKind, JobProgress, JobResult};
use slsg_worker::{
    CoordinatorLink, HeartbeatAnswer, LeaseOutcome, LeasedJob, LinkError, Registration,
};

use crate::actor::{CoordinatorMessage, lease_waiting};

pub struct LocalLink {
    pub coordinator: ActorRef<CoordinatorMessage>,
    pub run: String,
    pub heartbeat_interval: Duration,
}

fn gone<E: std::fmt::Display>(e: E) -> LinkError {
    LinkError::Failed(format!("the coordinator actor stopped: {e}"))
}

impl CoordinatorLink for LocalLink {
    fn shares_the_log(&self) -> bool {
        true
    }

    async fn register(&self, worker: &str, device: &str) -> Result<Registration, LinkError> {
        let (worker, device) = (worker.to_string(), device.to_string());
        call!(self.coordinator, |reply| CoordinatorMessage::Register {
            worker,
            device,
            reply
        })
        .map_err(gone)?;
        Ok(Registration {
            run: self.run.clone(),
            heartbeat_interval: self.heartbeat_interval,
        })
    }

    async fn lease(&self, worker: &str, wait: Duration) -> Result<LeaseOutcome, LinkError> {
        let answer = lease_waiting(&self.coordinator, worker, wait)
            .await
            .map_err(gone)?;
        Ok(match answer.granted {
            Some(granted) => LeaseOutcome::Job(Box::new(LeasedJob {
                lease_id: granted.lease_id,
                attempt: granted.attempt,
                spec: granted.spec,
            })),
            None if answer.stopping => LeaseOutcome::Stopping,
            None => LeaseOutcome::Wait,
        })
    }

    async fn heartbeat(
        &self,
        lease_id: &str,
        worker: &str,
        progress: Option<&JobProgress>,
    ) -> Result<HeartbeatAnswer, LinkError> {
        let (lease_id, worker, progress) =
            (lease_id.to_string(), worker.to_string(), progress.cloned());
        let outcome = call!(self.coordinator, |reply| CoordinatorMessage::Heartbeat {
            lease_id,
            worker,
            progress,
            reply
        })
        .map_err(gone)?;
        Ok(HeartbeatAnswer {
            accepted: outcome.accepted,
            cancel: outcome.cancel,
            judged_step: outcome.judged_step,
            stop_early: outcome.stop_early,
        })
    }

    async fn complete(
        &self,
        lease_id: &str,
        worker: &str,
        _reported: &JobResult,
    ) -> Result<bool, LinkError> {
        let (lease_id, worker) = (lease_id.to_string(), worker.to_string());
        call!(self.coordinator, |reply| CoordinatorMessage::Complete {
            lease_id,
            worker,
            reply
        })
        .map_err(gone)?
        .map_err(|e| LinkError::Failed(e.to_string()))
    }

    async fn fail(
        &self,
        lease_id: &str,
        worker: &str,
        error: &str,
        kind: FailureKind,
    ) -> Result<bool, LinkError> {
        let (lease_id, worker) = (lease_id.to_string(), worker.to_string());
        let error = slsg::ranges::truncated(error, slsg::proto::ERROR_LIMIT);
        call!(self.coordinator, |reply| CoordinatorMessage::Fail {
            lease_id,
            worker,
            error,
            kind,
            reply
        })
        .map_err(gone)
    }
}
