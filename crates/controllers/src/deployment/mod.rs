//! The Deployment controller: roll a Deployment's pod template out through
//! ReplicaSets, as Kubernetes' does.
//!
//! A Deployment owns one ReplicaSet per template it has run. The *new*
//! ReplicaSet is the owned one whose template equals the Deployment's
//! (ignoring `pod-template-hash`); all others are *old*. Restoring an old
//! template (`kubectl rollout undo`) therefore makes its ReplicaSet new again,
//! and it gets the next revision. Each reconcile:
//!
//! 1. claims ReplicaSets by selector and controller reference;
//! 2. if paused or the replica count changed, scales the ReplicaSets
//!    ([`sync::Sync::scale`]) and stops there;
//! 3. otherwise moves the rollout one step ([`rollout`]): RollingUpdate
//!    within maxSurge/maxUnavailable, or Recreate (old to zero, wait for their
//!    pods to go, then the new one up);
//! 4. prunes old ReplicaSets beyond `revisionHistoryLimit` once complete,
//!    and writes status and the Available/Progressing conditions.
//!
//! The caches (Deployments, ReplicaSets, pods) come from watches; pods
//! are only read for Recreate, which must see old pods gone, not just
//! scaled down.

pub mod rollout;
pub mod sync;
pub mod util;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Client;

use crate::reconcile::{self, controller_of, Key, Requeue, Seen, WorkQueue};

/// Workers reconciling different Deployments at once.
const WORKERS: usize = 4;

/// Why a Deployment reconcile failed; it is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("deployment {key}: {action}: {source}")]
    Api {
        /// The Deployment.
        key: Key,
        /// What the controller was doing.
        action: &'static str,
        /// The API error.
        source: kube::Error,
    },
    /// maxSurge or maxUnavailable is neither an integer nor a percentage.
    #[error("deployment {key}: {source}")]
    Strategy {
        /// The Deployment.
        key: Key,
        /// What was wrong.
        source: util::IntOrPercentError,
    },
    /// The new ReplicaSet's name is taken by one that is not ours; the
    /// collision count was bumped and the next attempt uses another hash.
    #[error("deployment {key}: replicaset name {name} collides with an existing one; retrying with collisionCount {count}")]
    HashCollision {
        /// The Deployment.
        key: Key,
        /// The name that was taken.
        name: String,
        /// The new collision count.
        count: i32,
    },
}

/// Caches and the queue shared by the workers.
pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) deployments: Store<Deployment>,
    pub(crate) replicasets: Store<ReplicaSet>,
    pub(crate) pods: Store<Pod>,
    pub(crate) queue: WorkQueue,
}

/// Run the Deployment controller until its watches or workers stop.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let informers = reconcile::Informers::new(client.clone());
    run_with(client, &informers).await
}

/// [`run`] on watches shared with the process's other controllers.
pub async fn run_with(client: Client, informers: &reconcile::Informers) -> anyhow::Result<()> {
    let (deployments, d_events) = informers.watch::<Deployment>(None);
    let (replicasets, rs_events) = informers.watch::<ReplicaSet>(None);
    let (pods, pod_events) = informers.watch::<Pod>(None);
    let ctx = Arc::new(Ctx {
        client,
        deployments,
        replicasets,
        pods,
        queue: WorkQueue::new(),
    });
    let d_loop = d_events.for_each(|ev| {
        if let Seen::Applied(d) | Seen::Deleted(d) = ev {
            ctx.queue.add(Key::of(&d));
        }
        std::future::ready(())
    });
    let rs_loop = rs_events.for_each(|ev| {
        ctx.replicaset_seen(ev);
        std::future::ready(())
    });
    let pod_loop = pod_events.for_each(|ev| {
        if let Seen::Deleted(p) = ev {
            ctx.pod_deleted(&p);
        }
        std::future::ready(())
    });
    let worker_ctx = ctx.clone();
    let workers = async {
        // As Kubernetes' WaitForCacheSync: never decide on a half-listed
        // cache (it would create a ReplicaSet that already exists).
        let synced = ctx.deployments.wait_until_ready().await.is_ok()
            && ctx.replicasets.wait_until_ready().await.is_ok()
            && ctx.pods.wait_until_ready().await.is_ok();
        if synced {
            ctx.queue
                .run(WORKERS, move |key| {
                    let ctx = worker_ctx.clone();
                    async move { sync::reconcile(ctx, key).await }
                })
                .await;
        }
    };
    tokio::select! {
        () = d_loop => anyhow::bail!("the Deployment watch ended"),
        () = rs_loop => anyhow::bail!("the ReplicaSet watch ended"),
        () = pod_loop => anyhow::bail!("the pod watch ended"),
        () = workers => anyhow::bail!("the Deployment workers stopped"),
    }
}

impl Ctx {
    /// Queue the Deployments a ReplicaSet event concerns: its controller,
    /// or for an orphan every Deployment in its namespace that selects it.
    fn replicaset_seen(&self, ev: Seen<ReplicaSet>) {
        reconcile::queue_owners(&self.queue, &self.deployments, "Deployment", ev, |d, rs| {
            d.spec.as_ref().is_some_and(|s| {
                reconcile::selects(
                    &reconcile::selector(&s.selector),
                    rs.metadata.labels.as_ref(),
                )
            })
        });
    }

    /// A Recreate rollout waits for old pods to be gone: wake its
    /// Deployment when one goes.
    fn pod_deleted(&self, pod: &Pod) {
        let Some(rs_ref) = controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet") else {
            return;
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let Some(rs) = self
            .replicasets
            .get(&ObjectRef::new(&rs_ref.name).within(&ns))
        else {
            return;
        };
        if let Some(d) = controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") {
            let key = Key {
                namespace: ns,
                name: d.name.clone(),
            };
            if self
                .deployments
                .get(&key.object_ref())
                .is_some_and(|d| util::is_recreate(&d))
            {
                self.queue.add(key);
            }
        }
    }
}

/// What one reconcile returns.
pub(crate) type Outcome = Result<Requeue, Error>;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap what they just created
mod tests;
