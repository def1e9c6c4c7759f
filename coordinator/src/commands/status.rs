//! `slsg status`: a coordinator's runs, then the jobs, progress and leaderboards of each
//! unfinished run (or of the run named), once or followed until they end (`--watch`). Owns only
//! the printing.

use slsg_coordinator::client::Operator;

use super::args::AccessArgs;
use super::cluster_output::{overview_table, status_table};
use super::streams::{out, outln};
use super::watch::watch;

#[derive(clap::Args)]
pub struct Args {
    /// The coordinator, e.g. `http://127.0.0.1:50051` (the token comes from `SLSG_TOKEN`).
    coordinator: String,
    /// Only this run's jobs and leaderboards.
    #[arg(long)]
    run: Option<String>,
    /// Print JSON: the overview (`ServiceStatus`), or the named run (`RunStatus`).
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Follow the named run (or every unfinished run) until it ends: on a terminal a bar per
    /// running job, elsewhere progress lines every 10 s; then the final table. Fails if a job
    /// failed.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    access: AccessArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let access = args.access.access()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let operator = Operator::connect(&args.coordinator, &access)?;
        if args.watch {
            let runs: Vec<String> = match &args.run {
                Some(run) => vec![run.clone()],
                None => operator
                    .overview()
                    .await?
                    .runs
                    .into_iter()
                    .filter(|r| !r.finished)
                    .map(|r| r.run)
                    .collect(),
            };
            if runs.is_empty() {
                outln!("no run in progress");
                return Ok(());
            }
            return watch(&operator, &runs).await;
        }
        if let Some(run) = &args.run {
            let status = operator.run_status(run).await?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                out!("{}", status_table(&status));
            }
            return Ok(());
        }
        let overview = operator.overview().await?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&overview)?);
            return Ok(());
        }
        out!("{}", overview_table(&overview));
        for run in overview.runs.iter().filter(|r| !r.finished) {
            outln!();
            out!("{}", status_table(&operator.run_status(&run.run).await?));
        }
        Ok(())
    })
}
