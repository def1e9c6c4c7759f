//! Cluster mode across processes: a coordinator and two `slsg worker` processes on loopback
//! gRPC, storing in the real S3 server that `.ci/run` starts (SeaweedFS); and the
//! bearer token keeping strangers out.

use std::time::Duration;

use slsg::store::layout::{CategoryModels, RunKeys};
use slsg::store::{Key, Store};
use slsg_tests::*;

const TOKEN: &str = "tests-secret-token";

#[test]
fn two_worker_processes_finish_a_plan_into_s3() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store_url = s3_store("remote");
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "remote",
            store: &store_url,
            data: &data,
            categories: &["weave", "washer"],
            learning_rates: &[0.05, 0.1],
            segnet_steps: 40,
        },
    );
    let address = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{address}");
    let token = [("SLSG_TOKEN", TOKEN)];
    let mut coordinator = Process::start(
        &[
            "coordinator",
            path(&config),
            "--listen",
            &address,
            "--once",
            "--linger",
            "10s",
        ],
        &token,
        dir.path().join("coordinator.log"),
    );
    let workers: Vec<Process> = (0..2)
        .map(|i| {
            Process::start(
                &["worker", "--coordinator", &url, "--name", &format!("w{i}")],
                &token,
                dir.path().join(format!("worker-{i}.log")),
            )
        })
        .collect();

    let status = coordinator.wait(Duration::from_secs(600));
    assert!(status.success(), "coordinator:\n{}", coordinator.output());
    for mut worker in workers {
        let output = worker.output();
        assert!(
            worker.wait(Duration::from_secs(30)).success(),
            "worker:\n{output}"
        );
        assert!(
            output.contains("leased"),
            "both workers took jobs:\n{output}"
        );
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open(&store_url).unwrap();
    let keys: Vec<String> = runtime
        .block_on(async {
            Ok::<_, slsg::store::StoreError>(
                [
                    store.list(&Key::new(["runs"]).unwrap()).await?,
                    store.list(&Key::new(["models"]).unwrap()).await?,
                ]
                .concat(),
            )
        })
        .unwrap()
        .iter()
        .map(|k| k.to_string())
        .collect();
    let summary_bytes = runtime
        .block_on(store.get(&RunKeys::new("remote").unwrap().summary()))
        .unwrap()
        .expect("summary.json in the bucket");
    let summary: serde_json::Value = serde_json::from_slice(&summary_bytes).unwrap();
    let jobs = summary_jobs(&summary);
    assert_eq!(jobs.len(), 6);
    assert!(jobs.iter().all(|j| j.3 == "done"), "{jobs:?}");
    let triples: Vec<(String, String, String)> = jobs
        .iter()
        .map(|j| (j.0.clone(), j.1.clone(), j.2.clone()))
        .collect();
    for key in expected_artifacts("remote", &triples) {
        assert!(
            keys.contains(&key),
            "{key} missing from {store_url}:\n{}",
            keys.join("\n")
        );
    }
    for category in ["weave", "washer"] {
        let models = CategoryModels::new(category).unwrap();
        let current = runtime
            .block_on(store.get(&models.current()))
            .unwrap()
            .expect("a registered model");
        let version = String::from_utf8(current).unwrap();
        let weights = runtime
            .block_on(store.get(&models.version(&version).unwrap().model().weights()))
            .unwrap();
        assert!(
            weights.is_some_and(|w| !w.is_empty()),
            "{category}: registered weights readable from the bucket"
        );
    }
}

#[test]
fn a_worker_with_the_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store = dir.path().join("store");
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "guarded",
            store: path(&store),
            data: &data,
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );
    let address = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{address}");
    let mut coordinator = Process::start(
        &["coordinator", path(&config), "--listen", &address],
        &[("SLSG_TOKEN", TOKEN)],
        dir.path().join("coordinator.log"),
    );
    wait_until("the coordinator serves", Duration::from_secs(60), || {
        coordinator.output().contains("serving workers")
    });

    fails_with(
        slsg(
            &["worker", "--coordinator", &url, "--connect-seconds", "20"],
            &[("SLSG_TOKEN", "not-the-token")],
        ),
        &["refused", "token"],
    );
    fails_with(
        slsg(
            &["worker", "--coordinator", &url, "--connect-seconds", "20"],
            &[],
        ),
        &["refused", "token"],
    );
    fails_with(
        slsg(&["status", &url], &[("SLSG_TOKEN", "not-the-token")]),
        &["token"],
    );
    // An operator without a token is told which variable is missing, and not called a worker.
    let unset = fails_with(slsg(&["status", &url], &[]), &["SLSG_TOKEN is not set"]);
    assert!(!unset.contains("worker"), "{unset}");
    // A worker sent to a port where nothing listens says where it is trying while it waits,
    // and names the address when it gives up.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let waited = fails_with(
        slsg(
            &[
                "worker",
                "--coordinator",
                &nowhere,
                "--connect-seconds",
                "12",
            ],
            &[("SLSG_TOKEN", TOKEN), ("SLSG_LOG", "warn")],
        ),
        &[&format!(
            "could not reach the coordinator at {nowhere} within 12 s"
        )],
    );
    assert!(
        waited.contains(&format!("still waiting for the coordinator at {nowhere}")),
        "{waited}"
    );
    let status = ok(slsg(&["status", &url], &[("SLSG_TOKEN", TOKEN)]));
    assert!(
        status.contains("queued"),
        "no job was leased to the refused workers:\n{status}"
    );
    assert!(coordinator.is_running());
    fails_with(
        slsg(
            &[
                "coordinator",
                path(&config),
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
            ],
            &[("SLSG_TOKEN", "")],
        ),
        &["SLSG_TOKEN"],
    );
}
