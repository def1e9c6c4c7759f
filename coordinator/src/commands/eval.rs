//! `slsg eval`: scores a folder of anomaly maps against a category's ground truth.
//! Forwards to `slsg::metrics`; owns only the table and the JSON file.

use std::path::PathBuf;

use anyhow::Context;
use slsg::metrics::{EvalOptions, ImageScore, MapsInfo, evaluate_folder};
use slsg::store::layout::MAPS_INFO_FILE;

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
    /// Image score taken from each map: `max` (the official evaluation's) or `top100` (the
    /// paper's). Default: the model's, from `<maps>/maps.json` (`slsg predict` and `slsg fit`
    /// write it); `max` for maps without one.
    #[arg(long)]
    image_score: Option<ImageScore>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let category = args.category.open()?;
    let (image_score, origin) = match args.image_score {
        Some(score) => (score, "--image-score".to_string()),
        None => match MapsInfo::read(&args.maps)? {
            Some(info) => (
                info.image_score,
                format!(
                    "the model's, from {}",
                    args.maps.join(MAPS_INFO_FILE).display()
                ),
            ),
            None => (
                ImageScore::default(),
                format!("the official evaluation's; no {MAPS_INFO_FILE} beside the maps"),
            ),
        },
    };
    let options = EvalOptions {
        image_score,
        ..EvalOptions::default()
    };
    let evaluation = evaluate_folder(&category, &args.maps, &options)?;
    out!("{}", evaluation.table());
    outln!("image score `{}`: {origin}", image_score.name());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&evaluation)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}
