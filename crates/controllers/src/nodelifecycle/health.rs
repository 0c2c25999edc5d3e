//! Is a node alive, and what should its conditions and taints say about it?
//!
//! Kubernetes judges a node by two heartbeats: the Lease the kubelet renews
//! in `kube-node-lease` (cheap, every 10 s) and the Ready condition's
//! `lastHeartbeatTime`. Like Kubernetes' node lifecycle controller, skiff
//! does not compare those timestamps with its own clock (clocks drift);
//! it remembers when, by its own monotonic clock, it last saw either one
//! *change*. A node unseen for longer than the grace period has its
//! conditions set to Unknown; the Ready condition then decides the
//! `not-ready` / `unreachable` taints.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The taint key for a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint key for a node whose Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The conditions the kubelet posts and the controller marks Unknown when
/// it goes silent (Kubernetes' `nodeConditionTypes` plus Ready).
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
/// Kubernetes' reason and message for a kubelet that stopped posting.
pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
/// Kubernetes' reason and message for a kubelet that never posted.
const REASON_NEVER: &str = "NodeStatusNeverUpdated";
const MESSAGE_NEVER: &str = "Kubelet never posted node status.";

/// What the controller last saw of a node's heartbeats, and when.
#[derive(Debug, Clone)]
struct Probe {
    lease_renew: Option<String>,
    heartbeat: Option<String>,
    seen_at: Instant,
}

/// The last sign of life of every node (Kubernetes' `nodeHealthMap`).
#[derive(Debug, Default)]
pub struct Health {
    probes: HashMap<String, Probe>,
}

impl Health {
    /// Record what a node's Lease (`spec.renewTime`) and Ready heartbeat
    /// show at `now`, and say whether the node has been silent for longer
    /// than `grace`. A node seen for the first time gets a full grace
    /// period, so a restarted controller does not condemn every node.
    pub fn observe(
        &mut self,
        node: &str,
        lease_renew: Option<String>,
        heartbeat: Option<String>,
        now: Instant,
        grace: Duration,
    ) -> bool {
        let probe = self.probes.entry(node.to_string()).or_insert(Probe {
            lease_renew: lease_renew.clone(),
            heartbeat: heartbeat.clone(),
            seen_at: now,
        });
        if probe.lease_renew != lease_renew || probe.heartbeat != heartbeat {
            probe.lease_renew = lease_renew;
            probe.heartbeat = heartbeat;
            probe.seen_at = now;
        }
        now.saturating_duration_since(probe.seen_at) > grace
    }

    /// Drop the nodes that no longer exist.
    pub fn retain(&mut self, nodes: &HashSet<String>) {
        self.probes.retain(|n, _| nodes.contains(n));
    }
}

/// The node's conditions once its kubelet is declared silent: each kubelet
/// condition Unknown (added when the kubelet never posted it), keeping its
/// last heartbeat. `None` when they already say so, so nothing is written.
pub fn silenced_conditions(
    conditions: &[NodeCondition],
    now: Timestamp,
) -> Option<Vec<NodeCondition>> {
    let mut out = conditions.to_vec();
    let mut changed = false;
    for kind in KUBELET_CONDITIONS {
        match out.iter_mut().find(|c| c.type_ == kind) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_UNKNOWN.into());
                c.message = Some(MESSAGE_UNKNOWN.into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                out.push(NodeCondition {
                    type_: kind.into(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NEVER.into()),
                    message: Some(MESSAGE_NEVER.into()),
                    last_heartbeat_time: None,
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// The Ready condition's status (`True`, `False`, `Unknown`), if posted.
pub fn ready_status(conditions: &[NodeCondition]) -> Option<&str> {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// The Ready condition's last heartbeat, as written.
pub fn ready_heartbeat(conditions: &[NodeCondition]) -> Option<String> {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string())
}

/// The node's taints as the Ready condition wants them: `not-ready` for
/// False, `unreachable` for Unknown, neither for True — each with both the
/// NoSchedule effect (keep new pods away) and NoExecute (evict running
/// ones). Other taints are kept as they are, and so is the `timeAdded` of
/// a taint already present (eviction deadlines count from it). `None` when
/// nothing changes, or the kubelet has not posted Ready yet.
pub fn desired_taints(
    current: &[Taint],
    ready: Option<&str>,
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let want = match ready? {
        "True" => None,
        "False" => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    };
    let ours = |t: &Taint| {
        (t.key == NOT_READY || t.key == UNREACHABLE)
            && matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !ours(t) || Some(t.key.as_str()) == want)
        .cloned()
        .collect();
    if let Some(key) = want {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == key && t.effect == effect) {
                out.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    value: None,
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                });
            }
        }
    }
    (out != current).then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    fn conds(v: serde_json::Value) -> Vec<NodeCondition> {
        serde_json::from_value(v).unwrap()
    }

    fn taints(v: serde_json::Value) -> Vec<Taint> {
        serde_json::from_value(v).unwrap()
    }

    fn keys(t: &[Taint]) -> Vec<String> {
        t.iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn a_node_is_silent_only_after_grace_without_any_heartbeat_change() {
        let mut h = Health::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(40);
        let lease = |s: &str| Some(s.to_string());
        // First sight: a full grace period, however old the Lease is.
        assert!(!h.observe("n", lease("r1"), None, t0, grace));
        assert!(!h.observe("n", lease("r1"), None, t0 + Duration::from_secs(40), grace));
        assert!(h.observe("n", lease("r1"), None, t0 + Duration::from_secs(41), grace));
        // A renewed Lease alone revives it (the kubelet posts status rarely).
        assert!(!h.observe("n", lease("r2"), None, t0 + Duration::from_secs(42), grace));
        assert!(!h.observe("n", lease("r2"), None, t0 + Duration::from_secs(80), grace));
        // So does a new Ready heartbeat with the Lease unchanged.
        let later = t0 + Duration::from_secs(81);
        assert!(!h.observe("n", lease("r2"), lease("hb"), later, grace));
        assert!(h.observe(
            "n",
            lease("r2"),
            lease("hb"),
            later + Duration::from_secs(41),
            grace
        ));
    }

    #[test]
    fn forgotten_nodes_get_a_fresh_grace_period() {
        let mut h = Health::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(1);
        h.observe("n", None, None, t0, grace);
        h.retain(&HashSet::new());
        assert!(!h.observe("n", None, None, t0 + Duration::from_secs(5), grace));
    }

    #[test]
    fn silence_marks_kubelet_conditions_unknown_with_kubernetes_reasons() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let c = conds(json!([
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2025-12-31T00:00:00Z"},
            {"type": "DiskPressure", "status": "False"},
            {"type": "NetworkUnavailable", "status": "False"},
        ]));
        let out = silenced_conditions(&c, now).unwrap();
        let ready = out.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        // The last heartbeat stays: it says when the kubelet was last heard.
        assert_eq!(
            ready_heartbeat(&out).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(ready.last_transition_time.as_ref().unwrap().0, now);
        // Conditions the kubelet never posted are added as never updated;
        // ones it does not own are left alone.
        let mem = out.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(mem.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        let net = out
            .iter()
            .find(|c| c.type_ == "NetworkUnavailable")
            .unwrap();
        assert_eq!(net.status, "False");
        // Already Unknown: nothing to write.
        assert!(silenced_conditions(&out, now).is_none());
    }

    #[test]
    fn ready_condition_maps_to_not_ready_and_unreachable_taints() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let other = taints(json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]));
        let unknown = desired_taints(&other, Some("Unknown"), now).unwrap();
        assert_eq!(
            keys(&unknown),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        // Only NoExecute taints carry timeAdded, as in Kubernetes.
        assert!(unknown[1].time_added.is_none() && unknown[2].time_added.is_some());
        // Unknown -> False swaps the taints.
        let not_ready = desired_taints(&unknown, Some("False"), now).unwrap();
        assert_eq!(
            keys(&not_ready),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/not-ready:NoSchedule",
                "node.kubernetes.io/not-ready:NoExecute"
            ]
        );
        // Back to Ready: only the unrelated taint remains.
        assert_eq!(
            keys(&desired_taints(&not_ready, Some("True"), now).unwrap()),
            ["dedicated:NoSchedule"]
        );
        // No change, or no Ready condition yet: nothing to write.
        assert!(desired_taints(&other, Some("True"), now).is_none());
        assert!(desired_taints(&unknown, Some("Unknown"), now).is_none());
        assert!(desired_taints(&other, None, now).is_none());
    }

    #[test]
    fn an_existing_taint_keeps_its_time_added() {
        let t = taints(
            json!([{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2025-01-01T00:00:00Z"}]),
        );
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let out = desired_taints(&t, Some("Unknown"), now).unwrap();
        let ne = out.iter().find(|t| t.effect == "NoExecute").unwrap();
        assert_eq!(
            ne.time_added.as_ref().unwrap().0.to_string(),
            "2025-01-01T00:00:00Z"
        );
    }
}
