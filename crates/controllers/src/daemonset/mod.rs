//! The DaemonSet controller: one pod per eligible node, as Kubernetes'.
//!
//! Each reconcile reads the DaemonSet, the nodes and the pods from watch
//! caches, claims pods like the ReplicaSet controller (adopt matching
//! orphans, release what stopped matching), and — unless creates or deletes
//! it issued are still unseen (the ReplicaSet's [`Expectations`]) — carries
//! out the [`plan`]: a pod for every node that should run one ([`nodes`]),
//! none elsewhere, and the rolling update. Pods are not bound by the
//! controller: since Kubernetes 1.12 a daemon pod carries a required node
//! affinity `matchFields metadata.name In [node]` and the scheduler binds
//! it, so it passes through the same resource checks as every pod.
//!
//! The revision is the `controller-revision-hash` of the template
//! ([`crate::hash`]), recorded as a ControllerRevision ([`history`]) so
//! `kubectl rollout history/undo daemonset` work; `kubectl rollout status`
//! reads the status.

pub mod history;
pub mod nodes;
pub mod plan;
pub mod podctl;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde_json::json;

use crate::hash::pod_template_hash;
use crate::reconcile::{self, claim, controller_of, Key, Owner, Requeue, Seen, WorkQueue};
use crate::replicaset::expectations::Expectations;
use plan::{Placement, World};

/// Workers reconciling different DaemonSets at once.
const WORKERS: usize = 2;

/// Why a DaemonSet reconcile failed; it is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("daemonset {key}: {action}: {source}")]
    Api {
        /// The DaemonSet.
        key: Key,
        /// What the controller was doing.
        action: &'static str,
        /// The API error.
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    daemonsets: Store<DaemonSet>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    queue: WorkQueue,
}

/// Run the DaemonSet controller until its watches or workers stop.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let informers = reconcile::Informers::new(client.clone());
    run_with(client, &informers).await
}

/// [`run`] on watches shared with the process's other controllers.
pub async fn run_with(client: Client, informers: &reconcile::Informers) -> anyhow::Result<()> {
    let (daemonsets, ds_events) = informers.watch::<DaemonSet>(None);
    let (nodes, node_events) = informers.watch::<Node>(None);
    let (pods, pod_events) = informers.watch::<Pod>(None);
    let (revisions, revision_events) = informers.watch::<ControllerRevision>(None);
    let ctx = Arc::new(Ctx {
        client,
        daemonsets,
        nodes,
        pods,
        revisions,
        expectations: Expectations::default(),
        queue: WorkQueue::new(),
    });
    let ds_loop = ds_events.for_each(|ev| {
        if let Seen::Applied(ds) | Seen::Deleted(ds) = ev {
            ctx.queue.add(Key::of(&ds));
        }
        std::future::ready(())
    });
    // Any node change (added, relabelled, tainted, gone) may change where
    // every DaemonSet runs; there are few DaemonSets, so look at them all.
    let node_loop = node_events.for_each(|_| {
        ctx.queue_all();
        std::future::ready(())
    });
    let pod_loop = pod_events.for_each(|ev| {
        ctx.pod_seen(ev);
        std::future::ready(())
    });
    // A revision deleted or renumbered by hand is put right again.
    let revision_loop = revision_events.for_each(|ev| {
        if let Seen::Applied(r) | Seen::Deleted(r) = ev {
            if let Some(owner) = controller_of(&r.metadata).filter(|o| o.kind == "DaemonSet") {
                ctx.queue.add(Key {
                    namespace: r.metadata.namespace.clone().unwrap_or_default(),
                    name: owner.name.clone(),
                });
            }
        }
        std::future::ready(())
    });
    let worker_ctx = ctx.clone();
    let workers = async {
        let synced = ctx.daemonsets.wait_until_ready().await.is_ok()
            && ctx.nodes.wait_until_ready().await.is_ok()
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
        () = ds_loop => anyhow::bail!("the DaemonSet watch ended"),
        () = node_loop => anyhow::bail!("the node watch ended"),
        () = pod_loop => anyhow::bail!("the pod watch ended"),
        () = revision_loop => anyhow::bail!("the ControllerRevision watch ended"),
        () = workers => anyhow::bail!("the DaemonSet workers stopped"),
    }
}

impl Ctx {
    fn queue_all(&self) {
        for ds in self.daemonsets.state() {
            self.queue.add(Key::of(ds.as_ref()));
        }
    }

    /// Queue the DaemonSet a pod event concerns: its controller, or for an
    /// orphan every DaemonSet in its namespace whose selector matches.
    fn pod_seen(&self, ev: Seen<Pod>) {
        reconcile::queue_owners(&self.queue, &self.daemonsets, "DaemonSet", ev, |ds, pod| {
            ds.spec.as_ref().is_some_and(|s| {
                reconcile::selector(&s.selector).matches(pod.metadata.labels.as_ref())
            })
        });
    }

    fn api_err<'a>(key: &'a Key, action: &'static str) -> impl FnOnce(kube::Error) -> Error + 'a {
        move |source| Error::Api {
            key: key.clone(),
            action,
            source,
        }
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, Error> {
        let Some(ds) = self.daemonsets.get(&key.object_ref()) else {
            self.expectations.forget(&key);
            return Ok(Requeue::Never);
        };
        let sel = ds
            .spec
            .as_ref()
            .map(|s| reconcile::selector(&s.selector))
            .unwrap_or_else(reconcile::Selector::nothing);
        if sel.is_empty() {
            // Kubernetes refuses to act on a selector that selects everything.
            return Ok(Requeue::Never);
        }
        let candidates = self
            .pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(key.namespace.as_str()));
        let client = self.client.clone();
        let owned = claim(
            |ns| Api::<Pod>::namespaced(client.clone(), ns),
            &Owner::of(ds.as_ref()),
            &sel,
            candidates,
        )
        .await
        .map_err(Self::api_err(&key, "claiming pods"))?;
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&template, collisions);
        let nodes = self.nodes.state();
        let placement = Placement::new(&owned);
        let world = World {
            ds: &ds,
            nodes: &nodes,
            placement: &placement,
            hash: &hash,
            now: Timestamp::now(),
        };
        if ds.metadata.deletion_timestamp.is_none() {
            self.sync_history(&key, &ds, &hash, &owned).await?;
        }
        let managed = if self.expectations.satisfied(&key, &self.pods)
            && ds.metadata.deletion_timestamp.is_none()
        {
            self.carry_out(&key, &ds, &hash, plan::plan(&world)).await
        } else {
            Ok(())
        };
        let (status, requeue) = plan::status(&world);
        self.update_status(&key, &ds, status).await?;
        managed.map(|()| requeue)
    }

    /// Record the current revision and trim the history.
    async fn sync_history(
        &self,
        key: &Key,
        ds: &DaemonSet,
        hash: &str,
        owned: &[Arc<Pod>],
    ) -> Result<(), Error> {
        let ns = key.namespace.as_str();
        let cached = self
            .revisions
            .state_filter(|r| r.metadata.namespace.as_deref() == Some(ns));
        let mine = history::owned_by(ds, cached);
        let changes = history::plan(ds, hash, &mine, owned);
        if changes == history::Changes::default() {
            return Ok(());
        }
        let api = Api::<ControllerRevision>::namespaced(self.client.clone(), ns);
        history::apply(&api, ds, hash, changes)
            .await
            .map_err(Self::api_err(key, "updating the revision history"))
    }

    /// Create and delete what the plan says.
    async fn carry_out(
        &self,
        key: &Key,
        ds: &DaemonSet,
        hash: &str,
        plan: plan::Plan,
    ) -> Result<(), Error> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &key.namespace);
        if !plan.delete.is_empty() {
            tracing::debug!(%key, pods = plan.delete.len(), "deleting daemon pods");
            podctl::delete_pods(&api, key, &self.expectations, plan.delete)
                .await
                .map_err(Self::api_err(key, "deleting pods"))?;
        }
        let pods = plan
            .create
            .iter()
            .map(|node| nodes::pod_for_node(ds, hash, node))
            .collect();
        podctl::create_pods(&api, key, &self.expectations, pods)
            .await
            .map_err(Self::api_err(key, "creating pods"))
    }

    /// Write the status through the subresource when it changed.
    async fn update_status(
        &self,
        key: &Key,
        ds: &DaemonSet,
        status: DaemonSetStatus,
    ) -> Result<(), Error> {
        if ds.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let patch = json!({"status": {
            "desiredNumberScheduled": status.desired_number_scheduled,
            "currentNumberScheduled": status.current_number_scheduled,
            "numberMisscheduled": status.number_misscheduled,
            "numberReady": status.number_ready,
            "numberAvailable": status.number_available,
            "numberUnavailable": status.number_unavailable,
            "updatedNumberScheduled": status.updated_number_scheduled,
            "observedGeneration": status.observed_generation,
        }});
        let api = Api::<DaemonSet>::namespaced(self.client.clone(), &key.namespace);
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(Error::Api {
                key: key.clone(),
                action: "updating status",
                source,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap what they just created
mod tests;
