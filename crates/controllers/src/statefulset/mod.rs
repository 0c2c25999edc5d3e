//! The StatefulSet controller (apps/v1), as Kubernetes'.
//!
//! A StatefulSet runs pods with stable identities — `NAME-0 … NAME-(n-1)`,
//! hostname = pod name, subdomain = `spec.serviceName` (see [`identity`]) —
//! started and stopped in order ([`plan`]). Each reconcile reads the set,
//! its pods and its ControllerRevisions from watch caches, claims pods,
//! makes sure the revision for the current template exists ([`revision`]),
//! takes one step of the plan, and writes the status `kubectl rollout
//! status statefulset/x` reads.
//!
//! No expectations are needed, unlike the ReplicaSet controller: names are
//! fixed, so creating a pod a stale cache missed fails with AlreadyExists,
//! and deletes carry the pod's UID, so a stale cache cannot delete a
//! recreated namesake.
//!
//! skiff serves no PersistentVolumeClaims: `volumeClaimTemplates` become
//! node-local `hostPath` directories (see [`identity`]); there is no
//! `persistentVolumeClaimRetentionPolicy` to honour.

pub mod identity;
pub mod plan;
pub mod revision;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde_json::json;

use crate::reconcile::{self, claim, controller_of, Key, Owner, Requeue, Seen, WorkQueue};
use crate::replicaset::pods::available_at;
use plan::{Action, Revision, SetView};

/// Workers reconciling different StatefulSets at once.
const WORKERS: usize = 4;

/// Why a StatefulSet reconcile failed; it is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("statefulset {key}: {action}: {source}")]
    Api {
        /// The StatefulSet.
        key: Key,
        /// What the controller was doing.
        action: String,
        /// The API error.
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    queue: WorkQueue,
}

/// Run the StatefulSet controller until its watches or workers stop.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let informers = reconcile::Informers::new(client.clone());
    run_with(client, &informers).await
}

/// [`run`] on watches shared with the process's other controllers.
pub async fn run_with(client: Client, informers: &reconcile::Informers) -> anyhow::Result<()> {
    let (sets, set_events) = informers.watch::<StatefulSet>(None);
    let (pods, pod_events) = informers.watch::<Pod>(None);
    let (revisions, rev_events) = informers.watch::<ControllerRevision>(None);
    let ctx = Arc::new(Ctx {
        client,
        sets,
        pods,
        revisions,
        queue: WorkQueue::new(),
    });
    let set_loop = set_events.for_each(|ev| {
        if let Seen::Applied(s) | Seen::Deleted(s) = ev {
            ctx.queue.add(Key::of(&s));
        }
        std::future::ready(())
    });
    let pod_loop = pod_events.for_each(|ev| {
        ctx.pod_seen(ev);
        std::future::ready(())
    });
    let rev_loop = rev_events.for_each(|_| std::future::ready(()));
    let worker_ctx = ctx.clone();
    let workers = async {
        // A reconcile on a half-listed cache would recreate existing pods.
        let synced = ctx.sets.wait_until_ready().await.is_ok()
            && ctx.pods.wait_until_ready().await.is_ok()
            && ctx.revisions.wait_until_ready().await.is_ok();
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
        () = set_loop => anyhow::bail!("the StatefulSet watch ended"),
        () = pod_loop => anyhow::bail!("the pod watch ended"),
        () = rev_loop => anyhow::bail!("the ControllerRevision watch ended"),
        () = workers => anyhow::bail!("the StatefulSet workers stopped"),
    }
}

fn replicas_of(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

fn set_selector(set: &StatefulSet) -> reconcile::Selector {
    set.spec
        .as_ref()
        .map(|s| reconcile::selector(&s.selector))
        .unwrap_or_else(reconcile::Selector::nothing)
}

impl Ctx {
    /// Queue the set a pod event concerns: its controller, or for an
    /// orphan member every set it could belong to.
    fn pod_seen(&self, ev: Seen<Pod>) {
        reconcile::queue_owners(&self.queue, &self.sets, "StatefulSet", ev, |set, pod| {
            self.may_adopt(set, pod)
        });
    }

    /// Kubernetes adopts only pods whose name makes them members.
    fn may_adopt(&self, set: &StatefulSet, pod: &Pod) -> bool {
        let name = set.metadata.name.as_deref().unwrap_or_default();
        identity::ordinal_of(name, pod.metadata.name.as_deref().unwrap_or_default()).is_some()
            && set_selector(set).matches(pod.metadata.labels.as_ref())
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, Error> {
        let Some(set) = self.sets.get(&key.object_ref()) else {
            return Ok(Requeue::Never);
        };
        let owner = Owner::of(set.as_ref());
        let candidates = self.pods.state_filter(|p| {
            p.metadata.namespace.as_deref() == Some(key.namespace.as_str())
                && (controller_of(&p.metadata).is_some_and(|c| c.uid == owner.uid)
                    || self.may_adopt(&set, p))
        });
        let client = self.client.clone();
        let owned = claim(
            |ns| Api::<Pod>::namespaced(client.clone(), ns),
            &owner,
            &set_selector(&set),
            candidates,
        )
        .await
        .map_err(|source| api_error(&key, "claiming pods", source))?;
        let update = revision::update_revision_name(&set);
        if owner.deleting {
            self.update_status(&key, &set, &owned, &update, &update)
                .await?;
            return Ok(Requeue::Never);
        }
        let revisions = self.owned_revisions(&owner);
        self.ensure_revision(&key, &set, &revisions, &update)
            .await?;
        let current = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .filter(|c| {
                c == &update
                    || revisions
                        .iter()
                        .any(|r| r.metadata.name.as_ref() == Some(c))
            })
            .unwrap_or_else(|| update.clone());
        let current_template = revisions
            .iter()
            .find(|r| r.metadata.name.as_ref() == Some(&current))
            .and_then(|r| revision::template_of(r))
            .unwrap_or_else(|| revision::template(&set));
        let view = set_view(&set, &current, &update);
        for action in plan::plan(&view, &owned) {
            self.act(&key, &set, action, &view, &current_template)
                .await?;
        }
        self.prune_history(&key, &set, &revisions, &owned, &[&current, &update])
            .await?;
        self.update_status(&key, &set, &owned, &current, &update)
            .await
    }

    fn owned_revisions(&self, owner: &Owner) -> Vec<Arc<ControllerRevision>> {
        self.revisions
            .state_filter(|r| controller_of(&r.metadata).is_some_and(|c| c.uid == owner.uid))
    }

    /// Make the revision for the set's template exist and be the newest
    /// (re-applying an old template, as `rollout undo` does, renumbers it).
    async fn ensure_revision(
        &self,
        key: &Key,
        set: &StatefulSet,
        revisions: &[Arc<ControllerRevision>],
        name: &str,
    ) -> Result<(), Error> {
        let newest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
        let api = Api::<ControllerRevision>::namespaced(self.client.clone(), &key.namespace);
        let result = match revisions
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
        {
            Some(r) if r.revision == newest => return Ok(()),
            Some(_) => api
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"revision": newest + 1})),
                )
                .await
                .map(drop),
            None => api
                .create(
                    &PostParams::default(),
                    &revision::revision_object(set, name, newest + 1),
                )
                .await
                .map(drop),
        };
        match result {
            // Created already; the cache had not caught up.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            r => r.map_err(|source| api_error(key, "recording the revision", source)),
        }
    }

    /// Delete the oldest revisions beyond `revisionHistoryLimit` (10 by
    /// default) that neither the status nor any pod refers to, as
    /// Kubernetes' `truncateHistory` does.
    async fn prune_history(
        &self,
        key: &Key,
        set: &StatefulSet,
        revisions: &[Arc<ControllerRevision>],
        pods: &[Arc<Pod>],
        live: &[&str],
    ) -> Result<(), Error> {
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let in_use = |name: &str| {
            live.contains(&name) || pods.iter().any(|p| identity::revision_of(p) == Some(name))
        };
        let doomed = revision::beyond_history(revisions, limit, in_use);
        let api = Api::<ControllerRevision>::namespaced(self.client.clone(), &key.namespace);
        for name in doomed {
            match api.delete(&name, &DeleteParams::default()).await {
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(api_error(key, &format!("deleting revision {name}"), source))
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// Carry out one planned action.
    async fn act(
        &self,
        key: &Key,
        set: &StatefulSet,
        action: Action,
        view: &SetView,
        current_template: &PodTemplateSpec,
    ) -> Result<(), Error> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &key.namespace);
        match action {
            Action::Create { ordinal, revision } => {
                let (template, rev) = match revision {
                    Revision::Current => (current_template.clone(), &view.current_revision),
                    Revision::Update => (revision::template(set), &view.update_revision),
                };
                let pod = identity::new_pod(set, &template, rev, ordinal);
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => {
                        tracing::debug!(%key, ordinal, "created pod");
                        Ok(())
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Err(source) => Err(api_error(
                        key,
                        &format!("creating pod {}-{ordinal}", view.name),
                        source,
                    )),
                }
            }
            Action::Delete { name, uid } => {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &dp).await {
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                    Err(source) => Err(api_error(key, &format!("deleting pod {name}"), source)),
                    Ok(_) => {
                        tracing::debug!(%key, pod = %name, "deleted pod");
                        Ok(())
                    }
                }
            }
        }
    }

    /// Write the status when it changed; say when a Ready pod will turn
    /// available.
    async fn update_status(
        &self,
        key: &Key,
        set: &StatefulSet,
        owned: &[Arc<Pod>],
        current: &str,
        update: &str,
    ) -> Result<Requeue, Error> {
        let (status, requeue) = calculate_status(set, owned, current, update, Timestamp::now());
        if set.status.as_ref() == Some(&status) {
            return Ok(requeue);
        }
        let patch = json!({"status": {
            "replicas": status.replicas,
            "readyReplicas": status.ready_replicas,
            "availableReplicas": status.available_replicas,
            "currentReplicas": status.current_replicas,
            "updatedReplicas": status.updated_replicas,
            "currentRevision": status.current_revision,
            "updateRevision": status.update_revision,
            "observedGeneration": status.observed_generation,
            "collisionCount": status.collision_count,
        }});
        let api = Api::<StatefulSet>::namespaced(self.client.clone(), &key.namespace);
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(requeue),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Requeue::Never),
            Err(source) => Err(api_error(key, "updating status", source)),
        }
    }
}

fn api_error(key: &Key, action: &str, source: kube::Error) -> Error {
    Error::Api {
        key: key.clone(),
        action: action.into(),
        source,
    }
}

/// What the plan needs of the set.
fn set_view(set: &StatefulSet, current: &str, update: &str) -> SetView {
    let spec = set.spec.as_ref();
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    SetView {
        name: set.metadata.name.clone().unwrap_or_default(),
        replicas: replicas_of(set),
        start: identity::start_ordinal(set),
        parallel: spec.and_then(|s| s.pod_management_policy.as_deref()) == Some("Parallel"),
        rolling: strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete"),
        partition: strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0),
        current_revision: current.into(),
        update_revision: update.into(),
    }
}

/// The status Kubernetes computes from the set's pods: counts by readiness
/// and revision; once every pod is updated and Ready under RollingUpdate,
/// the update revision becomes the current one.
fn calculate_status(
    set: &StatefulSet,
    owned: &[Arc<Pod>],
    current: &str,
    update: &str,
    now: Timestamp,
) -> (StatefulSetStatus, Requeue) {
    let min_ready = set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let old = set.status.clone().unwrap_or_default();
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(current.into()),
        update_revision: Some(update.into()),
        collision_count: old.collision_count,
        conditions: old.conditions,
        ..StatefulSetStatus::default()
    };
    let (mut ready, mut available, mut cur, mut upd) = (0, 0, 0, 0);
    let mut requeue = Requeue::Never;
    for p in owned {
        status.replicas += 1;
        if identity::is_running_and_ready(p) {
            ready += 1;
            match available_at(p, min_ready) {
                Some(at) if at <= now => available += 1,
                Some(at) => {
                    let wait =
                        Duration::from_secs_f64(now.duration_until(at).as_secs_f64().max(0.0));
                    requeue = requeue.min(Requeue::After(wait));
                }
                None => {}
            }
        }
        if !identity::is_terminating(p) {
            let rev = identity::revision_of(p);
            cur += i32::from(rev == Some(current));
            upd += i32::from(rev == Some(update));
        }
    }
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    if rolling && upd == status.replicas && ready == status.replicas {
        cur = upd;
        status.current_revision = Some(update.into());
    }
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(cur);
    status.updated_replicas = Some(upd);
    (status, requeue)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap what they just created
mod tests;
