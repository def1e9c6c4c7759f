//! `slsg predict`: anomaly maps, overlays and scores for images with a trained model — a folder,
//! or a registered version named by its store URL (downloaded once into a local cache by
//! content). Forwards to `slsg::infer` and `slsg::registry`; owns the output files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use slsg::backend::Device;
use slsg::config::MAX_BATCH;
use slsg::data::{Category, Layout, is_image_file, read_rgb};
use slsg::infer::load_detector;
use slsg::metrics::{MapsInfo, map_path, write_tiff};
use slsg::picture::{Prediction, panel, raw_map};
use slsg::registry::{ModelUrl, Registry};
use slsg::store::Store;
use slsg::store::layout::MODEL_CARD_FILE;

use super::args::{CacheArgs, GpuArgs};
use super::streams::{errln, outln};

#[derive(clap::Args)]
pub struct Args {
    /// A model folder (`model.json`, `weights.ckpt`: `slsg fit`'s `<out>/segnet/model`), or a
    /// registered model's store URL: `<store>/models/<category>/current`, `…/previous` or
    /// `…/versions/<version>`.
    #[arg(long)]
    model: String,
    /// An image, a folder of images, or a dataset category folder (its test split is scored and
    /// the maps are written in the official layout `<out>/<category>/test/<kind>/<id>.tiff`).
    #[arg(long)]
    input: PathBuf,
    /// Where the TIFF maps, `_overlay.png` heat maps, `scores.csv` and `maps.json` (the model's
    /// image score, which `slsg eval` then uses) go.
    #[arg(long)]
    out: PathBuf,
    /// `cpu`, `wgpu`, `wgpu:N`, or `cuda:N` with a `--features cuda` build.
    #[arg(long, default_value = "cpu")]
    device: Device,
    #[command(flatten)]
    gpu: GpuArgs,
    #[arg(long, allow_negative_numbers = true, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH as u64))]
    batch_size: u64,
    /// What each `<image>_overlay.png` shows: `panel` (the image, the map over it on a colour
    /// scale centred on the model's threshold with a colour bar, the outline of the region at or
    /// above the threshold, the score and the decision), `raw` (the map alone, at the image's
    /// size, on the same scale), or `none` (no overlays).
    #[arg(long, value_enum, default_value_t = Overlay::Panel)]
    overlay: Overlay,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Overlay {
    Panel,
    Raw,
    None,
}

/// An input image and where its map goes (without extension).
struct Item {
    image: PathBuf,
    output: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.input.is_dir() && slsg::walk::nested(&args.out, &args.input) {
        anyhow::bail!(
            "--out {} and --input {} are inside one another: predict would read its own maps next time",
            args.out.display(),
            args.input.display()
        );
    }
    args.gpu.prepare(&[args.device], &args.cache)?;
    let model = model_folder(&args.model, &args.cache.root())?;
    let items = collect_inputs(&args.input, &args.out)?;
    if items.is_empty() {
        anyhow::bail!("{}: no images to score", args.input.display());
    }
    predict(&args, &model, &items)
}

/// The model folder `model` names: itself, or a registered version's copy in the cache. A
/// registered model is named by a store URL or, in a local store, by its path
/// (`store/models/washer/current`), which is a file, not a model folder.
fn model_folder(model: &str, cache: &Path) -> anyhow::Result<PathBuf> {
    let folder = Path::new(model);
    let registered = model.contains("://")
        || (!folder.join(MODEL_CARD_FILE).is_file() && ModelUrl::parse(model).is_ok());
    if !registered {
        return Ok(folder.to_path_buf());
    }
    let url = ModelUrl::parse(model)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let registry = Registry::new(Store::open_existing(&url.store)?);
        let version = registry.resolve(&url.category, &url.version).await?;
        let folder = registry.fetch(&url.category, &version, cache).await?;
        errln!(
            "model: {}, version `{version}` ({})",
            model,
            folder.display()
        );
        Ok(folder)
    })
}

fn collect_inputs(input: &Path, out: &Path) -> anyhow::Result<Vec<Item>> {
    if input.is_file() {
        let stem = input
            .file_stem()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("image"));
        return Ok(vec![Item {
            image: input.to_path_buf(),
            output: out.join(stem),
        }]);
    }
    if !input.is_dir() {
        match std::fs::metadata(input) {
            Ok(_) => anyhow::bail!("{}: not a regular file or a folder", input.display()),
            Err(_) => anyhow::bail!("{}: no such file or folder", input.display()),
        }
    }
    if let Ok(layout) = Layout::detect(input)
        && layout != Layout::Folder
    {
        let name = input
            .file_name()
            .and_then(|n| n.to_str())
            .context("category folder name")?;
        let root = input.parent().unwrap_or(Path::new("."));
        let category = Category::open(root, name)?;
        return Ok(category
            .test
            .iter()
            .map(|t| Item {
                image: t.path.clone(),
                output: map_path(out, name, &t.kind, t.id()).with_extension(""),
            })
            .collect());
    }
    Ok(slsg::walk::files(input, is_image_file)?
        .into_iter()
        .map(|image| {
            let relative = image
                .strip_prefix(input)
                .unwrap_or(&image)
                .with_extension("");
            Item {
                output: out.join(relative),
                image,
            }
        })
        .collect())
}

/// Scores `items` with the model in `model` and writes their maps, overlays, `scores.csv` and
/// `maps.json`.
fn predict(args: &Args, model: &Path, items: &[Item]) -> anyhow::Result<()> {
    let detector = load_detector(model, args.device)?;
    let threshold = detector.card().decision_threshold;
    let mut csv = String::from("image,score,anomalous\n");
    let (mut count, mut seconds) = (0usize, 0.0f64);
    let batch_size = args.batch_size as usize;
    for chunk in items.chunks(batch_size) {
        let images = chunk
            .iter()
            .map(|item| read_rgb(&item.image))
            .collect::<Result<Vec<_>, _>>()?;
        let (predictions, elapsed) = detector.predict_all(&images, batch_size);
        seconds += elapsed.as_secs_f64();
        for ((item, image), prediction) in chunk.iter().zip(&images).zip(predictions) {
            write_tiff(&item.output.with_extension("tiff"), &prediction.map)?;
            let picture = match args.overlay {
                Overlay::Panel => Some(panel(&Prediction {
                    image,
                    map: &prediction.map.values,
                    score: prediction.score,
                    image_score: detector.card().image_score,
                    threshold,
                    truth: None,
                })),
                Overlay::Raw => Some(raw_map(
                    &prediction.map.values,
                    image.width(),
                    image.height(),
                    threshold,
                )),
                Overlay::None => None,
            };
            if let Some(picture) = picture {
                let path = PathBuf::from(format!("{}_overlay.png", item.output.display()));
                picture
                    .save(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let verdict = threshold.map_or(String::new(), |t| (prediction.score >= t).to_string());
            writeln!(
                csv,
                "{},{:.6},{verdict}",
                item.image.display(),
                prediction.score
            )?;
            count += 1;
        }
    }
    std::fs::create_dir_all(&args.out)?;
    let csv_path = args.out.join("scores.csv");
    std::fs::write(&csv_path, csv).with_context(|| format!("writing {}", csv_path.display()))?;
    MapsInfo {
        image_score: detector.card().image_score,
    }
    .write(&args.out)?;
    outln!(
        "scored {count} images in {seconds:.2} s ({:.1} images/s); maps, overlays and {} in {}",
        count as f64 / seconds.max(1e-9),
        csv_path.display(),
        args.out.display()
    );
    Ok(())
}
