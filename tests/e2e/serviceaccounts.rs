//! ServiceAccount credentials inside pods, as Kubernetes mounts them: the
//! ServiceAccount admission adds a projected `kube-api-access-…` volume
//! (a token bound to the pod, the cluster CA from `kube-root-ca.crt`, the
//! namespace) at `/var/run/secrets/kubernetes.io/serviceaccount` of every
//! container, unless the pod or its account sets
//! `automountServiceAccountToken: false`. A Wasm pod reads it from a
//! preopened directory and a Linux container from a read-only bind mount;
//! the token works with kubectl as the account and dies with the pod.

use serde_json::Value;

use crate::harness::{eventually, example_busybox_image, example_module, Skiff};
use crate::registry::Registry;

const DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn get_json(s: &Skiff, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend(args);
    a.extend(["-o", "json"]);
    let out = s.kubectl("1.33", &a).ok().stdout;
    serde_json::from_str(&out).expect("kubectl printed JSON")
}

/// The files the `cat` fixture printed, by path.
fn sections(logs: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in logs.lines() {
        if let Some(path) = line
            .strip_prefix("==> ")
            .and_then(|l| l.strip_suffix(" <=="))
        {
            out.push((path.to_string(), String::new()));
        } else if let Some((_, text)) = out.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

/// The pod the API server would store for `manifest` in `tok`
/// (`--dry-run=server`: admitted, not written).
fn dry_run(s: &Skiff, manifest: &str) -> Value {
    let out = s
        .kubectl_stdin(
            "1.33",
            &[
                "-n",
                "tok",
                "create",
                "--dry-run=server",
                "-o",
                "json",
                "-f",
                "-",
            ],
            Some(manifest),
        )
        .ok()
        .stdout;
    serde_json::from_str(&out).expect("pod JSON")
}

/// The token volume the admission adds to `manifest`'s pod, if any.
fn token_volume(s: &Skiff, manifest: &str) -> Option<Value> {
    dry_run(s, manifest)["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("kube-api-access-"))
        })
        .cloned()
}

#[test]
fn pods_get_a_bound_service_account_token_unless_they_opt_out() {
    let reg = Registry::start();
    let s = Skiff::start_with(&["--insecure-registry", &reg.host, "--node-label", "wasm=yes"]);
    let cat = format!("{}/skiff/cat:v1", reg.host);
    let busybox = format!("{}/library/busybox:1.36", reg.host);
    for (from, to) in [
        (example_module("cat"), &cat),
        (example_busybox_image(), &busybox),
    ] {
        s.skiff(&["image", "push", &from, to, "--insecure"]).ok();
    }
    s.kubectl("1.33", &["create", "namespace", "tok"]).ok();
    // Every namespace, old or new, publishes the cluster CA.
    let ca = s.kubeconfig_parts().ca_pem;
    for ns in ["default", "kube-system", "tok"] {
        let cm = get_json(&s, &["-n", ns, "configmap", "kube-root-ca.crt"]);
        assert_eq!(cm["data"]["ca.crt"].as_str(), Some(ca.as_str()), "{ns}");
    }
    s.kubectl("1.33", &["-n", "tok", "create", "serviceaccount", "robot"])
        .ok();
    s.kubectl(
        "1.33",
        &[
            "-n",
            "tok",
            "create",
            "rolebinding",
            "robot-view",
            "--clusterrole=view",
            "--serviceaccount=tok:robot",
        ],
    )
    .ok();
    s.kubectl_stdin(
        "1.33",
        &["apply", "-f", "-"],
        Some("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: wasmtime}\nhandler: wasmtime\nscheduling:\n  nodeSelector: {wasm: \"yes\"}\n"),
    )
    .ok();

    // A Wasm pod reads the token, CA and namespace from a preopened dir.
    let wasm_pod = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: reader, namespace: tok}}
spec:
  serviceAccountName: robot
  runtimeClassName: wasmtime
  restartPolicy: Never
  containers:
  - name: main
    image: {cat}
    args: ["{DIR}/token", "{DIR}/namespace", "{DIR}/ca.crt"]
"#
    );
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&wasm_pod))
        .ok();
    let pod = get_json(&s, &["-n", "tok", "pod", "reader"]);
    let volume = pod["spec"]["volumes"][0].clone();
    let name = volume["name"].as_str().unwrap_or_default().to_string();
    assert!(name.starts_with("kube-api-access-"), "{volume}");
    let sources = &volume["projected"]["sources"];
    assert_eq!(
        sources[0]["serviceAccountToken"]["expirationSeconds"], 3607,
        "{volume}"
    );
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let mount = &pod["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(mount["mountPath"], DIR, "{mount}");
    assert_eq!(mount["readOnly"], true);
    assert_eq!(mount["name"].as_str(), Some(name.as_str()));
    eventually(60, "the reader pod Succeeded", || {
        let p = get_json(&s, &["-n", "tok", "pod", "reader"]);
        (p["status"]["phase"] == "Succeeded").then_some(())
    });
    let logs = s
        .kubectl("1.33", &["-n", "tok", "logs", "reader"])
        .ok()
        .stdout;
    let files = sections(&logs);
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            format!("{DIR}/token"),
            format!("{DIR}/namespace"),
            format!("{DIR}/ca.crt")
        ],
        "every file was readable:\n{logs}"
    );
    let token = files[0].1.trim().to_string();
    assert_eq!(files[1].1.trim(), "tok");
    assert_eq!(files[2].1.trim(), ca.trim());

    // The token is the account's, with its RBAC, and bound to the pod.
    let flag = format!("--token={token}");
    let who = s
        .kubectl("1.33", &[&flag, "auth", "whoami", "-o", "json"])
        .ok()
        .stdout;
    let who: Value = serde_json::from_str(&who).expect("whoami JSON");
    assert_eq!(
        who["status"]["userInfo"]["username"], "system:serviceaccount:tok:robot",
        "{who}"
    );
    s.kubectl("1.33", &[&flag, "-n", "tok", "get", "pods"]).ok();
    let other = s.kubectl("1.33", &[&flag, "-n", "default", "get", "pods"]);
    assert!(
        other.stderr.contains("cannot list resource \"pods\""),
        "{}",
        other.stderr
    );
    // A token asked for a pod of another account is refused.
    let wrong = s.kubectl(
        "1.33",
        &[
            "-n",
            "tok",
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=reader",
        ],
    );
    assert!(
        wrong.stderr.contains(
            "cannot bind token for serviceaccount \"default\" to pod running with different serviceaccount name."
        ),
        "{}",
        wrong.stderr
    );
    s.kubectl("1.33", &["-n", "tok", "delete", "pod", "reader", "--wait"])
        .ok();
    let gone = s.kubectl("1.33", &[&flag, "auth", "whoami"]);
    assert!(
        gone.stderr.contains("Unauthorized"),
        "the token dies with its pod: {}",
        gone.stderr
    );

    // A Linux container gets the same files on a read-only mount.
    let linux_pod = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: shell, namespace: tok}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {busybox}
    command: ["sh", "-c", "cat {DIR}/namespace; echo; wc -c < {DIR}/token; touch {DIR}/x 2>/dev/null || echo read-only"]
"#
    );
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&linux_pod))
        .ok();
    eventually(90, "the shell pod Succeeded", || {
        let p = get_json(&s, &["-n", "tok", "pod", "shell"]);
        (p["status"]["phase"] == "Succeeded").then_some(())
    });
    let logs = s
        .kubectl("1.33", &["-n", "tok", "logs", "shell"])
        .ok()
        .stdout;
    let lines: Vec<&str> = logs.lines().map(str::trim).collect();
    assert_eq!(lines.first(), Some(&"tok"), "{logs}");
    let length: usize = lines.get(1).and_then(|l| l.parse().ok()).unwrap_or(0);
    assert!(length > 100, "a JWT in the token file: {logs}");
    assert_eq!(lines.get(2), Some(&"read-only"), "{logs}");
    s.kubectl("1.33", &["-n", "tok", "delete", "pod", "shell", "--wait"])
        .ok();

    // Opting out: on the pod, on the account, and the pod overriding it.
    let plain = |extra: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: quiet}}\nspec:\n{extra}  containers: [{{name: c, image: {cat}}}]\n")
    };
    assert!(token_volume(&s, &plain("")).is_some());
    assert!(token_volume(&s, &plain("  automountServiceAccountToken: false\n")).is_none());
    s.kubectl_stdin(
        "1.33",
        &["-n", "tok", "apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: mute}\nautomountServiceAccountToken: false\n"),
    )
    .ok();
    assert!(token_volume(&s, &plain("  serviceAccountName: mute\n")).is_none());
    assert!(token_volume(
        &s,
        &plain("  serviceAccountName: mute\n  automountServiceAccountToken: true\n")
    )
    .is_some());
    // A container that mounts something at the path keeps its own.
    let own = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: own}}\nspec:\n  volumes: [{{name: mine, emptyDir: {{}}}}]\n  containers:\n  - {{name: a, image: {cat}, volumeMounts: [{{name: mine, mountPath: {DIR}}}]}}\n  - {{name: b, image: {cat}}}\n"
    );
    let pod = dry_run(&s, &own);
    let mounts = |i: usize| -> Vec<String> {
        pod["spec"]["containers"][i]["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(mounts(0), ["mine"], "{pod}");
    assert_eq!(mounts(1).len(), 1, "{pod}");
    assert!(mounts(1)[0].starts_with("kube-api-access-"), "{pod}");
    s.assert_no_panics();
}
