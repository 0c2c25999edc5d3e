//! NodeRestriction: what a node credential (`system:node:NAME` in
//! `system:nodes`) may change, beyond what RBAC's `system:node` role lets
//! any node do. As Kubernetes' admission plugin of that name:
//!
//! - its own Node (and its status) only; no deleting Nodes;
//! - its own Lease in `kube-node-lease` only;
//! - pods bound to it only (status, the activity annotation, deletion once
//!   stopped); it creates none;
//! - and, skiff's own: Deployments only when they opted in to scale to
//!   zero (`skiff.dev/scale-to-zero`), which the node's gateway wakes.
//!
//! Decided from the request's target and the object as stored, before the
//! handler runs; the messages are Kubernetes'.

use serde_json::Value;

use crate::authn::User;
use crate::error::{ApiError, ApiResult};
use crate::request::{RequestInfo, Verb};
use crate::store::Store;

/// The annotation that lets node gateways wake a Deployment.
const SCALE_TO_ZERO: &str = "skiff.dev/scale-to-zero";

fn forbidden(info: &RequestInfo, why: String) -> ApiError {
    let name = info.name.as_deref().unwrap_or("");
    ApiError::forbidden(format!(
        "{} \"{name}\" is forbidden: {why}",
        info.resource.plural
    ))
}

/// Refuse a node's write that is not its own business. Reads and users
/// that are not nodes pass.
pub fn check(store: &dyn Store, user: &User, info: &RequestInfo) -> ApiResult<()> {
    let Some(node) = user.node_name() else {
        return Ok(());
    };
    if matches!(info.verb, Verb::Get | Verb::List | Verb::Watch) {
        return Ok(());
    }
    let r = info.resource;
    let name = info.name.as_deref().unwrap_or("");
    let stored = |ns: Option<&str>| -> ApiResult<Option<std::sync::Arc<Value>>> {
        Ok(store
            .get(&crate::registry::key(r, ns, name))
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map(|o| o.value))
    };
    match (r.group, r.kind) {
        ("", "Node") => {
            if matches!(info.verb, Verb::Delete | Verb::DeleteCollection) {
                return Err(forbidden(
                    info,
                    format!("node \"{node}\" is not allowed to delete nodes"),
                ));
            }
            // A create names its object in the body: see check_create.
            if name != node && info.verb != Verb::Create {
                return Err(forbidden(
                    info,
                    format!("node \"{node}\" is not allowed to modify node \"{name}\""),
                ));
            }
        }
        ("coordination.k8s.io", "Lease") => {
            let named_other = name != node && info.verb != Verb::Create;
            if info.namespace.as_deref() != Some("kube-node-lease") || named_other {
                return Err(forbidden(
                    info,
                    "can only access node lease with the same name as the requesting node".into(),
                ));
            }
        }
        ("", "Pod") => {
            if info.verb == Verb::Create && info.subresource.is_none() {
                return Err(forbidden(
                    info,
                    format!("node \"{node}\" can only create mirror pods, and skiff has none"),
                ));
            }
            if info.verb == Verb::DeleteCollection {
                return Err(forbidden(
                    info,
                    format!("node \"{node}\" can only delete pods one by one"),
                ));
            }
            let elsewhere = stored(info.namespace.as_deref())?
                .is_some_and(|p| p["spec"]["nodeName"].as_str() != Some(node));
            if elsewhere {
                let what = match (info.verb, info.subresource.as_deref()) {
                    (Verb::Delete, _) => "delete pods",
                    (_, Some("status")) => "update pod status for pods",
                    _ => "update pods",
                };
                return Err(forbidden(
                    info,
                    format!("node \"{node}\" can only {what} with spec.nodeName set to itself"),
                ));
            }
        }
        ("apps", "Deployment") => {
            let opted_in = stored(info.namespace.as_deref())?
                .is_some_and(|d| d["metadata"]["annotations"][SCALE_TO_ZERO].is_string());
            if !opted_in || info.verb != Verb::Patch {
                return Err(forbidden(
                    info,
                    format!("node \"{node}\" may only wake Deployments annotated {SCALE_TO_ZERO}"),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The part of NodeRestriction a create's body decides: a node creates
/// only its own Node and its own Lease.
pub fn check_create(user: &User, info: &RequestInfo, obj: &Value) -> ApiResult<()> {
    let Some(node) = user.node_name() else {
        return Ok(());
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let mine = |why: String| -> ApiResult<()> {
        if name == node {
            Ok(())
        } else {
            let mut i = info.clone();
            i.name = Some(name.to_string());
            Err(forbidden(&i, why))
        }
    };
    match (info.resource.group, info.resource.kind) {
        ("", "Node") => mine(format!(
            "node \"{node}\" is not allowed to modify node \"{name}\""
        )),
        ("coordination.k8s.io", "Lease") => {
            mine("can only access node lease with the same name as the requesting node".into())
        }
        _ => Ok(()),
    }
}
