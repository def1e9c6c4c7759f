//! The gRPC service for remote workers and operators: thin handlers that check the bearer token
//! (in an interceptor), decode the payloads and forward to the coordinator actor or its intake.
//! Message sizes are bounded; artifacts never travel here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use slsg::job::{ClusterConfig, JobProgress, RunStatus};
use slsg::proto::cluster_server::{Cluster, ClusterServer};
use slsg::proto::{
    AUTHORIZATION, CONFIG_LIMIT, CompleteReply, CompleteRequest, ERROR_LIMIT, FailReply,
    FailRequest, HeartbeatReply, HeartbeatRequest, Lease, LeaseReply, LeaseRequest, MESSAGE_LIMIT,
    NAME_LIMIT, PROGRESS_LIMIT, PROTOCOL_VERSION, RegisterReply, RegisterRequest, RetrainReply,
    RetrainRequest, STATUS_PAGE_LIMIT, StatusReply, StatusRequest, SubmitReply, SubmitRequest,
    TokenError, bearer, worker_protocol,
};
use slsg::ranges::truncated;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Response, Status};

use crate::actor::{CoordinatorMessage, LeaseAnswer, lease_waiting};
use crate::error::CoordinatorError;
use crate::guard::Limits;
use crate::scheduler::Intake;
use crate::tls::Security;

/// Longest a lease request may wait for a job.
pub const MAX_LEASE_WAIT: Duration = Duration::from_secs(30);

/// The room a status page has in a reply: the message limit, less the reply's framing.
const STATUS_PAGE_BYTES: usize = MESSAGE_LIMIT - 1024;

/// `status` as JSON in at most `budget` bytes: the page ends before the first job that would
/// not fit (a client asks for the next page from the jobs it got), with at least one job, and
/// a leaderboard too large for the page keeps each category's best entries.
fn page_json(mut status: RunStatus, budget: usize) -> String {
    fn json_len<T: serde::Serialize>(value: &T) -> usize {
        serde_json::to_vec(value).map_or(0, |bytes| bytes.len())
    }
    let jobs = std::mem::take(&mut status.jobs);
    let mut used = json_len(&status);
    while used > budget && status.leaderboard.values().any(|entries| entries.len() > 1) {
        for entries in status.leaderboard.values_mut() {
            entries.truncate(entries.len().div_ceil(2));
        }
        used = json_len(&status);
    }
    let mut kept = 0;
    for job in &jobs {
        // The job and the comma before it.
        let size = json_len(job) + 1;
        if kept > 0 && used + size > budget {
            break;
        }
        used += size;
        kept += 1;
    }
    status.jobs = jobs;
    status.jobs.truncate(kept);
    serde_json::to_string(&status).expect("statuses serialise")
}

pub struct ClusterService {
    actor: ActorRef<CoordinatorMessage>,
    intake: Arc<Intake>,
    /// Named in registration replies: the coordinator's own run.
    run: String,
    heartbeat_interval: Duration,
}

impl ClusterService {
    pub fn new(
        actor: ActorRef<CoordinatorMessage>,
        intake: Arc<Intake>,
        run: String,
        heartbeat_interval: Duration,
    ) -> Self {
        Self {
            actor,
            intake,
            run,
            heartbeat_interval,
        }
    }

    async fn ask<T: Send + 'static>(
        &self,
        message: impl FnOnce(RpcReplyPort<T>) -> CoordinatorMessage,
    ) -> Result<T, Status> {
        ractor::call!(self.actor, message)
            .map_err(|e| Status::unavailable(format!("the coordinator is stopping: {e}")))
    }
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, Status> {
    serde_json::from_str(text).map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}

/// A worker's name (or device) as the coordinator keeps it: at most `NAME_LIMIT` bytes of
/// printable characters.
fn name(text: String, what: &str) -> Result<String, Status> {
    if text.is_empty() || text.len() > NAME_LIMIT || text.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "the {what} name must be 1 to {NAME_LIMIT} bytes without control characters"
        )));
    }
    Ok(text)
}

/// A progress report small enough to keep (its stage name and loss names short, few losses).
fn bounded(progress: &JobProgress) -> bool {
    progress.stage.len() <= NAME_LIMIT
        && progress.losses.len() <= 16
        && progress.losses.keys().all(|k| k.len() <= NAME_LIMIT)
}

/// A submitted cluster config, bounded in size.
fn cluster_config(text: &str, origin: &str) -> Result<ClusterConfig, Status> {
    if text.len() > CONFIG_LIMIT {
        return Err(Status::invalid_argument(format!(
            "{origin}: the config is {} bytes; at most {CONFIG_LIMIT}",
            text.len()
        )));
    }
    toml::from_str(text).map_err(|e| {
        Status::invalid_argument(format!(
            "{origin}: {}",
            slsg::config::toml_error(&e, Some(text))
        ))
    })
}

/// What went wrong in the coordinator, as the caller should see it: its own input is named as
/// invalid, anything else is the coordinator's failure.
fn refusal(e: CoordinatorError) -> Status {
    match e {
        CoordinatorError::Plan(_)
        | CoordinatorError::Retrain(_)
        | CoordinatorError::OtherStore { .. }
        | CoordinatorError::DatasetNotAllowed { .. }
        | CoordinatorError::RunInProgress { .. }
        | CoordinatorError::UnknownRun { .. }
        | CoordinatorError::Name(_) => Status::invalid_argument(e.to_string()),
        CoordinatorError::TooManyRuns { .. } => Status::resource_exhausted(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterReply>, Status> {
        let RegisterRequest {
            worker,
            device,
            version,
            protocol,
        } = request.into_inner();
        let (worker, device) = (name(worker, "worker")?, name(device, "device")?);
        let protocol = worker_protocol(protocol);
        if protocol != PROTOCOL_VERSION {
            let version: String = version.chars().take(NAME_LIMIT).collect();
            return Err(Status::failed_precondition(format!(
                "worker {worker} (slsg {version:?}) speaks protocol {protocol}, this coordinator (slsg {}) protocol {PROTOCOL_VERSION}: run workers of a release that speaks {PROTOCOL_VERSION}",
                env!("CARGO_PKG_VERSION")
            )));
        }
        self.ask(|reply| CoordinatorMessage::Register {
            worker,
            device,
            reply,
        })
        .await?;
        Ok(Response::new(RegisterReply {
            run: self.run.clone(),
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u32,
        }))
    }

    async fn lease_job(
        &self,
        request: Request<LeaseRequest>,
    ) -> Result<Response<LeaseReply>, Status> {
        let LeaseRequest { worker, wait_ms } = request.into_inner();
        let worker = name(worker, "worker")?;
        let wait = Duration::from_millis(wait_ms as u64).min(MAX_LEASE_WAIT);
        let LeaseAnswer { granted, stopping } = lease_waiting(&self.actor, &worker, wait)
            .await
            .map_err(|e| Status::unavailable(format!("the coordinator is stopping: {e}")))?;
        let lease = granted.map(|g| Lease {
            lease_id: g.lease_id,
            attempt: g.attempt,
            deadline_unix_ms: g.deadline_ms,
            spec_json: serde_json::to_string(&g.spec).expect("specifications serialise"),
        });
        Ok(Response::new(LeaseReply { lease, stopping }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        let HeartbeatRequest {
            lease_id,
            worker,
            progress_json,
        } = request.into_inner();
        // An oversized report is dropped, not kept: the lease is renewed all the same.
        let progress = if progress_json.is_empty() || progress_json.len() > PROGRESS_LIMIT {
            None
        } else {
            Some(json::<JobProgress>(&progress_json, "progress")?).filter(bounded)
        };
        let worker = name(worker, "worker")?;
        let outcome = self
            .ask(|reply| CoordinatorMessage::Heartbeat {
                lease_id,
                worker,
                progress,
                reply,
            })
            .await?;
        Ok(Response::new(HeartbeatReply {
            accepted: outcome.accepted,
            cancel: outcome.cancel,
            deadline_unix_ms: outcome.deadline_ms,
            judged_step: outcome.judged_step,
            stopped_early_json: outcome
                .stop_early
                .map(|s| serde_json::to_string(&s).expect("decisions serialise"))
                .unwrap_or_default(),
        }))
    }

    async fn complete(
        &self,
        request: Request<CompleteRequest>,
    ) -> Result<Response<CompleteReply>, Status> {
        // The reported result is not kept: the coordinator reads the job's own `result.json`
        // from the store once its artifacts verify there.
        let CompleteRequest {
            lease_id, worker, ..
        } = request.into_inner();
        let worker = name(worker, "worker")?;
        let accepted = self
            .ask(|reply| CoordinatorMessage::Complete {
                lease_id,
                worker,
                reply,
            })
            .await?
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(CompleteReply { accepted }))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<FailReply>, Status> {
        let FailRequest {
            lease_id,
            error,
            kind,
            worker,
        } = request.into_inner();
        let error = truncated(&error, ERROR_LIMIT);
        let worker = name(worker, "worker")?;
        let kind = slsg::proto::FailureKind::try_from(kind)
            .map_err(|_| Status::invalid_argument(format!("unknown failure kind {kind}")))?
            .into();
        let accepted = self
            .ask(|reply| CoordinatorMessage::Fail {
                lease_id,
                worker,
                error,
                kind,
                reply,
            })
            .await?;
        Ok(Response::new(FailReply { accepted }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let StatusRequest { run, offset, limit } = request.into_inner();
        let status_json = if run.is_empty() {
            let overview = self
                .ask(|reply| CoordinatorMessage::Overview { reply })
                .await?;
            serde_json::to_string(&overview)
        } else {
            let limit = (limit as usize).clamp(1, STATUS_PAGE_LIMIT);
            let offset = offset as usize;
            let status = self
                .ask(|reply| CoordinatorMessage::RunStatus {
                    run,
                    offset,
                    limit,
                    reply,
                })
                .await?
                .map_err(refusal)?;
            Ok(page_json(status, STATUS_PAGE_BYTES))
        }
        .expect("statuses serialise");
        Ok(Response::new(StatusReply { status_json }))
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        let SubmitRequest {
            config_toml,
            origin,
        } = request.into_inner();
        let cluster = cluster_config(&config_toml, &origin)?;
        let submitted = self.intake.submit(cluster, origin).await.map_err(refusal)?;
        Ok(Response::new(SubmitReply {
            run: submitted.run,
            jobs: submitted.jobs as u32,
            finished_before: submitted.finished_before as u32,
            already_open: submitted.already_open,
        }))
    }

    async fn retrain(
        &self,
        request: Request<RetrainRequest>,
    ) -> Result<Response<RetrainReply>, Status> {
        let RetrainRequest {
            config_toml,
            origin,
        } = request.into_inner();
        let cluster = cluster_config(&config_toml, &origin)?;
        let mut outcome = self.intake.check(cluster, origin).await.map_err(refusal)?;
        outcome.report.plan = None;
        let (run, jobs) = outcome
            .submitted
            .map_or((String::new(), 0), |s| (s.run, s.jobs as u32));
        Ok(Response::new(RetrainReply {
            report_json: serde_json::to_string(&outcome.report).expect("reports serialise"),
            run,
            jobs,
        }))
    }
}

/// Refuses requests without `authorization: Bearer <token>` (no check when there is no token).
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<MetadataValue<Ascii>>,
}

impl TokenCheck {
    pub fn new(token: Option<&str>) -> Result<TokenCheck, TokenError> {
        Ok(TokenCheck {
            expected: token.map(bearer).transpose()?,
        })
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        match request.metadata().get(AUTHORIZATION) {
            Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(request),
            _ => Err(Status::unauthenticated("missing or wrong bearer token")),
        }
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves `service` on `address` under `limits` until `shutdown` completes.
pub async fn serve(
    service: ClusterService,
    address: SocketAddr,
    security: Security,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), CoordinatorError> {
    security.check(address)?;
    let token = security.token.as_deref();
    let server = ClusterServer::new(service)
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    let intercepted =
        tonic::service::interceptor::InterceptedService::new(server, TokenCheck::new(token)?);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| CoordinatorError::Listen { address, source })?;
    // The standard health service answers without the token: probes carry none.
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ClusterServer<ClusterService>>().await;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &security.tls {
        builder = builder.tls_config(tls.config())?;
    }
    builder
        .timeout(REQUEST_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS)
        .concurrency_limit_per_connection(MAX_STREAMS as usize)
        .http2_max_header_list_size(HEADER_LIMIT)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(intercepted)
        .add_service(health_service)
        .serve_with_incoming_shutdown(crate::guard::incoming(listener, limits), shutdown)
        .await?;
    Ok(())
}

/// Longest a request may take (a lease request waits at most [`MAX_LEASE_WAIT`]; planning a
/// submitted config or a retraining check can take minutes).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// Requests one connection may have open at once.
pub const MAX_STREAMS: u32 = 64;
/// Largest header block of a request.
pub const HEADER_LIMIT: u32 = 16 * 1024;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use slsg::job::{JobKind, JobState, JobStatus, LeaderboardEntry};

    use super::*;

    fn failed(id: usize, error_bytes: usize) -> JobStatus {
        JobStatus {
            id: format!("job{id}"),
            kind: JobKind::Segnet,
            category: "c".into(),
            point: BTreeMap::new(),
            state: JobState::Failed {
                error: "e".repeat(error_bytes),
            },
            attempts: 1,
            progress: None,
            last_error: None,
        }
    }

    #[test]
    fn a_status_page_fits_its_reply_whatever_its_jobs_hold() {
        let status = |jobs: Vec<JobStatus>| RunStatus {
            run: "r".into(),
            finished: false,
            total_jobs: jobs.len(),
            jobs,
            offset: 0,
            leaderboard: BTreeMap::new(),
            budget: None,
        };
        let small = page_json(status((0..10).map(|i| failed(i, 10)).collect()), 100_000);
        let page: RunStatus = serde_json::from_str(&small).unwrap();
        assert_eq!(page.jobs.len(), 10, "a page that fits is whole");

        let large = page_json(status((0..10).map(|i| failed(i, 1_000)).collect()), 5_000);
        assert!(large.len() <= 5_000, "{}", large.len());
        let page: RunStatus = serde_json::from_str(&large).unwrap();
        assert!(
            (1..10).contains(&page.jobs.len()),
            "{} jobs",
            page.jobs.len()
        );
        assert_eq!(page.jobs[0].id, "job0", "the page keeps its order");
        assert_eq!(page.total_jobs, 10, "the client asks for the rest");

        let one = page_json(status(vec![failed(0, 10_000), failed(1, 10)]), 5_000);
        let page: RunStatus = serde_json::from_str(&one).unwrap();
        assert_eq!(page.jobs.len(), 1, "a page holds at least one job");

        let entry = |i: usize| LeaderboardEntry {
            job: format!("job{i}"),
            point: BTreeMap::from([("segnet.lr".to_string(), "p".repeat(100))]),
            validation_score: Some(1.0 / (i + 1) as f64),
            test_image_auroc: None,
            steps: 0,
            stopped_early: None,
            image_score: None,
            test_pixel_auroc: None,
            test_pro_auc: None,
        };
        let mut ranked = status(vec![failed(0, 10)]);
        ranked
            .leaderboard
            .insert("c".into(), (0..100).map(entry).collect());
        let trimmed = page_json(ranked, 5_000);
        assert!(trimmed.len() <= 5_000, "{}", trimmed.len());
        let page: RunStatus = serde_json::from_str(&trimmed).unwrap();
        let kept = &page.leaderboard["c"];
        assert!(!kept.is_empty() && kept.len() < 100, "{}", kept.len());
        assert_eq!(kept[0].job, "job0", "the best entries stay");
        assert_eq!(page.jobs.len(), 1);
    }
}
