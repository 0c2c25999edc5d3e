//! Services as the node sees them: watched into local caches, and each
//! Service port resolved to the ready endpoints (`podIP:targetPort`) its
//! EndpointSlices list.
//!
//! Shared by the two node components that send traffic to Services: the
//! gateway ([`crate::gateway`], Ingress → Service in userspace) and the
//! service proxy ([`crate::proxy`], ClusterIP/NodePort → endpoint in the
//! kernel). Both must agree on which endpoints a Service port has, so the
//! rules live here once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::Notify;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Watch one kind into a cache, signalling `changed` after every event.
/// `who` names the watcher in the log when the watch has to retry.
pub fn reflect<K>(api: Api<K>, changed: Arc<Notify>, who: &'static str) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    reflect_selected(api, watcher::Config::default(), changed, who)
}

/// [`reflect`] for the objects `config` selects.
pub fn reflect_selected<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: Arc<Notify>,
    who: &'static str,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::debug!(error = %e, "{who} watch; retrying");
                continue;
            }
            changed.notify_one();
        }
    });
    reader
}

/// EndpointSlices grouped by the Service (`namespace`, `name`) they
/// belong to, so that resolving every Service of a cluster stays linear.
#[derive(Debug, Default)]
pub struct SliceIndex<'a> {
    /// namespace → Service name → slices.
    by_service: HashMap<&'a str, HashMap<&'a str, Vec<&'a EndpointSlice>>>,
}

impl<'a> SliceIndex<'a> {
    /// Group `slices` by their `kubernetes.io/service-name` label.
    pub fn new(slices: &'a [Arc<EndpointSlice>]) -> SliceIndex<'a> {
        let mut by_service: HashMap<&str, HashMap<&str, Vec<&EndpointSlice>>> = HashMap::new();
        for s in slices {
            let ns = s.metadata.namespace.as_deref().unwrap_or_default();
            let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            by_service
                .entry(ns)
                .or_default()
                .entry(svc.as_str())
                .or_default()
                .push(s);
        }
        SliceIndex { by_service }
    }

    /// The slices of the Service `ns/name`.
    pub fn of(&self, ns: &str, name: &str) -> &[&'a EndpointSlice] {
        self.by_service
            .get(ns)
            .and_then(|m| m.get(name))
            .map_or(&[], Vec::as_slice)
    }

    /// The ready endpoints of one port of `service`, sorted, without
    /// duplicates.
    pub fn ready_endpoints(&self, service: &Service, port: &ServicePort) -> Vec<SocketAddr> {
        let ns = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        ready_endpoints(port, self.of(ns, name).iter().copied())
    }
}

/// The ready endpoints of the Service port `sp` among `slices` (the
/// Service's own): each slice's port of the same name gives the number;
/// a slice that lacks it falls back to an integer `targetPort` (or the
/// port itself when there is none). Endpoints whose `ready` condition is
/// false are left out (unset counts as ready, as the API defines it).
pub fn ready_endpoints<'s>(
    sp: &ServicePort,
    slices: impl IntoIterator<Item = &'s EndpointSlice>,
) -> Vec<SocketAddr> {
    let want_name = sp.name.clone().unwrap_or_default();
    let want_proto = sp.protocol.as_deref().unwrap_or("TCP");
    let mut out = Vec::new();
    for slice in slices {
        let number = slice.ports.iter().flatten().find_map(|p| {
            let same = p.name.clone().unwrap_or_default() == want_name
                && p.protocol.as_deref().unwrap_or("TCP") == want_proto;
            same.then_some(p.port).flatten()
        });
        let number = number.or(match &sp.target_port {
            Some(IntOrString::Int(n)) => Some(*n),
            None => Some(sp.port),
            Some(IntOrString::String(_)) => None,
        });
        let Some(number) = number.and_then(|n| u16::try_from(n).ok()) else {
            continue;
        };
        for e in &slice.endpoints {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            for a in &e.addresses {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    out.push(SocketAddr::new(ip, number));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(name: &str, svc: &str, v: serde_json::Value) -> Arc<EndpointSlice> {
        let mut base = json!({"metadata": {"name": name, "namespace": "default",
            "labels": {SERVICE_NAME_LABEL: svc}}, "addressType": "IPv4"});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), v.as_object()) {
            b.extend(extra.clone());
        }
        Arc::new(serde_json::from_value(base).expect("slice"))
    }

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": v}),
        )
        .expect("service")
    }

    #[test]
    fn named_ports_take_each_slices_number_and_protocols_stay_apart() {
        let svc = service(json!({"ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns-tcp"}]}));
        let slices = [
            slice(
                "a",
                "web",
                json!({"ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}, {"name": "dns-tcp", "port": 5354, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.244.0.2"]}]}),
            ),
            slice(
                "b",
                "web",
                json!({"ports": [{"name": "dns", "port": 6000, "protocol": "UDP"}],
                "endpoints": [{"addresses": ["10.244.1.2"], "conditions": {"ready": true}},
                              {"addresses": ["10.244.1.3"], "conditions": {"ready": false}}]}),
            ),
            slice(
                "other",
                "db",
                json!({"ports": [{"name": "dns", "port": 1, "protocol": "UDP"}],
                "endpoints": [{"addresses": ["10.244.9.9"]}]}),
            ),
        ];
        let idx = SliceIndex::new(&slices);
        let ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default();
        let udp: Vec<String> = idx
            .ready_endpoints(&svc, &ports[0])
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(udp, ["10.244.0.2:5353", "10.244.1.2:6000"]);
        let tcp: Vec<String> = idx
            .ready_endpoints(&svc, &ports[1])
            .iter()
            .map(|a| a.to_string())
            .collect();
        // Slice b has no TCP port and dns-tcp's targetPort is a name: skipped.
        assert_eq!(tcp, ["10.244.0.2:5354"]);
    }
}
