//! The operator's side of the gRPC service: a coordinator's runs and their jobs (page by page),
//! submitting a cluster config, and asking for a retraining check now.

use std::time::Duration;

use slsg::job::{ClusterConfig, RunStatus, ServiceStatus};
use slsg::proto::{RetrainRequest, STATUS_PAGE_LIMIT, StatusRequest, SubmitReply, SubmitRequest};
use slsg::retrain::CheckReport;
use slsg_worker::grpc::{Client, connect, status};
use slsg_worker::{Access, LinkError};

/// Planning a large dataset or checking drift on the CPU can take a while.
const OPERATOR_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

pub struct Operator {
    client: Client,
}

/// What a retraining check asked of a coordinator found.
pub struct Checked {
    pub report: CheckReport,
    /// The retraining run submitted and its job count.
    pub run: Option<(String, u32)>,
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, LinkError> {
    serde_json::from_str(text).map_err(|e| LinkError::Failed(format!("{what}: {e}")))
}

fn config_text(cluster: &ClusterConfig) -> Result<String, LinkError> {
    toml::to_string(cluster).map_err(|e| LinkError::Failed(format!("the config: {e}")))
}

impl Operator {
    pub fn connect(url: &str, access: &Access) -> Result<Operator, LinkError> {
        Ok(Operator {
            client: connect(url, access, OPERATOR_REQUEST_TIMEOUT)?,
        })
    }

    /// Every run and the retraining schedule.
    pub async fn overview(&self) -> Result<ServiceStatus, LinkError> {
        let reply = self
            .client
            .clone()
            .status(StatusRequest::default())
            .await
            .map_err(status)?
            .into_inner();
        decode(&reply.status_json, "status")
    }

    /// One run's jobs (every page) and leaderboards.
    pub async fn run_status(&self, run: &str) -> Result<RunStatus, LinkError> {
        let mut all: Option<RunStatus> = None;
        loop {
            let offset = all.as_ref().map_or(0, |s| s.jobs.len());
            let reply = self
                .client
                .clone()
                .status(StatusRequest {
                    run: run.to_string(),
                    offset: offset as u32,
                    limit: STATUS_PAGE_LIMIT as u32,
                })
                .await
                .map_err(status)?
                .into_inner();
            let page: RunStatus = decode(&reply.status_json, "status")?;
            let done = page.jobs.is_empty() || offset + page.jobs.len() >= page.total_jobs;
            match &mut all {
                None => all = Some(page),
                Some(all) => {
                    all.jobs.extend(page.jobs);
                    all.finished = page.finished;
                    all.leaderboard = page.leaderboard;
                }
            }
            if done {
                return Ok(all.expect("set above"));
            }
        }
    }

    pub async fn submit(
        &self,
        cluster: &ClusterConfig,
        origin: &str,
    ) -> Result<SubmitReply, LinkError> {
        Ok(self
            .client
            .clone()
            .submit(SubmitRequest {
                config_toml: config_text(cluster)?,
                origin: origin.to_string(),
            })
            .await
            .map_err(status)?
            .into_inner())
    }

    pub async fn retrain(
        &self,
        cluster: &ClusterConfig,
        origin: &str,
    ) -> Result<Checked, LinkError> {
        let reply = self
            .client
            .clone()
            .retrain(RetrainRequest {
                config_toml: config_text(cluster)?,
                origin: origin.to_string(),
            })
            .await
            .map_err(status)?
            .into_inner();
        Ok(Checked {
            report: decode(&reply.report_json, "retraining report")?,
            run: (!reply.run.is_empty()).then_some((reply.run, reply.jobs)),
        })
    }
}
