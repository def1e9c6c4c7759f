//! `slsg worker`: worker actors, one per `--device`, leasing from a remote coordinator.
//! Owns the process's lifetime (registration retry, SIGTERM); the worker is `slsg_worker`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef};
use slsg::backend::Device;
use slsg_coordinator::probes::WorkerProbes;
use slsg_worker::{
    CoordinatorLink, DEFAULT_STALL_SECONDS, GrpcLink, LinkError, WorkerActor, WorkerArgs,
    WorkerMessage, WorkerMetrics, pipeline_runner,
};

use super::args::{AccessArgs, CacheArgs, GpuArgs};
use super::process::{start_http, stop_signal};
use slsg_coordinator::http::probe_routes;

#[derive(clap::Args)]
pub struct Args {
    /// The coordinator, e.g. `http://10.0.0.5:50051` (the token comes from `SLSG_TOKEN`).
    #[arg(long)]
    coordinator: String,
    /// Device slots: one worker per `--device` (`cpu`, `wgpu`, `wgpu:N`, `cuda:N`; at most
    /// 256).
    #[arg(long = "device", default_value = "cpu")]
    devices: Vec<Device>,
    /// Worker name prefix (default: host name and process id).
    #[arg(long)]
    name: Option<String>,
    /// Keep trying to reach the coordinator for this long at start (1 to 86 400 seconds).
    #[arg(long, allow_negative_numbers = true, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    connect_seconds: u64,
    /// Address to serve `/healthz`, `/readyz` and `/metrics` (Prometheus) on; none by default.
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    /// A job whose step stands still this many seconds is stalled: its lease goes back and
    /// `/healthz` fails until the job's thread ends (10 to 86 400).
    #[arg(long, allow_negative_numbers = true, default_value_t = DEFAULT_STALL_SECONDS, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    stall_seconds: u64,
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    gpu: GpuArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let access = args.access.access()?;
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    if args.devices.len() > slsg::job::MAX_WORKERS {
        anyhow::bail!(
            "--device: at most {} slots per worker process, got {}",
            slsg::job::MAX_WORKERS,
            args.devices.len()
        );
    }
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        anyhow::bail!("--name: 1 to 100 bytes without control characters");
    }
    args.gpu.prepare(&args.devices, &args.cache)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let metrics = WorkerMetrics::default();
        let health = match args.http_listen {
            Some(address) => Some(
                start_http(
                    address,
                    probe_routes(Arc::new(WorkerProbes {
                        metrics: metrics.clone(),
                    })),
                    "health and metrics",
                )
                .await?,
            ),
            None => None,
        };
        let link = Arc::new(GrpcLink::new(&args.coordinator, &access)?);
        wait_for_coordinator(
            &link,
            &args.coordinator,
            &name,
            Duration::from_secs(args.connect_seconds),
        )
        .await?;
        let mut workers: Vec<(ActorRef<WorkerMessage>, tokio::task::JoinHandle<()>)> = Vec::new();
        for (i, device) in args.devices.iter().enumerate() {
            let worker_args = WorkerArgs {
                link: link.clone(),
                name: format!("{name}-{i}"),
                device: *device,
                runtime: tokio::runtime::Handle::current(),
                runner: pipeline_runner(true, args.cache.datasets()),
                metrics: metrics.clone(),
                stall: Duration::from_secs(args.stall_seconds),
            };
            let spawned = Actor::spawn(None, WorkerActor::<GrpcLink>::default(), worker_args)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            workers.push(spawned);
        }
        let refs: Vec<ActorRef<WorkerMessage>> = workers.iter().map(|(r, _)| r.clone()).collect();
        tokio::spawn(async move {
            stop_signal().await;
            tracing::warn!(
                "stopping: the running jobs write a checkpoint and give their leases back"
            );
            for worker in refs {
                let _ = worker.send_message(WorkerMessage::Shutdown);
            }
        });
        for (_, task) in workers {
            let _ = task.await;
        }
        if let Some(health) = health {
            health.abort();
        }
        Ok::<_, anyhow::Error>(())
    })
}

/// Registers until the coordinator at `url` answers, saying every 10 s that it is still
/// trying; a refused token or connection fails at once.
async fn wait_for_coordinator(
    link: &GrpcLink,
    url: &str,
    name: &str,
    patience: Duration,
) -> anyhow::Result<()> {
    const REPORT_EVERY: Duration = Duration::from_secs(10);
    let start = Instant::now();
    let mut reported = start;
    loop {
        match link.register(name, "probe").await {
            Ok(_) => return Ok(()),
            Err(e @ (LinkError::Refused(_) | LinkError::Token(_))) => anyhow::bail!("{url}: {e}"),
            Err(e) if start.elapsed() >= patience => anyhow::bail!(
                "could not reach the coordinator at {url} within {} s: {e}",
                patience.as_secs()
            ),
            Err(e) => {
                if reported.elapsed() >= REPORT_EVERY {
                    tracing::warn!(
                        "still waiting for the coordinator at {url} ({} s of {} s): {e}",
                        start.elapsed().as_secs(),
                        patience.as_secs()
                    );
                    reported = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(500)).await
            }
        }
    }
}
