//! Searches with early stopping through the binary: an 8-point random sweep over a log range of
//! SegNet learning rates (many far too small to learn) under ASHA in a cluster whose coordinator
//! is killed mid-sweep, then the same sweep without early stopping (the stopped trials train on
//! from their checkpoints); `slsg plan`'s rungs and step counts; and the decisions checked
//! against ASHA applied to the trials' recorded validation curves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slsg_tests::*;

const ASHA: &str =
    "[sweep.early_stopping]\nrule = \"asha\"\ngrace_steps = 60\nreduction_factor = 2\n";

/// SegNet steps of a trial that runs to its end.
const STEPS: u64 = 160;

/// The sweep: 8 learning rates drawn from 1e-6 to 0.3 (log-uniform) for one category, SegNet
/// trials of 160 steps on a frozen encoder validated every 20 on a quarter of 40 training
/// images, on `workers` slots.
fn search_config(
    dir: &Path,
    name: &str,
    store: &Path,
    data: &Path,
    workers: &str,
    early: &str,
) -> PathBuf {
    let text = format!(
        r#"[run]
name = "{name}"
store = "{store}"

[[dataset]]
path = "{data}"
categories = ["weave"]

[training.model]
image_size = 32
width = 0.125

[training.pretrain]
max_steps = 20
checkpoint_every = 10
log_every = 5

[training.segnet]
steps = {STEPS}
validate_every = 20
checkpoint_every = 20
log_every = 10

[training.validation]
holdout_fraction = 0.25
anomalies_per_image = 4

[sweep]
mode = "random"
samples = 8
seed = 2

[sweep.ranges]
"segnet.lr" = {{ log_uniform = [1e-6, 0.3] }}

{early}
[resources]
workers = [{workers}]
max_attempts = 3
lease_seconds = 5
heartbeat_seconds = 1
"#,
        store = path(store),
        data = path(data),
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

/// A finished run's leaderboard: (job, SegNet steps, step it was stopped at, validation score).
fn trials(store: &Path, run: &str) -> Vec<(String, u64, Option<u64>, f64)> {
    let summary = read_json(&store.join(format!("runs/{run}/summary.json")));
    summary["status"]["leaderboard"]["weave"]
        .as_array()
        .expect("a leaderboard")
        .iter()
        .map(|e| {
            (
                e["job"].as_str().unwrap().to_string(),
                e["steps"].as_u64().unwrap(),
                e["stopped_early"]["step"].as_u64(),
                e["validation_score"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

fn registered_score(store: &Path, run: &str) -> (String, f64) {
    let summary = read_json(&store.join(format!("runs/{run}/summary.json")));
    let model = &summary["models"]["weave"];
    (
        model["job"].as_str().unwrap_or_default().to_string(),
        model["validation_score"]
            .as_f64()
            .expect("a validation score"),
    )
}

fn stopped(trials: &[(String, u64, Option<u64>, f64)]) -> BTreeSet<(String, u64)> {
    trials
        .iter()
        .filter_map(|(job, _, step, _)| step.map(|s| (job.clone(), s)))
        .collect()
}

/// What ASHA (rungs at 60 and 120, η = 2) decides on the trials' recorded validation curves taken
/// in plan order: an oracle apart from the coordinator's code, for (job, step) of each stop.
fn asha_on_the_curves(store: &Path, run: &str) -> BTreeSet<(String, u64)> {
    let plan = read_json(&store.join(format!("runs/{run}/plan.json")));
    let mut rungs: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut decisions = BTreeSet::new();
    for job in plan["jobs"].as_array().unwrap() {
        if job["kind"] != "segnet" {
            continue;
        }
        let id = job["id"].as_str().unwrap();
        let curve =
            std::fs::read_to_string(store.join(format!("runs/{run}/jobs/{id}/curve.jsonl")))
                .unwrap();
        let scores: Vec<(u64, f64)> = curve
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == "validation")
            .map(|e| (e["step"].as_u64().unwrap(), e["score"].as_f64().unwrap()))
            .collect();
        for (recorded, rung) in rungs.iter_mut().zip([60, 120]) {
            let best = scores
                .iter()
                .filter(|(step, _)| *step <= rung)
                .map(|(_, score)| *score)
                .fold(f64::NEG_INFINITY, f64::max);
            let mut sorted = recorded.clone();
            sorted.sort_by(f64::total_cmp);
            recorded.push(best);
            // The median of those recorded before (the 1 − 1/2 quantile, interpolated).
            let cutoff = match sorted.len() {
                0 => None,
                n if n % 2 == 1 => Some(sorted[n / 2]),
                n => Some(sorted[n / 2 - 1] + 0.5 * (sorted[n / 2] - sorted[n / 2 - 1])),
            };
            if cutoff.is_some_and(|c| best < c) {
                decisions.insert((id.to_string(), rung));
                break;
            }
        }
    }
    decisions
}

#[test]
fn early_stopping_spends_fewer_steps_keeps_a_model_as_good_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(slsg(
        &[
            "synth",
            "--out",
            path(&data),
            "--size",
            "64",
            "--train",
            "40",
            "--test-per-defect",
            "2",
        ],
        &[],
    ));
    let store = dir.path().join("store");

    // Under ASHA with one worker slot, so trials reach their rungs in plan order.
    let asha = search_config(dir.path(), "search", &store, &data, "\"cpu\"", ASHA);
    // 8 trials of 160 steps, rungs at 60 and 120: 8·60 + 4·60 + 2·40 expected.
    let plan = ok(slsg(&["plan", path(&asha)], &[]));
    assert!(plan.contains("judged at steps 60, 120"), "{plan}");
    assert!(
        plan.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["weave", "8", "1280", "800"]),
        "{plan}"
    );

    // A coordinator and a worker process; the coordinator is killed once a trial was stopped.
    let address = format!("127.0.0.1:{}", free_port());
    let coordinator = |log: &str| {
        Process::start(
            &[
                "coordinator",
                path(&asha),
                "--listen",
                &address,
                "--insecure",
                "--once",
                "--linger",
                "10s",
                // The killed coordinator's store lock lapses fast.
                "--lock-seconds",
                "4",
            ],
            &[],
            dir.path().join(log),
        )
    };
    let mut first = coordinator("coordinator-1.log");
    let url = format!("http://{address}");
    let mut worker = Process::start(
        &[
            "worker",
            "--coordinator",
            &url,
            "--name",
            "searcher",
            "--connect-seconds",
            "120",
        ],
        &[],
        dir.path().join("worker.log"),
    );
    let journal = store.join("runs/search/state.json");
    wait_until(
        "the journal records a stopped trial",
        Duration::from_secs(600),
        || {
            std::fs::read_to_string(&journal)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|j| {
                    j["trials"]["weave"]["trials"]
                        .as_object()
                        .is_some_and(|t| t.values().any(|trial| !trial["stopped"].is_null()))
                })
        },
    );
    first.kill_hard();
    wait_until(
        "the killed coordinator's port is free",
        Duration::from_secs(30),
        || std::net::TcpListener::bind(&address).is_ok(),
    );
    let mut second = coordinator("coordinator-2.log");
    let status = second.wait(Duration::from_secs(900));
    let printed = second.output();
    assert!(
        status.success(),
        "restarted coordinator:\n{printed}\nworker:\n{}",
        worker.output()
    );
    assert!(
        printed.contains("recovering the run from its journal"),
        "{printed}"
    );
    assert!(printed.contains("trial(s) stopped early"), "{printed}");
    worker.wait(Duration::from_secs(60));
    let asha_trials = trials(&store, "search");
    let (asha_model, asha_score) = registered_score(&store, "search");

    // The same sweep without early stopping: the finished trials are reused, the stopped ones
    // train on from their checkpoints to the end.
    let full = search_config(dir.path(), "search", &store, &data, "\"cpu\", \"cpu\"", "");
    ok(slsg(&["train", path(&full)], &[]));
    let full_trials = trials(&store, "search");
    let (full_model, full_score) = registered_score(&store, "search");
    assert_eq!(full_trials.len(), 8);
    assert_eq!(
        asha_trials.len(),
        8,
        "stopped trials stay on the leaderboard"
    );
    let steps = |t: &[(String, u64, Option<u64>, f64)]| t.iter().map(|e| e.1).sum::<u64>();
    let (full_steps, asha_steps) = (steps(&full_trials), steps(&asha_trials));
    println!("SegNet steps: {full_steps} without early stopping, {asha_steps} with ASHA");
    assert_eq!(
        full_steps,
        8 * STEPS,
        "every trial of the full sweep ran to its end"
    );
    let decisions = stopped(&asha_trials);
    assert!(
        decisions.len() >= 4,
        "at least half the trials stop early: {asha_trials:?}"
    );
    assert!(asha_steps < full_steps, "{asha_steps} ≥ {full_steps}");
    for (job, steps, stopped_at, _) in &asha_trials {
        assert_eq!(
            *steps,
            stopped_at.unwrap_or(STEPS),
            "{job} trained to where it stopped"
        );
    }
    println!("registered validation score: {full_score:.4} without, {asha_score:.4} with ASHA");
    assert!(
        asha_model == full_model || asha_score >= full_score - 0.02,
        "ASHA registered {asha_model} ({asha_score}), the full sweep {full_model} ({full_score})"
    );
    // Killed and restarted, the coordinator decided as the rule does on the recorded curves.
    assert_eq!(
        decisions,
        asha_on_the_curves(&store, "search"),
        "the restarted coordinator stopped the trials ASHA stops, at the same steps"
    );
}
