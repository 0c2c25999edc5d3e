//! Against the real API server: no node agent runs, so [`support::kubelet`]
//! plays one by marking new pods Running and Ready.

use super::*;
use crate::reconcile::controller_of;
use crate::testing::cluster;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::ListParams;
use std::time::Instant;
use support::*;

/// Helpers the workload controllers' tests share.
pub(crate) mod support {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::{watcher, WatchStreamExt};
    use kube::{Api, Client};
    use serde_json::json;
    use std::future::Future;
    use std::time::Duration;

    /// Mark every pod that has no Ready condition yet Running and Ready,
    /// as a node agent would once its containers start.
    pub fn kubelet(client: Client) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let api = Api::<Pod>::all(client.clone());
            let mut pods =
                std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
            while let Some(Ok(p)) = pods.next().await {
                let has_ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready"));
                if has_ready || p.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                let client = client.clone();
                tokio::spawn(async move {
                    let _ = set_ready(&client, &ns, &name, true).await;
                });
            }
        })
    }

    /// Set a pod's phase Running and its Ready condition.
    pub async fn set_ready(
        client: &Client,
        ns: &str,
        name: &str,
        ready: bool,
    ) -> kube::Result<Pod> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let status = if ready { "True" } else { "False" };
        Api::<Pod>::namespaced(client.clone(), ns)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": status, "lastTransitionTime": now}
                ]}})),
            )
            .await
    }

    /// Poll `check` until it returns `Some`, or panic with `what` after
    /// `secs` seconds.
    pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn rs(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example.com/app:1"}]}
            }
        }
    }))
    .unwrap()
}

async fn owned_pods(client: &Client, rs_name: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            controller_of(&p.metadata).is_some_and(|o| o.name == rs_name)
                && p.metadata.deletion_timestamp.is_none()
        })
        .collect()
}

async fn start(c: &crate::testing::Cluster) {
    let client = c.client.clone();
    tokio::spawn(async move {
        if let Err(e) = run(client).await {
            panic!("replicaset controller: {e}");
        }
    });
}

async fn wait_status(client: &Client, name: &str, replicas: i32, ready: i32) -> ReplicaSetStatus {
    let api = Api::<ReplicaSet>::namespaced(client.clone(), "default");
    eventually(20, &format!("{name} status {replicas}/{ready}"), || {
        let api = api.clone();
        async move {
            let s = api.get(name).await.ok()?.status?;
            (s.replicas == replicas
                && s.ready_replicas.unwrap_or(0) == ready
                && s.available_replicas.unwrap_or(0) == ready
                && s.observed_generation.is_some())
            .then_some(s)
        }
    })
    .await
}

#[tokio::test]
async fn creates_the_pods_from_the_template_and_reports_status() {
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    start(&c).await;
    let api = Api::<ReplicaSet>::namespaced(c.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &rs("web", 5))
        .await
        .unwrap();
    let status = wait_status(&c.client, "web", 5, 5).await;
    assert_eq!(status.fully_labeled_replicas, Some(5));
    assert_eq!(status.observed_generation, created.metadata.generation);
    let pods = owned_pods(&c.client, "web").await;
    assert_eq!(pods.len(), 5);
    for p in &pods {
        assert!(p.metadata.name.as_deref().unwrap().starts_with("web-"));
        assert_eq!(p.metadata.labels.as_ref().unwrap()["app"], "web");
        let owner = controller_of(&p.metadata).unwrap();
        assert_eq!(owner.uid, created.metadata.uid.clone().unwrap());
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(owner.kind, "ReplicaSet");
    }
}

#[tokio::test]
async fn replaces_a_deleted_pod() {
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    start(&c).await;
    let api = Api::<ReplicaSet>::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &rs("web", 3))
        .await
        .unwrap();
    wait_status(&c.client, "web", 3, 3).await;
    let victim = owned_pods(&c.client, "web").await.remove(0);
    let victim_name = victim.metadata.name.clone().unwrap();
    Api::<Pod>::namespaced(c.client.clone(), "default")
        .delete(&victim_name, &DeleteParams::default())
        .await
        .unwrap();
    let client = c.client.clone();
    eventually(20, "a replacement pod", || {
        let client = client.clone();
        let victim_name = victim_name.clone();
        async move {
            let pods = owned_pods(&client, "web").await;
            (pods.len() == 3
                && pods
                    .iter()
                    .all(|p| p.metadata.name.as_deref() != Some(&victim_name)))
            .then_some(())
        }
    })
    .await;
    wait_status(&c.client, "web", 3, 3).await;
}

#[tokio::test]
async fn scale_down_deletes_the_not_ready_pod_first() {
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    start(&c).await;
    let api = Api::<ReplicaSet>::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &rs("web", 3))
        .await
        .unwrap();
    wait_status(&c.client, "web", 3, 3).await;
    let pods = owned_pods(&c.client, "web").await;
    // The middle-aged pod goes unready: Kubernetes deletes it before any
    // Ready pod, whatever their ages.
    let sick = pods[1].metadata.name.clone().unwrap();
    set_ready(&c.client, "default", &sick, false).await.unwrap();
    wait_status(&c.client, "web", 3, 2).await;
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    wait_status(&c.client, "web", 2, 2).await;
    let left: Vec<_> = owned_pods(&c.client, "web").await;
    assert_eq!(left.len(), 2);
    assert!(left
        .iter()
        .all(|p| p.metadata.name.as_deref() != Some(&sick)));
}

#[tokio::test]
async fn adopts_matching_orphans_and_releases_pods_that_stop_matching() {
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    let pods = Api::<Pod>::namespaced(c.client.clone(), "default");
    for i in 0..2 {
        let orphan: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("orphan-{i}"), "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "example.com/app:1"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &orphan).await.unwrap();
    }
    start(&c).await;
    let api = Api::<ReplicaSet>::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &rs("web", 3))
        .await
        .unwrap();
    wait_status(&c.client, "web", 3, 3).await;
    let owned = owned_pods(&c.client, "web").await;
    let names: Vec<_> = owned
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert!(
        names.contains(&"orphan-0".to_string()) && names.contains(&"orphan-1".to_string()),
        "{names:?}"
    );
    assert_eq!(owned.len(), 3, "adopted two, created one: {names:?}");

    // Relabel an owned pod out of the selector: it is released (no
    // controller reference) and replaced.
    pods.patch(
        "orphan-0",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    let p = eventually(20, "orphan-0 released", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("orphan-0").await.ok()?;
            controller_of(&p.metadata).is_none().then_some(p)
        }
    })
    .await;
    assert!(p.metadata.owner_references.unwrap_or_default().is_empty());
    let client = c.client.clone();
    eventually(20, "a replacement for the released pod", || {
        let client = client.clone();
        async move {
            let owned = owned_pods(&client, "web").await;
            let released = owned
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some("orphan-0"));
            (owned.len() == 3 && !released).then_some(())
        }
    })
    .await;
    wait_status(&c.client, "web", 3, 3).await;
}

#[tokio::test]
async fn scales_to_a_thousand_without_overshooting() {
    // Expectations: a fast loop must not create pods twice. Polls the
    // status, not pod lists, to leave the API server to the controller.
    let c = cluster().await;
    start(&c).await;
    let api = Api::<ReplicaSet>::namespaced(c.client.clone(), "default");
    let t = Instant::now();
    api.create(&PostParams::default(), &rs("many", 1000))
        .await
        .unwrap();
    wait_status(&c.client, "many", 1000, 0).await;
    let took = t.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(owned_pods(&c.client, "many").await.len(), 1000);
    let s = wait_status(&c.client, "many", 1000, 0).await;
    assert_eq!(s.fully_labeled_replicas, Some(1000));
    eprintln!("1000 pods created and counted in {took:?}");
}

#[tokio::test]
async fn available_waits_for_min_ready_seconds_without_further_events() {
    // availableReplicas counts pods Ready for minReadySeconds; nothing else
    // changes meanwhile, so only the controller's requeue can notice.
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    start(&c).await;
    let api = Api::<ReplicaSet>::namespaced(c.client.clone(), "default");
    let mut slow = rs("slow", 2);
    slow.spec.as_mut().unwrap().min_ready_seconds = Some(2);
    api.create(&PostParams::default(), &slow).await.unwrap();
    let t = Instant::now();
    let ready_first = eventually(20, "2 ready", || {
        let api = api.clone();
        async move {
            let s = api.get("slow").await.ok()?.status?;
            (s.ready_replicas == Some(2)).then_some(s)
        }
    })
    .await;
    assert_eq!(ready_first.available_replicas.unwrap_or(0), 0);
    wait_status(&c.client, "slow", 2, 2).await;
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn replica_failure_is_set_once_and_cleared_on_success() {
    // Kubernetes sets ReplicaFailure (FailedCreate/FailedDelete) while
    // manageReplicas fails, keeps the first one, and removes it once a sync
    // succeeds.
    let mut status = ReplicaSetStatus::default();
    set_failure_condition(&mut status, Some(("FailedCreate", "quota".into())));
    set_failure_condition(&mut status, Some(("FailedDelete", "other".into())));
    let conds = status.conditions.clone().unwrap();
    assert_eq!(conds.len(), 1);
    assert_eq!(conds[0].reason.as_deref(), Some("FailedCreate"));
    assert_eq!(conds[0].status, "True");
    set_failure_condition(&mut status, None);
    assert!(status.conditions.is_none());
    assert_eq!(failure_reason("deleting pods"), "FailedDelete");
    assert_eq!(failure_reason("creating pods"), "FailedCreate");
}
