//! Per-kind behaviour of the generic REST handlers ("strategies").
//!
//! The handlers are the same for every kind; what differs is here: where
//! an object is stored, what the server sets on create, how an update is
//! split between the main resource and its `status` subresource, when
//! `metadata.generation` moves, and validation.

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use apimachinery::validation::{self, FieldError};

use crate::error::ApiError;
use crate::resources::Resource;

/// Storage key of one object.
pub fn key(r: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if r.namespaced() => format!("{}{}/{}", r.store_prefix(), ns, name),
        _ => format!("{}{}", r.store_prefix(), name),
    }
}

/// Storage prefix of a list (one namespace, or all of them).
pub fn prefix(r: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if r.namespaced() => format!("{}{}/", r.store_prefix(), ns),
        _ => r.store_prefix(),
    }
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn has_status(r: &Resource) -> bool {
    r.subresources.contains(&"status")
}

/// Kinds whose `metadata.generation` tracks changes to their desired state.
fn tracks_generation(r: &Resource) -> bool {
    has_status(r) && r.kind != "Namespace" && r.kind != "Node"
}

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

pub fn name_of(obj: &Value) -> &str {
    meta(obj)
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Everything but metadata and status: what a generation bump compares.
fn desired_state(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
        o.remove("apiVersion");
        o.remove("kind");
    }
    v
}

/// What the server sets on a new object before defaulting and validation.
pub fn prepare_create(r: &Resource, obj: &mut Value) {
    let now = now_rfc3339();
    let m = meta_mut(obj);
    m.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    m.insert("creationTimestamp".into(), Value::String(now));
    m.remove("resourceVersion");
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.remove("selfLink");
    if tracks_generation(r) {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    if has_status(r) {
        let status = match r.kind {
            // Defaulting adds qosClass once requests are filled from limits.
            "Pod" => json!({"phase": "Pending"}),
            "Namespace" => json!({"phase": "Active"}),
            // A node agent registers its Node with its status in one go.
            "Node" => obj.get("status").cloned().unwrap_or(json!({})),
            _ => json!({}),
        };
        obj["status"] = status;
    }
}

/// Merge an incoming update with the stored object: fields the server owns
/// are kept, and the main resource and `status` each only change their own
/// part.
pub fn prepare_update(r: &Resource, old: &Value, new: &mut Value, subresource: Option<&str>) {
    let keep = [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ];
    let old_meta = meta(old).cloned().unwrap_or_default();
    {
        let m = meta_mut(new);
        for k in keep {
            match old_meta.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.remove("selfLink");
    }
    match subresource {
        Some("status") => {
            // Only status changes through /status (metadata labels and
            // annotations too, as Kubernetes allows).
            let status = new.get("status").cloned();
            let meta_new = new["metadata"].clone();
            *new = old.clone();
            if let Some(s) = status {
                new["status"] = s;
            }
            for k in ["labels", "annotations", "managedFields"] {
                if let Some(v) = meta_new.get(k) {
                    meta_mut(new).insert(k.into(), v.clone());
                }
            }
            return;
        }
        Some("approval") => {
            // A CertificateSigningRequest's decision: its conditions only.
            let conditions = new["status"].get("conditions").cloned();
            *new = old.clone();
            match conditions {
                Some(c) => new["status"]["conditions"] = c,
                None => {
                    if let Some(s) = new.get_mut("status").and_then(Value::as_object_mut) {
                        s.remove("conditions");
                    }
                }
            }
            return;
        }
        _ if has_status(r) && r.kind != "Node" => match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        },
        _ => {}
    }
    if tracks_generation(r) && desired_state(old) != desired_state(new) {
        let g = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta_mut(new).insert("generation".into(), json!(g));
    }
}

/// The 422 for a list of field errors.
pub fn invalid(r: &Resource, name: &str, errs: &[FieldError]) -> ApiError {
    let kind_group = if r.group.is_empty() {
        r.kind.to_string()
    } else {
        format!("{}.{}", r.kind, r.group)
    };
    let causes = errs
        .iter()
        .map(|e| json!({"reason": e.reason(), "message": e.body(), "field": e.field}))
        .collect();
    ApiError::invalid(
        r.kind,
        r.group,
        name,
        validation::invalid_message(&kind_group, name, errs),
        causes,
    )
}

/// Defaults then create-time validation.
pub fn default_and_validate_create(r: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    validation::default_object(r.group, r.kind, obj);
    let errs = validation::validate_create(r.group, r.kind, obj);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(r, name_of(obj), &errs))
    }
}

pub fn default_and_validate_update(
    r: &Resource,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    validation::default_object(r.group, r.kind, new);
    let errs = validation::validate_update(r.group, r.kind, old, new);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(r, name_of(new), &errs))
    }
}

/// Five characters for a generated name, from the alphabet Kubernetes'
/// name generator uses (no vowels, no look-alike digits).
pub fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;

    #[test]
    fn generation_moves_on_spec_changes_only() {
        let r = resources::by_kind("apps", "v1", "Deployment").expect("deployments");
        let mut old =
            json!({"metadata":{"name":"w"},"spec":{"replicas":1},"status":{"replicas":1}});
        prepare_create(r, &mut old);
        assert_eq!(old["metadata"]["generation"], 1);
        assert_eq!(old["status"], json!({}));
        let mut relabel = old.clone();
        relabel["metadata"]["labels"] = json!({"a":"b"});
        prepare_update(r, &old, &mut relabel, None);
        assert_eq!(relabel["metadata"]["generation"], 1);
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        scaled["status"] = json!({"replicas": 99});
        prepare_update(r, &old, &mut scaled, None);
        assert_eq!(scaled["metadata"]["generation"], 2);
        assert_eq!(
            scaled["status"],
            json!({}),
            "main resource cannot write status"
        );
        let mut status = old.clone();
        status["status"] = json!({"replicas": 3});
        status["spec"]["replicas"] = json!(7);
        prepare_update(r, &old, &mut status, Some("status"));
        assert_eq!(
            (
                status["spec"]["replicas"].clone(),
                status["status"]["replicas"].clone()
            ),
            (json!(1), json!(3))
        );
    }
}
