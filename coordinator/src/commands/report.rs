//! `slsg report`: draws a finished run's report again from the store (after an upgrade, or to
//! keep a copy). Forwards to `slsg_coordinator::report`; owns only the output file.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use slsg::job::Plan;
use slsg::store::Store;
use slsg::store::layout::RunKeys;
use slsg_coordinator::report::{RunUrl, build_report};
use slsg_coordinator::summary::RunSummary;

use super::streams::outln;

#[derive(clap::Args)]
pub struct Args {
    /// The run: `<store>/runs/<run>` (`s3://bucket/prefix/runs/nightly`, `file:///srv/store/runs/nightly`
    /// or a local path such as `slsg-demo/store/runs/demo`).
    run: String,
    /// Where to write the page (default: the run's `report.html` in the store).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let url = RunUrl::parse(&args.run)?;
    let store = Store::open_existing(&url.store)?;
    let keys = RunKeys::new(&url.run)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let written = runtime.block_on(async {
        let summary: RunSummary = store.get_json(&keys.summary()).await?.ok_or_else(|| {
            anyhow!(
                "{}: no run summary (the run `{}` does not exist in this store, or has not finished)",
                store.describe(&keys.summary()),
                url.run
            )
        })?;
        let plan: Plan = store
            .get_json(&keys.plan())
            .await?
            .ok_or_else(|| anyhow!("{}: the run's plan is missing", store.describe(&keys.plan())))?;
        let page = build_report(&store, &keys, &plan, &summary).await?;
        match &args.out {
            Some(path) => {
                std::fs::write(path, &page).with_context(|| format!("writing {}", path.display()))?;
                anyhow::Ok(path.display().to_string())
            }
            None => {
                store.put(&keys.report(), page.into_bytes()).await?;
                anyhow::Ok(store.describe(&keys.report()))
            }
        }
    })?;
    outln!("wrote the report of run `{}` to {written}", url.run);
    Ok(())
}
