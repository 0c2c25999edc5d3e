//! Pods, pod specs and pod templates.
//!
//! The same spec checks run for a Pod (`spec`) and for the template of every
//! workload (`spec.template.spec`, `spec.jobTemplate.spec.template.spec`), so
//! every function takes the path it reports under.

use std::collections::HashSet;

use serde_json::Value;

use super::meta::{validate_annotations, validate_labels};
use super::names::{is_dns1123_label, is_dns1123_subdomain, is_env_var_name, is_qualified_name};
use super::names::{is_valid_label_value, is_valid_port_name, is_valid_port_num};
use super::quantity::parse_quantity;
use super::{
    arr_of, child, duplicate, field_of, forbidden, index, invalid, invalid_each, key, not_found,
    not_supported, obj_of, required, str_of, Errs,
};

/// Every source a volume may name; exactly one must be present.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

const PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
/// Resource names a container may request without a domain prefix.
const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// The fields Kubernetes lets a pod update change, as its message lists them.
const UPDATABLE_POD_FIELDS: &[&str] = &[
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

/// Validate the spec of a Pod object.
pub(super) fn validate_pod(pod: &Value) -> Errs {
    validate_pod_spec(field_of(pod, "spec"), "spec")
}

/// Validate a pod template: its labels and annotations and its spec.
pub(super) fn validate_pod_template(template: &Value, path: &str) -> Errs {
    let meta = field_of(template, "metadata");
    let meta_path = child(path, "metadata");
    let mut errs = validate_labels(meta.get("labels"), &child(&meta_path, "labels"));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        &child(&meta_path, "annotations"),
    ));
    errs.extend(validate_pod_spec(
        field_of(template, "spec"),
        &child(path, "spec"),
    ));
    errs
}

/// Validate a pod spec reported under `path`.
pub(super) fn validate_pod_spec(spec: &Value, path: &str) -> Errs {
    let (mut errs, volumes) = validate_volumes(spec, &child(path, "volumes"));
    errs.extend(validate_container_lists(spec, path, &volumes));
    errs.extend(validate_restart_policy(spec, path));
    errs.extend(validate_dns_policy(spec, path));
    errs.extend(validate_active_deadline(spec, path));
    errs.extend(validate_pod_names(spec, path));
    errs.extend(validate_labels(
        spec.get("nodeSelector"),
        &child(path, "nodeSelector"),
    ));
    errs.extend(validate_tolerations(spec, &child(path, "tolerations")));
    errs
}

// ---- volumes ----

fn validate_volumes(spec: &Value, path: &str) -> (Errs, HashSet<String>) {
    let mut errs = Errs::new();
    let mut names = HashSet::new();
    for (i, vol) in arr_of(spec, "volumes").iter().enumerate() {
        let vol_path = index(path, i);
        errs.extend(validate_volume_source(vol, &vol_path));
        let name = str_of(vol, "name");
        let name_path = child(&vol_path, "name");
        if name.is_empty() {
            errs.push(required(&name_path, ""));
        } else {
            errs.extend(invalid_each(&name_path, name, is_dns1123_label(name)));
        }
        if !names.insert(name.to_string()) {
            errs.push(duplicate(&name_path, name));
        }
    }
    (errs, names)
}

fn validate_volume_source(vol: &Value, path: &str) -> Errs {
    let present: Vec<&str> = VOLUME_SOURCES
        .iter()
        .copied()
        .filter(|s| vol.get(*s).is_some())
        .collect();
    match present.as_slice() {
        [] => vec![required(path, "must specify a volume type")],
        [_] => Errs::new(),
        [_, extra @ ..] => extra
            .iter()
            .map(|s| forbidden(&child(path, s), "may not specify more than 1 volume type"))
            .collect(),
    }
}

// ---- containers ----

/// `containers` (required) and `initContainers`, whose names must be unique
/// across both lists.
fn validate_container_lists(spec: &Value, path: &str, volumes: &HashSet<String>) -> Errs {
    let mut errs = Errs::new();
    let mut names = HashSet::new();
    let containers_path = child(path, "containers");
    if arr_of(spec, "containers").is_empty() {
        errs.push(required(&containers_path, ""));
    }
    for list in ["containers", "initContainers"] {
        let list_path = child(path, list);
        for (i, c) in arr_of(spec, list).iter().enumerate() {
            let c_path = index(&list_path, i);
            errs.extend(validate_container_name(c, &c_path, &mut names));
            errs.extend(validate_container(c, &c_path, volumes));
        }
    }
    errs
}

fn validate_container_name(c: &Value, path: &str, seen: &mut HashSet<String>) -> Errs {
    let name = str_of(c, "name");
    let name_path = child(path, "name");
    if name.is_empty() {
        return vec![required(&name_path, "")];
    }
    let mut errs = invalid_each(&name_path, name, is_dns1123_label(name));
    if !seen.insert(name.to_string()) {
        errs.push(duplicate(&name_path, name));
    }
    errs
}

fn validate_container(c: &Value, path: &str, volumes: &HashSet<String>) -> Errs {
    let mut errs = validate_image(c, path);
    errs.extend(validate_ports(c, &child(path, "ports")));
    errs.extend(validate_env(c, &child(path, "env")));
    errs.extend(validate_volume_mounts(
        c,
        &child(path, "volumeMounts"),
        volumes,
    ));
    errs.extend(validate_resources(
        field_of(c, "resources"),
        &child(path, "resources"),
    ));
    errs
}

fn validate_image(c: &Value, path: &str) -> Errs {
    let image = str_of(c, "image");
    let image_path = child(path, "image");
    if image.is_empty() {
        vec![required(&image_path, "")]
    } else if image.trim() != image {
        vec![invalid(
            &image_path,
            image,
            "must not have leading or trailing whitespace",
        )]
    } else {
        Errs::new()
    }
}

fn validate_ports(c: &Value, path: &str) -> Errs {
    let mut errs = Errs::new();
    let mut names = HashSet::new();
    for (i, port) in arr_of(c, "ports").iter().enumerate() {
        let p = index(path, i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                errs.extend(invalid_each(&child(&p, "name"), name, msgs));
            } else if !names.insert(name) {
                errs.push(duplicate(&child(&p, "name"), name));
            }
        }
        errs.extend(validate_port_number(port, "containerPort", &p, true));
        errs.extend(validate_port_number(port, "hostPort", &p, false));
        errs.extend(validate_protocol(port, &p));
    }
    errs
}

/// A port number field: `required` ports may not be zero or absent.
pub(super) fn validate_port_number(
    obj: &Value,
    field: &str,
    path: &str,
    required_port: bool,
) -> Errs {
    let n = obj.get(field).and_then(Value::as_i64).unwrap_or(0);
    let field_path = child(path, field);
    match n {
        0 if required_port => vec![required(&field_path, "")],
        0 => Errs::new(),
        n => is_valid_port_num(n)
            .into_iter()
            .map(|m| invalid(&field_path, n, m))
            .collect(),
    }
}

/// `protocol` is required (defaulting fills TCP) and one of TCP, UDP, SCTP.
pub(super) fn validate_protocol(port: &Value, path: &str) -> Errs {
    let protocol = str_of(port, "protocol");
    let field = child(path, "protocol");
    if protocol.is_empty() {
        vec![required(&field, "")]
    } else if !PORT_PROTOCOLS.contains(&protocol) {
        vec![not_supported(&field, protocol, PORT_PROTOCOLS)]
    } else {
        Errs::new()
    }
}

fn validate_env(c: &Value, path: &str) -> Errs {
    let mut errs = Errs::new();
    for (i, env) in arr_of(c, "env").iter().enumerate() {
        let p = index(path, i);
        let name = str_of(env, "name");
        if name.is_empty() {
            errs.push(required(&child(&p, "name"), ""));
        } else {
            errs.extend(invalid_each(
                &child(&p, "name"),
                name,
                is_env_var_name(name),
            ));
        }
        if !str_of(env, "value").is_empty() && env.get("valueFrom").is_some() {
            errs.push(invalid(
                &child(&p, "valueFrom"),
                "",
                "may not be specified when `value` is not empty",
            ));
        }
    }
    errs
}

fn validate_volume_mounts(c: &Value, path: &str, volumes: &HashSet<String>) -> Errs {
    let mut errs = Errs::new();
    let mut mount_points = HashSet::new();
    for (i, mount) in arr_of(c, "volumeMounts").iter().enumerate() {
        let p = index(path, i);
        let name = str_of(mount, "name");
        if name.is_empty() {
            errs.push(required(&child(&p, "name"), ""));
        }
        if !volumes.contains(name) {
            errs.push(not_found(&child(&p, "name"), name));
        }
        let mount_path = str_of(mount, "mountPath");
        if mount_path.is_empty() {
            errs.push(required(&child(&p, "mountPath"), ""));
        }
        if !mount_points.insert(mount_path) {
            errs.push(invalid(
                &child(&p, "mountPath"),
                mount_path,
                "must be unique",
            ));
        }
    }
    errs
}

// ---- resources ----

/// A quantity as written: quantities may arrive as JSON numbers (`cpu: 1`).
fn quantity_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Limits and requests: known resource names, non-negative quantities and
/// requests no larger than limits.
pub(super) fn validate_resources(res: &Value, path: &str) -> Errs {
    let mut errs = Errs::new();
    let limits_path = child(path, "limits");
    let requests_path = child(path, "requests");
    let limits = obj_of(res, "limits");
    for (name, q) in limits.into_iter().flatten() {
        errs.extend(validate_resource_entry(name, q, &key(&limits_path, name)));
    }
    for (name, q) in obj_of(res, "requests").into_iter().flatten() {
        let entry_path = key(&requests_path, name);
        let entry_errs = validate_resource_entry(name, q, &entry_path);
        let valid = entry_errs.is_empty();
        errs.extend(entry_errs);
        let limit = limits.and_then(|l| l.get(name));
        if let (true, Some(limit)) = (valid, limit) {
            errs.extend(request_within_limit(name, q, limit, &entry_path));
        }
    }
    errs
}

fn validate_resource_entry(name: &str, q: &Value, path: &str) -> Errs {
    let mut errs = validate_resource_name(name, path);
    let text = quantity_text(q);
    match parse_quantity(&text) {
        Err(e) => errs.push(invalid(path, text, e.to_string())),
        Ok(v) if v < 0 => errs.push(invalid(path, text, "must be greater than or equal to 0")),
        Ok(_) => {}
    }
    errs
}

fn validate_resource_name(name: &str, path: &str) -> Errs {
    if name.contains('/') {
        return invalid_each(path, name, is_qualified_name(name));
    }
    let standard = STANDARD_CONTAINER_RESOURCES.contains(&name) || name.starts_with("hugepages-");
    if standard {
        Errs::new()
    } else {
        vec![invalid(
            path,
            name,
            "must be a standard resource for containers",
        )]
    }
}

fn request_within_limit(name: &str, request: &Value, limit: &Value, path: &str) -> Errs {
    let (req_text, lim_text) = (quantity_text(request), quantity_text(limit));
    match (parse_quantity(&req_text), parse_quantity(&lim_text)) {
        (Ok(r), Ok(l)) if r > l => vec![invalid(
            path,
            req_text,
            format!("must be less than or equal to {name} limit of {lim_text}"),
        )],
        _ => Errs::new(),
    }
}

// ---- pod-level fields ----

fn validate_restart_policy(spec: &Value, path: &str) -> Errs {
    let policy = str_of(spec, "restartPolicy");
    let field = child(path, "restartPolicy");
    if policy.is_empty() {
        vec![required(&field, "")]
    } else if !RESTART_POLICIES.contains(&policy) {
        vec![not_supported(&field, policy, RESTART_POLICIES)]
    } else {
        Errs::new()
    }
}

fn validate_dns_policy(spec: &Value, path: &str) -> Errs {
    let policy = str_of(spec, "dnsPolicy");
    let field = child(path, "dnsPolicy");
    if policy.is_empty() {
        return vec![required(&field, "")];
    }
    if !DNS_POLICIES.contains(&policy) {
        return vec![not_supported(&field, policy, DNS_POLICIES)];
    }
    if policy == "None" && spec.get("dnsConfig").is_none() {
        return vec![required(
            &child(path, "dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        )];
    }
    Errs::new()
}

fn validate_active_deadline(spec: &Value, path: &str) -> Errs {
    match spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        Some(v) if v <= 0 => vec![invalid(
            &child(path, "activeDeadlineSeconds"),
            v,
            "must be between 1 and 2147483647, inclusive",
        )],
        _ => Errs::new(),
    }
}

/// A syntax check returning Kubernetes' messages.
type StringCheck = fn(&str) -> Vec<String>;

/// Host and object names a spec refers to.
fn validate_pod_names(spec: &Value, path: &str) -> Errs {
    let checks: [(&str, StringCheck); 4] = [
        ("serviceAccountName", is_dns1123_subdomain),
        ("nodeName", is_dns1123_subdomain),
        ("hostname", is_dns1123_label),
        ("subdomain", is_dns1123_label),
    ];
    let mut errs = Errs::new();
    for (field, check) in checks {
        let v = str_of(spec, field);
        if !v.is_empty() {
            errs.extend(invalid_each(&child(path, field), v, check(v)));
        }
    }
    errs
}

fn validate_tolerations(spec: &Value, path: &str) -> Errs {
    arr_of(spec, "tolerations")
        .iter()
        .enumerate()
        .flat_map(|(i, t)| validate_toleration(t, &index(path, i)))
        .collect()
}

fn validate_toleration(t: &Value, path: &str) -> Errs {
    let mut errs = Errs::new();
    let (k, op, effect, value) = (
        str_of(t, "key"),
        str_of(t, "operator"),
        str_of(t, "effect"),
        str_of(t, "value"),
    );
    if !k.is_empty() {
        errs.extend(invalid_each(&child(path, "key"), k, is_qualified_name(k)));
    } else if op != "Exists" {
        let msg = "operator must be Exists when `key` is empty, which means \"match all values and all keys\"";
        errs.push(invalid(&child(path, "operator"), op, msg));
    }
    if t.get("tolerationSeconds").is_some_and(|s| !s.is_null()) && effect != "NoExecute" {
        let msg = "effect must be 'NoExecute' when `tolerationSeconds` is set";
        errs.push(invalid(&child(path, "effect"), effect, msg));
    }
    match op {
        "" | "Equal" => {
            let msgs = is_valid_label_value(value);
            if !msgs.is_empty() {
                errs.push(invalid(&child(path, "operator"), value, msgs.join(";")));
            }
        }
        "Exists" if !value.is_empty() => errs.push(invalid(
            &child(path, "operator"),
            t.clone(),
            "value must be empty when `operator` is 'Exists'",
        )),
        "Exists" => {}
        _ => errs.push(not_supported(
            &child(path, "operator"),
            op,
            &["Equal", "Exists"],
        )),
    }
    if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
        errs.push(not_supported(&child(path, "effect"), effect, TAINT_EFFECTS));
    }
    errs
}

// ---- updates ----

/// A pod's spec is immutable except for the fields in
/// [`UPDATABLE_POD_FIELDS`]; Kubernetes reports any other change as one
/// Forbidden error on `spec`.
pub(super) fn validate_pod_update(old: &Value, new: &Value) -> Errs {
    let (old_spec, new_spec) = (field_of(old, "spec"), field_of(new, "spec"));
    if arr_of(old_spec, "containers").len() != arr_of(new_spec, "containers").len() {
        return vec![forbidden(
            "spec.containers",
            "pod updates may not add or remove containers",
        )];
    }
    if arr_of(old_spec, "initContainers").len() != arr_of(new_spec, "initContainers").len() {
        return vec![forbidden(
            "spec.initContainers",
            "pod updates may not add or remove containers",
        )];
    }
    let mut errs = validate_deadline_update(old_spec, new_spec);
    errs.extend(validate_tolerations_update(old_spec, new_spec));
    let munged = munge_updatable_fields(old_spec, new_spec);
    if &munged != old_spec {
        errs.push(forbidden("spec", pod_update_message(old_spec, &munged)));
    }
    errs
}

fn validate_deadline_update(old_spec: &Value, new_spec: &Value) -> Errs {
    let field = "spec.activeDeadlineSeconds";
    let old = old_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    match (
        old,
        new_spec
            .get("activeDeadlineSeconds")
            .and_then(Value::as_i64),
    ) {
        (Some(o), Some(n)) if n > o => vec![invalid(
            field,
            n,
            "must be less than or equal to previous value",
        )],
        (Some(_), None) => vec![invalid(
            field,
            Value::Null,
            "must not update from a positive integer to nil value",
        )],
        _ => Errs::new(),
    }
}

/// Tolerations may only be added: every old toleration must still be there,
/// though its `tolerationSeconds` may change. Kubernetes reports the first
/// missing one as a single error on the list.
fn validate_tolerations_update(old_spec: &Value, new_spec: &Value) -> Errs {
    let without_seconds = |t: &Value| {
        let mut t = t.clone();
        if let Some(obj) = t.as_object_mut() {
            obj.remove("tolerationSeconds");
        }
        t
    };
    let new: Vec<Value> = arr_of(new_spec, "tolerations")
        .iter()
        .map(without_seconds)
        .collect();
    let all_kept = arr_of(old_spec, "tolerations")
        .iter()
        .all(|t| new.contains(&without_seconds(t)));
    if all_kept {
        return Errs::new();
    }
    let msg = "existing toleration can not be modified except its tolerationSeconds";
    vec![forbidden("spec.tolerations", msg)]
}

/// The new spec with every field a pod update may change taken from the old
/// spec, so that what remains different was changed illegally.
fn munge_updatable_fields(old_spec: &Value, new_spec: &Value) -> Value {
    let mut munged = new_spec.clone();
    for list in ["containers", "initContainers"] {
        copy_images(old_spec, &mut munged, list);
    }
    for field in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
        copy_field(old_spec, &mut munged, field);
    }
    let grace = |v: &Value| {
        v.get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
    };
    if grace(old_spec).is_some_and(|g| g < 0) && grace(new_spec) == Some(1) {
        copy_field(old_spec, &mut munged, "terminationGracePeriodSeconds");
    }
    munged
}

fn copy_images(old_spec: &Value, munged: &mut Value, list: &str) {
    let old_images: Vec<Option<Value>> = arr_of(old_spec, list)
        .iter()
        .map(|c| c.get("image").cloned())
        .collect();
    let Some(containers) = munged.get_mut(list).and_then(Value::as_array_mut) else {
        return;
    };
    for (c, image) in containers.iter_mut().zip(old_images) {
        if let (Some(obj), Some(image)) = (c.as_object_mut(), image) {
            obj.insert("image".to_string(), image);
        }
    }
}

fn copy_field(from: &Value, to: &mut Value, field: &str) {
    let Some(obj) = to.as_object_mut() else {
        return;
    };
    match from.get(field) {
        Some(v) => obj.insert(field.to_string(), v.clone()),
        None => obj.remove(field),
    };
}

/// Kubernetes follows its message with a Go struct diff; skiff lists the
/// spec fields that changed instead.
fn pod_update_message(old_spec: &Value, munged: &Value) -> String {
    let mut keys: Vec<&String> = old_spec
        .as_object()
        .into_iter()
        .chain(munged.as_object())
        .flat_map(|m| m.keys())
        .collect();
    keys.sort();
    keys.dedup();
    let changed: Vec<String> = keys
        .into_iter()
        .filter(|k| old_spec.get(k.as_str()) != munged.get(k.as_str()))
        .map(|k| format!("spec.{k}"))
        .collect();
    format!(
        "pod updates may not change fields other than {}\nchanged: {}",
        UPDATABLE_POD_FIELDS.join(","),
        changed.join(", ")
    )
}
