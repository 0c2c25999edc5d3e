//! Wasm pods end to end: a module built from `examples/` with the sdk is
//! pushed to a real registry with `skiff image push`, a RuntimeClass routes
//! a Deployment to the node's wasmtime handler, pods run in-process, and
//! kubectl shows their logs and failures.

use serde_json::Value;

use crate::harness::{eventually, example_module, Skiff};
use crate::registry::Registry;

fn push(s: &Skiff, reg: &Registry, name: &str) -> String {
    let reference = format!("{}/skiff/{name}:v1", reg.host);
    s.skiff(&[
        "image",
        "push",
        &example_module(name),
        &reference,
        "--insecure",
    ])
    .ok();
    reference
}

fn pod_json(s: &Skiff, ns: &str, name: &str) -> Value {
    let out = s
        .kubectl("1.33", &["-n", ns, "get", "pod", name, "-o", "json"])
        .ok()
        .stdout;
    serde_json::from_str(&out).expect("pod JSON")
}

fn pods(s: &Skiff, ns: &str, selector: &str) -> Vec<Value> {
    let out = s
        .kubectl(
            "1.33",
            &["-n", ns, "get", "pods", "-l", selector, "-o", "json"],
        )
        .ok()
        .stdout;
    serde_json::from_str::<Value>(&out).expect("pod list")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

const RUNTIME_CLASS: &str = r#"apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: wasmtime
handler: wasmtime
scheduling:
  nodeSelector:
    wasm: "yes"
"#;

fn pod(name: &str, image: &str, restart: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  runtimeClassName: wasmtime
  restartPolicy: {restart}
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: {image}
    env:
    - name: GREETING
      value: hello from an e2e test
{extra}"#
    )
}

#[test]
fn wasm_deployment_runs_logs_and_fails_visibly() {
    let reg = Registry::start();
    let s = Skiff::start_with(&["--insecure-registry", &reg.host, "--node-label", "wasm=yes"]);
    let hello = push(&s, &reg, "hello");
    let sensor = push(&s, &reg, "sensor");
    let trap = push(&s, &reg, "trap");
    let spin = push(&s, &reg, "loop");
    let grow = push(&s, &reg, "grow");
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(RUNTIME_CLASS))
        .ok();

    // A 3-replica Deployment of a long-running module: all Running.
    let deploy = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: sensors
spec:
  replicas: 3
  selector:
    matchLabels: {{app: sensors}}
  template:
    metadata:
      labels: {{app: sensors}}
    spec:
      runtimeClassName: wasmtime
      containers:
      - name: sensor
        image: {sensor}
        env:
        - name: SENSOR_ID
          value: e2e
        - name: INTERVAL_MS
          value: "200"
"#
    );
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&deploy))
        .ok();
    let running = eventually(60, "3 sensor pods Running", || {
        let p = pods(&s, "default", "app=sensors");
        (p.len() == 3 && p.iter().all(|p| p["status"]["phase"] == "Running")).then_some(p)
    });
    let first = running[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(running
        .iter()
        .all(|p| p["spec"]["nodeName"].as_str().is_some()));
    s.kubectl(
        "1.33",
        &["rollout", "status", "deployment/sensors", "--timeout=60s"],
    )
    .ok();
    let logs = eventually(20, "sensor readings in kubectl logs", || {
        let out = s.kubectl("1.33", &["logs", &first, "--tail=2"]).ok().stdout;
        out.contains("e2e").then_some(out)
    });
    assert!(logs.lines().count() <= 2, "--tail=2 honoured: {logs}");

    // A one-shot module completes, and its output is in the logs.
    s.kubectl_stdin(
        "1.33",
        &["apply", "-f", "-"],
        Some(&pod("hello", &hello, "Never", "")),
    )
    .ok();
    eventually(60, "hello to succeed", || {
        (pod_json(&s, "default", "hello")["status"]["phase"] == "Succeeded").then_some(())
    });
    let out = s.kubectl("1.33", &["logs", "hello"]).ok().stdout;
    assert!(out.contains("hello from an e2e test"), "{out}");
    let p = pod_json(&s, "default", "hello");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );

    // A trapping module shows Error with its exit code and restarts with back-off.
    s.kubectl_stdin(
        "1.33",
        &["apply", "-f", "-"],
        Some(&pod("trap", &trap, "Always", "")),
    )
    .ok();
    let p = eventually(90, "trap to restart and back off", || {
        let p = pod_json(&s, "default", "trap");
        let st = &p["status"]["containerStatuses"][0];
        (st["restartCount"].as_u64().unwrap_or(0) >= 1
            && st["lastState"]["terminated"]["reason"] == "Error")
            .then_some(p)
    });
    let st = &p["status"]["containerStatuses"][0];
    assert_ne!(st["lastState"]["terminated"]["exitCode"], 0, "{st}");
    let table = s.kubectl("1.33", &["get", "pod", "trap"]).ok().stdout;
    assert!(
        table.contains("CrashLoopBackOff") || table.contains("Error"),
        "{table}"
    );

    // A guest growing memory past its limit fails that pod only.
    let limits = "    resources:\n      limits:\n        memory: 16Mi\n";
    s.kubectl_stdin(
        "1.33",
        &["apply", "-f", "-"],
        Some(&pod("grow", &grow, "Never", limits)),
    )
    .ok();
    eventually(60, "grow to be OOMKilled", || {
        let p = pod_json(&s, "default", "grow");
        (p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled")
            .then_some(())
    });
    assert!(
        pods(&s, "default", "app=sensors")
            .iter()
            .all(|p| p["status"]["phase"] == "Running"),
        "the others keep running"
    );

    // A guest looping forever is stopped at deletion within its grace period.
    s.kubectl_stdin(
        "1.33",
        &["apply", "-f", "-"],
        Some(&pod("spin", &spin, "Always", "")),
    )
    .ok();
    eventually(60, "spin Running", || {
        (pod_json(&s, "default", "spin")["status"]["phase"] == "Running").then_some(())
    });
    let t = std::time::Instant::now();
    s.kubectl("1.33", &["delete", "pod", "spin", "--timeout=30s"])
        .ok();
    assert!(
        t.elapsed().as_secs() <= 10,
        "deleted within the 3 s grace period (+ margins): {:?}",
        t.elapsed()
    );

    // Bad input: an image that is not there.
    let missing = pod(
        "missing",
        &format!("{}/skiff/nope:v1", reg.host),
        "Always",
        "",
    );
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&missing))
        .ok();
    eventually(60, "ErrImagePull / ImagePullBackOff", || {
        let p = pod_json(&s, "default", "missing");
        let reason = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (reason == "ErrImagePull" || reason == "ImagePullBackOff").then_some(())
    });
    let nodes = s.kubectl("1.33", &["get", "nodes"]).ok().stdout;
    assert!(nodes.contains(" Ready"), "the node stays healthy: {nodes}");
}
