//! One step of a StatefulSet towards its spec, decided from its pods alone
//! (Kubernetes' `updateStatefulSet`), so the ordering rules are tested
//! without a server.
//!
//! - Members `start .. start+replicas` are made to exist first, lowest
//!   ordinal first. Under `OrderedReady` the step stops at the first member
//!   that is missing (it is created), finished (it is deleted, to be
//!   recreated), terminating, or not Running and Ready. Under `Parallel`
//!   every missing member is created at once.
//! - Then pods outside the range are deleted, highest ordinal first; one at
//!   a time, waiting for it to be gone, under `OrderedReady`.
//! - Then, for `RollingUpdate`, the highest member not at the update
//!   revision is deleted (it comes back at the update revision), down to the
//!   partition, one at a time, each waiting for the one above to be Ready.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::identity::{is_finished, is_running_and_ready, is_terminating, ordinal_of, revision_of};

/// Which revision's template a new pod is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// `status.currentRevision`: ordinals below the partition keep it.
    Current,
    /// The revision of the set's template now.
    Update,
}

/// What to do to the set's pods this step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the member with this ordinal.
    Create {
        /// Its ordinal.
        ordinal: i32,
        /// Which template to make it from.
        revision: Revision,
    },
    /// Delete this pod (by name, guarded by its UID).
    Delete {
        /// The pod's name.
        name: String,
        /// The pod's UID.
        uid: String,
    },
}

/// What the plan needs to know of the set.
#[derive(Debug, Clone)]
pub struct SetView {
    /// The set's name (pods are `<name>-<ordinal>`).
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.ordinals.start`.
    pub start: i32,
    /// `podManagementPolicy: Parallel`.
    pub parallel: bool,
    /// `updateStrategy.type: RollingUpdate` (else OnDelete).
    pub rolling: bool,
    /// `rollingUpdate.partition`: ordinals below `start + partition` stay at
    /// the current revision.
    pub partition: i32,
    /// The name of the current revision.
    pub current_revision: String,
    /// The name of the update revision.
    pub update_revision: String,
}

impl SetView {
    /// The revision a newly created member gets (Kubernetes'
    /// `newVersionedStatefulSetPod`): with RollingUpdate, ordinals below the
    /// partition are recreated at the current revision; otherwise (and with
    /// OnDelete) at the update revision.
    fn revision_for(&self, ordinal: i32) -> Revision {
        if self.rolling && ordinal < self.start.saturating_add(self.partition) {
            Revision::Current
        } else {
            Revision::Update
        }
    }

    fn end(&self) -> i32 {
        self.start.saturating_add(self.replicas.max(0))
    }
}

fn delete(pod: &Pod) -> Action {
    Action::Delete {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// The actions of one step, given the pods the set controls.
pub fn plan(set: &SetView, pods: &[Arc<Pod>]) -> Vec<Action> {
    let mut members: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in pods {
        let ordinal = ordinal_of(&set.name, p.metadata.name.as_deref().unwrap_or_default());
        match ordinal {
            Some(o) if o >= set.start && o < set.end() => {
                members.insert(o, p);
            }
            // A pod the set controls without a member name is condemned too.
            o => condemned.push((o.unwrap_or(-1), p)),
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut actions = Vec::new();
    if !create_members(set, &members, &mut actions) || (!actions.is_empty() && !set.parallel) {
        return actions;
    }
    for (_, p) in condemned {
        if is_terminating(p) {
            if !set.parallel {
                return actions;
            }
            continue;
        }
        actions.push(delete(p));
        if !set.parallel {
            return actions;
        }
    }
    if actions.is_empty() && set.rolling {
        roll(set, &members, &mut actions);
    }
    actions
}

/// Make every member exist; `false` when an OrderedReady set must wait.
fn create_members(set: &SetView, members: &BTreeMap<i32, &Pod>, actions: &mut Vec<Action>) -> bool {
    for ordinal in set.start..set.end() {
        let proceed = match members.get(&ordinal) {
            None => {
                actions.push(Action::Create {
                    ordinal,
                    revision: set.revision_for(ordinal),
                });
                false
            }
            // A finished member is replaced: deleted now, created next step.
            Some(p) if is_finished(p) && !is_terminating(p) => {
                actions.push(delete(p));
                false
            }
            Some(p) => is_running_and_ready(p) && !is_terminating(p),
        };
        if !proceed && !set.parallel {
            return false;
        }
    }
    true
}

/// Replace the highest member not at the update revision, down to the
/// partition, waiting for each replaced member to be Ready again.
fn roll(set: &SetView, members: &BTreeMap<i32, &Pod>, actions: &mut Vec<Action>) {
    let lowest = set.start.saturating_add(set.partition.max(0));
    for ordinal in (lowest..set.end()).rev() {
        let Some(p) = members.get(&ordinal) else {
            return;
        };
        if revision_of(p) != Some(set.update_revision.as_str()) && !is_terminating(p) {
            actions.push(delete(p));
            return;
        }
        if !is_running_and_ready(p) || is_terminating(p) {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    fn view(replicas: i32) -> SetView {
        SetView {
            name: "web".into(),
            replicas,
            start: 0,
            parallel: false,
            rolling: true,
            partition: 0,
            current_revision: "web-old".into(),
            update_revision: "web-new".into(),
        }
    }

    /// A pod `web-<ordinal>` at `revision`, Running and Ready or not.
    fn pod(ordinal: i32, revision: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("web-{ordinal}"), "uid": format!("u{ordinal}"),
                             "labels": {"controller-revision-hash": revision}},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .unwrap(),
        )
    }

    fn terminating(p: Arc<Pod>) -> Arc<Pod> {
        let mut p = (*p).clone();
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
        Arc::new(p)
    }

    fn create(ordinal: i32) -> Action {
        Action::Create {
            ordinal,
            revision: Revision::Update,
        }
    }

    fn del(ordinal: i32) -> Action {
        Action::Delete {
            name: format!("web-{ordinal}"),
            uid: format!("u{ordinal}"),
        }
    }

    #[test]
    fn ordered_ready_creates_one_member_after_the_previous_is_ready() {
        let v = view(3);
        assert_eq!(plan(&v, &[]), [create(0)]);
        // web-0 exists but is not Ready: wait.
        assert!(plan(&v, &[pod(0, "web-new", false)]).is_empty());
        assert_eq!(plan(&v, &[pod(0, "web-new", true)]), [create(1)]);
        // A gap is filled first: web-1 went missing while web-2 runs.
        assert_eq!(
            plan(&v, &[pod(0, "web-new", true), pod(2, "web-new", true)]),
            [create(1)]
        );
    }

    #[test]
    fn parallel_creates_and_deletes_everything_at_once() {
        let mut v = view(3);
        v.parallel = true;
        assert_eq!(
            plan(&v, &[pod(1, "web-new", false)]),
            [create(0), create(2)]
        );
        v.replicas = 1;
        let pods = [
            pod(0, "web-new", true),
            pod(1, "web-new", true),
            pod(2, "web-new", false),
        ];
        assert_eq!(plan(&v, &pods), [del(2), del(1)]);
    }

    #[test]
    fn ordered_scale_down_removes_the_highest_first_one_at_a_time() {
        let v = view(1);
        let pods = vec![
            pod(0, "web-new", true),
            pod(1, "web-new", true),
            pod(2, "web-new", true),
        ];
        assert_eq!(plan(&v, &pods), [del(2)]);
        // While web-2 terminates, web-1 waits.
        let pods = vec![
            pod(0, "web-new", true),
            pod(1, "web-new", true),
            terminating(pod(2, "web-new", true)),
        ];
        assert!(plan(&v, &pods).is_empty());
        // Scale down to zero also goes from the top.
        assert_eq!(
            plan(
                &view(0),
                &[pod(0, "web-new", true), pod(1, "web-new", true)]
            ),
            [del(1)]
        );
    }

    #[test]
    fn a_finished_member_is_replaced() {
        let mut failed = (*pod(0, "web-new", false)).clone();
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        assert_eq!(plan(&view(2), &[Arc::new(failed)]), [del(0)]);
    }

    #[test]
    fn rolling_update_goes_from_the_highest_ordinal_down_waiting_for_ready() {
        let v = view(3);
        let old = |o| pod(o, "web-old", true);
        assert_eq!(plan(&v, &[old(0), old(1), old(2)]), [del(2)]);
        // web-2 came back at the new revision but is not Ready yet: wait.
        assert!(plan(&v, &[old(0), old(1), pod(2, "web-new", false)]).is_empty());
        assert_eq!(
            plan(&v, &[old(0), old(1), pod(2, "web-new", true)]),
            [del(1)]
        );
        // Members are recreated at the update revision.
        assert_eq!(plan(&v, &[old(0), pod(2, "web-new", true)]), [create(1)]);
        let new = |o| pod(o, "web-new", true);
        assert!(plan(&v, &[new(0), new(1), new(2)]).is_empty());
    }

    #[test]
    fn the_partition_keeps_lower_ordinals_at_the_current_revision() {
        let mut v = view(3);
        v.partition = 2;
        let old = |o| pod(o, "web-old", true);
        assert_eq!(plan(&v, &[old(0), old(1), old(2)]), [del(2)]);
        assert!(plan(&v, &[old(0), old(1), pod(2, "web-new", true)]).is_empty());
        // A member below the partition is recreated at the current revision.
        assert_eq!(
            plan(&v, &[old(1), pod(2, "web-new", true)]),
            [Action::Create {
                ordinal: 0,
                revision: Revision::Current
            }]
        );
    }

    #[test]
    fn on_delete_never_deletes_for_an_update_and_recreates_at_the_update_revision() {
        let mut v = view(2);
        v.rolling = false;
        v.partition = 5;
        let old = |o| pod(o, "web-old", true);
        assert!(plan(&v, &[old(0), old(1)]).is_empty());
        assert_eq!(plan(&v, &[old(1)]), [create(0)]);
    }

    #[test]
    fn start_ordinal_shifts_the_members() {
        let mut v = view(2);
        v.start = 5;
        assert_eq!(plan(&v, &[]), [create(5)]);
        // web-0 is outside 5..7 and is condemned once 5 and 6 run.
        let pods = [
            pod(0, "web-new", true),
            pod(5, "web-new", true),
            pod(6, "web-new", true),
        ];
        assert_eq!(plan(&v, &pods), [del(0)]);
    }
}
