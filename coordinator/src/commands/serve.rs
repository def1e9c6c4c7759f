//! `slsg coordinator`: the coordinator behind its gRPC service. By default a long-lived service:
//! it opens the config's run, recovers every unfinished run of its store, accepts runs submitted
//! later and runs the config's retraining schedule, until stopped. With `--once` it ends when the
//! config's run has finished. Owns the process's lifetime (token, signals, linger).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ractor::Actor;
use slsg::job::{ClusterConfig, Plan};
use slsg::registry::Registry;
use slsg::store::Store;
use slsg_coordinator::actor::{
    CoordinatorActor, CoordinatorArgs, CoordinatorMessage, DEFAULT_OPEN_RUNS, Mode,
};
use slsg_coordinator::dashboard::{self, Access};
use slsg_coordinator::fence::{CoordinatorLock, DEFAULT_LOCK_SECONDS};
use slsg_coordinator::guard::Limits;
use slsg_coordinator::http::probe_routes;
use slsg_coordinator::probes::CoordinatorProbes;
use slsg_coordinator::scheduler::Intake;
use slsg_coordinator::service::{ClusterService, serve};
use slsg_coordinator::tls::{Security, ServerTls};
use slsg_coordinator::writer::writers_finished;
use tokio::sync::watch;

use super::args::{CacheArgs, token_from_env};
use super::cluster_output::{finish, reuse_line};
use super::process::{start_http, stop_signal};
use super::streams::outln;

#[derive(clap::Args)]
pub struct Args {
    /// The cluster config (TOML): the store, the run opened at start, the retraining schedule.
    config: PathBuf,
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Address to serve `/healthz`, `/readyz` and `/metrics` (Prometheus) on; none by default.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Accept workers without a token (otherwise `SLSG_TOKEN` must be set).
    #[arg(long)]
    insecure: bool,
    /// The certificate chain (PEM) to serve gRPC over TLS with; needs `--tls-key`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Take the token over plain text on an address other machines reach (only on a network
    /// encrypted below, such as a service mesh).
    #[arg(long)]
    allow_plaintext: bool,
    /// End when the config's run has finished, instead of serving until stopped.
    #[arg(long)]
    once: bool,
    /// With `--once`: keep answering for this long after the run finishes, so workers learn it.
    #[arg(long, default_value = "5s", allow_hyphen_values = true, value_parser = seconds)]
    linger: Duration,
    /// Connections served at once; more are closed as they arrive.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_connections: u32,
    /// A new connection must send its first bytes within this many seconds.
    #[arg(long, allow_negative_numbers = true, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    handshake_seconds: u64,
    /// A connection silent this many seconds is closed (a lease request waits up to 30).
    #[arg(long, allow_negative_numbers = true, default_value_t = 120, value_parser = clap::value_parser!(u64).range(35..=86_400))]
    idle_seconds: u64,
    /// Runs held open at once; submissions past it are refused until one finishes.
    #[arg(long, allow_negative_numbers = true, default_value_t = DEFAULT_OPEN_RUNS, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_open_runs: u32,
    /// A folder submitted configs may read datasets from on this machine (paths and
    /// `file://` URLs; every link in a dataset must resolve below one too); repeat for more.
    /// Without any, every folder may be read.
    #[arg(long, value_name = "DIR")]
    dataset_root: Vec<PathBuf>,
    /// Seconds the store's coordinator lock lives without renewal: another coordinator on the
    /// same store waits, and takes over once this one has been silent that long; this one
    /// stops if it cannot renew the lock for three quarters of it (a store outage).
    #[arg(long, allow_negative_numbers = true, default_value_t = DEFAULT_LOCK_SECONDS, value_parser = clap::value_parser!(u64).range(4..=3600))]
    lock_seconds: u64,
    /// Where retraining checks copy datasets at an object-store URL.
    #[command(flatten)]
    cache: CacheArgs,
}

/// How long a stopping coordinator waits for its last journal writes before it lets the next
/// coordinator start at once (past it, the next one waits for the lock to go silent).
const WRITERS_FINISH: Duration = Duration::from_secs(60);

/// The exit status of a coordinator that lost the store lock (to a takeover or an outage).
const LOST_LOCK_STATUS: i32 = 3;

/// This coordinator as the lock names it to others.
fn holder_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unnamed host".into());
    format!("the coordinator on {host} (process {})", std::process::id())
}

fn seconds(text: &str) -> Result<Duration, String> {
    let value = text.strip_suffix('s').unwrap_or(text);
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.0..=3600.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{text}` is not a duration from 0s to 3600s"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let token = token_from_env();
    if token.is_none() && !args.insecure {
        anyhow::bail!(
            "set SLSG_TOKEN to the workers' bearer token (or pass --insecure to accept any worker)"
        );
    }
    let dataset_roots = args
        .dataset_root
        .iter()
        .map(|root| {
            std::fs::canonicalize(root)
                .ok()
                .filter(|root| root.is_dir())
                .with_context(|| format!("--dataset-root {}: not a folder", root.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let security = Security {
        token,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls::read(cert, key)?),
            _ => None,
        },
        allow_plaintext: args.allow_plaintext,
    };
    // Before any work: a refused address must not wait for the plan.
    security.check(args.listen)?;
    let cluster = ClusterConfig::load(&args.config)?;
    let origin = args.config.display().to_string();
    let schedule = cluster.validate(&origin)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let plan = Plan::expand(&cluster, &origin, threads)?;
    let store = Store::open(&plan.store)?;
    let store_url = plan.store.clone();
    let mode = if args.once { Mode::Once } else { Mode::Service };
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async move {
        let probes = Arc::new(CoordinatorProbes::new(store.clone()));
        let health = match args.http_listen {
            Some(address) => {
                let access = match &security.token {
                    None => Access::Open,
                    Some(token) => Access::Token {
                        token: token.clone(),
                        plaintext: args.allow_plaintext,
                    },
                };
                let app = probe_routes(probes.clone()).merge(dashboard::routes(
                    probes.clone(),
                    Registry::new(store.clone()),
                    access,
                ));
                Some(start_http(address, app, "health, metrics and the dashboard").await?)
            }
            None => None,
        };
        let lock = CoordinatorLock::new(
            store.clone(),
            holder_name(),
            Duration::from_secs(args.lock_seconds),
        );
        let held = lock
            .acquire(|state| tracing::warn!("waiting for the store lock: {state}"))
            .await
            .context("taking the store's coordinator lock")?;
        tracing::info!("holding the store lock (epoch {})", held.epoch());
        let lost = held.lost();
        tokio::spawn(async move {
            let lost = lost.await;
            tracing::error!("{lost}: stopping at once, so that one coordinator writes to the store");
            std::process::exit(LOST_LOCK_STATUS);
        });
        let (finished_sender, mut finished) = watch::channel(None);
        let run = plan.run.clone();
        let heartbeat = Duration::from_secs(plan.resources.heartbeat_seconds);
        outln!("run `{run}`: {} jobs; serving workers on {}", plan.jobs.len(), args.listen);
        let (actor, task) = Actor::spawn(
            None,
            CoordinatorActor,
            CoordinatorArgs {
                store: store.clone(),
                mode,
                plans: vec![plan],
                retry_failed: false,
                finished: finished_sender,
                open_runs_limit: args.max_open_runs as usize,
            },
        )
        .await
        .context("starting the coordinator")?;
        probes.started(actor.clone());
        let status = ractor::call!(actor, |reply| CoordinatorMessage::RunStatus {
            run: run.clone(),
            offset: 0,
            limit: usize::MAX,
            reply
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Ok(status) = status {
            outln!("{}", reuse_line(&status));
        }
        let intake = Arc::new(Intake::new(
            actor.clone(),
            store,
            threads,
            args.cache.datasets(),
            dataset_roots,
        ));
        let scheduler = match (mode, schedule) {
            (Mode::Service, Some(schedule)) => {
                outln!("retraining checks: {schedule}");
                Some(tokio::spawn(intake.clone().run_schedule(cluster, origin, schedule)))
            }
            _ => None,
        };
        let service = ClusterService::new(actor.clone(), intake, run, heartbeat);
        let mut until_finished = finished.clone();
        let shutdown = async move {
            let finished = async {
                let _ = until_finished.wait_for(|s| s.is_some()).await;
                tokio::time::sleep(args.linger).await;
            };
            tokio::select! {
                _ = finished, if mode == Mode::Once => {}
                _ = stop_signal() => tracing::warn!("stopping; every unfinished run resumes from its journal when a coordinator starts again on this store"),
            }
        };
        let limits = Limits {
            max_connections: args.max_connections as usize,
            handshake: Duration::from_secs(args.handshake_seconds),
            idle: Duration::from_secs(args.idle_seconds),
        };
        serve(service, args.listen, security, limits, shutdown)
            .await
            .with_context(|| format!("serving on {}", args.listen))?;
        if let Some(scheduler) = scheduler {
            scheduler.abort();
        }
        if let Some(health) = health {
            health.abort();
        }
        actor.stop(None);
        let _ = task.await;
        if writers_finished(WRITERS_FINISH).await {
            if let Err(e) = held.release().await {
                tracing::warn!("releasing the store lock failed ({e}); the next coordinator waits for it to lapse");
            }
        } else {
            tracing::warn!("journal writes still running after {} s; the next coordinator waits for the store lock to lapse", WRITERS_FINISH.as_secs());
        }
        let summary = finished.borrow_and_update().clone();
        Ok::<_, anyhow::Error>(summary)
    })?;
    match (mode, summary) {
        (Mode::Once, Some(summary)) => finish(&summary, &store_url, None),
        (Mode::Once, None) => anyhow::bail!(
            "stopped before the run finished; start the coordinator again with the same config to continue"
        ),
        (Mode::Service, _) => {
            outln!("coordinator stopped; unfinished runs continue when it starts again");
            Ok(())
        }
    }
}
