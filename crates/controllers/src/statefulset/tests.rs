//! Against the real API server, with no node agent: the tests play the
//! kubelet, marking pods Running and Ready themselves (all at once with
//! [`kubelet`], or one by one to watch the ordering).

use super::*;
use crate::replicaset::tests::support::{eventually, kubelet, set_ready};
use crate::testing::{cluster, Cluster};
use kube::api::ListParams;

fn start(c: &Cluster) {
    let client = c.client.clone();
    tokio::spawn(async move {
        if let Err(e) = run(client).await {
            panic!("StatefulSet controller: {e:#}");
        }
    });
}

fn sts(name: &str, replicas: i32, extra: serde_json::Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example.com/db:1"}]}
            }
        }
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            spec.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(v).unwrap()
}

async fn create(c: &Cluster, set: &StatefulSet) {
    Api::<StatefulSet>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), set)
        .await
        .unwrap();
}

/// The set's live pods (not terminating), sorted by name.
async fn pods(client: &Client, set: &str) -> Vec<Pod> {
    let mut out: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(&format!("app={set}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    out.sort_by_key(|p| p.metadata.name.clone());
    out
}

async fn names(client: &Client, set: &str) -> Vec<String> {
    pods(client, set)
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

async fn wait_names(client: &Client, set: &str, want: &[&str]) {
    eventually(10, &format!("pods {want:?}"), || async {
        (names(client, set).await == want).then_some(())
    })
    .await;
}

async fn status(client: &Client, set: &str) -> StatefulSetStatus {
    Api::<StatefulSet>::namespaced(client.clone(), "default")
        .get(set)
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

async fn scale(client: &Client, set: &str, replicas: i32) {
    Api::<StatefulSet>::namespaced(client.clone(), "default")
        .patch(
            set,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn ordered_ready_starts_members_one_by_one_with_stable_identities() {
    let c = cluster().await;
    start(&c);
    create(&c, &sts("db", 3, json!({}))).await;
    wait_names(&c.client, "db", &["db-0"]).await;
    // db-1 is not created until db-0 is Running and Ready.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(names(&c.client, "db").await, ["db-0"]);
    set_ready(&c.client, "default", "db-0", true).await.unwrap();
    wait_names(&c.client, "db", &["db-0", "db-1"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(names(&c.client, "db").await, ["db-0", "db-1"]);
    set_ready(&c.client, "default", "db-1", true).await.unwrap();
    wait_names(&c.client, "db", &["db-0", "db-1", "db-2"]).await;
    set_ready(&c.client, "default", "db-2", true).await.unwrap();

    let p = &pods(&c.client, "db").await[1];
    let labels = p.metadata.labels.clone().unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "db-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    let spec = p.spec.clone().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("db-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("db"));
    assert_eq!(controller_of(&p.metadata).unwrap().kind, "StatefulSet");

    // What `kubectl rollout status` reads.
    let st = eventually(10, "status", || async {
        let s = status(&c.client, "db").await;
        (s.ready_replicas == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(st.replicas, 3);
    assert_eq!(st.updated_replicas, Some(3));
    assert_eq!(st.current_replicas, Some(3));
    assert_eq!(st.available_replicas, Some(3));
    assert_eq!(st.current_revision, st.update_revision);
    assert_eq!(
        labels["controller-revision-hash"],
        st.update_revision.clone().unwrap()
    );
    assert_eq!(st.observed_generation, Some(1));
    let revs = Api::<ControllerRevision>::namespaced(c.client.clone(), "default")
        .get(st.update_revision.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(revs.revision, 1);
    // Settled: the controller stops writing (no status write loop).
    let sets = Api::<StatefulSet>::namespaced(c.client.clone(), "default");
    let rv = sets.get("db").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sets.get("db").await.unwrap().metadata.resource_version, rv);

    // A deleted member comes back under the same name (a new pod).
    let old_uid = p.metadata.uid.clone();
    Api::<Pod>::namespaced(c.client.clone(), "default")
        .delete("db-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "db-1 recreated", || async {
        let p = pods(&c.client, "db")
            .await
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some("db-1"))?;
        (p.metadata.uid != old_uid).then_some(())
    })
    .await;
}

#[tokio::test]
async fn scale_down_removes_the_highest_ordinal_first_one_at_a_time() {
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    start(&c);
    create(&c, &sts("web", 4, json!({}))).await;
    wait_names(&c.client, "web", &["web-0", "web-1", "web-2", "web-3"]).await;
    // Record every pod deletion in order, from a watch that is listening
    // before the scale-down starts.
    let deleted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let listening = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (d, l) = (deleted.clone(), listening.clone());
    let client = c.client.clone();
    let _watch = tokio::spawn(async move {
        use kube::runtime::watcher;
        let api = Api::<Pod>::namespaced(client, "default");
        let mut s = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(Ok(ev)) = s.next().await {
            match ev {
                watcher::Event::InitDone => l.store(true, std::sync::atomic::Ordering::SeqCst),
                watcher::Event::Delete(p) => {
                    d.lock().unwrap().push(p.metadata.name.unwrap_or_default())
                }
                _ => {}
            }
        }
    });
    eventually(10, "the deletion watch", || async {
        listening
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(())
    })
    .await;
    scale(&c.client, "web", 1).await;
    wait_names(&c.client, "web", &["web-0"]).await;
    eventually(10, "three deletions seen", || async {
        (deleted.lock().unwrap().len() >= 3).then_some(())
    })
    .await;
    assert_eq!(*deleted.lock().unwrap(), ["web-3", "web-2", "web-1"]);
}

#[tokio::test]
async fn parallel_policy_creates_all_members_at_once() {
    let c = cluster().await;
    start(&c);
    // Nobody marks them Ready, yet all three appear.
    create(
        &c,
        &sts("par", 3, json!({"podManagementPolicy": "Parallel"})),
    )
    .await;
    wait_names(&c.client, "par", &["par-0", "par-1", "par-2"]).await;
    scale(&c.client, "par", 0).await;
    wait_names(&c.client, "par", &[]).await;
}

#[tokio::test]
async fn volume_claim_templates_become_host_path_volumes() {
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    start(&c);
    let claims = json!({"volumeClaimTemplates": [{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]});
    create(&c, &sts("vol", 2, claims)).await;
    wait_names(&c.client, "vol", &["vol-0", "vol-1"]).await;
    for (i, p) in pods(&c.client, "vol").await.iter().enumerate() {
        let volumes = p.spec.clone().unwrap().volumes.unwrap();
        let hp = volumes
            .iter()
            .find(|v| v.name == "data")
            .unwrap()
            .host_path
            .clone()
            .unwrap();
        assert_eq!(
            hp.path,
            format!("/var/lib/skiff/volumes/default/data-vol-{i}")
        );
        assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"));
    }
}

#[tokio::test]
async fn rolling_update_replaces_members_from_the_highest_ordinal_down() {
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    start(&c);
    create(&c, &sts("roll", 3, json!({}))).await;
    let first = eventually(10, "3 ready", || async {
        let s = status(&c.client, "roll").await;
        (s.ready_replicas == Some(3)).then_some(s.update_revision)
    })
    .await;
    // Record the order in which members reappear with the new image.
    let order = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = order.clone();
    let client = c.client.clone();
    let _watch = tokio::spawn(async move {
        use kube::runtime::{watcher, WatchStreamExt};
        let api = Api::<Pod>::namespaced(client, "default");
        let mut s = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(Ok(p)) = s.next().await {
            let image = p.spec.as_ref().and_then(|s| s.containers[0].image.clone());
            let name = p.metadata.name.unwrap_or_default();
            let mut seen = seen.lock().unwrap();
            if image.as_deref() == Some("example.com/db:2") && !seen.contains(&name) {
                seen.push(name);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let api = Api::<StatefulSet>::namespaced(c.client.clone(), "default");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "example.com/db:2"}]}}}});
    api.patch("roll", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let done = eventually(20, "the rollout", || async {
        let s = status(&c.client, "roll").await;
        let rolled = s.observed_generation == Some(2)
            && s.current_revision == s.update_revision
            && s.updated_replicas == Some(3)
            && s.ready_replicas == Some(3);
        rolled.then_some(s)
    })
    .await;
    assert_ne!(done.update_revision, first);
    assert_eq!(*order.lock().unwrap(), ["roll-2", "roll-1", "roll-0"]);
    assert_eq!(done.observed_generation, Some(2));
    for p in pods(&c.client, "roll").await {
        assert_eq!(
            p.spec.unwrap().containers[0].image.as_deref(),
            Some("example.com/db:2")
        );
    }
    let revisions = Api::<ControllerRevision>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut numbers: Vec<i64> = revisions.items.iter().map(|r| r.revision).collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2]);

    // Back to the first template (`kubectl rollout undo`): its revision is
    // reused and renumbered as the newest, as in Kubernetes.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "example.com/db:1"}]}}}});
    api.patch("roll", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let first = first.unwrap();
    eventually(20, "the undo", || async {
        let s = status(&c.client, "roll").await;
        let rev = Api::<ControllerRevision>::namespaced(c.client.clone(), "default")
            .get(&first)
            .await
            .ok()?;
        (s.current_revision.as_deref() == Some(first.as_str())
            && s.ready_replicas == Some(3)
            && rev.revision == 3)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_partition_holds_lower_ordinals_at_the_old_revision() {
    let c = cluster().await;
    let _kubelet = kubelet(c.client.clone());
    start(&c);
    create(
        &c,
        &sts(
            "part",
            3,
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
        ),
    )
    .await;
    let old = eventually(10, "3 ready", || async {
        let s = status(&c.client, "part").await;
        (s.ready_replicas == Some(3)).then(|| s.update_revision.unwrap())
    })
    .await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "example.com/db:2"}]}}}});
    Api::<StatefulSet>::namespaced(c.client.clone(), "default")
        .patch("part", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let s = eventually(10, "partitioned rollout", || async {
        let s = status(&c.client, "part").await;
        let partitioned = s.observed_generation == Some(2)
            && s.updated_replicas == Some(1)
            && s.ready_replicas == Some(3);
        partitioned.then_some(s)
    })
    .await;
    // kubectl: "partitioned roll out complete: 1 new pods have been updated".
    assert_eq!(s.current_revision.as_deref(), Some(old.as_str()));
    assert_eq!(s.current_replicas, Some(2));
    let revs: Vec<Option<String>> = pods(&c.client, "part")
        .await
        .iter()
        .map(|p| identity::revision_of(p).map(String::from))
        .collect();
    assert_eq!(revs[0].as_deref(), Some(old.as_str()));
    assert_eq!(revs[1].as_deref(), Some(old.as_str()));
    assert_eq!(revs[2], s.update_revision);
}

/// A pod of set `s` at `revision`, Running and Ready since `ready_at`.
fn status_pod(name: &str, revision: &str, ready_at: Option<&str>) -> Arc<Pod> {
    let cond = match ready_at {
        Some(t) => json!({"type": "Ready", "status": "True", "lastTransitionTime": t}),
        None => json!({"type": "Ready", "status": "False"}),
    };
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"controller-revision-hash": revision}},
            "status": {"phase": "Running", "conditions": [cond]},
        }))
        .unwrap(),
    )
}

#[test]
fn status_counts_revisions_and_completes_a_rolling_update() {
    // Kubernetes' updateStatefulSet counts and completeRollingUpdate.
    let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    let t = Some("2026-01-01T00:00:00Z");
    let mut set = sts("s", 2, json!({}));
    set.metadata.generation = Some(4);
    let mid = [
        status_pod("s-0", "s-old", t),
        status_pod("s-1", "s-new", None),
    ];
    let (st, _) = calculate_status(&set, &mid, "s-old", "s-new", now);
    assert_eq!(
        (st.replicas, st.ready_replicas, st.available_replicas),
        (2, Some(1), Some(1))
    );
    assert_eq!(
        (st.current_replicas, st.updated_replicas),
        (Some(1), Some(1))
    );
    assert_eq!(st.current_revision.as_deref(), Some("s-old"));
    assert_eq!(st.observed_generation, Some(4));
    // All updated and Ready: the update revision becomes current.
    let done = [status_pod("s-0", "s-new", t), status_pod("s-1", "s-new", t)];
    let (st, _) = calculate_status(&set, &done, "s-old", "s-new", now);
    assert_eq!(st.current_revision.as_deref(), Some("s-new"));
    assert_eq!(st.current_replicas, Some(2));
    // Not under OnDelete: Kubernetes completes only rolling updates.
    let on_delete = sts("s", 2, json!({"updateStrategy": {"type": "OnDelete"}}));
    let (st, _) = calculate_status(&on_delete, &done, "s-old", "s-new", now);
    assert_eq!(st.current_revision.as_deref(), Some("s-old"));
}

#[test]
fn status_waits_min_ready_seconds_for_availability() {
    let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
    let set = sts("s", 1, json!({"minReadySeconds": 30}));
    let pods = [status_pod("s-0", "r", Some("2026-01-01T00:00:00Z"))];
    let (st, requeue) = calculate_status(&set, &pods, "r", "r", now);
    assert_eq!(
        (st.ready_replicas, st.available_replicas),
        (Some(1), Some(0))
    );
    assert_eq!(requeue, Requeue::After(Duration::from_secs(20)));
}
