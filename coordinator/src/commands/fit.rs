//! `slsg fit`: both training stages for one category in this process, into a local folder.
//! Forwards to `slsg::train` and `slsg::infer`; owns the output folder's layout.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use slsg::backend::{BackendJob, Device, run_on};
use slsg::config::Config;
use slsg::data::{Category, TestImage};
use slsg::infer::{Detector, save_model};
use slsg::metrics::{AnomalyMap, map_path, write_tiff};
use slsg::train::{DirCheckpoints, fit_category};

use super::progress::ConsoleProgress;

#[derive(clap::Args)]
pub struct Args {
    /// Dataset root holding the category folders.
    #[arg(long)]
    dataset: PathBuf,
    #[arg(long)]
    category: String,
    /// Output folder: `model/`, `checkpoints/`, `curve.jsonl`, `maps/`, `eval.json`. Running again
    /// with the same folder resumes from its checkpoints.
    #[arg(long)]
    out: PathBuf,
    /// TOML config (defaults for everything not given).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config field, e.g. `--set segnet.steps=500` (repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    overrides: Vec<String>,
    /// `cpu`, or `cuda:N` with a `--features cuda` build.
    #[arg(long, default_value = "cpu")]
    device: Device,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load_with(args.config.as_deref(), &args.overrides)?;
    let category = Category::open(&args.dataset, &args.category)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    std::fs::write(args.out.join("config.toml"), config.to_toml())
        .with_context(|| format!("writing {}", args.out.display()))?;
    run_on(
        args.device,
        FitJob {
            category,
            config,
            out: args.out,
        },
    )?
}

struct FitJob {
    category: Category,
    config: Config,
    out: PathBuf,
}

impl BackendJob for FitJob {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let mut store = DirCheckpoints::new(self.out.join("checkpoints"));
        let mut progress = ConsoleProgress::new(&self.out.join("curve.jsonl"))?;
        let fit = fit_category::<B>(
            &self.category,
            &self.config,
            &device,
            &mut store,
            &mut progress,
        );
        progress.finish();
        let fit = fit?;
        let model_dir = self.out.join("model");
        save_model(&model_dir, &fit.model, &fit.card)?;
        println!(
            "model: {} (SegNet step {} selected on validation data)",
            model_dir.display(),
            fit.card.training.selected_step
        );
        let detector = Detector::new(fit.model, fit.card, device);
        evaluate_test_split(&detector, &self.category, &self.config, &self.out)
    }
}

/// Predicts every test image, writes the maps in the official layout and scores them.
fn evaluate_test_split<B: burn::prelude::Backend>(
    detector: &Detector<B>,
    category: &Category,
    config: &Config,
    out: &Path,
) -> anyhow::Result<()> {
    if category.test.is_empty() {
        println!("{} has no test split: nothing to evaluate", category.name);
        return Ok(());
    }
    let maps = out.join("maps");
    let mut write = |test: &TestImage, map: &AnomalyMap| {
        write_tiff(&map_path(&maps, &category.name, &test.kind, test.id()), map)
            .map_err(|e| e.to_string())
    };
    let run = slsg::infer::evaluate_test_split(
        detector,
        category,
        config.inference.batch_size,
        &mut write,
    )?;
    print!("{}", run.evaluation.table());
    println!(
        "inference: {:.1} images/s ({} test images)",
        run.images as f64 / run.seconds.max(1e-9),
        run.images
    );
    let path = out.join("eval.json");
    std::fs::write(&path, serde_json::to_string_pretty(&run.evaluation)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("maps: {}, metrics: {}", maps.display(), path.display());
    Ok(())
}
