//! Against the real API server. No scheduler or node agent runs, so daemon
//! pods stay pinned by affinity only, and the tests mark them Ready.

use super::*;
use crate::replicaset::tests::support::{eventually, kubelet, set_ready};
use crate::testing::{cluster, Cluster};
use kube::api::{ListParams, PostParams};
use std::time::Duration;

fn daemonset(name: &str, extra_spec: serde_json::Value) -> DaemonSet {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example.com/agent:1"}]}
            }
        }
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra_spec.as_object()) {
        for (k, e) in extra {
            spec.insert(k.clone(), e.clone());
        }
    }
    serde_json::from_value(v).unwrap()
}

fn start(c: &Cluster) {
    let client = c.client.clone();
    tokio::spawn(async move {
        if let Err(e) = run(client).await {
            panic!("daemonset controller: {e}");
        }
    });
}

/// The DaemonSet's live pods by target node.
async fn pods_by_node(client: &Client, ds: &str) -> Vec<(String, Pod)> {
    let mut v: Vec<(String, Pod)> = Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            controller_of(&p.metadata).is_some_and(|o| o.name == ds && o.kind == "DaemonSet")
                && p.metadata.deletion_timestamp.is_none()
        })
        .map(|p| (nodes::target_node(&p).unwrap().to_string(), p))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

async fn wait_nodes(client: &Client, ds: &str, want: &[&str]) -> Vec<(String, Pod)> {
    eventually(20, &format!("{ds} pods on {want:?}"), || async {
        let pods = pods_by_node(client, ds).await;
        let on: Vec<&str> = pods.iter().map(|(n, _)| n.as_str()).collect();
        (on == want).then_some(pods)
    })
    .await
}

async fn wait_status(
    client: &Client,
    name: &str,
    check: impl Fn(&DaemonSetStatus) -> bool,
) -> DaemonSetStatus {
    let api = Api::<DaemonSet>::namespaced(client.clone(), "default");
    eventually(20, &format!("{name} status"), || {
        let api = api.clone();
        let check = &check;
        async move { api.get(name).await.ok()?.status.filter(|s| check(s)) }
    })
    .await
}

#[tokio::test]
async fn one_pod_per_matching_node_and_late_nodes_get_one() {
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    c.node("a", json!({"role": "edge"}), &[]).await;
    c.node("b", json!({"role": "edge"}), &[]).await;
    c.node("core", json!({"role": "core"}), &[]).await;
    start(&c);
    let api = Api::<DaemonSet>::namespaced(c.client.clone(), "default");
    let created = api
        .create(
            &PostParams::default(),
            &daemonset(
                "agent",
                json!({"template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": {"role": "edge"},
                         "containers": [{"name": "c", "image": "example.com/agent:1"}]}}}),
            ),
        )
        .await
        .unwrap();
    let pods = wait_nodes(&c.client, "agent", &["a", "b"]).await;
    for (node, p) in &pods {
        let labels = p.metadata.labels.as_ref().unwrap();
        assert!(labels.contains_key(nodes::REVISION_HASH_LABEL));
        assert_eq!(labels[nodes::TEMPLATE_GENERATION_LABEL], "1");
        assert_eq!(
            controller_of(&p.metadata).unwrap().uid,
            created.metadata.uid.clone().unwrap()
        );
        // Bound by the scheduler through matchFields, not by the controller.
        assert!(p.spec.as_ref().unwrap().node_name.is_none(), "{node}");
    }
    let s = wait_status(&c.client, "agent", |s| s.number_available == Some(2)).await;
    assert_eq!(s.desired_number_scheduled, 2);
    assert_eq!(s.current_number_scheduled, 2);
    assert_eq!(s.number_ready, 2);
    assert_eq!(s.updated_number_scheduled, Some(2));
    assert_eq!(s.number_misscheduled, 0);
    assert_eq!(s.observed_generation, Some(1));
    // Steady state: nothing is rewritten in a loop.
    let rv = api.get("agent").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.get("agent").await.unwrap().metadata.resource_version,
        rv
    );

    // A node that joins later gets its daemon.
    c.node("c", json!({"role": "edge"}), &[]).await;
    wait_nodes(&c.client, "agent", &["a", "b", "c"]).await;
    // A node relabelled out of the selector loses it.
    Api::<Node>::all(c.client.clone())
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"role": "core"}}})),
        )
        .await
        .unwrap();
    wait_nodes(&c.client, "agent", &["b", "c"]).await;
    // A deleted node loses it too.
    Api::<Node>::all(c.client.clone())
        .delete("c", &Default::default())
        .await
        .unwrap();
    wait_nodes(&c.client, "agent", &["b"]).await;
    wait_status(&c.client, "agent", |s| {
        s.desired_number_scheduled == 1 && s.number_available == Some(1)
    })
    .await;
}

#[tokio::test]
async fn a_tainted_node_gets_no_pod_without_a_toleration() {
    let c = cluster().await;
    c.node("plain", json!({}), &[]).await;
    c.node("gpu", json!({}), &[]).await;
    Api::<Node>::all(c.client.clone())
        .patch(
            "gpu",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}})),
        )
        .await
        .unwrap();
    // Cordoned: daemons tolerate node.kubernetes.io/unschedulable.
    c.node("cordoned", json!({}), &[]).await;
    Api::<Node>::all(c.client.clone())
        .patch(
            "cordoned",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true, "taints": [
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}})),
        )
        .await
        .unwrap();
    start(&c);
    let api = Api::<DaemonSet>::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &daemonset("logs", json!({})))
        .await
        .unwrap();
    let tolerant = daemonset(
        "gpu-agent",
        json!({"template": {
        "metadata": {"labels": {"app": "gpu-agent"}},
        "spec": {"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                 "containers": [{"name": "c", "image": "example.com/agent:1"}]}}}),
    );
    api.create(&PostParams::default(), &tolerant).await.unwrap();
    wait_nodes(&c.client, "logs", &["cordoned", "plain"]).await;
    wait_nodes(&c.client, "gpu-agent", &["cordoned", "gpu", "plain"]).await;
    let s = wait_status(&c.client, "logs", |s| s.desired_number_scheduled == 2).await;
    assert_eq!(s.current_number_scheduled, 2);
    // Tainting a node with NoExecute evicts a daemon that does not tolerate it.
    Api::<Node>::all(c.client.clone())
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
                {"key": "maintenance", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    wait_nodes(&c.client, "logs", &["cordoned"]).await;
}

/// Every live pod of the DaemonSet with its revision hash.
async fn revisions(client: &Client) -> Vec<(String, String, String)> {
    pods_by_node(client, "agent")
        .await
        .into_iter()
        .map(|(node, p)| {
            let hash = p.metadata.labels.as_ref().unwrap()[nodes::REVISION_HASH_LABEL].clone();
            (node, hash, p.metadata.name.unwrap())
        })
        .collect()
}

#[tokio::test]
async fn rolling_update_replaces_one_node_at_a_time_with_max_unavailable_1() {
    let c = cluster().await;
    for n in ["a", "b", "c"] {
        c.node(n, json!({}), &[]).await;
    }
    start(&c);
    let api = Api::<DaemonSet>::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &daemonset(
            "agent",
            json!({"updateStrategy": {"type": "RollingUpdate",
                                   "rollingUpdate": {"maxUnavailable": 1}}}),
        ),
    )
    .await
    .unwrap();
    for (_, p) in wait_nodes(&c.client, "agent", &["a", "b", "c"]).await {
        set_ready(
            &c.client,
            "default",
            p.metadata.name.as_deref().unwrap(),
            true,
        )
        .await
        .unwrap();
    }
    let old = wait_status(&c.client, "agent", |s| s.number_available == Some(3)).await;
    assert_eq!(old.updated_number_scheduled, Some(3));
    let old_hash = revisions(&c.client).await[0].1.clone();
    api.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "example.com/agent:2"}]}}}})),
    )
    .await
    .unwrap();
    // Three rounds: one old pod goes, its replacement comes; until the
    // replacement is Ready no other old pod is touched.
    for round in 1..=3usize {
        let fresh = eventually(20, &format!("replacement {round}"), || async {
            let r = revisions(&c.client).await;
            let new: Vec<_> = r
                .iter()
                .filter(|(_, h, _)| *h != old_hash)
                .cloned()
                .collect();
            (new.len() == round && r.len() == 3).then_some(new)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = revisions(&c.client).await;
        let still_old = r.iter().filter(|(_, h, _)| *h == old_hash).count();
        assert_eq!(still_old, 3 - round, "maxUnavailable 1 was exceeded: {r:?}");
        for (_, _, name) in fresh {
            set_ready(&c.client, "default", &name, true).await.unwrap();
        }
    }
    let s = wait_status(&c.client, "agent", |s| {
        s.updated_number_scheduled == Some(3) && s.number_available == Some(3)
    })
    .await;
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(s.desired_number_scheduled, 3);
    // The history kubectl rollout history reads: revision 1 is the old
    // template, 2 the new one.
    let new_hash = revisions(&c.client).await[0].1.clone();
    let crs = Api::<ControllerRevision>::namespaced(c.client.clone(), "default");
    let history = eventually(20, "two revisions", || async {
        let mut v: Vec<(i64, String)> = crs
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .map(|r| (r.revision, r.metadata.name.unwrap()))
            .collect();
        v.sort();
        (v.len() == 2).then_some(v)
    })
    .await;
    assert_eq!(
        history,
        [
            (1, format!("agent-{old_hash}")),
            (2, format!("agent-{new_hash}"))
        ]
    );
    // kubectl rollout undo: apply revision 1's data as a strategic merge
    // patch; revision 1 becomes revision 3 and the pods go back.
    let old_rev = crs.get(&format!("agent-{old_hash}")).await.unwrap();
    api.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Strategic(old_rev.data.unwrap().0),
    )
    .await
    .unwrap();
    eventually(20, "revision 1 renumbered 3", || async {
        let r = crs.get(&format!("agent-{old_hash}")).await.ok()?;
        (r.revision == 3).then_some(())
    })
    .await;
    eventually(20, "an old-template pod again", || async {
        let r = revisions(&c.client).await;
        r.iter().any(|(_, h, _)| *h == old_hash).then_some(())
    })
    .await;
}
