//! The coordinator's live dashboard as an operator meets it: in headless Chromium, driven over
//! the DevTools protocol, the login form first, then a running job's step growing without a
//! reload; without the token every page and API answer is refused, while the probes stay open.

use std::time::Duration;

use slsg_tests::*;

const TOKEN: &str = "dashboard token; with = and spaces";

#[derive(serde::Deserialize, Debug)]
struct Cookie {
    name: String,
    #[serde(rename = "httpOnly")]
    http_only: bool,
    #[serde(rename = "sameSite")]
    same_site: Option<String>,
}

#[derive(serde::Deserialize, Debug)]
struct Seen {
    first_status: Option<u16>,
    login_form: bool,
    job: String,
    steps: [u64; 2],
    same_document: bool,
    cookies: Vec<Cookie>,
    console: Vec<String>,
}

#[test]
fn the_dashboard_shows_progress_live_and_only_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_data(dir.path());
    let store = format!("file://{}", path(&dir.path().join("store")));
    let config = write_config(
        dir.path(),
        &RunConfig {
            name: "watched",
            store: &store,
            data: &data,
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 3000,
        },
    );
    let (grpc, http) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
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

    // Without the token: the login form, and every API and report answer refused.
    let (code, body) = http_get(&http, "/").unwrap();
    assert_eq!(code, 401);
    assert!(
        body.contains("<form method=\"post\" action=\"/login\""),
        "{body}"
    );
    assert_eq!(http_get(&http, "/api/dashboard").unwrap().0, 401);
    assert_eq!(http_get(&http, "/runs/watched/report").unwrap().0, 401);
    let wrong = http_request(
        &http,
        "POST",
        "/login",
        &["Content-Type: application/x-www-form-urlencoded"],
        "token=guess",
    )
    .unwrap();
    assert_eq!(wrong.0, 401, "{}", wrong.1);
    assert_eq!(
        http_get(&http, "/healthz").unwrap().0,
        200,
        "probes need no token"
    );
    assert_eq!(http_get(&http, "/metrics").unwrap().0, 200);
    // Scripts may give the token as a bearer header.
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let (code, body) = http_request(&http, "GET", "/api/dashboard", &[&bearer], "").unwrap();
    assert_eq!(code, 200, "{body}");
    let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(snapshot["runs"][0]["run"], "watched", "{snapshot}");

    let worker = Process::start(
        &[
            "worker",
            "--coordinator",
            &format!("http://{grpc}"),
            "--name",
            "watcher",
        ],
        &token,
        dir.path().join("worker.log"),
    );
    let screenshot = screenshot_path("dashboard.png");
    let request = serde_json::json!({
        "url": format!("http://{http}/"),
        "token": TOKEN,
        "screenshot": screenshot,
        "chromium": chromium(),
    });
    let seen: Seen = python_reader("dashboard_in_chromium.py", &request.to_string());
    assert_eq!(seen.first_status, Some(401), "{seen:?}");
    assert!(seen.login_form, "{seen:?}");
    assert!(seen.steps[1] > seen.steps[0], "{seen:?}");
    assert!(
        seen.same_document,
        "the page updated without a reload: {seen:?}"
    );
    assert!(seen.console.is_empty(), "console: {:?}", seen.console);
    let cookie = seen
        .cookies
        .iter()
        .find(|c| c.name == "slsg_token")
        .unwrap_or_else(|| panic!("no token cookie: {seen:?}"));
    assert!(
        cookie.http_only && cookie.same_site.as_deref() == Some("Strict"),
        "{cookie:?}"
    );
    assert!(screenshot.is_file());
    assert!(!seen.job.is_empty());

    let (code, body) = http_request(&http, "GET", "/api/dashboard", &[&bearer], "").unwrap();
    assert_eq!(code, 200);
    let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
    // The process's one slot with its device; its connection check is not a worker.
    let workers = snapshot["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 1, "{snapshot}");
    assert_eq!(workers[0]["name"], "watcher-0", "{snapshot}");
    assert_eq!(workers[0]["device"], "cpu", "{snapshot}");
    worker.terminate();
    coordinator.terminate();
}
