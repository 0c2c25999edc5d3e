//! The `pod-template-hash`: a short, stable name for a pod template.
//!
//! Kubernetes names a Deployment's ReplicaSets `DEPLOY-<hash>` and labels
//! their pods `pod-template-hash=<hash>`, so pods of different revisions never
//! share a selector. The hash is FNV-1a (32 bit) over the template, followed
//! by `status.collisionCount` (as 8 little-endian bytes) when it is set, so a
//! collision can be escaped by bumping the count. The 32-bit sum is printed in
//! decimal and every digit mapped into the "safe" alphabet of consonants and
//! digits Kubernetes uses for generated names (no vowels, no `0 1 3`), which is
//! why real hashes look like `7c5ddbdf54`.
//!
//! Kubernetes feeds its hasher a Go-specific dump of the template; skiff feeds
//! it the template's JSON with sorted keys. The values therefore differ from a
//! real cluster's, but they are as stable, and only stability matters: the
//! hash is compared with itself, never with Kubernetes'.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The alphabet of Kubernetes' `rand.SafeEncodeString`.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// 32-bit FNV-1a.
#[derive(Debug, Clone, Copy)]
pub struct Fnv32a(u32);

impl Default for Fnv32a {
    fn default() -> Self {
        Fnv32a(0x811c_9dc5)
    }
}

impl Fnv32a {
    /// Feed bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    /// The hash of everything fed so far.
    pub fn sum32(&self) -> u32 {
        self.0
    }
}

/// Map every byte of `s` into the safe alphabet (Kubernetes'
/// `rand.SafeEncodeString`).
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// A template as JSON with what a round trip through Kubernetes' API loses
/// removed: nulls, empty strings, empty objects and empty lists. Clients
/// written in Go drop those when they send a template back (`kubectl
/// rollout undo` sends `resources: {}` for a container that had none), and
/// skiff's API server stores templates as given, so without this the same
/// template could hash and compare differently. Zeros and `false` stay:
/// `runAsUser: 0` means root, not "unset".
pub fn canonical_template(template: &PodTemplateSpec) -> serde_json::Value {
    let mut v = serde_json::to_value(template).unwrap_or_default();
    prune_empty(&mut v);
    v
}

/// Remove empty values recursively; says whether `v` itself is now empty.
fn prune_empty(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => {
            for item in items.iter_mut() {
                prune_empty(item);
            }
            items.is_empty()
        }
        Value::Object(map) => {
            map.retain(|_, item| !prune_empty(item));
            map.is_empty()
        }
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The `pod-template-hash` of a template and the Deployment's collision count.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // serde_json's maps are sorted, so equal templates give equal bytes.
    let json = canonical_template(template).to_string();
    let mut h = Fnv32a::default();
    h.write(json.as_bytes());
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        // Kubernetes writes the count as a uint32 into an 8-byte buffer.
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h.write(&bytes);
    }
    safe_encode(&h.sum32().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    fn fnv(s: &[u8]) -> u32 {
        let mut h = Fnv32a::default();
        h.write(s);
        h.sum32()
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        // Go's hash/fnv New32a and the FNV reference test vectors.
        assert_eq!(fnv(b""), 0x811c_9dc5);
        assert_eq!(fnv(b"a"), 0xe40c_292c);
        assert_eq!(fnv(b"ab"), 0x4d25_05ca);
        assert_eq!(fnv(b"abc"), 0x1a47_e90b);
    }

    #[test]
    fn safe_encode_maps_digits_like_kubernetes() {
        // '0' is byte 48, 48 % 27 = 21 -> '4'; so decimal hashes only use
        // 4 5 6 7 8 9 b c d f, as real pod-template-hashes do.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        assert_eq!(safe_encode("a"), "v"); // 97 % 27 = 16
    }

    #[test]
    fn what_a_round_trip_drops_does_not_change_the_hash() {
        // kubectl rollout undo sends the old template back as Go serialises
        // it: creationTimestamp null, resources {}, no empty lists.
        let plain: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "args": []}]}
        }))
        .unwrap();
        let from_go: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "resources": {}, "workingDir": ""}]}
        }))
        .unwrap();
        assert_eq!(canonical_template(&plain), canonical_template(&from_go));
        assert_eq!(
            pod_template_hash(&plain, None),
            pod_template_hash(&from_go, None)
        );
        // A zero is a value: runAsUser 0 (root) differs from unset.
        let root: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25",
                     "securityContext": {"runAsUser": 0}}]}
        }))
        .unwrap();
        assert_ne!(canonical_template(&plain), canonical_template(&root));
    }

    #[test]
    fn the_hash_is_stable_and_changes_with_the_template_and_collisions() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}
        }))
        .unwrap();
        let a = pod_template_hash(&t, None);
        assert_eq!(a, pod_template_hash(&t.clone(), None));
        assert!(a.len() <= 10 && !a.is_empty());
        assert!(a.chars().all(|c| "456789bcdf".contains(c)));
        let mut t2 = t.clone();
        t2.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.26".into());
        assert_ne!(a, pod_template_hash(&t2, None));
        assert_ne!(a, pod_template_hash(&t, Some(1)));
        assert_ne!(
            pod_template_hash(&t, Some(1)),
            pod_template_hash(&t, Some(2))
        );
    }
}
