use std::path::PathBuf;

use slsg::config::Config;
use slsg::data::{Category, discover_categories};
use slsg::prepare::{SimulatorInputs, category_simulator};
use slsg::seed::rng_for;
use slsg::synth::{SynthOptions, write_dataset};

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the demo's dataset and outputs.
    #[arg(long, default_value = "slsg-demo")]
    out: PathBuf,
}

/// What exists so far: the synthetic dataset and the anomaly simulation on it. Training is not
/// implemented yet, so the demo stops there and says so.
pub fn run(args: Args) -> anyhow::Result<()> {
    let data = args.out.join("data");
    let options = SynthOptions {
        size: 128,
        ..SynthOptions::default()
    };
    write_dataset(&data, &options)?;
    println!("synthetic dataset: {}", data.display());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let inputs = SimulatorInputs {
        size: 128,
        seed: 0,
        threads,
        textures: None,
    };
    for name in discover_categories(&data)? {
        let category = Category::open(&data, &name)?;
        let simulator = category_simulator(&category, &Config::default().simulation, &inputs)?;
        let (mut image, mut mask) = (
            vec![0.0; simulator.image_len()],
            vec![0.0; simulator.image_len() / 3],
        );
        let mut branches = [0usize; 3];
        for i in 0..64u64 {
            let info = simulator.simulate_into(
                i as usize % simulator.len(),
                &mut rng_for(0, &[i]),
                &mut image,
                &mut mask,
            );
            branches[info.branch as usize] += 1;
        }
        println!(
            "{name:<8} {} train, {} test images; 64 simulated anomalies: {} texture, {} self-shuffle, {} logical",
            category.train.len(),
            category.test.len(),
            branches[0],
            branches[1],
            branches[2]
        );
    }
    println!(
        "training is not implemented yet: `slsg simulate` writes samples to look at, `slsg eval` scores maps"
    );
    Ok(())
}
