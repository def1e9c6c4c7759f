//! Scheduler throughput: the real coordinator actor and gRPC service on loopback, 10 000 no-op
//! jobs (their artifacts written to a local store beforehand, so each completion is verified
//! there as in a real run), and 100 or 1 000 simulated workers (each its own connection) that
//! lease a job, send one heartbeat, hold the job for a while (jittered) and complete it. Held
//! for no time, the workers saturate the coordinator (the most leases per second; latency is then queueing, by Little's
//! law concurrency / throughput); held so that they ask for 1 000 leases per second in all,
//! the latencies are those of a busy cluster below saturation. Prints a Markdown table.
//!
//! `cargo bench -p slsg-coordinator --bench scheduler [-- JOBS WORKERS…]`

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::Actor;
use rand::RngExt;
use slsg::checkpoint::{Checkpoint, CheckpointMeta};
use slsg::config::Config;
use slsg::data::DatasetCache;
use slsg::job::{JobKind, JobResult, JobSpec, Plan, Resources};
use slsg::store::Store;
use slsg::store::layout::RunKeys;
use slsg_coordinator::actor::{CoordinatorActor, CoordinatorArgs, DEFAULT_OPEN_RUNS, Mode};
use slsg_coordinator::guard::Limits;
use slsg_coordinator::scheduler::Intake;
use slsg_coordinator::service::{ClusterService, serve};
use slsg_coordinator::tls::Security;
use slsg_worker::{Access, CoordinatorLink, GrpcLink, LeaseOutcome};
use tokio::sync::watch;

/// The offered load of the paced runs.
const PACED_LEASES_PER_SECOND: f64 = 1_000.0;

#[derive(Default)]
struct Latencies {
    lease: Vec<Duration>,
    heartbeat: Vec<Duration>,
    complete: Vec<Duration>,
}

fn plan(jobs: usize, store: &str) -> Plan {
    let specs = (0..jobs)
        .map(|i| JobSpec {
            id: format!("{i:016x}"),
            kind: JobKind::Pretrain,
            run: "bench".into(),
            store: store.into(),
            dataset: "unused".into(),
            dataset_listing: None,
            category: format!("category{}", i % 100),
            config: Config::default(),
            point: BTreeMap::new(),
            depends_on: None,
            retraining: None,
            early_stopping: None,
        })
        .collect();
    Plan {
        run: "bench".into(),
        store: store.into(),
        resources: Resources {
            lease_seconds: 600,
            ..Resources::default()
        },
        jobs: specs,
        gate_tolerance: None,
        early_stopping: None,
        budget: None,
    }
}

/// Holds each job for `hold` × U(0.5, 1.5), so the workers drift apart as a real cluster's do
/// instead of asking in lock-step bursts.
async fn simulated_worker(
    link: GrpcLink,
    name: String,
    hold: Duration,
    seed: u64,
    latencies: Arc<Mutex<Latencies>>,
) {
    let mut rng = slsg::seed::rng_for(seed, &[]);
    // As `slsg worker` does: retry while the server's accept queue is full of new connections.
    let mut attempts = 0;
    while let Err(e) = link.register(&name, "none").await {
        attempts += 1;
        assert!(attempts < 100, "register: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let result = no_op_result();
    // Paced workers join over one holding period, as a cluster's nodes come up, rather than
    // all in the same millisecond.
    tokio::time::sleep(hold.mul_f64(rng.random_range(0.0..1.0))).await;
    let mut own = Latencies::default();
    loop {
        let start = Instant::now();
        match link
            .lease(&name, Duration::from_secs(1))
            .await
            .expect("lease")
        {
            LeaseOutcome::Job(job) => {
                own.lease.push(start.elapsed());
                let start = Instant::now();
                link.heartbeat(&job.lease_id, &name, None)
                    .await
                    .expect("heartbeat");
                own.heartbeat.push(start.elapsed());
                tokio::time::sleep(hold.mul_f64(rng.random_range(0.5..1.5))).await;
                let start = Instant::now();
                assert!(
                    link.complete(&job.lease_id, &name, &result)
                        .await
                        .expect("complete")
                );
                own.complete.push(start.elapsed());
            }
            LeaseOutcome::Wait => {}
            LeaseOutcome::Stopping => break,
        }
    }
    let mut all = latencies.lock().unwrap();
    all.lease.extend(own.lease);
    all.heartbeat.extend(own.heartbeat);
    all.complete.extend(own.complete);
}

fn no_op_result() -> JobResult {
    JobResult {
        steps: 0,
        validation: None,
        evaluation: None,
        inference_images_per_second: None,
        gate: None,
        seconds: 0.0,
        stopped_early: None,
    }
}

/// What each no-op pre-training job leaves in the store: its result and an (empty) encoder.
async fn write_artifacts(store: &Store, plan: &Plan) {
    let keys = RunKeys::new(&plan.run).expect("a valid run name");
    let encoder = Checkpoint::new(CheckpointMeta {
        stage: "encoder".into(),
        step: 0,
        total_steps: 0,
        seed: 0,
        extra: Default::default(),
    })
    .encode();
    for job in &plan.jobs {
        let stage = keys.job(&job.id).expect("a valid job id");
        store
            .put(&stage.encoder(), encoder.clone())
            .await
            .expect("encoder");
        store
            .put_json(&stage.result(), &no_op_result())
            .await
            .expect("result");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn summary(values: &mut [Duration]) -> String {
    values.sort_unstable();
    format!(
        "{:.2} / {:.2} / {:.2}",
        percentile(values, 0.5),
        percentile(values, 0.99),
        percentile(values, 1.0)
    )
}

async fn measure(jobs: usize, workers: usize, hold: Duration) -> String {
    let dir = tempfile::tempdir().expect("temporary store");
    let store_url = dir.path().to_str().expect("UTF-8 path").to_string();
    let store = Store::open(&store_url).expect("store");
    let plan = plan(jobs, &store_url);
    let (finished_sender, mut finished) = watch::channel(None);
    let (actor, task) = Actor::spawn(
        None,
        CoordinatorActor,
        CoordinatorArgs {
            store: store.clone(),
            mode: Mode::Once,
            plans: vec![plan.clone()],
            retry_failed: false,
            finished: finished_sender,
            open_runs_limit: DEFAULT_OPEN_RUNS as usize,
        },
    )
    .await
    .expect("coordinator");
    write_artifacts(&store, &plan).await;
    let address = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let intake = Arc::new(Intake::new(
        actor.clone(),
        store,
        1,
        DatasetCache::new(std::env::temp_dir().join("slsg-bench-cache")),
        Vec::new(),
    ));
    let service = ClusterService::new(
        actor.clone(),
        intake,
        "bench".into(),
        Duration::from_secs(5),
    );
    let mut until_finished = finished.clone();
    let limits = Limits {
        max_connections: 4 * workers,
        ..Limits::default()
    };
    let server = tokio::spawn(serve(
        service,
        address,
        Security {
            token: Some("bench-token".into()),
            ..Security::default()
        },
        limits,
        async move {
            let _ = until_finished.wait_for(|s| s.is_some()).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let url = format!("http://{address}");
    let access = Access {
        token: Some("bench-token".into()),
        ..Access::default()
    };
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|i| {
            let link = GrpcLink::new(&url, &access).expect("link");
            tokio::spawn(simulated_worker(
                link,
                format!("w{i}"),
                hold,
                i as u64,
                latencies.clone(),
            ))
        })
        .collect();
    for t in tasks {
        t.await.expect("worker task");
    }
    let _ = finished.wait_for(|s| s.is_some()).await;
    let wall = start.elapsed().as_secs_f64();
    actor.stop(None);
    let _ = task.await;
    let _ = server.await;

    let mut l = Arc::try_unwrap(latencies)
        .ok()
        .expect("workers done")
        .into_inner()
        .unwrap();
    assert_eq!(l.lease.len(), jobs, "every job leased once");
    format!(
        "| {workers} | {jobs} | {} | {wall:.2} | {:.0} | {} | {} | {} |",
        hold.as_millis(),
        jobs as f64 / wall,
        summary(&mut l.lease),
        summary(&mut l.heartbeat),
        summary(&mut l.complete)
    )
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let jobs = args.first().copied().unwrap_or(10_000);
    let worker_counts = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![100, 1_000]
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    println!(
        "| workers | jobs | job held ms | wall s | leases/s | lease ms p50 / p99 / max | heartbeat ms p50 / p99 / max | complete ms p50 / p99 / max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for workers in worker_counts {
        let paced = Duration::from_secs_f64(workers as f64 / PACED_LEASES_PER_SECOND);
        for hold in [Duration::ZERO, paced] {
            println!("{}", runtime.block_on(measure(jobs, workers, hold)));
        }
    }
}
