//! One reconcile of one Deployment: claim its ReplicaSets, find or create
//! the new one, scale, prune history, and write status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use super::util::*;
use super::{rollout, Ctx, Error, Outcome};
use crate::hash::pod_template_hash;
use crate::reconcile::{self, claim, controller_of, Key, Owner, Requeue};

/// A Deployment's ReplicaSets, split into the one running its current
/// template (if any) and the rest.
#[derive(Debug, Default, Clone)]
pub struct Sets {
    /// The ReplicaSet whose template is the Deployment's.
    pub new: Option<ReplicaSet>,
    /// Every other owned ReplicaSet, oldest first.
    pub old: Vec<ReplicaSet>,
}

impl Sets {
    /// Old ones then the new one.
    pub fn all(&self) -> Vec<&ReplicaSet> {
        self.old.iter().chain(self.new.as_ref()).collect()
    }

    /// Old ones alone, as references.
    pub fn old_refs(&self) -> Vec<&ReplicaSet> {
        self.old.iter().collect()
    }
}

/// The state of one reconcile: the Deployment as last written, and the
/// numbers its strategy resolves to.
pub struct Sync<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) key: Key,
    pub(crate) d: Deployment,
    pub(crate) surge: i32,
    pub(crate) unavailable: i32,
}

/// Reconcile the Deployment named by `key`.
pub(crate) async fn reconcile(ctx: Arc<Ctx>, key: Key) -> Outcome {
    let Some(d) = ctx.deployments.get(&key.object_ref()) else {
        return Ok(Requeue::Never);
    };
    let strategy = |source| Error::Strategy {
        key: key.clone(),
        source,
    };
    let surge = max_surge(&d).map_err(strategy)?;
    let unavailable = max_unavailable(&d).map_err(strategy)?;
    let mut s = Sync {
        ctx: &ctx,
        key: key.clone(),
        d: (*d).clone(),
        surge,
        unavailable,
    };
    s.run().await
}

impl Sync<'_> {
    fn api_error(&self, action: &'static str) -> impl Fn(kube::Error) -> Error + '_ {
        move |source| Error::Api {
            key: self.key.clone(),
            action,
            source,
        }
    }

    fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), &self.key.namespace)
    }

    fn status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    async fn run(&mut self) -> Outcome {
        let sel = self
            .d
            .spec
            .as_ref()
            .map(|s| reconcile::selector(&s.selector));
        let Some(sel) = sel.filter(|s| !s.is_empty() && !s.matches_nothing()) else {
            // Kubernetes refuses to act on an empty selector: it would
            // select every pod in the namespace.
            return self.observe_generation_only().await;
        };
        let rss = self.claim_replicasets(&sel).await?;
        if reconcile::is_deleting(&self.d.metadata) {
            let sets = self.split(rss);
            self.sync_status(&sets).await?;
            return Ok(Requeue::Never);
        }
        self.check_paused_conditions().await?;
        if paused(&self.d) || self.is_scaling_event(&rss).await? {
            return self.sync(rss).await;
        }
        if is_recreate(&self.d) {
            rollout::recreate(self, rss).await
        } else {
            rollout::rolling(self, rss).await
        }
    }

    async fn observe_generation_only(&mut self) -> Outcome {
        let mut status = self.status();
        if status.observed_generation < self.d.metadata.generation {
            status.observed_generation = self.d.metadata.generation;
            self.write_status(status).await?;
        }
        Ok(Requeue::Never)
    }

    /// Adopt and release ReplicaSets like Kubernetes' ControllerRefManager.
    async fn claim_replicasets(&self, sel: &reconcile::Selector) -> Result<Vec<ReplicaSet>, Error> {
        let ns = self.key.namespace.clone();
        let candidates = self
            .ctx
            .replicasets
            .state_filter(|rs| rs.metadata.namespace.as_deref() == Some(ns.as_str()));
        let client = self.ctx.client.clone();
        let owned = claim(
            |ns| Api::<ReplicaSet>::namespaced(client.clone(), ns),
            &Owner::of(&self.d),
            sel,
            candidates,
        )
        .await
        .map_err(self.api_error("claiming replicasets"))?;
        Ok(owned.into_iter().map(|rs| (*rs).clone()).collect())
    }

    /// Split into new and old without touching anything.
    pub(crate) fn split(&self, mut rss: Vec<ReplicaSet>) -> Sets {
        rss.sort_by(by_creation);
        let new_at = rss.iter().position(|rs| equal_ignore_hash(&self.d, rs));
        let new = new_at.map(|i| rss.remove(i));
        Sets { new, old: rss }
    }

    /// Find the new ReplicaSet, bring its revision and annotations up to
    /// date, or create it when asked (Kubernetes'
    /// `getAllReplicaSetsAndSyncRevision`).
    pub(crate) async fn sets(&mut self, rss: Vec<ReplicaSet>, create: bool) -> Result<Sets, Error> {
        let mut sets = self.split(rss);
        let next_revision = sets.old.iter().map(revision).max().unwrap_or(0) + 1;
        sets.new = match sets.new.take() {
            Some(rs) => Some(self.sync_existing_new(rs, next_revision).await?),
            None if create => Some(self.create_new(&sets, next_revision).await?),
            None => None,
        };
        Ok(sets)
    }

    async fn sync_existing_new(
        &mut self,
        rs: ReplicaSet,
        next_revision: i64,
    ) -> Result<ReplicaSet, Error> {
        let mut copy = rs.clone();
        let annotations_changed =
            set_new_rs_annotations(&self.d, &mut copy, next_revision, true, self.surge);
        let min_ready = min_ready_seconds(&self.d);
        let min_ready_changed = copy
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
            != min_ready;
        if annotations_changed || min_ready_changed {
            let patch = json!({
                "metadata": {"resourceVersion": rs.metadata.resource_version, "annotations": copy.metadata.annotations},
                "spec": {"minReadySeconds": min_ready},
            });
            copy = self
                .rs_api()
                .patch(
                    rs.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(self.api_error("updating the new replicaset"))?;
        }
        self.set_deployment_revision(revision(&copy)).await?;
        let mut status = self.status();
        if progress_deadline(&self.d).is_some() && condition(&status, "Progressing").is_none() {
            let msg = format!("Found new replica set {:?}", name(&copy));
            set_condition(
                &mut status,
                new_condition("Progressing", "True", "FoundNewReplicaSet", msg),
            );
            self.write_status(status).await?;
        }
        Ok(copy)
    }

    async fn create_new(&mut self, sets: &Sets, next_revision: i64) -> Result<ReplicaSet, Error> {
        let mut rs = self.new_replicaset();
        let replicas = {
            let mut all = sets.all();
            all.push(&rs);
            new_rs_new_replicas(&self.d, &all, &rs).map_err(|source| Error::Strategy {
                key: self.key.clone(),
                source,
            })?
        };
        if let Some(spec) = rs.spec.as_mut() {
            spec.replicas = Some(replicas);
        }
        set_new_rs_annotations(&self.d, &mut rs, next_revision, false, self.surge);
        let rs_name = name(&rs).to_string();
        let (created, existed) = match self.rs_api().create(&PostParams::default(), &rs).await {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                (self.adopt_existing_or_collide(&rs_name).await?, true)
            }
            Err(source) => {
                if progress_deadline(&self.d).is_some() {
                    let mut status = self.status();
                    let msg = format!("Failed to create new replica set {rs_name:?}: {source}");
                    set_condition(
                        &mut status,
                        new_condition("Progressing", "False", "ReplicaSetCreateError", msg),
                    );
                    self.write_status(status).await?;
                }
                return Err(Error::Api {
                    key: self.key.clone(),
                    action: "creating the new replicaset",
                    source,
                });
            }
        };
        self.set_deployment_revision(next_revision).await?;
        if !existed && progress_deadline(&self.d).is_some() {
            let mut status = self.status();
            let msg = format!("Created new replica set {rs_name:?}");
            set_condition(
                &mut status,
                new_condition("Progressing", "True", "NewReplicaSetCreated", msg),
            );
            self.write_status(status).await?;
        }
        Ok(created)
    }

    /// The name is taken: if by our own ReplicaSet for this template (a
    /// stale cache), use it; otherwise bump `collisionCount` so the next
    /// attempt hashes differently.
    async fn adopt_existing_or_collide(&mut self, rs_name: &str) -> Result<ReplicaSet, Error> {
        let existing = self
            .rs_api()
            .get(rs_name)
            .await
            .map_err(self.api_error("reading the existing replicaset"))?;
        let ours = controller_of(&existing.metadata)
            .is_some_and(|c| Some(&c.uid) == self.d.metadata.uid.as_ref());
        if ours && equal_ignore_hash(&self.d, &existing) {
            return Ok(existing);
        }
        let mut status = self.status();
        let count = status.collision_count.unwrap_or(0).saturating_add(1);
        status.collision_count = Some(count);
        self.write_status(status).await?;
        Err(Error::HashCollision {
            key: self.key.clone(),
            name: rs_name.into(),
            count,
        })
    }

    /// The new ReplicaSet for the current template, at 0 replicas.
    fn new_replicaset(&self) -> ReplicaSet {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&spec.template, collision);
        let mut template = spec.template.clone();
        let tm = template.metadata.get_or_insert_with(Default::default);
        tm.labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", self.key.name)),
                namespace: Some(self.key.namespace.clone()),
                labels: tm.labels.clone(),
                owner_references: Some(vec![Owner::of(&self.d).reference()]),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        }
    }

    /// Set the Deployment's revision annotation if it differs.
    async fn set_deployment_revision(&mut self, rev: i64) -> Result<(), Error> {
        let rev = rev.to_string();
        let current = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        if current == Some(&rev) {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        let updated = Api::<Deployment>::namespaced(self.ctx.client.clone(), &self.key.namespace)
            .patch(
                &self.key.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(self.api_error("setting the revision annotation"))?;
        self.d.metadata = updated.metadata;
        Ok(())
    }

    /// Write the status subresource and keep the written copy.
    pub(crate) async fn write_status(&mut self, status: DeploymentStatus) -> Result<(), Error> {
        let patch = json!({"status": status});
        let updated = Api::<Deployment>::namespaced(self.ctx.client.clone(), &self.key.namespace)
            .patch_status(
                &self.key.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(self.api_error("updating status"))?;
        self.d.status = updated.status;
        Ok(())
    }

    /// Scale a ReplicaSet and stamp the scaling annotations; returns the
    /// updated ReplicaSet and whether its size changed.
    pub(crate) async fn scale_rs(
        &self,
        rs: &ReplicaSet,
        to: i32,
    ) -> Result<(ReplicaSet, bool), Error> {
        let r = replicas(&self.d);
        let size_changed = rs_replicas(rs) != to;
        if !size_changed && !replicas_annotations_need_update(rs, r, r + self.surge) {
            return Ok((rs.clone(), false));
        }
        // The resourceVersion makes a decision taken on a stale cache fail
        // with a conflict instead of landing.
        let patch = json!({
            "metadata": {"resourceVersion": rs.metadata.resource_version, "annotations": {
                DESIRED_REPLICAS: r.to_string(), MAX_REPLICAS: (r + self.surge).to_string()}},
            "spec": {"replicas": to},
        });
        let updated = self
            .rs_api()
            .patch(name(rs), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(self.api_error("scaling a replicaset"))?;
        Ok((updated, size_changed))
    }

    /// A scaling event: an active ReplicaSet was sized for another
    /// replica count (Kubernetes' `isScalingEvent`).
    async fn is_scaling_event(&mut self, rss: &[ReplicaSet]) -> Result<bool, Error> {
        let sets = self.sets(rss.to_vec(), false).await?;
        let r = replicas(&self.d);
        Ok(sets.all().into_iter().filter(|rs| is_active(rs)).any(|rs| {
            rs.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_REPLICAS))
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|desired| desired != r)
        }))
    }

    /// Scale only (paused, or a replica change): no rollout step.
    async fn sync(&mut self, rss: Vec<ReplicaSet>) -> Outcome {
        let mut sets = self.sets(rss, false).await?;
        self.scale(&mut sets).await?;
        if paused(&self.d) {
            self.cleanup(&sets).await?;
        }
        self.sync_status(&sets).await?;
        Ok(Requeue::Never)
    }

    /// Bring the ReplicaSets' sizes in line with `replicas` (Kubernetes'
    /// `scale`): the only active one takes all; a saturated new one lets the
    /// old go; otherwise a rolling Deployment spreads the change
    /// proportionally, largest ReplicaSets first.
    pub(crate) async fn scale(&mut self, sets: &mut Sets) -> Result<(), Error> {
        let r = replicas(&self.d);
        if let Some(target) = self.active_or_latest(sets) {
            let rs = target.clone();
            let (updated, _) = self.scale_rs(&rs, r).await?;
            replace(sets, updated);
            return Ok(());
        }
        if sets.new.as_ref().is_some_and(|n| is_saturated(&self.d, n)) {
            for rs in sets.old.clone() {
                if rs_replicas(&rs) != 0 {
                    let (updated, _) = self.scale_rs(&rs, 0).await?;
                    replace(sets, updated);
                }
            }
            return Ok(());
        }
        if is_recreate(&self.d) {
            return Ok(());
        }
        self.scale_proportionally(sets).await
    }

    /// Kubernetes' `FindActiveOrLatest`: the one ReplicaSet with replicas,
    /// or the newest when none has any; `None` when several have.
    fn active_or_latest<'s>(&self, sets: &'s Sets) -> Option<&'s ReplicaSet> {
        let active: Vec<&ReplicaSet> = sets.all().into_iter().filter(|rs| is_active(rs)).collect();
        match active.len() {
            0 => sets
                .new
                .as_ref()
                .or_else(|| sets.old.iter().max_by(|a, b| by_creation(a, b))),
            1 => Some(active[0]),
            _ => None,
        }
    }

    async fn scale_proportionally(&mut self, sets: &mut Sets) -> Result<(), Error> {
        let r = replicas(&self.d);
        let mut active: Vec<ReplicaSet> = sets
            .all()
            .into_iter()
            .filter(|rs| is_active(rs))
            .cloned()
            .collect();
        let current: i32 = active.iter().map(rs_replicas).sum();
        let allowed = if r > 0 { r + self.surge } else { 0 };
        let to_add = allowed - current;
        if to_add > 0 {
            // Largest first, newer first among equals.
            active.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(b, a))
            });
        } else {
            active.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(a, b))
            });
        }
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
        for rs in &active {
            let p = if to_add != 0 {
                proportion(&self.d, rs, to_add, added, self.surge)
            } else {
                0
            };
            added += p;
            sizes.push(rs_replicas(rs) + p);
        }
        if let Some(first) = sizes.first_mut() {
            *first = (*first + to_add - added).max(0);
        }
        for (rs, size) in active.iter().zip(sizes) {
            let (updated, _) = self.scale_rs(rs, size).await?;
            replace(sets, updated);
        }
        Ok(())
    }

    /// Delete the oldest old ReplicaSets with no pods beyond
    /// `revisionHistoryLimit` (Kubernetes' `cleanupDeployment`).
    pub(crate) async fn cleanup(&self, sets: &Sets) -> Result<(), Error> {
        let limit = revision_history_limit(&self.d).max(0) as usize;
        let mut cleanable: Vec<&ReplicaSet> = sets
            .old
            .iter()
            .filter(|rs| !reconcile::is_deleting(&rs.metadata))
            .collect();
        if cleanable.len() <= limit {
            return Ok(());
        }
        cleanable.sort_by(|a, b| by_revision(a, b));
        let excess = cleanable.len() - limit;
        for rs in cleanable.into_iter().take(excess) {
            let status = rs.status.clone().unwrap_or_default();
            let observed =
                status.observed_generation.unwrap_or(0) >= rs.metadata.generation.unwrap_or(0);
            if status.replicas != 0 || rs_replicas(rs) != 0 || !observed {
                continue;
            }
            match self
                .rs_api()
                .delete(name(rs), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(Error::Api {
                        key: self.key.clone(),
                        action: "deleting an old replicaset",
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Status from the ReplicaSets (Kubernetes' `calculateStatus`).
    pub(crate) fn calculate_status(&self, sets: &Sets) -> DeploymentStatus {
        let all = sets.all();
        let available = available_total(&all);
        let total = spec_total(&all);
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: Some(actual_total(&all)),
            updated_replicas: Some(actual_total(&sets.new.iter().collect::<Vec<_>>())),
            ready_replicas: Some(ready_total(&all)),
            available_replicas: Some(available),
            unavailable_replicas: Some((total - available).max(0)),
            collision_count: self.d.status.as_ref().and_then(|s| s.collision_count),
            conditions: self.d.status.as_ref().and_then(|s| s.conditions.clone()),
            terminating_replicas: None,
        };
        let cond = if available >= replicas(&self.d) - self.unavailable {
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            )
        } else {
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            )
        };
        set_condition(&mut status, cond);
        status
    }

    /// Write the calculated status if it changed (no Progressing update).
    async fn sync_status(&mut self, sets: &Sets) -> Result<(), Error> {
        let status = self.calculate_status(sets);
        if same(&status, &self.status()) {
            return Ok(());
        }
        self.write_status(status).await
    }

    /// Status plus the Progressing condition (Kubernetes'
    /// `syncRolloutStatus`); requeues a stuck rollout for its deadline.
    pub(crate) async fn sync_rollout_status(&mut self, sets: &Sets) -> Outcome {
        let mut status = self.calculate_status(sets);
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut status, "Progressing");
        }
        let current = condition(&status, "Progressing").cloned();
        let complete = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
        let rs_name = sets.new.as_ref().map(name).unwrap_or_default().to_string();
        if deadline.is_some() && !complete {
            if is_complete(&self.d, &status) {
                let msg = format!("ReplicaSet {rs_name:?} has successfully progressed.");
                set_condition(
                    &mut status,
                    new_condition("Progressing", "True", "NewReplicaSetAvailable", msg),
                );
            } else if is_progressing(&self.d, &status) {
                let msg = format!("ReplicaSet {rs_name:?} is progressing.");
                let mut cond = new_condition("Progressing", "True", "ReplicaSetUpdated", msg);
                if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
                    cond.last_transition_time = cur.last_transition_time.clone();
                }
                // Progress moves lastUpdateTime even if the reason holds.
                remove_condition(&mut status, "Progressing");
                set_condition(&mut status, cond);
            } else if timed_out(&self.d, &status) {
                let msg = format!("ReplicaSet {rs_name:?} has timed out progressing.");
                set_condition(
                    &mut status,
                    new_condition("Progressing", "False", "ProgressDeadlineExceeded", msg),
                );
            }
        }
        if !same(&status, &self.status()) {
            self.write_status(status.clone()).await?;
        }
        Ok(requeue_stuck(&self.d, &status))
    }
}

/// Whether the rollout has not progressed within its deadline (Kubernetes'
/// `DeploymentTimedOut`).
fn timed_out(d: &Deployment, status: &DeploymentStatus) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = condition(status, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some("NewReplicaSetAvailable") => false,
        Some("ProgressDeadlineExceeded") => true,
        _ => c.last_update_time.as_ref().is_some_and(|t| {
            t.0.checked_add(SignedDuration::from_secs(i64::from(deadline)))
                .is_ok_and(|end| end < Timestamp::now())
        }),
    }
}

/// When a rollout that is neither complete nor timed out must be looked at
/// again so its deadline is noticed (Kubernetes' `requeueStuckDeployment`).
fn requeue_stuck(d: &Deployment, status: &DeploymentStatus) -> Requeue {
    let (Some(deadline), Some(c)) = (progress_deadline(d), condition(status, "Progressing")) else {
        return Requeue::Never;
    };
    if is_complete(d, status) || timed_out(d, status) {
        return Requeue::Never;
    }
    let Some(updated) = c.last_update_time.as_ref() else {
        return Requeue::Never;
    };
    let end = updated
        .0
        .checked_add(SignedDuration::from_secs(i64::from(deadline)))
        .unwrap_or(updated.0);
    let wait = end.duration_since(Timestamp::now());
    if wait.is_negative() {
        Requeue::After(Duration::from_secs(1))
    } else {
        Requeue::After(wait.unsigned_abs() + Duration::from_millis(100))
    }
}

/// Statuses equal as they would be stored.
fn same(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// A ReplicaSet's name.
pub(crate) fn name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or_default()
}

/// Put an updated ReplicaSet back in its place.
pub(crate) fn replace(sets: &mut Sets, updated: ReplicaSet) {
    let uid = updated.metadata.uid.clone();
    if let Some(n) = sets.new.as_mut().filter(|n| n.metadata.uid == uid) {
        *n = updated;
    } else if let Some(o) = sets.old.iter_mut().find(|o| o.metadata.uid == uid) {
        *o = updated;
    }
}

impl Sync<'_> {
    /// Say whether the Deployment is paused or resumed, as a Progressing
    /// condition of status Unknown (Kubernetes' `checkPausedConditions`).
    async fn check_paused_conditions(&mut self) -> Result<(), Error> {
        if progress_deadline(&self.d).is_none() {
            return Ok(());
        }
        let mut status = self.status();
        let reason = condition(&status, "Progressing").and_then(|c| c.reason.clone());
        if reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return Ok(());
        }
        let paused_cond = reason.as_deref() == Some("DeploymentPaused");
        let cond = match (paused(&self.d), paused_cond) {
            (true, false) => new_condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
            ),
            (false, true) => new_condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
            ),
            _ => return Ok(()),
        };
        set_condition(&mut status, cond);
        self.write_status(status).await
    }
}
