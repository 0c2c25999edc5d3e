//! Remembering this controller's own slice writes until the watch cache has
//! seen them.
//!
//! The controller plans from the cache. Right after it created a slice, the
//! cache may not have it yet; planning then would create a second one for
//! the same pods. So every write is recorded here with the resourceVersion
//! the API server returned, every delete with the slice's name, and a
//! Service is only planned again once the cache holds at least those
//! versions and none of the deleted slices. The watch event that brings a
//! write into the cache queues the Service again, so nothing waits long.
//!
//! A slice written and then deleted by someone else before the cache saw
//! the write never shows that version: its deletion event settles the
//! write instead ([`Tracker::observe_deleted`]). Should an expectation
//! still never be met (the deletion arrived before the write was
//! recorded), it lapses after [`PENDING_TTL`], as Kubernetes'
//! controller expectations do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::reconcile::Key;

/// What the cache must show of one slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The slice at this resourceVersion or later.
    Written(u64),
    /// No slice of that name.
    Deleted,
}

/// How long a write may go unseen before it is no longer waited for.
pub const PENDING_TTL: Duration = Duration::from_secs(15);

type Pending = HashMap<Key, HashMap<String, (Expect, Instant)>>;

/// The slice writes not yet seen in the cache, per Service.
pub struct Tracker {
    pending: Mutex<Pending>,
    ttl: Duration,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::with_ttl(PENDING_TTL)
    }
}

fn version(slice: &EndpointSlice) -> Option<u64> {
    slice.metadata.resource_version.as_deref()?.parse().ok()
}

impl Tracker {
    /// A tracker whose expectations lapse after `ttl`.
    pub fn with_ttl(ttl: Duration) -> Tracker {
        Tracker {
            pending: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Every update is a single insert or remove: a panic leaves it whole.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expect(&self, key: &Key, name: String, expect: Expect) {
        self.lock()
            .entry(key.clone())
            .or_default()
            .insert(name, (expect, Instant::now()));
    }

    /// Record a created or updated slice as the API server returned it.
    pub fn written(&self, key: &Key, slice: &EndpointSlice) {
        let (Some(name), Some(rv)) = (slice.metadata.name.clone(), version(slice)) else {
            return;
        };
        self.expect(key, name, Expect::Written(rv));
    }

    /// Record a deleted slice.
    pub fn deleted(&self, key: &Key, name: &str) {
        self.expect(key, name.to_string(), Expect::Deleted);
    }

    /// A slice of the Service was deleted (the watch says so): whatever was
    /// expected of it is settled, since the cache no longer has it.
    pub fn observe_deleted(&self, key: &Key, slice: &EndpointSlice) {
        let Some(name) = slice.metadata.name.as_deref() else {
            return;
        };
        let mut all = self.lock();
        if let Some(pending) = all.get_mut(key) {
            pending.remove(name);
            if pending.is_empty() {
                all.remove(key);
            }
        }
    }

    /// Whether the cached slices of the Service show every write recorded
    /// for it; what they show is forgotten.
    pub fn caught_up(&self, key: &Key, cached: &[&EndpointSlice]) -> bool {
        let mut all = self.lock();
        let Some(pending) = all.get_mut(key) else {
            return true;
        };
        let ttl = self.ttl;
        pending.retain(|name, (expect, since)| {
            if since.elapsed() >= ttl {
                tracing::debug!(%key, slice = %name, "stopped waiting to see a slice write");
                return false;
            }
            let seen = cached
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name.as_str()));
            let shown = match (*expect, seen) {
                (Expect::Deleted, seen) => seen.is_none(),
                (Expect::Written(_), None) => false,
                // A version that is not a number cannot be ordered: trust it.
                (Expect::Written(rv), Some(s)) => version(s).is_none_or(|v| v >= rv),
            };
            !shown
        });
        let done = pending.is_empty();
        if done {
            all.remove(key);
        }
        done
    }

    /// Forget a Service whose slices are all gone.
    pub fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn slice(name: &str, rv: &str) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints: vec![],
            ports: None,
        }
    }

    fn key() -> Key {
        Key {
            namespace: "default".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn a_write_is_pending_until_the_cache_has_that_version() {
        let t = Tracker::default();
        t.written(&key(), &slice("web-a", "10"));
        assert!(!t.caught_up(&key(), &[]), "not in the cache yet");
        assert!(
            !t.caught_up(&key(), &[&slice("web-a", "9")]),
            "an older copy"
        );
        assert!(t.caught_up(&key(), &[&slice("web-a", "12")]));
        // Forgotten once seen: a later deletion by someone else is not waited for.
        assert!(t.caught_up(&key(), &[]));
    }

    #[test]
    fn a_written_slice_deleted_before_the_cache_saw_it_stops_blocking() {
        let t = Tracker::default();
        t.written(&key(), &slice("web-a", "10"));
        t.observe_deleted(&key(), &slice("web-a", "11"));
        assert!(t.caught_up(&key(), &[]));
    }

    #[test]
    fn an_expectation_never_met_lapses() {
        let t = Tracker::with_ttl(Duration::from_millis(20));
        t.written(&key(), &slice("web-a", "10"));
        assert!(!t.caught_up(&key(), &[]));
        std::thread::sleep(Duration::from_millis(30));
        assert!(t.caught_up(&key(), &[]));
    }

    #[test]
    fn a_delete_is_pending_while_the_cache_still_has_the_slice() {
        let t = Tracker::default();
        t.deleted(&key(), "web-a");
        assert!(!t.caught_up(&key(), &[&slice("web-a", "3")]));
        assert!(t.caught_up(&key(), &[&slice("web-b", "4")]));
    }
}
