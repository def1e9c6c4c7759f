//! `slsg coordinator`: the coordinator actor behind the gRPC service, until the run finishes.
//! Owns the process's lifetime (token, signals, linger); the logic is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ractor::Actor;
use slsg::job::{ClusterConfig, Plan};
use slsg::store::Store;
use slsg_coordinator::actor::{CoordinatorActor, CoordinatorArgs, CoordinatorMessage};
use slsg_coordinator::service::{ClusterService, serve};
use tokio::sync::watch;

use super::cluster_output::{finish, reuse_line};
use super::worker::stop_signal;

#[derive(clap::Args)]
pub struct Args {
    /// The cluster config (TOML).
    config: PathBuf,
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Accept workers without a token (otherwise `SLSG_TOKEN` must be set).
    #[arg(long)]
    insecure: bool,
    /// Keep answering for this long after the run finishes, so workers learn it.
    #[arg(long, default_value = "5s", value_parser = humantime)]
    linger: Duration,
}

fn humantime(text: &str) -> Result<Duration, String> {
    let seconds = text.strip_suffix('s').unwrap_or(text);
    seconds
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|_| format!("`{text}` is not a duration like 5s"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let token = std::env::var("SLSG_TOKEN").ok().filter(|t| !t.is_empty());
    if token.is_none() && !args.insecure {
        anyhow::bail!(
            "set SLSG_TOKEN to the workers' bearer token (or pass --insecure to accept any worker)"
        );
    }
    let cluster = ClusterConfig::load(&args.config)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let plan = Plan::expand(&cluster, &args.config.display().to_string(), threads)?;
    let store = Store::open(&plan.store)?;
    let store_url = plan.store.clone();
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async move {
        let (finished_sender, mut finished) = watch::channel(None);
        let run = plan.run.clone();
        let heartbeat = Duration::from_secs(plan.resources.heartbeat_seconds);
        println!("run `{run}`: {} jobs; serving workers on {}", plan.jobs.len(), args.listen);
        let (actor, task) = Actor::spawn(None, CoordinatorActor, CoordinatorArgs { plan, store, finished: finished_sender })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let status = ractor::call!(actor, |reply| CoordinatorMessage::Status { reply }).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{}", reuse_line(&status));
        let service = ClusterService::new(actor.clone(), run, heartbeat);
        let mut until_finished = finished.clone();
        let shutdown = async move {
            let finished = async {
                let _ = until_finished.wait_for(|s| s.is_some()).await;
                tokio::time::sleep(args.linger).await;
            };
            tokio::select! {
                _ = finished => {}
                _ = stop_signal() => tracing::warn!("stopping; the journal is in the store, restart with the same config to continue"),
            }
        };
        serve(service, args.listen, token.as_deref(), shutdown).await.with_context(|| format!("serving on {}", args.listen))?;
        actor.stop(None);
        let _ = task.await;
        let summary = finished.borrow_and_update().clone();
        Ok::<_, anyhow::Error>(summary)
    })?;
    match summary {
        Some(summary) => finish(&summary, &store_url),
        None => {
            println!("stopped before the run finished; restart with the same config to continue");
            Ok(())
        }
    }
}
