//! `slsg submit`: sends a cluster config to a running coordinator service, which plans and
//! opens its run beside the others. Owns only the printing.

use std::path::PathBuf;

use slsg::job::ClusterConfig;
use slsg_coordinator::client::Operator;

use super::args::AccessArgs;
use super::streams::outln;

#[derive(clap::Args)]
pub struct Args {
    /// The cluster config (TOML); its dataset paths must be readable where the coordinator and
    /// its workers run, and its store must be the coordinator's.
    config: PathBuf,
    /// The coordinator, e.g. `http://10.0.0.5:50051` (the token comes from `SLSG_TOKEN`).
    #[arg(long)]
    coordinator: String,
    #[command(flatten)]
    access: AccessArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let access = args.access.access()?;
    let cluster = ClusterConfig::load(&args.config)?;
    let origin = args.config.display().to_string();
    cluster.validate(&origin)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let reply = runtime.block_on(async {
        Operator::connect(&args.coordinator, &access)?
            .submit(&cluster, &origin)
            .await
    })?;
    if reply.already_open {
        outln!(
            "run `{}` is open already with this plan ({} jobs)",
            reply.run,
            reply.jobs
        );
    } else {
        outln!(
            "run `{}` submitted: {} jobs, {} of them finished before (reused)",
            reply.run,
            reply.jobs,
            reply.finished_before
        );
    }
    Ok(())
}
