//! The ReplicaSet controller: keep `spec.replicas` pods matching the
//! selector alive, as Kubernetes' does.
//!
//! Each reconcile reads the ReplicaSet and the pods from watch caches,
//! claims pods (adopts matching orphans, releases owned pods that stopped
//! matching), and — unless creates or deletes it issued are still unseen
//! (see [`expectations`]) — creates missing pods in slow-start batches
//! (1, 2, 4, …; each batch concurrent) or deletes the extras the
//! [`pods::deletion_order`] ranks first. Then it writes `status` through the
//! status subresource, and requeues for when a Ready pod will have been Ready
//! for `minReadySeconds`.

pub mod expectations;
pub mod pods;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde_json::json;

use crate::reconcile::{self, claim, Key, Owner, Requeue, Seen, WorkQueue};
use expectations::Expectations;

/// Workers reconciling different ReplicaSets at once.
const WORKERS: usize = 4;
/// Most pods created or deleted in one reconcile. Kubernetes uses 500;
/// skiff allows a 1,000-replica Deployment in one pass, because waiting for
/// the watch to deliver the first 500 before creating the rest would double
/// the time to a full rollout.
const BURST_REPLICAS: usize = 1000;
/// Concurrent API calls within one slow-start batch.
const CALL_CONCURRENCY: usize = 64;

/// Why a ReplicaSet reconcile failed; it is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("replicaset {key}: {action}: {source}")]
    Api {
        /// The ReplicaSet.
        key: Key,
        /// What the controller was doing.
        action: &'static str,
        /// The API error.
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    expectations: Expectations,
    queue: WorkQueue,
}

/// Run the ReplicaSet controller until its watches or workers stop.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let informers = reconcile::Informers::new(client.clone());
    run_with(client, &informers).await
}

/// [`run`] on watches shared with the process's other controllers.
pub async fn run_with(client: Client, informers: &reconcile::Informers) -> anyhow::Result<()> {
    let (replicasets, rs_events) = informers.watch::<ReplicaSet>(None);
    let (pods, pod_events) = informers.watch::<Pod>(None);
    let ctx = Arc::new(Ctx {
        client,
        replicasets,
        pods,
        expectations: Expectations::default(),
        queue: WorkQueue::new(),
    });
    let rs_loop = rs_events.for_each(|ev| {
        if let Seen::Applied(rs) | Seen::Deleted(rs) = ev {
            ctx.queue.add(Key::of(&rs));
        }
        std::future::ready(())
    });
    let pod_loop = pod_events.for_each(|ev| {
        ctx.pod_seen(ev);
        std::future::ready(())
    });
    let worker_ctx = ctx.clone();
    let workers = async {
        // As Kubernetes' WaitForCacheSync: a reconcile on a half-listed
        // cache would miss existing pods and create too many.
        let synced = ctx.replicasets.wait_until_ready().await.is_ok()
            && ctx.pods.wait_until_ready().await.is_ok();
        if synced {
            ctx.queue
                .run(WORKERS, move |key| {
                    let ctx = worker_ctx.clone();
                    async move { ctx.reconcile(key).await }
                })
                .await;
        }
    };
    tokio::select! {
        () = rs_loop => anyhow::bail!("the ReplicaSet watch ended"),
        () = pod_loop => anyhow::bail!("the pod watch ended"),
        () = workers => anyhow::bail!("the ReplicaSet workers stopped"),
    }
}

impl Ctx {
    /// Queue the ReplicaSets a pod event concerns: its controller, or for
    /// an orphan every ReplicaSet in its namespace whose selector matches.
    fn pod_seen(&self, ev: Seen<Pod>) {
        reconcile::queue_owners(
            &self.queue,
            &self.replicasets,
            "ReplicaSet",
            ev,
            selects_pod,
        );
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, Error> {
        let Some(rs) = self.replicasets.get(&key.object_ref()) else {
            self.expectations.forget(&key);
            return Ok(Requeue::Never);
        };
        let sel = rs
            .spec
            .as_ref()
            .map(|s| reconcile::selector(&s.selector))
            .unwrap_or_else(reconcile::Selector::nothing);
        let candidates = self.pods.state_filter(|p| {
            p.metadata.namespace.as_deref() == Some(key.namespace.as_str()) && pods::is_active(p)
        });
        let client = self.client.clone();
        let owned = claim(
            |ns| Api::<Pod>::namespaced(client.clone(), ns),
            &Owner::of(rs.as_ref()),
            &sel,
            candidates,
        )
        .await
        .map_err(|source| Error::Api {
            key: key.clone(),
            action: "claiming pods",
            source,
        })?;
        let managed = if self.expectations.satisfied(&key, &self.pods)
            && rs.metadata.deletion_timestamp.is_none()
        {
            self.manage_replicas(&key, &rs, &owned).await
        } else {
            Ok(())
        };
        let failure = match &managed {
            Err(Error::Api { action, source, .. }) => {
                Some((failure_reason(action), source.to_string()))
            }
            Ok(()) => None,
        };
        let requeue = self.update_status(&key, &rs, &owned, failure).await?;
        managed.map(|()| requeue)
    }

    /// Create or delete pods to move towards `spec.replicas`.
    async fn manage_replicas(
        &self,
        key: &Key,
        rs: &ReplicaSet,
        owned: &[Arc<Pod>],
    ) -> Result<(), Error> {
        let want = rs
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as usize;
        let have = owned.len();
        if have < want {
            self.create_pods(key, rs, (want - have).min(BURST_REPLICAS))
                .await
        } else if have > want {
            let doomed = pods::pick_for_deletion(owned, (have - want).min(BURST_REPLICAS));
            self.delete_pods(key, doomed).await
        } else {
            Ok(())
        }
    }

    /// Create `n` pods in slow-start batches: 1, 2, 4, …, stopping at the
    /// first batch with a failure so a broken template (or a quota) costs
    /// one call, not hundreds.
    async fn create_pods(&self, key: &Key, rs: &ReplicaSet, n: usize) -> Result<(), Error> {
        let pod = pod_from_template(rs);
        let api = Api::<Pod>::namespaced(self.client.clone(), &key.namespace);
        let mut remaining = n;
        let mut batch = 1usize;
        while remaining > 0 {
            let size = batch.min(remaining);
            let results: Vec<Result<Pod, kube::Error>> = futures::stream::iter(0..size)
                .map(|_| {
                    let (api, pod) = (api.clone(), pod.clone());
                    async move { api.create(&PostParams::default(), &pod).await }
                })
                .buffer_unordered(CALL_CONCURRENCY)
                .collect()
                .await;
            let mut first_error = None;
            for r in results {
                match r {
                    Ok(p) => self
                        .expectations
                        .created(key, p.metadata.name.unwrap_or_default()),
                    // A terminating namespace refuses new pods; nothing to retry.
                    Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("terminat") => {
                    }
                    Err(e) => first_error = first_error.or(Some(e)),
                }
            }
            if let Some(source) = first_error {
                return Err(Error::Api {
                    key: key.clone(),
                    action: "creating pods",
                    source,
                });
            }
            remaining -= size;
            batch = batch.saturating_mul(2);
        }
        tracing::debug!(%key, created = n, "created pods");
        Ok(())
    }

    /// Delete the chosen pods concurrently.
    async fn delete_pods(&self, key: &Key, doomed: Vec<Arc<Pod>>) -> Result<(), Error> {
        for p in &doomed {
            self.expectations.deleting(
                key,
                p.metadata.uid.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
        }
        let api = Api::<Pod>::namespaced(self.client.clone(), &key.namespace);
        let results: Vec<Result<(), kube::Error>> = futures::stream::iter(doomed)
            .map(|p| {
                let api = api.clone();
                async move {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let uid = p.metadata.uid.clone().unwrap_or_default();
                    let dp = DeleteParams {
                        preconditions: Some(kube::api::Preconditions {
                            uid: Some(uid.clone()),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    match api.delete(&name, &dp).await {
                        Ok(_) => Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                            self.expectations.delete_failed(key, &uid);
                            Ok(())
                        }
                        Err(e) => {
                            self.expectations.delete_failed(key, &uid);
                            Err(e)
                        }
                    }
                }
            })
            .buffer_unordered(CALL_CONCURRENCY)
            .collect()
            .await;
        results
            .into_iter()
            .collect::<Result<(), _>>()
            .map_err(|source| Error::Api {
                key: key.clone(),
                action: "deleting pods",
                source,
            })
    }

    /// Write the status when it changed; say when to look again for pods
    /// that will become available.
    async fn update_status(
        &self,
        key: &Key,
        rs: &ReplicaSet,
        owned: &[Arc<Pod>],
        failure: Option<(&'static str, String)>,
    ) -> Result<Requeue, Error> {
        let (status, requeue) = calculate_status(rs, owned, failure);
        let old = rs.status.clone().unwrap_or_default();
        if same_status(&old, &status) {
            return Ok(requeue);
        }
        let patch = json!({"status": {
            "replicas": status.replicas,
            "fullyLabeledReplicas": status.fully_labeled_replicas,
            "readyReplicas": status.ready_replicas,
            "availableReplicas": status.available_replicas,
            "observedGeneration": status.observed_generation,
            "conditions": status.conditions,
        }});
        let api = Api::<ReplicaSet>::namespaced(self.client.clone(), &key.namespace);
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(requeue),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Requeue::Never),
            Err(source) => Err(Error::Api {
                key: key.clone(),
                action: "updating status",
                source,
            }),
        }
    }
}

fn same_status(a: &ReplicaSetStatus, b: &ReplicaSetStatus) -> bool {
    a.replicas == b.replicas
        && a.fully_labeled_replicas.unwrap_or(0) == b.fully_labeled_replicas.unwrap_or(0)
        && a.ready_replicas.unwrap_or(0) == b.ready_replicas.unwrap_or(0)
        && a.available_replicas.unwrap_or(0) == b.available_replicas.unwrap_or(0)
        && a.observed_generation == b.observed_generation
        && a.conditions.as_deref().unwrap_or_default()
            == b.conditions.as_deref().unwrap_or_default()
}

/// The ReplicaFailure reason for what the controller failed at.
fn failure_reason(action: &str) -> &'static str {
    if action.starts_with("deleting") {
        "FailedDelete"
    } else {
        "FailedCreate"
    }
}

/// Kubernetes' ReplicaFailure condition: set (once) while creating or
/// deleting pods fails, removed when it works again.
fn set_failure_condition(status: &mut ReplicaSetStatus, failure: Option<(&'static str, String)>) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let present = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match failure {
        Some((reason, message)) if !present => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(Timestamp::now())),
        }),
        None if present => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    if conditions.is_empty() {
        status.conditions = None;
    }
}

/// Whether a ReplicaSet's selector matches a pod's labels.
fn selects_pod(rs: &ReplicaSet, pod: &Pod) -> bool {
    rs.spec.as_ref().is_some_and(|s| {
        reconcile::selects(
            &reconcile::selector(&s.selector),
            pod.metadata.labels.as_ref(),
        )
    })
}

/// The status Kubernetes computes from the claimed active pods, and when a
/// Ready pod will turn available.
fn calculate_status(
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
    failure: Option<(&'static str, String)>,
) -> (ReplicaSetStatus, Requeue) {
    let now = Timestamp::now();
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = ReplicaSetStatus {
        replicas: owned.len() as i32,
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        ..ReplicaSetStatus::default()
    };
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    let mut requeue = Requeue::Never;
    for p in owned {
        let labels = p.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            labeled += 1;
        }
        if pods::is_ready(p) {
            ready += 1;
        }
        match pods::available_at(p, min_ready) {
            Some(at) if at <= now => available += 1,
            Some(at) => {
                let wait = at.duration_since(now).unsigned_abs() + Duration::from_millis(10);
                requeue = requeue.min(Requeue::After(wait));
            }
            None => {}
        }
    }
    status.fully_labeled_replicas = Some(labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    set_failure_condition(&mut status, failure);
    (status, requeue)
}

/// A pod as the ReplicaSet creates it: the template's labels, annotations
/// and spec, `generateName: RSNAME-`, and the ReplicaSet as its controller.
fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                rs.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: rs.metadata.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![Owner::of(rs).reference()]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap what they just created
pub(crate) mod tests;
