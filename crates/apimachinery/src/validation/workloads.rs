//! Workload kinds: Deployment, ReplicaSet, DaemonSet, StatefulSet,
//! ControllerRevision (apps) and Job (batch).

use serde_json::{Map, Value};

use super::meta::{selector_is_empty, selector_matches, validate_label_selector};
use super::names::is_valid_percent;
use super::pod::validate_pod_template;
use super::{
    child, field_of, forbidden, immutable, invalid, invalid_each, nonnegative, not_supported,
    required, str_of, Errs,
};

/// What a workload kind demands of its selector and pod template.
struct TemplateRules {
    /// Word in `empty selector is invalid for <word>`; `None` allows it.
    empty_selector_word: Option<&'static str>,
    /// Restart policies the template may use.
    restart_policies: &'static [&'static str],
    /// Whether `activeDeadlineSeconds` is forbidden in the template.
    forbid_deadline: bool,
}

const LONG_RUNNING: TemplateRules = TemplateRules {
    empty_selector_word: Some("deployment"),
    restart_policies: &["Always"],
    forbid_deadline: true,
};

/// Selector required and valid, template labels matched by it, template
/// valid with a restart policy the controller supports.
fn validate_selector_and_template(spec: &Value, rules: &TemplateRules) -> Errs {
    let mut errs = Errs::new();
    let selector = spec.get("selector").filter(|s| !s.is_null());
    match selector {
        None => errs.push(required("spec.selector", "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, "spec.selector"));
            if let (Some(word), true) = (rules.empty_selector_word, selector_is_empty(sel)) {
                let msg = format!("empty selector is invalid for {word}");
                errs.push(invalid("spec.selector", sel.clone(), msg));
            }
        }
    }
    let template = field_of(spec, "template");
    errs.extend(validate_template_labels(selector, template));
    errs.extend(validate_pod_template(template, "spec.template"));
    errs.extend(validate_template_policies(template, rules));
    errs
}

fn validate_template_labels(selector: Option<&Value>, template: &Value) -> Errs {
    let Some(sel) = selector.filter(|s| !selector_is_empty(s)) else {
        return Errs::new();
    };
    let empty = Map::new();
    let labels = field_of(template, "metadata")
        .get("labels")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if selector_matches(sel, labels) {
        return Errs::new();
    }
    let msg = "`selector` does not match template `labels`";
    vec![invalid(
        "spec.template.metadata.labels",
        Value::Object(labels.clone()),
        msg,
    )]
}

fn validate_template_policies(template: &Value, rules: &TemplateRules) -> Errs {
    let mut errs = Errs::new();
    let spec = field_of(template, "spec");
    let policy = str_of(spec, "restartPolicy");
    if !rules.restart_policies.contains(&policy) {
        errs.push(not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            rules.restart_policies,
        ));
    }
    if rules.forbid_deadline
        && spec
            .get("activeDeadlineSeconds")
            .is_some_and(|v| !v.is_null())
    {
        errs.push(forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    errs
}

/// The non-negative integer fields of a workload spec.
fn validate_nonnegative(spec: &Value, fields: &[&str]) -> Errs {
    fields
        .iter()
        .filter_map(|f| nonnegative(spec, f, "spec"))
        .collect()
}

// ---- Deployment ----

/// Validate a Deployment.
pub(super) fn validate_deployment(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    let mut errs = validate_nonnegative(
        spec,
        &["replicas", "minReadySeconds", "revisionHistoryLimit"],
    );
    errs.extend(validate_selector_and_template(spec, &LONG_RUNNING));
    errs.extend(validate_deployment_strategy(
        field_of(spec, "strategy"),
        "spec.strategy",
    ));
    errs.extend(validate_progress_deadline(spec));
    errs
}

fn validate_deployment_strategy(strategy: &Value, path: &str) -> Errs {
    let rolling_path = child(path, "rollingUpdate");
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match (str_of(strategy, "type"), rolling) {
        ("Recreate", Some(_)) => vec![forbidden(
            &rolling_path,
            "may not be specified when strategy `type` is 'Recreate'",
        )],
        ("Recreate", None) => Errs::new(),
        ("RollingUpdate", None) => vec![required(
            &rolling_path,
            "this should be defaulted and never be nil",
        )],
        ("RollingUpdate", Some(r)) => validate_rolling_update(r, &rolling_path),
        (other, _) => vec![not_supported(
            &child(path, "type"),
            other,
            &["Recreate", "RollingUpdate"],
        )],
    }
}

/// `maxUnavailable` and `maxSurge` of a Deployment or DaemonSet.
fn validate_rolling_update(rolling: &Value, path: &str) -> Errs {
    let unavailable = field_of(rolling, "maxUnavailable");
    let surge = field_of(rolling, "maxSurge");
    let unavailable_path = child(path, "maxUnavailable");
    let mut errs = validate_int_or_percent(unavailable, &unavailable_path);
    errs.extend(validate_int_or_percent(surge, &child(path, "maxSurge")));
    if int_or_percent_value(unavailable) == Some(0) && int_or_percent_value(surge) == Some(0) {
        errs.push(invalid(
            &unavailable_path,
            unavailable.clone(),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if unavailable.is_string() && int_or_percent_value(unavailable).is_some_and(|v| v > 100) {
        errs.push(invalid(
            &unavailable_path,
            unavailable.clone(),
            "must not be greater than 100%",
        ));
    }
    errs
}

/// Kubernetes' `ValidatePositiveIntOrPercent`.
fn validate_int_or_percent(v: &Value, path: &str) -> Errs {
    match v {
        Value::String(s) => invalid_each(path, s, is_valid_percent(s)),
        Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => {
            vec![invalid(
                path,
                v.clone(),
                "must be greater than or equal to 0",
            )]
        }
        _ => Errs::new(),
    }
}

/// The number in `25%` or `3`; absent counts as 0.
fn int_or_percent_value(v: &Value) -> Option<i64> {
    match v {
        Value::Null => Some(0),
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.strip_suffix('%')?.parse().ok(),
        _ => None,
    }
}

fn validate_progress_deadline(spec: &Value) -> Errs {
    let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) else {
        return Errs::new();
    };
    let mut errs: Errs = nonnegative(spec, "progressDeadlineSeconds", "spec")
        .into_iter()
        .collect();
    let min_ready = spec
        .get("minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if deadline <= min_ready {
        errs.push(invalid(
            "spec.progressDeadlineSeconds",
            deadline,
            "must be greater than minReadySeconds",
        ));
    }
    errs
}

/// Deployments, ReplicaSets and DaemonSets may not change their selector.
pub(super) fn validate_selector_update(old: &Value, new: &Value) -> Errs {
    let (old_spec, new_spec) = (field_of(old, "spec"), field_of(new, "spec"));
    immutable(
        field_of(new_spec, "selector"),
        field_of(old_spec, "selector"),
        "spec.selector",
    )
    .into_iter()
    .collect()
}

// ---- ReplicaSet ----

/// Validate a ReplicaSet.
pub(super) fn validate_replica_set(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    let mut errs = validate_nonnegative(spec, &["replicas", "minReadySeconds"]);
    errs.extend(validate_selector_and_template(spec, &LONG_RUNNING));
    errs
}

// ---- DaemonSet ----

/// Validate a DaemonSet.
pub(super) fn validate_daemon_set(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    let rules = TemplateRules {
        empty_selector_word: Some("daemonset"),
        ..LONG_RUNNING
    };
    let mut errs = validate_selector_and_template(spec, &rules);
    errs.extend(validate_nonnegative(
        spec,
        &["minReadySeconds", "revisionHistoryLimit"],
    ));
    errs.extend(validate_daemon_set_strategy(
        field_of(spec, "updateStrategy"),
        "spec.updateStrategy",
    ));
    errs
}

fn validate_daemon_set_strategy(strategy: &Value, path: &str) -> Errs {
    let rolling = field_of(strategy, "rollingUpdate");
    match str_of(strategy, "type") {
        "OnDelete" => Errs::new(),
        "RollingUpdate" if rolling.is_null() => vec![required(&child(path, "rollingUpdate"), "")],
        "RollingUpdate" => validate_rolling_update(rolling, &child(path, "rollingUpdate")),
        other => vec![not_supported(
            &child(path, "type"),
            other,
            &["OnDelete", "RollingUpdate"],
        )],
    }
}

// ---- StatefulSet ----

/// Validate a StatefulSet.
pub(super) fn validate_stateful_set(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    let mut errs = validate_pod_management_policy(spec);
    errs.extend(validate_stateful_set_strategy(spec));
    errs.extend(validate_nonnegative(
        spec,
        &["replicas", "minReadySeconds", "revisionHistoryLimit"],
    ));
    let rules = TemplateRules {
        empty_selector_word: Some("statefulset"),
        ..LONG_RUNNING
    };
    errs.extend(validate_selector_and_template(
        &with_claim_volumes(spec),
        &rules,
    ));
    errs
}

/// The spec with each `volumeClaimTemplates` name added to the template's
/// volumes, so that mounts of a claim validate. (Kubernetes skips pod spec
/// validation of StatefulSet templates for this reason, with a TODO to
/// validate the union; skiff validates the union.)
fn with_claim_volumes(spec: &Value) -> Value {
    let claims: Vec<&str> = spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| str_of(field_of(c, "metadata"), "name"))
        .filter(|n| !n.is_empty())
        .collect();
    if claims.is_empty() {
        return spec.clone();
    }
    let mut spec = spec.clone();
    let pod = &mut spec["template"]["spec"];
    if !pod.is_object() {
        return spec;
    }
    let mut volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    for claim in claims {
        if !volumes.iter().any(|v| v["name"] == claim) {
            volumes.push(serde_json::json!({"name": claim, "emptyDir": {}}));
        }
    }
    pod["volumes"] = Value::Array(volumes);
    spec
}

fn validate_pod_management_policy(spec: &Value) -> Errs {
    match str_of(spec, "podManagementPolicy") {
        "" => vec![required("spec.podManagementPolicy", "")],
        "OrderedReady" | "Parallel" => Errs::new(),
        other => vec![invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )],
    }
}

fn validate_stateful_set_strategy(spec: &Value) -> Errs {
    let strategy = field_of(spec, "updateStrategy");
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    let rolling_path = "spec.updateStrategy.rollingUpdate";
    match (str_of(strategy, "type"), rolling) {
        ("", _) => vec![required("spec.updateStrategy", "")],
        ("OnDelete", Some(r)) => vec![invalid(
            rolling_path,
            r.clone(),
            "only allowed for updateStrategy 'RollingUpdate'",
        )],
        ("OnDelete", None) | ("RollingUpdate", None) => Errs::new(),
        ("RollingUpdate", Some(r)) => nonnegative(r, "partition", rolling_path)
            .into_iter()
            .collect(),
        _ => vec![invalid(
            "spec.updateStrategy",
            strategy.clone(),
            "must be 'RollingUpdate' or 'OnDelete'",
        )],
    }
}

/// Kubernetes allows a StatefulSet update to change only these spec fields.
const STATEFUL_SET_UPDATABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// Any change outside [`STATEFUL_SET_UPDATABLE`] is one Forbidden on `spec`.
pub(super) fn validate_stateful_set_update(old: &Value, new: &Value) -> Errs {
    let strip = |v: &Value| {
        let mut spec = field_of(v, "spec").as_object().cloned().unwrap_or_default();
        spec.retain(|k, _| !STATEFUL_SET_UPDATABLE.contains(&k.as_str()));
        spec
    };
    if strip(old) == strip(new) {
        return Errs::new();
    }
    let msg = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
               'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and \
               'minReadySeconds' are forbidden";
    vec![forbidden("spec", msg)]
}

// ---- ControllerRevision ----

/// Validate a ControllerRevision: `data` is mandatory, `revision` ≥ 0.
pub(super) fn validate_controller_revision(obj: &Value) -> Errs {
    let mut errs: Errs = nonnegative(obj, "revision", "").into_iter().collect();
    if obj.get("data").is_none_or(Value::is_null) {
        errs.push(required("data", "data is mandatory"));
    }
    errs
}

/// A ControllerRevision's `data` never changes.
pub(super) fn validate_controller_revision_update(old: &Value, new: &Value) -> Errs {
    immutable(field_of(new, "data"), field_of(old, "data"), "data")
        .into_iter()
        .collect()
}

// ---- Job ----

const JOB_TEMPLATE: TemplateRules = TemplateRules {
    empty_selector_word: None,
    restart_policies: &["OnFailure", "Never"],
    forbid_deadline: false,
};

/// Validate a Job (after its selector was generated, see `defaults`).
pub(super) fn validate_job(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    let mut errs = validate_nonnegative(
        spec,
        &[
            "parallelism",
            "completions",
            "activeDeadlineSeconds",
            "backoffLimit",
            "ttlSecondsAfterFinished",
        ],
    );
    errs.extend(validate_selector_and_template(spec, &JOB_TEMPLATE));
    errs.extend(validate_completion_mode(spec));
    errs
}

fn validate_completion_mode(spec: &Value) -> Errs {
    match str_of(spec, "completionMode") {
        "" | "NonIndexed" => Errs::new(),
        "Indexed" if spec.get("completions").is_none_or(Value::is_null) => {
            vec![required(
                "spec.completions",
                "when completion mode is Indexed",
            )]
        }
        "Indexed" => Errs::new(),
        other => vec![not_supported(
            "spec.completionMode",
            other,
            &["NonIndexed", "Indexed"],
        )],
    }
}

/// A Job's selector, pod template, completions and completion mode are
/// fixed at creation.
pub(super) fn validate_job_update(old: &Value, new: &Value) -> Errs {
    let (old_spec, new_spec) = (field_of(old, "spec"), field_of(new, "spec"));
    ["selector", "template", "completions", "completionMode"]
        .iter()
        .filter_map(|f| {
            immutable(
                field_of(new_spec, f),
                field_of(old_spec, f),
                &child("spec", f),
            )
        })
        .collect()
}
