//! Helpers for the cross-process end-to-end tests in `tests/tests/`: running the `slsg` binary
//! (embedded runs, a coordinator and remote workers over gRPC, the S3 server), killing
//! processes, and reading what a run left in its store. No test logic here.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The `slsg` binary of the same build as this test (`target/<profile>/slsg`); `cargo test
/// --workspace` builds it.
pub fn slsg_binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test's own path");
    let profile_dir = test
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("slsg");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the binary for slsg-coordinator's own tests)",
        binary.display()
    );
    binary
}

pub fn slsg(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(slsg_binary());
    command.args(args).env("SLSG_LOG", "warn");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("running slsg")
}

fn describe(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts success; returns stdout.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "slsg failed\n{}", describe(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a clean failure (no panic) whose output mentions every needle; returns both streams.
pub fn fails_with(o: Output, needles: &[&str]) -> String {
    let text = describe(&o);
    assert!(!o.status.success(), "expected a failure\n{text}");
    assert!(!text.contains("panicked"), "panicked\n{text}");
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` missing\n{text}");
    }
    text
}

/// A child process that is killed when dropped (a failing test leaves nothing running); its
/// output goes to a log file shown when an assertion about it fails.
pub struct Process {
    child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn start(args: &[&str], envs: &[(&str, &str)], log: PathBuf) -> Process {
        Self::spawn(Command::new(slsg_binary()), args, envs, log)
    }

    /// [`Process::start`] with an environment of only `PATH` and `envs`, as a container gets.
    pub fn start_isolated(args: &[&str], envs: &[(&str, &str)], log: PathBuf) -> Process {
        let mut command = Command::new(slsg_binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        Self::spawn(command, args, envs, log)
    }

    fn spawn(mut command: Command, args: &[&str], envs: &[(&str, &str)], log: PathBuf) -> Process {
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        command
            .args(args)
            .env("SLSG_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in envs {
            command.env(k, v);
        }
        Process {
            child: command.spawn().expect("starting slsg"),
            log,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -TERM`: what Kubernetes and systemd send before stopping a process.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Sends `signal` (`STOP`, `CONT`, …) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// `kill -9`: no signal handler runs, nothing is flushed.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "still running after {timeout:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// Polls `condition` until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The synthetic dataset at the tests' size: 64 px, 12 training images per category, two test
/// images per defect type.
pub fn synthetic_data(dir: &Path) -> PathBuf {
    synthetic_data_at(dir, "64")
}

/// The synthetic dataset with 12 training images per category and two test images per defect
/// type, at `size` pixels.
pub fn synthetic_data_at(dir: &Path, size: &str) -> PathBuf {
    let data = dir.join("data");
    ok(slsg(
        &[
            "synth",
            "--out",
            path(&data),
            "--size",
            size,
            "--train",
            "12",
            "--test-per-defect",
            "2",
        ],
        &[],
    ));
    data
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary paths")
}

/// What a test run varies; everything else is the tiny training config.
pub struct RunConfig<'a> {
    pub name: &'a str,
    pub store: &'a str,
    pub data: &'a Path,
    pub categories: &'a [&'a str],
    /// SegNet learning rates to sweep (one job each); one value, no sweep.
    pub learning_rates: &'a [f64],
    pub segnet_steps: u64,
}

/// A cluster config for a tiny model (32 px, an eighth of the paper's width, 20 pre-training
/// steps), checkpoints every 10 steps, and short leases so lost workers are noticed in seconds.
pub fn write_config(dir: &Path, run: &RunConfig) -> PathBuf {
    write_config_with(dir, run, "")
}

/// [`write_config`] with more TOML sections (e.g. `[retrain]`) appended.
pub fn write_config_with(dir: &Path, run: &RunConfig, extra: &str) -> PathBuf {
    let categories: Vec<String> = run.categories.iter().map(|c| format!("{c:?}")).collect();
    let rates: Vec<String> = run
        .learning_rates
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    let sweep = if run.learning_rates.len() > 1 {
        format!("[sweep.values]\n\"segnet.lr\" = [{}]\n", rates.join(", "))
    } else {
        String::new()
    };
    let text = format!(
        r#"[run]
name = "{name}"
store = "{store}"

[[dataset]]
path = "{data}"
categories = [{categories}]

[training.model]
image_size = 32
width = 0.125

[training.pretrain]
max_steps = 20
checkpoint_every = 10
log_every = 5

[training.segnet]
steps = {steps}
freeze_encoder = false
validate_every = 20
checkpoint_every = 10
log_every = 5

{sweep}
[resources]
workers = ["cpu", "cpu"]
max_attempts = 3
lease_seconds = 5
heartbeat_seconds = 1

{extra}
"#,
        name = run.name,
        store = run.store,
        data = path(run.data),
        categories = categories.join(", "),
        steps = run.segnet_steps,
    );
    let stem: String = run
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let file = dir.join(format!("{stem}.toml"));
    std::fs::write(&file, text).expect("writing the config");
    file
}

/// A store in the S3 server `.ci/run` starts (its URL in `SLSG_TEST_S3`), under a prefix of
/// this test's own.
pub fn s3_store(test: &str) -> String {
    let base = std::env::var("SLSG_TEST_S3")
        .expect("SLSG_TEST_S3 is not set: run the tests with .ci/run, which starts the S3 server (scripts/s3-server.sh) and sets it");
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis();
    format!(
        "{}/{test}-{}-{unique}",
        base.trim_end_matches('/'),
        std::process::id()
    )
}

/// Every file under `dir`, relative and sorted (none if `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    slsg::walk::files(dir, |_| true)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .iter()
        .map(|p| {
            p.strip_prefix(dir)
                .expect("under the root")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

pub fn read_json(file: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The jobs of a run's `summary.json`: (id, kind, category, state, attempts).
pub fn summary_jobs(summary: &serde_json::Value) -> Vec<(String, String, String, String, u64)> {
    summary["status"]["jobs"]
        .as_array()
        .expect("summary jobs")
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap_or_default().to_string(),
                j["kind"].as_str().unwrap_or_default().to_string(),
                j["category"].as_str().unwrap_or_default().to_string(),
                j["state"]["state"].as_str().unwrap_or_default().to_string(),
                j["attempts"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Every artifact the store layout names for a finished run, as relative keys, given
/// the run's jobs (id, kind, category); the test images' maps are checked by the caller.
pub fn expected_artifacts(run: &str, jobs: &[(String, String, String)]) -> Vec<String> {
    let mut keys = vec![
        format!("runs/{run}/plan.json"),
        format!("runs/{run}/state.json"),
        format!("runs/{run}/summary.json"),
        format!("runs/{run}/report.html"),
    ];
    for (id, kind, _) in jobs {
        let job = format!("runs/{run}/jobs/{id}");
        keys.extend([
            format!("{job}/spec.json"),
            format!("{job}/curve.jsonl"),
            format!("{job}/result.json"),
        ]);
        if kind == "pretrain" {
            keys.push(format!("{job}/encoder.ckpt"));
        } else {
            keys.extend([
                format!("{job}/eval.json"),
                format!("{job}/figures.json"),
                format!("{job}/simulated.jpg"),
                format!("{job}/model/model.json"),
                format!("{job}/model/weights.ckpt"),
            ]);
        }
    }
    let categories: std::collections::BTreeSet<&String> = jobs.iter().map(|(_, _, c)| c).collect();
    for category in categories {
        keys.push(format!("models/{category}/current"));
        keys.push(format!("models/{category}/history.jsonl"));
    }
    keys
}

/// A check tool that `scripts/tools.sh` installs (`.ci/run` runs it first).
pub fn check_tool(name: &str) -> PathBuf {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/check/bin")
        .join(name);
    assert!(
        tool.exists(),
        "{} is missing: run scripts/tools.sh (.ci/run does)",
        tool.display()
    );
    tool
}

/// `GET path` over HTTP/1.1 on loopback: the status code and the body.
pub fn http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_request(address, "GET", path, &[], "")
}

/// A request over HTTP/1.1 on loopback with extra header lines (`Name: value`) and a body: the
/// status code and the body.
pub fn http_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    write!(stream, "{head}Content-Length: {}\r\n\r\n{body}", body.len())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {response:?}")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((code, body.to_string()))
}

/// One sample of a metrics scrape: name, labels, value.
pub type Sample = (String, std::collections::BTreeMap<String, String>, f64);

/// Runs one of the Python readers in `tests/tools/` on `input` with the check tools' Python
/// and decodes the JSON it prints; a reader that fails fails the test with its message.
pub fn python_reader<T: serde::de::DeserializeOwned>(script: &str, input: &str) -> T {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join(script);
    let mut child = Command::new(check_tool("python"))
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running a Python reader");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writing to the reader");
    let output = child.wait_with_output().expect("the reader's output");
    assert!(
        output.status.success(),
        "{} refused its input: {}\n{input}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the reader's JSON")
}

/// Parses Prometheus text with the official Python client's parser.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    python_reader("metrics_to_json.py", text)
}

/// A test CA and a server certificate it signed for `127.0.0.1` and `localhost`, made by the
/// script the README gives users for theirs (`scripts/tls-certificates.sh`).
pub struct TestCertificates {
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// Runs `scripts/tls-certificates.sh` with `args`.
pub fn tls_certificates_script(args: &[&str]) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tls-certificates.sh"))
        .args(args)
        .output()
        .expect("running scripts/tls-certificates.sh")
}

/// Writes a CA and, signed by it, a server certificate and key into `dir/<name>/`.
pub fn test_certificates(dir: &Path, name: &str) -> TestCertificates {
    let out = dir.join(name);
    let made =
        tls_certificates_script(&["--out", path(&out), "--days", "2", "127.0.0.1", "localhost"]);
    assert!(
        made.status.success(),
        "scripts/tls-certificates.sh: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    TestCertificates {
        ca: out.join("ca.pem"),
        certificate: out.join("server.pem"),
        key: out.join("server.key"),
    }
}

/// Debian's Chromium (`.ci/run` installs it: `scripts/system-packages.sh`).
pub fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("chromium is missing: run scripts/system-packages.sh (.ci/run does)")
}

/// A page as Debian's Chromium showed it, headless: the DOM after loading, the console messages
/// it logged, and where its screenshot went.
pub struct BrowserPage {
    pub dom: String,
    pub console: Vec<String>,
}

/// Loads `url` in headless Chromium, returns its DOM and console messages, and writes a `width`×`height` screenshot to
/// `screenshot`.
pub fn browse(url: &str, screenshot: &Path, width: u32, height: u32) -> BrowserPage {
    let chromium = chromium();
    let run = |extra: &[String]| -> Output {
        let output = Command::new("timeout")
            .args([
                "120",
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
            ])
            .args(["--enable-logging=stderr", "--v=0"])
            .args(extra)
            .arg(url)
            .output()
            .expect("running chromium");
        assert!(
            output.status.success(),
            "chromium failed on {url}\n{}",
            describe(&output)
        );
        output
    };
    let loaded = run(&["--dump-dom".to_string()]);
    run(&[
        format!("--screenshot={}", screenshot.display()),
        format!("--window-size={width},{height}"),
    ]);
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    BrowserPage {
        dom: String::from_utf8_lossy(&loaded.stdout).into_owned(),
        console: String::from_utf8_lossy(&loaded.stderr)
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(String::from)
            .collect(),
    }
}

/// Where tests keep their screenshots: `target/screenshots/<name>` (the folder made if missing).
pub fn screenshot_path(name: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&folder).expect("creating target/screenshots");
    folder.join(name)
}
