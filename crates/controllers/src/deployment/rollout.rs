//! The two rollout strategies, one step per reconcile.
//!
//! RollingUpdate (Kubernetes' `rolloutRolling`): grow the new ReplicaSet
//! into the room maxSurge leaves, then shrink old ones as far as
//! maxUnavailable allows (unhealthy replicas first), and repeat as pods
//! become available. Recreate (`rolloutRecreate`): scale every old
//! ReplicaSet to zero, wait until none of their pods runs, then scale the
//! new one to `replicas`.

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::sync::{replace, Sets, Sync};
use super::util::*;
use super::{Error, Outcome};

/// One RollingUpdate step.
pub(crate) async fn rolling(s: &mut Sync<'_>, rss: Vec<ReplicaSet>) -> Outcome {
    let mut sets = s.sets(rss, true).await?;
    if reconcile_new(s, &mut sets).await? || reconcile_old(s, &mut sets).await? {
        return s.sync_rollout_status(&sets).await;
    }
    if is_complete(&s.d, &s.d.status.clone().unwrap_or_default()) {
        s.cleanup(&sets).await?;
    }
    s.sync_rollout_status(&sets).await
}

/// Scale the new ReplicaSet up into the surge room (or down if it has more
/// than `replicas`). Returns whether it was scaled.
async fn reconcile_new(s: &mut Sync<'_>, sets: &mut Sets) -> Result<bool, Error> {
    let Some(new) = sets.new.clone() else {
        return Ok(false);
    };
    let r = replicas(&s.d);
    let want = if rs_replicas(&new) > r {
        r
    } else {
        new_rs_new_replicas(&s.d, &sets.all(), &new).map_err(|source| Error::Strategy {
            key: s.key.clone(),
            source,
        })?
    };
    if rs_replicas(&new) == want {
        return Ok(false);
    }
    let (updated, scaled) = s.scale_rs(&new, want).await?;
    replace(sets, updated);
    Ok(scaled)
}

/// Scale old ReplicaSets down as far as availability allows (Kubernetes'
/// `reconcileOldReplicaSets`). Returns whether any was scaled.
async fn reconcile_old(s: &mut Sync<'_>, sets: &mut Sets) -> Result<bool, Error> {
    let old_count = spec_total(&sets.old_refs());
    if old_count == 0 {
        return Ok(false);
    }
    let all_count = spec_total(&sets.all());
    let min_available = replicas(&s.d) - s.unavailable;
    let new_unavailable = sets.new.as_ref().map_or(0, |n| {
        rs_replicas(n)
            - n.status
                .as_ref()
                .and_then(|st| st.available_replicas)
                .unwrap_or(0)
    });
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    let cleaned = cleanup_unhealthy(s, sets, max_scaled_down).await?;
    let scaled = scale_down_old(s, sets).await?;
    Ok(cleaned + scaled > 0)
}

/// Old ReplicaSets in creation order, oldest first (their indices).
fn old_by_creation(sets: &Sets) -> Vec<ReplicaSet> {
    let mut old: Vec<ReplicaSet> = sets
        .old
        .iter()
        .filter(|rs| is_active(rs))
        .cloned()
        .collect();
    old.sort_by(by_creation);
    old
}

/// Remove replicas that are not available from old ReplicaSets first:
/// they serve nobody, so dropping them costs no availability.
async fn cleanup_unhealthy(s: &mut Sync<'_>, sets: &mut Sets, max: i32) -> Result<i32, Error> {
    let mut total = 0;
    for rs in old_by_creation(sets) {
        if total >= max {
            break;
        }
        let available = rs
            .status
            .as_ref()
            .and_then(|st| st.available_replicas)
            .unwrap_or(0);
        let unhealthy = rs_replicas(&rs) - available;
        if unhealthy <= 0 {
            continue;
        }
        let down = (max - total).min(unhealthy);
        let (updated, _) = s.scale_rs(&rs, rs_replicas(&rs) - down).await?;
        replace(sets, updated);
        total += down;
    }
    Ok(total)
}

/// Scale old ReplicaSets down while more than `replicas - maxUnavailable`
/// pods stay available, oldest first (Kubernetes'
/// `scaleDownOldReplicaSetsForRollingUpdate`).
async fn scale_down_old(s: &mut Sync<'_>, sets: &mut Sets) -> Result<i32, Error> {
    let min_available = replicas(&s.d) - s.unavailable;
    let available = available_total(&sets.all());
    if available <= min_available {
        return Ok(0);
    }
    let target = available - min_available;
    let mut total = 0;
    for rs in old_by_creation(sets) {
        if total >= target {
            break;
        }
        let down = rs_replicas(&rs).min(target - total);
        let (updated, _) = s.scale_rs(&rs, rs_replicas(&rs) - down).await?;
        replace(sets, updated);
        total += down;
    }
    Ok(total)
}

/// One Recreate step.
pub(crate) async fn recreate(s: &mut Sync<'_>, rss: Vec<ReplicaSet>) -> Outcome {
    let mut sets = s.sets(rss, false).await?;
    let mut scaled_down = false;
    for rs in sets.old.clone().into_iter().filter(is_active) {
        let (updated, scaled) = s.scale_rs(&rs, 0).await?;
        replace(&mut sets, updated);
        scaled_down |= scaled;
    }
    if scaled_down || old_pods_running(s, &sets) {
        return s.sync_rollout_status(&sets).await;
    }
    if sets.new.is_none() {
        let rss = sets.all().into_iter().cloned().collect();
        sets = s.sets(rss, true).await?;
    }
    if let Some(new) = sets.new.clone() {
        let (updated, _) = s.scale_rs(&new, replicas(&s.d)).await?;
        replace(&mut sets, updated);
    }
    if is_complete(&s.d, &s.d.status.clone().unwrap_or_default()) {
        s.cleanup(&sets).await?;
    }
    s.sync_rollout_status(&sets).await
}

/// Whether any pod of an old ReplicaSet still exists and has not finished
/// (Kubernetes' `oldPodsRunning`); terminating pods count, so the new
/// pods never run beside the old ones.
fn old_pods_running(s: &Sync<'_>, sets: &Sets) -> bool {
    if actual_total(&sets.old_refs()) > 0 {
        return true;
    }
    let old_uids: Vec<&str> = sets
        .old
        .iter()
        .filter_map(|rs| rs.metadata.uid.as_deref())
        .collect();
    let ns = s.key.namespace.as_str();
    !s.ctx
        .pods
        .state_filter(|p| {
            let phase = p.status.as_ref().and_then(|st| st.phase.as_deref());
            p.metadata.namespace.as_deref() == Some(ns)
                && !matches!(phase, Some("Succeeded" | "Failed"))
                && crate::reconcile::controller_of(&p.metadata)
                    .is_some_and(|o| old_uids.contains(&o.uid.as_str()))
        })
        .is_empty()
}
