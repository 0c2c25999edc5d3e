//! The node IPAM controller: give every Node a pod subnet, as
//! kube-controller-manager does with `--allocate-node-cidrs`.
//!
//! The cluster CIDR ([`Config::cluster_cidr`], `10.244.0.0/16` by default)
//! is cut into subnets of [`Config::node_mask`] bits (`/24`, 254 pod
//! addresses per node). A Node without `spec.podCIDR` gets the lowest free
//! subnet in `spec.podCIDR` and `spec.podCIDRs`; the API server lets that
//! field go from empty to set once and never change, so a Node that has one
//! keeps it — including one outside the cluster CIDR, set by hand. Which
//! subnets are free is worked out from the Node cache each time
//! ([`allocator`]), so a deleted Node's subnet is free again as soon as the
//! cache drops it.
//!
//! When every subnet is taken, the Node is left without one, a
//! `CIDRNotAvailable` Event is recorded on it (once, until it gets one) and
//! the controller logs it; the Node is looked at again when another Node is
//! deleted.

pub mod allocator;
pub mod cidr;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde_json::json;

use crate::nodelifecycle::events;
use crate::reconcile::{self, Key, Requeue, Seen, WorkQueue};
use allocator::Allocator;
pub use cidr::{Cidr, CidrError, CidrSet};

/// Workers assigning subnets at once.
const WORKERS: usize = 2;
/// The source Kubernetes' allocator reports its Events as.
const COMPONENT: &str = "cidrAllocator";

/// Where pod subnets come from (Kubernetes' `--cluster-cidr` and
/// `--node-cidr-mask-size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The range every node's pod subnet is cut from.
    pub cluster_cidr: Cidr,
    /// The prefix length of each node's subnet.
    pub node_mask: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_cidr: cidr::DEFAULT_CLUSTER_CIDR,
            node_mask: 24,
        }
    }
}

/// Why an assignment failed; it is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or did not answer.
    #[error("node {node}: setting podCIDR {cidr}: {source}")]
    Api {
        /// The Node.
        node: String,
        /// The subnet being set.
        cidr: Cidr,
        /// The API error.
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    nodes: Store<Node>,
    allocator: Mutex<Allocator>,
    /// Nodes already told (by an Event) that no subnet is free.
    reported: Mutex<HashSet<String>>,
    queue: WorkQueue,
}

/// A Node's pod CIDR, if it has one: the first of `podCIDRs`, else
/// `podCIDR`.
fn pod_cidr(node: &Node) -> Option<&str> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .as_ref()
        .and_then(|l| l.first())
        .or(spec.pod_cidr.as_ref())
        .map(String::as_str)
        .filter(|c| !c.is_empty())
}

/// Run the controller until its watch or workers stop. Fails at once if
/// the configuration cannot be cut into node subnets.
pub async fn run(client: Client, cfg: Config) -> anyhow::Result<()> {
    let informers = reconcile::Informers::new(client.clone());
    run_with(client, cfg, &informers).await
}

/// [`run`] on watches shared with the process's other controllers.
pub async fn run_with(
    client: Client,
    cfg: Config,
    informers: &reconcile::Informers,
) -> anyhow::Result<()> {
    let layout = CidrSet::new(cfg.cluster_cidr, cfg.node_mask)?;
    tracing::info!(
        cluster_cidr = %cfg.cluster_cidr,
        node_mask = cfg.node_mask,
        subnets = layout.capacity(),
        "allocating node pod CIDRs"
    );
    let (nodes, node_events) = informers.watch::<Node>(None);
    let ctx = Arc::new(Ctx {
        client,
        nodes,
        allocator: Mutex::new(Allocator::new(layout)),
        reported: Mutex::new(HashSet::new()),
        queue: WorkQueue::new(),
    });
    let node_loop = node_events.for_each(|ev| {
        match ev {
            Seen::Applied(n) if pod_cidr(&n).is_none() => ctx.queue.add(Key::of(&n)),
            Seen::Applied(n) => {
                ctx.lock_reported()
                    .remove(n.metadata.name.as_deref().unwrap_or_default());
            }
            // A subnet may have come free; after a relist, deletions may
            // have been missed.
            Seen::Deleted(n) => {
                ctx.lock_reported()
                    .remove(n.metadata.name.as_deref().unwrap_or_default());
                ctx.queue_waiting_nodes();
            }
            Seen::Synced => ctx.queue_waiting_nodes(),
        }
        std::future::ready(())
    });
    let worker_ctx = ctx.clone();
    let workers = async {
        // Allocating before every Node is listed could hand out a subnet
        // an unlisted Node holds.
        if ctx.nodes.wait_until_ready().await.is_ok() {
            ctx.queue
                .run(WORKERS, move |key| {
                    let ctx = worker_ctx.clone();
                    async move { ctx.reconcile(key).await }
                })
                .await;
        }
    };
    tokio::select! {
        () = node_loop => anyhow::bail!("the node watch ended"),
        () = workers => anyhow::bail!("the node IPAM workers stopped"),
    }
}

impl Ctx {
    fn lock_reported(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.reported.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_allocator(&self) -> std::sync::MutexGuard<'_, Allocator> {
        // Every method leaves the allocator whole before it can panic.
        self.allocator.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue_waiting_nodes(&self) {
        for n in self.nodes.state() {
            if pod_cidr(&n).is_none() {
                self.queue.add(Key::of(n.as_ref()));
            }
        }
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Requeue, Error> {
        let name = key.name.as_str();
        let node = self
            .nodes
            .get(&kube::runtime::reflector::ObjectRef::new(name));
        let Some(node) = node.filter(|n| pod_cidr(n).is_none()) else {
            return Ok(Requeue::Never);
        };
        let assigned = {
            let mut alloc = self.lock_allocator();
            let state = self.nodes.state();
            alloc.sync(
                state
                    .iter()
                    .map(|n| (n.metadata.name.as_deref().unwrap_or_default(), pod_cidr(n))),
            );
            alloc.assign(name)
        };
        let Some(cidr) = assigned else {
            self.report_exhausted(&node);
            return Ok(Requeue::Never);
        };
        let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
        match Api::<Node>::all(self.client.clone())
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(node = name, %cidr, "assigned pod CIDR");
                self.lock_reported().remove(name);
                Ok(Requeue::Never)
            }
            // Gone, or someone else set a CIDR first (the API server refuses
            // a change): the cache will show it; give the subnet back.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => {
                self.lock_allocator().release(name);
                Ok(Requeue::Never)
            }
            // The subnet stays assigned: the retry writes the same one.
            Err(source) => Err(Error::Api {
                node: name.to_string(),
                cidr,
                source,
            }),
        }
    }

    /// Say once per Node that no subnet is left for it.
    fn report_exhausted(&self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if !self.lock_reported().insert(name.clone()) {
            return;
        }
        tracing::warn!(node = %name, "no pod CIDR left for the node: the cluster CIDR is exhausted");
        events::record_as(
            &self.client,
            COMPONENT,
            node,
            "CIDRNotAvailable",
            format!("Node {name} status is now: CIDRNotAvailable"),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap what they just created
mod tests;
