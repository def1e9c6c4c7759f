//! `slsg synth`: writes the deterministic synthetic dataset.
//! Forwards to `slsg::synth`.

use std::path::PathBuf;

use slsg::synth::{SynthOptions, write_dataset};

use super::streams::outln;

#[derive(clap::Args)]
pub struct Args {
    /// Folder to write the dataset into (one sub-folder per category).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    seed: u64,
    /// Side of the square images in pixels, 32 to 2048 (the LOCO-style tray is 1.25× wider).
    #[arg(long, allow_negative_numbers = true, default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=2048))]
    size: u32,
    /// Normal training images per category, 2 to 10 000.
    #[arg(long, allow_negative_numbers = true, default_value_t = SynthOptions::default().train as u64, value_parser = clap::value_parser!(u64).range(2..=10_000))]
    train: u64,
    /// Test images per defect type, 1 to 10 000.
    #[arg(long, allow_negative_numbers = true, default_value_t = SynthOptions::default().test_per_defect as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    test_per_defect: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = SynthOptions {
        seed: args.seed,
        size: args.size,
        train: args.train as usize,
        test_per_defect: args.test_per_defect as usize,
        ..SynthOptions::default()
    };
    let written = write_dataset(&args.out, &options)?;
    outln!(
        "{:<10} {:<11} {:>6} {:>6}  defect types",
        "category",
        "layout",
        "train",
        "test"
    );
    for c in &written {
        outln!(
            "{:<10} {:<11} {:>6} {:>6}  {}",
            c.name,
            format!("{:?}", c.layout),
            c.train,
            c.test,
            c.defect_types.join(", ")
        );
    }
    outln!("wrote {}", args.out.display());
    Ok(())
}
