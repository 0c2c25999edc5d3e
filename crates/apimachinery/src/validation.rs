//! Object names, defaulting and per-kind validation for the kinds skiff serves.
//!
//! The API server runs every create and update through three steps, in the
//! order Kubernetes does: [`default_object`] fills the fields Kubernetes
//! defaults (so `kubectl get -o yaml` looks the same as against a real
//! cluster), then [`validate_create`] or [`validate_update`] returns a list of
//! [`FieldError`]s. A non-empty list becomes a 422 `Invalid` Status whose
//! message comes from [`invalid_message`] and whose causes come from
//! [`FieldError::reason`] and the field path.
//!
//! Messages and field paths follow Kubernetes' `field.Error` word for word,
//! because users (and tests written against real clusters) match on them.
//! Everything works on the JSON wire format (`serde_json::Value`): skiff keeps
//! no typed Go-like structs, so a missing field and its zero value are treated
//! alike, as Kubernetes' typed code does.
//!
//! The rules are split per concept: [`names`] (name and label syntax),
//! [`quantity`] (resource quantities), `meta` (ObjectMeta and label
//! selectors), `pod` (pod specs and templates), `workloads` (apps and batch),
//! `core_kinds` (the other core kinds), `service`, `networking`, `rbac`, `cluster`
//! (Lease, RuntimeClass, Node), `admissionregistration` (webhook
//! configurations) and `defaults`.

mod admissionregistration;
mod cluster;
mod core_kinds;
mod defaults;
mod meta;
pub mod names;
mod networking;
mod pod;
pub mod quantity;
mod rbac;
mod service;
mod workloads;

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

pub use defaults::default_object;
pub use names::{
    is_config_map_key, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value, is_valid_path_segment_name, is_valid_port_name, is_valid_port_num,
    NameValidator,
};
pub use quantity::{parse_quantity, QuantityError};

/// What is wrong with a field; mirrors Kubernetes' `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// A required field is missing or empty.
    Required,
    /// The value is malformed or out of range.
    Invalid,
    /// The value is not one of an enumerated set.
    NotSupported,
    /// The value repeats one that must be unique.
    Duplicate,
    /// The field may not be set or changed in this situation.
    Forbidden,
    /// The value is longer than allowed.
    TooLong,
    /// The list has more items than allowed.
    TooMany,
    /// The value refers to something that does not exist (a volume mount
    /// naming no volume); Kubernetes' `field.NotFound`.
    NotFound,
}

impl ErrorType {
    /// The words Kubernetes prints for this type.
    fn text(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::NotFound => "Not found",
        }
    }
}

/// One validation failure, naming the field by its Kubernetes path
/// (`spec.template.spec.containers[0].name`, `data[my key]`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What kind of failure this is.
    pub kind: ErrorType,
    /// The field path as Kubernetes prints it.
    pub field: String,
    /// The offending value; `None` when Kubernetes omits it from the message.
    pub value: Option<Value>,
    /// Human-readable explanation (may be empty).
    pub detail: String,
}

impl FieldError {
    /// The Kubernetes `StatusCause.reason` for this error.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::NotFound => "FieldValueNotFound",
        }
    }

    /// The message without the leading field path (Kubernetes' `ErrorBody`),
    /// which is what `StatusCause.message` carries.
    pub fn body(&self) -> String {
        let mut s = self.kind.text().to_string();
        let shows_value = !matches!(
            self.kind,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong
        );
        if let (true, Some(v)) = (shows_value, &self.value) {
            s.push_str(": ");
            s.push_str(&render_value(v));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// Render a bad value the way Go's `%q` / `%v` / `%#v` would for the types
/// Kubernetes passes: strings quoted, numbers and booleans bare, string maps
/// as `map[string]string{...}`; anything else as compact JSON.
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => go_quote("null"),
        Value::Object(m) if m.values().all(Value::is_string) => render_string_map(m),
        other => other.to_string(),
    }
}

fn render_string_map(m: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let parts: Vec<String> = keys
        .into_iter()
        .map(|k| {
            format!(
                "{}:{}",
                go_quote(k),
                go_quote(m[k].as_str().unwrap_or_default())
            )
        })
        .collect();
    format!("map[string]string{{{}}}", parts.join(", "))
}

/// Quote a string as Go's `strconv.Quote` does for the characters that
/// appear in practice.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The message of a 422 Status, as Kubernetes' `NewInvalid` builds it:
/// `Deployment.apps "web" is invalid: [err1, err2]`. Repeated messages are
/// printed once and brackets appear only when more than one remains.
pub fn invalid_message(kind_group: &str, name: &str, errs: &[FieldError]) -> String {
    let mut seen = HashSet::new();
    let msgs: Vec<String> = errs
        .iter()
        .map(ToString::to_string)
        .filter(|m| seen.insert(m.clone()))
        .collect();
    let agg = match msgs.len() {
        0 => "<nil>".to_string(),
        1 => msgs[0].clone(),
        _ => format!("[{}]", msgs.join(", ")),
    };
    format!("{} {} is invalid: {}", kind_group, go_quote(name), agg)
}

// ---- error constructors, named after Kubernetes' field package ----

type Errs = Vec<FieldError>;

fn err(
    kind: ErrorType,
    field: &str,
    value: Option<Value>,
    detail: impl Into<String>,
) -> FieldError {
    FieldError {
        kind,
        field: field.to_string(),
        value,
        detail: detail.into(),
    }
}

fn required(field: &str, detail: &str) -> FieldError {
    err(ErrorType::Required, field, None, detail)
}

fn invalid(field: &str, value: impl Into<Value>, detail: impl Into<String>) -> FieldError {
    err(ErrorType::Invalid, field, Some(value.into()), detail)
}

fn forbidden(field: &str, detail: impl Into<String>) -> FieldError {
    err(ErrorType::Forbidden, field, None, detail)
}

fn duplicate(field: &str, value: impl Into<Value>) -> FieldError {
    err(ErrorType::Duplicate, field, Some(value.into()), "")
}

fn not_found(field: &str, value: impl Into<Value>) -> FieldError {
    err(ErrorType::NotFound, field, Some(value.into()), "")
}

fn not_supported(field: &str, value: impl Into<Value>, valid: &[&str]) -> FieldError {
    let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
    let detail = if quoted.is_empty() {
        String::new()
    } else {
        format!("supported values: {}", quoted.join(", "))
    };
    err(ErrorType::NotSupported, field, Some(value.into()), detail)
}

fn too_long(field: &str, max: usize) -> FieldError {
    let unit = if max == 1 { "byte" } else { "bytes" };
    err(
        ErrorType::TooLong,
        field,
        None,
        format!("may not be more than {max} {unit}"),
    )
}

fn too_many(field: &str, actual: usize, max: usize) -> FieldError {
    let unit = if max == 1 { "item" } else { "items" };
    err(
        ErrorType::TooMany,
        field,
        Some(Value::from(actual)),
        format!("must have at most {max} {unit}"),
    )
}

/// Kubernetes' `ValidateImmutableField`: any change is `field is immutable`.
fn immutable(new: &Value, old: &Value, field: &str) -> Option<FieldError> {
    (new != old).then(|| invalid(field, new.clone(), "field is immutable"))
}

/// Kubernetes' `ValidateNonnegativeField` for an optional integer field.
fn nonnegative(obj: &Value, key: &str, path: &str) -> Option<FieldError> {
    let v = obj.get(key)?.as_i64()?;
    (v < 0).then(|| invalid(&child(path, key), v, "must be greater than or equal to 0"))
}

/// Each message of a name check as an Invalid error on `field`.
fn invalid_each(field: &str, value: &str, msgs: Vec<String>) -> Errs {
    msgs.into_iter().map(|m| invalid(field, value, m)).collect()
}

// ---- field paths ----

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

// ---- tolerant JSON access: absent and wrong-typed fields read as empty ----

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn arr_of<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn obj_of<'a>(v: &'a Value, k: &str) -> Option<&'a Map<String, Value>> {
    v.get(k).and_then(Value::as_object)
}

static NULL: Value = Value::Null;

fn field_of<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&NULL)
}

// ---- per-kind dispatch ----

type CreateFn = fn(&Value) -> Errs;
type UpdateFn = fn(&Value, &Value) -> Errs;

/// How one kind is named, scoped and validated.
struct KindRules {
    group: &'static str,
    kind: &'static str,
    namespaced: bool,
    name: NameValidator,
    create: CreateFn,
    update: UpdateFn,
}

fn no_checks(_: &Value) -> Errs {
    Vec::new()
}

fn no_update_checks(_: &Value, _: &Value) -> Errs {
    Vec::new()
}

macro_rules! kinds {
    ($(($g:expr, $k:expr, $ns:expr, $name:expr, $create:expr, $update:expr)),* $(,)?) => {
        &[$(KindRules { group: $g, kind: $k, namespaced: $ns, name: $name, create: $create, update: $update }),*]
    };
}

use names::{
    name_is_dns1035_label, name_is_dns_label, name_is_dns_subdomain, name_is_path_segment,
};

#[rustfmt::skip]
const KINDS: &[KindRules] = kinds![
    ("", "Namespace", false, name_is_dns_label, no_checks, no_update_checks),
    ("", "Pod", true, name_is_dns_subdomain, pod::validate_pod, pod::validate_pod_update),
    ("", "Node", false, name_is_dns_subdomain, cluster::validate_node, cluster::validate_node_update),
    ("", "Event", true, name_is_path_segment, core_kinds::validate_event, no_update_checks),
    ("", "ConfigMap", true, name_is_dns_subdomain, core_kinds::validate_config_map, core_kinds::validate_config_map_update),
    ("", "Secret", true, name_is_dns_subdomain, core_kinds::validate_secret, core_kinds::validate_secret_update),
    ("", "ServiceAccount", true, name_is_dns_subdomain, no_checks, no_update_checks),
    ("", "Service", true, name_is_dns1035_label, service::validate_service, service::validate_service_update),
    ("", "Endpoints", true, name_is_dns_subdomain, core_kinds::validate_endpoints, no_update_checks),
    ("apps", "Deployment", true, name_is_dns_subdomain, workloads::validate_deployment, workloads::validate_selector_update),
    ("apps", "ReplicaSet", true, name_is_dns_subdomain, workloads::validate_replica_set, workloads::validate_selector_update),
    ("apps", "DaemonSet", true, name_is_dns_subdomain, workloads::validate_daemon_set, workloads::validate_selector_update),
    ("apps", "StatefulSet", true, name_is_dns_subdomain, workloads::validate_stateful_set, workloads::validate_stateful_set_update),
    ("apps", "ControllerRevision", true, name_is_dns_subdomain, workloads::validate_controller_revision, workloads::validate_controller_revision_update),
    ("batch", "Job", true, name_is_dns_subdomain, workloads::validate_job, workloads::validate_job_update),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", false, name_is_dns_subdomain, admissionregistration::validate_validating, no_update_checks),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", false, name_is_dns_subdomain, admissionregistration::validate_mutating, no_update_checks),
    ("coordination.k8s.io", "Lease", true, name_is_dns_subdomain, cluster::validate_lease, no_update_checks),
    ("discovery.k8s.io", "EndpointSlice", true, name_is_dns_subdomain, networking::validate_endpoint_slice, networking::validate_endpoint_slice_update),
    ("networking.k8s.io", "Ingress", true, name_is_dns_subdomain, networking::validate_ingress, no_update_checks),
    ("networking.k8s.io", "IngressClass", false, name_is_dns_subdomain, networking::validate_ingress_class, networking::validate_ingress_class_update),
    ("node.k8s.io", "RuntimeClass", false, name_is_dns_subdomain, cluster::validate_runtime_class, cluster::validate_runtime_class_update),
    ("rbac.authorization.k8s.io", "Role", true, name_is_path_segment, rbac::validate_role, no_update_checks),
    ("rbac.authorization.k8s.io", "ClusterRole", false, name_is_path_segment, rbac::validate_cluster_role, no_update_checks),
    ("rbac.authorization.k8s.io", "RoleBinding", true, name_is_path_segment, rbac::validate_role_binding, rbac::validate_binding_update),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", false, name_is_path_segment, rbac::validate_cluster_role_binding, rbac::validate_binding_update),
];

fn rules(group: &str, kind: &str) -> Option<&'static KindRules> {
    KINDS.iter().find(|r| r.group == group && r.kind == kind)
}

/// Whether skiff knows the naming and validation rules of this kind.
pub fn is_known_kind(group: &str, kind: &str) -> bool {
    rules(group, kind).is_some()
}

/// The name check Kubernetes applies to objects of this kind
/// (DNS-1123 subdomain for kinds skiff does not know).
pub fn name_validator(group: &str, kind: &str) -> NameValidator {
    rules(group, kind).map_or(name_is_dns_subdomain as NameValidator, |r| r.name)
}

/// Validate an object about to be created, after [`default_object`].
///
/// `metadata.namespace` must already be filled from the request path for
/// namespaced kinds and cleared for cluster-scoped ones, as the Kubernetes
/// API server does before validation. Unknown kinds get only metadata checks.
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let Some(r) = rules(group, kind) else {
        return meta::validate_object_meta(field_of(obj, "metadata"), None, name_is_dns_subdomain);
    };
    let mut errs =
        meta::validate_object_meta(field_of(obj, "metadata"), Some(r.namespaced), r.name);
    errs.extend((r.create)(obj));
    errs
}

/// Validate an update from `old` to `new` (both defaulted): everything
/// [`validate_create`] checks plus the fields Kubernetes keeps immutable.
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = validate_create(group, kind, new);
    errs.extend(meta::validate_object_meta_update(
        field_of(old, "metadata"),
        field_of(new, "metadata"),
    ));
    if let Some(r) = rules(group, kind) {
        errs.extend((r.update)(old, new));
    }
    errs
}

#[cfg(test)]
mod tests;
