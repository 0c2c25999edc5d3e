//! Which pods back a Service, and on which ports: the part the
//! EndpointSlice and Endpoints outputs share.
//!
//! A pod backs a Service when it lives in the Service's namespace, its labels
//! carry every key/value of `spec.selector`, it has a `status.podIP`, and it
//! has not finished (phase Succeeded or Failed). Terminating pods still back
//! it, marked as terminating, so that proxies can drain them; whether they
//! receive new traffic is the outputs' decision.
//!
//! Each Service port's `targetPort` is resolved per pod: a number is used as
//! is, a name is looked up among the pod's container ports (name and
//! protocol must both match), and an absent one means the Service port
//! itself. A pod lacking a named port simply does not serve that port, so
//! pods of one Service can end up with different port sets — the outputs
//! group them by that set.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::replicaset::pods::is_ready;

/// The protocol Kubernetes assumes when a port names none.
const DEFAULT_PROTOCOL: &str = "TCP";

/// A Service port as one pod serves it: the Service port's name and
/// protocol, and the container port its `targetPort` resolved to.
///
/// Ordered so that a pod's port list can key a map: pods of one Service list
/// their ports in the Service's order, so equal sets are equal lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResolvedPort {
    /// The Service port's name (`""` when it has none).
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port number on the pod.
    pub port: i32,
    /// The Service port's `appProtocol`, passed through.
    pub app_protocol: Option<String>,
}

/// One pod as a backend of one Service.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// `status.podIP`.
    pub ip: String,
    /// The pod's name, namespace and UID, for `targetRef`.
    pub pod_name: String,
    /// The pod's namespace (the Service's).
    pub namespace: String,
    /// The pod's UID.
    pub uid: String,
    /// `spec.hostname`, when the pod's `spec.subdomain` names this Service
    /// (what gives headless Services per-pod DNS names).
    pub hostname: Option<String>,
    /// The node the pod runs on.
    pub node_name: Option<String>,
    /// The node's `topology.kubernetes.io/zone` label.
    pub zone: Option<String>,
    /// The pod's Ready condition is True.
    pub pod_ready: bool,
    /// The pod has a deletionTimestamp.
    pub terminating: bool,
    /// The Service's ports this pod serves, in the Service's order.
    pub ports: Vec<ResolvedPort>,
}

/// Whether the controllers manage endpoints for this Service: it selects
/// pods (a non-empty `spec.selector`) and is not an ExternalName alias.
pub fn selects_pods(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() != Some("ExternalName")
            && s.selector.as_ref().is_some_and(|sel| !sel.is_empty())
    })
}

/// Whether a Service's selector matches a label set. A Service selector is
/// a plain equality map; an empty or missing one matches nothing here,
/// because such Services get no managed endpoints.
pub fn selector_matches(svc: &Service, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    !sel.is_empty()
        && sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether the Service publishes pods before they are Ready.
pub fn publishes_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Whether a pod has finished for good; its IP may already belong to
/// another pod.
fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// The container port a Service port reaches on this pod, if the pod has
/// it (Kubernetes' `FindPort`).
pub fn resolve_target_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) if *n == 0 => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            // A name that is all digits is a number that was quoted.
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let protocol = port.protocol.as_deref().unwrap_or(DEFAULT_PROTOCOL);
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or(DEFAULT_PROTOCOL) == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The Service's ports as this pod serves them; ports the pod cannot serve
/// (a named targetPort it lacks) are left out.
pub fn resolve_ports(svc: &Service, pod: &Pod) -> Vec<ResolvedPort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(ResolvedPort {
                name: p.name.clone().unwrap_or_default(),
                protocol: p
                    .protocol
                    .clone()
                    .unwrap_or_else(|| DEFAULT_PROTOCOL.into()),
                port: resolve_target_port(pod, p)?,
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

/// The pod as a backend of the Service, or `None` when it cannot be one
/// (no IPv4 address yet, or finished). The caller has matched the selector.
pub fn backend(
    svc: &Service,
    pod: &Pod,
    zone_of: impl Fn(&str) -> Option<String>,
) -> Option<Backend> {
    let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
    // Slices are IPv4; skiff's pod network is IPv4 only.
    if ip.parse::<std::net::Ipv4Addr>().is_err() || is_terminal(pod) {
        return None;
    }
    let spec = pod.spec.as_ref();
    let node_name = spec
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let svc_name = svc.metadata.name.as_deref().unwrap_or_default();
    let hostname = spec
        .filter(|s| s.subdomain.as_deref() == Some(svc_name))
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty());
    Some(Backend {
        ip: ip.to_string(),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        hostname,
        zone: node_name.as_deref().and_then(zone_of),
        node_name,
        pod_ready: is_ready(pod),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        ports: resolve_ports(svc, pod),
    })
}

/// Every backend of the Service among `pods` (any namespace; filtered
/// here), sorted by IP then pod name so that outputs are stable.
pub fn backends<'a>(
    svc: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
    zone_of: impl Fn(&str) -> Option<String>,
) -> Vec<Backend> {
    let ns = svc.metadata.namespace.as_deref();
    let mut out: Vec<Backend> = pods
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .filter(|p| selector_matches(svc, p.metadata.labels.as_ref()))
        .filter_map(|p| backend(svc, p, &zone_of))
        .collect();
    out.sort_by(|a, b| (&a.ip, &a.pod_name).cmp(&(&b.ip, &b.pod_name)));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": ports},
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: Option<&str>, container_ports: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "labels": {"app": "web", "tier": "front"}},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "a", "image": "x", "ports": container_ports}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap()
    }

    #[test]
    fn target_ports_resolve_by_number_name_or_default() {
        let s = svc(json!([
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "metrics", "port": 9090, "targetPort": 9100},
            {"name": "admin", "port": 8081},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
        ]));
        let p = pod(
            "p",
            Some("10.244.0.5"),
            json!([{"name": "web", "containerPort": 8080},
                   {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]),
        );
        let ports = resolve_ports(&s, &p);
        let got: Vec<(&str, &str, i32)> = ports
            .iter()
            .map(|p| (p.name.as_str(), p.protocol.as_str(), p.port))
            .collect();
        assert_eq!(
            got,
            [
                ("http", "TCP", 8080),
                ("metrics", "TCP", 9100),
                ("admin", "TCP", 8081),
                ("dns", "UDP", 5353)
            ]
        );
    }

    #[test]
    fn a_named_port_must_match_the_protocol_and_exist() {
        let s = svc(json!([
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
        ]));
        // `dns` exists only as TCP: the UDP Service port finds nothing.
        let p = pod(
            "p",
            Some("10.244.0.5"),
            json!([{"name": "dns", "containerPort": 53}]),
        );
        assert!(resolve_ports(&s, &p).is_empty());
    }

    #[test]
    fn only_selected_pods_with_an_ipv4_address_that_have_not_finished_back_a_service() {
        let s = svc(json!([{"port": 80}]));
        let ok = pod("a", Some("10.244.0.2"), json!([]));
        let no_ip = pod("b", None, json!([]));
        let v6 = pod("c", Some("fd00::1"), json!([]));
        let mut done = pod("d", Some("10.244.0.3"), json!([]));
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut other = pod("e", Some("10.244.0.4"), json!([]));
        other.metadata.labels = Some(BTreeMap::from([("app".into(), "db".into())]));
        let mut elsewhere = pod("f", Some("10.244.0.6"), json!([]));
        elsewhere.metadata.namespace = Some("other".into());
        let pods = [ok, no_ip, v6, done, other, elsewhere];
        let got = backends(&s, pods.iter(), |_| Some("z1".into()));
        assert_eq!(got.len(), 1);
        let b = &got[0];
        assert_eq!((b.ip.as_str(), b.pod_name.as_str()), ("10.244.0.2", "a"));
        assert_eq!(b.node_name.as_deref(), Some("n1"));
        assert_eq!(b.zone.as_deref(), Some("z1"));
        assert!(b.pod_ready && !b.terminating);
        assert_eq!(b.ports[0].port, 80, "no targetPort means the port itself");
    }

    #[test]
    fn an_empty_selector_or_external_name_manages_nothing() {
        let mut s = svc(json!([]));
        assert!(selects_pods(&s));
        s.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        assert!(!selects_pods(&s));
        assert!(!selector_matches(&s, Some(&BTreeMap::new())));
        let mut ext = svc(json!([]));
        ext.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert!(!selects_pods(&ext));
    }

    #[test]
    fn a_hostname_is_published_only_under_the_services_subdomain() {
        let s = svc(json!([]));
        let mut p = pod("a", Some("10.244.0.2"), json!([]));
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("a-0".into());
        spec.subdomain = Some("other".into());
        assert_eq!(backend(&s, &p, |_| None).unwrap().hostname, None);
        p.spec.as_mut().unwrap().subdomain = Some("web".into());
        assert_eq!(
            backend(&s, &p, |_| None).unwrap().hostname.as_deref(),
            Some("a-0")
        );
    }
}
