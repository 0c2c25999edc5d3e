//! kubectl 1.27 and 1.33 against skiff: apply (client-side and
//! server-side), get with Table columns, watch, describe, scale, delete,
//! create, auth, and the errors an invalid manifest gets.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{eventually, Out, Skiff, Streaming, VERSIONS};

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
    let s = Skiff::api_only();
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
        // describe reads each kind (and, for most, its events by field
        // selector on involvedObject.*).
        for (kind, name, expect) in [
            ("pod", "solo", "registry.local/solo:1"),
            ("node", "edge-1", "arm64"),
            ("service", "solo", "10.96."),
            ("namespace", "default", "Active"),
            ("runtimeclass", "wasmtime", "wasmtime"),
        ] {
            let d = s.kubectl(v, &["describe", kind, name]).ok().stdout;
            assert!(
                d.contains("Name:") && d.contains(name) && d.contains(expect),
                "describe {kind} {name}:\n{d}"
            );
        }
    }
    let deploy_file = write(&s, "d.yaml", &manifest("cols", 1, "x:1"));
    s.kubectl("1.33", &["apply", "-f", &deploy_file]).ok();
    for v in VERSIONS {
        let d = s
            .kubectl(v, &["-n", "cols", "get", "deployments"])
            .ok()
            .stdout;
        has_columns(&d, &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
        has_columns(
            &s.kubectl(v, &["-n", "cols", "get", "deployments", "-o", "wide"])
                .ok()
                .stdout,
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        );
        has_columns(
            &s.kubectl(v, &["-n", "cols", "get", "configmaps"])
                .ok()
                .stdout,
            &["NAME", "DATA", "AGE"],
        );
    }
}

/// `kubectl get KIND -w` prints the list, then a row for each later change.
fn watch_shows(s: &Skiff, v: &str, kind: &str, create: &[&str], name: &str) {
    let mut w = Streaming::spawn(s.kubectl_command(v, &s.kubeconfig(), &["get", kind, "-w"]));
    // The header (or "No resources found" on stderr) shows the watch began;
    // kubectl prints the header only once there is a row, so just give the
    // list-then-watch a moment before changing anything.
    std::thread::sleep(Duration::from_millis(1500));
    s.kubectl(v, create).ok();
    w.expect_line(20, &format!("the watch on {kind} to show {name}"), |l| {
        l.split_whitespace().next() == Some(name)
    });
}

#[test]
fn watch_sees_later_changes() {
    let s = Skiff::start();
    for v in VERSIONS {
        let tag = v.replace('.', "-");
        let cm = format!("watched-{tag}");
        watch_shows(
            &s,
            v,
            "configmaps",
            &["create", "configmap", &cm, "--from-literal=k=v"],
            &cm,
        );
        // No node runs pods yet: a new pod stays Pending, which is a change
        // all the same.
        let pod = format!("watched-pod-{tag}");
        watch_shows(
            &s,
            v,
            "pods",
            &["run", &pod, "--image=registry.local/w:1", "--restart=Never"],
            &pod,
        );
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

const PATCHED: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: p
  labels: {team: a}
spec:
  selector:
    matchLabels: {app: p}
  template:
    metadata:
      labels: {app: p}
    spec:
      containers:
      - name: a
        image: registry.local/a:1
        env:
        - {name: "AX", value: "1"}
        - {name: "AY", value: "2"}
        ports:
        - containerPort: 80
        - containerPort: 81
      - name: b
        image: registry.local/b:1
"#;

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|e| match &e[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[track_caller]
fn patch(s: &Skiff, v: &str, kind_name: &[&str], ty: &str, p: &str) -> Out {
    let mut args = vec!["patch"];
    args.extend(kind_name);
    args.extend(["--type", ty, "-p", p]);
    s.kubectl(v, &args)
}

/// `kubectl patch` with each patch type, and the strategic merge patch
/// directives, as kube-apiserver applies them.
fn patch_cycle(v: &str) {
    let s = Skiff::start();
    s.kubectl_stdin(v, &["apply", "-f", "-"], Some(PATCHED))
        .ok();
    let get = || json(&s, v, &["get", "deployment", "p"]);
    let dp = ["deployment", "p"];

    // Merge keys: env by name, deleting one with `$patch: delete` and adding
    // another. Without `$setElementOrder`, kube-apiserver's strategicpatch
    // (normalizeElementOrder → mergeSortedSlice) takes a patch item the live
    // list lacks before the server-only items, so the new item comes first.
    // (The older design note "Preserve Order in Strategic Merge Patch" says
    // otherwise; the server's code is what kubectl meets.)
    patch(
        &s,
        v,
        &dp,
        "strategic",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","env":[{"name":"AX","$patch":"delete"},{"name":"Z","value":"3"}]}]}}}}"#,
    )
    .ok();
    let d = get();
    let a = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(a["name"], "a");
    assert_eq!(names(&a["env"], "name"), ["Z", "AY"], "{}", a["env"]);
    assert_eq!(a["image"], "registry.local/a:1", "untouched fields stay");
    assert_eq!(d["metadata"]["generation"], 2);

    // ports merge on containerPort; the new port comes first, as above.
    patch(
        &s,
        v,
        &dp,
        "strategic",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","ports":[{"containerPort":82}]}]}}}}"#,
    )
    .ok();
    let a = &get()["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(names(&a["ports"], "containerPort"), ["82", "80", "81"]);

    // `$setElementOrder` reorders the containers while patching one.
    patch(
        &s,
        v,
        &dp,
        "strategic",
        r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}],"containers":[{"name":"b","image":"registry.local/b:2"}]}}}}"#,
    )
    .ok();
    let c = &get()["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(c, "name"), ["b", "a"]);
    assert_eq!(c[0]["image"], "registry.local/b:2");

    // Switching to Recreate keeps the defaulted rollingUpdate unless the
    // patch says `$retainKeys`, and Kubernetes refuses that combination.
    let e = patch(
        &s,
        v,
        &dp,
        "strategic",
        r#"{"spec":{"strategy":{"type":"Recreate"}}}"#,
    )
    .failed()
    .stderr;
    assert!(
        e.contains("spec.strategy.rollingUpdate: Forbidden"),
        "Kubernetes: may not be specified when strategy `type` is 'Recreate': {e}"
    );
    patch(
        &s,
        v,
        &dp,
        "strategic",
        r#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}"#,
    )
    .ok();
    let d = get();
    assert_eq!(
        d["spec"]["strategy"],
        serde_json::json!({"type": "Recreate"})
    );

    // Labels are metadata: no new generation. A merge patch null deletes.
    let generation = d["metadata"]["generation"].clone();
    patch(
        &s,
        v,
        &dp,
        "merge",
        r#"{"metadata":{"labels":{"team":null,"tier":"web"}}}"#,
    )
    .ok();
    let d = get();
    assert_eq!(d["metadata"]["labels"], serde_json::json!({"tier": "web"}));
    assert_eq!(d["metadata"]["generation"], generation);

    // JSON patch: a failed `test` writes nothing at all.
    let rv = d["metadata"]["resourceVersion"].clone();
    let e = patch(
        &s,
        v,
        &dp,
        "json",
        r#"[{"op":"replace","path":"/spec/replicas","value":9},{"op":"test","path":"/spec/paused","value":true}]"#,
    )
    .failed()
    .stderr;
    // A 422 Invalid: kubectl prints only "… is invalid" for it.
    assert!(e.contains("is invalid"), "{e}");
    let d = get();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["metadata"]["resourceVersion"], rv);
    patch(
        &s,
        v,
        &dp,
        "json",
        r#"[{"op":"test","path":"/spec/replicas","value":1},{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/spec/template/metadata/labels/v","value":"2"}]"#,
    )
    .ok();
    let d = get();
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["spec"]["template"]["metadata"]["labels"]["v"], "2");

    // `$deleteFromPrimitiveList` on a list of strings (finalizers).
    s.kubectl(v, &["create", "configmap", "fin", "--from-literal=a=b"])
        .ok();
    let cm = ["configmap", "fin"];
    patch(
        &s,
        v,
        &cm,
        "merge",
        r#"{"metadata":{"finalizers":["e2e/a","e2e/b","e2e/c"]}}"#,
    )
    .ok();
    patch(
        &s,
        v,
        &cm,
        "strategic",
        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["e2e/b"]}}"#,
    )
    .ok();
    assert_eq!(
        json(&s, v, &["get", "configmap", "fin"])["metadata"]["finalizers"],
        serde_json::json!(["e2e/a", "e2e/c"])
    );
    patch(&s, v, &cm, "merge", r#"{"metadata":{"finalizers":null}}"#).ok();
    s.assert_no_panics();
}

#[test]
fn patch_types_and_strategic_directives_kubectl_1_27() {
    patch_cycle("1.27");
}

#[test]
fn patch_types_and_strategic_directives_kubectl_1_33() {
    patch_cycle("1.33");
}

#[test]
fn deleting_a_namespace_terminates_it_and_removes_its_contents() {
    let s = Skiff::start();
    let v = "1.33";
    s.kubectl(v, &["create", "namespace", "doomed"]).ok();
    for name in ["held", "free"] {
        s.kubectl(
            v,
            &[
                "-n",
                "doomed",
                "create",
                "configmap",
                name,
                "--from-literal=a=b",
            ],
        )
        .ok();
    }
    s.kubectl(
        v,
        &[
            "-n",
            "doomed",
            "patch",
            "configmap",
            "held",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["e2e.skiff.dev/hold"]}}"#,
        ],
    )
    .ok();
    s.kubectl(v, &["delete", "namespace", "doomed", "--wait=false"])
        .ok();
    let ns = s.kubectl(v, &["get", "namespace", "doomed"]).ok().stdout;
    assert!(ns.contains("Terminating"), "{ns}");

    // Kubernetes' NamespaceLifecycle admission: the message names the object.
    let e = s
        .kubectl(
            v,
            &[
                "-n",
                "doomed",
                "create",
                "configmap",
                "late",
                "--from-literal=a=b",
            ],
        )
        .failed()
        .stderr;
    assert!(
        e.contains(
            "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
        ),
        "{e}"
    );

    // The namespace controller deletes the contents; the finalizer holds one.
    eventually(30, "the namespace's contents to be deleted", || {
        let o = s
            .kubectl(v, &["-n", "doomed", "get", "configmaps", "-o", "json"])
            .ok()
            .stdout;
        let l: Value = serde_json::from_str(&o).expect("list");
        let items = l["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 1
            && items[0]["metadata"]["name"] == "held"
            && items[0]["metadata"]["deletionTimestamp"].is_string())
        .then_some(())
    });
    assert!(s
        .kubectl(v, &["get", "namespace", "doomed"])
        .ok()
        .stdout
        .contains("Terminating"));

    // Once the finalizer goes, so do the object and the namespace.
    s.kubectl(
        v,
        &[
            "-n",
            "doomed",
            "patch",
            "configmap",
            "held",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    )
    .ok();
    eventually(30, "the namespace to go away", || {
        let o = s.kubectl(v, &["get", "namespace", "doomed"]);
        (o.code != 0 && o.stderr.contains("NotFound")).then_some(())
    });
    s.assert_no_panics();
}
