//! `slsg retrain`: retraining checks of a cluster config's categories. `--now` checks once —
//! asking a coordinator service (`--coordinator`), or here, training the retraining run it
//! plans in this process; without `--now` the config's `[retrain]` schedule runs here, embedded,
//! until stopped. Owns the printing; the check is `slsg::retrain`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use slsg::job::ClusterConfig;
use slsg::retrain::{CheckReport, check};
use slsg::store::{BlockingStore, Store};
use slsg_coordinator::actor::now_ms;
use slsg_coordinator::client::Operator;
use slsg_coordinator::scheduler::next_firing;

use super::args::{AccessArgs, CacheArgs, GpuArgs};
use super::process::stop_signal;
use super::streams::{errln, out, outln};
use super::train::{Retry, run_plan};

#[derive(clap::Args)]
pub struct Args {
    /// The cluster config (TOML) with a `[retrain]` section (its defaults otherwise).
    config: PathBuf,
    /// Check once now (and train what needs it), instead of running the schedule.
    #[arg(long)]
    now: bool,
    /// Ask this coordinator service to check now (the token comes from `SLSG_TOKEN`).
    #[arg(long, requires = "now")]
    coordinator: Option<String>,
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    gpu: GpuArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cluster = ClusterConfig::load(&args.config)?;
    let origin = args.config.display().to_string();
    let schedule = cluster.validate(&origin)?;
    if let Some(url) = &args.coordinator {
        let access = args.access.access()?;
        let runtime = tokio::runtime::Runtime::new()?;
        let checked = runtime.block_on(async {
            Operator::connect(url, &access)?
                .retrain(&cluster, &origin)
                .await
        })?;
        out!("{}", report_table(&checked.report));
        match checked.run {
            Some((run, jobs)) => outln!("retraining run `{run}` submitted: {jobs} jobs"),
            None => outln!("no category needs retraining"),
        }
        return Ok(());
    }
    if args.now {
        return check_and_train(&cluster, &args.config, &args.cache, &args.gpu);
    }
    let schedule = schedule.with_context(|| {
        format!("{origin}: [retrain] has no `schedule` or `every`; use --now for one check")
    })?;
    outln!("retraining checks: {schedule}; Ctrl-C to stop");
    let runtime = tokio::runtime::Runtime::new()?;
    loop {
        let announce = |next| outln!("next check at {} UTC", slsg::job::utc_stamp(next));
        let stopped = runtime.block_on(async {
            tokio::select! {
                _ = next_firing(&schedule, announce) => false,
                _ = stop_signal() => true,
            }
        });
        if stopped {
            return Ok(());
        }
        if let Err(e) = check_and_train(&cluster, &args.config, &args.cache, &args.gpu) {
            errln!("error: the retraining check failed: {e:#}");
        }
    }
}

/// One check here, and the retraining run it plans trained in this process.
fn check_and_train(
    cluster: &ClusterConfig,
    origin: &Path,
    cache: &CacheArgs,
    gpu: &GpuArgs,
) -> anyhow::Result<()> {
    let datasets = cache.datasets();
    let runtime = tokio::runtime::Runtime::new()?;
    let store = BlockingStore::new(Store::open(&cluster.run.store)?, runtime.handle().clone());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let report = check(
        cluster,
        &origin.display().to_string(),
        threads,
        &store,
        &datasets,
        &Default::default(),
        now_ms() / 1000,
    )?;
    out!("{}", report_table(&report));
    match report.plan {
        Some(plan) => run_plan(
            plan,
            cache,
            gpu,
            &Retry {
                failed: false,
                hint: None,
            },
        ),
        None => {
            outln!("no category needs retraining");
            Ok(())
        }
    }
}

fn report_table(report: &CheckReport) -> String {
    let mut out = format!(
        "{:<16} {:<36} {:>6} {:>8}  {:<8} {}\n",
        "category", "current", "new", "alarms", "decision", "reason"
    );
    for c in &report.categories {
        out.push_str(&format!(
            "{:<16} {:<36} {:>6} {:>8}  {:<8} {}\n",
            c.category,
            c.current.as_deref().unwrap_or("—"),
            c.new_images,
            c.false_alarm_rate
                .map_or("—".to_string(), |r| format!("{r:.2}")),
            if c.retrain { "retrain" } else { "keep" },
            c.reason
        ));
    }
    out
}
