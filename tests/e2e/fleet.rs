//! A mixed fleet: `skiff up --no-node` and several `skiff node` processes,
//! each in its own network namespace on a bridge, as separate machines
//! would be. Two report amd64, one arm64; one is labelled `wasm=yes`.
//! The scheduler, the controllers and the node lifecycle are seen through
//! kubectl only.
//!
//! Needs root and iproute2 (`ip netns`): the test fails, saying so, where
//! they are missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::harness::{eventually, example_module, require, Skiff};
use crate::oci;
use crate::registry::Registry;

/// A bridge on the host and the namespaces of the nodes.
struct Net {
    bridge: String,
    prefix: String,
    namespaces: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Net {
    fn new() -> Net {
        Net::nth(0)
    }

    /// The `k`th fleet network of this test process (tests run in
    /// parallel, each with its own bridge and range).
    fn nth(k: u8) -> Net {
        require("/usr/sbin/ip", "apt-get install iproute2");
        let uid = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(1);
        assert_eq!(
            uid, 0,
            "the fleet test makes network namespaces: run it as root"
        );
        let id = std::process::id() % 200 + 20;
        let net = Net {
            bridge: format!("skf{k}br{id}"),
            prefix: format!("10.{}.{id}", 231 + u32::from(k)),
            namespaces: Vec::new(),
        };
        let _ = Command::new("ip")
            .args(["link", "del", &net.bridge])
            .output();
        ip(&["link", "add", &net.bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", net.prefix),
            "dev",
            &net.bridge,
        ]);
        ip(&["link", "set", &net.bridge, "up"]);
        net
    }

    /// The host's address on the bridge: where the API server listens.
    fn host(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// The host end of namespace `.N`'s veth: down is a cut link.
    fn link(&self, n: u8) -> String {
        format!("{}h{n}", self.bridge)
    }

    /// A namespace wired to the bridge at `.N`; returns its name and address.
    fn namespace(&mut self, n: u8) -> (String, String) {
        let ns = format!("{}-n{n}", self.bridge);
        let host_end = self.link(n);
        let addr = format!("{}.{}", self.prefix, 10 + n);
        if self.namespaces.contains(&ns) {
            // A node restarted in the namespace it had.
            return (ns, addr);
        }
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        ip(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["link", "set", &host_end, "master", &self.bridge, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        (ns, addr)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// One `skiff node` process in its namespace.
struct NodeProc {
    child: Child,
    log: PathBuf,
}

impl NodeProc {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!("---- {} (last 20 lines) ----", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

const IMAGE: &str = "fleet.local/skiff/sensor:v1";
const HELLO: &str = "fleet.local/skiff/hello:v1";

fn start_node(
    s: &Skiff,
    net: &mut Net,
    n: u8,
    name: &str,
    arch: &str,
    labels: &[&str],
    dir: &Path,
) -> NodeProc {
    let (ns, addr) = net.namespace(n);
    let data = dir.join(name);
    // The node is offline from any registry: its images are imported.
    for (file, image) in [("sensor", IMAGE), ("hello", HELLO)] {
        s.skiff(&[
            "image",
            "import",
            &example_module(file),
            "--name",
            image,
            "--data-dir",
            &data.display().to_string(),
        ])
        .ok();
    }
    let kc = s.kubeconfig_parts();
    // Nodes join as a person would: a token from `skiff token create` and
    // the CA hash it prints; each gets a credential of its own, which its
    // restarts then reuse (with no token, and no API server needed).
    let (token, hash) = if data.join("pki/node.crt").exists() {
        (String::new(), String::new())
    } else {
        crate::join::token_create(&s.dir, "1h")
    };
    let log = dir.join(format!("{name}.log"));
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &ns,
        env!("CARGO_BIN_EXE_skiff"),
        "node",
        "--server",
        &kc.server,
        "--name",
        name,
        "--arch",
        arch,
        "--node-ip",
        &addr,
        // Renew every second: well inside the 6 s grace period below.
        "--node-lease-duration-seconds",
        "4",
        "--data-dir",
    ])
    .arg(&data)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("node log"),
    );
    if !token.is_empty() {
        cmd.args(["--token", &token, "--ca-cert-hash", &hash]);
    }
    for l in labels {
        cmd.args(["--node-label", l]);
    }
    let child = cmd.spawn().expect("start skiff node");
    NodeProc { child, log }
}

fn json(s: &Skiff, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl("1.33", &a).ok().stdout).expect("JSON")
}

/// The pods `selector` picks, as the API has them.
fn pods(s: &Skiff, selector: &str) -> Vec<Value> {
    json(s, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn pods_by_node(s: &Skiff, selector: &str) -> Vec<(String, String, String)> {
    pods(s, selector)
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                p["status"]["phase"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Wait until `n` nodes are Ready.
fn ready_nodes(s: &Skiff, n: usize) {
    eventually(60, &format!("{n} Ready nodes"), || {
        let out = s.kubectl("1.33", &["get", "nodes"]).ok().stdout;
        (out.matches(" Ready ").count() == n).then_some(())
    });
}

/// `kubectl rollout status`, showing the cluster's state if it times out.
fn rollout(s: &Skiff, what: &str) {
    let out = s.kubectl("1.33", &["rollout", "status", what, "--timeout=110s"]);
    if out.code != 0 {
        let pods = s.kubectl("1.33", &["get", "pods", "-o", "wide"]).stdout;
        let nodes = s.kubectl("1.33", &["get", "nodes", "-o", "wide"]).stdout;
        let events = s
            .kubectl("1.33", &["get", "events", "--sort-by=.lastTimestamp"])
            .stdout;
        let tail: Vec<&str> = events.lines().rev().take(30).collect();
        panic!(
            "rollout of {what} did not finish:\n{}\n{}\n{pods}\n{nodes}\n{}",
            out.stdout,
            out.stderr,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

fn apply(s: &Skiff, yaml: &str) {
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(yaml))
        .ok();
}

const SENSORS: &str = r#"apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: wasmtime}
handler: wasmtime
scheduling:
  nodeSelector: {wasm: "yes"}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sensors
  annotations: {kubernetes.io/change-cause: first}
spec:
  replicas: 3
  selector: {matchLabels: {app: sensors}}
  template:
    metadata: {labels: {app: sensors}}
    spec:
      runtimeClassName: wasmtime
      terminationGracePeriodSeconds: 2
      containers:
      - name: sensor
        image: fleet.local/skiff/sensor:v1
        imagePullPolicy: IfNotPresent
        env: [{name: INTERVAL_MS, value: "500"}]
"#;

/// Anywhere Wasm runs (every node here), leaving a NotReady node after 3 s.
const ROAMING: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: roaming}
spec:
  replicas: 2
  selector: {matchLabels: {app: roaming}}
  template:
    metadata: {labels: {app: roaming}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 3}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 3}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]
      containers:
      - name: sensor
        image: fleet.local/skiff/sensor:v1
        imagePullPolicy: IfNotPresent
"#;

const DAEMON: &str = r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agentd}
spec:
  selector: {matchLabels: {app: agentd}}
  template:
    metadata: {labels: {app: agentd}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sensor
        image: fleet.local/skiff/sensor:v1
        imagePullPolicy: IfNotPresent
"#;

const STATEFUL: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sensor
        image: fleet.local/skiff/sensor:v1
        imagePullPolicy: IfNotPresent
"#;

const JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: greet}
spec:
  completions: 2
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: fleet.local/skiff/hello:v1
        imagePullPolicy: IfNotPresent
        env: [{name: GREETING, value: from a job}]
"#;

/// Linux images (amd64 only, and a two-platform index) placed by the
/// scheduler. No node runs Linux containers yet, so only placement counts.
fn linux_workloads(registry: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: amd-only}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: amd-only}}}}
  template:
    metadata: {{labels: {{app: amd-only}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - {{name: app, image: {registry}/fleet/amd-only:v1}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: multi}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: multi}}}}
  template:
    metadata: {{labels: {{app: multi}}}}
    spec:
      terminationGracePeriodSeconds: 0
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {{matchLabels: {{app: multi}}}}
      containers:
      - {{name: app, image: {registry}/fleet/multi:v1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: amd-on-arm}}
spec:
  nodeSelector: {{kubernetes.io/arch: arm64}}
  containers:
  - {{name: app, image: {registry}/fleet/amd-only:v1}}
"#
    )
}

/// One replica per node at most.
const SOLO: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: solo}
spec:
  replicas: 4
  selector: {matchLabels: {app: solo}}
  template:
    metadata: {labels: {app: solo}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: solo}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: sensor
        image: fleet.local/skiff/sensor:v1
        imagePullPolicy: IfNotPresent
"#;

/// The PodScheduled=False message of a pending pod, once there is one.
fn unschedulable(s: &Skiff, selector: &[&str]) -> String {
    eventually(30, "an Unschedulable pod", || {
        let mut args = vec!["get", "pods"];
        args.extend(selector);
        let pods = json(s, &args);
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        items.iter().find_map(|p| {
            let conds = p["status"]["conditions"].as_array()?;
            conds
                .iter()
                .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
                .and_then(|c| c["message"].as_str().map(str::to_string))
        })
    })
}

#[test]
fn a_mixed_fleet_schedules_rolls_heals_and_evicts() {
    let registry = Registry::start();
    let mut net = Net::new();
    let listen = format!("{}:0", net.host());
    let s = Skiff::start_with(&[
        "--listen",
        &listen,
        "--no-node",
        "--node-monitor-grace-period",
        "6s",
        "--insecure-registry",
        &registry.host,
    ]);
    let dir = s.dir.parent().expect("tmp").join("nodes");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let _a = start_node(&s, &mut net, 1, "edge-amd-1", "amd64", &["wasm=yes"], &dir);
    let mut b = start_node(&s, &mut net, 2, "edge-amd-2", "amd64", &[], &dir);
    let _c = start_node(&s, &mut net, 3, "edge-arm-1", "arm64", &[], &dir);
    ready_nodes(&s, 3);
    let wide = s
        .kubectl("1.33", &["get", "nodes", "-L", "kubernetes.io/arch"])
        .ok()
        .stdout;
    assert!(wide.contains("arm64") && wide.contains("amd64"), "{wide}");

    // RuntimeClass routing: every replica on the wasm=yes node.
    apply(&s, SENSORS);
    let pods = eventually(60, "3 sensors Running", || {
        let p = pods_by_node(&s, "app=sensors");
        (p.len() == 3 && p.iter().all(|(_, _, ph)| ph == "Running")).then_some(p)
    });
    assert!(
        pods.iter().all(|(_, node, _)| node == "edge-amd-1"),
        "{pods:?}"
    );
    rollout(&s, "deployment/sensors");
    // kubectl logs reaches the node in its namespace through the API server.
    let logs = eventually(20, "logs from a node in a namespace", || {
        let out = s
            .kubectl("1.33", &["logs", &pods[0].0, "--tail=1"])
            .ok()
            .stdout;
        out.contains("reading").then_some(out)
    });
    assert_eq!(logs.lines().count(), 1, "{logs}");

    // Image platforms: an amd64-only image never lands on the arm64 node; a
    // two-platform index may, and here must (one per node by topology
    // spread); asking for arm64 explicitly says why it cannot be.
    for (name, platforms) in [
        ("amd-only", &[("linux", "amd64")][..]),
        ("multi", &[("linux", "amd64"), ("linux", "arm64")][..]),
    ] {
        let layout = oci::layout(&dir, name, platforms);
        s.skiff(&[
            "image",
            "push",
            &layout.display().to_string(),
            &format!("{}/fleet/{name}:v1", registry.host),
            "--insecure",
        ])
        .ok();
    }
    apply(&s, &linux_workloads(&registry.host));
    let amd = eventually(60, "4 amd-only pods bound", || {
        let p = pods_by_node(&s, "app=amd-only");
        (p.len() == 4 && p.iter().all(|(_, n, _)| !n.is_empty())).then_some(p)
    });
    assert!(
        amd.iter().all(|(_, n, _)| n.starts_with("edge-amd-")),
        "amd64-only image on an arm64 node: {amd:?}"
    );
    let multi = eventually(60, "3 multi pods bound", || {
        let p = pods_by_node(&s, "app=multi");
        (p.len() == 3 && p.iter().all(|(_, n, _)| !n.is_empty())).then_some(p)
    });
    let mut spread: Vec<&str> = multi.iter().map(|(_, n, _)| n.as_str()).collect();
    spread.sort();
    assert_eq!(
        spread,
        ["edge-amd-1", "edge-amd-2", "edge-arm-1"],
        "{multi:?}"
    );
    let why = unschedulable(&s, &["--field-selector", "metadata.name=amd-on-arm"]);
    assert!(
        why.starts_with("0/3 nodes are available:")
            && why.contains("1 node(s) didn't match the platforms of image")
            && why.contains("(linux/amd64)")
            && why.contains("2 node(s) didn't match Pod's node affinity/selector"),
        "{why}"
    );
    s.kubectl(
        "1.33",
        &[
            "delete",
            "deployment/amd-only",
            "deployment/multi",
            "pod/amd-on-arm",
            "--wait=false",
        ],
    )
    .ok();

    // Required anti-affinity on the hostname: one replica per node; the
    // fourth waits, saying why, until a node joins (below).
    apply(&s, SOLO);
    let solo = eventually(60, "3 solo pods Running", || {
        let p = pods_by_node(&s, "app=solo");
        let running: Vec<_> = p
            .iter()
            .filter(|(_, _, ph)| ph == "Running")
            .cloned()
            .collect();
        (running.len() == 3).then_some(running)
    });
    let mut hosts: Vec<&str> = solo.iter().map(|(_, n, _)| n.as_str()).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), 3, "one per node: {solo:?}");
    let why = unschedulable(&s, &["-l", "app=solo"]);
    assert_eq!(
        why, "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules.",
        "{why}"
    );

    // Scale, roll, look at the history, undo.
    s.kubectl("1.33", &["scale", "deployment/sensors", "--replicas=4"])
        .ok();
    eventually(60, "4 sensors Running", || {
        let p = pods_by_node(&s, "app=sensors");
        (p.len() == 4 && p.iter().all(|(_, _, ph)| ph == "Running")).then_some(())
    });
    s.kubectl(
        "1.33",
        &["set", "env", "deployment/sensors", "INTERVAL_MS=250"],
    )
    .ok();
    s.kubectl(
        "1.33",
        &[
            "annotate",
            "deployment/sensors",
            "kubernetes.io/change-cause=faster",
            "--overwrite",
        ],
    )
    .ok();
    rollout(&s, "deployment/sensors");
    let history = s
        .kubectl("1.33", &["rollout", "history", "deployment/sensors"])
        .ok()
        .stdout;
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "two revisions: {history}"
    );
    s.kubectl("1.33", &["rollout", "undo", "deployment/sensors"])
        .ok();
    rollout(&s, "deployment/sensors");
    let d = json(&s, &["get", "deployment", "sensors"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3",
        "{d}"
    );
    let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env[0]["value"], "500",
        "undo restored the first template: {env}"
    );
    let rs = s
        .kubectl("1.33", &["get", "rs", "-l", "app=sensors"])
        .ok()
        .stdout;
    assert_eq!(
        rs.lines().count(),
        3,
        "the old ReplicaSet was re-adopted, not a third made: {rs}"
    );

    // A deleted pod is replaced.
    let victim = pods_by_node(&s, "app=sensors")[0].0.clone();
    s.kubectl("1.33", &["delete", "pod", &victim, "--wait=false"])
        .ok();
    // With every e2e test on two cores at once, the rollouts above take
    // up to 110 s; a replacement gets as long, and says what it saw.
    let replaced = (0..110).any(|_| {
        let p = pods_by_node(&s, "app=sensors");
        let done = p.len() == 4 && p.iter().all(|(n, _, ph)| n != &victim && ph == "Running");
        if !done {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        done
    });
    if !replaced {
        let pods = s.kubectl("1.33", &["get", "pods", "-o", "wide"]).stdout;
        let events = s
            .kubectl("1.33", &["get", "events", "--sort-by=.lastTimestamp"])
            .stdout;
        panic!("the deleted pod {victim} was not replaced:\n{pods}\n{events}");
    }

    // A Job runs to completion.
    apply(&s, JOB);
    s.kubectl(
        "1.33",
        &[
            "wait",
            "--for=condition=complete",
            "job/greet",
            "--timeout=60s",
        ],
    )
    .ok();

    // A DaemonSet puts one pod on each node.
    apply(&s, DAEMON);
    let ds = eventually(60, "one agentd per node", || {
        let p = pods_by_node(&s, "app=agentd");
        (p.len() == 3 && p.iter().all(|(_, _, ph)| ph == "Running")).then_some(p)
    });
    let mut nodes: Vec<&str> = ds.iter().map(|(_, n, _)| n.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["edge-amd-1", "edge-amd-2", "edge-arm-1"]);
    // ...and on a node that joins later.
    let _d = start_node(&s, &mut net, 4, "edge-arm-2", "arm64", &[], &dir);
    eventually(60, "agentd on the node that joined", || {
        let p = pods_by_node(&s, "app=agentd");
        p.iter()
            .any(|(_, n, ph)| n == "edge-arm-2" && ph == "Running")
            .then_some(())
    });
    // The solo replica that waited is retried when the node joins.
    eventually(60, "the fourth solo pod on the new node", || {
        let p = pods_by_node(&s, "app=solo");
        p.iter()
            .any(|(_, n, ph)| n == "edge-arm-2" && ph == "Running")
            .then_some(())
    });

    // A StatefulSet comes up in order, with stable names.
    apply(&s, STATEFUL);
    rollout(&s, "statefulset/db");
    let members = json(&s, &["get", "pods", "-l", "app=db"]);
    let mut started: Vec<(String, String)> = members["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let running = &p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"];
            (
                running.as_str().unwrap_or("").to_string(),
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    started.sort();
    let names: Vec<&str> = started.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        names,
        ["db-0", "db-1", "db-2"],
        "started in ordinal order: {started:?}"
    );

    // Killing a node agent: NotReady, then its pods move after their
    // toleration (3 s) to the other amd64 node.
    apply(&s, ROAMING);
    eventually(60, "2 roaming pods Running", || {
        let p = pods_by_node(&s, "app=roaming");
        (p.len() == 2 && p.iter().all(|(_, _, ph)| ph == "Running")).then_some(())
    });
    b.kill();
    eventually(60, "edge-amd-2 NotReady", || {
        let out = s
            .kubectl("1.33", &["get", "node", "edge-amd-2"])
            .ok()
            .stdout;
        out.contains("NotReady").then_some(())
    });
    // The taint follows the Unknown condition in a separate write.
    eventually(30, "edge-amd-2 tainted unreachable", || {
        let node = json(&s, &["get", "node", "edge-amd-2"]);
        node["spec"]["taints"]
            .to_string()
            .contains("node.kubernetes.io/unreachable")
            .then_some(())
    });
    let moved = eventually(90, "roaming pods all on edge-amd-1", || {
        let p = pods_by_node(&s, "app=roaming");
        let live: Vec<_> = p
            .iter()
            .filter(|(_, n, ph)| n == "edge-amd-1" && ph == "Running")
            .collect();
        (live.len() == 2).then_some(p)
    });
    assert!(
        moved.iter().all(|(_, n, _)| n != "edge-arm-1"),
        "amd64 only: {moved:?}"
    );
}

/// What the pods of `selector` are: name → (node, restartCount, the
/// container's startedAt).
fn pod_states(
    s: &Skiff,
    selector: &str,
) -> std::collections::BTreeMap<String, (String, i64, String)> {
    pods(s, selector)
        .iter()
        .map(|p| {
            let c = &p["status"]["containerStatuses"][0];
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                (
                    p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                    c["restartCount"].as_i64().unwrap_or(-1),
                    c["state"]["running"]["startedAt"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
            )
        })
        .collect()
}

/// The bytes of every container log under a node's data dir.
fn log_bytes(data: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        rd.flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else if p.extension().is_some_and(|x| x == "log") {
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                } else {
                    0
                }
            })
            .sum()
    }
    walk(&data.join("node").join("logs"))
}

/// Two nodes ride out a cut link and a two-minute API server outage: the
/// cut node goes NotReady within 40 s and its pod moves; when the link is
/// back it stops the pod that moved (no duplicate keeps running) and is
/// Ready again. With the API server stopped, every pod keeps running (its
/// log keeps growing) and a node agent restarted meanwhile adopts its pods
/// instead of restarting them.
#[test]
fn nodes_ride_out_a_cut_link_and_an_api_server_outage() {
    let mut net = Net::nth(1);
    let listen = format!("{}:0", net.host());
    // A directory of the test's own: the server is stopped and started
    // again on the same data.
    let tmp = tempfile::tempdir().expect("tmp");
    let data_dir = tmp.path().join("data");
    let mut s = Skiff::start_in_with(
        &data_dir,
        &[
            "--listen",
            &listen,
            "--no-node",
            "--node-monitor-grace-period",
            "6s",
        ],
    );
    let dir = tmp.path().join("nodes");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut a = start_node(&s, &mut net, 1, "steady-1", "amd64", &[], &dir);
    let _b = start_node(&s, &mut net, 2, "steady-2", "amd64", &[], &dir);
    ready_nodes(&s, 2);
    // Two replicas, one per node (spread), that leave a NotReady node
    // after 3 s.
    let spread = ROAMING
        .replace("name: roaming", "name: steady")
        .replace("app: roaming", "app: steady")
        .replace(
            "      affinity:",
            "      topologySpreadConstraints:\n      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: steady}}}\n      affinity:",
        );
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&spread))
        .ok();
    rollout(&s, "deployment/steady");
    eventually(30, "a steady pod on steady-2", || {
        pod_states(&s, "app=steady")
            .into_iter()
            .find(|(_, (n, _, _))| n == "steady-2")
    });

    // Cut steady-2's link: NotReady within 40 s, its pod replaced on
    // steady-1.
    let cut = std::time::Instant::now();
    ip(&["link", "set", &net.link(2), "down"]);
    eventually(40, "steady-2 NotReady after its link is cut", || {
        let out = s.kubectl("1.33", &["get", "node", "steady-2"]).ok().stdout;
        out.contains("NotReady").then_some(())
    });
    eprintln!("steady-2 NotReady {:?} after the cut", cut.elapsed());
    // The evicted pod stays Terminating while its node cannot confirm it
    // stopped (as in Kubernetes); its replacement runs on steady-1.
    eventually(90, "both steady pods Running on steady-1", || {
        let p = pods_by_node(&s, "app=steady");
        (p.iter()
            .filter(|(_, n, ph)| n == "steady-1" && ph == "Running")
            .count()
            == 2)
            .then_some(())
    });
    // Back: Ready again, and the moved pod's instance on steady-2 is
    // stopped and cleaned up, not left running beside its replacement.
    ip(&["link", "set", &net.link(2), "up"]);
    eventually(60, "steady-2 Ready again", || {
        let out = s.kubectl("1.33", &["get", "node", "steady-2"]).ok().stdout;
        (out.contains(" Ready ") && !out.contains("NotReady")).then_some(())
    });
    let left = eventually(60, "the evicted pod gone once its node confirmed", || {
        let p = pods_by_node(&s, "app=steady");
        (p.len() == 2).then_some(p)
    });
    assert!(
        left.iter()
            .all(|(_, n, ph)| n == "steady-1" && ph == "Running"),
        "no duplicates: {left:?}"
    );

    // The API server away for two minutes: pods keep running, and an
    // agent restarted meanwhile adopts its pods.
    let before = pod_states(&s, "app=steady");
    assert!(
        before
            .values()
            .all(|(_, r, started)| *r == 0 && !started.is_empty()),
        "{before:?}"
    );
    let a_data = dir.join("steady-1");
    let addr = s.url.trim_start_matches("https://").to_string();
    let status = s.stop();
    assert!(status.success(), "skiff up stops cleanly: {status}");
    let logged = log_bytes(&a_data);
    std::thread::sleep(std::time::Duration::from_secs(60));
    a.kill();
    a = start_node(&s, &mut net, 1, "steady-1", "amd64", &[], &dir);
    std::thread::sleep(std::time::Duration::from_secs(60));
    let grew = log_bytes(&a_data);
    assert!(
        grew > logged,
        "the pods on steady-1 kept writing while the API server was away ({logged} → {grew} bytes)"
    );
    drop(s);
    let s = Skiff::start_in_with(
        &data_dir,
        &[
            "--listen",
            &addr,
            "--no-node",
            "--node-monitor-grace-period",
            "6s",
        ],
    );
    ready_nodes(&s, 2);
    let after = eventually(30, "the same pods, still running", || {
        let now = pod_states(&s, "app=steady");
        (now.len() == 2 && now.values().all(|(_, _, st)| !st.is_empty())).then_some(now)
    });
    assert_eq!(
        before, after,
        "the same pods on the same nodes, not restarted (restartCount and startedAt unchanged)"
    );
    drop(a);
    s.assert_no_panics();
}
