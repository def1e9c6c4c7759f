//! `slsg synth`: writes the deterministic synthetic dataset.
//! Forwards to `slsg::synth`.

use std::path::PathBuf;

use slsg::synth::{SynthOptions, write_dataset};

#[derive(clap::Args)]
pub struct Args {
    /// Folder to write the dataset into (one sub-folder per category).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Side of the square images in pixels (the LOCO-style tray is 1.25× wider).
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Normal training images per category.
    #[arg(long, default_value_t = SynthOptions::default().train)]
    train: usize,
    /// Test images per defect type.
    #[arg(long, default_value_t = SynthOptions::default().test_per_defect)]
    test_per_defect: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = SynthOptions {
        seed: args.seed,
        size: args.size,
        train: args.train,
        test_per_defect: args.test_per_defect,
        ..SynthOptions::default()
    };
    let written = write_dataset(&args.out, &options)?;
    println!(
        "{:<10} {:<11} {:>6} {:>6}  defect types",
        "category", "layout", "train", "test"
    );
    for c in &written {
        println!(
            "{:<10} {:<11} {:>6} {:>6}  {}",
            c.name,
            format!("{:?}", c.layout),
            c.train,
            c.test,
            c.defect_types.join(", ")
        );
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
