//! A StatefulSet pod's stable identity: its ordinal name, hostname,
//! subdomain, labels, and its "persistent" volumes.
//!
//! skiff serves no PersistentVolumeClaims, so each `volumeClaimTemplates`
//! entry becomes a node-local `hostPath` directory named the way
//! Kubernetes names the claim (`<template>-<set>-<ordinal>`):
//! `/var/lib/skiff/volumes/<namespace>/<template>-<set>-<ordinal>`, type
//! `DirectoryOrCreate`. A recreated pod gets the same directory back *if it
//! lands on the same node*; data does not follow a pod to another node.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{HostPathVolumeSource, Pod, PodTemplateSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::reconcile::Owner;

/// The label naming the pod (Services can select a single member by it).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label naming the ControllerRevision the pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Where the directories backing volumeClaimTemplates live on a node.
pub const VOLUME_ROOT: &str = "/var/lib/skiff/volumes";

/// The ordinal of a member pod named `<set>-<n>`; `None` for a pod that is
/// not a member (another name, or a number with leading zeros, which no
/// StatefulSet creates).
pub fn ordinal_of(set: &str, pod_name: &str) -> Option<i32> {
    let digits = pod_name.strip_prefix(set)?.strip_prefix('-')?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// The first ordinal (`spec.ordinals.start`, 0 by default).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0)
}

/// The pod the set runs at `ordinal`, made from `template` (the template
/// of the revision named `revision`).
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let name = format!("{set_name}-{ordinal}");
    let tm = template.metadata.clone().unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    let ns = set.metadata.namespace.clone().unwrap_or_default();
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for claim in claim_names(set) {
        let volume = claim_volume(&ns, &claim, &set_name, ordinal);
        match volumes.iter_mut().find(|v| v.name == claim) {
            Some(v) => *v = volume,
            None => volumes.push(volume),
        }
    }
    if volumes.is_empty() {
        spec.volumes = None;
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![Owner::of(set).reference()]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The names of the set's volumeClaimTemplates.
fn claim_names(set: &StatefulSet) -> Vec<String> {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.metadata.name.clone())
        .collect()
}

/// The hostPath volume that stands in for claim `<claim>-<set>-<ordinal>`.
pub fn claim_volume(namespace: &str, claim: &str, set: &str, ordinal: i32) -> Volume {
    Volume {
        name: claim.into(),
        host_path: Some(HostPathVolumeSource {
            path: format!("{VOLUME_ROOT}/{namespace}/{claim}-{set}-{ordinal}"),
            type_: Some("DirectoryOrCreate".into()),
        }),
        ..Volume::default()
    }
}

/// The revision a pod was made from (its `controller-revision-hash`).
pub fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l: &BTreeMap<String, String>| l.get(REVISION_LABEL))
        .map(String::as_str)
}

/// Running with its Ready condition True (Kubernetes' `isRunningAndReady`).
pub fn is_running_and_ready(pod: &Pod) -> bool {
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    running && crate::replicaset::pods::is_ready(pod)
}

/// Succeeded or Failed: such a pod is replaced.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    fn set() -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x",
                              "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                             "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]}
                },
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}, {"metadata": {"name": "logs"}}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn ordinals_parse_only_from_canonical_member_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webapp-1"), None);
        // `web-db-1` belongs to a set named `web-db`, not `web`.
        assert_eq!(ordinal_of("web", "web-db-1"), None);
        assert_eq!(ordinal_of("web", "web-99999999999"), None);
    }

    #[test]
    fn a_pod_has_the_stable_identity_kubernetes_gives_it() {
        let s = set();
        let p = new_pod(&s, &s.spec.clone().unwrap().template, "web-abc", 2);
        assert_eq!(p.metadata.name.as_deref(), Some("web-2"));
        let labels = p.metadata.labels.clone().unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels[REVISION_LABEL], "web-abc");
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let owner = &p.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("StatefulSet", "u1", Some(true))
        );
    }

    #[test]
    fn claim_templates_become_host_path_volumes_named_like_kubernetes_claims() {
        let s = set();
        let p = new_pod(&s, &s.spec.clone().unwrap().template, "r", 1);
        let volumes = p.spec.unwrap().volumes.unwrap();
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        // The template's own `data` volume is replaced, as a claim replaces it.
        assert_eq!(names, ["data", "cfg", "logs"]);
        let data = volumes[0].host_path.as_ref().unwrap();
        assert_eq!(data.path, "/var/lib/skiff/volumes/ns/data-web-1");
        assert_eq!(data.type_.as_deref(), Some("DirectoryOrCreate"));
        assert!(volumes[0].empty_dir.is_none());
        assert!(volumes[1].empty_dir.is_some());
    }

    #[test]
    fn a_pod_is_ready_only_when_running_and_ready() {
        let pod = |phase: &str, ready: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"},
                "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}))
            .unwrap()
        };
        assert!(is_running_and_ready(&pod("Running", "True")));
        assert!(!is_running_and_ready(&pod("Running", "False")));
        assert!(!is_running_and_ready(&pod("Pending", "True")));
        assert!(is_finished(&pod("Failed", "False")) && !is_finished(&pod("Running", "True")));
    }
}
