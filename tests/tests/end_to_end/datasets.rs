//! Datasets in the store: `slsg dataset push` to the test S3 server, a plan whose dataset is an
//! `s3://` URL trained by two worker processes that have no local copy (each its own empty
//! cache), copies reused, job ids that follow the bucket's objects, and clear errors for URLs,
//! categories and caches that are wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use slsg::data::{Dataset, DatasetCache, SourceError};
use slsg::job::{ClusterConfig, Plan};
use slsg_tests::*;

const TOKEN: &str = "datasets-token";

fn job_ids_by_category(config: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let cluster = ClusterConfig::load(config).unwrap();
    let plan = Plan::expand(&cluster, "datasets.toml", 2).unwrap();
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for job in plan.jobs {
        ids.entry(job.category).or_default().push(job.id);
    }
    ids
}

#[test]
fn workers_without_the_data_train_from_an_s3_dataset_and_reuse_their_copies() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let url = s3_store("dataset");
    let pushed = ok(slsg(&["dataset", "push", path(&data), &url], &[]));
    assert!(pushed.contains("files uploaded, 0 unchanged"), "{pushed}");
    let again = ok(slsg(&["dataset", "push", path(&data), &url], &[]));
    assert!(again.contains(": 0 files uploaded"), "{again}");
    // Nobody reads the local copy from here on.
    let moved = dir.path().join("elsewhere");
    std::fs::rename(&data, &moved).unwrap();

    let store = s3_store("dataset-store");
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "from-s3",
            store: &store,
            data: std::path::Path::new(&url),
            categories: &["weave", "washer"],
            learning_rates: &[0.05, 0.1],
            segnet_steps: 20,
        },
    );
    let before = job_ids_by_category(&config);
    let address = format!("127.0.0.1:{}", free_port());
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
            "--cache",
            path(&dir.path().join("coordinator-cache")),
        ],
        &token,
        dir.path().join("coordinator.log"),
    );
    let workers: Vec<Process> = (0..2)
        .map(|i| {
            let cache = dir.path().join(format!("cache-{i}"));
            Process::start(
                &[
                    "worker",
                    "--coordinator",
                    &format!("http://{address}"),
                    "--name",
                    &format!("w{i}"),
                    "--cache",
                    path(&cache),
                ],
                &token,
                dir.path().join(format!("worker-{i}.log")),
            )
        })
        .collect();
    let status = coordinator.wait(Duration::from_secs(600));
    assert!(status.success(), "coordinator:\n{}", coordinator.output());
    // The coordinator fingerprinted from the listing: it copied nothing.
    assert!(!dir.path().join("coordinator-cache").exists());

    let mut reused = 0;
    for (i, mut worker) in workers.into_iter().enumerate() {
        assert!(worker.wait(Duration::from_secs(60)).success());
        let log = worker.output();
        for category in ["weave", "washer"] {
            let fetched = log
                .lines()
                .filter(|l| l.contains("fetched the dataset copy") && l.contains(category))
                .count();
            assert!(
                fetched <= 1,
                "worker {i} fetched {category} {fetched} times:\n{log}"
            );
        }
        reused += log
            .lines()
            .filter(|l| l.contains("using the cached dataset copy"))
            .count();
        let copies = std::fs::read_dir(dir.path().join(format!("cache-{i}/datasets")))
            .map(|entries| entries.count())
            .unwrap_or(0);
        assert!(copies <= 2, "worker {i}: {copies} copies");
    }
    // Six jobs on two workers: some worker ran two jobs of one category, from one copy.
    assert!(reused >= 1, "no job reused a cached copy");

    // One washer training image changes in the bucket: washer's jobs change, weave's do not.
    let image = moved.join("washer/train/good/000.png");
    let mut bytes = std::fs::read(&image).unwrap();
    bytes.extend_from_slice(b"changed");
    std::fs::write(&image, bytes).unwrap();
    let changed = ok(slsg(&["dataset", "push", path(&moved), &url], &[]));
    assert!(changed.contains(": 1 files uploaded"), "{changed}");
    let after = job_ids_by_category(&config);
    assert_eq!(before["weave"], after["weave"]);
    for id in &after["washer"] {
        assert!(
            !before["washer"].contains(id),
            "washer job {id} kept its id"
        );
    }
}

#[test]
fn wrong_dataset_urls_categories_and_copies_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let url = s3_store("dataset-errors");
    ok(slsg(&["dataset", "push", path(&data), &url], &[]));
    let config = |name: &str, dataset: &str, category: &str| {
        write_config(
            dir.path(),
            &RunConfig {
                name,
                store: &format!("file://{}", path(&dir.path().join("store"))),
                data: std::path::Path::new(dataset),
                categories: &[category],
                learning_rates: &[0.1],
                segnet_steps: 20,
            },
        )
    };
    // A category folder pushed as if it were the dataset is refused before any upload.
    let category_url = format!("{url}-category");
    fails_with(
        slsg(
            &["dataset", "push", path(&data.join("weave")), &category_url],
            &[],
        ),
        &["a category folder, not a dataset folder", path(&data)],
    );
    fails_with(
        slsg(&["dataset", "list", &category_url], &[]),
        &["no category folders"],
    );
    let missing = format!("{url}-nothing-here");
    let empty = config("empty", &missing, "weave");
    fails_with(
        slsg(&["plan", path(&empty)], &[]),
        &[&missing, "no category"],
    );
    let unknown = config("unknown", &url, "nosuch");
    fails_with(
        slsg(&["plan", path(&unknown)], &[]),
        &["nosuch", &url, "weave"],
    );
    let bucket = config("bucket", "s3://no-such-bucket-for-slsg/data", "weave");
    fails_with(
        slsg(&["plan", path(&bucket)], &[]),
        &["no-such-bucket-for-slsg"],
    );
    fails_with(
        slsg(
            &["dataset", "push", path(&dir.path().join("absent")), &url],
            &[],
        ),
        &["absent"],
    );
    fails_with(
        slsg(&["dataset", "push", path(&data), path(&data)], &[]),
        &["not a URL"],
    );

    // A cached copy with a truncated file is fetched again; a job planned on other objects
    // than the bucket holds now is refused.
    let dataset = Dataset::open(std::path::Path::new(&url)).unwrap();
    let cache = DatasetCache::new(dir.path().join("cache"));
    let category = dataset.category("weave", None, &cache).unwrap();
    let image = category.train[0].clone();
    let size = std::fs::metadata(&image).unwrap().len();
    std::fs::write(&image, b"trunc").unwrap();
    let again = dataset.category("weave", None, &cache).unwrap();
    assert_eq!(again.train[0], image);
    assert_eq!(std::fs::metadata(&image).unwrap().len(), size);
    let stale = dataset.category("weave", Some("0000"), &cache).unwrap_err();
    assert!(matches!(stale, SourceError::Changed { .. }), "{stale}");
    assert!(
        stale
            .to_string()
            .contains("changed since the run was planned")
    );
}
