//! TLS between workers, operators and the coordinator: a worker trusting the right CA trains
//! over it, one trusting another CA is refused at once, the token is still required, and the
//! token never goes in clear text to another machine. The certificates come from the script the
//! README gives users for theirs, whose wrong input is refused in one line.

use std::time::Duration;

use slsg_tests::*;

const TOKEN: &str = "tls-token";

#[test]
fn workers_train_over_tls_and_the_wrong_ca_or_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = test_certificates(dir.path(), "good");
    let other = test_certificates(dir.path(), "other");
    let data = synthetic_data(dir.path());
    let store = format!("file://{}", path(&dir.path().join("store")));
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "tls",
            store: &store,
            data: &data,
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );
    let address = format!("127.0.0.1:{}", free_port());
    let url = format!("https://{address}");
    let token = [("SLSG_TOKEN", TOKEN)];
    let mut coordinator = Process::start(
        &[
            "coordinator",
            path(&config),
            "--listen",
            &address,
            "--tls-cert",
            path(&good.certificate),
            "--tls-key",
            path(&good.key),
            "--once",
        ],
        &token,
        dir.path().join("coordinator.log"),
    );
    let status = |ca: &std::path::Path, envs: &[(&str, &str)]| {
        slsg(&["status", &url, "--tls-ca", path(ca), "--json"], envs)
    };
    wait_until(
        "the coordinator answers over TLS",
        Duration::from_secs(60),
        || status(&good.ca, &token).status.success(),
    );

    // Another CA's trust: refused at once, naming TLS, not retried for the whole patience.
    let started = std::time::Instant::now();
    fails_with(
        slsg(
            &[
                "worker",
                "--coordinator",
                &url,
                "--tls-ca",
                path(&other.ca),
                "--connect-seconds",
                "120",
            ],
            &token,
        ),
        &["TLS", "refused"],
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    fails_with(status(&other.ca, &token), &["TLS"]);
    // The right CA without the token, or with a wrong one: refused.
    fails_with(status(&good.ca, &[]), &["token"]);
    fails_with(status(&good.ca, &[("SLSG_TOKEN", "wrong")]), &["token"]);
    // https without a CA, a CA for plain http, a CA file that is no certificate.
    fails_with(slsg(&["status", &url], &token), &["--tls-ca"]);
    fails_with(
        slsg(
            &[
                "status",
                &format!("http://{address}"),
                "--tls-ca",
                path(&good.ca),
            ],
            &token,
        ),
        &["https"],
    );
    fails_with(status(&good.key, &token), &["--tls-ca", "good/server.key"]);

    // The right CA and token: the run trains and the coordinator ends with it.
    let worker = Process::start(
        &["worker", "--coordinator", &url, "--tls-ca", path(&good.ca)],
        &token,
        dir.path().join("worker.log"),
    );
    let ended = coordinator.wait(Duration::from_secs(600));
    assert!(ended.success(), "coordinator:\n{}", coordinator.output());
    assert!(worker.output().contains("leased"), "{}", worker.output());
    assert!(
        !worker.output().contains("Actor{"),
        "no actor ids at the default level: {}",
        worker.output()
    );
}

#[test]
fn a_token_is_never_sent_or_taken_in_clear_text_off_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "plain",
            store: &format!("file://{}", path(&dir.path().join("store"))),
            data: dir.path(),
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );
    let token = [("SLSG_TOKEN", TOKEN)];
    fails_with(
        slsg(
            &["coordinator", path(&config), "--listen", "0.0.0.0:0"],
            &token,
        ),
        &["clear text", "--tls-cert"],
    );
    fails_with(
        slsg(&["status", "http://192.0.2.1:50051"], &token),
        &["clear text", "--tls-ca"],
    );
    fails_with(
        slsg(
            &["worker", "--coordinator", "http://192.0.2.1:50051"],
            &token,
        ),
        &["clear text"],
    );
    let certificates = test_certificates(dir.path(), "c");
    fails_with(
        slsg(
            &[
                "coordinator",
                path(&config),
                "--tls-cert",
                path(&certificates.key),
                "--tls-key",
                path(&certificates.key),
            ],
            &token,
        ),
        &["--tls-cert", "c/server.key"],
    );
    fails_with(
        slsg(
            &[
                "coordinator",
                path(&config),
                "--tls-cert",
                path(&certificates.certificate),
            ],
            &token,
        ),
        &["--tls-key"],
    );
}

#[test]
fn the_certificate_script_refuses_what_it_cannot_make() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let refused = |args: &[&str], needle: &str| {
        let made = tls_certificates_script(args);
        let stderr = String::from_utf8_lossy(&made.stderr);
        assert_eq!(made.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.lines().count() == 1 && stderr.contains(needle),
            "{args:?} should be refused naming {needle}: {stderr}"
        );
    };
    let dir_arg = path(&out);
    refused(&["--out", dir_arg], "at least one host");
    refused(&["--out", dir_arg, "two words"], "'two words'");
    refused(&["--out", dir_arg, "x_y.example"], "'x_y.example'");
    for days in ["0", "3651", "1e3", "99999999999999999999"] {
        refused(&["--out", dir_arg, "--days", days, "localhost"], "--days");
    }
    assert!(!out.exists(), "nothing written for refused input");

    ok(tls_certificates_script(&[
        "--out",
        dir_arg,
        "coordinator.example",
        "10.0.0.5",
    ]));
    let written = std::fs::read(out.join("ca.pem")).unwrap();
    refused(&["--out", dir_arg, "localhost"], "ca.pem already exists");
    assert_eq!(
        std::fs::read(out.join("ca.pem")).unwrap(),
        written,
        "the authority is never overwritten"
    );
}
