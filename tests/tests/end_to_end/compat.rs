//! What an earlier build wrote keeps working: a model folder and an interrupted `fit` written by
//! the Burn 0.21 build (`fixtures/burn-0.21/`) load and score as they did then, through the
//! binary as a user meets them. The safety net of a Burn upgrade: a model in production must
//! never become unreadable, or score otherwise, silently.
//!
//! The fixtures were made with the Burn 0.21 build (tree fee5a95) in an empty folder:
//! `slsg synth --out data --size 32 --train 6 --test-per-defect 1` (its `weave` kept),
//! `slsg fit --dataset data --category weave --out out --config fit.toml`, then
//! `slsg predict --model out/segnet/model --input data/weave --out expected --overlay none`.
//! `model/` is `out/segnet/model`; `interrupted/` is `out` as a `fit` stopped after its step-5
//! SegNet checkpoint leaves it (the finished pre-training stage, that checkpoint, the curve to
//! step 5).

use std::path::{Path, PathBuf};

use slsg::metrics::read_tiff;
use slsg_tests::*;

/// Within the backends' parity tolerance: maps are probabilities, compared absolutely.
const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/burn-0.21")
}

/// `scores.csv`'s scores by image, named `<kind>/<file>` whatever folder was scored.
fn scores(csv: &Path) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let image = Path::new(fields[0]);
            let kind = image.parent().and_then(Path::file_name).unwrap();
            let name = format!(
                "{}/{}",
                kind.to_string_lossy(),
                image.file_name().unwrap().to_string_lossy()
            );
            (name, fields[1].parse().unwrap())
        })
        .collect()
}

/// Scores `model` on the fixture's test split and compares every score and map with what the
/// 0.21 build wrote.
fn scores_as_before(model: &Path, tolerance: f32) {
    let out = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    ok(slsg(
        &[
            "predict",
            "--model",
            path(model),
            "--input",
            path(&fixtures.join("data/weave")),
            "--out",
            path(out.path()),
            "--overlay",
            "none",
        ],
        &[],
    ));
    let expected = scores(&fixtures.join("expected/scores.csv"));
    let got = scores(&out.path().join("scores.csv"));
    assert_eq!(got.len(), expected.len());
    for ((name, before), (got_name, now)) in expected.iter().zip(&got) {
        assert_eq!(name, got_name);
        assert!(
            (before - now).abs() <= tolerance as f64,
            "{name}: score {now}, the 0.21 build gave {before}"
        );
    }
    let maps = files_under(&fixtures.join("expected/weave"));
    assert_eq!(maps.len(), expected.len());
    for map in maps {
        let before = read_tiff(&fixtures.join("expected/weave").join(&map), None).unwrap();
        let now = read_tiff(&out.path().join("weave").join(&map), None).unwrap();
        assert_eq!(
            (now.width, now.height),
            (before.width, before.height),
            "{map}"
        );
        let worst = before
            .values
            .iter()
            .zip(&now.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= tolerance,
            "{map}: differs by {worst:.2e} from the 0.21 build's"
        );
    }
}

#[test]
fn a_model_folder_of_the_burn_0_21_build_scores_as_it_did() {
    scores_as_before(&fixtures().join("model"), TOLERANCE);
}

#[test]
fn a_fit_interrupted_under_the_burn_0_21_build_resumes_where_it_stopped() {
    let out = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .args([
            "-r",
            path(&fixtures().join("interrupted/.")),
            path(out.path()),
        ])
        .status()
        .unwrap();
    assert!(copied.success());
    let fixtures = fixtures();
    let output = slsg(
        &[
            "fit",
            "--dataset",
            path(&fixtures.join("data")),
            "--category",
            "weave",
            "--out",
            path(out.path()),
            "--config",
            path(&fixtures.join("fit.toml")),
        ],
        &[("SLSG_LOG", "info")],
    );
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    let printed = ok(output);
    assert!(
        log.contains("resumes from its checkpoint at step 5"),
        "{log}"
    );
    assert!(
        printed.contains("finished before"),
        "pre-training kept: {printed}"
    );
    // The five steps after the checkpoint are those the 0.21 build ran, so the model is the
    // one it finished with, within the backends' tolerance after five more steps.
    scores_as_before(&out.path().join("segnet/model"), 10.0 * TOLERANCE);
}
