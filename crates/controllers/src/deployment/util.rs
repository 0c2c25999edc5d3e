//! The Deployment controller's arithmetic, free of I/O: defaults, surge and
//! unavailability, revisions, template identity, the proportional split
//! of a scaling event, and conditions. Each mirrors a helper of
//! Kubernetes' `deployment/util` and is named after it.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use crate::hash::canonical_template;

/// The label that keeps each revision's pods apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Revision of a ReplicaSet (and of its Deployment: the newest).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a re-adopted ReplicaSet had.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Replicas plus surge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations never copied onto its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// Why an int-or-percent could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntOrPercentError {
    /// Neither an integer nor `N%`.
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
}

/// `spec.replicas`, defaulting to 1.
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// The replicas a ReplicaSet asks for.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// `spec.minReadySeconds`.
pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `spec.revisionHistoryLimit`, defaulting to 10.
pub fn revision_history_limit(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
}

/// `spec.progressDeadlineSeconds` (default 600); `None` when it is
/// MaxInt32, which Kubernetes reads as "no deadline".
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    let s = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    (s != i32::MAX).then_some(s)
}

/// Whether the Deployment is paused.
pub fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// Whether the strategy is Recreate (RollingUpdate is the default).
pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// Scale an int-or-percent against `total` (Kubernetes'
/// `GetScaledValueFromIntOrPercent`): percentages round up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, IntOrPercentError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or(IntOrPercentError::NotAPercentage)?;
            let num = pct * i64::from(total);
            let v = if round_up {
                (num + 99).div_euclid(100)
            } else {
                num.div_euclid(100)
            };
            Ok(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
        }
    }
}

/// Surge and unavailability for `desired` replicas (Kubernetes'
/// `ResolveFenceposts`): surge rounds up, unavailability down, and if both
/// come out 0 one pod may be unavailable so the rollout can move.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), IntOrPercentError> {
    let quarter = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&quarter), desired, true)?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&quarter), desired, false)?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> Result<(i32, i32), IntOrPercentError> {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
}

/// How many pods above `replicas` a rolling update may run (0 for
/// Recreate).
pub fn max_surge(d: &Deployment) -> Result<i32, IntOrPercentError> {
    if is_recreate(d) {
        return Ok(0);
    }
    Ok(fenceposts(d)?.0)
}

/// How many of `replicas` may be unavailable during a rolling update (0 for
/// Recreate), never more than `replicas`.
pub fn max_unavailable(d: &Deployment) -> Result<i32, IntOrPercentError> {
    if is_recreate(d) || replicas(d) == 0 {
        return Ok(0);
    }
    Ok(fenceposts(d)?.1.min(replicas(d)))
}

/// The template without its `pod-template-hash` label, in canonical JSON
/// ([`canonical_template`]), for comparing a Deployment's template with its
/// ReplicaSets' (Kubernetes' `EqualIgnoreHash`).
fn template_identity(t: Option<&PodTemplateSpec>) -> serde_json::Value {
    let mut t = t.cloned().unwrap_or_default();
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove(POD_TEMPLATE_HASH);
            if l.is_empty() {
                m.labels = None;
            }
        }
    }
    canonical_template(&t)
}

/// Whether the ReplicaSet runs the Deployment's current template.
pub fn equal_ignore_hash(d: &Deployment, rs: &ReplicaSet) -> bool {
    template_identity(d.spec.as_ref().map(|s| &s.template))
        == template_identity(rs.spec.as_ref().and_then(|s| s.template.as_ref()))
}

/// A ReplicaSet's revision; 0 when unset or unreadable.
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Oldest first, then by name (Kubernetes' `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let t = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Lowest revision first (Kubernetes' `ReplicaSetsByRevision`).
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

/// Sum of `spec.replicas`.
pub fn spec_total(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_replicas(rs)).sum()
}

/// Sum of `status.replicas` (pods that exist).
pub fn actual_total(rss: &[&ReplicaSet]) -> i32 {
    rss.iter()
        .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
        .sum()
}

/// Sum of `status.readyReplicas`.
pub fn ready_total(rss: &[&ReplicaSet]) -> i32 {
    rss.iter()
        .map(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })
        .sum()
}

/// Sum of `status.availableReplicas`.
pub fn available_total(rss: &[&ReplicaSet]) -> i32 {
    rss.iter()
        .map(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
        })
        .sum()
}

/// Whether a ReplicaSet still wants or has pods.
pub fn is_active(rs: &ReplicaSet) -> bool {
    rs_replicas(rs) > 0
}

/// Replicas for the new ReplicaSet of a rolling update (Kubernetes'
/// `NewRSNewReplicas`): grow into the surge room left by all ReplicaSets,
/// never past `replicas`.
pub fn new_rs_new_replicas(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: &ReplicaSet,
) -> Result<i32, IntOrPercentError> {
    if is_recreate(d) {
        return Ok(replicas(d));
    }
    let current = spec_total(all);
    let max_total = replicas(d) + max_surge(d)?;
    if current >= max_total {
        return Ok(rs_replicas(new));
    }
    let up = (max_total - current).min(replicas(d) - rs_replicas(new));
    Ok(rs_replicas(new) + up)
}

/// Whether the ReplicaSet's scaling annotations differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// The annotations a ReplicaSet should carry for the Deployment (Kubernetes'
/// `SetNewReplicaSetAnnotations`): the Deployment's own (bar the
/// controller's), the revision if it grew (remembering the old one in the
/// history), and on a fresh ReplicaSet the scaling annotations. Returns
/// whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let mut changed = false;
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || ann.get(k) == Some(v) {
            continue;
        }
        ann.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = ann.get(REVISION).cloned().unwrap_or_default();
    if old.parse::<i64>().unwrap_or(0) < new_revision {
        ann.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if !old.is_empty() {
            let history = match ann.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old,
            };
            ann.insert(REVISION_HISTORY.into(), history);
        }
    }
    if !exists {
        let r = replicas(d);
        ann.insert(DESIRED_REPLICAS.into(), r.to_string());
        ann.insert(MAX_REPLICAS.into(), (r + max_surge).to_string());
        changed = true;
    }
    changed
}

/// How many replicas a ReplicaSet gains (or loses) in a proportional
/// scaling event (Kubernetes' `GetProportion`).
pub fn proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32, max_surge: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = rs_fraction(d, rs, max_surge);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// The ReplicaSet's share of the new size, from the size it was scaled for
/// (its `max-replicas` annotation).
fn rs_fraction(d: &Deployment, rs: &ReplicaSet, max_surge: i32) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = f64::from(replicas(d) + max_surge);
    let annotated = annotation(rs, MAX_REPLICAS)
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * deployment_replicas / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

/// Whether the new ReplicaSet alone satisfies the Deployment (Kubernetes'
/// `IsSaturated`).
pub fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let desired = annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok());
    let available = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    rs_replicas(rs) == replicas(d) && desired == Some(replicas(d)) && available == replicas(d)
}

/// Whether the rollout is done (Kubernetes' `DeploymentComplete`).
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    s.updated_replicas.unwrap_or(0) == r
        && s.replicas.unwrap_or(0) == r
        && s.available_replicas.unwrap_or(0) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether the rollout moved since the last status (Kubernetes'
/// `DeploymentProgressing`).
pub fn is_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new_old < old_old
        || new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// The condition of a type, if present.
pub fn condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// A fresh condition stamped now.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> DeploymentCondition {
    let now = Time(Timestamp::now());
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Set a condition as Kubernetes' `SetDeploymentCondition` does: the same
/// status and reason is no change at all; the same status keeps its
/// transition time.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = condition(s, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(s, &c.type_.clone());
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

/// Drop a condition type.
pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn percentages_round_like_kubernetes() {
        // The rolling-update defaults on 10 replicas: surge 25% -> 3 (up),
        // unavailable 25% -> 2 (down).
        assert_eq!(scaled_value(&pct("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&pct("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&pct("25%"), 1, true), Ok(1));
        assert_eq!(scaled_value(&pct("25%"), 1, false), Ok(0));
        assert_eq!(scaled_value(&pct("100%"), 7, false), Ok(7));
        assert_eq!(scaled_value(&pct("0%"), 7, true), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(4), 10, true), Ok(4));
        assert_eq!(
            scaled_value(&pct("abc"), 10, true),
            Err(IntOrPercentError::NotAPercentage)
        );
        assert_eq!(
            scaled_value(&pct("25"), 10, true),
            Err(IntOrPercentError::NotAPercentage)
        );
    }

    #[test]
    fn fenceposts_never_both_zero() {
        // ResolveFenceposts: 0 and 0 would deadlock, so one may be unavailable.
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 5),
            Ok((0, 1))
        );
        assert_eq!(
            resolve_fenceposts(Some(&pct("0%")), Some(&pct("10%")), 5),
            Ok((0, 1))
        );
        assert_eq!(resolve_fenceposts(None, None, 10), Ok((3, 2)));
        assert_eq!(resolve_fenceposts(None, None, 1), Ok((1, 0)));
    }

    fn deploy(spec: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": spec})).unwrap()
    }

    fn rset(replicas: i32, available: i32, max_ann: Option<i32>) -> ReplicaSet {
        let mut ann = serde_json::Map::new();
        if let Some(m) = max_ann {
            ann.insert(MAX_REPLICAS.into(), json!(m.to_string()));
        }
        serde_json::from_value(json!({
            "metadata": {"name": "rs", "annotations": ann},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "availableReplicas": available},
        }))
        .unwrap()
    }

    #[test]
    fn unavailable_is_capped_at_replicas_and_zero_for_recreate() {
        let d = deploy(json!({"replicas": 2, "selector": {}, "template": {},
            "strategy": {"rollingUpdate": {"maxUnavailable": 5}}}));
        assert_eq!(max_unavailable(&d), Ok(2));
        let r = deploy(
            json!({"replicas": 2, "selector": {}, "template": {}, "strategy": {"type": "Recreate"}}),
        );
        assert_eq!(max_unavailable(&r), Ok(0));
        assert_eq!(max_surge(&r), Ok(0));
    }

    #[test]
    fn new_rs_grows_into_the_surge_room() {
        // 10 replicas, surge 3: old has 10, new 0 -> new may reach 3.
        let d = deploy(json!({"replicas": 10, "selector": {}, "template": {}}));
        let old = rset(10, 10, None);
        let new = rset(0, 0, None);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(3));
        // Old scaled to 8: total 11 -> new may reach 5.
        let old = rset(8, 8, None);
        let new = rset(3, 3, None);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(5));
        // Never past replicas.
        let old = rset(0, 0, None);
        let new = rset(9, 9, None);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(10));
    }

    #[test]
    fn proportional_scaling_follows_the_max_replicas_annotation() {
        // Kubernetes' example: 10 replicas (+3 surge) mid-rollout, 8 old and
        // 5 new; scaled to 15 (surge 4 -> 19 allowed) — each grows by its share.
        let d = deploy(json!({"replicas": 15, "selector": {}, "template": {}}));
        let old = rset(8, 8, Some(13));
        let new = rset(5, 0, Some(13));
        let surge = max_surge(&d).unwrap();
        assert_eq!(surge, 4);
        let to_add = 19 - 13;
        let a = proportion(&d, &old, to_add, 0, surge);
        let b = proportion(&d, &new, to_add, a, surge);
        assert_eq!((a, b), (4, 2));
    }

    #[test]
    fn annotations_bump_the_revision_and_keep_history() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d", "annotations": {
                "kubernetes.io/change-cause": "v2", REVISION: "9",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 4, "selector": {}, "template": {}}
        }))
        .unwrap();
        let mut rs = rset(0, 0, None);
        assert!(set_new_rs_annotations(&d, &mut rs, 1, false, 1));
        let ann = rs.metadata.annotations.clone().unwrap();
        assert_eq!(ann[REVISION], "1");
        assert_eq!(ann["kubernetes.io/change-cause"], "v2");
        assert_eq!(ann[DESIRED_REPLICAS], "4");
        assert_eq!(ann[MAX_REPLICAS], "5");
        assert!(!ann.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert!(!set_new_rs_annotations(&d, &mut rs, 1, true, 1));
        // Re-adopted by a rollback: the next revision, the old one in history.
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true, 1));
        let ann = rs.metadata.annotations.unwrap();
        assert_eq!(ann[REVISION], "3");
        assert_eq!(ann[REVISION_HISTORY], "1");
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let d = deploy(
            json!({"selector": {}, "template": {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}),
        );
        let rs: ReplicaSet =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {"selector": {},
            "template": {"metadata": {"labels": {"app": "a", POD_TEMPLATE_HASH: "abc"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}))
            .unwrap();
        assert!(equal_ignore_hash(&d, &rs));
        // kubectl rollout undo's rendering of the same template.
        let undo = deploy(json!({"selector": {}, "template": {
            "metadata": {"creationTimestamp": null, "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i:1", "resources": {}}]}}}));
        assert!(equal_ignore_hash(&undo, &rs));
        let d2 = deploy(
            json!({"selector": {}, "template": {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i:2"}]}}}),
        );
        assert!(!equal_ignore_hash(&d2, &rs));
    }

    #[test]
    fn conditions_keep_transition_time_when_status_holds() {
        let mut s = DeploymentStatus::default();
        let mut first = new_condition("Progressing", "True", "NewReplicaSetCreated", "m".into());
        first.last_transition_time = Some(Time("2020-01-01T00:00:00Z".parse().unwrap()));
        set_condition(&mut s, first);
        set_condition(
            &mut s,
            new_condition("Progressing", "True", "ReplicaSetUpdated", "m".into()),
        );
        let c = condition(&s, "Progressing").unwrap();
        assert_eq!(c.reason.as_deref(), Some("ReplicaSetUpdated"));
        assert_eq!(
            c.last_transition_time.as_ref().unwrap().0.to_string(),
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
    }
}
