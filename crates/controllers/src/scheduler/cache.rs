//! The scheduler's picture of the cluster: nodes with what is already
//! placed on them, and the pods it has to place.
//!
//! Everything a filter or score needs is computed here once, when an
//! object arrives from the watch, so a scheduling cycle is arithmetic over
//! plain fields. Pods the scheduler has just bound are *assumed* on their
//! node at once (Reserve), before the API server confirms the binding, so
//! the next pod already sees the node's reduced room; a failed bind
//! forgets the assumption.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, PodAffinityTerm, Taint, Toleration};
use k8s_openapi::api::node::v1::RuntimeClass;

use super::resources::{non_zero_requests, pod_requests, Resources};
use crate::reconcile::Selector;

/// Taint Kubernetes' node lifecycle puts on a node whose Ready condition is
/// False; the scheduler treats such a node as if it carried it.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint for a node whose Ready condition is Unknown or missing.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// `namespace/name` of a pod.
pub type PodKey = String;

/// A pod, with what scheduling needs precomputed.
#[derive(Debug)]
pub struct PodInfo {
    /// The pod as last seen.
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: PodKey,
    /// What it asks of a node (requests, init containers, overhead).
    pub requests: Resources,
    /// uid of its controlling owner (a ReplicaSet), for spreading.
    pub owner: Option<String>,
    /// `spec.priority`; higher is scheduled first.
    pub priority: i32,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// `metadata.labels`.
    pub labels: Arc<BTreeMap<String, String>>,
    /// Required pod anti-affinity terms, which constrain pods scheduled
    /// after this one lands.
    pub anti_affinity: Arc<[PodAffinityTerm]>,
}

impl PodInfo {
    /// Precompute a pod's scheduling data.
    pub fn new(pod: Pod) -> Self {
        let spec = pod.spec.as_ref();
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone());
        PodInfo {
            key: pod_key(&pod),
            requests: pod_requests(&pod),
            owner,
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            tolerations: spec.and_then(|s| s.tolerations.clone()).unwrap_or_default(),
            labels: Arc::new(pod.metadata.labels.clone().unwrap_or_default()),
            anti_affinity: spec
                .and_then(|s| s.affinity.as_ref())
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default()
                .into(),
            pod: Arc::new(pod),
        }
    }

    /// `metadata.namespace`.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// A node and what the scheduler has placed on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.taints`, plus the not-ready/unreachable taint the node's
    /// condition implies.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Names in `status.runtimeHandlers`.
    pub runtime_handlers: HashSet<String>,
    /// `status.allocatable`, without pods.
    pub allocatable: Resources,
    /// `status.allocatable.pods`.
    pub allowed_pods: i64,
    /// Sum of the requests of pods on the node (bound or assumed).
    pub requested: Resources,
    /// Sum of CPU and memory requests with best-effort defaults.
    pub non_zero_requested: (i64, i64),
    /// Number of pods on the node.
    pub pod_count: i64,
    /// Pods on the node per controlling owner uid.
    pub owners: HashMap<String, u32>,
    /// False for a placeholder kept for pods bound to a node not (yet) seen.
    pub present: bool,
}

impl NodeInfo {
    /// Precompute a node's static scheduling data; usage starts empty.
    pub fn from_node(node: &Node) -> Self {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let mut taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        if let Some(t) = readiness_taint(node) {
            if !taints
                .iter()
                .any(|x| x.key == t.key && x.effect == t.effect)
            {
                taints.push(t);
            }
        }
        let allocatable = status.and_then(|s| s.allocatable.as_ref());
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            runtime_handlers: status
                .and_then(|s| s.runtime_handlers.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|h| h.name.clone())
                .collect(),
            allowed_pods: allocatable
                .and_then(|a| a.get("pods"))
                .and_then(|q| apimachinery::validation::quantity::quantity_value(&q.0).ok())
                .and_then(|v| i64::try_from(v).ok())
                .unwrap_or(110),
            allocatable: Resources::from_list(allocatable),
            present: true,
            ..Default::default()
        }
    }

    /// Take on a new version of the node, keeping what is placed on it.
    fn update_from(&mut self, node: &Node) {
        let fresh = NodeInfo::from_node(node);
        *self = NodeInfo {
            requested: std::mem::take(&mut self.requested),
            non_zero_requested: self.non_zero_requested,
            pod_count: self.pod_count,
            owners: std::mem::take(&mut self.owners),
            ..fresh
        };
    }

    fn add_pod(&mut self, p: &PlacedPod) {
        self.requested.add(&p.requests);
        let (c, m) = non_zero_requests(&p.requests);
        self.non_zero_requested.0 += c;
        self.non_zero_requested.1 += m;
        self.pod_count += 1;
        if let Some(o) = &p.owner {
            *self.owners.entry(o.clone()).or_default() += 1;
        }
    }

    fn remove_pod(&mut self, p: &PlacedPod) {
        self.requested.sub(&p.requests);
        let (c, m) = non_zero_requests(&p.requests);
        self.non_zero_requested.0 -= c;
        self.non_zero_requested.1 -= m;
        self.pod_count -= 1;
        if let Some(o) = &p.owner {
            if let Some(n) = self.owners.get_mut(o) {
                *n -= 1;
                if *n == 0 {
                    self.owners.remove(o);
                }
            }
        }
    }
}

/// The taint a node's Ready condition implies, as Kubernetes' node
/// lifecycle controller would set it: not-ready for False, unreachable for
/// Unknown or no condition at all.
fn readiness_taint(node: &Node) -> Option<Taint> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let key = match ready {
        Some("True") => return None,
        Some("False") => TAINT_NOT_READY,
        _ => TAINT_UNREACHABLE,
    };
    Some(Taint {
        key: key.to_string(),
        effect: "NoSchedule".to_string(),
        ..Default::default()
    })
}

/// A pod counted against a node.
#[derive(Debug, Clone)]
pub struct PlacedPod {
    /// The node it is on.
    pub node: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.labels`, for pod affinity and topology spreading.
    pub labels: Arc<BTreeMap<String, String>>,
    /// Its required anti-affinity terms.
    pub anti_affinity: Arc<[PodAffinityTerm]>,
    requests: Resources,
    owner: Option<String>,
    /// Reserved by this scheduler, not yet seen bound by the watch.
    assumed: bool,
}

impl PlacedPod {
    fn of(pod: &PodInfo, node: &str, assumed: bool) -> Self {
        PlacedPod {
            node: node.to_string(),
            namespace: pod.namespace().to_string(),
            labels: pod.labels.clone(),
            anti_affinity: pod.anti_affinity.clone(),
            requests: pod.requests.clone(),
            owner: pod.owner.clone(),
            assumed,
        }
    }
}

/// Nodes, pods placed on them, and RuntimeClass handlers.
#[derive(Debug, Default)]
pub struct Cache {
    /// Nodes in a stable order (placeholders included), for sampling.
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    placed: HashMap<PodKey, PlacedPod>,
    /// RuntimeClass name → handler.
    runtime_classes: HashMap<String, String>,
    /// Placed pods that carry required anti-affinity terms.
    with_anti_affinity: HashSet<PodKey>,
    /// `(namespace, label key, label value)` → placed pods with that label:
    /// affinity and spreading look up the pods a selector can match here
    /// instead of scanning every pod in the cluster.
    by_label: HashMap<(String, String, String), HashSet<PodKey>>,
    /// Namespace name → labels, for affinity terms' `namespaceSelector`.
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Image reference → the platforms it provides, as far as known.
    images: HashMap<String, ImageTarget>,
}

/// What an image can run on, as the scheduler learnt it from the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageTarget {
    /// A Wasm module or component (or an index with a Wasm entry):
    /// architecture-neutral.
    Wasm,
    /// A Linux image for these `(os, architecture)` pairs.
    Platforms(Vec<(String, String)>),
    /// Unknown: the lookup failed or is still running. No node is ruled
    /// out, as Kubernetes rules none out.
    Unknown,
}

impl Cache {
    /// All nodes known, placeholders included (they fail every filter
    /// through [`NodeInfo::present`]).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Nodes that exist.
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.present).count()
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// The handler of a RuntimeClass.
    pub fn runtime_handler(&self, class: &str) -> Option<&str> {
        self.runtime_classes.get(class).map(String::as_str)
    }

    /// A node was added or changed. Returns whether anything scheduling
    /// looks at changed (heartbeats do not count).
    pub fn upsert_node(&mut self, node: &Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.index.get(&name) {
            Some(&i) => {
                let before = self.nodes[i].clone();
                self.nodes[i].update_from(node);
                !same_static(&before, &self.nodes[i])
            }
            None => {
                self.index.insert(name, self.nodes.len());
                self.nodes.push(NodeInfo::from_node(node));
                true
            }
        }
    }

    /// A node went away. Its pods stay counted against a placeholder until
    /// they go too, so a node re-created at once does not look empty.
    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].pod_count > 0 {
            let kept = std::mem::take(&mut self.nodes[i]);
            self.nodes[i] = NodeInfo {
                name: kept.name,
                requested: kept.requested,
                non_zero_requested: kept.non_zero_requested,
                pod_count: kept.pod_count,
                owners: kept.owners,
                present: false,
                ..Default::default()
            };
            return;
        }
        self.drop_slot(i);
    }

    fn drop_slot(&mut self, i: usize) {
        let removed = self.nodes.swap_remove(i);
        self.index.remove(&removed.name);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// Keep only the nodes named (after a re-list).
    pub fn retain_nodes(&mut self, names: &HashSet<String>) {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.present && !names.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        for n in gone {
            self.remove_node(&n);
        }
    }

    /// Reserve: count a pod against a node before the binding is confirmed.
    pub fn assume(&mut self, pod: &PodInfo, node: &str) {
        self.place(pod.key.clone(), PlacedPod::of(pod, node, true));
    }

    /// Un-reserve after a failed bind.
    pub fn forget(&mut self, key: &str) {
        if self.placed.get(key).is_some_and(|p| p.assumed) {
            self.unplace(key);
        }
    }

    /// Whether the scheduler has reserved this pod and awaits its binding.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.placed.get(key).is_some_and(|p| p.assumed)
    }

    /// The watch saw a pod bound to a node and still running (or about to).
    pub fn pod_bound(&mut self, pod: &PodInfo, node: &str) {
        if let Some(p) = self.placed.get_mut(&pod.key) {
            if p.node == node {
                p.assumed = false;
                return;
            }
        }
        self.place(pod.key.clone(), PlacedPod::of(pod, node, false));
    }

    /// A pod left its node (deleted, or finished). Returns whether it had
    /// been counted, i.e. whether room was freed.
    pub fn pod_gone(&mut self, key: &str) -> bool {
        self.unplace(key)
    }

    /// Keep only the bound pods named (after a re-list); assumed pods stay.
    pub fn retain_pods(&mut self, keys: &HashSet<String>) {
        let gone: Vec<String> = self
            .placed
            .iter()
            .filter(|(k, p)| !p.assumed && !keys.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.unplace(&k);
        }
    }

    fn place(&mut self, key: PodKey, p: PlacedPod) {
        self.unplace(&key);
        let i = match self.index.get(&p.node) {
            Some(&i) => i,
            None => {
                self.index.insert(p.node.clone(), self.nodes.len());
                self.nodes.push(NodeInfo {
                    name: p.node.clone(),
                    ..Default::default()
                });
                self.nodes.len() - 1
            }
        };
        self.nodes[i].add_pod(&p);
        if !p.anti_affinity.is_empty() {
            self.with_anti_affinity.insert(key.clone());
        }
        for (k, v) in p.labels.iter() {
            self.by_label
                .entry((p.namespace.clone(), k.clone(), v.clone()))
                .or_default()
                .insert(key.clone());
        }
        self.placed.insert(key, p);
    }

    fn unplace(&mut self, key: &str) -> bool {
        let Some(p) = self.placed.remove(key) else {
            return false;
        };
        self.with_anti_affinity.remove(key);
        for (k, v) in p.labels.iter() {
            let index_key = (p.namespace.clone(), k.clone(), v.clone());
            if let Some(set) = self.by_label.get_mut(&index_key) {
                set.remove(key);
                if set.is_empty() {
                    self.by_label.remove(&index_key);
                }
            }
        }
        if let Some(&i) = self.index.get(&p.node) {
            self.nodes[i].remove_pod(&p);
            if !self.nodes[i].present && self.nodes[i].pod_count == 0 {
                self.drop_slot(i);
            }
        }
        true
    }

    /// A RuntimeClass was added or changed.
    pub fn upsert_runtime_class(&mut self, rc: &RuntimeClass) {
        if let Some(name) = rc.metadata.name.clone() {
            self.runtime_classes.insert(name, rc.handler.clone());
        }
    }

    /// A RuntimeClass went away.
    pub fn remove_runtime_class(&mut self, name: &str) {
        self.runtime_classes.remove(name);
    }

    /// Keep only the RuntimeClasses named (after a re-list).
    pub fn retain_runtime_classes(&mut self, names: &HashSet<String>) {
        self.runtime_classes.retain(|k, _| names.contains(k));
    }

    /// Placed pods of `namespace` (every namespace when `None`) that
    /// `selector` selects, with their nodes. Uses the label index when the
    /// selector pins a label and the namespace is known.
    pub fn placed_selected<'a>(
        &'a self,
        namespace: Option<&str>,
        selector: &'a Selector,
    ) -> Vec<(&'a PlacedPod, Option<&'a NodeInfo>)> {
        if selector.matches_nothing() {
            return Vec::new();
        }
        let with_node = |p: &'a PlacedPod| (p, self.node(&p.node).filter(|n| n.present));
        match (namespace, selector.pinned()) {
            (Some(ns), Some((key, values))) => values
                .iter()
                .filter_map(|v| {
                    self.by_label
                        .get(&(ns.to_string(), key.to_string(), v.clone()))
                })
                .flatten()
                .filter_map(|k| self.placed.get(k))
                .filter(|p| selector.matches(Some(&p.labels)))
                .map(with_node)
                .collect(),
            _ => self
                .placed
                .values()
                .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
                .filter(|p| selector.matches(Some(&p.labels)))
                .map(with_node)
                .collect(),
        }
    }

    /// Placed pods with required anti-affinity terms, with their nodes.
    pub fn anti_affinity_pods(&self) -> impl Iterator<Item = (&PlacedPod, Option<&NodeInfo>)> {
        self.with_anti_affinity.iter().filter_map(|k| {
            let p = self.placed.get(k)?;
            Some((p, self.node(&p.node).filter(|n| n.present)))
        })
    }

    /// A namespace's labels (empty for one not seen).
    pub fn namespace_labels(&self, ns: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(ns)
    }

    /// A Namespace was added or changed. Returns whether its labels changed.
    pub fn upsert_namespace(&mut self, ns: &Namespace) -> bool {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        self.namespaces.insert(name, labels.clone()) != Some(labels)
    }

    /// A Namespace went away.
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Keep only the Namespaces named (after a re-list).
    pub fn retain_namespaces(&mut self, names: &HashSet<String>) {
        self.namespaces.retain(|k, _| names.contains(k));
    }

    /// What is known of an image's platforms; `None` when nobody asked yet.
    pub fn image_target(&self, image: &str) -> Option<&ImageTarget> {
        self.images.get(image)
    }

    /// Record what an image provides.
    pub fn set_image_target(&mut self, image: &str, target: ImageTarget) {
        self.images.insert(image.to_string(), target);
    }

    /// Forget what an image provides (the answer is stale).
    pub fn forget_image_target(&mut self, image: &str) {
        self.images.remove(image);
    }
}

/// Whether two versions of a node look the same to every filter and score.
fn same_static(a: &NodeInfo, b: &NodeInfo) -> bool {
    a.present == b.present
        && a.labels == b.labels
        && a.taints.len() == b.taints.len()
        && a.taints
            .iter()
            .zip(&b.taints)
            .all(|(x, y)| x.key == y.key && x.value == y.value && x.effect == y.effect)
        && a.unschedulable == b.unschedulable
        && a.runtime_handlers == b.runtime_handlers
        && a.allocatable == b.allocatable
        && a.allowed_pods == b.allowed_pods
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
                "conditions": [{"type": "Ready", "status": ready}],
                "runtimeHandlers": [{"name": "wasmtime"}],
            },
        }))
        .expect("node")
    }

    fn pod(name: &str, cpu: &str) -> PodInfo {
        PodInfo::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default",
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}]},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            }))
            .expect("pod"),
        )
    }

    #[test]
    fn node_info_reads_allocatable_and_handlers() {
        let n = NodeInfo::from_node(&node("a", "True"));
        assert_eq!(n.allocatable.cpu, 2000);
        assert_eq!(n.allowed_pods, 10);
        assert!(n.runtime_handlers.contains("wasmtime"));
        assert!(n.taints.is_empty());
    }

    #[test]
    fn not_ready_node_carries_the_not_ready_taint() {
        // As Kubernetes' node lifecycle controller taints it.
        let n = NodeInfo::from_node(&node("a", "False"));
        assert_eq!(n.taints[0].key, TAINT_NOT_READY);
        assert_eq!(n.taints[0].effect, "NoSchedule");
        let n = NodeInfo::from_node(&node("a", "Unknown"));
        assert_eq!(n.taints[0].key, TAINT_UNREACHABLE);
    }

    #[test]
    fn assume_then_confirm_counts_a_pod_once() {
        let mut c = Cache::default();
        c.upsert_node(&node("a", "True"));
        let p = pod("p", "500m");
        c.assume(&p, "a");
        assert!(c.is_assumed("default/p"));
        c.pod_bound(&p, "a");
        assert!(!c.is_assumed("default/p"));
        let n = c.node("a").expect("node");
        assert_eq!(n.requested.cpu, 500);
        assert_eq!(n.pod_count, 1);
        assert_eq!(n.owners.get("u1"), Some(&1));
    }

    #[test]
    fn forget_releases_an_assumed_pod_only() {
        let mut c = Cache::default();
        c.upsert_node(&node("a", "True"));
        let p = pod("p", "500m");
        c.assume(&p, "a");
        c.forget("default/p");
        assert_eq!(c.node("a").expect("node").requested.cpu, 0);
        c.pod_bound(&p, "a");
        c.forget("default/p");
        assert_eq!(
            c.node("a").expect("node").pod_count,
            1,
            "a confirmed pod stays"
        );
        assert!(c.pod_gone("default/p"));
        assert_eq!(c.node("a").expect("node").pod_count, 0);
    }

    #[test]
    fn heartbeat_is_not_a_scheduling_change_but_a_label_is() {
        let mut c = Cache::default();
        assert!(c.upsert_node(&node("a", "True")));
        assert!(!c.upsert_node(&node("a", "True")));
        let mut n = node("a", "True");
        n.metadata.labels = Some([("zone".to_string(), "x".to_string())].into());
        assert!(c.upsert_node(&n));
        assert_eq!(c.node_count(), 1);
    }

    #[test]
    fn pods_of_a_deleted_node_keep_a_placeholder_until_they_go() {
        let mut c = Cache::default();
        c.upsert_node(&node("a", "True"));
        let p = pod("p", "1");
        c.pod_bound(&p, "a");
        c.remove_node("a");
        assert_eq!(c.node_count(), 0);
        assert!(c.node("a").is_some_and(|n| !n.present && n.pod_count == 1));
        c.pod_gone("default/p");
        assert!(c.node("a").is_none());
        // A node re-created keeps the usage of pods still on it.
        c.pod_bound(&p, "b");
        c.upsert_node(&node("b", "True"));
        assert_eq!(c.node("b").expect("node").requested.cpu, 1000);
        assert!(c.node("b").expect("node").present);
    }
}
