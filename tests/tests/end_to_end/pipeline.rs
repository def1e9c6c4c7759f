//! One category pipeline behind every way of training: `slsg fit` and a cluster run write the
//! same artifacts for the same category and config, and a job that panics (as a CUDA
//! out-of-memory does) is failed with its message and retried instead of holding its lease, and
//! the run still ends; so is a job whose step hangs (as a device that stops answering does),
//! and its worker reports itself not alive until the hung step returns.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use slsg::data::DatasetCache;
use slsg::job::{ClusterConfig, JobKind, JobState, JobStatus, Plan, RunStatus};
use slsg::store::Store;
use slsg::train::{Progress, TrainEvent};
use slsg_coordinator::embedded::{Embedded, Slots};
use slsg_coordinator::http::Probes;
use slsg_coordinator::probes::WorkerProbes;
use slsg_tests::*;
use slsg_worker::{JobRunner, JobSignals, WorkerMetrics, run_job};

/// The training config both ways of training use: a tiny model on 32 px images.
const TRAINING: &str = "[model]
image_size = 32
width = 0.125

[pretrain]
max_steps = 20
checkpoint_every = 10
log_every = 5

[segnet]
steps = 30
freeze_encoder = false
validate_every = 15
checkpoint_every = 10
log_every = 5
";

/// Files of a stage folder, without the job's own description.
fn stage_files(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| f != "spec.json")
        .collect()
}

/// A result without what depends on the machine's speed.
fn timeless(mut result: serde_json::Value) -> serde_json::Value {
    let object = result.as_object_mut().expect("a result object");
    object.remove("seconds");
    object.remove("inference_images_per_second");
    result
}

#[test]
fn fit_and_a_cluster_run_write_the_same_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let training = dir.path().join("training.toml");
    std::fs::write(&training, TRAINING).unwrap();
    let fitted = dir.path().join("fit");
    ok(slsg(
        &[
            "fit",
            "--dataset",
            path(&data),
            "--category",
            "weave",
            "--out",
            path(&fitted),
            "--config",
            path(&training),
        ],
        &[],
    ));

    let store = dir.path().join("store");
    let cluster = dir.path().join("cluster.toml");
    let sections = TRAINING
        .replace("\n[", "\n[training.")
        .replacen("[", "[training.", 1);
    std::fs::write(
        &cluster,
        format!(
            "[run]\nname = \"same\"\nstore = \"{}\"\n\n[[dataset]]\npath = \"{}\"\ncategories = [\"weave\"]\n\n{sections}\n[resources]\nworkers = [\"cpu\"]\n",
            path(&store),
            path(&data)
        ),
    )
    .unwrap();
    ok(slsg(&["train", path(&cluster)], &[]));

    let jobs = summary_jobs(&read_json(&store.join("runs/same/summary.json")));
    for (stage, kind) in [("pretrain", "pretrain"), ("segnet", "segnet")] {
        let job = &jobs
            .iter()
            .find(|j| j.1 == kind)
            .expect("the stage's job")
            .0;
        let job_dir = store.join(format!("runs/same/jobs/{job}"));
        let fit_dir = fitted.join(stage);
        assert_eq!(
            stage_files(&fit_dir),
            stage_files(&job_dir),
            "{stage}: the same files"
        );
        assert_eq!(
            timeless(read_json(&fit_dir.join("result.json"))),
            timeless(read_json(&job_dir.join("result.json"))),
            "{stage}: the same result"
        );
        if stage == "segnet" {
            assert_eq!(
                read_json(&fit_dir.join("model/model.json")),
                read_json(&job_dir.join("model/model.json")),
                "the same model card"
            );
            assert_eq!(
                read_json(&fit_dir.join("eval.json")),
                read_json(&job_dir.join("eval.json")),
                "the same test metrics"
            );
        }
    }
}

/// A one-category run `name` in `dir` (synthetic data, a local store, two worker slots), its
/// store folder, and a dataset cache for its runner.
fn one_category_run(dir: &Path, name: &str) -> (Plan, std::path::PathBuf, DatasetCache) {
    let data = synthetic_data(dir);
    let store = dir.join("store");
    let config = write_config(
        dir,
        &RunConfig {
            name,
            store: path(&store),
            data: &data,
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );
    let cluster = ClusterConfig::load(&config).unwrap();
    let plan = Plan::expand(&cluster, &format!("{name}.toml"), 2).unwrap();
    (plan, store, DatasetCache::new(dir.join("cache")))
}

/// The run's SegNet job, checked done on its second attempt (the fault used the first).
fn segnet_done_on_its_second_attempt(status: &RunStatus) -> &JobStatus {
    let segnet = status
        .jobs
        .iter()
        .find(|j| j.kind == JobKind::Segnet)
        .unwrap();
    assert!(
        matches!(segnet.state, JobState::Done { .. }),
        "{:?}",
        segnet.state
    );
    assert_eq!(segnet.attempts, 2, "the fault used one attempt");
    segnet
}

/// Panics at a step of the first attempt, as a device that runs out of memory mid-training does.
struct PanicAt {
    step: Option<u64>,
    signals: JobSignals,
}

impl Progress for PanicAt {
    fn on_event(&mut self, event: &TrainEvent) {
        self.signals.on_event(event);
        if let (TrainEvent::Step(report), Some(step)) = (event, self.step)
            && report.step >= step
        {
            panic!("device out of memory (injected at step {})", report.step);
        }
    }

    fn stop_requested(&self) -> bool {
        self.signals.stop_requested()
    }
}

#[test]
fn a_panicking_job_is_failed_with_its_message_retried_and_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, store, cache) = one_category_run(dir.path(), "panics");
    let runner: JobRunner = Arc::new(move |job, device, runtime, signals| {
        let step = (job.spec.kind == JobKind::Segnet && job.attempt == 1).then_some(5);
        let mut progress = PanicAt {
            step,
            signals: signals.clone(),
        };
        run_job(&job.spec, device, runtime, &cache, &mut progress)
    });

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let summary = runtime
        .block_on(async {
            let store = Store::open(path(&store))?;
            Embedded::start(plan, store, Slots::new(runner), false)
                .await?
                .wait()
                .await
        })
        .expect("the run ends");

    let segnet = segnet_done_on_its_second_attempt(&summary.status);
    let error = segnet.last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("the job panicked: device out of memory (injected at step 5)"),
        "{error}"
    );
    assert!(
        summary.models.contains_key("weave"),
        "the model is registered"
    );
}

/// A gate a hung step waits at until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, opened) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        let (open, opened) = &*self.0;
        *open.lock().unwrap() = true;
        opened.notify_all();
    }
}

/// Hangs at a step of the first attempt until the gate opens, as a device that stops
/// answering does: no progress, no error.
struct HangAt {
    step: Option<u64>,
    gate: Gate,
    signals: JobSignals,
}

impl Progress for HangAt {
    fn on_event(&mut self, event: &TrainEvent) {
        self.signals.on_event(event);
        if let (TrainEvent::Step(report), Some(step)) = (event, self.step)
            && report.step >= step
        {
            self.step = None;
            self.gate.wait();
        }
    }

    fn stop_requested(&self) -> bool {
        self.signals.stop_requested()
    }
}

#[test]
fn a_stalled_job_gives_its_lease_back_and_its_worker_is_not_alive_until_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, store, cache) = one_category_run(dir.path(), "stalls");
    let gate = Gate::default();
    let hung = gate.clone();
    let runner: JobRunner = Arc::new(move |job, device, runtime, signals| {
        let step = (job.spec.kind == JobKind::Segnet && job.attempt == 1).then_some(5);
        let mut progress = HangAt {
            step,
            gate: hung.clone(),
            signals: signals.clone(),
        };
        run_job(&job.spec, device, runtime, &cache, &mut progress)
    });
    let metrics = WorkerMetrics::default();
    let probes = WorkerProbes {
        metrics: metrics.clone(),
    };
    let slots = Slots {
        runner,
        stall: Duration::from_secs(3),
        metrics: metrics.clone(),
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let summary = runtime
        .block_on(async {
            let store = Store::open(path(&store))?;
            let embedded = Embedded::start(plan, store, slots, false).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
            let stalled = loop {
                if let Some(stalled) = metrics.stalled() {
                    break stalled;
                }
                assert!(tokio::time::Instant::now() < deadline, "never stalled");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert!(
                stalled.contains("the job stalled: no progress for") && stalled.contains("step 5"),
                "{stalled}"
            );
            let alive = probes.alive().await;
            assert!(
                alive.as_ref().is_err_and(|e| e.to_string() == stalled),
                "{alive:?}"
            );
            // The lease goes back as a failed attempt while the step still hangs: the job is
            // queued again, or already leased by the other slot.
            let segnet = loop {
                let status = embedded.status().await?;
                let segnet = status
                    .jobs
                    .into_iter()
                    .find(|j| j.kind == JobKind::Segnet)
                    .unwrap();
                if segnet
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("the job stalled"))
                {
                    break segnet;
                }
                assert!(tokio::time::Instant::now() < deadline, "{segnet:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            match &segnet.state {
                JobState::Queued => assert_eq!(segnet.attempts, 1),
                JobState::Leased {
                    worker, attempt, ..
                } => {
                    assert_eq!(*attempt, 2);
                    assert!(!stalled.starts_with(&format!("{worker}:")), "{stalled}");
                }
                other => panic!("{other:?}"),
            }
            assert!(
                metrics.stalled().is_some(),
                "not alive while the step hangs"
            );
            gate.open();
            embedded.wait().await
        })
        .expect("the run ends");

    segnet_done_on_its_second_attempt(&summary.status);
    assert_eq!(
        metrics.stalled(),
        None,
        "alive again once the step returned"
    );
}
