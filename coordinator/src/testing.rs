//! Plans, job specifications and results for the coordinator's unit tests: one home for each
//! helper the table, the runs and the actor tests share.

use std::collections::BTreeMap;

use slsg::config::Config;
use slsg::job::{JobKind, JobResult, JobSpec, Plan, Resources};

/// A job of run `r` on category `cat`.
pub fn spec(id: &str, kind: JobKind, depends_on: Option<&str>) -> JobSpec {
    JobSpec {
        id: id.into(),
        kind,
        run: "r".into(),
        store: "mem".into(),
        dataset: "data".into(),
        dataset_listing: None,
        category: "cat".into(),
        config: Config::default(),
        point: BTreeMap::new(),
        depends_on: depends_on.map(String::from),
        retraining: None,
        early_stopping: None,
    }
}

/// Run `r`: a pre-training job `p` and two SegNet jobs `s1`, `s2` after it; two attempts per
/// job, 10 s leases.
pub fn plan() -> Plan {
    Plan {
        run: "r".into(),
        store: "mem".into(),
        resources: Resources {
            max_attempts: 2,
            lease_seconds: 10,
            ..Resources::default()
        },
        jobs: vec![
            spec("p", JobKind::Pretrain, None),
            spec("s1", JobKind::Segnet, Some("p")),
            spec("s2", JobKind::Segnet, Some("p")),
        ],
        gate_tolerance: None,
        early_stopping: None,
        budget: None,
    }
}

/// [`plan`] under another run name and store.
pub fn plan_in(run: &str, store: &str) -> Plan {
    let mut plan = plan();
    plan.run = run.into();
    plan.store = store.into();
    for job in &mut plan.jobs {
        job.run = run.into();
        job.store = store.into();
    }
    plan
}

/// Lease ids as a counter (the actor draws random ones).
pub fn next_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("lease-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn result() -> JobResult {
    JobResult {
        steps: 1,
        validation: None,
        evaluation: None,
        inference_images_per_second: None,
        gate: None,
        seconds: 0.0,
        stopped_early: None,
    }
}
