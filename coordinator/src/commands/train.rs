//! `slsg train`: a cluster config trained in this process (embedded coordinator and workers).
//! Owns the progress lines and the exit status; the cluster is `slsg_coordinator::embedded`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use slsg::job::{ClusterConfig, Plan};
use slsg::store::Store;
use slsg_coordinator::actor::CoordinatorMessage;
use slsg_coordinator::embedded::{Embedded, Slots};
use slsg_worker::pipeline_runner;

use super::args::{CacheArgs, GpuArgs};
use super::cluster_output::{finish, progress_lines, reuse_line};
use super::streams::{errln, outln};

#[derive(clap::Args)]
pub struct Args {
    /// The cluster config (TOML): datasets, categories, training config, sweep, store.
    config: PathBuf,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    gpu: GpuArgs,
    /// Give the jobs that failed for good in an earlier attempt at this run fresh attempts, and
    /// run the jobs they blocked (once the cause, such as a device or a file, is fixed).
    #[arg(long)]
    retry_failed: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cluster = ClusterConfig::load(&args.config)?;
    let retry = Retry {
        failed: args.retry_failed,
        hint: Some(format!(
            "slsg train --retry-failed {}",
            args.config.display()
        )),
    };
    run_embedded(&cluster, &args.config, &args.cache, &args.gpu, &retry)
}

/// What a run does with the jobs an earlier attempt at it failed for good.
pub struct Retry {
    /// Give them fresh attempts.
    pub failed: bool,
    /// The command that would, named when jobs fail.
    pub hint: Option<String>,
}

/// Expands the plan and trains it with the coordinator and its workers in this process.
pub fn run_embedded(
    cluster: &ClusterConfig,
    origin: &Path,
    cache: &CacheArgs,
    gpu: &GpuArgs,
    retry: &Retry,
) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    run_plan(
        Plan::expand(cluster, &origin.display().to_string(), threads)?,
        cache,
        gpu,
        retry,
    )
}

/// Trains `plan` with the coordinator and its workers in this process; a worker slot whose
/// device this build or machine cannot run is refused before any job starts.
pub fn run_plan(plan: Plan, cache: &CacheArgs, gpu: &GpuArgs, retry: &Retry) -> anyhow::Result<()> {
    gpu.prepare(&plan.resources.workers, cache)
        .map_err(|e| anyhow::anyhow!("resources.workers: {e}"))?;
    let cache = cache.datasets();
    outln!(
        "run `{}`: {} jobs on {} worker slot(s), store {}",
        plan.run,
        plan.jobs.len(),
        plan.resources.workers.len(),
        plan.store
    );
    let store = Store::open(&plan.store)?;
    let store_url = plan.store.clone();
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async move {
        let embedded = Embedded::start(
            plan,
            store,
            Slots::new(pipeline_runner(false, cache)),
            retry.failed,
        )
        .await?;
        outln!("{}", reuse_line(&embedded.status().await?));
        let watcher = tokio::spawn(report_progress(
            embedded.coordinator.clone(),
            embedded.run.clone(),
        ));
        let summary = embedded.wait().await;
        watcher.abort();
        Ok::<_, anyhow::Error>(summary?)
    })?;
    finish(&summary, &store_url, retry.hint.as_deref())
}

async fn report_progress(coordinator: ractor::ActorRef<CoordinatorMessage>, run: String) {
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    loop {
        ticker.tick().await;
        let run = run.clone();
        let Ok(Ok(status)) = ractor::call!(coordinator, |reply| CoordinatorMessage::RunStatus {
            run,
            offset: 0,
            limit: usize::MAX,
            reply
        }) else {
            return;
        };
        for line in progress_lines(&status) {
            errln!("{line}");
        }
    }
}
