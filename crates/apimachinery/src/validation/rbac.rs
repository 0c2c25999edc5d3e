//! rbac.authorization.k8s.io Role, ClusterRole, RoleBinding, ClusterRoleBinding.

use serde_json::Value;

use super::names::{is_dns1123_subdomain, is_valid_path_segment_name};
use super::{
    arr_of, child, field_of, index, invalid, invalid_each, not_supported, required, str_of, Errs,
};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Validate a Role: every rule names verbs, groups and resources, and no
/// rule names non-resource URLs.
pub(super) fn validate_role(obj: &Value) -> Errs {
    validate_rules(obj, true)
}

/// Validate a ClusterRole: its rules and aggregation rule.
pub(super) fn validate_cluster_role(obj: &Value) -> Errs {
    let mut errs = validate_rules(obj, false);
    if let Some(agg) = obj.get("aggregationRule").filter(|a| !a.is_null()) {
        if arr_of(agg, "clusterRoleSelectors").is_empty() {
            errs.push(required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
    }
    errs
}

fn validate_rules(obj: &Value, namespaced: bool) -> Errs {
    arr_of(obj, "rules")
        .iter()
        .enumerate()
        .flat_map(|(i, rule)| validate_policy_rule(rule, namespaced, &index("rules", i)))
        .collect()
}

fn validate_policy_rule(rule: &Value, namespaced: bool, path: &str) -> Errs {
    let mut errs = Errs::new();
    let has = |f: &str| !arr_of(rule, f).is_empty();
    if !has("verbs") {
        errs.push(required(
            &child(path, "verbs"),
            "verbs must contain at least one value",
        ));
    }
    if has("nonResourceURLs") {
        let urls_path = child(path, "nonResourceURLs");
        let urls = field_of(rule, "nonResourceURLs").clone();
        if namespaced {
            errs.push(invalid(
                &urls_path,
                urls.clone(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if has("apiGroups") || has("resources") || has("resourceNames") {
            errs.push(invalid(
                &urls_path,
                urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if !has("apiGroups") {
        errs.push(required(
            &child(path, "apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if !has("resources") {
        errs.push(required(
            &child(path, "resources"),
            "resource rules must supply at least one resource",
        ));
    }
    errs
}

/// Validate a RoleBinding: it may bind a Role or a ClusterRole.
pub(super) fn validate_role_binding(obj: &Value) -> Errs {
    validate_binding(obj, &["Role", "ClusterRole"], true)
}

/// Validate a ClusterRoleBinding: it may bind only a ClusterRole.
pub(super) fn validate_cluster_role_binding(obj: &Value) -> Errs {
    validate_binding(obj, &["ClusterRole"], false)
}

fn validate_binding(obj: &Value, role_kinds: &[&str], namespaced: bool) -> Errs {
    let mut errs = validate_role_ref(field_of(obj, "roleRef"), role_kinds);
    for (i, subject) in arr_of(obj, "subjects").iter().enumerate() {
        errs.extend(validate_subject(subject, namespaced, &index("subjects", i)));
    }
    errs
}

fn validate_role_ref(role_ref: &Value, role_kinds: &[&str]) -> Errs {
    let mut errs = Errs::new();
    let group = str_of(role_ref, "apiGroup");
    if group != RBAC_GROUP {
        errs.push(not_supported("roleRef.apiGroup", group, &[RBAC_GROUP]));
    }
    let kind = str_of(role_ref, "kind");
    if !role_kinds.contains(&kind) {
        errs.push(not_supported("roleRef.kind", kind, role_kinds));
    }
    let name = str_of(role_ref, "name");
    if name.is_empty() {
        errs.push(required("roleRef.name", ""));
    } else {
        errs.extend(invalid_each(
            "roleRef.name",
            name,
            is_valid_path_segment_name(name),
        ));
    }
    errs
}

fn validate_subject(subject: &Value, namespaced: bool, path: &str) -> Errs {
    let mut errs = Errs::new();
    let name = str_of(subject, "name");
    if name.is_empty() {
        errs.push(required(&child(path, "name"), ""));
    }
    let group = str_of(subject, "apiGroup");
    let group_path = child(path, "apiGroup");
    match str_of(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                errs.extend(invalid_each(
                    &child(path, "name"),
                    name,
                    is_dns1123_subdomain(name),
                ));
            }
            if !group.is_empty() {
                errs.push(not_supported(&group_path, group, &[""]));
            }
            if !namespaced && str_of(subject, "namespace").is_empty() {
                errs.push(required(&child(path, "namespace"), ""));
            }
        }
        "User" | "Group" if group != RBAC_GROUP => {
            errs.push(not_supported(&group_path, group, &[RBAC_GROUP]))
        }
        "User" | "Group" => {}
        other => errs.push(not_supported(
            &child(path, "kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}

/// A binding's `roleRef` never changes; Kubernetes asks to delete and
/// recreate instead.
pub(super) fn validate_binding_update(old: &Value, new: &Value) -> Errs {
    let new_ref = field_of(new, "roleRef");
    if field_of(old, "roleRef") != new_ref {
        return vec![invalid("roleRef", new_ref.clone(), "cannot change roleRef")];
    }
    Errs::new()
}
