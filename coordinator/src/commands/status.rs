//! `slsg status`: asks a running coordinator for its jobs, progress and leaderboards.
//! Owns only the printing.

use slsg_worker::GrpcLink;

use super::cluster_output::status_table;

#[derive(clap::Args)]
pub struct Args {
    /// The coordinator, e.g. `http://127.0.0.1:50051` (the token comes from `SLSG_TOKEN`).
    coordinator: String,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let token = std::env::var("SLSG_TOKEN").ok().filter(|t| !t.is_empty());
    let runtime = tokio::runtime::Runtime::new()?;
    let status = runtime.block_on(async {
        GrpcLink::new(&args.coordinator, token.as_deref())?
            .status()
            .await
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status_table(&status));
    }
    Ok(())
}
