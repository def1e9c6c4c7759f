//! The GPU code path end to end, on Burn's wgpu backend (Mesa's lavapipe in CI): a fit on wgpu
//! scores in the range of the same fit on Flex, its model serves on either
//! backend, a cluster run trains on a wgpu and a cpu worker slot at once, and a device that is
//! not there is refused in one line before any work starts.
//!
//! Sizes come from the GPU checks' tiny config (`scripts/gpu-tiny.toml`) and the data from the
//! GPU check's own `synth` arguments, and every run keeps its tuning results in
//! `<target>/tmp/gpu-cache`, the cache `.ci/run`'s GPU check fills first: these runs compile
//! kernels (most of their time on lavapipe) but seldom tune them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use slsg_tests::{fails_with, ok, path, read_json, slsg, slsg_binary};

fn tiny_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu-tiny.toml")
}

/// The cache folder the GPU check leaves in CI (its `gpu/` holds the tuning results).
fn gpu_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpu-cache")
}

/// The synthetic dataset as `scripts/gpu-check.sh --size tiny` writes it.
fn tiny_data(dir: &Path) -> PathBuf {
    slsg_tests::synthetic_data_at(dir, "32")
}

fn fit_args(data: &Path, out: &Path, device: &str) -> Vec<String> {
    let mut args: Vec<String> = ["fit", "--dataset", path(data), "--category", "washer"]
        .map(String::from)
        .to_vec();
    args.extend([
        "--out".into(),
        path(out).into(),
        "--config".into(),
        path(&tiny_config()).into(),
        "--device".into(),
        device.into(),
        "--cache".into(),
        path(&gpu_cache()).into(),
    ]);
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `image → score` from a `predict` run's `scores.csv`.
fn scores(csv: &Path) -> BTreeMap<String, f64> {
    std::fs::read_to_string(csv)
        .unwrap_or_else(|e| panic!("{}: {e}", csv.display()))
        .lines()
        .skip(1)
        .map(|line| {
            let mut fields = line.split(',');
            let image = fields.next().expect("an image").to_string();
            let score = fields.next().expect("a score").parse().expect("a number");
            (image, score)
        })
        .collect()
}

/// Flex fits from this many seeds give the range a wgpu fit's test AUROC must fall in.
const FLEX_SEEDS: u64 = 8;

/// How far outside the Flex seeds' range a wgpu fit's AUROC may fall: a few rank swaps on a
/// 24-image test split.
const AUROC_MARGIN: f64 = 0.1;

#[test]
fn a_fit_on_wgpu_scores_in_the_range_of_flex_fits_and_serves_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let on_gpu = dir.path().join("wgpu");
    // Twelve steps from a seed cannot teach the model the category, so its test AUROC is that
    // seed's luck: the wgpu fit is compared with the spread of Flex fits from several seeds
    // (measured: image AUROC 0.38–0.70), not with one. They run while wgpu compiles kernels.
    let gpu_fit = Command::new(slsg_binary())
        .args(fit_args(&data, &on_gpu, "wgpu"))
        .env("SLSG_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running slsg");
    let evaluation = |run: &Path| read_json(&run.join("segnet/eval.json"));
    let metrics = ["image_auroc", "pixel_auroc"];
    let mut flex_range = [(f64::INFINITY, f64::NEG_INFINITY); 2];
    for seed in 0..FLEX_SEEDS {
        let on_cpu = dir.path().join(format!("cpu-{seed}"));
        let mut args = fit_args(&data, &on_cpu, "cpu");
        args.extend(["--set".into(), format!("seed={seed}")]);
        ok(slsg(&strs(&args), &[]));
        for (metric, (low, high)) in metrics.iter().zip(&mut flex_range) {
            let value = evaluation(&on_cpu)[metric].as_f64().unwrap();
            (*low, *high) = (low.min(value), high.max(value));
        }
    }
    ok(gpu_fit.wait_with_output().expect("waiting for slsg"));
    for (metric, (low, high)) in metrics.iter().zip(flex_range) {
        let gpu = evaluation(&on_gpu)[metric].as_f64().unwrap();
        assert!(
            (low - AUROC_MARGIN..=high + AUROC_MARGIN).contains(&gpu),
            "test {metric}: {gpu} trained on wgpu, {low:.3}–{high:.3} on Flex from {FLEX_SEEDS} seeds"
        );
    }

    // The model trained on wgpu scores the test split the same on the CPU and on wgpu.
    let predicted = |device: &str| {
        let out = dir.path().join(format!("maps-{device}"));
        let cache = gpu_cache();
        ok(slsg(
            &[
                "predict",
                "--model",
                path(&on_gpu.join("segnet/model")),
                "--input",
                path(&data.join("washer")),
                "--out",
                path(&out),
                "--device",
                device,
                "--batch-size",
                "2",
                "--cache",
                path(&cache),
            ],
            &[],
        ));
        scores(&out.join("scores.csv"))
    };
    let (cpu, gpu) = (predicted("cpu"), predicted("wgpu"));
    let test_images = slsg::walk::files(&data.join("washer/test"), slsg::data::is_image_file)
        .unwrap()
        .len();
    assert_eq!(cpu.len(), test_images, "the test split of washer");
    for (image, score) in &cpu {
        let other = gpu[image];
        assert!(
            (score - other).abs() <= 1e-4,
            "{image}: {score} on the CPU, {other} on wgpu"
        );
    }
}

/// The training sections of the tiny config under `[training]`, for a cluster config.
fn training_sections() -> String {
    std::fs::read_to_string(tiny_config())
        .unwrap()
        .lines()
        .map(|line| match line.strip_prefix('[') {
            Some(section) => format!("[training.{section}"),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_cluster_run_trains_on_a_wgpu_and_a_cpu_slot_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let config = dir.path().join("mixed.toml");
    std::fs::write(
        &config,
        format!(
            r#"[run]
name = "mixed"
store = "{store}"

[[dataset]]
path = "{data}"
categories = ["washer"]

{training}

[sweep.values]
"segnet.lr" = [0.02, 0.04]

[resources]
workers = ["wgpu", "cpu"]
"#,
            store = path(&dir.path().join("store")),
            data = path(&data),
            training = training_sections(),
        ),
    )
    .unwrap();
    let cache = gpu_cache();
    let run = Command::new(slsg_binary())
        .args(["train", path(&config), "--cache", path(&cache)])
        .env("SLSG_LOG", "info")
        .env("SLSG_LOG_FORMAT", "json")
        .output()
        .expect("running slsg");
    let log = String::from_utf8_lossy(&run.stderr).into_owned();
    ok(run);
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let devices: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e["message"] == "registered")
        .map(|e| {
            (
                e["worker"].as_str().unwrap().to_string(),
                e["device"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut used: Vec<&str> = events
        .iter()
        .filter(|e| e["message"] == "leased" && e["worker"].is_string())
        .filter_map(|e| devices.get(e["worker"].as_str()?).map(String::as_str))
        .collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used, ["cpu", "wgpu"], "devices that ran jobs\n{log}");
    let summary = read_json(&dir.path().join("store/runs/mixed/summary.json"));
    let jobs = slsg_tests::summary_jobs(&summary);
    assert_eq!(jobs.len(), 3, "{summary}");
    assert!(jobs.iter().all(|j| j.3 == "done"), "{summary}");
}

#[test]
fn a_device_that_is_not_there_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let out = dir.path().join("run");
    let fit =
        |device: &str, envs: &[(&str, &str)]| slsg(&strs(&fit_args(&data, &out, device)), envs);
    // An adapter index wgpu does not list: the ones it does are named.
    fails_with(
        fit("wgpu:63", &[]),
        &[
            "device `wgpu:63` is not available",
            "no adapter 63",
            "wgpu lists 0 ",
        ],
    );
    // A build without CUDA says how to get one; a build with it (`.ci/run` tests that one) on
    // a machine without an NVIDIA driver says so.
    let version = slsg(&["--version"], &[]);
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    let backends = version
        .split_once("(backends: ")
        .unwrap_or_else(|| panic!("`slsg --version` lists its backends: {version}"))
        .1;
    if !backends.contains("cuda") {
        fails_with(fit("cuda:0", &[]), &["cuda:0", "--features cuda"]);
    } else if !Path::new("/proc/driver/nvidia").exists() {
        let refused = fit("cuda:0", &[]);
        let stderr = String::from_utf8_lossy(&refused.stderr).trim().to_string();
        fails_with(
            refused,
            &["device `cuda:0` is not available", "no NVIDIA driver"],
        );
        assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    }
    // No Vulkan driver at all (the loader finds none): every command that runs on a device
    // says so at once, before it reads data or reaches a coordinator.
    let no_driver = [("VK_ICD_FILENAMES", "/nonexistent/icd.json")];
    let missing = [
        "device `wgpu` is not available",
        "lists no Vulkan, Metal or DirectX 12 adapter",
    ];
    let refused = fit("wgpu", &no_driver);
    let stderr = String::from_utf8_lossy(&refused.stderr).trim().to_string();
    fails_with(refused, &missing);
    assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    fails_with(
        slsg(
            &[
                "predict",
                "--model",
                "nowhere",
                "--input",
                path(&data),
                "--out",
                path(&dir.path().join("maps")),
                "--device",
                "wgpu",
            ],
            &no_driver,
        ),
        &missing,
    );
    fails_with(
        slsg(
            &[
                "worker",
                "--coordinator",
                "http://127.0.0.1:9",
                "--device",
                "cpu",
                "--device",
                "wgpu",
            ],
            &no_driver,
        ),
        &missing,
    );
    let config = dir.path().join("gpu.toml");
    std::fs::write(
        &config,
        format!(
            "[run]\nname = \"gpu\"\nstore = \"{}\"\n[[dataset]]\npath = \"{}\"\n[resources]\nworkers = [\"cpu\", \"wgpu\"]\n",
            path(&dir.path().join("store")),
            path(&data)
        ),
    )
    .unwrap();
    let text = fails_with(
        slsg(&["train", path(&config)], &no_driver),
        &["resources.workers", "device `wgpu` is not available"],
    );
    assert!(
        !dir.path().join("store/runs").exists(),
        "nothing was started\n{text}"
    );
    // The autotune level, by flag or by environment.
    fails_with(
        slsg(
            &[
                "fit",
                "--autotune",
                "fast",
                "--dataset",
                "d",
                "--category",
                "c",
                "--out",
                "o",
            ],
            &[],
        ),
        &[
            "--autotune",
            "`fast`",
            "minimal, balanced, extensive or full",
        ],
    );
    fails_with(
        fit("wgpu", &[("SLSG_AUTOTUNE", "fast")]),
        &["`fast`", "minimal, balanced, extensive or full"],
    );
}
