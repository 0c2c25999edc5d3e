//! What a DaemonSet reconcile decides, as pure functions of the DaemonSet,
//! the nodes and its pods: which nodes need a pod, which pods must go
//! (Kubernetes' `podsShouldBeOnNode` and `rollingUpdate`), and the status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::nodes::{fit, target_node, Fit, REVISION_HASH_LABEL, TEMPLATE_GENERATION_LABEL};
use crate::reconcile::Requeue;
use crate::replicaset::pods;

/// Pod creations and deletions one reconcile asks for.
#[derive(Debug, Default)]
pub struct Plan {
    /// Nodes to create a daemon pod on.
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<Arc<Pod>>,
}

/// The DaemonSet's pods per target node, oldest first; terminating pods
/// are left out (they are on their way), pods pinned nowhere too.
pub struct Placement<'a> {
    by_node: BTreeMap<&'a str, Vec<&'a Arc<Pod>>>,
    /// Nodes holding a terminating pod of the DaemonSet.
    terminating: std::collections::BTreeSet<&'a str>,
}

impl<'a> Placement<'a> {
    /// Group owned pods by the node they are for.
    pub fn new(owned: &'a [Arc<Pod>]) -> Self {
        let mut by_node: BTreeMap<&str, Vec<&Arc<Pod>>> = BTreeMap::new();
        let mut terminating = std::collections::BTreeSet::new();
        for p in owned {
            let Some(node) = target_node(p) else { continue };
            if p.metadata.deletion_timestamp.is_some() {
                terminating.insert(node);
            } else {
                by_node.entry(node).or_default().push(p);
            }
        }
        for pods in by_node.values_mut() {
            pods.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        }
        Placement {
            by_node,
            terminating,
        }
    }

    fn on(&self, node: &str) -> &[&'a Arc<Pod>] {
        self.by_node.get(node).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// What the rollout settings come to for this many desired pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Updated nodes that may be unavailable at once (≥ 1 when no surge).
    pub max_unavailable: usize,
    /// Nodes that may run an old and a new pod at once.
    pub max_surge: usize,
    /// Whether the strategy is RollingUpdate (else OnDelete).
    pub rolling: bool,
}

/// Scale an int-or-percent against `total`, rounding up as Kubernetes
/// does for DaemonSets.
fn scaled(v: Option<&IntOrString>, total: usize, default: usize) -> usize {
    match v {
        None => default,
        Some(IntOrString::Int(i)) => usize::try_from(*i).unwrap_or(0),
        Some(IntOrString::String(s)) => {
            let pct: usize = s.trim_end_matches('%').parse().unwrap_or(0);
            (pct * total).div_ceil(100)
        }
    }
}

impl Budget {
    /// Read the update strategy (defaults: RollingUpdate, maxUnavailable 1,
    /// maxSurge 0).
    pub fn of(ds: &DaemonSet, desired: usize) -> Budget {
        let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
        let rolling = strategy
            .and_then(|s| s.type_.as_deref())
            .is_none_or(|t| t == "RollingUpdate");
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        let max_surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), desired, 0);
        let mut max_unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), desired, 1);
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        Budget {
            max_unavailable,
            max_surge,
            rolling,
        }
    }
}

/// The inputs of one decision.
pub struct World<'a> {
    /// The DaemonSet.
    pub ds: &'a DaemonSet,
    /// Every node in the cluster.
    pub nodes: &'a [Arc<Node>],
    /// The DaemonSet's pods by node.
    pub placement: &'a Placement<'a>,
    /// The current revision's template hash.
    pub hash: &'a str,
    /// Now.
    pub now: Timestamp,
}

impl World<'_> {
    fn template_spec(&self) -> PodSpec {
        self.ds
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .unwrap_or_default()
    }

    fn min_ready(&self) -> i32 {
        self.ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn is_updated(&self, pod: &Pod) -> bool {
        let labels = pod.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        let generation = self.ds.metadata.generation.map(|g| g.to_string());
        label(REVISION_HASH_LABEL) == Some(self.hash)
            || (generation.is_some() && label(TEMPLATE_GENERATION_LABEL) == generation.as_deref())
    }

    fn available(&self, pod: &Pod) -> bool {
        pods::is_available(pod, self.min_ready(), self.now)
    }

    /// How the DaemonSet fits each node, by node name.
    pub fn fits(&self) -> BTreeMap<&str, Fit> {
        let spec = self.template_spec();
        self.nodes
            .iter()
            .filter_map(|n| Some((n.metadata.name.as_deref()?, fit(&spec, n))))
            .collect()
    }

    /// The nodes that should run a daemon pod, in name order.
    pub fn eligible(&self) -> Vec<&str> {
        self.fits()
            .into_iter()
            .filter(|(_, f)| f.should_run)
            .map(|(n, _)| n)
            .collect()
    }
}

/// Kubernetes' `podsShouldBeOnNode` for every node: create where a pod is
/// missing, delete failed and finished pods, duplicates, pods on nodes that
/// should not run one and pods pinned to nodes that no longer exist.
pub fn manage(w: &World<'_>, budget: Budget) -> Plan {
    let fits = w.fits();
    let mut plan = Plan::default();
    for (node, fit) in &fits {
        let pods = w.placement.on(node);
        if !fit.should_continue {
            plan.delete.extend(pods.iter().map(|p| Arc::clone(p)));
            continue;
        }
        let (finished, running): (Vec<_>, Vec<_>) = pods.iter().partition(|p| !pods::is_active(p));
        plan.delete.extend(finished.into_iter().cloned());
        if !running.is_empty() {
            plan.delete.extend(duplicates(w, budget, &running));
        } else if fit.should_run && !w.placement.terminating.contains(node) {
            // Wait for a terminating pod to go before replacing it, as a
            // daemon usually holds a host port or a node-wide lock.
            plan.create.push((*node).to_string());
        }
    }
    for (node, pods) in &w.placement.by_node {
        if !fits.contains_key(node) {
            plan.delete.extend(pods.iter().map(|p| Arc::clone(p)));
        }
    }
    plan
}

/// Which of several live pods on one node go: all but the oldest; with
/// surge, all but the oldest updated and the oldest old pod, and the old
/// one too once the updated one is available.
fn duplicates(w: &World<'_>, budget: Budget, running: &[&Arc<Pod>]) -> Vec<Arc<Pod>> {
    if running.len() <= 1 {
        return Vec::new();
    }
    if !budget.rolling || budget.max_surge == 0 {
        return running[1..].iter().map(|p| Arc::clone(p)).collect();
    }
    let new = running.iter().find(|p| w.is_updated(p));
    let old = running.iter().find(|p| !w.is_updated(p));
    let keep_old = old.filter(|_| new.is_none_or(|n| !w.available(n)));
    running
        .iter()
        .filter(|p| {
            let keep = |k: Option<&&Arc<Pod>>| k.is_some_and(|k| Arc::ptr_eq(k, p));
            !keep(new) && !keep(keep_old)
        })
        .map(|p| Arc::clone(p))
        .collect()
}

/// A node's live old and updated pod, each if there is one.
struct OnNode<'p> {
    old: Option<&'p Arc<Pod>>,
    new: Option<&'p Arc<Pod>>,
}

/// The old and updated live pod on a node, or `None` when there are more
/// than one of either (manage cleans that up first).
fn split_on_node<'p>(w: &World<'_>, pods: &[&'p Arc<Pod>]) -> Option<OnNode<'p>> {
    let live: Vec<&&Arc<Pod>> = pods.iter().filter(|p| pods::is_active(p)).collect();
    let (new, old): (Vec<&&Arc<Pod>>, Vec<&&Arc<Pod>>) =
        live.into_iter().partition(|p| w.is_updated(p));
    if new.len() > 1 || old.len() > 1 {
        return None;
    }
    Some(OnNode {
        old: old.first().map(|p| **p),
        new: new.first().map(|p| **p),
    })
}

/// Kubernetes' rolling update with `maxSurge` 0: delete old pods (the
/// manage step recreates them), at most `maxUnavailable` nodes without an
/// available pod at once; old pods that are unavailable anyway go at once.
pub fn roll_by_deleting(w: &World<'_>, budget: Budget) -> Vec<Arc<Pod>> {
    let mut unavailable = 0usize;
    let mut free = Vec::new();
    let mut candidates = Vec::new();
    for node in w.eligible() {
        let Some(OnNode { old, new }) = split_on_node(w, w.placement.on(node)) else {
            unavailable += 1;
            continue;
        };
        match (old, new) {
            (None, None) | (Some(_), Some(_)) => unavailable += 1,
            (None, Some(n)) => unavailable += usize::from(!w.available(n)),
            (Some(o), None) if !w.available(o) => free.push(Arc::clone(o)),
            (Some(o), None) => candidates.push(Arc::clone(o)),
        }
    }
    let room = budget
        .max_unavailable
        .saturating_sub(unavailable)
        .min(candidates.len());
    free.extend(candidates.into_iter().take(room));
    free
}

/// Kubernetes' rolling update with `maxSurge` > 0: start an updated pod
/// next to the old one on up to `maxSurge` nodes at once (at once where
/// the old one is unavailable); manage deletes the old one when the new
/// one is available.
pub fn roll_by_surging(w: &World<'_>, budget: Budget) -> Vec<String> {
    let mut surging = 0usize;
    let mut now = Vec::new();
    let mut candidates = Vec::new();
    for node in w.eligible() {
        let Some(OnNode { old, new }) = split_on_node(w, w.placement.on(node)) else {
            surging += 1;
            continue;
        };
        match (old, new) {
            (None, _) => {}
            (Some(o), None) if !w.available(o) => now.push(node.to_string()),
            (Some(_), None) => candidates.push(node.to_string()),
            (Some(_), Some(n)) => surging += usize::from(!w.available(n)),
        }
    }
    let room = budget
        .max_surge
        .saturating_sub(surging)
        .min(candidates.len());
    now.extend(candidates.into_iter().take(room));
    now
}

/// The whole decision: manage, then the rolling update if the strategy is
/// RollingUpdate (OnDelete leaves old pods until someone deletes them).
pub fn plan(w: &World<'_>) -> Plan {
    let budget = Budget::of(w.ds, w.eligible().len());
    let mut plan = manage(w, budget);
    if !budget.rolling {
        return plan;
    }
    if budget.max_surge == 0 {
        for p in roll_by_deleting(w, budget) {
            if !plan.delete.iter().any(|d| Arc::ptr_eq(d, &p)) {
                plan.delete.push(p);
            }
        }
    } else {
        for node in roll_by_surging(w, budget) {
            if !plan.create.contains(&node) {
                plan.create.push(node);
            }
        }
    }
    plan
}

/// The status Kubernetes reports, and when to look again for a pod that
/// will have been ready for `minReadySeconds`.
pub fn status(w: &World<'_>) -> (DaemonSetStatus, Requeue) {
    let mut s = DaemonSetStatus {
        observed_generation: w.ds.metadata.generation,
        collision_count: w.ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: w.ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..DaemonSetStatus::default()
    };
    let mut requeue = Requeue::Never;
    let eligible = w.eligible();
    for node in &eligible {
        s.desired_number_scheduled += 1;
        let Some(pod) = w.placement.on(node).first() else {
            continue;
        };
        s.current_number_scheduled += 1;
        if pods::is_ready(pod) {
            s.number_ready += 1;
        }
        match pods::available_at(pod, w.min_ready()) {
            Some(at) if at <= w.now => {
                s.number_available = Some(s.number_available.unwrap_or(0) + 1)
            }
            Some(at) => {
                let wait = at.duration_since(w.now).unsigned_abs() + Duration::from_millis(10);
                requeue = requeue.min(Requeue::After(wait));
            }
            None => {}
        }
        if w.is_updated(pod) {
            s.updated_number_scheduled = Some(s.updated_number_scheduled.unwrap_or(0) + 1);
        }
    }
    s.number_misscheduled = w
        .placement
        .by_node
        .keys()
        .filter(|n| eligible.binary_search(n).is_err())
        .count() as i32;
    let available = s.number_available.unwrap_or(0);
    s.number_available = Some(available);
    s.updated_number_scheduled = Some(s.updated_number_scheduled.unwrap_or(0));
    s.number_unavailable = Some(s.desired_number_scheduled - available);
    (s, requeue)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    const T0: &str = "2026-01-01T00:00:00Z";

    fn ds(strategy: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "uid": "u", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": strategy,
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        }))
        .unwrap()
    }

    fn node(name: &str) -> Arc<Node> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Arc<Pod> {
        let status = if ready { "True" } else { "False" };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "creationTimestamp": T0,
                             "labels": {REVISION_HASH_LABEL: hash, TEMPLATE_GENERATION_LABEL: "1"}},
                "spec": {"containers": [], "nodeName": node},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": status, "lastTransitionTime": T0}]}
            }))
            .unwrap(),
        )
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        let mut v: Vec<&str> = pods
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        v.sort_unstable();
        v
    }

    fn world<'a>(
        ds: &'a DaemonSet,
        nodes: &'a [Arc<Node>],
        placement: &'a Placement<'a>,
    ) -> World<'a> {
        World {
            ds,
            nodes,
            placement,
            hash: "new",
            now: "2026-01-02T00:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn missing_pods_are_created_and_strays_deleted() {
        let d = ds(json!({"type": "RollingUpdate"}));
        let nodes = [node("a"), node("b")];
        let owned = vec![
            pod("pa", "a", "new", true),
            pod("pgone", "gone", "new", true),
        ];
        let placement = Placement::new(&owned);
        let w = world(&d, &nodes, &placement);
        let p = plan(&w);
        assert_eq!(p.create, ["b"]);
        assert_eq!(names(&p.delete), ["pgone"]);
        let (s, _) = status(&w);
        assert_eq!(s.desired_number_scheduled, 2);
        assert_eq!(s.current_number_scheduled, 1);
        assert_eq!(s.number_misscheduled, 1);
        assert_eq!(s.number_ready, 1);
        assert_eq!(s.number_unavailable, Some(1));
        assert_eq!(s.updated_number_scheduled, Some(1));
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn duplicates_keep_the_oldest_and_failed_pods_are_replaced() {
        let d = ds(json!({"type": "RollingUpdate"}));
        let nodes = [node("a"), node("b")];
        let mut young = (*pod("young", "a", "new", true)).clone();
        young.metadata.creation_timestamp =
            Some(serde_json::from_value(json!("2026-01-01T01:00:00Z")).unwrap());
        let mut failed = (*pod("failed", "b", "new", false)).clone();
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let owned = vec![
            Arc::new(young),
            pod("old", "a", "new", true),
            Arc::new(failed),
        ];
        let placement = Placement::new(&owned);
        let p = plan(&world(&d, &nodes, &placement));
        assert_eq!(names(&p.delete), ["failed", "young"]);
        // The failed pod is replaced now that it is not running.
        assert_eq!(p.create, ["b"]);
    }

    #[test]
    fn rolling_update_respects_max_unavailable() {
        // Kubernetes: maxUnavailable 1 replaces one node at a time.
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}));
        let nodes = [node("a"), node("b"), node("c")];
        let owned = vec![
            pod("pa", "a", "old", true),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        ];
        let placement = Placement::new(&owned);
        assert_eq!(plan(&world(&d, &nodes, &placement)).delete.len(), 1);
        // One node already has an updated pod that is not ready: no room.
        let owned = vec![
            pod("pa", "a", "new", false),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        ];
        let placement = Placement::new(&owned);
        assert!(plan(&world(&d, &nodes, &placement)).delete.is_empty());
        // An old pod that is unavailable anyway is replaced at once.
        let owned = vec![
            pod("pa", "a", "new", false),
            pod("pb", "b", "old", false),
            pod("pc", "c", "old", true),
        ];
        let placement = Placement::new(&owned);
        assert_eq!(names(&plan(&world(&d, &nodes, &placement)).delete), ["pb"]);
        // 67% of 3 nodes rounds up to 3.
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "67%"}}));
        let owned = vec![
            pod("pa", "a", "old", true),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        ];
        let placement = Placement::new(&owned);
        assert_eq!(plan(&world(&d, &nodes, &placement)).delete.len(), 3);
    }

    #[test]
    fn on_delete_leaves_old_pods_alone() {
        let d = ds(json!({"type": "OnDelete"}));
        let nodes = [node("a")];
        let owned = vec![pod("pa", "a", "old", true)];
        let placement = Placement::new(&owned);
        let w = world(&d, &nodes, &placement);
        let p = plan(&w);
        assert!(p.delete.is_empty() && p.create.is_empty());
        assert_eq!(status(&w).0.updated_number_scheduled, Some(0));
    }

    #[test]
    fn surge_starts_the_new_pod_before_the_old_one_goes() {
        let d = ds(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        );
        let nodes = [node("a"), node("b")];
        let owned = vec![pod("pa", "a", "old", true), pod("pb", "b", "old", true)];
        let placement = Placement::new(&owned);
        let p = plan(&world(&d, &nodes, &placement));
        assert_eq!(p.create, ["a"]);
        assert!(p.delete.is_empty());
        // The new pod is not available yet: both stay, no further surge.
        let owned = vec![
            pod("pa", "a", "old", true),
            pod("na", "a", "new", false),
            pod("pb", "b", "old", true),
        ];
        let placement = Placement::new(&owned);
        let p = plan(&world(&d, &nodes, &placement));
        assert!(p.create.is_empty() && p.delete.is_empty());
        // Once it is available the old one goes.
        let owned = vec![
            pod("pa", "a", "old", true),
            pod("na", "a", "new", true),
            pod("pb", "b", "old", true),
        ];
        let placement = Placement::new(&owned);
        let p = plan(&world(&d, &nodes, &placement));
        assert_eq!(names(&p.delete), ["pa"]);
    }
}
