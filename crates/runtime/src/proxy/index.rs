//! From Services and EndpointSlices to the list of service ports the
//! ruleset is rendered from. Pure: no I/O, deterministic order (so that
//! an unchanged cluster renders the same text and the reload is skipped).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::service::SliceIndex;

/// A transport protocol a Service port may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// From `ServicePort.protocol` (TCP when unset).
    pub fn parse(p: Option<&str>) -> Option<Proto> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The name nft knows it by.
    pub fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// One port of one Service, with everything its rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortRules {
    pub namespace: String,
    pub service: String,
    /// The port's name, or its number when it has none.
    pub port_name: String,
    pub proto: Proto,
    /// The Service port (`spec.ports[].port`).
    pub port: u16,
    /// The cluster IPs (IPv4 only: the table is `ip`).
    pub cluster_ips: Vec<Ipv4Addr>,
    /// `spec.externalIPs` and load-balancer ingress IPs: reached from
    /// outside, so masqueraded like NodePorts.
    pub external_ips: Vec<Ipv4Addr>,
    pub node_port: Option<u16>,
    /// Ready endpoints, sorted.
    pub endpoints: Vec<SocketAddrV4>,
    /// `sessionAffinity: ClientIP`: seconds a client sticks to its endpoint.
    pub affinity_seconds: Option<u32>,
}

/// Every service port the node programs, in (namespace, name, port) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub ports: Vec<ServicePortRules>,
}

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10800;

impl Index {
    /// Build the index. Headless Services (`clusterIP: None`) and
    /// ExternalName Services have no virtual IP and are skipped.
    pub fn build(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Index {
        let slices = SliceIndex::new(slices);
        let mut ports = Vec::new();
        for svc in services {
            let Some(spec) = &svc.spec else { continue };
            if spec.type_.as_deref() == Some("ExternalName") {
                continue;
            }
            let cluster_ips = v4s(spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter()));
            let external_ips = v4s(spec.external_ips.iter().flatten().chain(
                svc.status
                    .iter()
                    .filter_map(|s| s.load_balancer.as_ref())
                    .filter_map(|lb| lb.ingress.as_ref())
                    .flatten()
                    .filter_map(|i| i.ip.as_ref()),
            ));
            if cluster_ips.is_empty() && external_ips.is_empty() {
                continue;
            }
            let affinity_seconds =
                (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
                    spec.session_affinity_config
                        .as_ref()
                        .and_then(|c| c.client_ip.as_ref())
                        .and_then(|c| c.timeout_seconds)
                        .and_then(|t| u32::try_from(t).ok())
                        .filter(|t| *t > 0)
                        .unwrap_or(DEFAULT_AFFINITY_SECONDS)
                });
            for sp in spec.ports.iter().flatten() {
                let (Some(proto), Ok(port)) =
                    (Proto::parse(sp.protocol.as_deref()), u16::try_from(sp.port))
                else {
                    continue;
                };
                let endpoints = slices
                    .ready_endpoints(svc, sp)
                    .into_iter()
                    .filter_map(|a| match a {
                        SocketAddr::V4(a) => Some(a),
                        SocketAddr::V6(_) => None,
                    })
                    .collect();
                let node_port = match spec.type_.as_deref() {
                    Some("NodePort" | "LoadBalancer") => sp
                        .node_port
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| *n != 0),
                    _ => None,
                };
                ports.push(ServicePortRules {
                    namespace: svc.metadata.namespace.clone().unwrap_or_default(),
                    service: svc.metadata.name.clone().unwrap_or_default(),
                    port_name: sp
                        .name
                        .clone()
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| port.to_string()),
                    proto,
                    port,
                    cluster_ips: cluster_ips.clone(),
                    external_ips: external_ips.clone(),
                    node_port,
                    endpoints,
                    affinity_seconds,
                });
            }
        }
        ports.sort_by(|a, b| {
            (&a.namespace, &a.service, &a.port_name, a.proto).cmp(&(
                &b.namespace,
                &b.service,
                &b.port_name,
                b.proto,
            ))
        });
        Index { ports }
    }
}

/// The IPv4 addresses among `ips` (`None` and IPv6 left out), sorted.
fn v4s<'a>(ips: impl Iterator<Item = &'a String>) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = ips
        .filter_map(|s| match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => Some(v4),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(v).expect("object"))
    }

    #[test]
    fn headless_external_name_and_ipv6_are_left_out() {
        let services: Vec<Arc<Service>> = vec![
            obj(json!({"metadata": {"name": "headless", "namespace": "a"},
                "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})),
            obj(json!({"metadata": {"name": "ext", "namespace": "a"},
                "spec": {"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]}})),
            obj(json!({"metadata": {"name": "web", "namespace": "a"},
                "spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5", "fd00::5"],
                    "sessionAffinity": "ClientIP",
                    "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}})),
        ];
        let slices: Vec<Arc<EndpointSlice>> = vec![obj(json!({
            "metadata": {"name": "web-1", "namespace": "a", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.0.3"]}, {"addresses": ["10.244.0.2"]}]}))];
        let idx = Index::build(&services, &slices);
        assert_eq!(idx.ports.len(), 1);
        let p = &idx.ports[0];
        assert_eq!(p.port_name, "80");
        assert_eq!(p.cluster_ips, [Ipv4Addr::new(10, 96, 0, 5)]);
        assert_eq!(p.node_port, Some(30080));
        assert_eq!(p.affinity_seconds, Some(DEFAULT_AFFINITY_SECONDS));
        let eps: Vec<String> = p.endpoints.iter().map(|e| e.to_string()).collect();
        assert_eq!(eps, ["10.244.0.2:8080", "10.244.0.3:8080"]);
    }
}
