//! The scheduler's plugins, one per constraint, and the default set.
//!
//! Filters run in Kubernetes' order (unschedulable, taints, node affinity,
//! then skiff's runtime handler and image platform, then resources,
//! topology spread, inter-pod affinity), so a node refused for
//! several reasons is counted under the same one Kubernetes would name.
//! Score weights are Kubernetes' defaults.
//!
//! `ImagePlatform` is skiff's own: a Linux image only lands on nodes of an
//! os/architecture it provides (the scheduler loop looks the image up in
//! its registry first).

use super::framework::{FilterPlugin, Framework, ScorePlugin};

pub mod image_platform;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod owner_spread;
pub mod pod_topology_spread;
pub mod runtime_handler;
pub mod taint_toleration;

/// The plugins `skiff`'s scheduler runs.
pub fn default_framework() -> Framework {
    let filters: Vec<Box<dyn FilterPlugin>> = vec![
        Box::new(node_unschedulable::NodeUnschedulable),
        Box::new(taint_toleration::TaintToleration),
        Box::new(node_affinity::NodeAffinity),
        Box::new(runtime_handler::RuntimeHandler),
        Box::new(image_platform::ImagePlatform),
        Box::new(node_resources_fit::NodeResourcesFit),
        Box::new(pod_topology_spread::PodTopologySpread),
        Box::new(inter_pod_affinity::InterPodAffinity),
    ];
    let scores: Vec<(Box<dyn ScorePlugin>, i64)> = vec![
        (Box::new(taint_toleration::TaintToleration), 3),
        (Box::new(node_affinity::NodeAffinity), 2),
        (Box::new(node_resources_fit::NodeResourcesFit), 1),
        (Box::new(owner_spread::OwnerSpread), 2),
        (Box::new(pod_topology_spread::PodTopologySpread), 2),
        (Box::new(inter_pod_affinity::InterPodAffinity), 2),
    ];
    Framework::new(filters, scores)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Pods and nodes for plugin tests, from JSON as a user would write them.
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};

    use crate::scheduler::cache::{NodeInfo, PodInfo};

    /// A pod with this spec (a container is added if none is given).
    pub fn pod(spec: Value) -> PodInfo {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "x"}]);
        }
        let p: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}),
        )
        .expect("pod");
        PodInfo::new(p)
    }

    /// A Ready node with these labels, spec and status fields merged in.
    pub fn node(name: &str, labels: Value, spec: Value, status: Value) -> NodeInfo {
        let mut st = json!({
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        });
        if let (Some(s), Some(extra)) = (st.as_object_mut(), status.as_object()) {
            for (k, v) in extra {
                s.insert(k.clone(), v.clone());
            }
        }
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
            "status": st,
        }))
        .expect("node");
        NodeInfo::from_node(&n)
    }
}
