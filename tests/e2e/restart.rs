//! Restarting on the same data directory keeps everything, and
//! resourceVersions continue.

use serde_json::Value;

use crate::harness::Skiff;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: kept
  namespace: keep
spec:
  replicas: 2
  selector:
    matchLabels: {app: kept}
  template:
    metadata:
      labels: {app: kept}
    spec:
      containers:
      - name: c
        image: registry.local/kept:1
"#;

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("numeric resourceVersion in {v}"))
}

/// The API server alone: no controller writes between the snapshot taken
/// before the kill and the one after the restart.
#[test]
fn restart_keeps_objects_and_revisions_continue() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).expect("data dir");
    let mut s = Skiff::start_in_with(&dir, &["--api-only"]);
    s.kubectl("1.33", &["create", "namespace", "keep"]).ok();
    s.kubectl(
        "1.33",
        &[
            "-n",
            "keep",
            "create",
            "configmap",
            "a",
            "--from-literal=k=v",
        ],
    )
    .ok();
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(DEPLOYMENT))
        .ok();
    s.kubectl(
        "1.33",
        &["-n", "keep", "scale", "deployment", "kept", "--replicas=3"],
    )
    .ok();
    let deploy_before = s.get_json("/apis/apps/v1/namespaces/keep/deployments/kept");
    // A user's kubeconfig copied before the restart must keep working: the
    // CA and the admin token are state, not regenerated per run.
    let old_kubeconfig = tmp.path().join("kubeconfig-before.yaml");
    std::fs::copy(s.kubeconfig(), &old_kubeconfig).expect("copy kubeconfig");
    let last = s.get_json("/api/v1/namespaces/keep/configmaps/a")["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse::<u64>()
        .expect("numeric resourceVersion");
    let list_rv: u64 = s.get_json("/api/v1/configmaps")["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("number");
    // SIGKILL: an acknowledged write must already be on disk.
    let addr = s.addr();
    s.kill();

    let s = Skiff::start_in_with(&dir, &["--listen", &addr, "--api-only"]);
    let deploy_after = s.get_json("/apis/apps/v1/namespaces/keep/deployments/kept");
    for field in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
        assert_eq!(
            deploy_after["metadata"][field], deploy_before["metadata"][field],
            "metadata.{field} survives a restart"
        );
    }
    assert_eq!(deploy_after["spec"], deploy_before["spec"]);
    assert_eq!(deploy_after["spec"]["replicas"], 3);
    let a = s.get_json("/api/v1/namespaces/keep/configmaps/a");
    assert_eq!(a["data"]["k"], "v");
    assert_eq!(
        a["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse::<u64>().ok()),
        Some(last)
    );
    s.kubectl(
        "1.27",
        &[
            "-n",
            "keep",
            "create",
            "configmap",
            "b",
            "--from-literal=k=v",
        ],
    )
    .ok();
    let b: u64 = s.get_json("/api/v1/namespaces/keep/configmaps/b")["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("number");
    assert!(
        b > last && b > list_rv,
        "revisions continue after a restart: {b} after {last}/{list_rv}"
    );
    let names = s
        .kubectl_with(
            "1.33",
            &old_kubeconfig,
            &["get", "namespaces", "-o", "name"],
            None,
        )
        .ok()
        .stdout;
    assert!(
        names.contains("namespace/keep") && names.contains("namespace/kube-system"),
        "{names}"
    );
}

#[test]
fn watch_from_before_a_restart_gets_410_expired_then_relist_works() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).expect("data dir");
    let mut s = Skiff::start_in(&dir);
    s.kubectl(
        "1.33",
        &["create", "configmap", "before", "--from-literal=k=v"],
    )
    .ok();
    s.kill();
    let s = Skiff::start_in(&dir);
    // The watch history starts at the restart: revision 1 is gone.
    let (code, body) = s.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1&timeoutSeconds=2",
        None,
        None,
        true,
    );
    assert_eq!(code, 200, "{body}");
    let first: serde_json::Value =
        serde_json::from_str(body.lines().next().expect("one event")).expect("event JSON");
    assert_eq!(first["type"], "ERROR", "{body}");
    assert_eq!(first["object"]["kind"], "Status");
    assert_eq!(first["object"]["code"], 410);
    assert_eq!(first["object"]["reason"], "Expired");
    // A relist gives a revision the watch can resume from.
    let rv = s.get_json("/api/v1/namespaces/default/configmaps")["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let (code, body) = s.curl(
        "GET",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1"
        ),
        None,
        None,
        true,
    );
    assert_eq!(
        (code, body.trim()),
        (200, ""),
        "no events and no error after a fresh list"
    );
}

#[test]
fn graceful_stop_exits_zero_and_a_restart_serves_everything() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let mut s = Skiff::start_in(&dir);
    let mut seen = 0;
    for i in 0..20 {
        s.kubectl(
            if i % 2 == 0 { "1.27" } else { "1.33" },
            &[
                "create",
                "configmap",
                &format!("c{i}"),
                "--from-literal=k=v",
            ],
        )
        .ok();
    }
    for item in s.get_json("/api/v1/namespaces/default/configmaps")["items"]
        .as_array()
        .expect("items")
    {
        seen = seen.max(rv(item));
    }
    let status = s.stop();
    assert!(status.success(), "skiff up exits 0 on Ctrl-C: {status}");

    let s = Skiff::start_in(&dir);
    let list = s.get_json("/api/v1/namespaces/default/configmaps");
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    names.sort_by_key(|n| n.trim_start_matches('c').parse::<u32>().unwrap_or(u32::MAX));
    let want: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    assert_eq!(names, want, "every acknowledged write survives");
    assert!(
        rv(&list) >= seen,
        "a list after restart is not behind: {list}"
    );
    let (code, body) = s.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("application/json"),
        Some(br#"{"metadata":{"name":"after"}}"#),
        true,
    );
    assert_eq!(code, 201, "{body}");
    let after: Value = serde_json::from_str(&body).expect("created");
    assert!(
        rv(&after) > seen,
        "a new write after restart gets a higher resourceVersion: {} vs {seen}",
        rv(&after)
    );
    s.assert_no_panics();
}
