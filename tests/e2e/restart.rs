//! Restarting on the same data directory keeps everything, and
//! resourceVersions continue.

use crate::harness::Skiff;

#[test]
fn restart_keeps_objects_and_revisions_continue() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).expect("data dir");
    let mut s = Skiff::start_in(&dir);
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
    s.kill();

    let s = Skiff::start_in(&dir);
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
        .kubectl("1.33", &["get", "namespaces", "-o", "name"])
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
