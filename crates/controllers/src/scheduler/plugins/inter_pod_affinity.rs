//! InterPodAffinity: `podAffinity` and `podAntiAffinity`, required and
//! preferred, over any topology key (`kubernetes.io/hostname`,
//! `topology.kubernetes.io/zone`, ...).
//!
//! Semantics are Kubernetes':
//! - a required affinity term is met on a node whose value for the term's
//!   topology key is shared by a node running a pod the term selects
//!   (every required term at once); the first pod of a group that selects
//!   itself may go anywhere that has the keys while no such pod exists;
//! - a required anti-affinity term rules out every node sharing the
//!   topology value of a node running a selected pod;
//! - symmetry: an existing pod's required anti-affinity terms that select
//!   the new pod rule out the existing pod's topology domain too;
//! - preferred terms add (affinity) or subtract (anti-affinity) their
//!   weight per selected pod in the node's domain, scaled between the
//!   worst and best node.
//!
//! A term selects pods in the namespaces it lists and those its
//! `namespaceSelector` matches (`{}`: all); with neither, the pod's own
//! namespace. A missing `labelSelector` selects nothing.
//!
//! The work per cycle is proportional to the pods a term can select,
//! found through the cache's label index, and is skipped entirely for pods
//! without terms while no placed pod has anti-affinity — the common case
//! costs nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{PodAffinityTerm, WeightedPodAffinityTerm};

use crate::reconcile::Selector;
use crate::scheduler::cache::{Cache, NodeInfo, PlacedPod, PodInfo};
use crate::scheduler::framework::{
    normalize_min_max, CycleState, FilterPlugin, Rejection, ScorePlugin,
};

const NAME: &str = "InterPodAffinity";

/// Kubernetes' reasons, in the order its filter checks them.
pub const REASON_EXISTING_ANTI: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI: &str = "node(s) didn't match pod anti-affinity rules";

/// The InterPodAffinity filter and score.
pub struct InterPodAffinity;

/// One affinity term, compiled.
struct Term {
    selector: Selector,
    namespaces: HashSet<String>,
    namespace_selector: Option<Selector>,
    topology_key: String,
}

impl Term {
    fn new(t: &PodAffinityTerm, own_namespace: &str) -> Term {
        let mut namespaces: HashSet<String> = t.namespaces.iter().flatten().cloned().collect();
        let namespace_selector = t.namespace_selector.as_ref().map(Selector::new);
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.insert(own_namespace.to_string());
        }
        Term {
            selector: t
                .label_selector
                .as_ref()
                .map_or_else(Selector::nothing, Selector::new),
            namespaces,
            namespace_selector,
            topology_key: t.topology_key.clone(),
        }
    }

    /// The placed pods the term selects, with their nodes (through the
    /// cache's label index).
    fn selected<'a>(&'a self, cache: &'a Cache) -> Vec<(&'a PlacedPod, Option<&'a NodeInfo>)> {
        if self.namespace_selector.is_some() {
            return cache
                .placed_selected(None, &self.selector)
                .into_iter()
                .filter(|(p, _)| self.selects(&p.namespace, &p.labels, cache))
                .collect();
        }
        self.namespaces
            .iter()
            .flat_map(|ns| cache.placed_selected(Some(ns), &self.selector))
            .collect()
    }

    /// Whether the term selects a pod of this namespace and labels.
    fn selects(&self, ns: &str, labels: &BTreeMap<String, String>, cache: &Cache) -> bool {
        let in_ns = self.namespaces.contains(ns)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.matches(cache.namespace_labels(ns)));
        in_ns && self.selector.matches(Some(labels))
    }
}

/// Topology key → value → count of matching pods there (nested so that
/// a node's labels are looked up without building keys).
type Counts = HashMap<String, HashMap<String, i64>>;

fn bump(counts: &mut Counts, key: &str, node: &NodeInfo, by: i64) {
    if let Some(v) = node.labels.get(key) {
        *counts
            .entry(key.to_string())
            .or_default()
            .entry(v.clone())
            .or_default() += by;
    }
}

/// The count for one topology pair.
fn count_at(counts: &Counts, key: &str, value: &str) -> i64 {
    counts
        .get(key)
        .and_then(|m| m.get(value))
        .copied()
        .unwrap_or(0)
}

/// What the filter needs, computed once per cycle.
#[derive(Default)]
struct Prepared {
    affinity: Vec<Term>,
    /// Pairs where pods matching every required affinity term run.
    affinity_counts: Counts,
    /// Whether the pod matches all its own required affinity terms.
    self_affine: bool,
    /// Pairs where pods the pod's required anti-affinity selects run.
    anti_counts: Counts,
    /// Pairs existing pods' anti-affinity forbids to this pod.
    existing_anti: Counts,
}

fn required_terms(pod: &PodInfo) -> (Vec<&PodAffinityTerm>, Vec<&PodAffinityTerm>) {
    let aff = pod.pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let affinity = aff
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .collect();
    (affinity, pod.anti_affinity.iter().collect())
}

fn prepare(pod: &PodInfo, cache: &Cache) -> Prepared {
    let ns = pod.namespace();
    let (affinity, anti) = required_terms(pod);
    let mut p = Prepared {
        affinity: affinity.iter().map(|t| Term::new(t, ns)).collect(),
        ..Default::default()
    };
    let anti: Vec<Term> = anti.iter().map(|t| Term::new(t, ns)).collect();
    p.self_affine = p.affinity.iter().all(|t| t.selects(ns, &pod.labels, cache));

    // Symmetry: existing pods whose anti-affinity selects this pod.
    for (placed, node) in cache.anti_affinity_pods() {
        let Some(node) = node else { continue };
        for t in placed.anti_affinity.iter() {
            if Term::new(t, &placed.namespace).selects(ns, &pod.labels, cache) {
                bump(&mut p.existing_anti, &t.topology_key, node, 1);
            }
        }
    }

    if let Some(first) = p.affinity.first() {
        for (placed, node) in first.selected(cache) {
            let Some(node) = node else { continue };
            if p.affinity
                .iter()
                .all(|t| t.selects(&placed.namespace, &placed.labels, cache))
            {
                for t in &p.affinity {
                    bump(&mut p.affinity_counts, &t.topology_key, node, 1);
                }
            }
        }
    }
    for t in &anti {
        for (_, node) in t.selected(cache) {
            if let Some(node) = node {
                bump(&mut p.anti_counts, &t.topology_key, node, 1);
            }
        }
    }
    p
}

/// Whether any pair of the node's labels has a positive count.
fn node_hits(counts: &Counts, node: &NodeInfo) -> bool {
    counts.iter().any(|(k, m)| {
        node.labels
            .get(k)
            .is_some_and(|v| m.get(v).is_some_and(|c| *c > 0))
    })
}

fn affinity_ok(p: &Prepared, node: &NodeInfo) -> bool {
    let mut pods_exist = true;
    for t in &p.affinity {
        let Some(v) = node.labels.get(&t.topology_key) else {
            // Every topology key must exist on the node.
            return false;
        };
        if count_at(&p.affinity_counts, &t.topology_key, v) <= 0 {
            pods_exist = false;
        }
    }
    // The first pod of a group with affinity to itself.
    pods_exist || (p.affinity_counts.is_empty() && p.self_affine)
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
    ) -> Result<(), String> {
        state.write(NAME, prepare(pod, cache));
        Ok(())
    }

    fn filter(&self, _: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Rejection> {
        let Some(p) = state.read::<Prepared>(NAME) else {
            return Ok(());
        };
        if node_hits(&p.existing_anti, node) {
            return Err(Rejection::new(REASON_EXISTING_ANTI));
        }
        if !affinity_ok(p, node) {
            return Err(Rejection::new(REASON_AFFINITY));
        }
        if node_hits(&p.anti_counts, node) {
            return Err(Rejection::new(REASON_ANTI));
        }
        Ok(())
    }
}

/// Preferred terms' weights per topology pair, computed once per cycle.
struct Scores(Counts);

fn preferred(pod: &PodInfo) -> (Vec<&WeightedPodAffinityTerm>, Vec<&WeightedPodAffinityTerm>) {
    let aff = pod.pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let affinity = aff
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .collect();
    let anti = aff
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .collect();
    (affinity, anti)
}

impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(&self, pod: &PodInfo, cache: &Cache, state: &mut CycleState) {
        let (affinity, anti) = preferred(pod);
        let mut scores = Counts::new();
        if !affinity.is_empty() || !anti.is_empty() {
            let ns = pod.namespace();
            let terms: Vec<(Term, i64)> = affinity
                .iter()
                .map(|w| (Term::new(&w.pod_affinity_term, ns), i64::from(w.weight)))
                .chain(
                    anti.iter()
                        .map(|w| (Term::new(&w.pod_affinity_term, ns), -i64::from(w.weight))),
                )
                .collect();
            for (t, w) in &terms {
                for (_, node) in t.selected(cache) {
                    if let Some(node) = node {
                        bump(&mut scores, &t.topology_key, node, *w);
                    }
                }
            }
        }
        state.write(NAME, Scores(scores));
    }

    fn score(&self, _: &PodInfo, node: &NodeInfo, state: &CycleState) -> i64 {
        let Some(Scores(s)) = state.read::<Scores>(NAME) else {
            return 0;
        };
        s.iter()
            .filter_map(|(k, m)| node.labels.get(k).and_then(|v| m.get(v)))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_min_max(scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::Cache;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};

    const HOST: &str = "kubernetes.io/hostname";
    const ZONE: &str = "topology.kubernetes.io/zone";

    fn node(name: &str, zone: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {HOST: name, ZONE: zone}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .expect("node")
    }

    fn pod(name: &str, ns: &str, labels: Value, affinity: Value) -> PodInfo {
        PodInfo::new(
            serde_json::from_value::<Pod>(json!({
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}], "affinity": affinity},
            }))
            .expect("pod"),
        )
    }

    /// Nodes a, b in zone z1; c in zone z2.
    fn cache() -> Cache {
        let mut c = Cache::default();
        for (n, z) in [("a", "z1"), ("b", "z1"), ("c", "z2")] {
            c.upsert_node(&node(n, z));
        }
        c
    }

    fn feasible(c: &Cache, p: &PodInfo) -> Vec<Result<(), Rejection>> {
        let mut s = CycleState::default();
        InterPodAffinity
            .pre_filter(p, c, &mut s)
            .expect("pre_filter");
        ["a", "b", "c"]
            .iter()
            .map(|n| InterPodAffinity.filter(p, c.node(n).expect("node"), &s))
            .collect()
    }

    fn ok_nodes(c: &Cache, p: &PodInfo) -> Vec<&'static str> {
        ["a", "b", "c"]
            .into_iter()
            .zip(feasible(c, p))
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n)
            .collect()
    }

    fn term(key: &str, labels: Value) -> Value {
        json!({"labelSelector": {"matchLabels": labels}, "topologyKey": key})
    }

    #[test]
    fn required_affinity_follows_the_selected_pods_domain() {
        let mut c = cache();
        c.pod_bound(
            &pod("db", "default", json!({"app": "db"}), json!(null)),
            "c",
        );
        let web = pod(
            "web",
            "default",
            json!({"app": "web"}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(ZONE, json!({"app": "db"}))]}}),
        );
        assert_eq!(ok_nodes(&c, &web), vec!["c"]);
        let r = feasible(&c, &web);
        assert_eq!(r[0], Err(Rejection::new(REASON_AFFINITY)));
        // By zone: move db into z1 and both a and b qualify.
        c.pod_gone("default/db");
        c.pod_bound(
            &pod("db", "default", json!({"app": "db"}), json!(null)),
            "b",
        );
        assert_eq!(ok_nodes(&c, &web), vec!["a", "b"]);
    }

    #[test]
    fn first_pod_of_a_self_affine_group_goes_anywhere() {
        let c = cache();
        let first = pod(
            "w0",
            "default",
            json!({"app": "web"}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(HOST, json!({"app": "web"}))]}}),
        );
        assert_eq!(ok_nodes(&c, &first), vec!["a", "b", "c"]);
        // A pod that does not select itself waits for a match.
        let other = pod(
            "x",
            "default",
            json!({"app": "x"}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(HOST, json!({"app": "web"}))]}}),
        );
        assert!(ok_nodes(&c, &other).is_empty());
    }

    #[test]
    fn required_anti_affinity_on_hostname_spreads_one_per_node() {
        let mut c = cache();
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(HOST, json!({"app": "web"}))]}});
        let w0 = pod("w0", "default", json!({"app": "web"}), anti.clone());
        c.pod_bound(&w0, "a");
        let w1 = pod("w1", "default", json!({"app": "web"}), anti.clone());
        assert_eq!(ok_nodes(&c, &w1), vec!["b", "c"]);
        assert_eq!(
            feasible(&c, &w1)[0],
            Err(Rejection::new(REASON_EXISTING_ANTI))
        );
        c.pod_bound(&w1, "b");
        c.pod_bound(
            &pod("w2", "default", json!({"app": "web"}), anti.clone()),
            "c",
        );
        let w3 = pod("w3", "default", json!({"app": "web"}), anti);
        assert!(ok_nodes(&c, &w3).is_empty());
    }

    #[test]
    fn existing_pods_anti_affinity_is_symmetric() {
        let mut c = cache();
        // The existing pod refuses to share a zone with app=noisy.
        let quiet = pod(
            "quiet",
            "default",
            json!({"app": "quiet"}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(ZONE, json!({"app": "noisy"}))]}}),
        );
        c.pod_bound(&quiet, "a");
        let noisy = pod("noisy", "default", json!({"app": "noisy"}), json!(null));
        assert_eq!(ok_nodes(&c, &noisy), vec!["c"]);
        assert_eq!(
            feasible(&c, &noisy)[1],
            Err(Rejection::new(REASON_EXISTING_ANTI))
        );
        // Leaving frees the zone.
        c.pod_gone("default/quiet");
        assert_eq!(ok_nodes(&c, &noisy), vec!["a", "b", "c"]);
    }

    #[test]
    fn terms_look_in_their_namespaces_only() {
        let mut c = cache();
        c.pod_bound(&pod("db", "other", json!({"app": "db"}), json!(null)), "a");
        let anti = |t: Value| {
            pod(
                "web",
                "default",
                json!({}),
                json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}),
            )
        };
        // Own namespace by default: the db in "other" does not count.
        assert_eq!(
            ok_nodes(&c, &anti(term(HOST, json!({"app": "db"})))),
            vec!["a", "b", "c"]
        );
        // Listed namespaces.
        let mut t = term(HOST, json!({"app": "db"}));
        t["namespaces"] = json!(["other"]);
        assert_eq!(ok_nodes(&c, &anti(t)), vec!["b", "c"]);
        // namespaceSelector {} selects every namespace.
        let mut t = term(HOST, json!({"app": "db"}));
        t["namespaceSelector"] = json!({});
        assert_eq!(ok_nodes(&c, &anti(t)), vec!["b", "c"]);
        // A labelled namespace.
        let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(
            json!({"metadata": {"name": "other", "labels": {"team": "data"}}}),
        )
        .expect("ns");
        c.upsert_namespace(&ns);
        let mut t = term(HOST, json!({"app": "db"}));
        t["namespaceSelector"] = json!({"matchLabels": {"team": "data"}});
        assert_eq!(ok_nodes(&c, &anti(t)), vec!["b", "c"]);
        let mut t = term(HOST, json!({"app": "db"}));
        t["namespaceSelector"] = json!({"matchLabels": {"team": "web"}});
        assert_eq!(ok_nodes(&c, &anti(t)), vec!["a", "b", "c"]);
    }

    #[test]
    fn missing_label_selector_selects_nothing_and_missing_key_fails_affinity() {
        let mut c = cache();
        c.pod_bound(
            &pod("db", "default", json!({"app": "db"}), json!(null)),
            "a",
        );
        let p = pod(
            "p",
            "default",
            json!({}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": HOST}]}}),
        );
        assert_eq!(ok_nodes(&c, &p), vec!["a", "b", "c"]);
        let p = pod(
            "p",
            "default",
            json!({}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("rack", json!({"app": "db"}))]}}),
        );
        assert!(ok_nodes(&c, &p).is_empty(), "no node has a rack label");
    }

    #[test]
    fn preferred_terms_score_by_weight_per_domain() {
        let mut c = cache();
        c.pod_bound(
            &pod("db", "default", json!({"app": "db"}), json!(null)),
            "a",
        );
        c.pod_bound(
            &pod("cache", "default", json!({"app": "cache"}), json!(null)),
            "c",
        );
        let p = pod(
            "p",
            "default",
            json!({}),
            json!({
                "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 50, "podAffinityTerm": term(ZONE, json!({"app": "db"}))}]},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 20, "podAffinityTerm": term(HOST, json!({"app": "cache"}))}]},
            }),
        );
        let mut s = CycleState::default();
        InterPodAffinity.pre_score(&p, &c, &mut s);
        let mut scores: Vec<i64> = ["a", "b", "c"]
            .iter()
            .map(|n| InterPodAffinity.score(&p, c.node(n).expect("node"), &s))
            .collect();
        assert_eq!(scores, vec![50, 50, -20]);
        InterPodAffinity.normalize(&mut scores);
        assert_eq!(scores, vec![100, 100, 0]);
    }
}
