//! Malformed input, case by case: datasets, masks, LOCO defect configs, anomaly maps, training
//! and cluster configs, model folders and flags. Every case must end in a non-zero exit with a
//! one-line error naming the file or field, no panic, within a bounded time, and nothing written
//! outside the command's output folder (the data stays as it was, the working folder empty).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image::{GrayImage, ImageBuffer, Luma, RgbImage};
use slsg::metrics::{AnomalyMap, map_path, write_tiff};
use slsg_tests::{files_under, path, synthetic_data};

/// Longest a refusal may take.
const BOUNDED: Duration = Duration::from_secs(120);

/// A working copy of the synthetic dataset (`data/`) plus room for configs and outputs.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(base: &Path) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let copied = Command::new("cp")
            .args(["-a", path(base), path(&dir.path().join("data"))])
            .status()
            .unwrap();
        assert!(copied.success());
        Case { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn file(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file below the case's folder (its parents created).
    fn write(&self, relative: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let file = self.file(relative);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, bytes).unwrap();
        file
    }

    /// The output folder a command may write into (the only one).
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
}

/// Every file under `dir` except the output folder, with the SHA-256 of its contents (a file
/// rewritten at the same size is a change too).
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    use sha2::{Digest, Sha256};
    files_under(dir)
        .into_iter()
        .filter(|f| !f.starts_with("out/") && !f.starts_with("out"))
        .map(|f| {
            let bytes = std::fs::read(dir.join(&f)).unwrap_or_default();
            let digest = slsg::data::hex(&Sha256::digest(&bytes));
            (f, digest)
        })
        .collect()
}

/// Runs `slsg args` in an empty working folder and checks the refusal.
fn refused(case: &Case, args: &[&str], needles: &[&str]) {
    let before = snapshot(case.dir.path());
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(slsg_tests::slsg_binary())
        .args(args)
        .current_dir(cwd.path())
        .env("SLSG_LOG", "error")
        .env("SLSG_CACHE", case.file("out/cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > BOUNDED {
            let _ = child.kill();
            panic!("{args:?}: still running after {BOUNDED:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let text = format!("{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!status.success(), "expected a refusal: {text}");
    assert!(!stderr.contains("panicked"), "panicked: {text}");
    let error = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        error.starts_with("error: ") && error.len() < 1000,
        "a one-line error: {text}"
    );
    for needle in needles {
        assert!(error.contains(needle), "`{needle}` missing: {text}");
    }
    assert_eq!(
        before,
        snapshot(case.dir.path()),
        "written outside the output folder: {text}"
    );
    assert!(
        files_under(cwd.path()).is_empty(),
        "wrote into the working folder: {text}"
    );
}

/// A named change to a case's file.
type Damage<'a> = (&'a str, &'a dyn Fn(&Path));
/// A named change to an anomaly map, and what its error must say.
type MapDamage<'a> = (&'a str, &'a dyn Fn(&Path), &'a [&'a str]);

/// A PNG image of `width × height` pixels.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    RgbImage::from_pixel(width, height, image::Rgb([90, 120, 150]))
        .write_to(&mut bytes, image::ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

fn gray_png(width: u32, height: u32, value: u8) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    GrayImage::from_pixel(width, height, Luma([value]))
        .write_to(&mut bytes, image::ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

#[test]
fn training_config_fields_out_of_range_are_named() {
    let base = tempfile::tempdir().unwrap();
    let case = Case::new(&synthetic_data(base.path()));
    let mut cases = 0;
    for (field, bad) in [
        ("seed", "-1"),
        ("threads", "100000"),
        ("threads", "-2"),
        ("model.image_size", "0"),
        ("model.image_size", "100"),
        ("model.image_size", "100000"),
        ("model.width", "0"),
        ("model.width", "nan"),
        ("model.width", "1000"),
        ("model.sg_reduction", "0"),
        ("model.sg_reduction", "100000"),
        ("model.neighbours", "0"),
        ("model.neighbours", "100000"),
        ("model.position_channels", "3"),
        ("model.position_channels", "100000"),
        ("model.sg_skip_channels", "0"),
        ("model.aux_hidden", "1000000"),
        ("pretrain.epochs", "0"),
        ("pretrain.epochs", "1000000000"),
        ("pretrain.max_steps", "0"),
        ("pretrain.max_steps", "18446744073709551615"),
        ("pretrain.batch_size", "0"),
        ("pretrain.batch_size", "1000000000"),
        ("pretrain.lr_generator", "0"),
        ("pretrain.lr_generator", "nan"),
        ("pretrain.lr_discriminator", "inf"),
        ("pretrain.adam_betas", "[1.0, 0.9]"),
        ("pretrain.alpha", "[-1.0, 0.8, 1.0]"),
        ("pretrain.alpha", "[nan, 0.8, 1.0]"),
        ("pretrain.grid", "0"),
        ("pretrain.grid", "100000"),
        ("pretrain.mask_ratio", "1.5"),
        ("pretrain.mask_ratio", "nan"),
        ("pretrain.rectangles", "[3, 1]"),
        ("pretrain.rectangle_size", "[0, 10]"),
        ("pretrain.rectangle_size", "[10, 100000]"),
        ("pretrain.checkpoint_every", "0"),
        ("pretrain.keep_checkpoints", "0"),
        ("pretrain.keep_checkpoints", "100000"),
        ("pretrain.log_every", "0"),
        ("segnet.steps", "0"),
        ("segnet.steps", "100000000000"),
        ("segnet.normal_per_batch", "100000"),
        ("segnet.simulated_per_batch", "0"),
        ("segnet.simulated_per_batch", "1000000000"),
        ("segnet.lr", "0"),
        ("segnet.lr", "2000"),
        ("segnet.lr", "nan"),
        ("segnet.min_lr", "-1"),
        ("segnet.min_lr", "0.5"),
        ("segnet.momentum", "1.0"),
        ("segnet.momentum", "nan"),
        ("segnet.weight_decay", "-0.1"),
        ("segnet.focal_gamma", "11"),
        ("segnet.focal_gamma", "nan"),
        ("segnet.alpha", "[0.4, -0.6, 0.3]"),
        ("segnet.alpha", "[0.4, 1000, 0.3]"),
        ("segnet.checkpoint_every", "0"),
        ("segnet.validate_every", "0"),
        ("segnet.log_every", "0"),
        ("segnet.keep_checkpoints", "0"),
        ("validation.holdout_fraction", "0.95"),
        ("validation.holdout_fraction", "nan"),
        ("validation.anomalies_per_image", "0"),
        ("validation.anomalies_per_image", "100000"),
        ("inference.batch_size", "0"),
        ("inference.batch_size", "1000000000"),
        ("inference.image_score", "median"),
        ("simulation.logical_probability", "1.5"),
        ("simulation.logical_probability", "nan"),
        ("simulation.self_source_probability", "-0.1"),
        ("simulation.max_textures", "0"),
        ("simulation.max_textures", "100000000"),
        ("simulation.procedural_textures", "0"),
        ("simulation.texture_augmentations", "11"),
        ("simulation.min_mask_fraction", "0.9"),
        ("simulation.max_mask_attempts", "0"),
        ("simulation.max_mask_attempts", "100000"),
        ("simulation.texture_mask.threshold", "1.5"),
        ("simulation.texture_mask.max_scale_exponent", "20"),
        ("simulation.self_mask.rotation_degrees", "400"),
        ("simulation.logical_mask.threshold", "nan"),
        ("simulation.transparency.texture_range", "[0.9, 0.1]"),
        ("simulation.transparency.self_range", "[0.0, 2.0]"),
        ("simulation.transparency.logical_range", "[nan, 1.0]"),
        ("simulation.transparency.texture_fixed", "2"),
        ("simulation.jitter.contrast", "[0.5, 100]"),
        ("simulation.jitter.brightness", "[-2.0, 0.0]"),
        ("simulation.shuffle_grid", "[1, 8]"),
        ("simulation.shuffle_grid", "[2, 1000]"),
        ("simulation.logical_rotation_degrees", "720"),
        ("simulation.categories.weave.logical_probability", "2.0"),
        ("segnet.stepz", "3"),
        ("segment.steps", "3"),
    ] {
        let assignment = format!("{field}={bad}");
        let needle = field.split('.').take(2).collect::<Vec<_>>().join(".");
        refused(&case, &["config", "--set", &assignment], &[&needle]);
        cases += 1;
    }
    // The same values in a config file name the file too.
    for (section, body, needle) in [
        ("segnet", "lr = nan", "segnet.lr"),
        ("model", "image_size = 4096", "model.image_size"),
        ("pretrain", "batch_size = 1000000000", "pretrain.batch_size"),
        (
            "simulation",
            "max_mask_attempts = 0",
            "simulation.max_mask_attempts",
        ),
        ("segnet", "steps = \"many\"", "steps"),
        ("segnet", "steps = 1\nsteps = 2", "steps"),
    ] {
        let file = case.write("bad.toml", format!("[{section}]\n{body}\n"));
        refused(
            &case,
            &["config", "--config", path(&file)],
            &["bad.toml", needle],
        );
        cases += 1;
    }
    refused(
        &case,
        &["config", "--config", path(&case.file("missing.toml"))],
        &["missing.toml"],
    );
    let binary = case.write("binary.toml", [0u8, 159, 146, 150, 255]);
    refused(
        &case,
        &["config", "--config", path(&binary)],
        &["binary.toml"],
    );
    assert!(cases >= 100, "{cases} cases");
}

/// A cluster config over the case's dataset with `extra` replacing or adding sections.
fn cluster(case: &Case, name: &str, store: &str, extra: &str) -> PathBuf {
    case.write(
        &format!("{name}.toml"),
        format!(
            "[run]\nname = \"{name}\"\nstore = \"{store}\"\n\n[[dataset]]\npath = \"{}\"\ncategories = [\"weave\"]\n\n{extra}",
            path(&case.data())
        ),
    )
}

#[test]
fn cluster_configs_out_of_range_are_named() {
    let base = tempfile::tempdir().unwrap();
    let case = Case::new(&synthetic_data(base.path()));
    let store = case.out().join("store");
    let store = path(&store);
    for (extra, needles) in [
        ("[resources]\nworkers = []\n", &["resources.workers"][..]),
        (
            "[resources]\nmax_attempts = 0\n",
            &["resources.max_attempts"][..],
        ),
        (
            "[resources]\nmax_attempts = 100000\n",
            &["resources.max_attempts"][..],
        ),
        (
            "[resources]\nlease_seconds = 0\n",
            &["resources.lease_seconds"][..],
        ),
        (
            "[resources]\nlease_seconds = 18446744073709551\n",
            &["resources.lease_seconds"][..],
        ),
        (
            "[resources]\nlease_seconds = 10\nheartbeat_seconds = 6\n",
            &["resources.heartbeat_seconds"][..],
        ),
        (
            "[resources]\nheartbeat_seconds = 0\n",
            &["resources.heartbeat_seconds"][..],
        ),
        ("[resources]\nworkers = [\"gpu\"]\n", &["gpu"][..]),
        (
            "[resources]\nworkers = [\"cuda:99999\"]\n",
            &["cuda:99999"][..],
        ),
        ("[resources]\nspeed = 3\n", &["speed"][..]),
        (
            "[sweep]\nvalues = { \"segnet.lr\" = [] }\n",
            &["sweep", "segnet.lr"][..],
        ),
        (
            "[sweep]\nvalues = { \"segnet.lr\" = [0.1, 5.0] }\n",
            &["segnet.lr"][..],
        ),
        (
            "[sweep]\nvalues = { \"segnet.stepz\" = [1, 2] }\n",
            &["segnet.stepz"][..],
        ),
        (
            "[sweep]\nvalues = { \"segnet.steps\" = [1,2,3,4,5,6,7,8,9,10], \"segnet.lr\" = [0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08,0.09,0.1], \"seed\" = [1,2,3,4,5,6,7,8,9,10], \"segnet.log_every\" = [1,2,3,4,5,6,7,8,9,10], \"threads\" = [1,2,3,4,5,6,7,8,9,10] }\n",
            &["sweep", "100000 points"][..],
        ),
        (
            "[sweep]\nmode = \"random\"\nsamples = 0\nvalues = { \"seed\" = [1, 2] }\n",
            &["sweep", "samples"][..],
        ),
        (
            "[sweep]\nmode = \"random\"\nsamples = 1000000000\nvalues = { \"seed\" = [1, 2] }\n",
            &["sweep", "samples"][..],
        ),
        (
            "[sweep]\nmode = \"sometimes\"\nvalues = { \"seed\" = [1] }\n",
            &["sometimes"][..],
        ),
        (
            "[sweep]\nmode = \"random\"\nsamples = 4\n[sweep.ranges]\n\"segnet.lr\" = { uniform = [0.1, 0.01] }\n",
            &["ranges.\"segnet.lr\"", "below the maximum"][..],
        ),
        (
            "[sweep]\nmode = \"random\"\nsamples = 4\n[sweep.ranges]\n\"segnet.lr\" = { log_uniform = [0.0, 0.1] }\n",
            &["ranges.\"segnet.lr\"", "above 0"][..],
        ),
        (
            "[sweep]\nmode = \"random\"\nsamples = 4\n[sweep.ranges]\n\"segnet.lr\" = { log_uniform = [-1.0, 0.1] }\n",
            &["ranges.\"segnet.lr\"", "above 0"][..],
        ),
        (
            "[sweep]\nsamples = 4\n[sweep.ranges]\n\"segnet.lr\" = { uniform = [0.01, 0.1] }\n",
            &["ranges.\"segnet.lr\"", "mode = \"random\""][..],
        ),
        (
            "[sweep]\nmode = \"random\"\nsamples = 4\n[sweep.ranges]\n\"segnet.lrr\" = { uniform = [0.01, 0.1] }\n",
            &["segnet.lrr"][..],
        ),
        (
            "[sweep]\nmode = \"random\"\nsamples = 4\n[sweep.ranges]\n\"segnet.lr\" = { normal = [0.01, 0.1] }\n",
            &["normal"][..],
        ),
        (
            "[sweep]\nvalues = { \"seed\" = [1, 2] }\n[sweep.early_stopping]\nrule = \"asha\"\ngrace_steps = 500\nreduction_factor = 1\n",
            &["sweep.early_stopping.reduction_factor"][..],
        ),
        (
            "[sweep]\nvalues = { \"seed\" = [1, 2] }\n[sweep.early_stopping]\nrule = \"asha\"\ngrace_steps = 500\nmetric = \"f1\"\n",
            &["f1"][..],
        ),
        (
            "[sweep]\nvalues = { \"seed\" = [1, 2] }\n[sweep.early_stopping]\nrule = \"asha\"\ngrace_steps = 500\npatience = 3\n",
            &["patience"][..],
        ),
        (
            "[sweep]\nvalues = { \"seed\" = [1, 2] }\n[sweep.early_stopping]\nrule = \"asha\"\ngrace_steps = 250\n",
            &["sweep.early_stopping.grace_steps", "validate_every"][..],
        ),
        (
            "[sweep]\nvalues = { \"seed\" = [1, 2] }\n[sweep.early_stopping]\nrule = \"asha\"\ngrace_steps = 500\n[sweep.budget]\ncategory_steps = 100\n",
            &["sweep.budget.category_steps", "first rung"][..],
        ),
        ("[training.segnet]\nlr = -1\n", &["segnet.lr"][..]),
        (
            "[training.model]\nimage_size = 0\n",
            &["model.image_size"][..],
        ),
        ("[training]\nthreads = 100000\n", &["threads"][..]),
        (
            "[retrain]\nschedule = \"61 * * * *\"\n",
            &["retrain.schedule"][..],
        ),
        ("[retrain]\nevery = \"0s\"\n", &["retrain.every"][..]),
        ("[retrain]\ntolerance = nan\n", &["retrain.tolerance"][..]),
        (
            "[retrain]\nfine_tune_steps = 0\n",
            &["retrain.fine_tune_steps"][..],
        ),
        (
            "[retrain]\nmax_drift_images = 0\n",
            &["retrain.max_drift_images"][..],
        ),
        ("[unknown]\nx = 1\n", &["unknown"][..]),
    ] {
        let config = cluster(&case, "bad", store, extra);
        refused(&case, &["plan", path(&config)], needles);
    }
    for (name, store, needle) in [
        ("../escape", store, "run.name"),
        ("a/b", store, "run.name"),
        (".hidden", store, "run.name"),
        ("ok", "file:///", "run.store"),
        ("ok", "ftp://host/x", "unsupported scheme"),
        ("ok", "s3://", "no bucket"),
    ] {
        let config = cluster(&case, "c", store, "")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("name = \"c\"", &format!("name = \"{name}\""));
        std::fs::write(&config, text).unwrap();
        refused(&case, &["train", &config], &[needle]);
    }
    // The store inside the dataset it reads.
    let inside = case.data().join("weave/store");
    let config = cluster(&case, "inside", path(&inside), "");
    refused(
        &case,
        &["plan", path(&config)],
        &["run.store", "inside one another"],
    );
    // Categories that are no plain folder names, or missing, or twice.
    for (categories, needle) in [
        ("[\"../weave\"]", "../weave"),
        ("[\"wea/ve\"]", "wea/ve"),
        ("[\"nowhere\"]", "nowhere"),
        ("[]", "dataset.categories"),
    ] {
        let config = cluster(&case, "cats", store, "");
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("[\"weave\"]", categories);
        std::fs::write(&config, text).unwrap();
        refused(&case, &["plan", path(&config)], &[needle]);
    }
    let twice = case.write(
        "twice.toml",
        format!(
            "[run]\nname = \"twice\"\nstore = \"{store}\"\n[[dataset]]\npath = \"{0}\"\ncategories = [\"weave\"]\n[[dataset]]\npath = \"{0}\"\ncategories = [\"weave\"]\n",
            path(&case.data())
        ),
    );
    refused(&case, &["plan", path(&twice)], &["weave", "two datasets"]);
    let no_dataset = case.write(
        "none.toml",
        format!("[run]\nname = \"none\"\nstore = \"{store}\"\n"),
    );
    refused(&case, &["plan", path(&no_dataset)], &["dataset"]);
}

/// `slsg simulate` of one category: it reads every training image.
fn simulate(case: &Case, category: &str, needles: &[&str]) {
    refused(
        case,
        &[
            "simulate",
            "--dataset",
            path(&case.data()),
            "--category",
            category,
            "--out",
            path(&case.out()),
            "--count",
            "2",
            "--size",
            "64",
        ],
        needles,
    );
}

/// `slsg plan` of one category: it reads the whole category and its ground truth layout.
fn plan(case: &Case, category: &str, needles: &[&str]) {
    let config = case.write(
        "plan.toml",
        format!(
            "[run]\nname = \"p\"\nstore = \"{}\"\n[[dataset]]\npath = \"{}\"\ncategories = [\"{category}\"]\n",
            path(&case.out().join("store")),
            path(&case.data())
        ),
    );
    refused(case, &["plan", path(&config)], needles);
}

#[test]
fn malformed_datasets_name_the_file() {
    let base = tempfile::tempdir().unwrap();
    let data = synthetic_data(base.path());
    let fresh = || Case::new(&data);

    let images: [Damage; 6] = [
        ("truncated PNG", &|p| {
            let bytes = std::fs::read(p).unwrap();
            std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("empty file", &|p| std::fs::write(p, b"").unwrap()),
        ("text named .png", &|p| {
            std::fs::write(p, b"not an image at all").unwrap()
        }),
        ("PNG header only", &|p| {
            std::fs::write(p, b"\x89PNG\r\n\x1a\n").unwrap()
        }),
        ("zeros", &|p| std::fs::write(p, vec![0u8; 4096]).unwrap()),
        ("JPEG bytes named .png, cut", &|p| {
            let mut bytes = std::io::Cursor::new(Vec::new());
            RgbImage::from_pixel(32, 32, image::Rgb([1, 2, 3]))
                .write_to(&mut bytes, image::ImageFormat::Jpeg)
                .unwrap();
            let bytes = bytes.into_inner();
            std::fs::write(p, &bytes[..bytes.len() * 2 / 3]).unwrap();
        }),
    ];
    for (what, damage) in images {
        for category in ["weave", "tray"] {
            let case = fresh();
            let image = case.data().join(category).join("train/good/003.png");
            damage(&image);
            simulate(
                &case,
                category,
                &[&format!("{category}/train/good/003.png")],
            );
            let _ = what;
        }
    }

    // Test images and their masks.
    let case = fresh();
    std::fs::remove_file(case.data().join("weave/ground_truth/hole/000_mask.png")).unwrap();
    plan(
        &case,
        "weave",
        &["weave/test/hole/000.png", "missing ground-truth mask"],
    );

    let case = fresh();
    std::fs::write(case.data().join("weave/test/good/000.bmp"), png(64, 64)).unwrap();
    plan(&case, "weave", &["000.png", "000.bmp", "same name"]);

    let case = fresh();
    std::fs::write(case.data().join("weave/test/good/x..y.png"), png(64, 64)).unwrap();
    plan(&case, "weave", &["x..y.png"]);

    let case = fresh();
    let odd = case
        .data()
        .join("weave/test/good")
        .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff\xfe.png"));
    std::fs::write(&odd, png(64, 64)).unwrap();
    plan(&case, "weave", &["not UTF-8"]);

    let case = fresh();
    std::fs::write(
        case.data().join("washer/ground_truth/crack/000.png"),
        gray_png(64, 64, 255),
    )
    .unwrap();
    plan(&case, "washer", &["crack/000.png", "two masks", "keep one"]);

    let case = fresh();
    let mask = case.data().join("washer/ground_truth/crack/001_mask.png");
    std::fs::write(&mask, gray_png(10, 12, 255)).unwrap();
    let maps = case.out().join("maps");
    write_oracle_maps(&case.data(), "washer", &maps, std::slice::from_ref(&mask));
    refused(
        &case,
        &[
            "eval",
            "--dataset",
            path(&case.data()),
            "--category",
            "washer",
            "--maps",
            path(&maps),
        ],
        &["washer/ground_truth/crack/001_mask.png", "10×12", "64×64"],
    );

    let case = fresh();
    std::fs::write(
        case.data().join("washer/ground_truth/crack/001_mask.png"),
        b"garbage",
    )
    .unwrap();
    let maps = case.out().join("maps");
    write_oracle_maps(&case.data(), "washer", &maps, &[]);
    refused(
        &case,
        &[
            "eval",
            "--dataset",
            path(&case.data()),
            "--category",
            "washer",
            "--maps",
            path(&maps),
        ],
        &["washer/ground_truth/crack/001_mask.png"],
    );

    // Layout, names and empty folders.
    let case = fresh();
    for entry in std::fs::read_dir(case.data().join("washer/train/good")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    simulate(
        &case,
        "washer",
        &["washer/train/good", "no training images"],
    );
    let case = fresh();
    std::fs::create_dir_all(case.data().join("mystery/stuff")).unwrap();
    simulate(&case, "mystery", &["mystery", "unknown dataset layout"]);
    simulate(&case, "nonexistent", &["nonexistent", "does not exist"]);
    simulate(&case, "../weave", &["../weave"]);
    simulate(&case, "/etc", &["/etc"]);
    simulate(&case, "", &["category"]);
    std::fs::write(case.data().join("afile"), b"x").unwrap();
    simulate(&case, "afile", &["afile"]);

    // MVTec LOCO's defect configs and region masks.
    let loco: [(&str, &str); 6] = [
        ("not json", "defects_config.json"),
        ("[{\"defect_name\": \"x\"}]", "defects_config.json"),
        (
            "[{\"defect_name\": \"x\", \"pixel_value\": 300, \"saturation_threshold\": 1.0, \"relative_saturation\": true}]",
            "defects_config.json",
        ),
        ("{}", "defects_config.json"),
        ("[]", "defects_config.json"),
        (
            "[{\"defect_name\": \"x\", \"pixel_value\": 251, \"saturation_threshold\": -1.0, \"relative_saturation\": true}]",
            "defects_config.json",
        ),
    ];
    for (text, needle) in loco {
        let case = fresh();
        std::fs::write(case.data().join("tray/defects_config.json"), text).unwrap();
        let maps = case.out().join("maps");
        write_oracle_maps_loose(&case.data(), "tray", &maps);
        refused(
            &case,
            &[
                "eval",
                "--dataset",
                path(&case.data()),
                "--category",
                "tray",
                "--maps",
                path(&maps),
            ],
            &[needle],
        );
    }
    let case = fresh();
    std::fs::remove_file(case.data().join("tray/defects_config.json")).unwrap();
    plan(&case, "tray", &["defects_config.json"]);
    let case = fresh();
    let region = first_region(&case.data());
    std::fs::write(&region, gray_png(64, 80, 7)).unwrap();
    let maps = case.out().join("maps");
    write_oracle_maps_loose(&case.data(), "tray", &maps);
    refused(
        &case,
        &[
            "eval",
            "--dataset",
            path(&case.data()),
            "--category",
            "tray",
            "--maps",
            path(&maps),
        ],
        &["000.png"],
    );
    let case = fresh();
    std::fs::remove_dir_all(first_region(&case.data()).parent().unwrap()).unwrap();
    plan(
        &case,
        "tray",
        &["logical_anomalies", "missing ground-truth mask"],
    );
}

/// The first LOCO region mask of the synthetic tray.
fn first_region(data: &Path) -> PathBuf {
    data.join("tray/ground_truth/logical_anomalies/000/000.png")
}

/// Maps that mark each test image's ground truth, written for every test image (`skip` masks
/// are not read: their maps get the image's size from the image).
fn write_oracle_maps(data: &Path, category: &str, maps: &Path, skip: &[PathBuf]) {
    let category = slsg::data::Category::open(data, category).unwrap();
    for test in &category.test {
        let (width, height) = slsg::data::image_size(&test.path).unwrap();
        let truth = match &test.ground_truth {
            Some(slsg::data::GroundTruthSource::Mask(m)) if skip.contains(m) => None,
            _ => slsg::data::GroundTruth::read(test, category.defects.as_ref()).ok(),
        };
        let values = match truth {
            Some(t) => t
                .union_mask()
                .as_bytes()
                .iter()
                .map(|&d| 0.1 + 0.8 * d as f32)
                .collect(),
            None => vec![0.5; (width * height) as usize],
        };
        let map = AnomalyMap {
            width,
            height,
            values,
        };
        write_tiff(&map_path(maps, &category.name, &test.kind, test.id()), &map).unwrap();
    }
}

/// Constant maps at each test image's size, for categories whose ground truth cannot be read.
fn write_oracle_maps_loose(data: &Path, name: &str, maps: &Path) {
    for kind in std::fs::read_dir(data.join(name).join("test")).unwrap() {
        let kind = kind.unwrap();
        for image in std::fs::read_dir(kind.path()).unwrap() {
            let image = image.unwrap().path();
            let (width, height) = slsg::data::image_size(&image).unwrap();
            let stem = image.file_stem().unwrap().to_string_lossy().into_owned();
            let map = AnomalyMap {
                width,
                height,
                values: vec![0.5; (width * height) as usize],
            };
            write_tiff(
                &map_path(maps, name, &kind.file_name().to_string_lossy(), &stem),
                &map,
            )
            .unwrap();
        }
    }
}

#[test]
fn malformed_maps_name_the_map() {
    let base = tempfile::tempdir().unwrap();
    let data = synthetic_data(base.path());
    let eval = |case: &Case, maps: &Path, needles: &[&str]| {
        refused(
            case,
            &[
                "eval",
                "--dataset",
                path(&case.data()),
                "--category",
                "weave",
                "--maps",
                path(maps),
            ],
            needles,
        );
    };
    let damages: [MapDamage; 10] = [
        (
            "missing",
            &|p| std::fs::remove_file(p).unwrap(),
            &["no anomaly map"],
        ),
        (
            "truncated",
            &|p| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
            },
            &["000.tiff"],
        ),
        ("empty", &|p| std::fs::write(p, b"").unwrap(), &["000.tiff"]),
        (
            "text",
            &|p| std::fs::write(p, b"not a tiff").unwrap(),
            &["000.tiff"],
        ),
        (
            "wrong size",
            &|p| {
                write_tiff(
                    p,
                    &AnomalyMap {
                        width: 10,
                        height: 10,
                        values: vec![0.0; 100],
                    },
                )
                .unwrap()
            },
            &["000.tiff", "10×10"],
        ),
        (
            "NaN",
            &|p| {
                let mut v = vec![0.5f32; 64 * 64];
                v[70] = f32::NAN;
                write_tiff(
                    p,
                    &AnomalyMap {
                        width: 64,
                        height: 64,
                        values: v,
                    },
                )
                .unwrap()
            },
            &["000.tiff", "non-finite"],
        ),
        (
            "infinity",
            &|p| {
                let mut v = vec![0.5f32; 64 * 64];
                v[3] = f32::INFINITY;
                write_tiff(
                    p,
                    &AnomalyMap {
                        width: 64,
                        height: 64,
                        values: v,
                    },
                )
                .unwrap()
            },
            &["000.tiff", "non-finite"],
        ),
        (
            "RGB",
            &|p| {
                let rgb: ImageBuffer<image::Rgb<u8>, Vec<u8>> = ImageBuffer::new(64, 64);
                rgb.save_with_format(p, image::ImageFormat::Tiff).unwrap()
            },
            &["000.tiff", "one channel"],
        ),
        (
            "16-bit float",
            &|p| write_f16_tiff(p, 64, 64),
            &["000.tiff", "16-bit float"],
        ),
        (
            "a folder",
            &|p| {
                std::fs::remove_file(p).unwrap();
                std::fs::create_dir_all(p).unwrap();
            },
            &["000.tiff"],
        ),
    ];
    for (what, damage, needles) in damages {
        let case = Case::new(&data);
        let maps = case.out().join("maps");
        write_oracle_maps(&case.data(), "weave", &maps, &[]);
        damage(&maps.join("weave/test/good/000.tiff"));
        eval(&case, &maps, needles);
        let _ = what;
    }
    let case = Case::new(&data);
    eval(&case, &case.out().join("nowhere"), &["no anomaly map"]);
}

/// One channel of 16-bit IEEE floats: a TIFF sample type the maps are not read in.
struct Gray16Float;

impl tiff::encoder::colortype::ColorType for Gray16Float {
    type Inner = u16;
    const TIFF_VALUE: tiff::tags::PhotometricInterpretation =
        tiff::tags::PhotometricInterpretation::BlackIsZero;
    const BITS_PER_SAMPLE: &'static [u16] = &[16];
    const SAMPLE_FORMAT: &'static [tiff::tags::SampleFormat] = &[tiff::tags::SampleFormat::IEEEFP];

    fn horizontal_predict(row: &[u16], result: &mut Vec<u16>) {
        result.extend_from_slice(row);
    }
}

/// A one-channel 16-bit float TIFF of ones.
fn write_f16_tiff(path: &Path, width: u32, height: u32) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = tiff::encoder::TiffEncoder::new(file).unwrap();
    let ones: Vec<u16> = vec![0x3C00; (width * height) as usize];
    encoder
        .write_image::<Gray16Float>(width, height, &ones)
        .unwrap();
}

#[test]
fn damaged_model_folders_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let data = synthetic_data(base.path());
    let trained = tempfile::tempdir().unwrap();
    let out = trained.path().join("fit");
    let fit = Command::new(slsg_tests::slsg_binary())
        .args([
            "fit",
            "--dataset",
            path(&data),
            "--category",
            "weave",
            "--out",
            path(&out),
            "--set",
            "model.image_size=32",
            "--set",
            "model.width=0.125",
            "--set",
            "pretrain.max_steps=2",
            "--set",
            "segnet.steps=2",
        ])
        .env("SLSG_LOG", "error")
        .output()
        .unwrap();
    assert!(
        fit.status.success(),
        "{}",
        String::from_utf8_lossy(&fit.stderr)
    );
    let model = out.join("segnet/model");
    let card = std::fs::read_to_string(model.join("model.json")).unwrap();
    let edits: [Damage; 12] = [
        ("no card", &|m| {
            std::fs::remove_file(m.join("model.json")).unwrap()
        }),
        ("no weights", &|m| {
            std::fs::remove_file(m.join("weights.ckpt")).unwrap()
        }),
        ("card not JSON", &|m| {
            std::fs::write(m.join("model.json"), "{").unwrap()
        }),
        ("format 99", &|m| {
            std::fs::write(
                m.join("model.json"),
                card.replace("\"format\": 2", "\"format\": 99"),
            )
            .unwrap()
        }),
        ("unknown key", &|m| {
            std::fs::write(
                m.join("model.json"),
                card.replacen('{', "{\"colour\": 3,", 1),
            )
            .unwrap()
        }),
        ("image_size 0", &|m| {
            std::fs::write(
                m.join("model.json"),
                card.replace("\"image_size\": 32", "\"image_size\": 0"),
            )
            .unwrap()
        }),
        ("image_size 4096", &|m| {
            std::fs::write(
                m.join("model.json"),
                card.replace("\"image_size\": 32", "\"image_size\": 4096"),
            )
            .unwrap()
        }),
        ("sg_reduction 0", &|m| {
            std::fs::write(
                m.join("model.json"),
                card.replace("\"sg_reduction\": 8", "\"sg_reduction\": 0"),
            )
            .unwrap()
        }),
        ("another width", &|m| {
            std::fs::write(
                m.join("model.json"),
                card.replace("\"width\": 0.125", "\"width\": 0.25"),
            )
            .unwrap()
        }),
        ("weights truncated", &|m| {
            let b = std::fs::read(m.join("weights.ckpt")).unwrap();
            std::fs::write(m.join("weights.ckpt"), &b[..b.len() - 100]).unwrap()
        }),
        ("weights not a checkpoint", &|m| {
            std::fs::write(m.join("weights.ckpt"), b"hello").unwrap()
        }),
        ("weights a flipped byte", &|m| {
            let mut b = std::fs::read(m.join("weights.ckpt")).unwrap();
            let last = b.len() - 1;
            b[last] ^= 0x55;
            std::fs::write(m.join("weights.ckpt"), b).unwrap()
        }),
    ];
    for (what, edit) in edits {
        let case = Case::new(&data);
        let copy = case.file("model");
        let copied = Command::new("cp")
            .args(["-a", path(&model), path(&copy)])
            .status()
            .unwrap();
        assert!(copied.success());
        edit(&copy);
        let needle = if what.starts_with("weights") || what == "no weights" {
            "weights.ckpt"
        } else if what == "another width" {
            "does not fit"
        } else {
            "model.json"
        };
        eprintln!("model folder case: {what}");
        refused(
            &case,
            &[
                "predict",
                "--model",
                path(&copy),
                "--input",
                path(&case.data().join("weave/test/good/000.png")),
                "--out",
                path(&case.out()),
            ],
            &[needle],
        );
    }
}

#[test]
fn flags_out_of_range_are_named() {
    let base = tempfile::tempdir().unwrap();
    let case = Case::new(&synthetic_data(base.path()));
    let data = path(&case.data()).to_string();
    let out = path(&case.out()).to_string();
    let image = path(&case.data().join("weave/test/good/000.png")).to_string();
    let texture_file = case.data().join("weave/test/good/000.png");
    let inside_data = case.data().join("weave/out");
    let maps_in_data = case.data().join("maps");
    let fifo = case.out().join("fifo.png");
    std::fs::create_dir_all(case.out()).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["synth", "--out", &out, "--size", "0"], vec!["--size"]),
        (
            vec!["synth", "--out", &out, "--size", "100000"],
            vec!["--size"],
        ),
        (
            vec!["synth", "--out", &out, "--train", "0"],
            vec!["--train"],
        ),
        (
            vec![
                "synth",
                "--out",
                &out,
                "--test-per-defect",
                "18446744073709551616",
            ],
            vec!["--test-per-defect"],
        ),
        (vec!["synth", "--out", &out, "--seed", "-1"], vec!["--seed"]),
        (
            vec![
                "simulate",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--out",
                &out,
                "--count",
                "0",
            ],
            vec!["--count"],
        ),
        (
            vec![
                "simulate",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--out",
                &out,
                "--count",
                "18446744073709551615",
            ],
            vec!["--count"],
        ),
        (
            vec![
                "simulate",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--out",
                &out,
                "--size",
                "0",
            ],
            vec!["--size"],
        ),
        (
            vec![
                "simulate",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--out",
                &out,
                "--size",
                "100000",
            ],
            vec!["--size"],
        ),
        (
            vec![
                "simulate",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--out",
                &out,
                "--textures",
                "/nonexistent-textures",
            ],
            vec!["/nonexistent-textures"],
        ),
        (
            vec![
                "simulate",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--out",
                &out,
                "--textures",
                path(&texture_file),
            ],
            vec!["000.png"],
        ),
        (
            vec![
                "fit",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--out",
                path(&inside_data),
            ],
            vec!["--out", "inside one another"],
        ),
        (
            vec![
                "fit",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--out",
                &out,
                "--device",
                "gpu",
            ],
            vec!["gpu"],
        ),
        (
            vec![
                "fit",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--out",
                &out,
                "--device",
                "cuda:99999",
            ],
            vec!["cuda:99999"],
        ),
        (
            vec![
                "predict",
                "--model",
                &out,
                "--input",
                &data,
                "--out",
                path(&maps_in_data),
            ],
            vec!["inside one another"],
        ),
        (
            vec![
                "predict",
                "--model",
                &out,
                "--input",
                &image,
                "--out",
                &out,
                "--batch-size",
                "0",
            ],
            vec!["--batch-size"],
        ),
        (
            vec![
                "predict",
                "--model",
                &out,
                "--input",
                &image,
                "--out",
                &out,
                "--batch-size",
                "1000000000",
            ],
            vec!["--batch-size"],
        ),
        (
            vec![
                "predict",
                "--model",
                &out,
                "--input",
                path(&fifo),
                "--out",
                &out,
            ],
            vec!["fifo.png", "not a regular file"],
        ),
        (
            vec![
                "predict",
                "--model",
                "s3://b/models/weave/latest",
                "--input",
                &image,
                "--out",
                &out,
            ],
            vec!["latest"],
        ),
        (
            vec![
                "predict",
                "--model",
                "s3://b/weave/current",
                "--input",
                &image,
                "--out",
                &out,
            ],
            vec!["/models/"],
        ),
        (
            vec![
                "eval",
                "--dataset",
                &data,
                "--category",
                "weave",
                "--maps",
                &out,
                "--image-score",
                "median",
            ],
            vec!["median"],
        ),
        (
            vec![
                "worker",
                "--coordinator",
                "http://127.0.0.1:1",
                "--connect-seconds",
                "0",
            ],
            vec!["--connect-seconds"],
        ),
        (
            vec![
                "worker",
                "--coordinator",
                "http://127.0.0.1:1",
                "--stall-seconds",
                "5",
            ],
            vec!["--stall-seconds"],
        ),
        (
            vec![
                "worker",
                "--coordinator",
                "not a url",
                "--connect-seconds",
                "1",
            ],
            vec!["not a url"],
        ),
        (
            vec![
                "worker",
                "--coordinator",
                "http://127.0.0.1:1",
                "--device",
                "tpu",
            ],
            vec!["tpu"],
        ),
        (
            vec!["coordinator", "nowhere.toml", "--insecure"],
            vec!["nowhere.toml"],
        ),
        (
            vec![
                "coordinator",
                "nowhere.toml",
                "--insecure",
                "--max-connections",
                "0",
            ],
            vec!["--max-connections"],
        ),
        (
            vec![
                "coordinator",
                "nowhere.toml",
                "--insecure",
                "--idle-seconds",
                "1",
            ],
            vec!["--idle-seconds"],
        ),
        (
            vec![
                "coordinator",
                "nowhere.toml",
                "--insecure",
                "--max-open-runs",
                "0",
            ],
            vec!["--max-open-runs"],
        ),
        (
            vec![
                "coordinator",
                "nowhere.toml",
                "--insecure",
                "--lock-seconds",
                "3",
            ],
            vec!["--lock-seconds"],
        ),
        (
            vec![
                "coordinator",
                "nowhere.toml",
                "--insecure",
                "--once",
                "--linger",
                "-5s",
            ],
            vec!["--linger"],
        ),
        (vec!["status", "not a url"], vec!["not a url"]),
        (
            vec!["models", "list", "/nonexistent-store"],
            vec!["/nonexistent-store"],
        ),
        (
            vec!["models", "history", "/nonexistent-store", "weave"],
            vec!["/nonexistent-store"],
        ),
        (
            vec!["models", "promote", &out, "../weave", "v1"],
            vec!["../weave"],
        ),
        (
            vec!["models", "show", &out, "weave"],
            vec!["weave", "no current model"],
        ),
        (
            vec!["retrain", "nowhere.toml", "--now"],
            vec!["nowhere.toml"],
        ),
        (
            vec![
                "submit",
                "nowhere.toml",
                "--coordinator",
                "http://127.0.0.1:1",
            ],
            vec!["nowhere.toml"],
        ),
    ];
    for (args, needles) in cases {
        refused(&case, &args, &needles);
    }
}
