//! `slsg demo`: the synthetic dataset, a small cluster config, and an embedded run of it.
//! Owns the demo's config; the run itself is `train::run_embedded`.

use std::path::PathBuf;

use anyhow::Context;
use slsg::job::ClusterConfig;
use slsg::synth::{SynthOptions, write_dataset};

use super::args::{CacheArgs, GpuArgs};
use super::streams::outln;
use super::train::{Retry, run_embedded};

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the demo's dataset, config and store.
    #[arg(long, default_value = "slsg-demo")]
    out: PathBuf,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    gpu: GpuArgs,
}

/// A small model, sized so the three synthetic categories train in minutes on two CPU cores:
/// 64 px, a quarter of the paper's width (an eighth learns the texture and the arrangement but
/// not the object's few-pixel defects), 150 pre-training and 700 SegNet steps, the encoder
/// trained with SegNet (too small to stay frozen).
const DEMO_CONFIG: &str = r#"[run]
name = "demo"
store = "store"

[[dataset]]
path = "data"
categories = ["all"]

[training.model]
image_size = 64
width = 0.25

[training.pretrain]
max_steps = 150

[training.segnet]
steps = 700
freeze_encoder = false
validate_every = 175
checkpoint_every = 350

[resources]
workers = ["cpu", "cpu"]
"#;

/// The whole job on the embedded default: synthetic data, a local store, the coordinator and
/// two workers in this process; every category trained and evaluated, models registered.
pub fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let data = args.out.join("data");
    let written = write_dataset(
        &data,
        &SynthOptions {
            size: 64,
            ..SynthOptions::default()
        },
    )?;
    outln!(
        "synthetic dataset: {} ({} categories)",
        data.display(),
        written.len()
    );
    let config_path = args.out.join("demo.toml");
    std::fs::write(&config_path, DEMO_CONFIG)
        .with_context(|| format!("writing {}", config_path.display()))?;
    outln!(
        "cluster config: {} (edit it and run `slsg train {}`)",
        config_path.display(),
        config_path.display()
    );
    let cluster = ClusterConfig::load(&config_path)?;
    let retry = Retry {
        failed: false,
        hint: Some(format!(
            "slsg train --retry-failed {}",
            config_path.display()
        )),
    };
    run_embedded(&cluster, &config_path, &args.cache, &args.gpu, &retry)
}
