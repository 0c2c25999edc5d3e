//! The node's heartbeat Lease in `kube-node-lease`.
//!
//! Kubernetes judges a node alive by this Lease, not by the Node's status:
//! it is small and cheap to renew every 10 s. The Lease is owned by the Node
//! so that deleting the Node removes it.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::Ctx;

/// The namespace node Leases live in.
pub const NAMESPACE: &str = "kube-node-lease";
/// The kubelet's default `leaseDurationSeconds`; it renews every quarter.
pub const DEFAULT_DURATION_SECONDS: i32 = 40;

/// The Lease of `node` (uid `node_uid`) renewed at `now` (MicroTime),
/// valid for `duration` seconds.
pub fn lease_object(node: &str, node_uid: &str, now: &str, duration: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": NAMESPACE,
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid,
            }],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration,
            "renewTime": now,
        },
    })
}

fn micro_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Renew once: create the Lease if it is missing, else move `renewTime`.
pub async fn renew(
    client: &kube::Client,
    node: &str,
    node_uid: &str,
    duration: i32,
) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let obj = lease_object(node, node_uid, &micro_now(), duration);
    if api.get_opt(node).await?.is_none() {
        let lease: Lease = serde_json::from_value(obj).map_err(kube::Error::SerdeError)?;
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
            Err(e) => Err(e),
        };
    }
    let patch = json!({"metadata": {"ownerReferences": obj["metadata"]["ownerReferences"]}, "spec": obj["spec"]});
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Renew the Lease every `lease_renew` for as long as the agent runs.
/// Failures are logged and retried at the next tick (sooner after an
/// error, as the kubelet retries with a shorter interval).
pub(crate) async fn run(ctx: Arc<Ctx>, node_uid: String) {
    let period = ctx.cfg.lease_renew;
    loop {
        let duration = ctx.cfg.lease_duration_seconds;
        let wait = match renew(&ctx.client, &ctx.cfg.node_name, &node_uid, duration).await {
            Ok(()) => period,
            Err(e) => {
                tracing::warn!(node = %ctx.cfg.node_name, error = %e, "renewing the node lease failed");
                (period / 5).max(std::time::Duration::from_millis(200))
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_as_the_kubelet_writes_it() {
        let l = lease_object(
            "n1",
            "uid-1",
            "2026-01-01T00:00:00.000000Z",
            DEFAULT_DURATION_SECONDS,
        );
        assert_eq!(l["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(l["metadata"]["name"], "n1");
        assert_eq!(l["spec"]["holderIdentity"], "n1");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        let typed: Lease = serde_json::from_value(l).expect("valid Lease");
        assert!(typed.spec.and_then(|s| s.renew_time).is_some());
    }
}
