//! A store outage in the middle of a run: the S3 server `.ci/run` starts is stopped for longer
//! than a lease (its requests refused), then started again on its data. Leases live on
//! (heartbeats need no store), the job waits the outage out without using an attempt, the
//! coordinator never exits and stays ready (its Service must keep routing workers to it), and
//! the run finishes.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use slsg::store::Store;
use slsg::store::layout::RunKeys;
use slsg_tests::*;

/// Keeps the S3 server down until dropped (so a failing test never leaves it down).
struct Outage;

fn s3_server(action: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/s3-server.sh");
    let status = Command::new(script).arg(action).status().unwrap();
    assert!(status.success(), "s3-server.sh {action}");
}

impl Outage {
    fn new() -> Outage {
        s3_server("down");
        Outage
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        s3_server("up");
    }
}

#[test]
fn a_store_outage_longer_than_a_lease_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store_url = s3_store("outage");
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "outage",
            store: &store_url,
            data: &data,
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 150,
        },
    );
    let address = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{address}");
    let http = format!("127.0.0.1:{}", free_port());
    let mut coordinator = Process::start(
        &[
            "coordinator",
            path(&config),
            "--listen",
            &address,
            "--http-listen",
            &http,
            "--insecure",
            "--once",
            "--linger",
            "10s",
        ],
        &[],
        dir.path().join("coordinator.log"),
    );
    let mut worker = Process::start(
        &["worker", "--coordinator", &url, "--connect-seconds", "120"],
        &[],
        dir.path().join("worker.log"),
    );
    let store = Store::open(&store_url).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let run = RunKeys::new("outage").unwrap();
    wait_until(
        "the SegNet job wrote a checkpoint",
        Duration::from_secs(600),
        || {
            runtime
                .block_on(store.list(run.prefix()))
                .unwrap_or_default()
                .iter()
                .any(|k| k.as_str().contains("/checkpoints/segnet-"))
        },
    );

    // Only the failures the outage causes count: on a loaded machine the store can also fail
    // the worker before it.
    let store_failures = || worker.output().matches("the store failed").count();
    let failed_before = store_failures();
    let outage = Outage::new();
    let down = Instant::now();
    // Held until the worker has met the outage four times (its pauses between tries, half to
    // one and a half times 1, 2, 4 and 8 s, add up to at least 7.5 s) and the server has been
    // down for longer than the 5 s lease: `Outage::new` returns once it is down, and stopping
    // it can take seconds, during which the worker may already fail.
    wait_until(
        "the worker met the outage four times, for longer than a lease",
        Duration::from_secs(300),
        || store_failures() >= failed_before + 4 && down.elapsed() > Duration::from_secs(6),
    );
    assert!(coordinator.is_running(), "{}", coordinator.output());
    assert!(worker.is_running(), "{}", worker.output());
    let ready = http_get(&http, "/readyz");
    assert!(
        matches!(ready, Ok((200, _))),
        "ready during the outage: {ready:?}"
    );
    drop(outage);

    let status = coordinator.wait(Duration::from_secs(900));
    assert!(status.success(), "{}", coordinator.output());
    let bytes = runtime
        .block_on(store.get(&run.summary()))
        .unwrap()
        .expect("summary.json");
    let jobs = summary_jobs(&serde_json::from_slice(&bytes).unwrap());
    for (id, kind, _, state, attempts) in &jobs {
        assert_eq!(state, "done", "{kind} {id}");
        assert_eq!(*attempts, 1, "{kind} {id}: the outage used no attempt");
    }
}
