//! Cluster infrastructure kinds: Node, Lease (coordination.k8s.io) and
//! RuntimeClass (node.k8s.io).
//!
//! A Node's `spec.podCIDR`/`podCIDRs` follow Kubernetes: valid CIDRs, at
//! most one per IP family, set once from empty and immutable afterwards
//! (so an IPAM controller may assign them, and nothing may move them while
//! pods use addresses from them).

use serde_json::Value;

use super::meta::validate_labels;
use super::names::{cidr_family, is_dns1123_label, is_qualified_name, INVALID_CIDR};
use super::{
    arr_of, child, field_of, forbidden, immutable, index, invalid, invalid_each, not_supported,
    required, str_of, Errs,
};

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Validate a Node's taints and pod CIDRs.
pub(super) fn validate_node(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    let mut errs: Errs = arr_of(spec, "taints")
        .iter()
        .enumerate()
        .flat_map(|(i, t)| validate_taint(t, &index("spec.taints", i)))
        .collect();
    errs.extend(validate_pod_cidrs(spec));
    errs
}

/// Every pod CIDR must parse, and there may be one per IP family. Defaulting
/// has made `podCIDRs` start with `podCIDR`; an object that skipped it is
/// checked on `podCIDR` alone.
fn validate_pod_cidrs(spec: &Value) -> Errs {
    let cidrs = arr_of(spec, "podCIDRs");
    if cidrs.is_empty() {
        let single = str_of(spec, "podCIDR");
        return match (single.is_empty(), cidr_family(single)) {
            (false, None) => vec![invalid("spec.podCIDR", single, INVALID_CIDR)],
            _ => Errs::new(),
        };
    }
    let mut errs = Errs::new();
    let mut families = Vec::new();
    for (i, c) in cidrs.iter().enumerate() {
        let c = c.as_str().unwrap_or("");
        match cidr_family(c) {
            Some(v4) => families.push(v4),
            None => errs.push(invalid(&index("spec.podCIDRs", i), c, INVALID_CIDR)),
        }
    }
    let same_family = families.len() == 2 && families[0] == families[1];
    if cidrs.len() > 2 || same_family {
        errs.push(invalid(
            "spec.podCIDRs",
            Value::Array(cidrs.to_vec()),
            "may specify no more than one CIDR for each IP family",
        ));
    }
    errs
}

/// A Node's pod CIDRs, from `podCIDRs` or, on an object stored before
/// defaulting filled it, `podCIDR`.
fn pod_cidrs(node: &Value) -> Vec<&str> {
    let spec = field_of(node, "spec");
    let list: Vec<&str> = arr_of(spec, "podCIDRs")
        .iter()
        .map(|c| c.as_str().unwrap_or(""))
        .collect();
    if !list.is_empty() {
        return list;
    }
    let single = str_of(spec, "podCIDR");
    if single.is_empty() {
        Vec::new()
    } else {
        vec![single]
    }
}

/// A Node's pod CIDRs may be set once (by whoever allocates them, usually
/// the node IPAM controller) and never changed or removed after.
pub(super) fn validate_node_update(old: &Value, new: &Value) -> Errs {
    let before = pod_cidrs(old);
    if before.is_empty() || before == pod_cidrs(new) {
        return Errs::new();
    }
    vec![forbidden(
        "spec.podCIDRs",
        "node updates may not change podCIDR except from \"\" to valid",
    )]
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
