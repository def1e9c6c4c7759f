//! Faults in cluster mode (coordinator and worker processes on loopback, local store): a worker
//! killed with `kill -9` mid-SegNet, a worker stopped with SIGTERM, and a coordinator killed and
//! restarted mid-run. Every run must finish without training finished work again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slsg_tests::*;

/// The SegNet checkpoints a run has written so far, as (job, step).
fn segnet_checkpoints(store: &Path, run: &str) -> Vec<(String, u64)> {
    files_under(&store.join(format!("runs/{run}/jobs")))
        .iter()
        .filter_map(|f| {
            let (job, rest) = f.split_once('/')?;
            let step = rest
                .strip_prefix("checkpoints/segnet-")?
                .strip_suffix(".ckpt")?
                .parse()
                .ok()?;
            Some((job.to_string(), step))
        })
        .collect()
}

fn curve(store: &Path, run: &str, job: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(store.join(format!("runs/{run}/jobs/{job}/curve.jsonl")))
        .expect("curve.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

struct Cluster {
    dir: tempfile::TempDir,
    data: PathBuf,
    store: PathBuf,
    address: String,
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let data = synthetic_data(dir.path());
        let store = dir.path().join("store");
        Cluster {
            address: format!("127.0.0.1:{}", free_port()),
            dir,
            data,
            store,
        }
    }

    fn config(&self, name: &str, learning_rates: &[f64], segnet_steps: u64) -> PathBuf {
        write_config(
            self.dir.path(),
            &RunConfig {
                name,
                store: path(&self.store),
                data: &self.data,
                categories: &["weave"],
                learning_rates,
                segnet_steps,
            },
        )
    }

    fn coordinator(&self, config: &Path, log: &str) -> Process {
        Process::start(
            &[
                "coordinator",
                path(config),
                "--listen",
                &self.address,
                "--insecure",
                "--once",
                "--linger",
                "10s",
                // A coordinator killed here is replaced at once: the store lock lapses fast.
                "--lock-seconds",
                "4",
            ],
            &[],
            self.dir.path().join(log),
        )
    }

    fn worker(&self, name: &str) -> Process {
        let url = format!("http://{}", self.address);
        Process::start(
            &[
                "worker",
                "--coordinator",
                &url,
                "--name",
                name,
                "--connect-seconds",
                "120",
            ],
            &[],
            self.dir.path().join(format!("{name}.log")),
        )
    }
}

/// What `replace_worker_mid_segnet` saw.
struct Replaced {
    job: String,
    /// The newest SegNet checkpoint once the first worker had stopped.
    checkpoint: u64,
    coordinator: String,
}

/// Runs a one-category plan whose first worker `stop` interrupts once the SegNet job has
/// written a checkpoint, then a second worker until the run finishes.
fn replace_worker_mid_segnet(
    cluster: &Cluster,
    run: &str,
    stop: impl FnOnce(&mut Process),
) -> Replaced {
    let config = cluster.config(run, &[0.1], 150);
    let mut coordinator = cluster.coordinator(&config, "coordinator.log");
    let mut first = cluster.worker("first");
    wait_until(
        "the SegNet job has written a checkpoint",
        Duration::from_secs(300),
        || !segnet_checkpoints(&cluster.store, run).is_empty(),
    );
    stop(&mut first);
    let (job, checkpoint) = segnet_checkpoints(&cluster.store, run)
        .into_iter()
        .max_by_key(|c| c.1)
        .unwrap();
    assert!(checkpoint < 150, "stopped before the job finished");

    let second = cluster.worker("second");
    let status = coordinator.wait(Duration::from_secs(600));
    assert!(
        status.success(),
        "coordinator:\n{}\nsecond worker:\n{}",
        coordinator.output(),
        second.output()
    );
    assert!(
        second.output().contains(&job),
        "the second worker ran the job"
    );
    Replaced {
        job,
        checkpoint,
        coordinator: coordinator.output(),
    }
}

fn segnet_attempts(cluster: &Cluster, run: &str, job: &str) -> (String, u64) {
    let jobs = summary_jobs(&read_json(
        &cluster.store.join(format!("runs/{run}/summary.json")),
    ));
    let segnet = jobs
        .into_iter()
        .find(|j| j.0 == job)
        .expect("the job in the summary");
    (segnet.3, segnet.4)
}

#[test]
fn a_worker_killed_mid_segnet_is_replaced_and_the_job_resumes() {
    let cluster = Cluster::new();
    let Replaced {
        job,
        checkpoint,
        coordinator,
    } = replace_worker_mid_segnet(&cluster, "killed", Process::kill_hard);
    assert!(coordinator.contains("lease expired"), "{coordinator}");

    let events = curve(&cluster.store, "killed", &job);
    let resumed = events
        .iter()
        .position(|e| e["event"] == "resumed" && e["stage"] == "segnet")
        .expect("the curve records the resume");
    let resumed_at = events[resumed]["step"].as_u64().unwrap();
    assert!(
        resumed_at >= checkpoint && resumed_at > 0,
        "resumed at {resumed_at}, from the checkpoint at {checkpoint}"
    );
    let first_step_after = events[resumed..]
        .iter()
        .find(|e| e["event"] == "step")
        .expect("steps after the resume")["step"]
        .as_u64()
        .unwrap();
    assert!(
        first_step_after > resumed_at,
        "the schedule continues after step {resumed_at}, not from 0"
    );
    assert_eq!(
        events.last().unwrap()["step"].as_u64(),
        Some(150),
        "the curve ends at the last step"
    );

    assert_eq!(
        segnet_attempts(&cluster, "killed", &job),
        ("done".to_string(), 2),
        "finished on its second lease"
    );
}

#[test]
fn a_restarted_coordinator_recovers_the_run_without_retraining() {
    let cluster = Cluster::new();
    let config = cluster.config("restarted", &[0.05, 0.1], 60);
    let mut coordinator = cluster.coordinator(&config, "coordinator-1.log");
    let mut worker = cluster.worker("worker");
    wait_until(
        "a SegNet job is under way",
        Duration::from_secs(300),
        || !segnet_checkpoints(&cluster.store, "restarted").is_empty(),
    );
    coordinator.kill_hard();
    let pretrain_before: Vec<String> = files_under(&cluster.store.join("runs/restarted/jobs"))
        .into_iter()
        .filter(|f| f.ends_with("encoder.ckpt"))
        .collect();
    assert_eq!(
        pretrain_before.len(),
        1,
        "pre-training finished before the kill"
    );
    let encoder = cluster
        .store
        .join("runs/restarted/jobs")
        .join(&pretrain_before[0]);
    // Objects are renamed into place: a rewrite is another file, whatever the clock says.
    let written = |file: &Path| {
        let metadata = std::fs::metadata(file).unwrap();
        (metadata.ino(), metadata.modified().unwrap())
    };
    let encoder_written = written(&encoder);

    let mut restarted = cluster.coordinator(&config, "coordinator-2.log");
    let status = restarted.wait(Duration::from_secs(600));
    let output = restarted.output();
    assert!(
        status.success(),
        "restarted coordinator:\n{output}\nworker:\n{}",
        worker.output()
    );
    assert!(
        output.contains("recovering the run from its journal"),
        "{output}"
    );
    assert!(
        worker.wait(Duration::from_secs(30)).success(),
        "the worker outlived the coordinator:\n{}",
        worker.output()
    );

    assert_eq!(
        written(&encoder),
        encoder_written,
        "pre-training did not run again"
    );
    let jobs = summary_jobs(&read_json(
        &cluster.store.join("runs/restarted/summary.json"),
    ));
    assert_eq!(jobs.len(), 3);
    for (id, kind, _, state, attempts) in jobs {
        assert_eq!(
            (state.as_str(), attempts),
            ("done", 1),
            "{kind} {id}: every job ran once, its lease kept across the restart"
        );
    }
}

#[test]
fn a_terminated_worker_checkpoints_and_gives_its_lease_back() {
    let cluster = Cluster::new();
    let stop = |worker: &mut Process| {
        worker.terminate();
        assert!(
            worker.wait(Duration::from_secs(120)).success(),
            "a terminated worker exits cleanly:\n{}",
            worker.output()
        );
    };
    let Replaced {
        job,
        checkpoint,
        coordinator,
    } = replace_worker_mid_segnet(&cluster, "terminated", stop);
    assert!(coordinator.contains("lease given back"), "{coordinator}");
    // Lease events name the job and its category, not only the lease.
    for event in ["lease given back", "job done"] {
        let lines: Vec<&str> = coordinator.lines().filter(|l| l.contains(event)).collect();
        assert!(
            !lines.is_empty()
                && lines
                    .iter()
                    .all(|l| l.contains("job=") && l.contains("category=weave")),
            "{event}: {coordinator}"
        );
    }
    assert!(
        !coordinator.contains("Actor{"),
        "no actor ids at the default level: {coordinator}"
    );

    let events = curve(&cluster.store, "terminated", &job);
    let resumed = events
        .iter()
        .find(|e| e["event"] == "resumed" && e["stage"] == "segnet")
        .expect("the curve records the resume");
    assert_eq!(
        resumed["step"].as_u64(),
        Some(checkpoint),
        "resumed from the checkpoint written on SIGTERM"
    );
    assert_eq!(
        segnet_attempts(&cluster, "terminated", &job),
        ("done".to_string(), 1),
        "giving a lease back uses no attempt"
    );
}
