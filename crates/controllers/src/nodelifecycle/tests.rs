//! Against the real API server, with no node agent: the tests renew (and
//! stop renewing) node Leases and post Ready themselves.

use super::*;
use crate::replicaset::tests::support::eventually;
use crate::testing::{cluster, Cluster};
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, PostParams};

fn fast() -> Config {
    Config {
        grace: Duration::from_secs(2),
        default_toleration_seconds: 300,
        monitor_period: Duration::from_millis(200),
    }
}

fn start(c: &Cluster, cfg: Config) {
    let client = c.client.clone();
    tokio::spawn(async move {
        if let Err(e) = run(client, cfg).await {
            panic!("node lifecycle controller: {e:#}");
        }
    });
}

/// Renew `node`'s Lease every 200 ms until the handle is aborted, as the
/// node agent does every 10 s.
fn renew_lease(client: &Client, node: &str) -> tokio::task::JoinHandle<()> {
    let api = Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE);
    let node = node.to_string();
    tokio::spawn(async move {
        loop {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now},
            }))
            .unwrap();
            if api.create(&PostParams::default(), &lease).await.is_err() {
                let patch = json!({"spec": {"renewTime": now}});
                let _ = api
                    .patch(&node, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Post Ready=True with a fresh heartbeat, as a returning kubelet does.
async fn post_ready(client: &Client, node: &str) {
    let now = chrono::Utc::now().to_rfc3339();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    Api::<Node>::all(client.clone())
        .patch_status(node, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn bound_pod(client: &Client, name: &str, node: &str, tolerations: serde_json::Value) -> Pod {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "tolerations": tolerations,
                 "containers": [{"name": "c", "image": "example.com/app:1"}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap()
}

async fn get_pod(client: &Client, name: &str) -> Option<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .get_opt(name)
        .await
        .unwrap()
}

/// Whether the pod is being (or has been) deleted.
async fn evicted(client: &Client, name: &str) -> bool {
    get_pod(client, name)
        .await
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

async fn node_taints(client: &Client, node: &str) -> Vec<String> {
    let n = Api::<Node>::all(client.clone()).get(node).await.unwrap();
    taints_of(&n)
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}

fn toleration(key: &str, seconds: i64) -> serde_json::Value {
    json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds})
}

async fn event_reasons(client: &Client, ns: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test]
async fn silent_node_becomes_unknown_and_unreachable_pods_are_evicted_by_toleration() {
    let c = cluster().await;
    c.node("n1", json!({}), &[]).await;
    let renewer = renew_lease(&c.client, "n1");
    start(&c, fast());
    // A: tolerates unreachable for 0 s (evicted at once); B: for 2 s;
    // C: the API server's default 300 s.
    bound_pod(
        &c.client,
        "a",
        "n1",
        json!([toleration(health::UNREACHABLE, 0)]),
    )
    .await;
    bound_pod(
        &c.client,
        "b",
        "n1",
        json!([toleration(health::UNREACHABLE, 2)]),
    )
    .await;
    let cpod = bound_pod(&c.client, "c", "n1", json!([])).await;
    let defaulted = cpod.spec.unwrap().tolerations.unwrap_or_default();
    assert!(
        defaulted
            .iter()
            .any(|t| t.key.as_deref() == Some(health::UNREACHABLE)
                && t.toleration_seconds == Some(300)),
        "DefaultTolerationSeconds admission: {defaulted:?}"
    );

    // The Lease alone keeps the node alive well past the grace period,
    // though its Ready heartbeat never moves.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(node_taints(&c.client, "n1").await.is_empty());
    assert!(!evicted(&c.client, "a").await);

    renewer.abort();
    let tainted_at = eventually(10, "the unreachable taints", || async {
        let t = node_taints(&c.client, "n1").await;
        let both = t.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
            && t.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string());
        both.then(std::time::Instant::now)
    })
    .await;
    let node = Api::<Node>::all(c.client.clone()).get("n1").await.unwrap();
    let ready = conditions_of(&node)
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "Unknown");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );

    eventually(1, "pod a evicted at once", || async {
        evicted(&c.client, "a").await.then_some(())
    })
    .await;
    assert!(!evicted(&c.client, "b").await, "b tolerates for 2 s");
    eventually(5, "pod b evicted after 2 s", || async {
        evicted(&c.client, "b").await.then_some(())
    })
    .await;
    let waited = tainted_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "b went after {waited:?}"
    );
    assert!(!evicted(&c.client, "c").await, "c tolerates for 300 s");

    // The evicted pod says why, and so do the events.
    let a = get_pod(&c.client, "a").await.unwrap();
    let conds = a.status.unwrap().conditions.unwrap();
    let dt = conds
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .unwrap();
    assert_eq!(dt.reason.as_deref(), Some("DeletionByTaintManager"));
    // The pods on the dark node are no longer Ready.
    let cp = get_pod(&c.client, "c").await.unwrap();
    let cready = cp.status.unwrap().conditions.unwrap();
    assert!(cready
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "False"));
    eventually(5, "the events", || async {
        let r = event_reasons(&c.client, "default").await;
        (r.contains(&"NodeNotReady".into()) && r.contains(&"TaintManagerEviction".into()))
            .then_some(())
    })
    .await;

    // The kubelet comes back: the taints go, and c stays.
    let _renewer = renew_lease(&c.client, "n1");
    post_ready(&c.client, "n1").await;
    eventually(5, "the taints removed", || async {
        node_taints(&c.client, "n1").await.is_empty().then_some(())
    })
    .await;
    assert!(!evicted(&c.client, "c").await);
}

#[tokio::test]
async fn a_not_ready_node_is_tainted_not_ready() {
    let c = cluster().await;
    c.node("n2", json!({}), &[]).await;
    let _renewer = renew_lease(&c.client, "n2");
    start(&c, fast());
    let now = chrono::Utc::now().to_rfc3339();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "False",
        "reason": "KubeletNotReady", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    Api::<Node>::all(c.client.clone())
        .patch_status("n2", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    eventually(5, "the not-ready taints", || async {
        let t = node_taints(&c.client, "n2").await;
        (t.len() == 2
            && t.iter()
                .all(|t| t.starts_with("node.kubernetes.io/not-ready:")))
        .then_some(())
    })
    .await;
    post_ready(&c.client, "n2").await;
    eventually(5, "the taints removed", || async {
        node_taints(&c.client, "n2").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_untolerated_no_execute_taint_evicts_at_once_and_spares_tolerating_pods() {
    // The taint manager acts on any NoExecute taint, e.g. `kubectl taint
    // node n3 dedicated=db:NoExecute`.
    let c = cluster().await;
    c.node("n3", json!({}), &[]).await;
    let _renewer = renew_lease(&c.client, "n3");
    start(&c, fast());
    bound_pod(&c.client, "plain", "n3", json!([])).await;
    bound_pod(
        &c.client,
        "db",
        "n3",
        json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
    )
    .await;
    let patch =
        json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]}});
    Api::<Node>::all(c.client.clone())
        .patch("n3", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(3, "the untolerating pod evicted", || async {
        evicted(&c.client, "plain").await.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !evicted(&c.client, "db").await,
        "db tolerates the taint for good"
    );
}
