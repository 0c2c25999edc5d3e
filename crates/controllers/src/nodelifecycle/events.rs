//! core/v1 Events for the node lifecycle controller's decisions, so
//! `kubectl describe node` shows NodeNotReady and `kubectl describe pod`
//! shows TaintManagerEviction, as on a Kubernetes cluster. The node IPAM
//! controller records its CIDRNotAvailable through [`record_as`].
//!
//! Recording is best effort: an Event that cannot be written is logged and
//! dropped, never retried, and never holds up an eviction.

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use kube::Resource;
use serde_json::{json, Value};

/// The component name Kubernetes' controller reports events as.
const COMPONENT: &str = "node-controller";

/// Record a `Normal` event about `obj` in the background.
pub fn record<K>(client: &kube::Client, obj: &K, reason: &'static str, message: String)
where
    K: Resource<DynamicType = ()>,
{
    record_as(client, COMPONENT, obj, reason, message);
}

/// [`record`] for another controller: `component` is the source it
/// reports as (Kubernetes' node IPAM controller is `cidrAllocator`).
pub fn record_as<K>(
    client: &kube::Client,
    component: &'static str,
    obj: &K,
    reason: &'static str,
    message: String,
) where
    K: Resource<DynamicType = ()>,
{
    let mut body = event_object(
        obj,
        reason,
        &message,
        &format!("{:016x}", rand::random::<u64>()),
    );
    body["source"]["component"] = component.into();
    body["reportingComponent"] = component.into();
    // Events about cluster-scoped objects (nodes) live in `default`.
    let ns = obj
        .meta()
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let client = client.clone();
    tokio::spawn(async move {
        let Ok(event) = serde_json::from_value::<Event>(body) else {
            return;
        };
        let api: Api<Event> = Api::namespaced(client, &ns);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(error = %e, reason, "event dropped");
        }
    });
}

/// The Event object for `reason` about `obj`, named `<obj>.<suffix>`.
pub fn event_object<K>(obj: &K, reason: &str, message: &str, suffix: &str) -> Value
where
    K: Resource<DynamicType = ()>,
{
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let meta = obj.meta();
    let name = meta.name.clone().unwrap_or_default();
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{suffix}"), "namespace": ns},
        "involvedObject": {
            "apiVersion": K::api_version(&()), "kind": K::kind(&()), "name": name,
            "namespace": meta.namespace, "uid": meta.uid,
        },
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};

    #[test]
    fn node_events_live_in_default_and_point_at_the_node() {
        // Kubernetes records events about cluster-scoped objects in `default`.
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": "n1", "uid": "u"}})).unwrap();
        let e = event_object(
            &node,
            "NodeNotReady",
            "Node n1 status is now: NodeNotReady",
            "x",
        );
        assert_eq!(e["metadata"]["namespace"], "default");
        assert_eq!(e["metadata"]["name"], "n1.x");
        assert_eq!(e["involvedObject"]["kind"], "Node");
        assert!(e["involvedObject"]["namespace"].is_null());
        serde_json::from_value::<Event>(e).unwrap();
    }

    #[test]
    fn pod_events_live_in_the_pods_namespace() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}}),
        )
        .unwrap();
        let e = event_object(
            &pod,
            "TaintManagerEviction",
            "Marking for deletion Pod ns/p",
            "x",
        );
        assert_eq!(e["metadata"]["namespace"], "ns");
        assert_eq!(e["involvedObject"]["apiVersion"], "v1");
        assert_eq!(e["source"]["component"], "node-controller");
    }
}
