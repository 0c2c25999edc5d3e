//! Which nodes a DaemonSet runs on, and the pod it puts on each.
//!
//! Kubernetes' `NodeShouldRunDaemonPod`: a node gets a daemon pod when it
//! matches the template's `nodeSelector` and required node affinity and the
//! pod tolerates the node's NoSchedule and NoExecute taints, counting the
//! tolerations Kubernetes adds to every daemon pod. Readiness and cordoning
//! do not matter: daemons (log shippers, network agents) are what makes a
//! node usable, so they must land on nodes that are not yet.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::reconcile::Owner;
use crate::scheduler::cache::NodeInfo;
use crate::scheduler::plugins::node_affinity::term_matches;
use crate::scheduler::plugins::taint_toleration::tolerates;

/// Label with the template hash of the revision a pod was made from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// Label with the DaemonSet generation a pod was made from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// The tolerations Kubernetes adds to every daemon pod
/// (`AddOrUpdateDaemonPodTolerations`): a daemon stays on a node that is
/// not ready or unreachable, under resource pressure, or cordoned.
pub fn default_tolerations() -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    };
    vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

/// The template's tolerations plus the defaults it does not already have
/// (same key and effect).
fn tolerations_with_defaults(spec: &PodSpec) -> Vec<Toleration> {
    let mut all = spec.tolerations.clone().unwrap_or_default();
    for d in default_tolerations() {
        if !all.iter().any(|t| t.key == d.key && t.effect == d.effect) {
            all.push(d);
        }
    }
    all
}

/// Whether a node should run a daemon pod, and whether one already there
/// may stay (Kubernetes' `NodeShouldRunDaemonPod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// Selector, affinity and every NoSchedule/NoExecute taint allow it.
    pub should_run: bool,
    /// Selector, affinity and NoExecute taints allow it: a NoSchedule taint
    /// added later keeps new daemons out but does not evict one.
    pub should_continue: bool,
}

/// How a DaemonSet with this pod spec fits a node.
pub fn fit(spec: &PodSpec, node: &Node) -> Fit {
    let info = NodeInfo::from_node(node);
    let named = spec
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .is_none_or(|n| n == info.name);
    let selected = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| info.labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affine =
        required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, &info)));
    // The node's own taints only: the scheduler's synthesized readiness
    // taints are for scheduling, and daemons tolerate them anyway.
    let tolerations = tolerations_with_defaults(spec);
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tolerated = |effect: &str| {
        taints
            .iter()
            .filter(|t| t.effect == effect)
            .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
    };
    let placeable = named && selected && affine;
    let no_execute = tolerated("NoExecute");
    Fit {
        should_run: placeable && no_execute && tolerated("NoSchedule"),
        should_continue: placeable && no_execute,
    }
}

/// Whether a DaemonSet with this pod spec should have a pod on the node.
pub fn should_run(spec: &PodSpec, node: &Node) -> bool {
    fit(spec, node).should_run
}

/// The node a daemon pod is for: its `nodeName` once bound, else the node
/// its `matchFields metadata.name` affinity pins it to (Kubernetes'
/// `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().map(String::as_str))
}

/// Pin a pod to one node through required node affinity, replacing the
/// template's required terms (the controller already checked the node
/// matches them), as Kubernetes' `ReplaceDaemonSetPodNodeNameNodeAffinity`.
fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let mut affinity = affinity.unwrap_or_default();
    let mut na = affinity.node_affinity.take().unwrap_or_default();
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            match_expressions: None,
        }],
    });
    affinity.node_affinity = Some(na);
    affinity
}

/// The daemon pod for one node: the template, the revision labels, the
/// default tolerations, pinned to the node, controlled by the DaemonSet.
pub fn pod_for_node(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    let mut labels: BTreeMap<String, String> = tm.labels.unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    labels.insert(
        TEMPLATE_GENERATION_LABEL.into(),
        ds.metadata.generation.unwrap_or(0).to_string(),
    );
    let mut spec = template.spec.unwrap_or_default();
    spec.tolerations = Some(tolerations_with_defaults(&spec));
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                ds.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![Owner::of(ds).reference()]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
        }))
        .unwrap()
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut v = v;
        v["containers"] = json!([{"name": "c", "image": "x"}]);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn node_selector_and_required_affinity_choose_nodes() {
        let s = spec(json!({"nodeSelector": {"disk": "ssd"}}));
        assert!(should_run(
            &s,
            &node("a", json!({"disk": "ssd"}), json!([]))
        ));
        assert!(!should_run(
            &s,
            &node("b", json!({"disk": "hdd"}), json!([]))
        ));
        let aff = spec(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}}),
        );
        assert!(should_run(
            &aff,
            &node("a", json!({"zone": "z1"}), json!([]))
        ));
        assert!(!should_run(
            &aff,
            &node("a", json!({"zone": "z2"}), json!([]))
        ));
    }

    #[test]
    fn untolerated_taints_keep_daemons_out_but_defaults_are_tolerated() {
        let s = spec(json!({}));
        let dedicated = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        assert!(!should_run(&s, &node("a", json!({}), dedicated.clone())));
        let tolerant = spec(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal",
            "value": "gpu", "effect": "NoSchedule"}]}),
        );
        assert!(should_run(&tolerant, &node("a", json!({}), dedicated)));
        // PreferNoSchedule only scores; a cordoned or not-ready node still
        // gets its daemon (Kubernetes' default daemon tolerations).
        let soft = json!([{"key": "x", "effect": "PreferNoSchedule"}]);
        assert!(should_run(&s, &node("a", json!({}), soft)));
        let defaults = json!([
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]);
        assert!(should_run(&s, &node("a", json!({}), defaults)));
        // not-ready is tolerated only for NoExecute, as in Kubernetes.
        let not_ready_ns = json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]);
        assert!(!should_run(&s, &node("a", json!({}), not_ready_ns)));
        // A NoSchedule taint keeps new daemons out but evicts none; a
        // NoExecute one does both.
        let ns = fit(
            &s,
            &node(
                "a",
                json!({}),
                json!([{"key": "k", "effect": "NoSchedule"}]),
            ),
        );
        assert!(!ns.should_run && ns.should_continue);
        let ne = fit(
            &s,
            &node("a", json!({}), json!([{"key": "k", "effect": "NoExecute"}])),
        );
        assert!(!ne.should_run && !ne.should_continue);
    }

    #[test]
    fn the_pod_is_pinned_by_match_fields_and_labelled_with_its_revision() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "u1", "generation": 3},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "x"}],
                         "tolerations": [{"key": "node.kubernetes.io/unschedulable",
                                          "operator": "Exists", "effect": "NoSchedule"}],
                         "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                             "nodeSelectorTerms": [{"matchExpressions": [
                                 {"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}}}}
        }))
        .unwrap();
        let p = pod_for_node(&ds, "abc", "n1");
        assert_eq!(target_node(&p), Some("n1"));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "agent");
        assert_eq!(labels[REVISION_HASH_LABEL], "abc");
        assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "3");
        let spec = p.spec.as_ref().unwrap();
        let terms = &spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1, "the template's terms are replaced");
        // The template's unschedulable toleration is not duplicated.
        let tolerations = spec.tolerations.as_ref().unwrap();
        assert_eq!(tolerations.len(), 6);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("agent-"));
        assert_eq!(
            p.metadata.owner_references.as_ref().unwrap()[0].kind,
            "DaemonSet"
        );
    }

    #[test]
    fn a_bound_pod_targets_its_node_name() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "nodeName": "n2"}}))
        .unwrap();
        assert_eq!(target_node(&p), Some("n2"));
        let unpinned: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
                .unwrap();
        assert_eq!(target_node(&unpinned), None);
    }
}
