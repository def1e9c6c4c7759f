//! `slsg eval`: scores a folder of anomaly maps against a category's ground truth.
//! Forwards to `slsg::metrics`; owns only the table and the JSON file.

use std::path::PathBuf;

use anyhow::Context;
use slsg::metrics::{EvalOptions, ImageScore, evaluate_folder};

use super::args::CategoryArgs;
use super::streams::{out, outln};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    category: CategoryArgs,
    /// Anomaly maps in the official layout: `<maps>/<category>/test/<kind>/<id>.tiff`.
    #[arg(long)]
    maps: PathBuf,
    /// Also write every metric as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Image score taken from each map: `max` (the official evaluation's) or `top100` (the paper's).
    #[arg(long, default_value = "max")]
    image_score: ImageScore,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let category = args.category.open()?;
    let options = EvalOptions {
        image_score: args.image_score,
        ..EvalOptions::default()
    };
    let evaluation = evaluate_folder(&category, &args.maps, &options)?;
    out!("{}", evaluation.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&evaluation)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}
