//! `slsg fit`: both stages of one category in this process, through the category pipeline, into
//! a local store at `--out` (the same files a cluster run's two jobs write).

use std::path::PathBuf;

use anyhow::Context;
use slsg::backend::Device;
use slsg::fit::{PipelineError, fit_category};
use slsg::store::layout::StageKeys;
use slsg::store::{BlockingStore, Key, Store};
use slsg::train::{Stage, TrainError};

use super::args::{CacheArgs, CategoryArgs, ConfigArgs, GpuArgs};
use super::progress::{CommandProgress, StopOnSignal};
use super::streams::{out, outln};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    category: CategoryArgs,
    /// Output folder: `pretrain/` (checkpoints, curve, encoder), `segnet/` (checkpoints, curve,
    /// `model/`, `maps/`, `eval.json`) and `config.toml`. Running again with the same folder
    /// resumes, and skips a stage that finished.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
    /// `cpu`, `wgpu` (the default adapter) or `wgpu:N`, or `cuda:N` with a `--features cuda`
    /// build.
    #[arg(long, default_value = "cpu")]
    device: Device,
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    args.gpu.prepare(&[args.device], &args.cache)?;
    let category = args.category.open()?;
    if slsg::walk::nested(&args.out, &args.category.dataset) {
        anyhow::bail!(
            "--out {} and --dataset {} are inside one another: fit writes only outside the data it reads",
            args.out.display(),
            args.category.dataset.display()
        );
    }
    let out = args.out.to_str().with_context(|| {
        format!(
            "{}: the output folder's path must be UTF-8",
            args.out.display()
        )
    })?;
    let runtime = tokio::runtime::Runtime::new()?;
    let store = BlockingStore::new(Store::open(out)?, runtime.handle().clone());
    let mut progress = (
        CommandProgress::for_stderr(&category.name),
        StopOnSignal::listen(&runtime),
    );
    let fitted = fit_category(&category, &config, &store, args.device, &mut progress);
    progress.0.finish();
    let fitted = fitted.map_err(|error| match error {
        PipelineError::Train(interrupted @ TrainError::Interrupted { .. }) => anyhow::anyhow!(
            "{interrupted}: run the same command again to resume ({})",
            args.out.display()
        ),
        other => other.into(),
    })?;
    for stage in &fitted.reused {
        outln!(
            "{}: finished before in {} (not run again)",
            stage.name(),
            args.out.display()
        );
    }
    let segnet = StageKeys::fit_stage(Stage::Segnet.name())?;
    let path = |key: &Key| args.out.join(key.as_str());
    outln!(
        "model: {} (SegNet step {} selected on validation data)",
        path(segnet.model().prefix()).display(),
        fitted
            .segnet
            .validation
            .as_ref()
            .map_or(fitted.segnet.steps, |v| v.step)
    );
    match &fitted.segnet.evaluation {
        Some(evaluation) => {
            out!("{}", evaluation.table());
            if let Some(speed) = fitted.segnet.inference_images_per_second {
                outln!("inference: {speed:.1} images/s");
            }
            outln!(
                "maps: {}, metrics: {}",
                path(&segnet.maps()).display(),
                path(&segnet.eval()).display()
            );
        }
        None => outln!("{} has no test split: nothing to evaluate", category.name),
    }
    Ok(())
}
