//! What operators and their monitoring see: the coordinator's and a worker's health and
//! Prometheus endpoints (parsed by the official client's parser), the metrics' job counts equal
//! to `slsg status --json` during and after a run, and the standard gRPC health service.

use std::collections::BTreeMap;
use std::time::Duration;

use slsg_tests::*;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const TOKEN: &str = "observability-token";

/// Jobs by state, summed over kinds, of one run in a scrape.
fn metric_job_counts(samples: &[Sample], run: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (name, labels, value) in samples {
        if name == "slsg_jobs" && labels.get("run").map(String::as_str) == Some(run) && *value > 0.0
        {
            *counts.entry(labels["state"].clone()).or_insert(0) += *value as u64;
        }
    }
    counts
}

fn status_job_counts(url: &str, run: &str) -> Option<BTreeMap<String, u64>> {
    let overview: serde_json::Value = serde_json::from_str(&ok(slsg(
        &["status", url, "--json"],
        &[("SLSG_TOKEN", TOKEN)],
    )))
    .expect("status --json");
    let runs = overview["runs"].as_array()?;
    let entry = runs.iter().find(|r| r["run"] == run)?;
    let counts = entry["states"]
        .as_object()?
        .iter()
        .filter_map(|(state, n)| Some((state.clone(), n.as_u64()?)))
        .filter(|(_, n)| *n > 0)
        .collect();
    Some(counts)
}

fn scrape(address: &str) -> Vec<Sample> {
    let (code, body) = http_get(address, "/metrics").expect("scraping /metrics");
    assert_eq!(code, 200, "{body}");
    parse_metrics(&body)
}

fn value(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name && label.is_none_or(|(k, v)| labels.get(k).map(String::as_str) == Some(v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// The standard `grpc.health.v1` answer for `service`, asked without the token.
fn grpc_health(url: &str, service: &str) -> ServingStatus {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
            .expect("connecting for the health check");
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .expect("the health check");
        answer.into_inner().status()
    })
}

#[test]
fn metrics_parse_and_count_the_jobs_that_status_shows() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store = format!("file://{}", path(&dir.path().join("store")));
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "observed",
            store: &store,
            data: &data,
            categories: &["weave", "washer"],
            learning_rates: &[0.05, 0.1],
            segnet_steps: 60,
        },
    );
    let (grpc, http, worker_http) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let url = format!("http://{grpc}");
    let token = [("SLSG_TOKEN", TOKEN)];
    let coordinator = Process::start(
        &[
            "coordinator",
            path(&config),
            "--listen",
            &grpc,
            "--http-listen",
            &http,
        ],
        &token,
        dir.path().join("coordinator.log"),
    );
    wait_until("the coordinator is ready", Duration::from_secs(60), || {
        matches!(http_get(&http, "/readyz"), Ok((200, _)))
    });
    assert_eq!(http_get(&http, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(&http, "/nowhere").unwrap().0, 404);
    // Before any worker: every job is queued, but only the pre-training jobs can be leased
    // (what an autoscaler scales on).
    let before = scrape(&http);
    assert_eq!(
        metric_job_counts(&before, "observed"),
        BTreeMap::from([("queued".to_string(), 6)])
    );
    assert_eq!(value(&before, "slsg_jobs_leasable", None), 2.0);
    // An operator follows the run from its start; off a terminal the watch prints lines.
    let mut watcher = Process::start(
        &["status", &url, "--run", "observed", "--watch"],
        &token,
        dir.path().join("watch.log"),
    );
    let worker = Process::start(
        &[
            "worker",
            "--coordinator",
            &url,
            "--name",
            "observer",
            "--http-listen",
            &worker_http,
        ],
        &token,
        dir.path().join("worker.log"),
    );

    // While the run trains: a scrape taken between two equal ones must equal the status.
    let mut agreeing_while_running = 0;
    let mut worker_step_seen = false;
    wait_until("the run finished", Duration::from_secs(600), || {
        let before = metric_job_counts(&scrape(&http), "observed");
        let Some(status) = status_job_counts(&url, "observed") else {
            return false;
        };
        let after = metric_job_counts(&scrape(&http), "observed");
        if before == after {
            assert_eq!(before, status, "metrics and status disagree");
            if before.get("running").copied().unwrap_or(0) > 0 {
                agreeing_while_running += 1;
            }
        }
        let worker_samples = scrape(&worker_http);
        worker_step_seen |= value(&worker_samples, "slsg_worker_job_step", None) > 0.0;
        std::thread::sleep(Duration::from_millis(300));
        status.get("done").copied() == Some(6)
    });
    assert!(
        agreeing_while_running > 0,
        "no scrape agreed with the status while jobs ran"
    );
    assert!(worker_step_seen, "the worker never reported a step");

    // After the run: the same counts, and the counters of what happened.
    wait_until("the run is published", Duration::from_secs(60), || {
        value(&scrape(&http), "slsg_runs", Some(("state", "finished"))) == 1.0
    });
    let samples = scrape(&http);
    let counts = metric_job_counts(&samples, "observed");
    assert_eq!(Some(counts.clone()), status_job_counts(&url, "observed"));
    assert_eq!(counts, BTreeMap::from([("done".to_string(), 6)]));
    assert_eq!(
        value(&samples, "slsg_jobs", Some(("kind", "pretrain"))),
        2.0
    );
    assert_eq!(value(&samples, "slsg_leases_granted_total", None), 6.0);
    assert_eq!(value(&samples, "slsg_lease_wait_seconds_count", None), 6.0);
    assert_eq!(value(&samples, "slsg_workers_connected", None), 1.0);
    assert_eq!(value(&samples, "slsg_jobs_leasable", None), 0.0);
    assert_eq!(
        value(
            &samples,
            "slsg_registry_decisions_total",
            Some(("decision", "promoted"))
        ),
        2.0
    );
    assert_eq!(value(&samples, "slsg_store_errors_total", None), 0.0);
    let worker_samples = scrape(&worker_http);
    assert_eq!(
        value(
            &worker_samples,
            "slsg_worker_jobs_ended_total",
            Some(("outcome", "done"))
        ),
        6.0
    );
    assert_eq!(
        value(
            &worker_samples,
            "slsg_worker_slots",
            Some(("state", "idle"))
        ),
        1.0
    );
    assert_eq!(http_get(&worker_http, "/healthz").unwrap().0, 200);
    assert_eq!(grpc_health(&url, ""), ServingStatus::Serving);
    assert_eq!(
        grpc_health(&url, "slsg.cluster.v1.Cluster"),
        ServingStatus::Serving
    );
    // The watch ended with the run, its progress lines and the final table printed.
    let ended = watcher.wait(Duration::from_secs(60));
    let watched = watcher.output();
    assert!(ended.success(), "{watched}");
    assert!(
        watched.contains("jobs done") && watched.contains(" step "),
        "{watched}"
    );
    assert!(watched.contains("run `observed`: finished"), "{watched}");

    // The dashboard links the finished run's report, and serves it to the token's holder.
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let (code, body) = http_request(&http, "GET", "/api/dashboard", &[&bearer], "").unwrap();
    assert_eq!(code, 200, "{body}");
    let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
    let run = snapshot["runs"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["run"] == "observed"))
        .unwrap_or_else(|| panic!("{snapshot}"));
    assert_eq!(run["report"], "runs/observed/report", "{snapshot}");
    let (code, page) = http_request(&http, "GET", "/runs/observed/report", &[&bearer], "").unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("<h1>Run observed</h1>"), "{page}");
    assert_eq!(http_get(&http, "/runs/observed/report").unwrap().0, 401);
    drop(worker);
    drop(coordinator);
}
