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
/// After a failure it retries sooner, as the kubelet does: from 200 ms,
/// doubling up to the renew period. A link that stays down is logged when
/// it fails, every 30 s while it stays so, and when it is back.
pub(crate) async fn run(ctx: Arc<Ctx>, node_uid: String) {
    let period = ctx.cfg.lease_renew;
    let mut failures: u32 = 0;
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let duration = ctx.cfg.lease_duration_seconds;
        // A cut link leaves a request hanging, not failing: give up on it
        // in time to try again within the lease.
        let attempt = tokio::time::timeout(
            period.max(std::time::Duration::from_secs(2)),
            renew(&ctx.client, &ctx.cfg.node_name, &node_uid, duration),
        )
        .await
        .unwrap_or_else(|_| Err(kube::Error::Service("no answer in time".into())));
        let wait = match attempt {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(node = %ctx.cfg.node_name, failures, "renewing the node lease again");
                    ctx.reconnected.notify_waiters();
                }
                failures = 0;
                last_warning = None;
                period
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if last_warning.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(30)) {
                    tracing::warn!(node = %ctx.cfg.node_name, error = %e, failures, "renewing the node lease failed; retrying");
                    last_warning = Some(std::time::Instant::now());
                }
                retry_after(failures, period)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// The wait before the next attempt after `failures` failures in a row.
fn retry_after(failures: u32, period: std::time::Duration) -> std::time::Duration {
    let ms = 200u64.saturating_mul(1 << failures.saturating_sub(1).min(16));
    std::time::Duration::from_millis(ms).min(period.max(std::time::Duration::from_millis(200)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_200ms_to_the_period() {
        let period = std::time::Duration::from_secs(10);
        assert_eq!(retry_after(1, period).as_millis(), 200);
        assert_eq!(retry_after(2, period).as_millis(), 400);
        assert_eq!(retry_after(6, period).as_millis(), 6400);
        assert_eq!(retry_after(7, period), period);
        assert_eq!(retry_after(40, period), period);
    }

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
