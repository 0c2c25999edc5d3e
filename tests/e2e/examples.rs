//! The examples as a user runs them: each guest built by
//! `scripts/build-examples` is pushed with `skiff image push`, and the
//! example's own manifests are applied unchanged except for the image's
//! registry (theirs say `localhost:5000`, the test's registry has a port
//! of its own). `http-hello` runs in `gateway.rs`; `mixed` runs here with
//! the gateway.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{eventually, example_busybox_image, example_module, Skiff};
use crate::registry::Registry;

fn repo_file(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Apply an example's manifest with its images pointing at `registry`.
fn apply_example(s: &Skiff, ns: &str, registry: &str, path: &str) {
    let yaml = repo_file(path).replace("localhost:5000/", &format!("{registry}/"));
    s.kubectl_stdin("1.33", &["-n", ns, "apply", "-f", "-"], Some(&yaml))
        .ok();
}

fn get(s: &Skiff, ns: &str, what: &[&str]) -> Value {
    let mut args = vec!["-n", ns, "get"];
    args.extend(what);
    args.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl("1.33", &args).ok().stdout).expect("JSON")
}

fn logs(s: &Skiff, ns: &str, pod: &str) -> String {
    s.kubectl("1.33", &["-n", ns, "logs", pod]).stdout
}

#[test]
fn hello_sensor_and_stateful_examples_run_from_their_manifests() {
    let reg = Registry::start();
    let s = Skiff::start_with(&["--insecure-registry", &reg.host, "--node-label", "wasm=yes"]);
    for name in ["hello", "sensor", "stateful"] {
        s.skiff(&[
            "image",
            "push",
            &example_module(name),
            &format!("{}/skiff/{name}:v1", reg.host),
            "--insecure",
        ])
        .ok();
    }
    // StatefulSet volumes live under /var/lib/skiff/volumes/<namespace>:
    // a namespace of this run's own keeps runs apart.
    let ns = format!("examples-{}", std::process::id());
    s.kubectl("1.33", &["create", "namespace", &ns]).ok();
    apply_example(&s, &ns, &reg.host, "examples/hello/runtimeclass.yaml");

    // hello: a Job that greets and completes.
    apply_example(&s, &ns, &reg.host, "examples/hello/job.yaml");
    s.kubectl(
        "1.33",
        &[
            "-n",
            &ns,
            "wait",
            "--for=condition=complete",
            "job/hello",
            "--timeout=60s",
        ],
    )
    .ok();
    let out = s
        .kubectl("1.33", &["-n", &ns, "logs", "job/hello"])
        .ok()
        .stdout;
    assert!(out.contains("hello from a skiff Job"), "{out}");

    // sensor: a DaemonSet, one pod on the node, reading its ConfigMap.
    apply_example(&s, &ns, &reg.host, "examples/sensor/daemonset.yaml");
    let pod = eventually(60, "the sensor pod Running", || {
        let pods = get(&s, &ns, &["pods", "-l", "app=sensor"]);
        let p = pods["items"].as_array()?.first()?.clone();
        (p["status"]["phase"] == "Running").then_some(p)
    });
    let name = pod["metadata"]["name"].as_str().expect("name").to_string();
    let node = pod["spec"]["nodeName"].as_str().expect("node").to_string();
    let out = eventually(20, "the sensor's first lines", || {
        let l = logs(&s, &ns, &name);
        l.contains("sensor started").then_some(l)
    });
    assert!(
        out.contains(&format!("sensor={node}")) && out.contains("interval_ms=5000"),
        "named after its node, interval from the ConfigMap: {out}"
    );

    // stateful: three members in order, and state that outlives a pod.
    apply_example(&s, &ns, &reg.host, "examples/stateful/statefulset.yaml");
    s.kubectl(
        "1.33",
        &[
            "-n",
            &ns,
            "rollout",
            "status",
            "statefulset/ledger",
            "--timeout=100s",
        ],
    )
    .ok();
    for i in 0..3 {
        let l = eventually(20, "a ledger member's first line", || {
            let l = logs(&s, &ns, &format!("ledger-{i}"));
            l.contains("ledger started").then_some(l)
        });
        assert!(l.contains(&format!("member=ledger-{i} boot=1")), "{l}");
    }
    let uid = get(&s, &ns, &["pod", "ledger-0"])["metadata"]["uid"].clone();
    s.kubectl("1.33", &["-n", &ns, "delete", "pod", "ledger-0"])
        .ok();
    let again = eventually(60, "ledger-0 back, on its old data", || {
        let p = get(&s, &ns, &["pod", "ledger-0"]);
        if p["metadata"]["uid"] == uid || p["status"]["phase"] != "Running" {
            return None;
        }
        let l = logs(&s, &ns, "ledger-0");
        l.contains("ledger started").then_some(l)
    });
    assert!(again.contains("member=ledger-0 boot=2"), "{again}");
    let journal =
        std::fs::read_to_string(format!("/var/lib/skiff/volumes/{ns}/data-ledger-0/journal"))
            .expect("the member's journal on the node");
    assert!(journal.contains("boot=1 entry=1"), "{journal}");

    s.kubectl("1.33", &["delete", "namespace", &ns, "--wait=false"])
        .ok();
    let _ = std::fs::remove_dir_all(format!("/var/lib/skiff/volumes/{ns}"));
}

/// `mixed`: a Wasm front end and a Linux-container back end, each routed
/// to its runtime by its RuntimeClass, behind one Ingress: `/` is answered
/// by the Wasm function, `/api/status` by busybox's httpd in a container.
#[test]
fn mixed_example_serves_a_wasm_front_end_and_a_linux_back_end() {
    let reg = Registry::start();
    let s = Skiff::start_with(&["--insecure-registry", &reg.host, "--node-label", "wasm=yes"]);
    s.skiff(&[
        "image",
        "push",
        &example_module("mixed"),
        &format!("{}/skiff/mixed:v1", reg.host),
        "--insecure",
    ])
    .ok();
    s.skiff(&[
        "image",
        "push",
        &example_busybox_image(),
        &format!("{}/library/busybox:1.36", reg.host),
        "--insecure",
    ])
    .ok();
    let ns = "mixed";
    s.kubectl("1.33", &["create", "namespace", ns]).ok();
    for f in ["runtimeclasses", "frontend", "backend", "ingress"] {
        apply_example(&s, ns, &reg.host, &format!("examples/mixed/{f}.yaml"));
    }
    for d in ["deployment/frontend", "deployment/backend"] {
        s.kubectl(
            "1.33",
            &["-n", ns, "rollout", "status", d, "--timeout=120s"],
        )
        .ok();
    }
    // Each tier ran under its own runtime: the class is on the pod, and
    // only the Linux one is a process with a shell to exec into.
    let pods = get(&s, ns, &["pods"]);
    let items = pods["items"].as_array().expect("pods");
    assert_eq!(items.len(), 3, "{pods}");
    for p in items {
        let app = p["metadata"]["labels"]["app"].as_str().unwrap_or("");
        let class = p["spec"]["runtimeClassName"].as_str().unwrap_or("");
        assert_eq!(
            class,
            if app == "frontend" {
                "wasmtime"
            } else {
                "linux"
            },
            "{p}"
        );
    }
    let uname = s
        .kubectl(
            "1.33",
            &["-n", ns, "exec", "deployment/backend", "--", "uname", "-s"],
        )
        .ok();
    assert_eq!(uname.stdout.trim(), "Linux");

    let gw = s.gateway();
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
            .arg(format!("http://{gw}{path}"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse::<u16>().unwrap_or(0), body.to_string())
    };
    let (code, page) = eventually(60, "the front end's page through the gateway", || {
        let r = curl("/");
        (r.0 == 200).then_some(r)
    });
    assert_eq!(code, 200);
    assert!(
        page.contains("a WebAssembly function run by wasmtime"),
        "{page}"
    );
    assert!(page.contains("fetch(\"/api/status\")"), "{page}");
    let (code, status) = eventually(60, "the back end through the gateway", || {
        let r = curl("/api/status");
        (r.0 == 200).then_some(r)
    });
    assert_eq!(code, 200);
    let backend = items
        .iter()
        .find(|p| p["metadata"]["labels"]["app"] == "backend")
        .and_then(|p| p["metadata"]["name"].as_str())
        .expect("the back end pod");
    assert!(
        status.starts_with(&format!("back end {backend}: a Linux container")),
        "{status}"
    );
    let (code, _) = curl("/nothing-here");
    assert_eq!(code, 404, "the front end answers what it does not serve");
    // Linux containers outlive a killed server by design: stop them here.
    s.kubectl(
        "1.33",
        &[
            "-n",
            ns,
            "delete",
            "deployment",
            "backend",
            "frontend",
            "--wait=true",
        ],
    )
    .ok();
    eventually(60, "the mixed pods gone", || {
        get(&s, ns, &["pods"])["items"]
            .as_array()
            .is_some_and(|p| p.is_empty())
            .then_some(())
    });
    s.assert_no_panics();
}
