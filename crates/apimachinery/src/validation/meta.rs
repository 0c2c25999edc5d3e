//! ObjectMeta, labels, annotations and label selectors.

use serde_json::{Map, Value};

use super::names::{is_qualified_name, is_valid_label_value, NameValidator};
use super::{
    arr_of, child, field_of, forbidden, immutable, index, invalid, invalid_each, obj_of, required,
    str_of, too_long, Errs,
};

/// Kubernetes' `TotalAnnotationSizeLimitB`: keys plus values.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Validate `metadata` of a new object. `namespaced` is `None` for kinds whose
/// scope skiff does not know, which skips the namespace check.
pub(super) fn validate_object_meta(
    meta: &Value,
    namespaced: Option<bool>,
    name_fn: NameValidator,
) -> Errs {
    let path = "metadata";
    let mut errs = validate_names(meta, path, name_fn);
    errs.extend(validate_namespace(meta, path, namespaced));
    errs.extend(validate_labels(meta.get("labels"), &child(path, "labels")));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        &child(path, "annotations"),
    ));
    errs.extend(validate_finalizers(meta, path));
    errs
}

fn validate_names(meta: &Value, path: &str, name_fn: NameValidator) -> Errs {
    let mut errs = Errs::new();
    let generate = str_of(meta, "generateName");
    if !generate.is_empty() {
        errs.extend(invalid_each(
            &child(path, "generateName"),
            generate,
            name_fn(generate, true),
        ));
    }
    let name = str_of(meta, "name");
    if name.is_empty() {
        errs.push(required(
            &child(path, "name"),
            "name or generateName is required",
        ));
    } else {
        errs.extend(invalid_each(
            &child(path, "name"),
            name,
            name_fn(name, false),
        ));
    }
    errs
}

fn validate_namespace(meta: &Value, path: &str, namespaced: Option<bool>) -> Errs {
    let ns = str_of(meta, "namespace");
    let field = child(path, "namespace");
    match namespaced {
        Some(true) if ns.is_empty() => vec![required(&field, "")],
        Some(true) => invalid_each(&field, ns, super::names::is_dns1123_label(ns)),
        Some(false) if !ns.is_empty() => vec![forbidden(&field, "not allowed on this type")],
        _ => Errs::new(),
    }
}

/// Label keys must be qualified names and values label values; errors name
/// the whole map (`metadata.labels`), as Kubernetes does.
pub(super) fn validate_labels(labels: Option<&Value>, path: &str) -> Errs {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return Errs::new();
    };
    let mut errs = Errs::new();
    for (k, v) in labels {
        errs.extend(invalid_each(path, k, is_qualified_name(k)));
        let v = v.as_str().unwrap_or("");
        errs.extend(invalid_each(path, v, is_valid_label_value(v)));
    }
    errs
}

/// Annotation keys must be qualified names (case-insensitively) and all
/// annotations together at most 256 KiB.
pub(super) fn validate_annotations(annotations: Option<&Value>, path: &str) -> Errs {
    let Some(annotations) = annotations.and_then(Value::as_object) else {
        return Errs::new();
    };
    let mut errs = Errs::new();
    let mut total = 0;
    for (k, v) in annotations {
        errs.extend(invalid_each(path, k, is_qualified_name(&k.to_lowercase())));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

fn validate_finalizers(meta: &Value, path: &str) -> Errs {
    let field = child(path, "finalizers");
    arr_of(meta, "finalizers")
        .iter()
        .filter_map(Value::as_str)
        .flat_map(|f| invalid_each(&field, f, is_qualified_name(f)))
        .collect()
}

/// The identity and history fields of metadata never change. Absent values
/// in `new` are left to the API server, which copies them from `old`.
pub(super) fn validate_object_meta_update(old: &Value, new: &Value) -> Errs {
    let path = "metadata";
    let mut errs = Errs::new();
    for key in ["name", "namespace"] {
        errs.extend(immutable(
            field_of(new, key),
            field_of(old, key),
            &child(path, key),
        ));
    }
    for key in ["uid", "creationTimestamp", "deletionTimestamp"] {
        if new.get(key).is_some_and(|v| !v.is_null()) {
            errs.extend(immutable(
                field_of(new, key),
                field_of(old, key),
                &child(path, key),
            ));
        }
    }
    errs
}

// ---- label selectors ----

/// Validate a `metav1.LabelSelector`.
pub(super) fn validate_label_selector(sel: &Value, path: &str) -> Errs {
    let mut errs = validate_labels(sel.get("matchLabels"), &child(path, "matchLabels"));
    let exprs_path = child(path, "matchExpressions");
    for (i, expr) in arr_of(sel, "matchExpressions").iter().enumerate() {
        errs.extend(validate_selector_requirement(expr, &index(&exprs_path, i)));
    }
    errs
}

fn validate_selector_requirement(expr: &Value, path: &str) -> Errs {
    let mut errs = Errs::new();
    let has_values = !arr_of(expr, "values").is_empty();
    let op = str_of(expr, "operator");
    match op {
        "In" | "NotIn" if !has_values => errs.push(required(
            &child(path, "values"),
            "must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "Exists" | "DoesNotExist" if has_values => errs.push(forbidden(
            &child(path, "values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        _ => errs.push(invalid(
            &child(path, "operator"),
            op,
            "not a valid selector operator",
        )),
    }
    let k = str_of(expr, "key");
    errs.extend(invalid_each(&child(path, "key"), k, is_qualified_name(k)));
    errs
}

/// A selector with neither `matchLabels` nor `matchExpressions` entries.
pub(super) fn selector_is_empty(sel: &Value) -> bool {
    obj_of(sel, "matchLabels").is_none_or(Map::is_empty)
        && arr_of(sel, "matchExpressions").is_empty()
}

/// Whether a label selector selects an object with these labels.
pub(super) fn selector_matches(sel: &Value, labels: &Map<String, Value>) -> bool {
    let labels_match =
        obj_of(sel, "matchLabels").is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    labels_match
        && arr_of(sel, "matchExpressions")
            .iter()
            .all(|e| requirement_matches(e, labels))
}

fn requirement_matches(expr: &Value, labels: &Map<String, Value>) -> bool {
    let actual = labels.get(str_of(expr, "key")).and_then(Value::as_str);
    let listed = |v: &str| arr_of(expr, "values").iter().any(|x| x.as_str() == Some(v));
    match str_of(expr, "operator") {
        "In" => actual.is_some_and(listed),
        "NotIn" => !actual.is_some_and(listed),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        _ => false,
    }
}
