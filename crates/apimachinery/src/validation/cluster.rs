//! Cluster infrastructure kinds: Node, Lease (coordination.k8s.io) and
//! RuntimeClass (node.k8s.io).

use serde_json::Value;

use super::meta::validate_labels;
use super::names::{is_dns1123_label, is_qualified_name};
use super::{
    arr_of, child, field_of, immutable, index, invalid, invalid_each, not_supported, required,
    str_of, Errs,
};

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Validate a Node's taints.
pub(super) fn validate_node(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    arr_of(spec, "taints")
        .iter()
        .enumerate()
        .flat_map(|(i, t)| validate_taint(t, &index("spec.taints", i)))
        .collect()
}

fn validate_taint(taint: &Value, path: &str) -> Errs {
    let k = str_of(taint, "key");
    let mut errs = invalid_each(&child(path, "key"), k, is_qualified_name(k));
    let effect = str_of(taint, "effect");
    if effect.is_empty() {
        errs.push(required(&child(path, "effect"), ""));
    } else if !TAINT_EFFECTS.contains(&effect) {
        errs.push(not_supported(&child(path, "effect"), effect, TAINT_EFFECTS));
    }
    errs
}

/// Validate a Lease: positive duration, non-negative transitions.
pub(super) fn validate_lease(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    let mut errs = Errs::new();
    if let Some(d) = spec
        .get("leaseDurationSeconds")
        .and_then(Value::as_i64)
        .filter(|d| *d <= 0)
    {
        errs.push(invalid(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec
        .get("leaseTransitions")
        .and_then(Value::as_i64)
        .filter(|t| *t < 0)
    {
        errs.push(invalid(
            "spec.leaseTransitions",
            t,
            "must be greater than or equal to 0",
        ));
    }
    errs
}

/// Validate a RuntimeClass: the handler is a DNS-1123 label (Kubernetes
/// reports a missing handler as an invalid empty one), scheduling labels.
pub(super) fn validate_runtime_class(obj: &Value) -> Errs {
    let handler = str_of(obj, "handler");
    let mut errs = invalid_each("handler", handler, is_dns1123_label(handler));
    let scheduling = field_of(obj, "scheduling");
    errs.extend(validate_labels(
        scheduling.get("nodeSelector"),
        "scheduling.nodeSelector",
    ));
    errs
}

/// A RuntimeClass's handler is fixed.
pub(super) fn validate_runtime_class_update(old: &Value, new: &Value) -> Errs {
    immutable(
        field_of(new, "handler"),
        field_of(old, "handler"),
        "handler",
    )
    .into_iter()
    .collect()
}
