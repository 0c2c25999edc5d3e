//! A StatefulSet's revisions: ControllerRevision objects holding each pod
//! template the set has had, as Kubernetes keeps them (`kubectl rollout
//! history statefulset/x` lists them, `rollout undo` re-applies one).
//!
//! A revision is named `<set>-<hash>`, the hash being skiff's
//! `pod-template-hash` of the template (with `status.collisionCount`); pods
//! carry that name in their `controller-revision-hash` label. Its `data` is
//! the strategic-merge patch Kubernetes stores, `{"spec": {"template": {…,
//! "$patch": "replace"}}}`, and its `revision` number grows with each new
//! (or re-applied) template.

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::json;

use crate::hash::pod_template_hash;
use crate::reconcile::Owner;

/// The set's template now.
pub fn template(set: &StatefulSet) -> PodTemplateSpec {
    set.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// The name of the revision for the set's current template.
pub fn update_revision_name(set: &StatefulSet) -> String {
    let collisions = set.status.as_ref().and_then(|s| s.collision_count);
    format!(
        "{}-{}",
        set.metadata.name.as_deref().unwrap_or_default(),
        pod_template_hash(&template(set), collisions)
    )
}

/// The ControllerRevision recording the set's template as `name`, number
/// `revision`.
pub fn revision_object(set: &StatefulSet, name: &str, revision: i64) -> ControllerRevision {
    let tmpl = template(set);
    let mut data = json!({"spec": {"template": tmpl}});
    data["spec"]["template"]["$patch"] = json!("replace");
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: set.metadata.namespace.clone(),
            labels: tmpl.metadata.and_then(|m| m.labels),
            owner_references: Some(vec![Owner::of(set).reference()]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// The pod template a revision recorded.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// The names of the oldest revisions to delete so that at most `limit`
/// revisions not `in_use` remain (revisions in use are always kept).
pub fn beyond_history(
    revisions: &[std::sync::Arc<ControllerRevision>],
    limit: i32,
    in_use: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut idle: Vec<&ControllerRevision> = revisions
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| !in_use(r.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    idle.sort_by_key(|r| r.revision);
    let excess = idle
        .len()
        .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
    idle.into_iter()
        .take(excess)
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;

    fn set(image: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": image}]}},
            }
        }))
        .unwrap()
    }

    #[test]
    fn revision_names_follow_the_template() {
        let a = update_revision_name(&set("x:1"));
        assert!(a.starts_with("web-"));
        assert_eq!(a, update_revision_name(&set("x:1")));
        assert_ne!(a, update_revision_name(&set("x:2")));
        let mut collided = set("x:1");
        collided.status =
            Some(serde_json::from_value(json!({"replicas": 0, "collisionCount": 1})).unwrap());
        assert_ne!(a, update_revision_name(&collided));
    }

    #[test]
    fn history_keeps_the_newest_idle_revisions_and_everything_in_use() {
        let rev = |name: &str, n: i64| std::sync::Arc::new(revision_object(&set("x:1"), name, n));
        let revs = [
            rev("web-a", 1),
            rev("web-b", 2),
            rev("web-c", 3),
            rev("web-d", 4),
        ];
        // web-a is old but a pod still runs it; web-d is the update revision.
        let in_use = |n: &str| n == "web-a" || n == "web-d";
        assert_eq!(beyond_history(&revs, 1, in_use), ["web-b"]);
        assert_eq!(beyond_history(&revs, 0, in_use), ["web-b", "web-c"]);
        assert!(beyond_history(&revs, 10, in_use).is_empty());
    }

    #[test]
    fn a_revision_stores_the_template_as_kubernetes_patches_it() {
        let s = set("x:1");
        let rev = revision_object(&s, "web-abc", 3);
        assert_eq!(rev.revision, 3);
        let data = &rev.data.as_ref().unwrap().0;
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            rev.metadata.owner_references.as_ref().unwrap()[0].kind,
            "StatefulSet"
        );
        assert_eq!(template_of(&rev).unwrap(), template(&s));
        let empty = ControllerRevision { data: None, ..rev };
        assert!(template_of(&empty).is_none());
    }
}
