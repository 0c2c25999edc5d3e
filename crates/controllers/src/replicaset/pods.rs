//! What the ReplicaSet controller asks of a pod: is it active, ready,
//! available; and which pods to delete first when scaling down.

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Active pods count towards replicas: not terminating, not finished
/// (Kubernetes' `FilterActivePods`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod's Ready condition last turned True, if it is True now.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been Ready for at least `min_ready_seconds`
/// (Kubernetes' `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    available_at(pod, min_ready_seconds).is_some_and(|at| at <= now)
}

/// When a Ready pod becomes available; `None` if it is not Ready.
pub fn available_at(pod: &Pod, min_ready_seconds: i32) -> Option<Timestamp> {
    let since = ready_since(pod)?;
    if min_ready_seconds <= 0 {
        return Some(Timestamp::MIN);
    }
    // Kubernetes needs a transition time to count a pod available.
    since.and_then(|t| {
        t.checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
            .ok()
    })
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// The order in which Kubernetes deletes pods when scaling down
/// (`ActivePodsWithRanks`): earlier in the order goes first.
///
/// 1. unscheduled before scheduled;
/// 2. Pending before Unknown before Running;
/// 3. not Ready before Ready;
/// 4. more sibling pods on the same node before fewer (spreads what stays);
/// 5. Ready for less time before longer;
/// 6. more container restarts before fewer;
/// 7. newer before older.
pub fn deletion_order(a: &Pod, b: &Pod, colocated: &HashMap<String, usize>) -> Ordering {
    let rank = |p: &Pod| {
        node_of(p)
            .and_then(|n| colocated.get(n))
            .copied()
            .unwrap_or(0)
    };
    node_of(a)
        .is_some()
        .cmp(&node_of(b).is_some())
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| rank(b).cmp(&rank(a)))
        .then_with(
            || match (ready_since(a).flatten(), ready_since(b).flatten()) {
                (Some(x), Some(y)) => y.cmp(&x),
                _ => Ordering::Equal,
            },
        )
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

/// Pick the `n` pods to delete first.
pub fn pick_for_deletion(pods: &[std::sync::Arc<Pod>], n: usize) -> Vec<std::sync::Arc<Pod>> {
    let mut colocated: HashMap<String, usize> = HashMap::new();
    for p in pods {
        if let Some(node) = node_of(p) {
            *colocated.entry(node.to_string()).or_default() += 1;
        }
    }
    let mut ranked = pods.to_vec();
    ranked.sort_by(|a, b| deletion_order(a, b, &colocated));
    ranked.truncate(n);
    ranked
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(name: &str, node: &str, phase: &str, ready: Option<&str>, created: &str) -> Arc<Pod> {
        let mut conditions = vec![];
        if let Some(t) = ready {
            conditions.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": t}));
        } else {
            conditions.push(json!({"type": "Ready", "status": "False"}));
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "creationTimestamp": created},
                "spec": {"containers": [], "nodeName": node},
                "status": {"phase": phase, "conditions": conditions},
            }))
            .unwrap(),
        )
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn scale_down_prefers_unscheduled_then_pending_then_not_ready() {
        // Kubernetes' ActivePods ordering, steps 1 to 3.
        let t = "2026-01-01T00:00:00Z";
        let pods = vec![
            pod("ready", "n1", "Running", Some(t), t),
            pod("not-ready", "n2", "Running", None, t),
            pod("pending", "n3", "Pending", None, t),
            pod("unscheduled", "", "Pending", None, t),
        ];
        assert_eq!(
            names(&pick_for_deletion(&pods, 4)),
            ["unscheduled", "pending", "not-ready", "ready"]
        );
        assert_eq!(names(&pick_for_deletion(&pods, 1)), ["unscheduled"]);
    }

    #[test]
    fn among_equals_newer_pods_and_shorter_ready_go_first() {
        let pods = vec![
            pod(
                "old",
                "a",
                "Running",
                Some("2026-01-01T00:00:00Z"),
                "2026-01-01T00:00:00Z",
            ),
            pod(
                "new",
                "b",
                "Running",
                Some("2026-01-01T00:00:00Z"),
                "2026-01-02T00:00:00Z",
            ),
            pod(
                "fresh-ready",
                "c",
                "Running",
                Some("2026-01-03T00:00:00Z"),
                "2026-01-01T00:00:00Z",
            ),
        ];
        assert_eq!(
            names(&pick_for_deletion(&pods, 3)),
            ["fresh-ready", "new", "old"]
        );
    }

    #[test]
    fn crowded_nodes_lose_pods_first() {
        let t = "2026-01-01T00:00:00Z";
        let pods = vec![
            pod("alone", "a", "Running", Some(t), t),
            pod("crowd1", "b", "Running", Some(t), t),
            pod("crowd2", "b", "Running", Some(t), t),
        ];
        assert!(names(&pick_for_deletion(&pods, 1))[0].starts_with("crowd"));
    }

    #[test]
    fn terminating_and_finished_pods_are_not_active() {
        let t = "2026-01-01T00:00:00Z";
        let running = pod("r", "a", "Running", Some(t), t);
        assert!(is_active(&running));
        let done = pod("d", "a", "Succeeded", None, t);
        assert!(!is_active(&done));
        let failed = pod("f", "a", "Failed", None, t);
        assert!(!is_active(&failed));
        let mut deleting = (*running).clone();
        deleting.metadata.deletion_timestamp = deleting.metadata.creation_timestamp.clone();
        assert!(!is_active(&deleting));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod(
            "p",
            "a",
            "Running",
            Some("2026-01-01T00:00:00Z"),
            "2026-01-01T00:00:00Z",
        );
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_available(&p, 0, at("2026-01-01T00:00:00Z")));
        assert!(!is_available(&p, 10, at("2026-01-01T00:00:09Z")));
        assert!(is_available(&p, 10, at("2026-01-01T00:00:10Z")));
        let not_ready = pod("q", "a", "Running", None, "2026-01-01T00:00:00Z");
        assert!(!is_available(&not_ready, 0, at("2026-01-02T00:00:00Z")));
    }
}
