//! What a pod asks of a node, and what a node offers, as plain numbers.
//!
//! Quantities are parsed once, when a pod or node enters the cache, into
//! milli-units (`1` CPU → 1000, `1Ki` → 1 024 000), so filtering and scoring
//! are integer arithmetic. A pod's effective request follows Kubernetes:
//! - a container that sets a limit but no request for a resource requests
//!   its limit (the API server defaults it so);
//! - init containers run one at a time before the app containers, so the
//!   pod needs the larger of the biggest init container and the sum of the
//!   app containers; restartable ("sidecar") init containers keep running
//!   and add to both;
//! - `spec.overhead` (set from the RuntimeClass at admission) is added.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU a pod without a CPU request is assumed to use when spreading load
/// (Kubernetes' `DefaultMilliCPURequest`, 100m).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// Memory a pod without a memory request is assumed to use when spreading
/// load (Kubernetes' `DefaultMemoryRequest`, 200 MiB), in milli-bytes.
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024 * 1000;

/// An amount of each resource, in milli-units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Milli-CPUs.
    pub cpu: i64,
    /// Memory in milli-bytes.
    pub memory: i64,
    /// Every other resource (`ephemeral-storage`, extended resources).
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Read a resource list (`requests`, `allocatable`, `overhead`).
    /// Unparseable quantities count as zero: the API server has validated
    /// them, so this only matters for hand-made objects.
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            r.set(name, milli(q));
        }
        r
    }

    /// The amount of one named resource.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.cpu,
            "memory" => self.memory,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }

    fn set(&mut self, name: &str, v: i64) {
        match name {
            "cpu" => self.cpu = v,
            "memory" => self.memory = v,
            "pods" => {}
            other => {
                self.scalar.insert(other.to_string(), v);
            }
        }
    }

    /// Add another amount to this one.
    pub fn add(&mut self, o: &Resources) {
        self.cpu += o.cpu;
        self.memory += o.memory;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Take another amount from this one (a pod leaving its node).
    pub fn sub(&mut self, o: &Resources) {
        self.cpu -= o.cpu;
        self.memory -= o.memory;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Raise each resource to at least the other's amount.
    fn max_with(&mut self, o: &Resources) {
        self.cpu = self.cpu.max(o.cpu);
        self.memory = self.memory.max(o.memory);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

fn milli(q: &Quantity) -> i64 {
    apimachinery::validation::parse_quantity(&q.0)
        .ok()
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(0)
}

/// A container's requests, with limits standing in for missing requests.
fn container_requests(c: &Container) -> Resources {
    let empty = ResourceRequirements::default();
    let rr = c.resources.as_ref().unwrap_or(&empty);
    let mut r = Resources::from_list(rr.limits.as_ref());
    for (name, q) in rr.requests.iter().flatten() {
        r.set(name, milli(q));
    }
    r
}

/// The resources a pod needs on its node (see the module docs).
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut apps = Resources::default();
    for c in &spec.containers {
        apps.add(&container_requests(c));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let own = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&own);
            init_peak.max_with(&sidecars);
        } else {
            let mut during = own;
            during.add(&sidecars);
            init_peak.max_with(&during);
        }
    }
    apps.add(&sidecars);
    apps.max_with(&init_peak);
    apps.add(&Resources::from_list(spec.overhead.as_ref()));
    apps
}

/// The CPU and memory used when comparing nodes' load: a pod that requests
/// none counts as Kubernetes' defaults, so best-effort pods still spread.
pub fn non_zero_requests(r: &Resources) -> (i64, i64) {
    let cpu = if r.cpu == 0 { DEFAULT_MILLI_CPU } else { r.cpu };
    let mem = if r.memory == 0 {
        DEFAULT_MEMORY
    } else {
        r.memory
    };
    (cpu, mem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    const GI: i64 = 1024 * 1024 * 1024 * 1000;

    #[test]
    fn containers_requests_are_summed() {
        let p = pod(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "1"}}},
        ]}));
        let r = pod_requests(&p);
        assert_eq!(r.cpu, 1250);
        assert_eq!(r.memory, GI);
        assert_eq!(r.get("nvidia.com/gpu"), 1000);
    }

    #[test]
    fn limits_stand_in_for_missing_requests() {
        // Kubernetes defaults requests to limits, per resource.
        let p = pod(json!({"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "500m"}}},
        ]}));
        let r = pod_requests(&p);
        assert_eq!(r.cpu, 500);
        assert_eq!(r.memory, GI);
    }

    #[test]
    fn biggest_init_container_wins_over_smaller_app_sum() {
        let p = pod(json!({
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3"}}}],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "1"}}},
            ],
        }));
        let r = pod_requests(&p);
        assert_eq!(r.cpu, 3000, "max(init 3, apps 2)");
        assert_eq!(r.memory, GI);
    }

    #[test]
    fn sidecar_init_containers_add_to_the_app_sum() {
        let p = pod(json!({
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "1"}}},
            ],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
        }));
        // apps + sidecar = 1.5; init runs beside the sidecar = 1.5.
        assert_eq!(pod_requests(&p).cpu, 1500);
    }

    #[test]
    fn overhead_is_added() {
        let p = pod(json!({
            "overhead": {"cpu": "10m", "memory": "16Mi"},
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
        }));
        let r = pod_requests(&p);
        assert_eq!(r.cpu, 110);
        assert_eq!(r.memory, 16 * 1024 * 1024 * 1000);
    }

    #[test]
    fn best_effort_pod_counts_as_defaults_for_spreading() {
        assert_eq!(
            non_zero_requests(&Resources::default()),
            (DEFAULT_MILLI_CPU, DEFAULT_MEMORY)
        );
        let p = pod(json!({"containers": [{"name": "a"}]}));
        assert_eq!(pod_requests(&p), Resources::default());
    }
}
