//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes no new
//! pods, unless the pod tolerates the `node.kubernetes.io/unschedulable`
//! NoSchedule taint (as DaemonSet pods do), exactly as in Kubernetes.

use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::framework::{CycleState, FilterPlugin, Rejection};

/// Kubernetes' reason for a cordoned node.
pub const REASON: &str = "node(s) were unschedulable";
/// The taint key a pod tolerates to land on a cordoned node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The NodeUnschedulable filter.
pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> Result<(), Rejection> {
        if !node.unschedulable {
            return Ok(());
        }
        let taint = k8s_openapi::api::core::v1::Taint {
            key: TAINT_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerated = pod
            .tolerations
            .iter()
            .any(|t| super::taint_toleration::tolerates(t, &taint));
        if tolerated {
            Ok(())
        } else {
            Err(Rejection::new(REASON))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn cordoned_node_refuses_pods() {
        let n = node("a", json!({}), json!({"unschedulable": true}), json!({}));
        let r = NodeUnschedulable.filter(&pod(json!({})), &n, &CycleState::default());
        assert_eq!(r, Err(Rejection::new("node(s) were unschedulable")));
    }

    #[test]
    fn toleration_of_the_unschedulable_taint_lets_a_pod_in() {
        let n = node("a", json!({}), json!({"unschedulable": true}), json!({}));
        let p = pod(
            json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert_eq!(
            NodeUnschedulable.filter(&p, &n, &CycleState::default()),
            Ok(())
        );
    }

    #[test]
    fn schedulable_node_passes() {
        let n = node("a", json!({}), json!({}), json!({}));
        assert_eq!(
            NodeUnschedulable.filter(&pod(json!({})), &n, &CycleState::default()),
            Ok(())
        );
    }
}
