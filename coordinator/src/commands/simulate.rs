//! `slsg simulate`: writes simulated anomalies and a contact sheet for a person to look at.
//! Forwards to `slsg::simulate`; owns only the image files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{GrayImage, Rgb, RgbImage};
use slsg::fit::{SimulatorInputs, category_simulator};
use slsg::seed::rng_for;
use slsg::simulate::{Branch, SampleInfo};

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
    let (mut image, mut mask) = (
        vec![0.0f32; simulator.image_len()],
        vec![0.0f32; simulator.image_len() / 3],
    );
    let mut csv =
        String::from("index,branch,base_image,source,delta,mask_area,inside_foreground\n");
    let mut tiles = Vec::with_capacity(args.count as usize);
    for i in 0..args.count as usize {
        let base = i % simulator.len();
        let info = simulator.simulate_into(
            base,
            &mut rng_for(args.seed, &[i as u64]),
            &mut image,
            &mut mask,
        );
        let (rgb, gray) = to_pngs(&image, &mask, simulator.width(), simulator.height());
        save(&args.out.join(format!("{i:03}_image.png")), |p| rgb.save(p))?;
        save(&args.out.join(format!("{i:03}_mask.png")), |p| gray.save(p))?;
        writeln!(
            csv,
            "{i},{},{},{},{:.4},{},{}",
            branch_name(info.branch),
            category.train[base]
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            info.source.map_or_else(String::new, |s| s.to_string()),
            info.delta,
            info.mask_area,
            info.inside_foreground
        )?;
        tiles.push((simulator.normal(base).clone(), rgb, gray, info));
    }
    std::fs::write(args.out.join("samples.csv"), csv)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let sheet = contact_sheet(&tiles);
    save(&args.out.join("contact_sheet.png"), |p| sheet.save(p))?;
    let count = |b: Branch| tiles.iter().filter(|t| t.3.branch == b).count();
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

fn branch_colour(branch: Branch) -> Rgb<u8> {
    match branch {
        Branch::Texture => Rgb([230, 60, 50]),
        Branch::SelfShuffle => Rgb([240, 160, 30]),
        Branch::Logical => Rgb([50, 110, 230]),
    }
}

fn to_pngs(image: &[f32], mask: &[f32], width: u32, height: u32) -> (RgbImage, GrayImage) {
    let plane = (width * height) as usize;
    let rgb = RgbImage::from_fn(width, height, |x, y| {
        let i = (y * width + x) as usize;
        Rgb(std::array::from_fn(|c| {
            (image[c * plane + i] * 255.0 + 0.5).clamp(0.0, 255.0) as u8
        }))
    });
    let gray = GrayImage::from_fn(width, height, |x, y| {
        image::Luma([if mask[(y * width + x) as usize] > 0.5 {
            255
        } else {
            0
        }])
    });
    (rgb, gray)
}

/// Rows of up to four samples, each `normal | simulated | mask` inside a border coloured by branch.
fn contact_sheet(tiles: &[(RgbImage, RgbImage, GrayImage, SampleInfo)]) -> RgbImage {
    let Some((first, ..)) = tiles.first() else {
        return RgbImage::new(1, 1);
    };
    let (w, h) = first.dimensions();
    let border = 4;
    let (cell_w, cell_h) = (3 * w + 2 * border + 4, h + 2 * border);
    let columns = tiles.len().min(4) as u32;
    let rows = tiles.len().div_ceil(4) as u32;
    let mut sheet = RgbImage::from_pixel(
        columns * (cell_w + 8),
        rows * (cell_h + 8),
        Rgb([255, 255, 255]),
    );
    for (i, (normal, simulated, mask, info)) in tiles.iter().enumerate() {
        let (x0, y0) = ((i as u32 % 4) * (cell_w + 8), (i as u32 / 4) * (cell_h + 8));
        for y in 0..cell_h {
            for x in 0..cell_w {
                sheet.put_pixel(x0 + x, y0 + y, branch_colour(info.branch));
            }
        }
        let mask_rgb = RgbImage::from_fn(w, h, |x, y| {
            let v = mask.get_pixel(x, y).0[0];
            Rgb([v, v, v])
        });
        for (k, part) in [normal, simulated, &mask_rgb].into_iter().enumerate() {
            image::imageops::replace(
                &mut sheet,
                part,
                (x0 + border + k as u32 * (w + 2)) as i64,
                (y0 + border) as i64,
            );
        }
    }
    sheet
}
