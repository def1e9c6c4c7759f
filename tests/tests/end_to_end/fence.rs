//! One coordinator per store: a second coordinator started on the store of a running one waits
//! for the store lock without serving or writing anything, takes over within the lock's
//! lifetime once the first is killed with `kill -9`, and a coordinator stopped cleanly lets the
//! next one start at once; a holder paused past the lifetime is taken over and, running again,
//! stops with status 3. The store is the real S3 server `.ci/run` starts, in a bucket that
//! does not exist until the first coordinator writes.

use std::time::{Duration, Instant};

use slsg::store::Store;
use slsg::store::layout::RunKeys;
use slsg_tests::*;

/// The lock's lifetime in this test (seconds).
const LOCK_SECONDS: u64 = 4;

struct Coordinator {
    process: Process,
    http: String,
}

fn coordinator(config: &std::path::Path, dir: &std::path::Path, log: &str) -> Coordinator {
    let http = format!("127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let process = Process::start(
        &[
            "coordinator",
            path(config),
            "--listen",
            &listen,
            "--http-listen",
            &http,
            "--insecure",
            "--lock-seconds",
            &LOCK_SECONDS.to_string(),
        ],
        &[],
        dir.join(log),
    );
    Coordinator { process, http }
}

impl Coordinator {
    fn ready(&self) -> bool {
        matches!(http_get(&self.http, "/readyz"), Ok((200, _)))
    }
}

#[test]
fn a_second_coordinator_waits_for_the_store_lock_and_takes_over_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    // A bucket of its own that does not exist yet (SeaweedFS creates it on the first write):
    // the lock's first listing takes it as empty.
    let prefix = s3_store("fence");
    let store_url = format!("s3://{}", prefix.rsplit('/').next().unwrap());
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "fenced",
            store: &store_url,
            data: &data,
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );
    let first = coordinator(&config, dir.path(), "coordinator-1.log");
    wait_until(
        "the first coordinator is ready",
        Duration::from_secs(120),
        || first.ready(),
    );
    let store = Store::open(&store_url).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let journal = RunKeys::new("fenced").unwrap().journal();
    assert!(
        runtime.block_on(store.exists(&journal)).unwrap(),
        "the first coordinator opened the run"
    );

    // The second waits: it names the holder, is never ready and writes nothing, for several
    // of the lock's lifetimes.
    let mut second = coordinator(&config, dir.path(), "coordinator-2.log");
    wait_until(
        "the second names the holder",
        Duration::from_secs(60),
        || {
            second
                .process
                .output()
                .contains("the store lock is held by the coordinator on")
        },
    );
    std::thread::sleep(Duration::from_secs(3 * LOCK_SECONDS));
    assert!(second.process.is_running(), "{}", second.process.output());
    assert!(!second.ready(), "{}", second.process.output());
    assert!(
        !second.process.output().contains("serving workers"),
        "{}",
        second.process.output()
    );
    assert!(first.ready(), "{}", first.process.output());

    // kill -9: no release. The second takes the lock once the first has been silent for a
    // lifetime, waits one more before writing, then recovers the run.
    let mut first = first;
    first.process.kill_hard();
    let killed = Instant::now();
    wait_until(
        "the second took the lock over",
        Duration::from_secs(60),
        || second.process.output().contains("took the lock over"),
    );
    // A lifetime of silence after the first's last beat (at most a quarter of a lifetime before
    // the kill), plus the waiter's polls and a loaded machine's slack.
    let took_over = Instant::now();
    assert!(
        took_over - killed <= Duration::from_secs(LOCK_SECONDS * 5 / 2),
        "took {:?} for a {LOCK_SECONDS} s lock",
        took_over - killed
    );
    wait_until(
        "the second coordinator is ready",
        Duration::from_secs(120),
        || second.ready(),
    );
    // The line is seen up to one poll after it is written; the settling wait is a lifetime.
    assert!(
        took_over.elapsed() >= Duration::from_secs(LOCK_SECONDS - 1),
        "the second waited a lifetime after taking over: {:?}",
        took_over.elapsed()
    );
    assert!(
        second.process.output().contains("serving workers"),
        "{}",
        second.process.output()
    );

    // Stopped cleanly, a coordinator releases the lock: the next one needs no wait.
    second.process.terminate();
    let status = second.process.wait(Duration::from_secs(120));
    assert!(status.success(), "{}", second.process.output());
    let started = Instant::now();
    let third = coordinator(&config, dir.path(), "coordinator-3.log");
    wait_until(
        "the third coordinator is ready",
        Duration::from_secs(120),
        || third.ready(),
    );
    assert!(
        started.elapsed() < Duration::from_secs(LOCK_SECONDS),
        "a released lock is taken at once: {:?}\n{}",
        started.elapsed(),
        third.process.output()
    );
    assert!(
        !third
            .process
            .output()
            .contains("waiting for the store lock"),
        "{}",
        third.process.output()
    );

    // A holder that stalls (a paused process, a frozen machine) past the lock's lifetime is
    // taken over; when it runs again it stops at once, with status 3, writing nothing more.
    let fourth = coordinator(&config, dir.path(), "coordinator-4.log");
    wait_until(
        "the fourth names the holder",
        Duration::from_secs(60),
        || {
            fourth
                .process
                .output()
                .contains("the store lock is held by")
        },
    );
    let mut third = third;
    third.process.signal("STOP");
    wait_until(
        "the fourth coordinator is ready",
        Duration::from_secs(120),
        || fourth.ready(),
    );
    third.process.signal("CONT");
    let status = third.process.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(3), "{}", third.process.output());
    assert!(
        third.process.output().contains("stopping at once"),
        "{}",
        third.process.output()
    );
    assert!(fourth.ready(), "{}", fourth.process.output());
}
