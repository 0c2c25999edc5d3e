//! Dynamic admission webhooks: a real HTTPS webhook (`tests/webhooks/
//! server.py`, Python's `http.server` behind `ssl`, with a certificate from
//! a CA the test makes) registered with kubectl as Validating- and
//! MutatingWebhookConfigurations, and what kubectl sees: refusals in
//! Kubernetes' words, warnings, patched objects, namespace selectors, and
//! both failure policies once the webhook is gone.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use base64::Engine;
use serde_json::Value;

use crate::harness::{require, Skiff};

/// A running `server.py` with its CA.
struct Hook {
    child: Child,
    port: u16,
    log: PathBuf,
    /// The CA's PEM, base64 (a `caBundle`).
    ca_bundle: String,
    _dir: tempfile::TempDir,
}

impl Hook {
    fn start() -> Hook {
        let python = require("python3", "install Python 3");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "webhook test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::new(ca, &ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        let (cert, key, log) = (
            dir.path().join("tls.crt"),
            dir.path().join("tls.key"),
            dir.path().join("requests.jsonl"),
        );
        std::fs::write(&cert, leaf.pem()).expect("cert");
        std::fs::write(&key, leaf_key.serialize_pem()).expect("key");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks/server.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([&cert, &key, &log])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("server.py said {line:?}"));
        Hook {
            child,
            port,
            log,
            ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca_cert.pem()),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The AdmissionReview requests received so far.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line"))
            .collect()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop();
    }
}

fn validating(hook: &Hook, extra: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: deny
webhooks:
- name: deny.example.com
  sideEffects: None
  admissionReviewVersions: ["v1"]
  clientConfig:
    url: {url}
    caBundle: {ca}
  rules:
  - operations: ["CREATE", "UPDATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["configmaps"]
{extra}"#,
        url = hook.url("/validate"),
        ca = hook.ca_bundle,
    )
}

#[test]
fn validating_webhooks_refuse_warn_and_select_namespaces() {
    let hook = Hook::start();
    let s = Skiff::api_only();
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&validating(&hook, "")))
        .ok();
    let listed = s
        .kubectl("1.33", &["get", "validatingwebhookconfigurations"])
        .ok()
        .stdout;
    let header: Vec<&str> = listed
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "WEBHOOKS", "AGE"], "{listed}");
    assert!(
        listed
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("deny ") && l.split_whitespace().nth(1) == Some("1")),
        "{listed}"
    );

    // Refused, in Kubernetes' words, and nothing stored.
    s.kubectl(
        "1.33",
        &["create", "configmap", "plain", "--from-literal=a=b"],
    )
    .ok();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: refused\n  labels:\n    deny: \"yes\"\n";
    let out = s
        .kubectl_stdin("1.33", &["apply", "-f", "-"], Some(cm))
        .failed();
    assert_eq!(
        out.stderr.trim(),
        "Error from server: error when creating \"STDIN\": admission webhook \"deny.example.com\" denied the request: configmaps labelled deny=yes are not allowed"
    );
    let gone = s.kubectl("1.33", &["get", "configmap", "refused"]).failed();
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);

    // Warnings reach kubectl.
    let warn = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: careful\n  labels:\n    warn: \"yes\"\n";
    let out = s
        .kubectl_stdin("1.33", &["apply", "-f", "-"], Some(warn))
        .ok();
    assert!(
        out.stderr.contains("Warning: careful is labelled warn=yes"),
        "{}",
        out.stderr
    );

    // What the webhook was sent.
    let reqs = hook.requests();
    let sent = reqs
        .iter()
        .map(|r| &r["request"])
        .find(|r| r["name"] == "refused")
        .expect("the refused create was reviewed");
    assert_eq!(sent["operation"], "CREATE");
    assert_eq!(sent["namespace"], "default");
    assert_eq!(sent["kind"]["kind"], "ConfigMap");
    assert_eq!(sent["resource"]["resource"], "configmaps");
    assert_eq!(sent["userInfo"]["username"], "admin");
    assert_eq!(sent["object"]["metadata"]["labels"]["deny"], "yes");
    assert!(sent["oldObject"].is_null());
    assert_eq!(sent["options"]["kind"], "CreateOptions");
    assert!(
        reqs.iter().all(|r| r["path"] == "/validate?timeout=10s"),
        "{reqs:?}"
    );

    // An update is reviewed with the old object too.
    let relabel = s
        .kubectl("1.33", &["label", "configmap", "careful", "deny=yes"])
        .failed();
    assert!(
        relabel
            .stderr
            .contains("admission webhook \"deny.example.com\" denied the request"),
        "{}",
        relabel.stderr
    );
    let update = hook
        .requests()
        .into_iter()
        .map(|r| r["request"].clone())
        .find(|r| r["operation"] == "UPDATE")
        .expect("update reviewed");
    assert_eq!(update["oldObject"]["metadata"]["name"], "careful");

    // Limited to namespaces labelled webhooks=on.
    let selected = "  namespaceSelector:\n    matchLabels:\n      webhooks: \"on\"\n";
    s.kubectl_stdin(
        "1.33",
        &["apply", "-f", "-"],
        Some(&validating(&hook, selected)),
    )
    .ok();
    s.kubectl("1.33", &["create", "namespace", "guarded"]).ok();
    s.kubectl("1.33", &["label", "namespace", "guarded", "webhooks=on"])
        .ok();
    s.kubectl("1.33", &["create", "namespace", "open"]).ok();
    for (ns, allowed) in [("open", true), ("guarded", false), ("default", true)] {
        let out = s.kubectl_stdin("1.33", &["apply", "-n", ns, "-f", "-"], Some(cm));
        assert_eq!(out.code == 0, allowed, "{ns}: {}", out.stderr);
    }

    // A webhook slower than its timeoutSeconds is a failed call.
    let slow = validating(&hook, "  timeoutSeconds: 1\n")
        .replace("name: deny", "name: slow")
        .replace("deny.example.com", "slow.example.com")
        .replace("/validate", "/slow")
        .replace("configmaps", "secrets");
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&slow))
        .ok();
    let out = s
        .kubectl(
            "1.33",
            &["create", "secret", "generic", "late", "--from-literal=a=b"],
        )
        .failed();
    let want = format!(
        "failed calling webhook \"slow.example.com\": failed to call webhook: Post \"https://127.0.0.1:{}/slow?timeout=1s\": context deadline exceeded",
        hook.port
    );
    assert!(out.stderr.contains(&want), "{}", out.stderr);

    s.kubectl(
        "1.33",
        &["delete", "validatingwebhookconfiguration", "deny"],
    )
    .ok();
    s.kubectl_stdin("1.33", &["apply", "-n", "guarded", "-f", "-"], Some(cm))
        .ok();
    s.assert_no_panics();
}

#[test]
fn mutating_webhooks_patch_and_failure_policies_apply() {
    let mut hook = Hook::start();
    let s = Skiff::api_only();
    let mutating = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: label-pods
webhooks:
- name: label.example.com
  sideEffects: None
  admissionReviewVersions: ["v1"]
  failurePolicy: Fail
  clientConfig:
    url: {url}
    caBundle: {ca}
  rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
"#,
        url = hook.url("/mutate"),
        ca = hook.ca_bundle,
    );
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&mutating))
        .ok();
    let listed = s
        .kubectl(
            "1.33",
            &["get", "mutatingwebhookconfigurations", "-o", "name"],
        )
        .ok()
        .stdout;
    assert_eq!(
        listed.trim(),
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/label-pods"
    );
    s.kubectl("1.33", &["run", "web", "--image=example.com/web:1"])
        .ok();
    let labels = s
        .kubectl(
            "1.33",
            &["get", "pod", "web", "-o", "jsonpath={.metadata.labels}"],
        )
        .ok()
        .stdout;
    let labels: Value = serde_json::from_str(&labels).expect("labels");
    assert_eq!(labels["mutated-by"], "skiff-webhook", "{labels}");
    assert_eq!(labels["run"], "web", "{labels}");

    // A refused configuration, with Kubernetes' field paths.
    let bad = mutating
        .replace("label.example.com", "label")
        .replace("  sideEffects: None\n", "")
        .replace("failurePolicy: Fail", "failurePolicy: Sometimes");
    let out = s
        .kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&bad))
        .failed();
    for want in [
        "webhooks[0].name: Invalid value: \"label\": should be a domain with at least three segments separated by dots",
        "webhooks[0].failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Fail\", \"Ignore\"",
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
    ] {
        assert!(out.stderr.contains(want), "{want}\n{}", out.stderr);
    }

    // The webhook goes away: Fail refuses, Ignore lets the pod in.
    let port = hook.port;
    hook.stop();
    let out = s
        .kubectl("1.33", &["run", "refused", "--image=example.com/web:1"])
        .failed();
    assert_eq!(
        out.stderr.trim(),
        format!("Error from server (InternalError): Internal error occurred: failed calling webhook \"label.example.com\": failed to call webhook: Post \"https://127.0.0.1:{port}/mutate?timeout=10s\": dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
    s.kubectl("1.33", &["get", "pod", "refused"]).failed();
    s.kubectl_stdin(
        "1.33",
        &["apply", "-f", "-"],
        Some(&mutating.replace("failurePolicy: Fail", "failurePolicy: Ignore")),
    )
    .ok();
    s.kubectl("1.33", &["run", "admitted", "--image=example.com/web:1"])
        .ok();
    let labels = s
        .kubectl(
            "1.33",
            &[
                "get",
                "pod",
                "admitted",
                "-o",
                "jsonpath={.metadata.labels}",
            ],
        )
        .ok()
        .stdout;
    assert!(!labels.contains("mutated-by"), "{labels}");
    assert!(s.log().contains("Failed calling webhook, failing open"));
    s.assert_no_panics();
}
