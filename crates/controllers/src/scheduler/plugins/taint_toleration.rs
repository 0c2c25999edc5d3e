//! TaintToleration: NoSchedule and NoExecute taints keep out pods that do
//! not tolerate them; PreferNoSchedule taints only lower a node's score.
//! Not-ready and unreachable nodes carry the matching `node.kubernetes.io`
//! taint in the cache, so they are refused here too, with Kubernetes'
//! message `node(s) had untolerated taint {node.kubernetes.io/not-ready: }`.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::framework::{
    normalize_reverse, CycleState, FilterPlugin, Rejection, ScorePlugin,
};

/// The TaintToleration filter and score.
pub struct TaintToleration;

/// Whether a toleration tolerates a taint (Kubernetes'
/// `Toleration.ToleratesTaint`): an empty effect matches every effect, an
/// empty key with `Exists` matches every taint.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> Result<(), Rejection> {
        let untolerated = node.taints.iter().find(|t| {
            matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
                && !tolerated(&pod.tolerations, t)
        });
        match untolerated {
            None => Ok(()),
            Some(t) => Err(Rejection::new(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            ))),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    /// The number of PreferNoSchedule taints the pod does not tolerate;
    /// Kubernetes counts only tolerations with an empty or
    /// PreferNoSchedule effect here.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> i64 {
        let soft: Vec<&Toleration> = pod
            .tolerations
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        node.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| !soft.iter().any(|tol| tolerates(tol, t)))
            .count() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_reverse(scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testutil::{node, pod};
    use serde_json::json;

    fn tainted(taints: serde_json::Value) -> NodeInfo {
        node("a", json!({}), json!({"taints": taints}), json!({}))
    }

    #[test]
    fn untolerated_no_schedule_taint_refuses_with_kubernetes_message() {
        let n = tainted(json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]));
        assert_eq!(
            TaintToleration.filter(&pod(json!({})), &n, &CycleState::default()),
            Err(Rejection::new(
                "node(s) had untolerated taint {dedicated: gpu}"
            ))
        );
    }

    #[test]
    fn no_execute_also_filters_but_prefer_no_schedule_does_not() {
        let n = tainted(json!([{"key": "k", "effect": "NoExecute"}]));
        assert!(TaintToleration
            .filter(&pod(json!({})), &n, &CycleState::default())
            .is_err());
        let n = tainted(json!([{"key": "k", "effect": "PreferNoSchedule"}]));
        assert!(TaintToleration
            .filter(&pod(json!({})), &n, &CycleState::default())
            .is_ok());
    }

    #[test]
    fn toleration_semantics_match_kubernetes() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let t =
            |v: serde_json::Value| -> Toleration { serde_json::from_value(v).expect("toleration") };
        assert!(
            tolerates(&t(json!({"key": "k", "value": "v"})), &taint),
            "default operator Equal, any effect"
        );
        assert!(!tolerates(&t(json!({"key": "k", "value": "w"})), &taint));
        assert!(tolerates(
            &t(json!({"key": "k", "operator": "Exists"})),
            &taint
        ));
        assert!(
            tolerates(&t(json!({"operator": "Exists"})), &taint),
            "empty key + Exists tolerates everything"
        );
        assert!(!tolerates(
            &t(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
            &taint
        ));
    }

    #[test]
    fn not_ready_node_is_refused_unless_tolerated() {
        let n = node(
            "a",
            json!({}),
            json!({}),
            json!({"conditions": [{"type": "Ready", "status": "False"}]}),
        );
        assert_eq!(
            TaintToleration.filter(&pod(json!({})), &n, &CycleState::default()),
            Err(Rejection::new(
                "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
            ))
        );
        let p = pod(
            json!({"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]}),
        );
        assert!(TaintToleration
            .filter(&p, &n, &CycleState::default())
            .is_ok());
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let clean = tainted(json!([]));
        let soft = tainted(json!([{"key": "k", "effect": "PreferNoSchedule"}]));
        let p = pod(json!({}));
        let s = CycleState::default();
        let mut scores = vec![
            TaintToleration.score(&p, &clean, &s),
            TaintToleration.score(&p, &soft, &s),
        ];
        TaintToleration.normalize(&mut scores);
        assert_eq!(scores, vec![100, 0]);
        let tol = pod(
            json!({"tolerations": [{"key": "k", "operator": "Exists", "effect": "PreferNoSchedule"}]}),
        );
        assert_eq!(TaintToleration.score(&tol, &soft, &s), 0);
    }
}
