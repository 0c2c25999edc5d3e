//! NodeAffinity: `spec.nodeSelector` and required node affinity rule nodes
//! out; preferred node affinity scores them (sum of the weights of the
//! terms a node matches, scaled so the best node gets 100).
//!
//! Semantics are Kubernetes': the terms of `nodeSelectorTerms` are ORed,
//! the requirements inside a term ANDed, an empty term matches nothing;
//! `NotIn` and `DoesNotExist` match a node without the label; `Gt`/`Lt`
//! compare the label as an integer; `matchFields` only knows
//! `metadata.name`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};
use crate::scheduler::framework::{
    normalize_to_max, CycleState, FilterPlugin, Rejection, ScorePlugin,
};

/// Kubernetes' reason for a node outside the pod's selector or affinity.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

const NAME: &str = "NodeAffinity";

/// The NodeAffinity filter and score.
pub struct NodeAffinity;

/// What the pod requires and prefers, read once per cycle.
#[derive(Debug, Default)]
struct Prepared {
    selector: BTreeMap<String, String>,
    required: Option<Vec<NodeSelectorTerm>>,
    preferred: Vec<(i64, NodeSelectorTerm)>,
}

fn prepare(pod: &PodInfo) -> Prepared {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return Prepared::default();
    };
    let na = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref());
    Prepared {
        selector: spec.node_selector.clone().unwrap_or_default(),
        required: na
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|r| r.node_selector_terms.clone()),
        preferred: na
            .and_then(|n| {
                n.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|p| (i64::from(p.weight), p.preference.clone()))
            .collect(),
    }
}

/// Whether a node matches one requirement on its labels.
pub fn label_requirement_matches(
    r: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let label = labels.get(&r.key);
    let as_int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => label.is_some_and(|l| values.contains(l)),
        "NotIn" => !label.is_some_and(|l| values.contains(l)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                label.and_then(|l| as_int(l)),
                values.first().and_then(|v| as_int(v)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

fn field_requirement_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    if r.key != "metadata.name" {
        return false;
    }
    let values = r.values.as_deref().unwrap_or(&[]);
    let hit = values.iter().any(|v| v == node_name);
    match r.operator.as_str() {
        "In" => hit,
        "NotIn" => !hit,
        _ => false,
    }
}

/// Whether a node matches a term: every requirement, and at least one.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| label_requirement_matches(r, &node.labels))
        && fields
            .iter()
            .all(|r| field_requirement_matches(r, &node.name))
}

fn fits(p: &Prepared, node: &NodeInfo) -> bool {
    p.selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && p.required
            .as_ref()
            .is_none_or(|terms| terms.iter().any(|t| term_matches(t, node)))
}

/// A pod's `nodeSelector` and required node affinity, compiled once, for
/// plugins that look only at the nodes the pod could land on (topology
/// spreading's `nodeAffinityPolicy: Honor`).
pub struct RequiredNodeAffinity(Prepared);

impl RequiredNodeAffinity {
    /// Compile the pod's node constraints.
    pub fn of(pod: &PodInfo) -> Self {
        RequiredNodeAffinity(prepare(pod))
    }

    /// Whether the node satisfies them.
    pub fn matches(&self, node: &NodeInfo) -> bool {
        fits(&self.0, node)
    }
}

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        _: &crate::scheduler::cache::Cache,
        state: &mut CycleState,
    ) -> Result<(), String> {
        state.write(NAME, prepare(pod));
        Ok(())
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Rejection> {
        let ok = match state.read::<Prepared>(NAME) {
            Some(p) => fits(p, node),
            None => fits(&prepare(pod), node),
        };
        if ok {
            Ok(())
        } else {
            Err(Rejection::new(REASON))
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(&self, pod: &PodInfo, _: &Cache, state: &mut CycleState) {
        if state.read::<Prepared>(NAME).is_none() {
            state.write(NAME, prepare(pod));
        }
    }

    fn score(&self, _pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> i64 {
        state
            .read::<Prepared>(NAME)
            .map(|p| {
                p.preferred
                    .iter()
                    .filter(|(_, t)| term_matches(t, node))
                    .map(|(w, _)| *w)
                    .sum()
            })
            .unwrap_or(0)
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_to_max(scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::Cache;
    use crate::scheduler::plugins::testutil::{node, pod};
    use serde_json::json;

    fn check(p: &PodInfo, n: &NodeInfo) -> Result<(), Rejection> {
        let mut s = CycleState::default();
        NodeAffinity
            .pre_filter(p, &Cache::default(), &mut s)
            .expect("prefilter");
        NodeAffinity.filter(p, n, &s)
    }

    fn required(exprs: serde_json::Value) -> PodInfo {
        pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}}),
        )
    }

    #[test]
    fn node_selector_must_match_every_label() {
        let n = node(
            "a",
            json!({"zone": "x", "disk": "ssd"}),
            json!({}),
            json!({}),
        );
        assert!(check(&pod(json!({"nodeSelector": {"zone": "x"}})), &n).is_ok());
        assert_eq!(
            check(
                &pod(json!({"nodeSelector": {"zone": "x", "disk": "hdd"}})),
                &n
            ),
            Err(Rejection::new(REASON))
        );
    }

    #[test]
    fn match_expression_operators() {
        let n = node(
            "a",
            json!({"zone": "x", "cores": "8"}),
            json!({}),
            json!({}),
        );
        let ok = |e| check(&required(e), &n).is_ok();
        assert!(ok(
            json!([{"key": "zone", "operator": "In", "values": ["x", "y"]}])
        ));
        assert!(!ok(
            json!([{"key": "zone", "operator": "NotIn", "values": ["x"]}])
        ));
        assert!(
            ok(json!([{"key": "gpu", "operator": "NotIn", "values": ["x"]}])),
            "NotIn matches a missing label"
        );
        assert!(ok(json!([{"key": "zone", "operator": "Exists"}])));
        assert!(ok(json!([{"key": "gpu", "operator": "DoesNotExist"}])));
        assert!(ok(
            json!([{"key": "cores", "operator": "Gt", "values": ["4"]}])
        ));
        assert!(!ok(
            json!([{"key": "cores", "operator": "Lt", "values": ["4"]}])
        ));
        assert!(
            !ok(json!([{"key": "zone", "operator": "Gt", "values": ["4"]}])),
            "non-integer label never matches Gt"
        );
        assert!(
            !ok(
                json!([{"key": "zone", "operator": "In", "values": ["x"]}, {"key": "gpu", "operator": "Exists"}])
            ),
            "requirements are ANDed"
        );
    }

    #[test]
    fn terms_are_ored_and_an_empty_term_matches_nothing() {
        let n = node("a", json!({"zone": "x"}), json!({}), json!({}));
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["y"]}]},
                                  {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}]}}}}),
        );
        assert!(check(&p, &n).is_ok());
        let empty = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{}]}}}}),
        );
        assert!(check(&empty, &n).is_err());
    }

    #[test]
    fn match_fields_on_node_name() {
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}),
        );
        assert!(check(&p, &node("a", json!({}), json!({}), json!({}))).is_err());
        assert!(check(&p, &node("b", json!({}), json!({}), json!({}))).is_ok());
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 80, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}},
            {"weight": 20, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]}}}),
        );
        let a = node(
            "a",
            json!({"zone": "x", "disk": "ssd"}),
            json!({}),
            json!({}),
        );
        let b = node("b", json!({"disk": "ssd"}), json!({}), json!({}));
        let c = node("c", json!({}), json!({}), json!({}));
        let mut s = CycleState::default();
        NodeAffinity.pre_score(&p, &Cache::default(), &mut s);
        let mut scores: Vec<i64> = [&a, &b, &c]
            .iter()
            .map(|n| NodeAffinity.score(&p, n, &s))
            .collect();
        assert_eq!(scores, vec![100, 20, 0]);
        NodeAffinity.normalize(&mut scores);
        assert_eq!(scores, vec![100, 20, 0]);
    }
}
