//! The scheduler against the real API server (in-process).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::{run, Config};
use crate::testing::{cluster, Cluster};

async fn start() -> Cluster {
    let c = cluster().await;
    tokio::spawn(run(c.client.clone(), Config::default()));
    c
}

async fn runtime_class(c: &Cluster, body: Value) {
    let rc: RuntimeClass = serde_json::from_value(body).expect("runtime class");
    Api::<RuntimeClass>::all(c.client.clone())
        .create(&PostParams::default(), &rc)
        .await
        .expect("create runtime class");
}

async fn pod(c: &Cluster, name: &str, spec: Value) {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "x", "resources": spec.get("resources").cloned().unwrap_or(json!({}))}]);
    if let Some(s) = spec.as_object_mut() {
        s.remove("resources");
    }
    let p: Pod =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("pod");
    Api::<Pod>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &p)
        .await
        .expect("create pod");
}

/// Poll a pod until `f` says yes; fail after ten seconds.
async fn until(c: &Cluster, name: &str, what: &str, f: impl Fn(&Pod) -> bool) -> Pod {
    let api = Api::<Pod>::namespaced(c.client.clone(), "default");
    for _ in 0..200 {
        let p = api.get(name).await.expect("get pod");
        if f(&p) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for pod {name}: {what}");
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

async fn bound(c: &Cluster, name: &str) -> String {
    let p = until(c, name, "bound", |p| node_of(p).is_some()).await;
    node_of(&p).unwrap_or_default().to_string()
}

fn scheduled_condition(p: &Pod) -> Option<(String, String, String)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

#[tokio::test]
async fn runtime_class_pods_land_only_on_labelled_nodes_with_the_handler() {
    let c = start().await;
    c.node("both", json!({"skiff.dev/wasm": "true"}), &["wasmtime"])
        .await;
    c.node("label-only", json!({"skiff.dev/wasm": "true"}), &[])
        .await;
    c.node("handler-only", json!({}), &["wasmtime"]).await;
    runtime_class(
        &c,
        json!({"metadata": {"name": "wasm"}, "handler": "wasmtime",
        "scheduling": {"nodeSelector": {"skiff.dev/wasm": "true"}}}),
    )
    .await;
    for i in 0..4 {
        pod(&c, &format!("w{i}"), json!({"runtimeClassName": "wasm"})).await;
    }
    for i in 0..4 {
        assert_eq!(bound(&c, &format!("w{i}")).await, "both");
    }
}

#[tokio::test]
async fn a_full_node_sends_the_next_pod_elsewhere() {
    // Each test node has 4 CPUs; two 3-CPU pods cannot share one, and the
    // second is placed before the first binding is even confirmed.
    let c = start().await;
    c.node("a", json!({}), &[]).await;
    c.node("b", json!({}), &[]).await;
    let big = json!({"resources": {"requests": {"cpu": "3"}}});
    pod(&c, "big-1", big.clone()).await;
    pod(&c, "big-2", big.clone()).await;
    let (n1, n2) = (bound(&c, "big-1").await, bound(&c, "big-2").await);
    assert_ne!(n1, n2);
    pod(&c, "big-3", big).await;
    let p = until(&c, "big-3", "reported unschedulable", |p| {
        scheduled_condition(p).is_some()
    })
    .await;
    assert_eq!(
        scheduled_condition(&p).map(|c| c.2),
        Some("0/2 nodes are available: 2 Insufficient cpu.".to_string())
    );
}

#[tokio::test]
async fn unschedulable_pod_names_reasons_then_binds_when_a_node_fits() {
    let c = start().await;
    runtime_class(
        &c,
        json!({"metadata": {"name": "wasm"}, "handler": "wasmtime"}),
    )
    .await;
    c.node("x", json!({"zone": "x"}), &["wasmtime"]).await;
    c.node("y1", json!({"zone": "y"}), &[]).await;
    c.node("y2", json!({"zone": "y"}), &[]).await;
    pod(
        &c,
        "p",
        json!({"runtimeClassName": "wasm", "nodeSelector": {"zone": "y"}}),
    )
    .await;
    let p = until(&c, "p", "reported unschedulable", |p| {
        scheduled_condition(p).is_some()
    })
    .await;
    assert_eq!(
        scheduled_condition(&p),
        Some((
            "False".into(),
            "Unschedulable".into(),
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) lack runtime handler \"wasmtime\".".into()
        ))
    );
    assert_eq!(node_of(&p), None);
    c.node("y3", json!({"zone": "y"}), &["wasmtime"]).await;
    assert_eq!(bound(&c, "p").await, "y3");
    let p = until(&c, "p", "PodScheduled=True", |p| {
        scheduled_condition(p).is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(node_of(&p), Some("y3"));
}

#[tokio::test]
async fn tainted_node_takes_only_tolerating_pods() {
    let c = start().await;
    c.node("tainted", json!({"pool": "gpu"}), &[]).await;
    c.node("clean", json!({}), &[]).await;
    Api::<Node>::all(c.client.clone())
        .patch(
            "tainted",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}})),
        )
        .await
        .expect("taint");
    // Give the watch a moment to see the taint before pods arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        pod(&c, &format!("plain-{i}"), json!({})).await;
    }
    for i in 0..3 {
        assert_eq!(bound(&c, &format!("plain-{i}")).await, "clean");
    }
    pod(&c, "picky", json!({"nodeSelector": {"pool": "gpu"}})).await;
    let p = until(&c, "picky", "reported unschedulable", |p| {
        scheduled_condition(p).is_some()
    })
    .await;
    assert_eq!(
        scheduled_condition(&p).map(|c| c.2),
        Some("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}.".to_string())
    );
    pod(&c, "tolerant", json!({"nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}))
    .await;
    assert_eq!(bound(&c, "tolerant").await, "tainted");
}

#[tokio::test]
async fn pods_for_another_scheduler_are_left_alone() {
    let c = start().await;
    c.node("a", json!({}), &[]).await;
    pod(&c, "other", json!({"schedulerName": "someone-else"})).await;
    pod(&c, "mine", json!({})).await;
    assert_eq!(bound(&c, "mine").await, "a");
    let p = Api::<Pod>::namespaced(c.client.clone(), "default")
        .get("other")
        .await
        .expect("get");
    assert_eq!(node_of(&p), None);
}

#[tokio::test]
async fn bench_binds_every_pod() {
    // Small and untimed: it checks the benchmark works, not how fast.
    let c = cluster().await;
    let report = super::bench::bench(c.client.clone(), 5, 40)
        .await
        .expect("bench");
    assert_eq!(report.bound, 40);
    assert!(report.binds_per_sec > 0.0);
}
