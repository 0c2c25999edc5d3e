//! What the ReplicaSet controller has asked for but not yet seen in its
//! cache (Kubernetes' `ControllerExpectations`).
//!
//! A create returns before the watch delivers the new pod. Without this, a
//! reconcile that runs in between counts too few pods and creates again,
//! overshooting. So each ReplicaSet remembers the pods it created (by name)
//! and deleted (by UID) until the cache shows them; while any are
//! outstanding it does not create or delete. Entries expire after five
//! minutes, as Kubernetes' do, so a lost event cannot wedge a ReplicaSet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::reconcile::Key;

/// How long an expectation may stay unmet before it is dropped.
pub const EXPECTATION_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Default, Debug)]
struct Pending {
    /// Names of pods created but not yet in the cache.
    creates: HashMap<String, Instant>,
    /// UIDs (with names) of pods deleted but still in the cache un-terminated.
    deletes: HashMap<String, (String, Instant)>,
}

/// Outstanding creates and deletes per ReplicaSet.
#[derive(Default, Debug)]
pub struct Expectations {
    by_rs: Mutex<HashMap<Key, Pending>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Pending>> {
        self.by_rs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember a pod this ReplicaSet created.
    pub fn created(&self, rs: &Key, pod_name: String) {
        self.lock()
            .entry(rs.clone())
            .or_default()
            .creates
            .insert(pod_name, Instant::now());
    }

    /// Remember a pod this ReplicaSet is about to delete.
    pub fn deleting(&self, rs: &Key, uid: String, name: String) {
        self.lock()
            .entry(rs.clone())
            .or_default()
            .deletes
            .insert(uid, (name, Instant::now()));
    }

    /// Forget a delete that did not happen.
    pub fn delete_failed(&self, rs: &Key, uid: &str) {
        if let Some(p) = self.lock().get_mut(rs) {
            p.deletes.remove(uid);
        }
    }

    /// Forget everything about a ReplicaSet that is gone.
    pub fn forget(&self, rs: &Key) {
        self.lock().remove(rs);
    }

    /// Drop what the cache now shows (or what expired) and say whether
    /// nothing is outstanding, i.e. whether the ReplicaSet may act.
    pub fn satisfied(&self, rs: &Key, pods: &Store<Pod>) -> bool {
        let mut all = self.lock();
        let Some(p) = all.get_mut(rs) else {
            return true;
        };
        let now = Instant::now();
        let fresh = |at: &Instant| now.duration_since(*at) < EXPECTATION_TTL;
        p.creates.retain(|name, at| {
            fresh(at)
                && pods
                    .get(&ObjectRef::new(name).within(&rs.namespace))
                    .is_none()
        });
        p.deletes.retain(|uid, (name, at)| {
            fresh(at)
                && pods
                    .get(&ObjectRef::new(name).within(&rs.namespace))
                    .is_some_and(|pod| {
                        pod.metadata.uid.as_deref() == Some(uid)
                            && pod.metadata.deletion_timestamp.is_none()
                    })
        });
        let done = p.creates.is_empty() && p.deletes.is_empty();
        if done {
            all.remove(rs);
        }
        done
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn pod(name: &str, uid: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid},
        }))
        .unwrap()
    }

    fn key() -> Key {
        Key {
            namespace: "ns".into(),
            name: "rs".into(),
        }
    }

    #[test]
    fn creates_are_pending_until_the_cache_shows_the_pod() {
        // ControllerExpectations: no second create before the first is seen.
        let (reader, mut writer) = reflector::store::<Pod>();
        let e = Expectations::default();
        assert!(e.satisfied(&key(), &reader));
        e.created(&key(), "rs-abc".into());
        assert!(!e.satisfied(&key(), &reader));
        writer.apply_watcher_event(&Event::Apply(pod("rs-abc", "u1")));
        assert!(e.satisfied(&key(), &reader));
    }

    #[test]
    fn deletes_are_pending_until_the_pod_is_gone() {
        let (reader, mut writer) = reflector::store::<Pod>();
        writer.apply_watcher_event(&Event::Apply(pod("rs-abc", "u1")));
        let e = Expectations::default();
        e.deleting(&key(), "u1".into(), "rs-abc".into());
        assert!(!e.satisfied(&key(), &reader));
        writer.apply_watcher_event(&Event::Delete(pod("rs-abc", "u1")));
        assert!(e.satisfied(&key(), &reader));
    }

    #[test]
    fn a_failed_delete_is_not_waited_for() {
        let (reader, mut writer) = reflector::store::<Pod>();
        writer.apply_watcher_event(&Event::Apply(pod("rs-abc", "u1")));
        let e = Expectations::default();
        e.deleting(&key(), "u1".into(), "rs-abc".into());
        e.delete_failed(&key(), "u1");
        assert!(e.satisfied(&key(), &reader));
    }
}
