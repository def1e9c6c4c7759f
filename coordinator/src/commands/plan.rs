//! `slsg plan`: prints the job graph a cluster config expands to.
//! Forwards to `slsg::job::Plan`; runs nothing.

use std::path::PathBuf;

use slsg::job::{ClusterConfig, Plan};

use super::streams::out;

#[derive(clap::Args)]
pub struct Args {
    /// The cluster config (TOML).
    config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cluster = ClusterConfig::load(&args.config)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let plan = Plan::expand(&cluster, &args.config.display().to_string(), threads)?;
    out!("{}", plan.describe());
    Ok(())
}
