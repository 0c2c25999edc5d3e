//! Service IPs and node ports, allocated by the API server at create time
//! as Kubernetes does.
//!
//! The allocation reads the Services that exist and picks the lowest free
//! address of the service range. Creates of Services are serialized by one
//! lock held until the Service is written, so two creates never get the
//! same address.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::error::{ApiError, ApiResult};
use crate::registry;
use crate::resources;
use crate::store::{Store, StoreError, WriteOp};

/// The service range: 10.96.0.0/16. `10.96.0.1` is the `kubernetes`
/// Service's.
pub const SERVICE_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(10, 96, 0, 0), 16);
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Held across a Service create so allocations do not race.
pub static ALLOCATION: Mutex<()> = Mutex::const_new(());

fn used(store: &dyn Store) -> ApiResult<(HashSet<Ipv4Addr>, HashSet<u16>)> {
    let r = resources::by_kind("", "v1", "Service")
        .ok_or_else(|| ApiError::internal("services not served"))?;
    let listing = store
        .list(&registry::prefix(r, None), None, None)
        .map_err(|e| ApiError::from_store(e, "services", ""))?;
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for s in listing.items {
        for ip in s.value["spec"]["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&s.value["spec"]["clusterIP"]))
        {
            if let Some(ip) = ip.as_str().and_then(|i| i.parse().ok()) {
                ips.insert(ip);
            }
        }
        for p in s.value["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(n) = p["nodePort"].as_u64() {
                ports.insert(n as u16);
            }
        }
    }
    Ok((ips, ports))
}

fn in_range(ip: Ipv4Addr) -> bool {
    let (net, bits) = SERVICE_NET;
    let mask = u32::MAX << (32 - bits);
    u32::from(ip) & mask == u32::from(net)
}

/// Give a new Service its cluster IP and node ports. The caller holds
/// [`ALLOCATION`] until the Service is stored.
pub fn allocate(store: &dyn Store, svc: &mut Value) -> ApiResult<()> {
    let ty = svc["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "ExternalName" {
        return Ok(());
    }
    let (used_ips, used_ports) = used(store)?;
    let name = registry::name_of(svc).to_string();
    match svc["spec"]["clusterIP"].as_str().unwrap_or("") {
        "None" => {
            svc["spec"]["clusterIPs"] = json!(["None"]);
        }
        "" => {
            let (net, bits) = SERVICE_NET;
            let size = 1u32 << (32 - bits);
            let base = u32::from(net);
            let ip = (2..size - 1)
                .map(|i| Ipv4Addr::from(base + i))
                .find(|ip| !used_ips.contains(ip))
                .ok_or_else(|| ApiError::internal("the service IP range is full"))?;
            svc["spec"]["clusterIP"] = json!(ip.to_string());
            svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
        }
        requested => {
            let ip: Ipv4Addr = requested.parse().map_err(|_| {
                invalid_ip(&name, requested, "must be a valid IPv4 address or \"None\"")
            })?;
            if !in_range(ip) {
                return Err(invalid_ip(
                    &name,
                    requested,
                    "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16",
                ));
            }
            if used_ips.contains(&ip) {
                return Err(invalid_ip(
                    &name,
                    requested,
                    "provided IP is already allocated",
                ));
            }
            svc["spec"]["clusterIPs"] = json!([requested]);
        }
    }
    if svc["spec"]["clusterIP"].as_str() != Some("None") {
        svc["spec"]["ipFamilies"] = json!(["IPv4"]);
        svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        let mut taken = used_ports;
        if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
            for p in ports {
                if p["nodePort"].as_u64().is_some() {
                    continue;
                }
                let port = NODE_PORTS
                    .clone()
                    .find(|n| !taken.contains(n))
                    .ok_or_else(|| ApiError::internal("the node port range is full"))?;
                taken.insert(port);
                p["nodePort"] = json!(port);
            }
        }
    }
    Ok(())
}

fn invalid_ip(name: &str, ip: &str, why: &str) -> ApiError {
    let msg = format!("spec.clusterIPs: Invalid value: [\"{ip}\"]: {why}");
    ApiError::invalid(
        "Service",
        "",
        name,
        format!("Service \"{name}\" is invalid: {msg}"),
        vec![json!({"reason": "FieldValueInvalid", "message": msg, "field": "spec.clusterIPs"})],
    )
}

/// The IngressClass of skiff's built-in gateway, the cluster's default
/// (so Ingresses that name no class are served, as with k3s's bundled
/// controller). Created when missing, never overwritten: a user may take
/// the default away by editing its annotation.
pub async fn ensure_ingress_class(store: &dyn Store) -> Result<(), StoreError> {
    let Some(r) = resources::by_kind("networking.k8s.io", "v1", "IngressClass") else {
        return Ok(());
    };
    let key = registry::key(r, None, "skiff");
    if store.get(&key)?.is_some() {
        return Ok(());
    }
    let mut obj = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "skiff", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "skiff.dev/gateway"},
    });
    registry::prepare_create(r, &mut obj);
    match store.write(WriteOp::Create { key, value: obj }).await {
        Ok(_) | Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::RedbStore;
    use crate::store::WriteOp;

    #[tokio::test]
    async fn allocates_lowest_free_ip_and_node_ports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(&dir.path().join("s.redb"), 100).expect("store");
        let mut a = json!({"metadata": {"name": "a", "namespace": "default"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        allocate(&store, &mut a).expect("allocate a");
        assert_eq!(a["spec"]["clusterIP"], "10.96.0.2");
        assert_eq!(a["spec"]["ports"][0]["nodePort"], 30000);
        store
            .write(WriteOp::Create {
                key: "/core/services/default/a".into(),
                value: a,
            })
            .await
            .expect("store a");
        let mut b = json!({"metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}});
        allocate(&store, &mut b).expect("allocate b");
        assert_eq!(b["spec"]["clusterIP"], "10.96.0.3");
        assert!(b["spec"]["ports"][0].get("nodePort").is_none());
        let mut dup = json!({"metadata": {"name": "c"}, "spec": {"clusterIP": "10.96.0.2"}});
        assert_eq!(allocate(&store, &mut dup).expect_err("taken").code, 422);
        let mut out = json!({"metadata": {"name": "d"}, "spec": {"clusterIP": "192.168.1.1"}});
        assert_eq!(
            allocate(&store, &mut out).expect_err("out of range").code,
            422
        );
        let mut headless = json!({"metadata": {"name": "e"}, "spec": {"clusterIP": "None"}});
        allocate(&store, &mut headless).expect("headless");
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }
}
