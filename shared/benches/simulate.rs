//! Simulated anomalies per second at 256×256: each branch on one thread, then the full batch
//! producer at 1 and 2 threads. Prints a Markdown table.
//!
//! `cargo bench -p slsg --bench simulate` (textures from the folder `$SLSG_TEXTURES` names, e.g.
//! DTD's images, else procedural ones).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use slsg::data::{Category, read_rgb_resized_all};
use slsg::seed::rng_for;
use slsg::simulate::{ProducerConfig, SimulationConfig, Simulator, TextureBank, batch_producer};
use slsg::synth::{SynthOptions, write_dataset};

const SIZE: u32 = 256;

fn texture_bank() -> (TextureBank, String) {
    let procedural = || {
        (
            TextureBank::procedural(SIZE, SIZE, 64, 0),
            "64 procedural textures".to_string(),
        )
    };
    let Some(dir) = std::env::var_os("SLSG_TEXTURES").map(PathBuf::from) else {
        return procedural();
    };
    match TextureBank::from_folder(&dir, SIZE, SIZE, 512, 0, 2) {
        Ok(bank) => {
            let label = format!(
                "{} textures from {}",
                bank.len(),
                dir.canonicalize().unwrap_or(dir.clone()).display()
            );
            (bank, label)
        }
        Err(e) => {
            eprintln!("SLSG_TEXTURES: {e}; using procedural textures");
            procedural()
        }
    }
}

fn main() {
    let data = tempfile::tempdir().expect("temporary folder");
    let options = SynthOptions {
        size: SIZE,
        train: 32,
        test_good: 0,
        test_per_defect: 0,
        validation: 0,
        ..Default::default()
    };
    write_dataset(data.path(), &options).expect("synthetic data");
    let category = Category::open(data.path(), "washer").expect("washer category");
    let normals = read_rgb_resized_all(&category.train, SIZE, SIZE, 2).expect("normal images");
    let (bank, texture_label) = texture_bank();
    let bank = Arc::new(bank);
    println!("normal images: 32 synthetic `washer` at {SIZE}²; {texture_label}\n");
    println!("| what | threads | simulated images/s | per thread |");
    println!("|---|---|---|---|");
    let branches = [
        ("texture branch", 0.0, 0.0),
        ("self-shuffle branch", 0.0, 1.0),
        ("logical branch", 1.0, 0.0),
        ("mixed (default probabilities)", 0.5, 0.5),
    ];
    for (name, logical, self_source) in branches {
        let config = SimulationConfig {
            logical_probability: logical,
            self_source_probability: self_source,
            ..Default::default()
        };
        let simulator = make_simulator(config, &normals, &bank);
        let (mut image, mut mask) = (
            vec![0.0; simulator.image_len()],
            vec![0.0; simulator.image_len() / 3],
        );
        let count = 600u64;
        let start = Instant::now();
        for i in 0..count {
            simulator.simulate_into(
                i as usize % simulator.len(),
                &mut rng_for(1, &[i]),
                &mut image,
                &mut mask,
            );
        }
        let rate = count as f64 / start.elapsed().as_secs_f64();
        println!("| {name} | 1 | {rate:.0} | {rate:.0} |");
    }
    let simulator = Arc::new(make_simulator(SimulationConfig::default(), &normals, &bank));
    for threads in [1, 2] {
        let config = ProducerConfig {
            seed: 3,
            threads,
            capacity: 8,
            normal_per_batch: 4,
            simulated_per_batch: 4,
            start_batch: 0,
        };
        let mut producer = batch_producer(simulator.clone(), config);
        producer.next();
        let batches = 200;
        let start = Instant::now();
        for _ in 0..batches {
            producer.next().expect("batch");
        }
        let rate = (batches * 4) as f64 / start.elapsed().as_secs_f64();
        println!(
            "| producer, batches of 4 normal + 4 simulated | {threads} | {rate:.0} ({:.0} images/s incl. normal) | {:.0} |",
            2.0 * rate,
            rate / threads as f64
        );
    }
}

fn make_simulator(
    config: SimulationConfig,
    normals: &[image::RgbImage],
    bank: &Arc<TextureBank>,
) -> Simulator {
    Simulator::new(config, normals.to_vec(), TextureBank::clone(bank)).expect("simulator")
}
