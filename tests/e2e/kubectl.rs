//! kubectl 1.27 and 1.33 against skiff: apply (client-side and
//! server-side), get with Table columns, watch, describe, scale, delete,
//! create, auth, and the errors an invalid manifest gets.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{eventually, kubectl_path, Skiff, VERSIONS};

fn manifest(ns: &str, replicas: u32, image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: wasmtime-{ns}
handler: wasmtime
scheduling:
  nodeSelector:
    wasm: "yes"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  GREETING: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      runtimeClassName: wasmtime-{ns}
      containers:
      - name: web
        image: {image}
        env:
        - name: MODE
          value: demo
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
"#
    )
}

fn write(s: &Skiff, name: &str, text: &str) -> String {
    let p = s.dir.join(name);
    std::fs::write(&p, text).expect("write manifest");
    p.display().to_string()
}

fn json(s: &Skiff, v: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl(v, &a).ok().stdout).expect("kubectl -o json")
}

/// The header line of a `kubectl get`, split into column names.
fn header(out: &str) -> Vec<String> {
    let line = out.lines().next().unwrap_or("");
    // Column names can hold one space ("NOMINATED NODE"): split on runs of two.
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[track_caller]
fn has_columns(out: &str, cols: &[&str]) {
    let h = header(out);
    for c in cols {
        assert!(
            h.iter().any(|x| x == c),
            "column {c} missing from {h:?}\n{out}"
        );
    }
}

fn apply_cycle(v: &str) {
    let s = Skiff::start();
    let ns = format!("shop-{}", v.replace('.', "-"));
    let first = write(&s, "first.yaml", &manifest(&ns, 3, "registry.local/web:1"));
    let out = s.kubectl(v, &["apply", "-f", &first]).ok().stdout;
    for obj in [
        "namespace/",
        "runtimeclass.node.k8s.io/",
        "configmap/settings",
        "deployment.apps/web",
        "service/web",
    ] {
        assert!(
            out.contains(obj) && out.contains("created"),
            "apply output lacks {obj}: {out}"
        );
    }

    // Client-side apply again with changes: a strategic merge patch.
    let second = write(&s, "second.yaml", &manifest(&ns, 5, "registry.local/web:2"));
    assert!(s
        .kubectl(v, &["apply", "-f", &second])
        .ok()
        .stdout
        .contains("deployment.apps/web configured"));
    let d = json(&s, v, &["-n", &ns, "get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/web:2"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"], "MODE",
        "SMP kept the env list"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some_and(|a| a.contains("registry.local/web:2"))
    );
    assert_eq!(
        d["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults applied"
    );

    // Server-side apply: the same values are shared, another manager
    // changing one conflicts, and --force-conflicts takes it.
    s.kubectl(
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=shop-owner",
            "-f",
            &second,
        ],
    )
    .ok();
    let third = write(&s, "third.yaml", &manifest(&ns, 6, "registry.local/web:2"));
    let conflict = s
        .kubectl(
            v,
            &[
                "apply",
                "--server-side",
                "--field-manager=other",
                "-f",
                &third,
            ],
        )
        .failed();
    assert!(
        conflict.stderr.contains("conflict") && conflict.stderr.contains(".spec.replicas"),
        "{}",
        conflict.stderr
    );
    s.kubectl(
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            &third,
        ],
    )
    .ok();
    assert_eq!(
        json(&s, v, &["-n", &ns, "get", "deployment", "web"])["spec"]["replicas"],
        6
    );

    // scale through the scale subresource.
    s.kubectl(
        v,
        &["-n", &ns, "scale", "deployment", "web", "--replicas=2"],
    )
    .ok();
    assert_eq!(
        json(&s, v, &["-n", &ns, "get", "deployment", "web"])["spec"]["replicas"],
        2
    );

    // describe reads the deployment and its events.
    let d = s
        .kubectl(v, &["-n", &ns, "describe", "deployment", "web"])
        .ok()
        .stdout;
    assert!(
        d.contains("Replicas:") && d.contains("2 desired") && d.contains("RollingUpdate"),
        "{d}"
    );

    // delete -f waits until everything is gone and returns.
    let del = s
        .kubectl(v, &["delete", "-f", &third, "--timeout=60s"])
        .ok()
        .stdout;
    assert!(del.contains("deleted"), "{del}");
    eventually(30, "the namespace to go away", || {
        let o = s.kubectl(v, &["get", "namespace", &ns]);
        (o.code != 0 && o.stderr.contains("NotFound")).then_some(())
    });
    let gone = s
        .kubectl(v, &["get", "runtimeclass", &format!("wasmtime-{ns}")])
        .failed();
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);
}

#[test]
fn apply_scale_describe_delete_kubectl_1_27() {
    apply_cycle("1.27");
}

#[test]
fn apply_scale_describe_delete_kubectl_1_33() {
    apply_cycle("1.33");
}

const KINDS: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: solo}
spec:
  containers:
  - name: main
    image: registry.local/solo:1
---
apiVersion: v1
kind: Node
metadata:
  name: edge-1
  labels:
    kubernetes.io/arch: arm64
status:
  nodeInfo:
    architecture: arm64
    kubeletVersion: v1.33.0-skiff
---
apiVersion: v1
kind: Event
metadata:
  name: solo.started
involvedObject:
  kind: Pod
  name: solo
  namespace: default
reason: Started
message: Started container main
type: Normal
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: wasmtime
handler: wasmtime
---
apiVersion: v1
kind: Service
metadata:
  name: solo
spec:
  selector: {app: solo}
  ports:
  - port: 80
"#;

#[test]
fn get_prints_kubernetes_columns() {
    let s = Skiff::start();
    let f = write(&s, "kinds.yaml", KINDS);
    for v in VERSIONS {
        s.kubectl(v, &["apply", "-f", &f]).ok();
        let pods = s.kubectl(v, &["get", "pods"]).ok().stdout;
        has_columns(&pods, &["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        assert!(pods.contains("0/1") && pods.contains("Pending"), "{pods}");
        has_columns(
            &s.kubectl(v, &["get", "pods", "-o", "wide"]).ok().stdout,
            &["IP", "NODE", "NOMINATED NODE"],
        );
        has_columns(
            &s.kubectl(v, &["get", "nodes", "-o", "wide"]).ok().stdout,
            &["STATUS", "ROLES", "VERSION", "INTERNAL-IP", "ARCH"],
        );
        let svc = s.kubectl(v, &["get", "services"]).ok().stdout;
        has_columns(&svc, &["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]);
        assert!(svc.contains("10.96."), "services get cluster IPs: {svc}");
        let rc = s.kubectl(v, &["get", "runtimeclasses"]).ok().stdout;
        has_columns(&rc, &["NAME", "HANDLER", "AGE"]);
        has_columns(
            &s.kubectl(v, &["get", "namespaces"]).ok().stdout,
            &["NAME", "STATUS", "AGE"],
        );
        let ev = s.kubectl(v, &["get", "events"]).ok().stdout;
        has_columns(&ev, &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
        assert!(ev.contains("pod/solo"), "{ev}");
        let deploy = s
            .kubectl(
                v,
                &[
                    "create",
                    "deployment",
                    "d",
                    "--image=registry.local/d:1",
                    "--dry-run=server",
                    "-o",
                    "name",
                ],
            )
            .ok();
        assert!(deploy.stdout.contains("deployment.apps/d"));
    }
    let deploy_file = write(&s, "d.yaml", &manifest("cols", 1, "x:1"));
    s.kubectl("1.33", &["apply", "-f", &deploy_file]).ok();
    let d = s
        .kubectl("1.33", &["-n", "cols", "get", "deployments", "-o", "wide"])
        .ok()
        .stdout;
    has_columns(
        &d,
        &[
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
    );
}

#[test]
fn watch_sees_later_changes() {
    let s = Skiff::start();
    for v in VERSIONS {
        let name = format!("watched-{}", v.replace('.', "-"));
        let mut child = Command::new(kubectl_path(v))
            .args(["get", "configmaps", "--watch"])
            .env("KUBECONFIG", s.kubeconfig())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl -w");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Let the watch start, then change something.
        std::thread::sleep(Duration::from_millis(1500));
        s.kubectl(v, &["create", "configmap", &name, "--from-literal=k=v"])
            .ok();
        let seen = eventually(20, "the watch to show the new configmap", || {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(&name) => Some(line),
                _ => None,
            }
        });
        assert!(seen.contains('1'), "DATA column shows one key: {seen}");
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn create_namespace_and_auth_can_i_with_every_client() {
    let s = Skiff::start();
    for (i, v) in ["1.27", "1.31", "1.32", "1.33", ""].iter().enumerate() {
        let ns = format!("made-{i}");
        let out = s.kubectl(v, &["create", "namespace", &ns]).ok().stdout;
        assert!(out.contains(&format!("namespace/{ns} created")), "{out}");
        assert_eq!(
            s.kubectl(v, &["auth", "can-i", "create", "pods"])
                .ok()
                .stdout
                .trim(),
            "yes"
        );
        let cm = s
            .kubectl(
                v,
                &["-n", &ns, "create", "configmap", "c", "--from-literal=a=b"],
            )
            .ok()
            .stdout;
        assert!(cm.contains("configmap/c created"), "{cm}");
    }
    // /usr/bin/kubectl picks its client by the server's version.
    let version = s.kubectl("", &["version", "-o", "json"]).ok().stdout;
    let v: Value = serde_json::from_str(&version).expect("version json");
    assert_eq!(v["serverVersion"]["minor"], "33");
}

const BAD_NAME: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: Bad_Name
data: {a: b}
"#;

const NO_CONTAINERS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: empty
spec:
  selector:
    matchLabels: {app: empty}
  template:
    metadata:
      labels: {app: empty}
    spec:
      containers: []
"#;

const UNKNOWN_FIELD: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: typo
spec:
  replicasx: 3
  selector:
    matchLabels: {app: typo}
  template:
    metadata:
      labels: {app: typo}
    spec:
      containers:
      - name: c
        image: x
"#;

#[test]
fn invalid_manifests_are_refused_naming_the_field() {
    let s = Skiff::start();
    for v in VERSIONS {
        let e = s
            .kubectl_stdin(v, &["apply", "-f", "-"], Some(BAD_NAME))
            .failed()
            .stderr;
        assert!(
            e.contains("is invalid") && e.contains("metadata.name: Invalid value: \"Bad_Name\""),
            "{e}"
        );
        let e = s
            .kubectl_stdin(v, &["apply", "-f", "-"], Some(NO_CONTAINERS))
            .failed()
            .stderr;
        assert!(
            e.contains("spec.template.spec.containers: Required value"),
            "{e}"
        );
        let e = s
            .kubectl_stdin(v, &["apply", "-f", "-"], Some(UNKNOWN_FIELD))
            .failed()
            .stderr;
        assert!(e.contains("unknown field \"spec.replicasx\""), "{e}");
        // Nothing of them was written.
        let all = s
            .kubectl(v, &["get", "deployments,configmaps", "-o", "name"])
            .ok()
            .stdout;
        assert!(
            !all.contains("empty") && !all.contains("typo") && !all.contains("Bad_Name"),
            "{all}"
        );
    }
}
