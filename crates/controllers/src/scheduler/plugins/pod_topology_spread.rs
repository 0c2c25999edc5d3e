//! PodTopologySpread: `spec.topologySpreadConstraints`.
//!
//! For each constraint, the pods its `labelSelector` (plus the pod's own
//! values for `matchLabelKeys`) selects in the pod's namespace are counted
//! per domain — the values of `topologyKey` on the nodes the pod could land
//! on (`nodeAffinityPolicy: Honor`, the default, counts only nodes matching
//! the pod's nodeSelector and required node affinity; `nodeTaintsPolicy:
//! Honor` only nodes whose taints it tolerates). Placing the pod in a
//! domain must keep `count + 1 - min(count)` within `maxSkew`; when fewer
//! than `minDomains` domains exist the minimum is taken as 0.
//!
//! `whenUnsatisfiable: DoNotSchedule` constraints filter (a node without
//! the key is ruled out too); `ScheduleAnyway` constraints score, fewer
//! matching pods in the domain scoring higher. Reasons and arithmetic are
//! Kubernetes'. Pods without constraints skip the plugin: Kubernetes'
//! cluster-default spreading is [`super::owner_spread`]'s job here.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::node_affinity::RequiredNodeAffinity;
use super::taint_toleration::tolerates;
use crate::reconcile::Selector;
use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};
use crate::scheduler::framework::{
    CycleState, FilterPlugin, Rejection, ScorePlugin, MAX_NODE_SCORE,
};

const NAME: &str = "PodTopologySpread";

/// Kubernetes' reasons.
pub const REASON_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
pub const REASON_SKEW: &str = "node(s) didn't match pod topology spread constraints";

/// The PodTopologySpread filter and score.
pub struct PodTopologySpread;

/// One constraint, compiled.
struct Constraint {
    max_skew: i64,
    key: String,
    min_domains: usize,
    selector: Selector,
    /// Whether the pod itself is selected (it adds one where it lands).
    self_match: i64,
    honor_affinity: bool,
    honor_taints: bool,
}

fn constraints(pod: &PodInfo, hard: bool) -> Vec<Constraint> {
    let Some(list) = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
    else {
        return Vec::new();
    };
    list.iter()
        .filter(|c| (c.when_unsatisfiable == "DoNotSchedule") == hard)
        .map(|c| compile(c, pod))
        .collect()
}

fn compile(c: &TopologySpreadConstraint, pod: &PodInfo) -> Constraint {
    let selector = match &c.label_selector {
        None => Selector::nothing(),
        Some(sel) => {
            // matchLabelKeys: the pod's own values join the selector.
            let mut sel: LabelSelector = sel.clone();
            for k in c.match_label_keys.iter().flatten() {
                if let Some(v) = pod.labels.get(k) {
                    sel.match_expressions.get_or_insert_with(Vec::new).push(
                        LabelSelectorRequirement {
                            key: k.clone(),
                            operator: "In".into(),
                            values: Some(vec![v.clone()]),
                        },
                    );
                }
            }
            Selector::new(&sel)
        }
    };
    Constraint {
        max_skew: i64::from(c.max_skew.max(1)),
        key: c.topology_key.clone(),
        min_domains: c
            .min_domains
            .map_or(1, |m| usize::try_from(m.max(1)).unwrap_or(1)),
        self_match: i64::from(selector.matches(Some(&pod.labels))),
        selector,
        honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
        honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
    }
}

/// Whether a node's pods count for the constraints: it has every key and
/// passes the policies.
fn eligible(
    cs: &[Constraint],
    pod: &PodInfo,
    affinity: &RequiredNodeAffinity,
    node: &NodeInfo,
) -> bool {
    node.present
        && cs.iter().all(|c| node.labels.contains_key(&c.key))
        && (!cs.iter().any(|c| c.honor_affinity) || affinity.matches(node))
        && (!cs.iter().any(|c| c.honor_taints)
            || node
                .taints
                .iter()
                .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                .all(|t| pod.tolerations.iter().any(|tol| tolerates(tol, t))))
}

/// One constraint's counts: domain value → matching pods (domains with
/// none are absent), and how many domains the eligible nodes make up.
#[derive(Default)]
struct Counted {
    pods: HashMap<String, i64>,
    domains: usize,
}

/// Count per constraint. Pods are found through the cache's label index,
/// so the work follows the pods a selector can match, not the cluster.
/// Domains are counted only when `with_domains` (filtering needs them,
/// scoring does not).
fn count(cs: &[Constraint], pod: &PodInfo, cache: &Cache, with_domains: bool) -> Vec<Counted> {
    if cs.is_empty() {
        return Vec::new();
    }
    let affinity = RequiredNodeAffinity::of(pod);
    let mut domains: Vec<HashSet<&str>> = vec![HashSet::new(); cs.len()];
    for node in cache.nodes().iter().filter(|_| with_domains) {
        if eligible(cs, pod, &affinity, node) {
            for (c, d) in cs.iter().zip(domains.iter_mut()) {
                if let Some(v) = node.labels.get(&c.key) {
                    d.insert(v.as_str());
                }
            }
        }
    }
    let ns = pod.namespace();
    cs.iter()
        .zip(domains)
        .map(|(c, d)| {
            let mut pods = HashMap::new();
            for (_, node) in cache.placed_selected(Some(ns), &c.selector) {
                let Some(node) = node else { continue };
                if !eligible(cs, pod, &affinity, node) {
                    continue;
                }
                if let Some(v) = node.labels.get(&c.key) {
                    *pods.entry(v.clone()).or_insert(0) += 1;
                }
            }
            Counted {
                pods,
                domains: d.len(),
            }
        })
        .collect()
}

/// The hard constraints and their counts, computed once per cycle.
struct Hard {
    constraints: Vec<Constraint>,
    counts: Vec<Counted>,
    /// Per constraint, the global minimum the skew is measured against.
    minimum: Vec<i64>,
}

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
    ) -> Result<(), String> {
        let constraints = constraints(pod, true);
        let counts = count(&constraints, pod, cache, true);
        let minimum = constraints
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                if m.domains < c.min_domains || m.pods.len() < m.domains {
                    // Too few domains, or an eligible domain without pods.
                    0
                } else {
                    m.pods.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
        state.write(
            NAME,
            Hard {
                constraints,
                counts,
                minimum,
            },
        );
        Ok(())
    }

    fn filter(&self, _: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Rejection> {
        let Some(h) = state.read::<Hard>(NAME) else {
            return Ok(());
        };
        for ((c, m), min) in h.constraints.iter().zip(&h.counts).zip(&h.minimum) {
            let Some(v) = node.labels.get(&c.key) else {
                return Err(Rejection::new(REASON_MISSING_LABEL));
            };
            let here = m.pods.get(v).copied().unwrap_or(0);
            if here + c.self_match - min > c.max_skew {
                return Err(Rejection::new(REASON_SKEW));
            }
        }
        Ok(())
    }
}

/// The soft constraints and their counts.
struct Soft {
    constraints: Vec<Constraint>,
    counts: Vec<Counted>,
}

/// Score of a node lacking a soft constraint's key: it ends at 0.
const IGNORED: i64 = -1;

impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(&self, pod: &PodInfo, cache: &Cache, state: &mut CycleState) {
        let constraints = constraints(pod, false);
        let counts = count(&constraints, pod, cache, false);
        state.write(
            NAME,
            Soft {
                constraints,
                counts,
            },
        );
    }

    /// Matching pods in the node's domains, summed over the constraints
    /// (each plus `maxSkew - 1`, as Kubernetes adds).
    fn score(&self, _: &PodInfo, node: &NodeInfo, state: &CycleState) -> i64 {
        let Some(s) = state.read::<Soft>(NAME) else {
            return 0;
        };
        let mut total = 0;
        for (c, m) in s.constraints.iter().zip(&s.counts) {
            let Some(v) = node.labels.get(&c.key) else {
                return IGNORED;
            };
            total += m.pods.get(v).copied().unwrap_or(0) + c.max_skew - 1;
        }
        total
    }

    /// Fewer is better: `100 × (max + min − s) / max` over the nodes that
    /// have the keys; nodes without them get 0.
    fn normalize(&self, scores: &mut [i64]) {
        let counted = scores.iter().copied().filter(|s| *s != IGNORED);
        let max = counted.clone().max().unwrap_or(0);
        let min = counted.min().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if *s == IGNORED {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};

    const HOST: &str = "kubernetes.io/hostname";
    const ZONE: &str = "topology.kubernetes.io/zone";

    fn node(name: &str, labels: Value) -> Node {
        let mut l = json!({HOST: name});
        if let (Some(m), Some(extra)) = (l.as_object_mut(), labels.as_object()) {
            m.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": l},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .expect("node")
    }

    fn pod(name: &str, labels: Value, spec: Value) -> PodInfo {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "x"}]);
        PodInfo::new(
            serde_json::from_value::<Pod>(json!({
                "metadata": {"name": name, "namespace": "default", "labels": labels},
                "spec": spec,
            }))
            .expect("pod"),
        )
    }

    fn spread(key: &str, skew: i32, when: &str) -> Value {
        json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
               "labelSelector": {"matchLabels": {"app": "web"}}})
    }

    fn web(name: &str, constraints: Value) -> PodInfo {
        pod(
            name,
            json!({"app": "web"}),
            json!({"topologySpreadConstraints": constraints}),
        )
    }

    /// a, b in z1; c in z2; d has no zone label.
    fn cache() -> Cache {
        let mut c = Cache::default();
        c.upsert_node(&node("a", json!({ZONE: "z1"})));
        c.upsert_node(&node("b", json!({ZONE: "z1"})));
        c.upsert_node(&node("c", json!({ZONE: "z2"})));
        c.upsert_node(&node("d", json!({})));
        c
    }

    fn results(c: &Cache, p: &PodInfo) -> Vec<(&'static str, Result<(), Rejection>)> {
        let mut s = CycleState::default();
        PodTopologySpread
            .pre_filter(p, c, &mut s)
            .expect("pre_filter");
        ["a", "b", "c", "d"]
            .into_iter()
            .map(|n| (n, PodTopologySpread.filter(p, c.node(n).expect("node"), &s)))
            .collect()
    }

    fn ok_nodes(c: &Cache, p: &PodInfo) -> Vec<&'static str> {
        results(c, p)
            .into_iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn zone_skew_is_kept_within_max_skew() {
        let mut c = cache();
        let cs = json!([spread(ZONE, 1, "DoNotSchedule")]);
        // Empty cluster: every zoned node is fine; d lacks the key.
        assert_eq!(ok_nodes(&c, &web("w", cs.clone())), vec!["a", "b", "c"]);
        let r = results(&c, &web("w", cs.clone()));
        assert_eq!(r[3].1, Err(Rejection::new(REASON_MISSING_LABEL)));
        // One in z1: the next must go to z2.
        c.pod_bound(&web("w0", cs.clone()), "a");
        assert_eq!(ok_nodes(&c, &web("w1", cs.clone())), vec!["c"]);
        assert_eq!(
            results(&c, &web("w1", cs.clone()))[1].1,
            Err(Rejection::new(REASON_SKEW))
        );
        // Balanced again: both zones open.
        c.pod_bound(&web("w1", cs.clone()), "c");
        assert_eq!(ok_nodes(&c, &web("w2", cs.clone())), vec!["a", "b", "c"]);
        // Pods the selector does not pick do not count.
        c.pod_bound(&pod("other", json!({"app": "db"}), json!({})), "c");
        c.pod_bound(&pod("other2", json!({"app": "db"}), json!({})), "c");
        assert_eq!(ok_nodes(&c, &web("w2", cs)), vec!["a", "b", "c"]);
    }

    #[test]
    fn hostname_spread_with_larger_skew() {
        let mut c = cache();
        let cs = json!([spread(HOST, 2, "DoNotSchedule")]);
        c.pod_bound(&web("w0", cs.clone()), "a");
        c.pod_bound(&web("w1", cs.clone()), "a");
        // a holds 2, the others 0: a third on a would make the skew 3.
        assert_eq!(ok_nodes(&c, &web("w2", cs)), vec!["b", "c", "d"]);
    }

    #[test]
    fn node_affinity_narrows_the_domains_counted() {
        let mut c = cache();
        let cs = json!([spread(ZONE, 1, "DoNotSchedule")]);
        c.pod_bound(&web("w0", cs.clone()), "a");
        // Only z1 nodes allowed: z2 is not a domain, so z1 is the minimum.
        let mut p = web("w1", cs.clone());
        let mut pod = (*p.pod).clone();
        if let Some(s) = pod.spec.as_mut() {
            s.node_selector = Some([(ZONE.to_string(), "z1".to_string())].into());
        }
        p = PodInfo::new(pod);
        assert!(ok_nodes(&c, &p).contains(&"b"));
        // With nodeAffinityPolicy: Ignore, z2 counts (0) and z1 is over.
        let mut ignore = spread(ZONE, 1, "DoNotSchedule");
        ignore["nodeAffinityPolicy"] = json!("Ignore");
        let mut pod2 = (*web("w1", json!([ignore])).pod).clone();
        if let Some(s) = pod2.spec.as_mut() {
            s.node_selector = Some([(ZONE.to_string(), "z1".to_string())].into());
        }
        let p2 = PodInfo::new(pod2);
        assert!(!ok_nodes(&c, &p2).contains(&"b"));
    }

    #[test]
    fn min_domains_holds_the_minimum_at_zero() {
        let mut c = cache();
        let mut con = spread(ZONE, 1, "DoNotSchedule");
        con["minDomains"] = json!(3);
        let cs = json!([con]);
        c.pod_bound(&web("w0", cs.clone()), "a");
        c.pod_bound(&web("w1", cs.clone()), "c");
        // Two zones < 3: min is 0, so z1 and z2 (1 each) are both at the limit.
        assert!(ok_nodes(&c, &web("w2", cs)).is_empty());
    }

    #[test]
    fn match_label_keys_count_only_the_same_revision() {
        let mut c = cache();
        let mut con = spread(HOST, 1, "DoNotSchedule");
        con["matchLabelKeys"] = json!(["rev"]);
        let cs = json!([con]);
        let old = pod(
            "old",
            json!({"app": "web", "rev": "1"}),
            json!({"topologySpreadConstraints": cs.clone()}),
        );
        c.pod_bound(&old, "a");
        c.pod_bound(
            &pod("old2", json!({"app": "web", "rev": "1"}), json!({})),
            "a",
        );
        let new = pod(
            "new",
            json!({"app": "web", "rev": "2"}),
            json!({"topologySpreadConstraints": cs}),
        );
        assert_eq!(ok_nodes(&c, &new), vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn schedule_anyway_scores_emptier_domains_higher() {
        let mut c = cache();
        let cs = json!([spread(ZONE, 1, "ScheduleAnyway")]);
        c.pod_bound(&web("w0", cs.clone()), "a");
        c.pod_bound(&web("w1", cs.clone()), "b");
        let p = web("w2", cs);
        // Soft constraints never filter.
        assert_eq!(ok_nodes(&c, &p), vec!["a", "b", "c", "d"]);
        let mut s = CycleState::default();
        PodTopologySpread.pre_score(&p, &c, &mut s);
        let mut scores: Vec<i64> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| PodTopologySpread.score(&p, c.node(n).expect("node"), &s))
            .collect();
        assert_eq!(scores, vec![2, 2, 0, IGNORED]);
        PodTopologySpread.normalize(&mut scores);
        assert_eq!(scores, vec![0, 0, 100, 0]);
    }
}
