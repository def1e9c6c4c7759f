//! `slsg simulate`: writes simulated anomalies and a contact sheet for a person to look at.
//! Forwards to `slsg::simulate`; owns only the image files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use slsg::fit::{SimulatorInputs, category_simulator};
use slsg::picture::simulated::{contact_sheet, simulate_samples};
use slsg::simulate::Branch;

use super::args::{CategoryArgs, ConfigArgs};
use super::streams::outln;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    category: CategoryArgs,
    /// Folder for the image/mask PNG pairs, `samples.csv` and `contact_sheet.png`.
    #[arg(long)]
    out: PathBuf,
    /// Samples to write, 1 to 10 000.
    #[arg(long, allow_negative_numbers = true, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    count: u64,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    seed: u64,
    /// Working resolution, 16 to 2048 (images are resized to a square of this side).
    #[arg(long, allow_negative_numbers = true, default_value_t = 256, value_parser = clap::value_parser!(u32).range(16..=2048))]
    size: u32,
    /// Folder of texture images for the structural branch (default: the config's, else procedural).
    #[arg(long)]
    textures: Option<PathBuf>,
    /// The training config; its `[simulation]` section is used.
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let category = args.category.open()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let inputs = SimulatorInputs {
        size: args.size,
        seed: args.seed,
        threads,
        textures: args.textures.clone(),
    };
    let simulator = category_simulator(&category, &config.simulation, &inputs)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut csv =
        String::from("index,branch,base_image,source,delta,mask_area,inside_foreground,draws\n");
    let samples = simulate_samples(&simulator, args.count as usize, args.seed);
    for (i, sample) in samples.iter().enumerate() {
        let info = &sample.info;
        save(&args.out.join(format!("{i:03}_image.png")), |p| {
            sample.simulated.save(p)
        })?;
        save(&args.out.join(format!("{i:03}_mask.png")), |p| {
            sample.mask.save(p)
        })?;
        writeln!(
            csv,
            "{i},{},{},{},{:.4},{},{},{}",
            branch_name(info.branch),
            category.train[info.base]
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            info.source.map_or_else(String::new, |s| s.to_string()),
            info.delta,
            info.mask_area,
            info.inside_foreground,
            info.draws
        )?;
    }
    std::fs::write(args.out.join("samples.csv"), csv)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let sheet = contact_sheet(&samples);
    save(&args.out.join("contact_sheet.png"), |p| sheet.save(p))?;
    let count = |b: Branch| samples.iter().filter(|s| s.info.branch == b).count();
    outln!(
        "wrote {} samples to {} ({} texture, {} self-shuffle, {} logical)",
        args.count,
        args.out.display(),
        count(Branch::Texture),
        count(Branch::SelfShuffle),
        count(Branch::Logical)
    );
    outln!(
        "anomalies land on the foreground: {}",
        simulator.foreground_rule()
    );
    outln!(
        "contact sheet: normal | simulated | mask per sample; border red = texture, orange = self-shuffle, blue = logical"
    );
    Ok(())
}

fn save(path: &Path, write: impl FnOnce(&Path) -> image::ImageResult<()>) -> anyhow::Result<()> {
    write(path).with_context(|| format!("writing {}", path.display()))
}

fn branch_name(branch: Branch) -> &'static str {
    match branch {
        Branch::Texture => "texture",
        Branch::SelfShuffle => "self_shuffle",
        Branch::Logical => "logical",
    }
}
