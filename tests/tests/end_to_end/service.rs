//! The long-lived training service: a coordinator that keeps running, retrains only the
//! categories whose normal images changed (asked now, and on its schedule), lets the promotion
//! gate decide with both models scored in the same job, recovers a retraining run after a
//! `kill -9`, rolls back, serves models by store URL, and checks drift before training. The
//! store is the real S3 server `.ci/run` starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use image::{Rgb, RgbImage};
use slsg::store::layout::RunKeys;
use slsg::store::{Key, Store};
use slsg_tests::*;

const TOKEN: &str = "service-test-token";

fn token() -> [(&'static str, &'static str); 1] {
    [("SLSG_TOKEN", TOKEN)]
}

/// Writes `count` new normal images into `category`'s training folder: copies of its first
/// images with every pixel passed through `look`.
fn add_images(
    data: &Path,
    category: &str,
    prefix: &str,
    count: usize,
    look: fn(Rgb<u8>) -> Rgb<u8>,
) -> Vec<PathBuf> {
    let folder = data.join(category).join("train/good");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("new"))
        .collect();
    sources.sort();
    (0..count)
        .map(|i| {
            let image = image::open(&sources[i % sources.len()]).unwrap().to_rgb8();
            let changed = RgbImage::from_fn(image.width(), image.height(), |x, y| {
                look(*image.get_pixel(x, y))
            });
            let path = folder.join(format!("new-{prefix}-{i:03}.png"));
            changed.save(&path).unwrap();
            path
        })
        .collect()
}

/// Writes `count` new images into `category`'s training folder: copies of the training images
/// its current model accepts, as `slsg predict` decides at the model's threshold.
fn add_accepted_images(
    data: &Path,
    store: &str,
    scratch: &Path,
    category: &str,
    count: usize,
) -> (Vec<PathBuf>, String) {
    let folder = data.join(category).join("train/good");
    let out = scratch.join("accepted-check");
    let predicted = slsg(
        &[
            "predict",
            "--model",
            &format!("{store}/models/{category}/current"),
            "--input",
            path(&folder),
            "--out",
            path(&out),
            "--cache",
            path(&scratch.join("cache")),
        ],
        &[],
    );
    let model = String::from_utf8_lossy(&predicted.stderr).into_owned();
    ok(predicted);
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let mut accepted: Vec<(f64, PathBuf)> = scores
        .lines()
        .skip(1)
        .filter_map(|row| row.strip_suffix(",false")?.rsplit_once(','))
        .map(|(image, score)| (score.parse().unwrap(), PathBuf::from(image)))
        .collect();
    accepted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let sources: Vec<PathBuf> = accepted.into_iter().map(|(_, image)| image).collect();
    assert!(
        !sources.is_empty(),
        "the current model flags every training image:\n{scores}"
    );
    let copies = (0..count)
        .map(|i| {
            let copy = folder.join(format!("new-accepted-{i:03}.png"));
            std::fs::copy(&sources[i % sources.len()], &copy).unwrap();
            copy
        })
        .collect();
    (copies, format!("{model}{scores}"))
}

fn brighter(p: Rgb<u8>) -> Rgb<u8> {
    Rgb(p.0.map(|c| c.saturating_add(90)))
}

fn tinted(p: Rgb<u8>) -> Rgb<u8> {
    Rgb([p.0[0].saturating_add(80), p.0[1], p.0[2] / 3])
}

fn unchanged(p: Rgb<u8>) -> Rgb<u8> {
    p
}

/// `slsg status --json`; `Null` while the coordinator does not answer (it is starting).
fn overview(url: &str) -> serde_json::Value {
    let output = slsg(&["status", url, "--json"], &token());
    if !output.status.success() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The names of the coordinator's finished runs.
fn finished_runs(url: &str) -> Vec<String> {
    overview(url)["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["finished"] == true)
        .map(|r| r["run"].as_str().unwrap().to_string())
        .collect()
}

/// `slsg models show`: the current version of a category.
fn current(store: &str, category: &str) -> String {
    let card: serde_json::Value =
        serde_json::from_str(&ok(slsg(&["models", "show", store, category], &[]))).unwrap();
    card["version"].as_str().unwrap().to_string()
}

/// `slsg models history --json`: every decision about a category.
fn history(store: &str, category: &str) -> Vec<serde_json::Value> {
    ok(slsg(&["models", "history", store, category, "--json"], &[]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A job's `result.json` in the store.
fn result(store: &Store, run: &str, job: &str) -> serde_json::Value {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = RunKeys::new(run).unwrap().job(job).unwrap().result();
    let bytes = runtime
        .block_on(store.get(&key))
        .unwrap()
        .expect("result.json");
    serde_json::from_slice(&bytes).unwrap()
}

/// The jobs of one run as the coordinator reports them.
fn run_jobs(url: &str, run: &str) -> Vec<serde_json::Value> {
    let status: serde_json::Value = serde_json::from_str(&ok(slsg(
        &["status", url, "--run", run, "--json"],
        &token(),
    )))
    .unwrap();
    status["jobs"].as_array().unwrap().clone()
}

/// A cluster config for the service tests: a small model on 32 px images, trained long enough
/// (50 pre-training and `segnet_steps` SegNet steps) for the gate to compare real models, and
/// short leases so lost workers are noticed in seconds.
fn service_config(
    file: &Path,
    name: &str,
    store: &str,
    data: &Path,
    segnet_steps: u64,
    retrain: &str,
) -> PathBuf {
    let validate_every = (segnet_steps / 3).max(1);
    std::fs::write(
        file,
        format!(
            r#"[run]
name = "{name}"
store = "{store}"

[[dataset]]
path = "{data}"
categories = ["weave", "washer"]

[training.model]
image_size = 32
width = 0.125

[training.pretrain]
max_steps = 50
checkpoint_every = 25

[training.segnet]
steps = {segnet_steps}
freeze_encoder = false
validate_every = {validate_every}
checkpoint_every = 50

[resources]
workers = ["cpu"]
lease_seconds = 5
heartbeat_seconds = 1

[retrain]
{retrain}
"#,
            data = path(data),
        ),
    )
    .unwrap();
    file.to_path_buf()
}

struct Service {
    dir: PathBuf,
    address: String,
    url: String,
}

impl Service {
    fn coordinator(&self, config: &Path, log: &str) -> Process {
        Process::start(
            // A coordinator killed here is replaced at once: the store lock lapses fast.
            &[
                "coordinator",
                path(config),
                "--listen",
                &self.address,
                "--lock-seconds",
                "4",
            ],
            &token(),
            self.dir.join(log),
        )
    }
}

#[test]
fn a_service_retrains_what_changed_and_the_gate_decides() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(slsg(&["synth", "--out", path(&data), "--size", "64"], &[]));
    let store_url = s3_store("service");
    let store = Store::open(&store_url).unwrap();
    let config = |file: &str, name: &str, segnet_steps: u64, retrain: &str| {
        let file = dir.path().join(file);
        service_config(&file, name, &store_url, &data, segnet_steps, retrain)
    };
    let gate = "tolerance = 0.15\nnew_image_holdout = 0.5\n";
    let hourly = config(
        "hourly.toml",
        "svc",
        300,
        &format!("every = \"1h\"\n{gate}"),
    );
    let address = format!("127.0.0.1:{}", free_port());
    let service = Service {
        dir: dir.path().to_path_buf(),
        url: format!("http://{address}"),
        address,
    };
    let mut coordinator = service.coordinator(&hourly, "coordinator-1.log");
    let worker = Process::start(
        &[
            "worker",
            "--coordinator",
            &service.url,
            "--name",
            "w",
            "--connect-seconds",
            "120",
        ],
        &token(),
        dir.path().join("worker.log"),
    );
    wait_until(
        "the config's run finished",
        Duration::from_secs(900),
        || finished_runs(&service.url).contains(&"svc".to_string()),
    );
    assert!(
        coordinator.is_running(),
        "a service keeps running after its run"
    );
    // Finished jobs say so, not where their last progress report left them.
    let shown = ok(slsg(&["status", &service.url, "--run", "svc"], &token()));
    let done: Vec<&str> = shown.lines().filter(|l| l.contains(" done ")).collect();
    assert!(
        done.len() == 4 && done.iter().all(|l| l.ends_with("  finished")),
        "{shown}"
    );
    let (first_weave, washer) = (current(&store_url, "weave"), current(&store_url, "washer"));

    // (a) New normal images of another look arrive in one category; a check now retrains it alone.
    add_images(&data, "weave", "bright", 12, brighter);
    let checked = ok(slsg(
        &[
            "retrain",
            path(&hourly),
            "--now",
            "--coordinator",
            &service.url,
        ],
        &token(),
    ));
    let retrain_run = checked
        .lines()
        .find_map(|l| l.strip_prefix("retraining run `")?.split('`').next())
        .unwrap_or_else(|| panic!("no retraining run submitted:\n{checked}"))
        .to_string();
    assert!(
        checked
            .lines()
            .any(|l| l.starts_with("weave") && l.contains("retrain"))
            && checked
                .lines()
                .any(|l| l.starts_with("washer") && l.contains("keep")),
        "{checked}"
    );
    wait_until(
        "the retraining run finished",
        Duration::from_secs(900),
        || finished_runs(&service.url).contains(&retrain_run),
    );
    let jobs = run_jobs(&service.url, &retrain_run);
    assert!(
        jobs.iter().all(|j| j["category"] == "weave"),
        "only the changed category trains: {jobs:?}"
    );
    let segnet = jobs.iter().find(|j| j["kind"] == "segnet").unwrap();
    let gate_report = &result(&store, &retrain_run, segnet["id"].as_str().unwrap())["gate"];
    assert_eq!(
        gate_report["current"]["version"].as_str(),
        Some(first_weave.as_str())
    );
    assert!(
        gate_report["new_images"].as_u64().unwrap() >= 1,
        "{gate_report}"
    );
    assert!(gate_report["evaluation_set"]["fingerprint"].is_string());
    let decision = history(&store_url, "weave").pop().unwrap();
    assert_eq!(decision["decision"], "promoted", "{decision}");
    assert!(
        decision["candidate_score"].is_number() && decision["current_score"].is_number(),
        "both scores recorded: {decision}"
    );
    // The retraining run's report shows the gate's decision with both scores and the reason.
    let report_key = RunKeys::new(&retrain_run).unwrap().report();
    let report = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.get(&report_key))
        .unwrap()
        .expect("the retraining run's report");
    let report = String::from_utf8(report).unwrap();
    let row = report
        .lines()
        .find(|line| line.starts_with("<tr><td>weave</td>") && line.contains("promoted"))
        .unwrap_or_else(|| panic!("no decision row:\n{report}"));
    let score = |name: &str| format!("<td>{:.4}</td>", decision[name].as_f64().unwrap());
    assert!(
        report.contains("A retraining run")
            && row.contains(&score("candidate_score"))
            && row.contains(&score("current_score")),
        "{row}"
    );
    let second_weave = current(&store_url, "weave");
    assert_ne!(second_weave, first_weave);
    assert_eq!(
        current(&store_url, "washer"),
        washer,
        "the other category is untouched"
    );
    assert_eq!(
        history(&store_url, "washer").len(),
        2,
        "registered and promoted, once"
    );

    // (b) A candidate made worse (one SegNet step) is not promoted, and the history says why.
    let washer_images = add_images(&data, "washer", "more", 12, unchanged);
    let worse = config("worse.toml", "worse", 1, gate);
    let kept = ok(slsg(&["retrain", path(&worse), "--now"], &[]));
    assert!(kept.contains("not promoted"), "{kept}");
    assert_eq!(current(&store_url, "washer"), washer, "current unchanged");
    let decision = history(&store_url, "washer").pop().unwrap();
    assert_eq!(decision["decision"], "kept", "{decision}");
    let reason = decision["reason"].as_str().unwrap();
    assert!(
        reason.contains("below the current model") || reason.contains("false-alarm rate"),
        "the gate's reason: {decision}"
    );
    // A check of the same images does not train the same candidate again.
    let again = ok(slsg(&["retrain", path(&worse), "--now"], &[]));
    assert!(
        again.contains("not promoted") && again.contains("no category needs retraining"),
        "{again}"
    );
    for image in washer_images {
        std::fs::remove_file(image).unwrap();
    }

    // (c) Rolling back restores the previous version, and predict serves it by store URL.
    ok(slsg(&["models", "rollback", &store_url, "weave"], &[]));
    assert_eq!(current(&store_url, "weave"), first_weave);
    let cache = dir.path().join("cache");
    let model_url = format!("{store_url}/models/weave/current");
    for _ in 0..2 {
        let predicted = slsg(
            &[
                "predict",
                "--model",
                &model_url,
                "--input",
                path(&data.join("weave/test/good/000.png")),
                "--out",
                path(&dir.path().join("predicted")),
                "--cache",
                path(&cache),
            ],
            &[],
        );
        let text = format!(
            "{}{}",
            ok_output(&predicted),
            String::from_utf8_lossy(&predicted.stderr)
        );
        assert!(text.contains(&format!("version `{first_weave}`")), "{text}");
    }
    assert!(dir.path().join("predicted/scores.csv").is_file());
    assert_eq!(
        std::fs::read_dir(cache.join("models")).unwrap().count(),
        1,
        "the second predict reused the cached model"
    );
    ok(slsg(
        &["models", "promote", &store_url, "weave", &second_weave],
        &[],
    ));

    // (a, d) Restarted with a schedule of a few seconds, the service notices newer images on its
    // own; killed mid-run and restarted, it finishes the run without training finished jobs again.
    coordinator.terminate();
    coordinator.wait(Duration::from_secs(60));
    add_images(&data, "weave", "tinted", 12, tinted);
    let frequent = config(
        "frequent.toml",
        "svc",
        300,
        &format!("every = \"3s\"\n{gate}"),
    );
    let mut coordinator = service.coordinator(&frequent, "coordinator-2.log");
    let scheduled = |url: &str| -> Option<String> {
        overview(url)["runs"]
            .as_array()?
            .iter()
            .map(|r| r["run"].as_str().unwrap().to_string())
            .find(|r| r.starts_with("svc-retrain-") && *r != retrain_run)
    };
    let mut scheduled_run = String::new();
    wait_until(
        "the schedule started a retraining run",
        Duration::from_secs(120),
        || scheduled(&service.url).map(|r| scheduled_run = r).is_some(),
    );
    let checkpoints = Key::new(["runs", scheduled_run.as_str()]).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    wait_until(
        "the SegNet job wrote a checkpoint",
        Duration::from_secs(600),
        || {
            runtime
                .block_on(store.list(&checkpoints))
                .unwrap()
                .iter()
                .any(|k| k.as_str().contains("/checkpoints/segnet-"))
        },
    );
    coordinator.kill_hard();
    let mut coordinator = service.coordinator(&frequent, "coordinator-3.log");
    wait_until(
        "the recovered run finished",
        Duration::from_secs(900),
        || finished_runs(&service.url).contains(&scheduled_run),
    );
    assert!(
        coordinator
            .output()
            .contains("recovering an unfinished run"),
        "{}",
        coordinator.output()
    );
    let jobs = run_jobs(&service.url, &scheduled_run);
    assert!(jobs.iter().all(|j| j["category"] == "weave"), "{jobs:?}");
    let pretrain = jobs.iter().find(|j| j["kind"] == "pretrain").unwrap();
    assert_eq!(
        pretrain["attempts"], 1,
        "the finished job was not trained again"
    );
    let decision = history(&store_url, "weave").pop().unwrap();
    assert!(
        decision["candidate_score"].is_number() && decision["current_score"].is_number(),
        "{decision}"
    );
    assert_eq!(decision["decision"], "promoted", "{decision}");
    coordinator.terminate();
    coordinator.wait(Duration::from_secs(60));
    drop(worker);

    // (e) A drift check: new images the current model accepts start nothing; images it flags
    // start a retraining run (fine-tuning the current SegNet here). These small models flag many
    // of their own training images at their F1-max thresholds (chosen on validation sets of three
    // simulated anomalies per normal image), so the accepted images are those `predict` finds
    // below the current threshold: the drift check must decide as `predict` does.
    let drift = config(
        "drift.toml",
        "drift",
        300,
        &format!("drift_limit = 0.5\nmode = \"fine_tune\"\nfine_tune_steps = 30\n{gate}"),
    );
    let (accepted, predicted) = add_accepted_images(&data, &store_url, dir.path(), "weave", 12);
    let quiet = ok(slsg(&["retrain", path(&drift), "--now"], &[]));
    assert!(
        quiet.contains("within the limit") && quiet.contains("no category needs retraining"),
        "{quiet}\nwhat `predict` decided:\n{predicted}"
    );
    for image in accepted {
        std::fs::remove_file(image).unwrap();
    }
    add_images(&data, "weave", "dark", 12, |p| Rgb(p.0.map(|c| 255 - c)));
    let drifted = ok(slsg(&["retrain", path(&drift), "--now"], &[]));
    assert!(
        drifted
            .lines()
            .any(|l| l.starts_with("weave") && l.contains("retrain") && l.contains("limit 0.5")),
        "{drifted}"
    );
    assert!(
        drifted.contains("drift-retrain-"),
        "a retraining run trained: {drifted}"
    );
}

/// The stdout of a successful command.
fn ok_output(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn bad_retraining_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store = dir.path().join("store");
    let config = |extra: &str| {
        write_config_with(
            dir.path(),
            &RunConfig {
                name: "bad",
                store: path(&store),
                data: &data,
                categories: &["weave"],
                learning_rates: &[0.1],
                segnet_steps: 20,
            },
            extra,
        )
    };
    for (extra, needles) in [
        (
            "[retrain]\nschedule = \"0 25 * * *\"\n",
            &["retrain.schedule", "0 25 * * *", "hour"][..],
        ),
        (
            "[retrain]\nschedule = \"every day\"\n",
            &["retrain.schedule", "five fields"][..],
        ),
        (
            "[retrain]\ntolerance = 2.0\n",
            &["retrain.tolerance", "[0, 1]"][..],
        ),
        (
            "[retrain]\ndrift_limit = -1\n",
            &["retrain.drift_limit"][..],
        ),
        (
            "[retrain]\nevery = \"soon\"\n",
            &["retrain.every", "soon"][..],
        ),
        (
            "[retrain]\nmode = \"sometimes\"\n",
            &["mode", "sometimes"][..],
        ),
    ] {
        let file = config(extra);
        fails_with(slsg(&["retrain", path(&file), "--now"], &[]), needles);
        fails_with(
            slsg(&["coordinator", path(&file), "--insecure"], &[]),
            needles,
        );
    }
    // A model URL that names nothing.
    let predict = |model: &str| {
        slsg(
            &[
                "predict",
                "--model",
                model,
                "--input",
                path(&data.join("weave/test/good/000.png")),
                "--out",
                path(&dir.path().join("out")),
                "--cache",
                path(&dir.path().join("cache")),
            ],
            &[],
        )
    };
    let missing_store = format!(
        "file://{}/models/weave/current",
        dir.path().join("nowhere").display()
    );
    fails_with(predict(&missing_store), &["nowhere", "no such store"]);
    std::fs::create_dir_all(&store).unwrap();
    let no_model = format!("file://{}/models/weave/current", store.display());
    fails_with(predict(&no_model), &["weave", "current"]);
    fails_with(
        predict("s3://bucket/weave/current"),
        &["s3://bucket/weave/current", "/models/"],
    );

    // Promoting a version of another category names both.
    ok(slsg(&["train", path(&config(""))], &[]));
    let washer_config = write_config(
        dir.path(),
        &RunConfig {
            name: "other",
            store: path(&store),
            data: &data,
            categories: &["washer"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );
    ok(slsg(&["train", path(&washer_config)], &[]));
    let washer_version = current(path(&store), "washer");
    fails_with(
        slsg(
            &["models", "promote", path(&store), "weave", &washer_version],
            &[],
        ),
        &[
            "weave",
            &washer_version,
            "it is a version of category `washer`",
        ],
    );
    fails_with(
        slsg(&["models", "rollback", path(&store), "weave"], &[]),
        &["weave", "no previous version"],
    );
    fails_with(
        slsg(&["models", "show", path(&store), "tray"], &[]),
        &["tray", "no current model"],
    );
}
