//! The coordinator's network surface against clients that hold the token but not the rules: a
//! forged lease, another worker's lease, a completion whose artifacts are not in the store,
//! oversized fields; and connections that never authenticate, or never finish their handshake,
//! are closed, and no more than the cap are held.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use slsg::proto::{
    CompleteRequest, ERROR_LIMIT, FailRequest, FailureKind, HeartbeatRequest, LeaseRequest,
    PROTOCOL_VERSION, RegisterRequest, RetrainRequest, SubmitRequest,
};
use slsg_tests::*;
use slsg_worker::Access;
use slsg_worker::grpc::{Client, connect};

const TOKEN: &str = "network-test-token";

/// A coordinator serving a one-category plan that no worker runs: the test plays the workers.
struct Served {
    dir: tempfile::TempDir,
    coordinator: Process,
    address: String,
    url: String,
}

/// `extra_flags` may name the dataset folder as `{data}`.
fn serve(extra_flags: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store = dir.path().join("store");
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "net",
            store: path(&store),
            data: &data,
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );
    let address = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["coordinator", path(&config), "--listen", &address];
    args.extend(
        extra_flags
            .iter()
            .map(|&flag| if flag == "{data}" { path(&data) } else { flag }),
    );
    let coordinator = Process::start(
        &args,
        &[("SLSG_TOKEN", TOKEN)],
        dir.path().join("coordinator.log"),
    );
    wait_until("the coordinator serves", Duration::from_secs(60), || {
        coordinator.output().contains("serving workers")
    });
    Served {
        url: format!("http://{address}"),
        address,
        coordinator,
        dir,
    }
}

fn client(url: &str) -> Client {
    let access = Access {
        token: Some(TOKEN.into()),
        ..Access::default()
    };
    connect(url, &access, Duration::from_secs(30)).unwrap()
}

/// The run's jobs as `slsg status --run net --json` shows them.
fn jobs(url: &str) -> Vec<serde_json::Value> {
    let status: serde_json::Value = serde_json::from_str(&ok(slsg(
        &["status", url, "--run", "net", "--json"],
        &[("SLSG_TOKEN", TOKEN)],
    )))
    .unwrap();
    status["jobs"].as_array().unwrap().clone()
}

#[test]
fn leases_are_credentials_bound_to_their_worker() {
    let served = serve(&["--once"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut w1 = client(&served.url);
        let mut w2 = client(&served.url);
        for (client, name) in [(&mut w1, "w1"), (&mut w2, "w2")] {
            client
                .register(RegisterRequest {
                    worker: name.into(),
                    device: "cpu".into(),
                    version: "test".into(),
                    // Unset, as workers from before the field send it: protocol 1.
                    protocol: 0,
                })
                .await
                .unwrap();
        }
        let lease = w1
            .lease_job(LeaseRequest {
                worker: "w1".into(),
                wait_ms: 5_000,
            })
            .await
            .unwrap()
            .into_inner()
            .lease
            .expect("a job to lease");
        assert!(lease.lease_id.len() >= 32, "128 random bits: {}", lease.lease_id);
        let spec: serde_json::Value = serde_json::from_str(&lease.spec_json).unwrap();
        let job = spec["id"].as_str().unwrap().to_string();

        // A lease id guessed from the public job id, and the real one from another worker.
        for (lease_id, worker) in [
            (format!("{job}-1"), "w2"),
            (format!("{job}-1"), "w1"),
            (lease.lease_id.clone(), "w2"),
        ] {
            let complete = w2
                .complete(CompleteRequest {
                    lease_id: lease_id.clone(),
                    worker: worker.into(),
                    result_json: "{}".into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(!complete.accepted, "{lease_id} from {worker}");
            let fail = w2
                .fail(FailRequest {
                    lease_id: lease_id.clone(),
                    error: "forged".into(),
                    kind: FailureKind::Permanent as i32,
                    worker: worker.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(!fail.accepted, "{lease_id} from {worker}");
            let beat = w2
                .heartbeat(HeartbeatRequest {
                    lease_id,
                    worker: worker.into(),
                    progress_json: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(!beat.accepted && beat.cancel);
        }
        // The holder's lease is untouched by all that.
        let beat = w1
            .heartbeat(HeartbeatRequest {
                lease_id: lease.lease_id.clone(),
                worker: "w1".into(),
                progress_json: "{\"stage\":\"pretrain\",\"step\":1,\"total_steps\":20,\"losses\":{},\"images_per_second\":1.0}".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(beat.accepted);

        // The journal, which every worker can read, names the lease by a digest that does not
        // grant it, even with the holder's name.
        let journal = served.dir.path().join("store/runs/net/state.json");
        let mut digest = String::new();
        wait_until("the lease is journaled", Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&journal).unwrap_or_default();
            assert!(!text.contains(&lease.lease_id), "{text}");
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            digest = value["jobs"][&job]["lease_sha256"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            !digest.is_empty()
        });
        let fail = w2
            .fail(FailRequest {
                lease_id: digest,
                error: "forged from the journal".into(),
                kind: FailureKind::Permanent as i32,
                worker: "w1".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!fail.accepted, "the journaled digest is no lease id");

        // The holder's completion is refused too: nothing of the job is in the store.
        let complete = w1
            .complete(CompleteRequest {
                lease_id: lease.lease_id.clone(),
                worker: "w1".into(),
                result_json: "{\"steps\": 20}".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!complete.accepted, "a completion without artifacts");
    });
    let job = &jobs(&served.url)[0];
    assert_eq!(job["state"]["state"], "queued", "{job}");
    assert_eq!(job["attempts"], 1);
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("did not verify in the store"),
        "{job}"
    );
    drop(served);
}

#[test]
fn a_worker_of_another_protocol_is_refused_naming_both_versions() {
    let served = serve(&["--once"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut w = client(&served.url);
        let refused = w
            .register(RegisterRequest {
                worker: "future".into(),
                device: "cpu".into(),
                version: "9.0.0".into(),
                protocol: PROTOCOL_VERSION + 1,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        let message = refused.message();
        assert!(
            message.contains(&format!("speaks protocol {}", PROTOCOL_VERSION + 1))
                && message.contains(&format!("protocol {PROTOCOL_VERSION}"))
                && message.contains("9.0.0")
                && message.contains(env!("CARGO_PKG_VERSION"))
                && !message.contains('\n'),
            "{message}"
        );
        // The worker side reads the refusal as final: asking again cannot help.
        assert!(matches!(
            slsg_worker::grpc::status(refused),
            slsg_worker::LinkError::Refused(_)
        ));
    });
    drop(served);
}

#[test]
fn submitted_datasets_stay_below_the_allowed_roots_and_errors_list_no_folder() {
    let served = serve(&["--dataset-root", "{data}"]);
    let data = served.dir.path().join("data");
    let store = served.dir.path().join("store");
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("private-folder/train/good")).unwrap();
    std::fs::write(outside.path().join("secret.png"), b"not yours").unwrap();
    std::os::unix::fs::symlink(outside.path(), data.join("escape")).unwrap();
    // Inside an allowed dataset's category: one link to a file outside the roots, in a copy of
    // `weave` that is otherwise good.
    let smuggled = data.join("smuggled");
    let copied = std::process::Command::new("cp")
        .args(["-r", path(&data.join("weave")), path(&smuggled)])
        .status()
        .unwrap();
    assert!(copied.success());
    let image = smuggled
        .join("train/good")
        .join(&files_under(&smuggled.join("train/good"))[0]);
    std::fs::remove_file(&image).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.png"), &image).unwrap();
    let smuggled_image = image.strip_prefix(&data).unwrap().display().to_string();
    // Links that stay inside the roots are followed.
    std::os::unix::fs::symlink(data.join("weave"), data.join("alias")).unwrap();
    let config = |dataset: &str, category: &str| {
        format!(
            "[run]\nname = \"sub\"\nstore = \"{}\"\n[[dataset]]\npath = \"{dataset}\"\ncategories = [\"{category}\"]\n",
            path(&store)
        )
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut operator = client(&served.url);
        let outside_url = format!("file://{}", path(outside.path()));
        let escape = path(&data.join("escape")).to_string();
        for (dataset, category, needle) in [
            (outside_url.as_str(), "private-folder", "not a folder below"),
            (path(outside.path()), "private-folder", "not a folder below"),
            (escape.as_str(), "private-folder", "not a folder below"),
            ("/nonexistent", "x", "not a folder below"),
            (path(&data), "nope", "category `nope` does not exist"),
            (
                path(&data),
                "escape",
                "`escape` is a link that does not resolve below",
            ),
            (
                path(&data),
                "smuggled",
                "is a link that does not resolve below",
            ),
            (path(&data), "all", "is a link that does not resolve below"),
        ] {
            let config_toml = config(dataset, category);
            let submitted = operator
                .submit(SubmitRequest {
                    config_toml: config_toml.clone(),
                    origin: "sub.toml".into(),
                })
                .await;
            // The retraining check reads the same datasets under the same rules.
            let checked = operator
                .retrain(RetrainRequest {
                    config_toml,
                    origin: "sub.toml".into(),
                })
                .await;
            for refused in [submitted.unwrap_err(), checked.unwrap_err()] {
                assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{dataset}");
                let message = refused.message();
                assert!(message.contains(needle), "{dataset} {category}: {message}");
                if category == "smuggled" {
                    assert!(message.contains(&smuggled_image), "{message}");
                }
                // Nothing of what is on the coordinator's disk is told.
                for secret in [
                    "private-folder",
                    "secret.png",
                    "weave",
                    "escape,",
                    "available",
                ] {
                    assert!(!message.contains(secret), "{dataset}: {message}");
                }
            }
        }
        let accepted = operator
            .submit(SubmitRequest {
                config_toml: config(path(&data), "alias"),
                origin: "sub.toml".into(),
            })
            .await
            .expect("a category linked from inside the roots is read")
            .into_inner();
        assert_eq!(accepted.run, "sub");
    });
    drop(served);
}

#[test]
fn submissions_past_the_open_runs_limit_are_refused_in_one_line() {
    // The config's own run is open from the start: one submission reaches the limit of two.
    let served = serve(&["--max-open-runs", "2"]);
    let data = served.dir.path().join("data");
    let store = served.dir.path().join("store");
    let submit = |run: &str| {
        let config = served.dir.path().join(format!("{run}.toml"));
        std::fs::write(
            &config,
            format!(
                "[run]\nname = \"{run}\"\nstore = \"{}\"\n[[dataset]]\npath = \"{}\"\ncategories = [\"weave\"]\n",
                path(&store),
                path(&data)
            ),
        )
        .unwrap();
        slsg(
            &["submit", path(&config), "--coordinator", &served.url],
            &[("SLSG_TOKEN", TOKEN)],
        )
    };
    ok(submit("second"));
    let third = submit("third");
    let refusal = String::from_utf8_lossy(&third.stderr).into_owned();
    fails_with(third, &["limit of 2 open run(s)", "--max-open-runs"]);
    assert_eq!(refusal.trim().lines().count(), 1, "{refusal}");
    // An open run submitted again is answered as before, limit or not.
    assert!(ok(submit("second")).contains("open already"));
    drop(served);
}

#[test]
fn oversized_fields_are_cut_or_refused() {
    let served = serve(&["--once"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut w = client(&served.url);
        let long_name = "w".repeat(10_000);
        let refused = w
            .register(RegisterRequest {
                worker: long_name.clone(),
                device: "cpu".into(),
                version: "test".into(),
                protocol: PROTOCOL_VERSION,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            w.lease_job(LeaseRequest {
                worker: long_name,
                wait_ms: 100,
            })
            .await
            .is_err()
        );
        for round in 0..2 {
            let lease = w
                .lease_job(LeaseRequest {
                    worker: "w".into(),
                    wait_ms: 5_000,
                })
                .await
                .unwrap()
                .into_inner()
                .lease
                .expect("a job to lease");
            let beat = w
                .heartbeat(HeartbeatRequest {
                    lease_id: lease.lease_id.clone(),
                    worker: "w".into(),
                    progress_json: format!("{{\"stage\":\"{}\"}}", "x".repeat(1 << 20)),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(
                beat.accepted,
                "an oversized report is dropped, the lease renewed"
            );
            let fail = w
                .fail(FailRequest {
                    lease_id: lease.lease_id,
                    error: format!("round {round}: {}", "e".repeat(3 << 20)),
                    kind: FailureKind::Retryable as i32,
                    worker: "w".into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(fail.accepted);
        }
    });
    let output = ok(slsg(
        &["status", &served.url, "--run", "net", "--json"],
        &[("SLSG_TOKEN", TOKEN)],
    ));
    assert!(
        output.len() < 64 * 1024,
        "the status stays small: {} bytes",
        output.len()
    );
    let status: serde_json::Value = serde_json::from_str(&output).unwrap();
    let error = status["jobs"][0]["last_error"].as_str().unwrap();
    assert!(
        error.len() <= ERROR_LIMIT + 4 && error.starts_with("round 1"),
        "{}",
        error.len()
    );
    assert!(
        status["jobs"][0]["progress"].is_null(),
        "the oversized report was not kept"
    );
}

/// Whether the server closed `stream` (it reads end-of-file or an error) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut buffer = [0u8; 256];
    while start.elapsed() < within {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn silent_and_half_open_connections_are_closed_and_cannot_keep_anyone_out() {
    let served = serve(&["--handshake-seconds", "2", "--max-connections", "8"]);
    // Silent connections up to the cap, and one that stops half-way through the HTTP/2 preface.
    let mut silent: Vec<TcpStream> = (0..7)
        .map(|_| TcpStream::connect(&served.address).unwrap())
        .collect();
    let mut partial = TcpStream::connect(&served.address).unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    // The cap is reached, and an operator still gets through: the connection silent longest
    // is closed to make room.
    let status = ok(slsg(&["status", &served.url], &[("SLSG_TOKEN", TOKEN)]));
    assert!(status.contains("net"), "{status}");
    assert!(
        closed_within(&mut silent[0], Duration::from_secs(1)),
        "the connection silent longest made room"
    );
    for stream in silent.iter_mut().skip(1).chain([&mut partial]) {
        assert!(
            closed_within(stream, Duration::from_secs(6)),
            "a connection that never finished its handshake is closed"
        );
    }
    let mut coordinator = served.coordinator;
    assert!(coordinator.is_running());
}

/// Sends `GET path` on `stream` and reads the answer until its body `ok` (or the timeout).
fn get_ok(stream: &mut TcpStream, path: &str, close: bool) -> String {
    let connection = if close { "close" } else { "keep-alive" };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: {connection}\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\nok") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn probes_get_through_whatever_holds_the_health_port() {
    let http = format!("127.0.0.1:{}", free_port());
    let served = serve(&["--http-listen", &http]);
    wait_until("the health port serves", Duration::from_secs(30), || {
        TcpStream::connect(&http).is_ok()
    });
    // The health port's cap of idle keep-alive connections, each after a request, and as many
    // again that never send a byte.
    let mut held = Vec::new();
    for _ in 0..64 {
        let mut stream = TcpStream::connect(&http).unwrap();
        let answer = get_ok(&mut stream, "/healthz", false);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    held.extend((0..64).map(|_| TcpStream::connect(&http).unwrap()));
    // A probe with Kubernetes' default timeout of one second is answered, every time.
    for _ in 0..3 {
        let start = Instant::now();
        let mut probe = TcpStream::connect(&http).unwrap();
        let answer = get_ok(&mut probe, "/healthz", true);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
    drop(held);
    drop(served);
}
