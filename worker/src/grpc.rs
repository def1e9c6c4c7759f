//! The coordinator link over gRPC: every request carries the bearer token; messages are small
//! (specs and progress as JSON, never tensors) and bounded. The connected client is also what
//! operator commands use.

use std::time::Duration;

use slsg::job::{FailureKind, JobProgress, JobResult, JobSpec};
use slsg::proto::cluster_client::ClusterClient;
use slsg::proto::{
    AUTHORIZATION, CompleteRequest, ERROR_LIMIT, FailRequest, HeartbeatRequest, LeaseRequest,
    MESSAGE_LIMIT, PROTOCOL_VERSION, RegisterRequest, bearer,
};
use slsg::ranges::truncated;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::access::{Access, certificate_problem};

use crate::link::{
    CoordinatorLink, HeartbeatAnswer, LeaseOutcome, LeasedJob, LinkError, Registration,
};

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert(AUTHORIZATION, token.clone());
        }
        Ok(request)
    }
}

/// A client of the coordinator's gRPC service.
pub type Client = ClusterClient<InterceptedService<Channel, Bearer>>;

#[derive(Clone)]
pub struct GrpcLink {
    client: Client,
}

/// A coordinator's refusal or failure as a link error; a certificate the CA given did not sign
/// is a refusal (asking again cannot help).
pub fn status(e: tonic::Status) -> LinkError {
    if let Some(problem) = certificate_problem(&e) {
        return LinkError::Refused(format!("TLS: {problem}"));
    }
    match e.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            LinkError::Token(e.message().to_string())
        }
        // The coordinator speaks another protocol: asking again cannot help.
        tonic::Code::FailedPrecondition => LinkError::Refused(e.message().to_string()),
        code => LinkError::Failed(format!("{code}: {}", e.message())),
    }
}

/// How long a worker's request may take (a lease's long poll waits at most 30 s of it).
pub const WORKER_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of the coordinator at `url` (`http://host:port` or `https://host:port`) under
/// `access`, whose requests fail after `request_timeout`; the connection is made on first use
/// and remade after failures.
pub fn connect(url: &str, access: &Access, request_timeout: Duration) -> Result<Client, LinkError> {
    let endpoint = access.endpoint(url)?;
    // Pings keep a quiet connection (a worker between jobs) from looking idle to the
    // coordinator, which closes connections silent for two minutes.
    let channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(request_timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy();
    let token = access
        .token
        .as_deref()
        .map(bearer)
        .transpose()
        .map_err(|e| LinkError::Token(e.to_string()))?;
    Ok(ClusterClient::with_interceptor(channel, Bearer(token))
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT))
}

impl GrpcLink {
    /// A worker's link to the coordinator at `url`.
    pub fn new(url: &str, access: &Access) -> Result<GrpcLink, LinkError> {
        Ok(GrpcLink {
            client: connect(url, access, WORKER_REQUEST_TIMEOUT)?,
        })
    }
}

impl CoordinatorLink for GrpcLink {
    async fn register(&self, worker: &str, device: &str) -> Result<Registration, LinkError> {
        let request = RegisterRequest {
            worker: worker.into(),
            device: device.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL_VERSION,
        };
        let reply = self
            .client
            .clone()
            .register(request)
            .await
            .map_err(status)?
            .into_inner();
        Ok(Registration {
            run: reply.run,
            heartbeat_interval: Duration::from_millis(reply.heartbeat_interval_ms.max(100) as u64),
        })
    }

    async fn lease(&self, worker: &str, wait: Duration) -> Result<LeaseOutcome, LinkError> {
        let request = LeaseRequest {
            worker: worker.into(),
            wait_ms: wait.as_millis().min(u32::MAX as u128) as u32,
        };
        let reply = self
            .client
            .clone()
            .lease_job(request)
            .await
            .map_err(status)?
            .into_inner();
        match reply.lease {
            Some(lease) => {
                let spec: JobSpec = serde_json::from_str(&lease.spec_json)
                    .map_err(|e| LinkError::Failed(format!("job specification: {e}")))?;
                Ok(LeaseOutcome::Job(Box::new(LeasedJob {
                    lease_id: lease.lease_id,
                    attempt: lease.attempt,
                    spec,
                })))
            }
            None if reply.stopping => Ok(LeaseOutcome::Stopping),
            None => Ok(LeaseOutcome::Wait),
        }
    }

    async fn heartbeat(
        &self,
        lease_id: &str,
        worker: &str,
        progress: Option<&JobProgress>,
    ) -> Result<HeartbeatAnswer, LinkError> {
        let progress_json = progress
            .map(|p| serde_json::to_string(p).expect("progress serialises"))
            .unwrap_or_default();
        let reply = self
            .client
            .clone()
            .heartbeat(HeartbeatRequest {
                lease_id: lease_id.into(),
                worker: worker.into(),
                progress_json,
            })
            .await
            .map_err(status)?
            .into_inner();
        let stop_early = match reply.stopped_early_json.as_str() {
            "" => None,
            text => Some(serde_json::from_str(text).map_err(|e| {
                LinkError::Failed(format!("the early-stopping decision is not valid: {e}"))
            })?),
        };
        Ok(HeartbeatAnswer {
            accepted: reply.accepted,
            cancel: reply.cancel,
            judged_step: reply.judged_step,
            stop_early,
        })
    }

    async fn complete(
        &self,
        lease_id: &str,
        worker: &str,
        result: &JobResult,
    ) -> Result<bool, LinkError> {
        let result_json = serde_json::to_string(result).expect("results serialise");
        let reply = self
            .client
            .clone()
            .complete(CompleteRequest {
                lease_id: lease_id.into(),
                worker: worker.into(),
                result_json,
            })
            .await
            .map_err(status)?
            .into_inner();
        Ok(reply.accepted)
    }

    async fn fail(
        &self,
        lease_id: &str,
        worker: &str,
        error: &str,
        kind: FailureKind,
    ) -> Result<bool, LinkError> {
        let kind = slsg::proto::FailureKind::from(kind) as i32;
        let request = FailRequest {
            lease_id: lease_id.into(),
            worker: worker.into(),
            error: truncated(error, ERROR_LIMIT),
            kind,
        };
        Ok(self
            .client
            .clone()
            .fail(request)
            .await
            .map_err(status)?
            .into_inner()
            .accepted)
    }
}
