//! Embedded runs (`slsg train`: coordinator and two workers in one process, local store): a
//! two-category, two-point sweep publishes every artifact and a re-run trains nothing; bad
//! input fails only the jobs it touches, with the file or field named; failed jobs run again
//! with `--retry-failed` once their cause is fixed.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use slsg_tests::*;

fn modified(file: &std::path::Path) -> SystemTime {
    std::fs::metadata(file)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

#[test]
fn a_sweep_publishes_every_artifact_and_a_rerun_trains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store = dir.path().join("store");
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "sweep",
            store: path(&store),
            data: &data,
            categories: &["weave", "washer"],
            learning_rates: &[0.05, 0.1],
            segnet_steps: 40,
        },
    );

    let run = slsg(
        &["train", path(&config)],
        &[("SLSG_LOG", "info"), ("SLSG_LOG_FORMAT", "json")],
    );
    let log = String::from_utf8_lossy(&run.stderr).into_owned();
    let first = ok(run);
    assert!(first.contains("0 of 6 jobs already finished"), "{first}");
    // One log line per lease: the workers in this process leave it to the coordinator's.
    let leases: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["message"] == "leased")
        .collect();
    assert_eq!(leases.len(), 6, "{log}");
    assert!(
        leases
            .iter()
            .all(|event| ["run", "job", "kind", "category", "worker"]
                .iter()
                .all(|field| event[field].is_string())),
        "{log}"
    );

    let summary = read_json(&store.join("runs/sweep/summary.json"));
    let jobs = summary_jobs(&summary);
    assert_eq!(
        jobs.len(),
        6,
        "per category one pre-training job and one SegNet job per sweep point"
    );
    for (id, kind, category, state, attempts) in &jobs {
        assert_eq!(
            (state.as_str(), *attempts),
            ("done", 1),
            "{kind} {category} {id}"
        );
    }
    let pretrain_ids: Vec<&String> = jobs
        .iter()
        .filter(|j| j.1 == "pretrain")
        .map(|j| &j.0)
        .collect();
    assert_eq!(
        pretrain_ids.len(),
        2,
        "the two sweep points share one pre-training job per category"
    );

    let files = files_under(&store);
    let triples: Vec<(String, String, String)> = jobs
        .iter()
        .map(|j| (j.0.clone(), j.1.clone(), j.2.clone()))
        .collect();
    for key in expected_artifacts("sweep", &triples) {
        assert!(
            files.contains(&key),
            "{key} missing from the store:\n{}",
            files.join("\n")
        );
    }
    for (id, kind, category, ..) in &jobs {
        let stage = if kind == "pretrain" {
            "pretrain"
        } else {
            "segnet"
        };
        let prefix = format!("runs/sweep/jobs/{id}/checkpoints/{stage}-");
        assert!(
            files.iter().any(|f| f.starts_with(&prefix)),
            "no {stage} checkpoint for {id}"
        );
        if kind == "segnet" {
            for test in std::fs::read_dir(data.join(category).join("test"))
                .unwrap()
                .flatten()
            {
                let kind_dir = test.file_name().into_string().unwrap();
                for image in std::fs::read_dir(test.path()).unwrap().flatten() {
                    let stem = image
                        .path()
                        .file_stem()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    let map =
                        format!("runs/sweep/jobs/{id}/maps/{category}/test/{kind_dir}/{stem}.tiff");
                    assert!(files.contains(&map), "{map} missing");
                }
            }
            let eval = read_json(&store.join(format!("runs/sweep/jobs/{id}/eval.json")));
            assert!(eval["image_auroc"].is_number(), "{eval}");
        }
    }

    for category in ["weave", "washer"] {
        let board = summary["status"]["leaderboard"][category]
            .as_array()
            .expect("a leaderboard per category");
        assert_eq!(board.len(), 2, "both sweep points ranked");
        let scores: Vec<f64> = board
            .iter()
            .map(|e| e["validation_score"].as_f64().expect("validation score"))
            .collect();
        assert!(scores[0] >= scores[1], "ranked on validation: {scores:?}");
        let version =
            std::fs::read_to_string(store.join(format!("models/{category}/current"))).unwrap();
        assert_eq!(
            version,
            format!("sweep-{}", board[0]["job"].as_str().unwrap()),
            "the best validation point is registered"
        );
        let card =
            read_json(&store.join(format!("models/{category}/versions/{version}/card.json")));
        assert_eq!(card["job"], board[0]["job"]);
        // The model card keeps where simulated anomalies landed, as `auto` decided it.
        let model_card =
            read_json(&store.join(format!("models/{category}/versions/{version}/model.json")));
        let foreground = if category == "washer" { "otsu" } else { "none" };
        assert_eq!(
            model_card["training"]["foreground"]["method"], foreground,
            "{category}: {model_card}"
        );
        // The final table names the winning sweep point and the image score of its AUROC.
        let score = card["image_score"]
            .as_str()
            .expect("the card keeps its image score");
        let point: Vec<String> = board[0]["point"]
            .as_object()
            .expect("a sweep point")
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().expect("a value")))
            .collect();
        let line = first
            .lines()
            .find(|l| l.starts_with(category) && l.contains(&format!("versions/{version}")))
            .unwrap_or_else(|| panic!("no summary line for {category}:\n{first}"));
        assert!(
            line.contains(&format!("({score})"))
                && line.ends_with(&format!("({})", point.join(" "))),
            "{line}"
        );
        let report = std::fs::read_to_string(store.join("runs/sweep/report.html")).unwrap();
        assert!(
            report.contains(&format!("({score})</td>")),
            "the report's leaderboard names the image score"
        );
        let listed = ok(slsg(&["models", "list", path(&store)], &[]));
        assert!(
            listed.contains(&format!("test image AUROC ({score})")),
            "{listed}"
        );
        let model = store.join(format!("models/{category}/versions/{version}"));
        assert!(model.join("model.json").exists() && model.join("weights.ckpt").exists());
    }

    let printed = first
        .lines()
        .find_map(|line| {
            line.strip_prefix(
                "the run's report, with curves and pictures of what each model does: ",
            )
        })
        .unwrap_or_else(|| panic!("no report line:\n{first}"));
    assert_eq!(Path::new(printed), store.join("runs/sweep/report.html"));
    check_report_in_a_browser(&store, "sweep", &["washer", "weave"], dir.path());

    let results: Vec<_> = jobs
        .iter()
        .map(|j| store.join(format!("runs/sweep/jobs/{}/result.json", j.0)))
        .collect();
    let before: Vec<SystemTime> = results.iter().map(|f| modified(f)).collect();
    let files_before = files_under(&store);
    let again = ok(slsg(&["train", path(&config)], &[]));
    assert!(again.contains("6 of 6 jobs already finished"), "{again}");
    let after: Vec<SystemTime> = results.iter().map(|f| modified(f)).collect();
    assert_eq!(before, after, "no job ran again");
    assert_eq!(
        files_before,
        files_under(&store),
        "a re-run adds and removes nothing"
    );

    // A registered model named by its path in a local store, the way a URL names it.
    let maps = dir.path().join("maps");
    let predicted = ok(slsg(
        &[
            "predict",
            "--model",
            path(&store.join("models/weave/current")),
            "--input",
            path(&data.join("weave/test/good/000.png")),
            "--out",
            path(&maps),
            "--cache",
            path(&dir.path().join("cache")),
        ],
        &[],
    ));
    assert!(maps.join("scores.csv").is_file(), "{predicted}");
}

/// The run's report as Chromium shows it: no console message, nothing loaded from elsewhere,
/// per category a ROC, the SegNet losses and the score histogram, gallery pictures that decode,
/// the sweep's parallel coordinates; and `slsg report` draws the same page again from the store.
fn check_report_in_a_browser(store: &Path, run: &str, categories: &[&str], dir: &Path) {
    let report = store.join(format!("runs/{run}/report.html"));
    let page = browse(
        &format!("file://{}", report.display()),
        &screenshot_path("report.png"),
        1400,
        2000,
    );
    assert!(page.console.is_empty(), "console: {:?}", page.console);
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in page.dom.match_indices(attribute) {
            let value = &page.dom[at + attribute.len()..];
            assert!(
                value.starts_with("data:") || value.starts_with('#'),
                "the report loads {}",
                &value[..value.len().min(80)]
            );
        }
    }
    for category in categories {
        for chart in [
            "image ROC",
            "pixel ROC",
            "SegNet losses",
            "test image scores",
        ] {
            assert!(
                page.dom
                    .contains(&format!("aria-label=\"{category}: {chart}\"")),
                "{category}: no {chart} chart"
            );
        }
    }
    assert!(
        page.dom.contains("class=\"chart parallel\""),
        "the sweep's points"
    );
    assert!(
        page.dom.matches("class=\"note\"").count() >= 3 * categories.len(),
        "each ROC and PRO chart states its area"
    );
    let pictures: Vec<&str> = page
        .dom
        .split("<figure class=\"gallery-picture\"><img src=\"data:image/jpeg;base64,")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        pictures.len() >= 2 * categories.len(),
        "{} pictures",
        pictures.len()
    );
    for picture in pictures {
        let bytes = STANDARD.decode(picture).expect("base64");
        let decoded = image::load_from_memory(&bytes).expect("a JPEG picture");
        assert!(
            decoded.width() > decoded.height(),
            "a panel of tiles side by side"
        );
    }
    let again = dir.join("again.html");
    let run_url = format!("{}/runs/{run}", path(store));
    ok(slsg(&["report", &run_url, "--out", path(&again)], &[]));
    assert_eq!(
        std::fs::read(&report).unwrap(),
        std::fs::read(&again).unwrap(),
        "slsg report draws the same page from the store"
    );

    // A run from before the report's files (or with one deleted) still gets a page that says
    // what is missing.
    let old = dir.join("old-store");
    let copied = Command::new("cp")
        .args(["-r", path(store), path(&old)])
        .status()
        .unwrap();
    assert!(copied.success());
    let mut removed = 0;
    for job in std::fs::read_dir(old.join(format!("runs/{run}/jobs"))).unwrap() {
        let job = job.unwrap().path();
        for file in ["figures.json", "simulated.jpg"] {
            if std::fs::remove_file(job.join(file)).is_ok() {
                removed += 1;
            }
        }
    }
    assert!(removed > 0);
    let partial = dir.join("partial.html");
    let old_url = format!("{}/runs/{run}", path(&old));
    ok(slsg(&["report", &old_url, "--out", path(&partial)], &[]));
    let partial = std::fs::read_to_string(partial).unwrap();
    assert!(
        partial.contains("no test-split figures (figures.json) in the store")
            && partial.contains("no simulated anomalies (simulated.jpg) in the store")
            && partial.contains(&format!("aria-label=\"{}: SegNet losses\"", categories[0])),
        "what remains is drawn and what is missing is named"
    );
    fails_with(
        slsg(&["report", &format!("{}/runs/nope", path(store))], &[]),
        &["no run summary", "nope"],
    );
}

#[test]
fn an_unreadable_image_fails_only_its_own_job() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let broken = data.join("washer/train/good/003.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n this is not an image").unwrap();
    let store = dir.path().join("store");
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "broken",
            store: path(&store),
            data: &data,
            categories: &["weave", "washer"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );

    let output = fails_with(
        slsg(&["train", path(&config)], &[]),
        &[
            "FAILED  washer pretrain",
            "003.png",
            "BLOCKED washer segnet",
            "1 job(s) failed and 1 were blocked",
        ],
    );
    assert!(!output.contains("FAILED  weave"), "{output}");

    let jobs = summary_jobs(&read_json(&store.join("runs/broken/summary.json")));
    for (id, kind, category, state, attempts) in jobs {
        let expected = match (category.as_str(), kind.as_str()) {
            ("washer", "pretrain") => ("failed", 1),
            ("washer", _) => ("blocked", 0),
            _ => ("done", 1),
        };
        assert_eq!(
            (state.as_str(), attempts),
            expected,
            "{kind} {category} {id}: bad input is not retried"
        );
    }
    assert!(
        store.join("models/weave/current").exists(),
        "the healthy category is registered"
    );
    assert!(!store.join("models/washer").exists());
    // The report is written all the same, and says which job failed and why.
    let report = std::fs::read_to_string(store.join("runs/broken/report.html")).unwrap();
    let problems = report
        .split("id=\"problems\"")
        .nth(1)
        .expect("a section of failed jobs");
    let failed = problems
        .lines()
        .find(|line| line.contains("<td>washer</td><td>pretrain</td>"))
        .expect("the failed job's row");
    assert!(
        failed.contains(">failed<") && failed.contains("003.png"),
        "{failed}"
    );
    let washer = report
        .split("id=\"category-washer\"")
        .nth(1)
        .expect("a section for the category without a model");
    assert!(washer.contains("no model"), "{washer}");
    assert!(report.contains("aria-label=\"weave: image ROC\""));
}

#[test]
fn unsafe_names_never_become_store_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store = dir.path().join("store");
    for (name, categories, needle) in [
        ("ok", &["../weave"][..], "../weave"),
        ("ok", &["wea/ve"][..], "wea/ve"),
        ("../escape", &["weave"][..], "../escape"),
    ] {
        let config = write_config(
            dir.path(),
            &RunConfig {
                name,
                store: path(&store),
                data: &data,
                categories,
                learning_rates: &[0.1],
                segnet_steps: 20,
            },
        );
        fails_with(slsg(&["plan", path(&config)], &[]), &[needle]);
        fails_with(slsg(&["train", path(&config)], &[]), &[needle]);
    }
    assert!(files_under(&store).is_empty(), "nothing was written");
}

#[test]
fn a_damaged_encoder_is_pretrained_again_before_its_segnet_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store = dir.path().join("store");
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "damaged",
            store: path(&store),
            data: &data,
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );
    ok(slsg(&["train", path(&config)], &[]));

    let jobs = summary_jobs(&read_json(&store.join("runs/damaged/summary.json")));
    let job_dir = |kind: &str| {
        let (id, ..) = jobs.iter().find(|j| j.1 == kind).unwrap();
        store.join("runs/damaged/jobs").join(id)
    };
    let encoder = job_dir("pretrain").join("encoder.ckpt");
    let mut bytes = std::fs::read(&encoder).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&encoder, &bytes).unwrap();
    // Without its result and checkpoints the SegNet job must start again from the encoder.
    std::fs::remove_file(job_dir("segnet").join("result.json")).unwrap();
    std::fs::remove_dir_all(job_dir("segnet").join("checkpoints")).unwrap();

    let rerun = slsg(&["train", path(&config)], &[]);
    let log = String::from_utf8_lossy(&rerun.stderr).into_owned();
    ok(rerun);
    assert!(
        log.contains("encoder.ckpt"),
        "the damaged file is named: {log}"
    );
    for (id, kind, _, state, attempts) in
        summary_jobs(&read_json(&store.join("runs/damaged/summary.json")))
    {
        assert_eq!(state, "done", "{kind} {id}");
        let expected = if kind == "pretrain" { 2 } else { 1 };
        assert_eq!(
            attempts, expected,
            "{kind} {id}: the encoder's job runs again; the SegNet's failed try was not its fault"
        );
    }
    assert_ne!(
        std::fs::read(&encoder).unwrap(),
        bytes,
        "pre-training wrote a sound encoder"
    );
    assert!(job_dir("segnet").join("result.json").exists());

    // A result past its size limit (valid JSON padded with spaces) is not read whole or
    // trusted: its job runs again, and the file is named.
    let result = job_dir("segnet").join("result.json");
    let mut padded = std::fs::read(&result).unwrap();
    padded.resize(slsg::store::limits::RESULT_BYTES as usize + 1, b' ');
    std::fs::write(&result, &padded).unwrap();
    let rerun = slsg(&["train", path(&config)], &[]);
    let log = String::from_utf8_lossy(&rerun.stderr).into_owned();
    ok(rerun);
    assert!(
        log.contains("result.json") && log.contains("over the limit"),
        "{log}"
    );
    assert!(std::fs::metadata(&result).unwrap().len() < slsg::store::limits::RESULT_BYTES);
}

#[test]
fn failed_jobs_run_again_with_retry_failed_once_the_cause_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    // The simulation's textures are read by the jobs, outside the dataset whose content the
    // job ids hash: fixing one leaves the plan, and its failed jobs, as they were.
    let textures = dir.path().join("textures");
    std::fs::create_dir(&textures).unwrap();
    let good = data.join("weave/train/good/000.png");
    std::fs::copy(&good, textures.join("a.png")).unwrap();
    let broken = textures.join("b.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n not a texture").unwrap();
    let store = dir.path().join("store");
    let config = write_config_with(
        dir.path(),
        &RunConfig {
            name: "textures",
            store: path(&store),
            data: &data,
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
        &format!(
            "[training.simulation]\ntextures = \"{}\"\n",
            path(&textures)
        ),
    );
    let retry_command = format!("slsg train --retry-failed {}", path(&config));

    let first = fails_with(
        slsg(&["train", path(&config)], &[]),
        &["FAILED", "b.png", &retry_command],
    );
    let unfinished = |summary: &serde_json::Value| {
        summary_jobs(summary)
            .into_iter()
            .filter(|job| job.3 != "done")
            .map(|job| (job.0, job.3))
            .collect::<Vec<_>>()
    };
    let summary = store.join("runs/textures/summary.json");
    let before = unfinished(&read_json(&summary));
    assert!(
        before.iter().any(|(_, state)| state == "failed"),
        "{before:?}\n{first}"
    );

    let again = fails_with(slsg(&["train", path(&config)], &[]), &["FAILED", "b.png"]);
    assert_eq!(
        unfinished(&read_json(&summary)),
        before,
        "without the flag a failure stands: {again}"
    );

    std::fs::copy(&good, &broken).unwrap();
    ok(slsg(&["train", "--retry-failed", path(&config)], &[]));
    for (id, kind, _, state, attempts) in summary_jobs(&read_json(&summary)) {
        assert_eq!(state, "done", "{kind} {id}");
        if before.iter().any(|(job, _)| *job == id) {
            assert_eq!(
                attempts, 1,
                "{kind} {id} ran once more, with fresh attempts"
            );
        }
    }
    let journal = read_json(&store.join("runs/textures/state.json"));
    for (id, entry) in journal["jobs"].as_object().unwrap() {
        let failed = before
            .iter()
            .any(|(job, state)| job == id && state == "failed");
        assert_eq!(
            entry["retries"].as_u64().unwrap_or(0),
            u64::from(failed),
            "the journal counts the retry of job {id}: {journal}"
        );
    }
    assert!(store.join("models/weave/current").exists(), "registered");
}
