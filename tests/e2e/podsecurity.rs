//! Pod Security admission as kubectl 1.33 sees it: namespace labels pick
//! a level per mode; `enforce` refuses pods with Kubernetes' message,
//! `warn` prints `Warning: would violate PodSecurity …` and lets the
//! object in, bad label values are refused, a stricter enforce level
//! warns about the pods already there, and a Deployment whose pods are
//! refused shows it on its ReplicaSet.

use serde_json::Value;

use crate::harness::{eventually, Out, Skiff};

fn apply(s: &Skiff, ns: &str, yaml: &str) -> Out {
    s.kubectl_stdin("1.33", &["-n", ns, "apply", "-f", "-"], Some(yaml))
}

fn namespace(s: &Skiff, ns: &str, labels: &[&str]) {
    s.kubectl("1.33", &["create", "namespace", ns]).ok();
    if !labels.is_empty() {
        let mut args = vec!["label", "namespace", ns];
        args.extend_from_slice(labels);
        s.kubectl("1.33", &args).ok();
    }
}

fn pod(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

const PRIVILEGED: &str = "  containers:
  - name: c
    image: busybox
    securityContext:
      privileged: true
";

const HOST_NETWORK: &str = "  hostNetwork: true
  containers:
  - name: c
    image: busybox
";

const PLAIN: &str = "  containers:
  - name: c
    image: busybox
";

const RESTRICTED: &str = "  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: c
    image: busybox
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop: [\"ALL\"]
";

const PLAIN_VIOLATIONS: &str = "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
{}",
        PLAIN
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    )
}

#[test]
fn enforce_baseline_refuses_privileged_and_host_network_pods() {
    let s = Skiff::api_only();
    namespace(&s, "base", &["pod-security.kubernetes.io/enforce=baseline"]);
    let out = apply(&s, "base", &pod("priv", PRIVILEGED)).failed();
    assert_eq!(
        out.stderr.trim(),
        "Error from server (Forbidden): error when creating \"STDIN\": pods \"priv\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
    );
    let out = apply(&s, "base", &pod("hostnet", HOST_NETWORK)).failed();
    assert!(
        out.stderr.contains("pods \"hostnet\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"),
        "{}",
        out.stderr
    );
    // Compliant with baseline (though not with restricted): admitted, quietly.
    let out = apply(&s, "base", &pod("plain", PLAIN)).ok();
    assert_eq!(out.stdout.trim(), "pod/plain created");
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
    // Nothing refused was stored.
    let names = s
        .kubectl("1.33", &["-n", "base", "get", "pods", "-o", "name"])
        .ok();
    assert_eq!(names.stdout.trim(), "pod/plain");
}

#[test]
fn enforce_restricted_names_every_violation_and_admits_a_restricted_pod() {
    let s = Skiff::api_only();
    namespace(
        &s,
        "strict",
        &[
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        ],
    );
    let out = apply(&s, "strict", &pod("plain", PLAIN)).failed();
    assert_eq!(
        out.stderr.trim(),
        format!("Error from server (Forbidden): error when creating \"STDIN\": pods \"plain\" is forbidden: violates PodSecurity \"restricted:latest\": {PLAIN_VIOLATIONS}")
    );
    apply(&s, "strict", &pod("good", RESTRICTED)).ok();
    // kubectl run goes the same way as apply.
    let out = s
        .kubectl("1.33", &["-n", "strict", "run", "quick", "--image=busybox"])
        .failed();
    assert!(
        out.stderr.contains("pods \"quick\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{}",
        out.stderr
    );
}

#[test]
fn warn_prints_a_warning_and_creates_the_deployment() {
    let s = Skiff::api_only();
    namespace(&s, "loud", &["pod-security.kubernetes.io/warn=restricted"]);
    let out = apply(&s, "loud", &deployment("web")).ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web created");
    assert_eq!(
        out.stderr.trim(),
        format!("Warning: would violate PodSecurity \"restricted:latest\": {PLAIN_VIOLATIONS}")
    );
    s.kubectl("1.33", &["-n", "loud", "get", "deployment", "web"])
        .ok();
    // Pods are warned about too, and created.
    let out = apply(&s, "loud", &pod("p", PLAIN)).ok();
    assert!(
        out.stderr
            .starts_with("Warning: would violate PodSecurity \"restricted:latest\""),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "pod/p created");
}

#[test]
fn audit_annotates_the_audit_event() {
    let s = Skiff::api_only();
    namespace(
        &s,
        "watched",
        &["pod-security.kubernetes.io/audit=baseline"],
    );
    apply(&s, "watched", &pod("hostnet", HOST_NETWORK)).ok();
    let event = eventually(10, "the pod's audit event", || {
        std::fs::read_to_string(s.dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
            .find(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "pods")
    });
    assert_eq!(
        event["annotations"]["pod-security.kubernetes.io/audit-violations"],
        "would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
    );
    assert_eq!(
        event["annotations"]["pod-security.kubernetes.io/enforce-policy"],
        "privileged:latest"
    );
}

#[test]
fn invalid_label_values_are_refused() {
    let s = Skiff::api_only();
    let yaml = "apiVersion: v1
kind: Namespace
metadata:
  name: odd
  labels:
    pod-security.kubernetes.io/enforce: foo
";
    let out = s
        .kubectl_stdin("1.33", &["apply", "-f", "-"], Some(yaml))
        .failed();
    assert_eq!(
        out.stderr.trim(),
        "The Namespace \"odd\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"foo\": must be one of privileged, baseline, restricted"
    );
    namespace(&s, "fine", &[]);
    let out = s
        .kubectl(
            "1.33",
            &[
                "label",
                "namespace",
                "fine",
                "pod-security.kubernetes.io/warn-version=1.30",
            ],
        )
        .failed();
    assert!(
        out.stderr.contains("metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: \"1.30\": must be \"latest\" or \"v1.x\""),
        "{}",
        out.stderr
    );
}

#[test]
fn labelling_a_namespace_with_violating_pods_warns_but_allows() {
    let s = Skiff::api_only();
    namespace(&s, "legacy", &[]);
    apply(&s, "legacy", &pod("hostnet", HOST_NETWORK)).ok();
    apply(&s, "legacy", &pod("plain-a", PLAIN)).ok();
    apply(&s, "legacy", &pod("plain-b", PLAIN)).ok();
    let out = s
        .kubectl(
            "1.33",
            &[
                "label",
                "namespace",
                "legacy",
                "pod-security.kubernetes.io/enforce=restricted",
            ],
        )
        .ok();
    assert_eq!(out.stdout.trim(), "namespace/legacy labeled");
    let warnings: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        warnings,
        [
            "Warning: existing pods in namespace \"legacy\" violate the new PodSecurity enforce level \"restricted:latest\"",
            "Warning: hostnet: host namespaces, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
            "Warning: plain-a (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
        ]
    );
    // The pods stay; changing their labels is not checked, changing an
    // image is.
    s.kubectl(
        "1.33",
        &["-n", "legacy", "label", "pod", "plain-a", "tier=web"],
    )
    .ok();
    let out = s
        .kubectl(
            "1.33",
            &[
                "-n",
                "legacy",
                "set",
                "image",
                "pod/plain-a",
                "c=busybox:1.36",
            ],
        )
        .failed();
    assert!(
        out.stderr.contains("pods \"plain-a\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{}",
        out.stderr
    );
    // Relaxing it again says nothing.
    let out = s
        .kubectl(
            "1.33",
            &[
                "label",
                "--overwrite",
                "namespace",
                "legacy",
                "pod-security.kubernetes.io/enforce=baseline",
            ],
        )
        .ok();
    assert_eq!(out.stderr.trim(), "");
}

#[test]
fn a_deployment_in_a_restricted_namespace_gets_its_pods_refused() {
    let s = Skiff::start();
    namespace(
        &s,
        "locked",
        &["pod-security.kubernetes.io/enforce=restricted"],
    );
    apply(&s, "locked", &deployment("web")).ok();
    let message = eventually(60, "the ReplicaSet's ReplicaFailure condition", || {
        let out = s
            .kubectl(
                "1.33",
                &["-n", "locked", "get", "replicasets", "-o", "json"],
            )
            .ok();
        let list: Value = serde_json::from_str(&out.stdout).expect("JSON");
        list["items"][0]["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ReplicaFailure" && c["reason"] == "FailedCreate")
            .map(|c| c["message"].as_str().unwrap_or_default().to_string())
    });
    assert!(
        message.contains("is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{message}"
    );
    let pods = s
        .kubectl("1.33", &["-n", "locked", "get", "pods", "-o", "name"])
        .ok();
    assert_eq!(pods.stdout.trim(), "");
}
