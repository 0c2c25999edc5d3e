//! A DaemonSet's revision history as ControllerRevisions, as Kubernetes
//! keeps it: what `kubectl rollout history daemonset` lists and `kubectl
//! rollout undo daemonset` patches back.
//!
//! Each distinct template is one ControllerRevision named `DS-HASH`
//! (the pods' `controller-revision-hash`), holding a patch that restores
//! the template and a revision number. Returning to an older template
//! (an undo) gives its ControllerRevision the next number instead of
//! creating a new one. Old revisions no pod uses any more are deleted
//! beyond `revisionHistoryLimit` (default 10).

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use super::nodes::REVISION_HASH_LABEL;
use crate::hash::canonical_template;
use crate::reconcile::{controller_of, Owner};

/// What to change in the history.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Create the current revision with this number.
    pub create: Option<i64>,
    /// Give the (older) current revision this number.
    pub renumber: Option<(String, i64)>,
    /// Delete these old revisions.
    pub delete: Vec<String>,
}

/// The ControllerRevision name of a DaemonSet revision.
pub fn revision_name(ds: &DaemonSet, hash: &str) -> String {
    format!("{}-{hash}", ds.metadata.name.as_deref().unwrap_or_default())
}

/// Decide what the history needs, from the DaemonSet's own revisions and
/// the hashes its live pods run.
pub fn plan(
    ds: &DaemonSet,
    hash: &str,
    revisions: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
) -> Changes {
    let name = revision_name(ds, hash);
    let max = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let mut changes = Changes::default();
    match revisions
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(&name))
    {
        None => changes.create = Some(max + 1),
        Some(r) if r.revision < max => changes.renumber = Some((name.clone(), max + 1)),
        Some(_) => {}
    }
    let in_use: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL))
        .map(|h| h.as_str())
        .collect();
    let mut old: Vec<&Arc<ControllerRevision>> = revisions
        .iter()
        .filter(|r| r.metadata.name.as_deref() != Some(&name))
        .filter(|r| {
            let h = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH_LABEL));
            h.is_none_or(|h| !in_use.contains(h.as_str()))
        })
        .collect();
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    if old.len() > limit {
        old.sort_by_key(|r| r.revision);
        let extra = old.len() - limit;
        changes.delete = old[..extra]
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect();
    }
    changes
}

/// The ControllerRevision for the DaemonSet's current template.
pub fn revision_for(ds: &DaemonSet, hash: &str, number: i64) -> ControllerRevision {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    let mut restore = canonical_template(&template);
    if let Some(t) = restore.as_object_mut() {
        // A strategic merge patch that swaps the whole template back.
        t.insert("$patch".into(), json!("replace"));
    }
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(ds, hash)),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![Owner::of(ds).reference()]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(json!({"spec": {"template": restore}}))),
        revision: number,
    }
}

/// The DaemonSet's own revisions among those cached.
pub fn owned_by(ds: &DaemonSet, all: Vec<Arc<ControllerRevision>>) -> Vec<Arc<ControllerRevision>> {
    let uid = ds.metadata.uid.as_deref();
    all.into_iter()
        .filter(|r| controller_of(&r.metadata).is_some_and(|c| Some(c.uid.as_str()) == uid))
        .collect()
}

/// Carry out the changes. A revision that already exists (the cache was
/// behind) or is already gone is not an error.
pub async fn apply(
    api: &Api<ControllerRevision>,
    ds: &DaemonSet,
    hash: &str,
    changes: Changes,
) -> Result<(), kube::Error> {
    let tolerated = |e: kube::Error, codes: &[u16]| match e {
        kube::Error::Api(s) if codes.contains(&s.code) => Ok(()),
        e => Err(e),
    };
    if let Some(n) = changes.create {
        if let Err(e) = api
            .create(&PostParams::default(), &revision_for(ds, hash, n))
            .await
        {
            tolerated(e, &[409])?;
        }
    }
    if let Some((name, n)) = changes.renumber {
        let patch = Patch::Merge(json!({"revision": n}));
        if let Err(e) = api.patch(&name, &PatchParams::default(), &patch).await {
            tolerated(e, &[404])?;
        }
    }
    for name in changes.delete {
        if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
            tolerated(e, &[404])?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;

    fn ds(limit: i32) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "uid": "u"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "revisionHistoryLimit": limit,
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        }))
        .unwrap()
    }

    fn rev(hash: &str, n: i64) -> Arc<ControllerRevision> {
        Arc::new(revision_for(&ds(10), hash, n))
    }

    fn pod(hash: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "p",
                "labels": {REVISION_HASH_LABEL: hash}}}))
            .unwrap(),
        )
    }

    #[test]
    fn a_new_template_gets_the_next_revision_number() {
        let c = plan(&ds(10), "h3", &[rev("h1", 1), rev("h2", 2)], &[]);
        assert_eq!(c.create, Some(3));
        assert_eq!(plan(&ds(10), "h1", &[], &[]).create, Some(1));
        // Unchanged: nothing to do.
        assert_eq!(
            plan(&ds(10), "h2", &[rev("h1", 1), rev("h2", 2)], &[]),
            Changes::default()
        );
    }

    #[test]
    fn an_undo_renumbers_the_old_revision() {
        // kubectl rollout undo: the template of revision 1 is back.
        let c = plan(&ds(10), "h1", &[rev("h1", 1), rev("h2", 2)], &[]);
        assert_eq!(c.create, None);
        assert_eq!(c.renumber, Some(("agent-h1".into(), 3)));
    }

    #[test]
    fn history_beyond_the_limit_goes_oldest_first_unless_pods_use_it() {
        let revs = [rev("h1", 1), rev("h2", 2), rev("h3", 3), rev("h4", 4)];
        let c = plan(&ds(1), "h4", &revs, &[]);
        assert_eq!(c.delete, ["agent-h1", "agent-h2"]);
        // A pod still runs h1 (OnDelete, or mid-rollout): it stays.
        let c = plan(&ds(1), "h4", &revs, &[pod("h1")]);
        assert_eq!(c.delete, ["agent-h2"]);
    }

    #[test]
    fn the_revision_restores_the_template_by_replacing_it() {
        let r = revision_for(&ds(10), "h1", 7);
        assert_eq!(r.revision, 7);
        assert_eq!(r.metadata.name.as_deref(), Some("agent-h1"));
        let labels = r.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "agent");
        assert_eq!(labels[REVISION_HASH_LABEL], "h1");
        let data = &r.data.as_ref().unwrap().0;
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            "x"
        );
    }
}
