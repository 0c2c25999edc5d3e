//! Against the real API server. No node agent runs: the tests play the
//! kubelet by setting pod phases (Running, Succeeded, Failed).

use super::*;
use crate::reconcile::controller_of;
use crate::replicaset::tests::support::eventually;
use crate::testing::{cluster, Cluster};
use kube::api::{ListParams, PostParams};

fn job(name: &str, spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "example.com/batch:1"}]}});
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

fn start(c: &Cluster) {
    let client = c.client.clone();
    tokio::spawn(async move {
        let informers = crate::reconcile::Informers::new(client.clone());
        if let Err(e) = run_with_backoff(client, &informers, Duration::from_millis(50)).await {
            panic!("job controller: {e}");
        }
    });
}

async fn create(c: &Cluster, j: Job) -> Job {
    Api::<Job>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &j)
        .await
        .unwrap()
}

/// The Job's pods that are not being deleted, found by the label Kubernetes
/// (and skiff's API server) put on the template.
async fn pods_of(client: &Client, name: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn is_running(p: &Pod) -> bool {
    !matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Play the kubelet: end a pod in `phase`.
async fn finish(client: &Client, pod: &Pod, phase: &str) {
    Api::<Pod>::namespaced(client.clone(), "default")
        .patch_status(
            pod.metadata.name.as_deref().unwrap(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"phase": phase}})),
        )
        .await
        .unwrap();
}

async fn wait_condition(client: &Client, name: &str, type_: &str) -> Job {
    let api = Api::<Job>::namespaced(client.clone(), "default");
    eventually(20, &format!("{name} condition {type_}"), || {
        let api = api.clone();
        async move {
            let j = api.get(name).await.ok()?;
            state::condition(&j, type_).is_some().then_some(j)
        }
    })
    .await
}

#[tokio::test]
async fn runs_three_completions_never_more_than_two_at_once() {
    let c = cluster().await;
    start(&c);
    let created = create(&c, job("work", json!({"completions": 3, "parallelism": 2}))).await;
    let uid = created.metadata.uid.clone().unwrap();
    let mut done = 0;
    while done < 3 {
        eventually(20, "a running pod", || async {
            let pods = pods_of(&c.client, "work").await;
            pods.iter().any(is_running).then_some(())
        })
        .await;
        // Give the controller a chance to overshoot before looking.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let running: Vec<Pod> = pods_of(&c.client, "work")
            .await
            .into_iter()
            .filter(is_running)
            .collect();
        assert!(
            running.len() <= 2,
            "parallelism 2 exceeded: {}",
            running.len()
        );
        assert!(running.len() <= 3 - done, "more pods than completions left");
        finish(&c.client, &running[0], "Succeeded").await;
        done += 1;
    }
    let j = wait_condition(&c.client, "work", "Complete").await;
    let s = j.status.unwrap();
    assert_eq!(s.succeeded, Some(3));
    assert_eq!(s.active, Some(0));
    assert!(s.completion_time.is_some() && s.start_time.is_some());
    let types: Vec<&str> = s
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    let pods = pods_of(&c.client, "work").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
        assert_eq!(labels["controller-uid"], uid);
        assert_eq!(labels["job-name"], "work");
        assert!(p.metadata.name.as_deref().unwrap().starts_with("work-"));
        assert_eq!(controller_of(&p.metadata).unwrap().kind, "Job");
    }
}

#[tokio::test]
async fn exceeding_the_backoff_limit_fails_the_job() {
    let c = cluster().await;
    start(&c);
    create(&c, job("flaky", json!({"backoffLimit": 1}))).await;
    // backoffLimit 1: the first failure is retried, the second fails the Job.
    for attempt in 0..2 {
        let pod = eventually(20, &format!("attempt {attempt}"), || async {
            pods_of(&c.client, "flaky")
                .await
                .into_iter()
                .find(is_running)
        })
        .await;
        finish(&c.client, &pod, "Failed").await;
    }
    let j = wait_condition(&c.client, "flaky", "Failed").await;
    assert!(state::condition(&j, "FailureTarget").is_some());
    let s = j.status.unwrap();
    assert_eq!(s.failed, Some(2));
    let failed = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    // No third attempt.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pods_of(&c.client, "flaky").await.len(), 2);
}

#[tokio::test]
async fn active_deadline_fails_the_job_and_stops_its_pods() {
    let c = cluster().await;
    start(&c);
    create(
        &c,
        job(
            "slow",
            json!({"activeDeadlineSeconds": 1, "parallelism": 2, "completions": 4}),
        ),
    )
    .await;
    eventually(20, "two pods", || async {
        (pods_of(&c.client, "slow").await.len() == 2).then_some(())
    })
    .await;
    let j = wait_condition(&c.client, "slow", "Failed").await;
    let failed = state::condition(&j, "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(j.status.unwrap().active, Some(0));
    assert!(
        pods_of(&c.client, "slow").await.is_empty(),
        "running pods are deleted"
    );
}

#[tokio::test]
async fn a_finished_job_is_deleted_after_its_ttl() {
    let c = cluster().await;
    start(&c);
    create(&c, job("once", json!({"ttlSecondsAfterFinished": 1}))).await;
    let pod = eventually(20, "the pod", || async {
        pods_of(&c.client, "once").await.into_iter().next()
    })
    .await;
    let api = Api::<Job>::namespaced(c.client.clone(), "default");
    // Watch from before the pod finishes: the Job is Complete for only
    // the 1 s TTL, which polling on a loaded machine can miss entirely.
    let cfg = kube::runtime::watcher::Config::default().fields("metadata.name=once");
    let mut events = Box::pin(kube::runtime::watcher::watcher(api.clone(), cfg));
    finish(&c.client, &pod, "Succeeded").await;
    let done = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        use futures::StreamExt;
        while let Some(e) = events.next().await {
            if let Ok(
                kube::runtime::watcher::Event::Apply(j)
                | kube::runtime::watcher::Event::InitApply(j),
            ) = e
            {
                if state::condition(&j, "Complete").is_some() {
                    return Some(j);
                }
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("the Job seen Complete");
    // Still there right after finishing…
    assert!(done.metadata.deletion_timestamp.is_none());
    // …and gone once the TTL passed.
    eventually(20, "the Job deleted", || {
        let api = api.clone();
        async move { api.get_opt("once").await.ok()?.is_none().then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn indexed_mode_runs_each_index_once() {
    let c = cluster().await;
    start(&c);
    create(
        &c,
        job(
            "idx",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
        ),
    )
    .await;
    let pods = eventually(20, "three indexed pods", || async {
        let p = pods_of(&c.client, "idx").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    let mut indexes: Vec<i32> = pods.iter().map(|p| state::index_of(p).unwrap()).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 2]);
    for p in &pods {
        let i = state::index_of(p).unwrap();
        let name = p.metadata.name.as_deref().unwrap();
        assert!(name.starts_with(&format!("idx-{i}-")), "{name}");
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()[COMPLETION_INDEX],
            i.to_string()
        );
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{i}").as_str()));
        let env = spec.containers[0].env.as_ref().unwrap();
        assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
    }
    // Index 1 fails: it is retried under the same index.
    let one = pods.iter().find(|p| state::index_of(p) == Some(1)).unwrap();
    finish(&c.client, one, "Failed").await;
    let retry = eventually(20, "index 1 retried", || async {
        pods_of(&c.client, "idx")
            .await
            .into_iter()
            .find(|p| state::index_of(p) == Some(1) && is_running(p))
    })
    .await;
    for p in pods
        .iter()
        .filter(|p| state::index_of(p) != Some(1))
        .chain([&retry])
    {
        finish(&c.client, p, "Succeeded").await;
    }
    let j = wait_condition(&c.client, "idx", "Complete").await;
    let s = j.status.unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!((s.succeeded, s.failed), (Some(3), Some(1)));
}

#[tokio::test]
async fn a_suspended_job_starts_nothing_until_resumed() {
    let c = cluster().await;
    start(&c);
    create(&c, job("later", json!({"suspend": true}))).await;
    let j = wait_condition(&c.client, "later", "Suspended").await;
    assert!(j.status.unwrap().start_time.is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pods_of(&c.client, "later").await.is_empty());
    Api::<Job>::namespaced(c.client.clone(), "default")
        .patch(
            "later",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    eventually(20, "a pod after resuming", || async {
        (pods_of(&c.client, "later").await.len() == 1).then_some(())
    })
    .await;
    let api = Api::<Job>::namespaced(c.client.clone(), "default");
    let resumed = eventually(20, "Suspended False", || {
        let api = api.clone();
        async move {
            let j = api.get("later").await.ok()?;
            let s = j.status.clone()?;
            let c = s.conditions?.into_iter().find(|c| c.type_ == "Suspended")?;
            (c.status == "False" && s.start_time.is_some()).then_some(c)
        }
    })
    .await;
    assert_eq!(resumed.reason.as_deref(), Some("JobResumed"));
}
