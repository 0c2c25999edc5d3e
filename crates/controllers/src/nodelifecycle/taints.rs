//! The taint manager's decision for one pod: given its tolerations and its
//! node's NoExecute taints, may it stay, must it go now, or after how long?
//!
//! It follows Kubernetes' taint manager: each taint is matched by the first
//! toleration that tolerates it; a taint nothing tolerates evicts at once;
//! otherwise the pod may stay for the shortest `tolerationSeconds` among the
//! matching tolerations (forever if none of them sets it, at once if one
//! sets zero or less).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::health::{NOT_READY, UNREACHABLE};

/// What should happen to a pod on a tainted node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// It tolerates every NoExecute taint for good (or there are none).
    Never,
    /// It does not tolerate some taint, or only for zero seconds.
    Now,
    /// It tolerates them for this long after the taint manager saw them.
    After(Duration),
}

/// Whether `toleration` tolerates `taint` (Kubernetes' `ToleratesTaint`):
/// an empty effect matches every effect, an empty key with `Exists`
/// matches every key, and `Equal` (the default operator) compares values.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// The NoExecute toleration the API server's DefaultTolerationSeconds
/// admission gives pods for `key`, here for pods created without it.
fn default_toleration(key: &str, seconds: u64) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(i64::try_from(seconds).unwrap_or(i64::MAX)),
        value: None,
    }
}

/// Decide for a pod with `tolerations` on a node with `taints` (only the
/// NoExecute ones count). A pod lacking any toleration for `not-ready` or
/// `unreachable` is treated as tolerating them for `default_seconds`, as
/// if admission had defaulted it.
pub fn eviction_for(
    tolerations: &[Toleration],
    taints: &[Taint],
    default_seconds: u64,
) -> Eviction {
    let mut all = tolerations.to_vec();
    all.push(default_toleration(NOT_READY, default_seconds));
    all.push(default_toleration(UNREACHABLE, default_seconds));
    let mut shortest: Option<i64> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let Some(used) = all.iter().find(|t| tolerates(t, taint)) else {
            return Eviction::Now;
        };
        if let Some(s) = used.toleration_seconds {
            shortest = Some(shortest.map_or(s, |m| m.min(s)));
        }
    }
    match shortest {
        None => Eviction::Never,
        Some(s) if s <= 0 => Eviction::Now,
        Some(s) => Eviction::After(Duration::from_secs(s.unsigned_abs())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    fn tol(v: serde_json::Value) -> Vec<Toleration> {
        serde_json::from_value(v).unwrap()
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let t = taint("dedicated", "db", "NoExecute");
        let one = |v| tol(json!([v])).remove(0);
        assert!(tolerates(
            &one(json!({"key": "dedicated", "value": "db", "effect": "NoExecute"})),
            &t
        ));
        // Equal is the default operator and compares values.
        assert!(!tolerates(
            &one(json!({"key": "dedicated", "value": "web"})),
            &t
        ));
        assert!(tolerates(
            &one(json!({"key": "dedicated", "operator": "Exists"})),
            &t
        ));
        // An empty key with Exists tolerates everything.
        assert!(tolerates(&one(json!({"operator": "Exists"})), &t));
        assert!(!tolerates(
            &one(json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"})),
            &t
        ));
        assert!(!tolerates(
            &one(json!({"key": "other", "operator": "Exists"})),
            &t
        ));
        assert!(!tolerates(
            &one(json!({"key": "dedicated", "operator": "Near"})),
            &t
        ));
    }

    #[test]
    fn an_untolerated_no_execute_taint_evicts_at_once() {
        let taints = [taint("dedicated", "db", "NoExecute")];
        assert_eq!(eviction_for(&[], &taints, 300), Eviction::Now);
        // NoSchedule taints never evict.
        assert_eq!(
            eviction_for(&[], &[taint("x", "", "NoSchedule")], 300),
            Eviction::Never
        );
        assert_eq!(eviction_for(&[], &[], 300), Eviction::Never);
    }

    #[test]
    fn the_shortest_toleration_seconds_wins() {
        let taints = [
            taint(UNREACHABLE, "", "NoExecute"),
            taint("dedicated", "db", "NoExecute"),
        ];
        let t = tol(json!([
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
            {"key": "dedicated", "operator": "Exists", "tolerationSeconds": 60},
        ]));
        assert_eq!(
            eviction_for(&t, &taints, 300),
            Eviction::After(Duration::from_secs(2))
        );
        // Zero (or negative) seconds means now.
        let zero = tol(json!([{"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 0}]));
        assert_eq!(eviction_for(&zero, &taints[..1], 300), Eviction::Now);
        // Without tolerationSeconds a toleration lasts forever.
        let forever = tol(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_for(&forever, &taints, 300), Eviction::Never);
    }

    #[test]
    fn pods_without_the_default_tolerations_get_the_configured_default() {
        // DefaultTolerationSeconds: not-ready and unreachable for 300 s.
        let taints = [taint(NOT_READY, "", "NoExecute")];
        assert_eq!(
            eviction_for(&[], &taints, 300),
            Eviction::After(Duration::from_secs(300))
        );
        assert_eq!(
            eviction_for(&[], &taints, 5),
            Eviction::After(Duration::from_secs(5))
        );
        // The pod's own toleration comes first, even if longer.
        let own = tol(
            json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 900}]),
        );
        assert_eq!(
            eviction_for(&own, &taints, 5),
            Eviction::After(Duration::from_secs(900))
        );
    }
}
