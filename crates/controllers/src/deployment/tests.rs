//! Against the real API server, with the ReplicaSet controller running and
//! [`support::kubelet`] standing in for node agents.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::json;

use super::util::*;
use crate::hash::pod_template_hash;
use crate::reconcile::controller_of;
use crate::replicaset::tests::support::{eventually, kubelet};
use crate::testing::{cluster, Cluster};

async fn start(c: &Cluster) -> tokio::task::JoinHandle<()> {
    start_controllers(c);
    kubelet(c.client.clone())
}

/// The two controllers without a stand-in node agent: pods never run.
fn start_controllers(c: &Cluster) {
    let (a, b) = (c.client.clone(), c.client.clone());
    tokio::spawn(async move {
        if let Err(e) = crate::replicaset::run(a).await {
            panic!("replicaset controller: {e}");
        }
    });
    tokio::spawn(async move {
        if let Err(e) = super::run(b).await {
            panic!("deployment controller: {e}");
        }
    });
}

fn deployment(name: &str, replicas: i32, image: &str, extra: serde_json::Value) -> Deployment {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default",
                     "annotations": {"kubernetes.io/change-cause": format!("image {image}")}},
        "spec": spec,
    }))
    .unwrap()
}

fn api(c: &Cluster) -> Api<Deployment> {
    Api::namespaced(c.client.clone(), "default")
}

/// Patch the Deployment, retrying conflicts: skiff's API server does not
/// yet retry a patch internally when a controller's write lands first.
async fn patch(c: &Cluster, name: &str, body: serde_json::Value) {
    for _ in 0..50 {
        match api(c)
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => panic!("patch {name}: {e}"),
        }
    }
    panic!("patch {name}: conflicts did not stop");
}

async fn set_image(c: &Cluster, name: &str, image: &str) {
    let patch = json!({
        "metadata": {"annotations": {"kubernetes.io/change-cause": format!("image {image}")}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    });
    self::patch(c, name, patch).await;
}

/// The ReplicaSets the Deployment controls, lowest revision first
/// (creation times only have second precision).
async fn replicasets(client: &Client, d: &Deployment) -> Vec<ReplicaSet> {
    let mut rss: Vec<ReplicaSet> = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|rs| controller_of(&rs.metadata).map(|o| &o.uid) == d.metadata.uid.as_ref())
        .collect();
    rss.sort_by(by_revision);
    rss
}

/// What `kubectl rollout status` waits for, plus Available.
async fn wait_rolled_out(c: &Cluster, name: &str) -> Deployment {
    let api = api(c);
    eventually(30, &format!("{name} rolled out"), || {
        let api = api.clone();
        async move {
            let d = api.get(name).await.ok()?;
            let s = d.status.clone()?;
            let r = replicas(&d);
            let done = s.observed_generation >= d.metadata.generation
                && s.updated_replicas == Some(r)
                && s.replicas == Some(r)
                && s.available_replicas == Some(r)
                && condition(&s, "Progressing")?.reason.as_deref()
                    == Some("NewReplicaSetAvailable")
                && condition(&s, "Available")?.status == "True";
            done.then_some(d)
        }
    })
    .await
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test]
async fn a_new_deployment_gets_a_hashed_replicaset_revision_1_and_completes() {
    let c = cluster().await;
    let _k = start(&c).await;
    let d = api(&c)
        .create(
            &PostParams::default(),
            &deployment("web", 3, "app:1", json!({})),
        )
        .await
        .unwrap();
    let done = wait_rolled_out(&c, "web").await;
    let hash = pod_template_hash(&d.spec.as_ref().unwrap().template, None);
    let rss = replicasets(&c.client, &d).await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
        hash
    );
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(
        spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
        hash
    );
    assert_eq!(
        spec.template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()[POD_TEMPLATE_HASH],
        hash
    );
    assert_eq!(annotation(rs, REVISION), Some("1"));
    assert_eq!(annotation(rs, DESIRED_REPLICAS), Some("3"));
    assert_eq!(annotation(rs, MAX_REPLICAS), Some("4")); // 25% of 3 rounds up to 1
    assert_eq!(
        annotation(rs, "kubernetes.io/change-cause"),
        Some("image app:1")
    );
    assert_eq!(done.metadata.annotations.as_ref().unwrap()[REVISION], "1");
    let s = done.status.unwrap();
    assert_eq!(s.ready_replicas, Some(3));
    assert_eq!(s.unavailable_replicas, Some(0));
    assert_eq!(
        condition(&s, "Available").unwrap().reason.as_deref(),
        Some("MinimumReplicasAvailable")
    );
    let pods = Api::<Pod>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 3);
    assert!(pods
        .items
        .iter()
        .all(|p| p.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH] == hash));
}

/// What [`observe_bounds`] saw: bound violations, and how many events had
/// two ReplicaSets with replicas at once (so a test knows it saw a rolling
/// update and not a jump).
struct Observed {
    violations: Arc<Mutex<Vec<String>>>,
    mixed: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

/// Watch the Deployment's ReplicaSets and check the rolling-update bounds
/// after every event.
fn observe_bounds(client: Client, max_total: i32, min_available: i32) -> Observed {
    let violations = Arc::new(Mutex::new(Vec::new()));
    let mixed = Arc::new(Mutex::new(0usize));
    let (v, m) = (violations.clone(), mixed.clone());
    let task = tokio::spawn(async move {
        let api = Api::<ReplicaSet>::namespaced(client, "default");
        let mut seen: HashMap<String, ReplicaSet> = HashMap::new();
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(Ok(rs)) = events.next().await {
            seen.insert(rs.metadata.name.clone().unwrap(), rs);
            let all: Vec<&ReplicaSet> = seen.values().collect();
            let (total, available) = (spec_total(&all), available_total(&all));
            if all.iter().filter(|rs| rs_replicas(rs) > 0).count() > 1 {
                *m.lock().unwrap() += 1;
            }
            if total > max_total || available < min_available {
                v.lock()
                    .unwrap()
                    .push(format!("spec total {total}, available {available}"));
            }
        }
    });
    Observed {
        violations,
        mixed,
        task,
    }
}

#[tokio::test]
async fn a_template_change_rolls_within_max_surge_and_max_unavailable() {
    let c = cluster().await;
    let _k = start(&c).await;
    let strategy = json!({"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}});
    let d = api(&c)
        .create(
            &PostParams::default(),
            &deployment("web", 10, "app:1", strategy),
        )
        .await
        .unwrap();
    wait_rolled_out(&c, "web").await;
    // 25% of 10: surge rounds up to 3, unavailable down to 2.
    let Observed {
        violations,
        mixed,
        task: observer,
    } = observe_bounds(c.client.clone(), 13, 8);
    tokio::time::sleep(Duration::from_millis(200)).await;
    set_image(&c, "web", "app:2").await;
    let done = wait_rolled_out(&c, "web").await;
    observer.abort();
    assert!(
        violations.lock().unwrap().is_empty(),
        "{:?}",
        violations.lock().unwrap()
    );
    assert!(*mixed.lock().unwrap() > 3, "the rollout went in steps");
    assert_eq!(done.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    let rss = replicasets(&c.client, &d).await;
    assert_eq!(rss.len(), 2);
    assert_eq!(rs_replicas(&rss[0]), 0);
    assert_eq!(image_of(&rss[1]), "app:2");
    assert_eq!(rs_replicas(&rss[1]), 10);
    assert_eq!(annotation(&rss[1], REVISION), Some("2"));
    assert_eq!(
        annotation(&rss[1], "kubernetes.io/change-cause"),
        Some("image app:2")
    );
}

#[tokio::test]
async fn rollback_re_adopts_the_old_replicaset_with_the_next_revision() {
    // kubectl rollout undo patches the template back to the old one.
    let c = cluster().await;
    let _k = start(&c).await;
    let d = api(&c)
        .create(
            &PostParams::default(),
            &deployment("web", 2, "app:1", json!({})),
        )
        .await
        .unwrap();
    wait_rolled_out(&c, "web").await;
    let first = replicasets(&c.client, &d).await.remove(0);
    set_image(&c, "web", "app:2").await;
    wait_rolled_out(&c, "web").await;
    // As kubectl renders the old template: Go adds `resources: {}`.
    let undo = json!({
        "metadata": {"annotations": {"kubernetes.io/change-cause": "image app:1"}},
        "spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "app:1", "resources": {}}
        ]}}},
    });
    patch(&c, "web", undo).await;
    let done = wait_rolled_out(&c, "web").await;
    assert_eq!(done.metadata.annotations.as_ref().unwrap()[REVISION], "3");
    let rss = replicasets(&c.client, &d).await;
    assert_eq!(rss.len(), 2, "no third ReplicaSet");
    let again = rss
        .iter()
        .find(|rs| rs.metadata.uid == first.metadata.uid)
        .unwrap();
    assert_eq!(rs_replicas(again), 2);
    assert_eq!(annotation(again, REVISION), Some("3"));
    assert_eq!(annotation(again, REVISION_HISTORY), Some("1"));
    let other = rss
        .iter()
        .find(|rs| rs.metadata.uid != first.metadata.uid)
        .unwrap();
    assert_eq!(rs_replicas(other), 0);
    assert_eq!(annotation(other, REVISION), Some("2"));
}

#[tokio::test]
async fn revision_history_limit_prunes_the_oldest_empty_replicasets() {
    let c = cluster().await;
    let _k = start(&c).await;
    let d = api(&c)
        .create(
            &PostParams::default(),
            &deployment("web", 1, "app:1", json!({"revisionHistoryLimit": 1})),
        )
        .await
        .unwrap();
    wait_rolled_out(&c, "web").await;
    for image in ["app:2", "app:3"] {
        set_image(&c, "web", image).await;
        wait_rolled_out(&c, "web").await;
    }
    let client = c.client.clone();
    let rss = eventually(20, "history pruned to 1 old ReplicaSet", || {
        let (client, d) = (client.clone(), d.clone());
        async move {
            let rss = replicasets(&client, &d).await;
            (rss.len() == 2).then_some(rss)
        }
    })
    .await;
    let images: Vec<String> = rss.iter().map(image_of).collect();
    assert_eq!(images, ["app:2", "app:3"]);
}

#[tokio::test]
async fn recreate_never_runs_old_and_new_pods_together() {
    let c = cluster().await;
    let _k = start(&c).await;
    let d = api(&c)
        .create(
            &PostParams::default(),
            &deployment("web", 3, "app:1", json!({"strategy": {"type": "Recreate"}})),
        )
        .await
        .unwrap();
    wait_rolled_out(&c, "web").await;
    let old_hash = replicasets(&c.client, &d).await[0]
        .metadata
        .labels
        .as_ref()
        .unwrap()[POD_TEMPLATE_HASH]
        .clone();
    let pods = Api::<Pod>::namespaced(c.client.clone(), "default");
    let mixed = Arc::new(Mutex::new(false));
    let (m, p) = (mixed.clone(), pods.clone());
    let observer = tokio::spawn(async move {
        loop {
            let list = p.list(&ListParams::default()).await.unwrap().items;
            let hashes: Vec<&str> = list
                .iter()
                .map(|p| p.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH].as_str())
                .collect();
            if hashes.contains(&old_hash.as_str()) && hashes.iter().any(|h| *h != old_hash) {
                *m.lock().unwrap() = true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    set_image(&c, "web", "app:2").await;
    let done = wait_rolled_out(&c, "web").await;
    observer.abort();
    assert!(!*mixed.lock().unwrap(), "old and new pods ran together");
    assert_eq!(done.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    let rss = replicasets(&c.client, &d).await;
    assert_eq!(rss.iter().map(rs_replicas).collect::<Vec<_>>(), [0, 3]);
}

#[tokio::test]
async fn paused_deployments_scale_but_do_not_roll() {
    let c = cluster().await;
    let _k = start(&c).await;
    let d = api(&c)
        .create(
            &PostParams::default(),
            &deployment("web", 2, "app:1", json!({})),
        )
        .await
        .unwrap();
    wait_rolled_out(&c, "web").await;
    patch(&c, "web", json!({"spec": {"paused": true}})).await;
    set_image(&c, "web", "app:2").await;
    // kubectl scale while paused: the one active ReplicaSet takes it.
    patch(&c, "web", json!({"spec": {"replicas": 4}})).await;
    let client = c.client.clone();
    eventually(20, "the old ReplicaSet scaled to 4", || {
        let (client, d) = (client.clone(), d.clone());
        async move {
            let rss = replicasets(&client, &d).await;
            (rss.len() == 1
                && rs_replicas(&rss[0]) == 4
                && annotation(&rss[0], DESIRED_REPLICAS) == Some("4"))
            .then_some(())
        }
    })
    .await;
    let paused_d = api(&c).get("web").await.unwrap();
    let cond = condition(paused_d.status.as_ref().unwrap(), "Progressing")
        .unwrap()
        .clone();
    assert_eq!(cond.reason.as_deref(), Some("DeploymentPaused"));
    assert_eq!(cond.status, "Unknown");
    assert_eq!(
        replicasets(&c.client, &d).await.len(),
        1,
        "no rollout while paused"
    );

    patch(&c, "web", json!({"spec": {"paused": false}})).await;
    let done = wait_rolled_out(&c, "web").await;
    assert_eq!(done.status.unwrap().replicas, Some(4));
    let rss = replicasets(&c.client, &d).await;
    assert_eq!(rss.len(), 2);
    assert_eq!(image_of(&rss[1]), "app:2");
    assert_eq!(rs_replicas(&rss[1]), 4);
}

#[tokio::test]
async fn scaling_a_complete_deployment_resizes_its_replicaset() {
    let c = cluster().await;
    let _k = start(&c).await;
    let d = api(&c)
        .create(
            &PostParams::default(),
            &deployment("web", 2, "app:1", json!({})),
        )
        .await
        .unwrap();
    wait_rolled_out(&c, "web").await;
    patch(&c, "web", json!({"spec": {"replicas": 5}})).await;
    let done = wait_rolled_out(&c, "web").await;
    assert_eq!(done.status.unwrap().available_replicas, Some(5));
    let rss = replicasets(&c.client, &d).await;
    assert_eq!(rss.len(), 1);
    assert_eq!(annotation(&rss[0], MAX_REPLICAS), Some("7")); // 5 + ceil(25% of 5)
}

#[tokio::test]
async fn a_thousand_replicas_roll_out_fast() {
    // The goal is 1,000 Wasm pods Running within 2 s in a release build
    // with real node agents; this debug build only checks it is seconds,
    // not minutes, and prints the time.
    let c = cluster().await;
    let _k = start(&c).await;
    let t = std::time::Instant::now();
    api(&c)
        .create(
            &PostParams::default(),
            &deployment("many", 1000, "app:1", json!({})),
        )
        .await
        .unwrap();
    let api = api(&c);
    let rsapi = Api::<ReplicaSet>::namespaced(c.client.clone(), "default");
    eventually(60, "1000 created", || {
        let rsapi = rsapi.clone();
        async move {
            let rs = rsapi.list(&ListParams::default()).await.ok()?.items.pop()?;
            (rs.status?.replicas == 1000).then_some(())
        }
    })
    .await;
    eprintln!("1000 pods exist after {:?}", t.elapsed());
    eventually(60, "1000 available", || {
        let api = api.clone();
        async move {
            let s = api.get("many").await.ok()?.status?;
            (s.available_replicas == Some(1000) && s.updated_replicas == Some(1000)).then_some(())
        }
    })
    .await;
    eprintln!("1000 replicas available in {:?}", t.elapsed());
    let pods = Api::<Pod>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 1000, "no overshoot");
}

#[tokio::test]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    // No pod ever becomes Ready: after progressDeadlineSeconds Kubernetes
    // marks Progressing False/ProgressDeadlineExceeded (the controller must
    // requeue itself: nothing else changes).
    let c = cluster().await;
    start_controllers(&c);
    api(&c)
        .create(
            &PostParams::default(),
            &deployment("stuck", 2, "app:1", json!({"progressDeadlineSeconds": 1})),
        )
        .await
        .unwrap();
    let api = api(&c);
    let status = eventually(20, "ProgressDeadlineExceeded", || {
        let api = api.clone();
        async move {
            let s = api.get("stuck").await.ok()?.status?;
            let c = condition(&s, "Progressing")?;
            (c.reason.as_deref() == Some("ProgressDeadlineExceeded")).then_some(s.clone())
        }
    })
    .await;
    assert_eq!(condition(&status, "Progressing").unwrap().status, "False");
    let available = condition(&status, "Available").unwrap();
    assert_eq!(available.status, "False");
    assert_eq!(
        available.reason.as_deref(),
        Some("MinimumReplicasUnavailable")
    );
    assert_eq!(status.unavailable_replicas, Some(2));
    assert_eq!(status.updated_replicas, Some(2));
}
