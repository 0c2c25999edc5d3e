//! Watch semantics over raw HTTPS: initial events in revision order,
//! selectors, the initial-events-end bookmark and periodic bookmarks.

use serde_json::Value;

use crate::harness::Skiff;

/// The watch's events, leaving out the namespace's `kube-root-ca.crt`
/// (there since the namespace was made, as in Kubernetes; not the test's).
fn events(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).expect("event line is JSON"))
        .filter(|e| e["object"]["metadata"]["name"] != "kube-root-ca.crt")
        .collect()
}

fn create(s: &Skiff, ns: &str, name: &str, labels: &str) {
    let body = format!(r#"{{"metadata":{{"name":"{name}","labels":{labels}}}}}"#);
    let (code, out) = s.curl(
        "POST",
        &format!("/api/v1/namespaces/{ns}/configmaps"),
        Some("application/json"),
        Some(body.as_bytes()),
        true,
    );
    assert_eq!(code, 201, "{out}");
}

#[test]
fn watch_initial_events_selectors_and_bookmarks() {
    let s = Skiff::start();
    for (name, tier) in [("c", "back"), ("a", "front"), ("b", "front")] {
        create(&s, "default", name, &format!(r#"{{"tier":"{tier}"}}"#));
    }
    let base = "/api/v1/namespaces/default/configmaps?watch=1";

    // No resourceVersion: every object as ADDED, in the order written.
    let (_, body) = s.curl("GET", &format!("{base}&timeoutSeconds=1"), None, None, true);
    let evs = events(&body);
    let names: Vec<&str> = evs
        .iter()
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["c", "a", "b"], "{body}");
    assert!(evs.iter().all(|e| e["type"] == "ADDED"));
    let revs: Vec<u64> = evs
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "ascending revisions: {revs:?}"
    );

    // Label and field selectors.
    let (_, body) = s.curl(
        "GET",
        &format!(
            "{base}&timeoutSeconds=1&labelSelector=tier%3Dfront&fieldSelector=metadata.name%21%3Da"
        ),
        None,
        None,
        true,
    );
    let names: Vec<String> = events(&body)
        .iter()
        .map(|e| {
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(names, ["b"], "{body}");
    let (code, body) = s.curl(
        "GET",
        &format!("{base}&fieldSelector=spec.nodeName%3Dx"),
        None,
        None,
        true,
    );
    assert_eq!(code, 400, "configmaps have no spec.nodeName: {body}");

    // Streaming lists: initial events end with an annotated bookmark.
    let (_, body) = s.curl("GET", &format!("{base}&timeoutSeconds=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"), None, None, true);
    let evs = events(&body);
    let last = evs.last().expect("events");
    assert_eq!(last["type"], "BOOKMARK", "{body}");
    assert_eq!(
        last["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(evs.len(), 4);

    // A quiet watch that allows bookmarks gets one carrying a newer
    // revision (here: a write in another namespace).
    let rv: u64 = revs[2];
    create(&s, "kube-public", "elsewhere", "{}");
    let (_, body) = s.curl(
        "GET",
        &format!("{base}&timeoutSeconds=7&allowWatchBookmarks=true&resourceVersion={rv}"),
        None,
        None,
        true,
    );
    let evs = events(&body);
    let bm = evs
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .unwrap_or_else(|| panic!("no bookmark in {body}"));
    let brv: u64 = bm["object"]["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    assert!(brv > rv, "bookmark moves past {rv}: {brv}");
    assert!(
        evs.iter().all(|e| e["type"] == "BOOKMARK"),
        "nothing in this namespace changed: {body}"
    );
}
