//! NodeResourcesFit: a node must have room for the pod's requests
//! (allocatable minus what pods on it, bound or just reserved, request) and
//! for one more pod; among nodes that fit, the least allocated scores
//! highest, which spreads load (Kubernetes' `LeastAllocated` strategy,
//! CPU and memory weighted equally, best-effort pods counted at the
//! default 100m / 200Mi).

use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::framework::{
    CycleState, FilterPlugin, Rejection, ScorePlugin, MAX_NODE_SCORE,
};
use crate::scheduler::resources::non_zero_requests;

/// The NodeResourcesFit filter and least-allocated score.
pub struct NodeResourcesFit;

/// Every reason the node cannot hold the pod, in Kubernetes' order.
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut out = Vec::new();
    if node.pod_count + 1 > node.allowed_pods {
        out.push("Too many pods".to_string());
    }
    let want = &pod.requests;
    let free = |name: &str| node.allocatable.get(name) - node.requested.get(name);
    if want.cpu > 0 && want.cpu > free("cpu") {
        out.push("Insufficient cpu".to_string());
    }
    if want.memory > 0 && want.memory > free("memory") {
        out.push("Insufficient memory".to_string());
    }
    for (name, amount) in &want.scalar {
        if *amount > 0 && *amount > free(name) {
            out.push(format!("Insufficient {name}"));
        }
    }
    out
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> Result<(), Rejection> {
        let reasons = insufficient(pod, node);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Rejection(reasons))
        }
    }
}

fn least_allocated(requested: i64, allocatable: i64) -> i64 {
    if allocatable <= 0 || requested > allocatable {
        return 0;
    }
    (allocatable - requested) * MAX_NODE_SCORE / allocatable
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> i64 {
        let (cpu, mem) = non_zero_requests(&pod.requests);
        let cpu_score = least_allocated(node.non_zero_requested.0 + cpu, node.allocatable.cpu);
        let mem_score = least_allocated(node.non_zero_requested.1 + mem, node.allocatable.memory);
        (cpu_score + mem_score) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::Cache;
    use crate::scheduler::plugins::testutil::{node, pod};
    use serde_json::json;

    fn small() -> NodeInfo {
        node(
            "a",
            json!({}),
            json!({}),
            json!({"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "2", "example.com/dongle": "1"}}),
        )
    }

    fn asking(cpu: &str, mem: &str) -> PodInfo {
        pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}),
        )
    }

    #[test]
    fn pod_that_fits_passes() {
        assert!(NodeResourcesFit
            .filter(&asking("500m", "512Mi"), &small(), &CycleState::default())
            .is_ok());
    }

    #[test]
    fn every_insufficient_resource_is_named() {
        let r = NodeResourcesFit.filter(&asking("2", "2Gi"), &small(), &CycleState::default());
        assert_eq!(
            r,
            Err(Rejection(vec![
                "Insufficient cpu".into(),
                "Insufficient memory".into()
            ]))
        );
        let dongles = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/dongle": "2"}}}]}),
        );
        assert_eq!(
            insufficient(&dongles, &small()),
            vec!["Insufficient example.com/dongle"]
        );
    }

    #[test]
    fn reserved_pods_reduce_the_room_and_the_pod_count() {
        let mut cache = Cache::default();
        let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "2"}, "conditions": [{"type": "Ready", "status": "True"}]}}))
            .expect("node");
        cache.upsert_node(&n);
        let p = asking("600m", "100Mi");
        cache.assume(&p, "a");
        let node = cache.node("a").expect("node");
        assert_eq!(insufficient(&p, node), vec!["Insufficient cpu"]);
        let mut tiny = asking("100m", "1Mi");
        tiny.key = "default/tiny".into();
        cache.assume(&tiny, "a");
        let mut other = asking("1m", "1Mi");
        other.key = "default/other".into();
        assert_eq!(
            insufficient(&other, cache.node("a").expect("node")),
            vec!["Too many pods"]
        );
    }

    #[test]
    fn best_effort_pod_only_needs_a_pod_slot() {
        assert!(insufficient(&pod(json!({})), &small()).is_empty());
    }

    #[test]
    fn emptier_node_scores_higher() {
        let s = CycleState::default();
        let p = asking("500m", "256Mi");
        let empty = small();
        let mut busy = small();
        busy.non_zero_requested = (500, 512 * 1024 * 1024 * 1000);
        let (a, b) = (
            NodeResourcesFit.score(&p, &empty, &s),
            NodeResourcesFit.score(&p, &busy, &s),
        );
        assert_eq!(a, 62, "(50 + 75) / 2");
        assert_eq!(b, 12, "(0 + 25) / 2");
    }
}
