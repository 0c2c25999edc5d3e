//! core/v1 Events about pods, as the kubelet records them (`kubectl
//! describe pod` shows them: Pulling, Pulled, Created, Started, Killing,
//! BackOff, Failed).
//!
//! Recording is best effort and never blocks a pod: an Event that cannot be
//! written (API server down) is logged and dropped, as the kubelet's
//! recorder drops events when its queue overflows.

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What happened to which part of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub kind: EventType,
    pub reason: &'static str,
    pub message: String,
    /// `spec.containers{name}` or `spec.initContainers{name}`.
    pub field_path: Option<String>,
}

/// Writes Events for the node's pods.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node: String,
}

impl Recorder {
    /// A recorder reporting as the kubelet of `node`.
    pub fn new(client: kube::Client, node: String) -> Self {
        Recorder { client, node }
    }

    /// Record `ev` about `pod` in the background.
    pub fn record(&self, pod: &Pod, ev: PodEvent) {
        let body = event_object(pod, &self.node, &ev, &random_suffix());
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let client = self.client.clone();
        tokio::spawn(async move {
            let Ok(event) = serde_json::from_value::<Event>(body) else {
                return;
            };
            let api: Api<Event> = Api::namespaced(client, &ns);
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, reason = ev.reason, "event dropped");
            }
        });
    }
}

fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The Event object for `ev` about `pod`, named `<pod>.<suffix>`.
pub fn event_object(pod: &Pod, node: &str, ev: &PodEvent, suffix: &str) -> Value {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut involved = json!({
        "apiVersion": "v1", "kind": "Pod", "name": name,
        "namespace": pod.metadata.namespace, "uid": pod.metadata.uid,
        "resourceVersion": pod.metadata.resource_version,
    });
    if let Some(fp) = &ev.field_path {
        involved["fieldPath"] = json!(fp);
    }
    // Written as the kubelet's recorder writes core/v1 Events: no
    // eventTime (that form belongs to events.k8s.io clients).
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{suffix}"), "namespace": pod.metadata.namespace},
        "involvedObject": involved,
        "reason": ev.reason,
        "message": ev.message,
        "type": ev.kind.as_str(),
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_points_at_the_container_like_the_kubelets() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u1"}
        }))
        .expect("pod");
        let ev = PodEvent {
            kind: EventType::Warning,
            reason: "BackOff",
            message: "Back-off restarting failed container main in pod web_ns1(u1)".into(),
            field_path: Some("spec.containers{main}".into()),
        };
        let e = event_object(&pod, "node-1", &ev, "abc");
        assert_eq!(e["metadata"]["name"], "web.abc");
        assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{main}");
        assert_eq!(e["involvedObject"]["uid"], "u1");
        assert_eq!(e["type"], "Warning");
        assert_eq!(e["source"]["host"], "node-1");
        let _: Event = serde_json::from_value(e).expect("a valid Event");
    }
}
