//! The node lifecycle controller and its taint manager, as Kubernetes'.
//!
//! Two loops share watch caches of Nodes, node Leases and pods:
//!
//! - **The monitor** looks at every node each `monitor_period`. A node whose
//!   Lease and Ready heartbeat have not moved for `grace` (see [`health`])
//!   gets its kubelet conditions set to Unknown, a NodeNotReady event, and
//!   its pods marked not Ready (so Services stop sending them traffic). Then
//!   the Ready condition decides the taints: `node.kubernetes.io/not-ready`
//!   for False, `node.kubernetes.io/unreachable` for Unknown, none for True
//!   — each as NoSchedule and NoExecute.
//! - **The taint manager** reconciles pods bound to nodes with NoExecute
//!   taints: a pod that does not tolerate one is evicted (deleted) at once;
//!   one that tolerates them for `tolerationSeconds` is evicted that long
//!   after the taint manager first saw it tainted (see [`taints`]). Evicted
//!   pods get the DisruptionTarget condition and a TaintManagerEviction
//!   event first.
//!
//! Left out, as skiff runs small clusters: Kubernetes' eviction rate limits
//! and zone disruption states (which stop evictions when a whole zone goes
//! dark).

pub mod events;
pub mod health;
pub mod taints;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use serde_json::json;

use crate::reconcile::{self, Key, Requeue, Seen, WorkQueue};
use health::Health;
use taints::Eviction;

/// The namespace node Leases live in.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Workers evicting pods at once.
const WORKERS: usize = 4;

/// How quickly the controller judges nodes and evicts their pods.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a node may go without renewing its Lease or posting its
    /// Ready heartbeat before it is Unknown (Kubernetes'
    /// `--node-monitor-grace-period`, 40 s).
    pub grace: Duration,
    /// How long pods lacking a `not-ready`/`unreachable` NoExecute
    /// toleration may stay on such a node (Kubernetes'
    /// `--default-not-ready-toleration-seconds`, 300). The API server gives
    /// new pods these tolerations already; this covers pods that predate it.
    pub default_toleration_seconds: u64,
    /// How often every node is looked at (`--node-monitor-period`, 5 s).
    pub monitor_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grace: Duration::from_secs(40),
            default_toleration_seconds: 300,
            monitor_period: Duration::from_secs(5),
        }
    }
}

/// Why a step of the controller failed; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What the controller was doing, to whom.
        what: String,
        /// The API error.
        source: kube::Error,
    },
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// Whether an API error means "gone or changed meanwhile": the next look
/// sees the truth, so it is not a failure.
fn is_stale(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

struct Ctx {
    client: Client,
    cfg: Config,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    health: Mutex<Health>,
    /// Pods the taint manager has seen tainted: their UID and since when.
    tainted_since: Mutex<HashMap<Key, (String, Instant)>>,
    queue: WorkQueue,
}

/// Run the node lifecycle controller and taint manager until a watch ends.
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
    let (nodes, node_events) = informers.watch::<Node>(None);
    let (leases, lease_events) = informers.watch::<Lease>(Some(LEASE_NAMESPACE));
    let (pods, pod_events) = informers.watch::<Pod>(None);
    let ctx = Arc::new(Ctx {
        client,
        cfg,
        nodes,
        leases,
        pods,
        health: Mutex::new(Health::default()),
        tainted_since: Mutex::new(HashMap::new()),
        queue: WorkQueue::new(),
    });
    let node_loop = node_events.for_each(|ev| {
        if let Seen::Applied(n) = ev {
            ctx.queue_pods_on(n.metadata.name.as_deref().unwrap_or_default());
        }
        std::future::ready(())
    });
    let lease_loop = lease_events.for_each(|_| std::future::ready(()));
    let pod_loop = pod_events.for_each(|ev| {
        match ev {
            Seen::Applied(p) if node_of(&p).is_some() => ctx.queue.add(Key::of(&p)),
            Seen::Deleted(p) => ctx.forget(&Key::of(&p)),
            _ => {}
        }
        std::future::ready(())
    });
    let synced = async {
        ctx.nodes.wait_until_ready().await.is_ok()
            && ctx.leases.wait_until_ready().await.is_ok()
            && ctx.pods.wait_until_ready().await.is_ok()
    };
    let monitor_ctx = ctx.clone();
    let worker_ctx = ctx.clone();
    let work = async {
        if !synced.await {
            return;
        }
        let monitor = monitor_ctx.monitor();
        let workers = ctx.queue.run(WORKERS, move |key| {
            let ctx = worker_ctx.clone();
            async move { ctx.reconcile_pod(key).await }
        });
        tokio::join!(monitor, workers);
    };
    tokio::select! {
        () = node_loop => anyhow::bail!("the node watch ended"),
        () = lease_loop => anyhow::bail!("the node lease watch ended"),
        () = pod_loop => anyhow::bail!("the pod watch ended"),
        () = work => anyhow::bail!("the node lifecycle workers stopped"),
    }
}

/// The node a pod is bound to.
fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn conditions_of(node: &Node) -> &[NodeCondition] {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn taints_of(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

impl Ctx {
    fn lock_tainted(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (String, Instant)>> {
        // Every update is a single insert or remove: consistent after a panic.
        self.tainted_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, key: &Key) {
        self.lock_tainted().remove(key);
    }

    /// Queue every pod bound to `node`: its taints may have changed.
    fn queue_pods_on(&self, node: &str) {
        for p in self.pods.state_filter(|p| node_of(p) == Some(node)) {
            self.queue.add(Key::of(p.as_ref()));
        }
    }

    /// Look at every node each `monitor_period`, forever.
    async fn monitor(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.monitor_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let nodes = self.nodes.state();
            let names: HashSet<String> = nodes
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect();
            self.health
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(&names);
            for node in nodes {
                if let Err(e) = self.monitor_node(&node).await {
                    tracing::warn!(error = %e, "node health update failed; will retry");
                }
            }
        }
    }

    /// Update one node's conditions and taints from its heartbeats.
    async fn monitor_node(&self, node: &Node) -> Result<(), Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let renew = self
            .leases
            .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE))
            .and_then(|l| {
                l.spec
                    .as_ref()?
                    .renew_time
                    .as_ref()
                    .map(|t| t.0.to_string())
            });
        let conditions = conditions_of(node);
        let silent = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(
                &name,
                renew,
                health::ready_heartbeat(conditions),
                Instant::now(),
                self.cfg.grace,
            );
        let now = Timestamp::now();
        let mut node = node.clone();
        if silent {
            if let Some(silenced) = health::silenced_conditions(conditions, now) {
                node = self.mark_unknown(&node, silenced).await?;
            }
        }
        let ready = health::ready_status(conditions_of(&node));
        if let Some(taints) = health::desired_taints(taints_of(&node), ready, now) {
            self.set_taints(&node, taints).await?;
        }
        Ok(())
    }

    /// Write the Unknown conditions, record NodeNotReady, and mark the
    /// node's pods not Ready (Kubernetes' `MarkPodsNotReady`).
    async fn mark_unknown(
        &self,
        node: &Node,
        conditions: Vec<NodeCondition>,
    ) -> Result<Node, Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        // Guarded by resourceVersion: a heartbeat that lands meanwhile wins.
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "status": {"conditions": conditions},
        });
        let updated = Api::<Node>::all(self.client.clone())
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!("marking node {name} Unknown")))?;
        tracing::info!(node = %name, "node stopped posting status; marked Unknown");
        events::record(
            &self.client,
            node,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        );
        for pod in self
            .pods
            .state_filter(|p| node_of(p) == Some(name.as_str()))
        {
            self.mark_pod_not_ready(&pod).await?;
        }
        Ok(updated)
    }

    async fn mark_pod_not_ready(&self, pod: &Pod) -> Result<(), Error> {
        let key = Key::of(pod);
        let patch = json!({"status": {"conditions": [{
            "type": "Ready", "status": "False",
            "lastTransitionTime": Timestamp::now().to_string(),
        }]}});
        match Api::<Pod>::namespaced(self.client.clone(), &key.namespace)
            .patch_status(
                &key.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Err(e) if !is_stale(&e) => Err(api_error(format!("marking pod {key} not Ready"))(e)),
            _ => Ok(()),
        }
    }

    /// Replace the node's taints, guarded by its resourceVersion so a
    /// `kubectl taint` meanwhile is not lost (the next period retries).
    async fn set_taints(&self, node: &Node, taints: Vec<Taint>) -> Result<(), Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        });
        match Api::<Node>::all(self.client.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(e) if !is_stale(&e) => Err(api_error(format!("tainting node {name}"))(e)),
            _ => Ok(()),
        }
    }

    /// The taint manager's reconcile of one pod.
    async fn reconcile_pod(self: Arc<Self>, key: Key) -> Result<Requeue, Error> {
        let Some(pod) = self.pods.get(&key.object_ref()) else {
            self.forget(&key);
            return Ok(Requeue::Never);
        };
        let node = node_of(&pod).and_then(|n| self.nodes.get(&ObjectRef::new(n)));
        let (Some(node), true) = (node, crate::replicaset::pods::is_active(&pod)) else {
            self.forget(&key);
            return Ok(Requeue::Never);
        };
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let decision = taints::eviction_for(
            tolerations,
            taints_of(&node),
            self.cfg.default_toleration_seconds,
        );
        let wait = match decision {
            Eviction::Never => {
                self.forget(&key);
                return Ok(Requeue::Never);
            }
            Eviction::Now => Duration::ZERO,
            Eviction::After(d) => {
                let since = self.tainted_since(&key, &pod);
                d.saturating_sub(since.elapsed())
            }
        };
        if !wait.is_zero() {
            return Ok(Requeue::After(wait));
        }
        self.evict(&key, &pod).await?;
        Ok(Requeue::Never)
    }

    /// When the taint manager first saw this pod (by UID) tainted.
    fn tainted_since(&self, key: &Key, pod: &Pod) -> Instant {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut all = self.lock_tainted();
        let entry = all
            .entry(key.clone())
            .or_insert_with(|| (uid.clone(), Instant::now()));
        if entry.0 != uid {
            *entry = (uid, Instant::now());
        }
        entry.1
    }

    /// Mark the pod as a disruption target, record why, and delete it.
    async fn evict(&self, key: &Key, pod: &Pod) -> Result<(), Error> {
        tracing::info!(pod = %key, "taint manager evicting pod");
        events::record(
            &self.client,
            pod,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {key}"),
        );
        let api = Api::<Pod>::namespaced(self.client.clone(), &key.namespace);
        let condition = json!({"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": Timestamp::now().to_string(),
        }]}});
        if let Err(e) = api
            .patch_status(
                &key.name,
                &PatchParams::default(),
                &Patch::Strategic(&condition),
            )
            .await
        {
            if !is_stale(&e) {
                return Err(api_error(format!("marking pod {key} for eviction"))(e));
            }
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&key.name, &dp).await {
            Err(e) if !is_stale(&e) => Err(api_error(format!("evicting pod {key}"))(e)),
            _ => {
                self.forget(key);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap what they just created
mod tests;
