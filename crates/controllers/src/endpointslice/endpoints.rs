//! The core/v1 Endpoints object of a Service, which older clients (and
//! `kubectl get endpoints`) still read.
//!
//! Endpoints predate slices and say less: an address is either ready
//! (`addresses`) or not (`notReadyAddresses`), and terminating pods are left
//! out unless the Service publishes not-ready addresses. Addresses are packed
//! into subsets by the exact set of ports they serve (Kubernetes'
//! `RepackSubsets`), so pods whose named targetPort resolves differently
//! land in different subsets. A headless Service without ports lists its
//! addresses in a subset with no ports; any other Service without ports has
//! no subsets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, ObjectReference};

use super::pods::{Backend, ResolvedPort};

/// The subsets of a Service's Endpoints, in a stable order: subsets by
/// their ports, addresses by IP.
pub fn subsets(
    backends: &[Backend],
    publish_not_ready: bool,
    headless: bool,
    has_ports: bool,
) -> Vec<EndpointSubset> {
    // Port set → (ready, not ready) addresses.
    let mut groups: BTreeMap<Vec<ResolvedPort>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for b in backends {
        if b.terminating && !publish_not_ready {
            continue;
        }
        let ports = if has_ports {
            if b.ports.is_empty() {
                continue;
            }
            let mut ports = b.ports.clone();
            ports.sort();
            ports
        } else if headless {
            Vec::new()
        } else {
            continue;
        };
        let (ready, not_ready) = groups.entry(ports).or_default();
        if publish_not_ready || b.pod_ready {
            ready.push(address(b));
        } else {
            not_ready.push(address(b));
        }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| ports.iter().map(endpoint_port).collect()),
            }
        })
        .collect()
}

/// A backend as an Endpoints address.
fn address(b: &Backend) -> EndpointAddress {
    EndpointAddress {
        ip: b.ip.clone(),
        hostname: b.hostname.clone(),
        node_name: b.node_name.clone(),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(b.namespace.clone()),
            name: Some(b.pod_name.clone()),
            uid: Some(b.uid.clone()),
            ..ObjectReference::default()
        }),
    }
}

/// A resolved port as an Endpoints port; an empty name is left out, as the
/// API server stores it.
fn endpoint_port(p: &ResolvedPort) -> EndpointPort {
    EndpointPort {
        name: (!p.name.is_empty()).then(|| p.name.clone()),
        port: p.port,
        protocol: Some(p.protocol.clone()),
        app_protocol: p.app_protocol.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;

    fn port(name: &str, n: i32) -> ResolvedPort {
        ResolvedPort {
            name: name.into(),
            protocol: "TCP".into(),
            port: n,
            app_protocol: None,
        }
    }

    fn backend(ip: &str, ready: bool, ports: Vec<ResolvedPort>) -> Backend {
        Backend {
            ip: ip.into(),
            pod_name: format!("pod-{ip}"),
            namespace: "default".into(),
            uid: format!("uid-{ip}"),
            hostname: None,
            node_name: Some("n1".into()),
            zone: None,
            pod_ready: ready,
            terminating: false,
            ports,
        }
    }

    fn ips(a: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        a.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn addresses_with_the_same_ports_share_a_subset_and_readiness_splits_them() {
        let ports = vec![port("http", 8080), port("metrics", 9100)];
        let bs = vec![
            backend("10.0.0.3", true, ports.clone()),
            backend("10.0.0.1", true, ports.clone()),
            backend("10.0.0.2", false, ports.clone()),
            backend(
                "10.0.0.9",
                true,
                vec![port("http", 8081), port("metrics", 9100)],
            ),
        ];
        let s = subsets(&bs, false, false, true);
        assert_eq!(s.len(), 2);
        assert_eq!(ips(&s[0].addresses), ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(ips(&s[0].not_ready_addresses), ["10.0.0.2"]);
        let p0: Vec<i32> = s[0].ports.iter().flatten().map(|p| p.port).collect();
        assert_eq!(p0, [8080, 9100]);
        assert_eq!(ips(&s[1].addresses), ["10.0.0.9"]);
        assert!(s[1].not_ready_addresses.is_none());
        let a = &s[0].addresses.as_ref().unwrap()[0];
        assert_eq!(
            a.target_ref.as_ref().unwrap().name.as_deref(),
            Some("pod-10.0.0.1")
        );
        assert_eq!(a.node_name.as_deref(), Some("n1"));
    }

    #[test]
    fn terminating_pods_are_left_out_unless_not_ready_addresses_are_published() {
        let mut b = backend("10.0.0.1", false, vec![port("", 80)]);
        b.terminating = true;
        assert!(subsets(std::slice::from_ref(&b), false, false, true).is_empty());
        let s = subsets(&[b], true, false, true);
        assert_eq!(ips(&s[0].addresses), ["10.0.0.1"], "published, and ready");
        let p = &s[0].ports.as_ref().unwrap()[0];
        assert_eq!(
            (p.name.as_deref(), p.port, p.protocol.as_deref()),
            (None, 80, Some("TCP"))
        );
    }

    #[test]
    fn a_pod_serving_none_of_the_ports_is_left_out() {
        let bs = vec![backend("10.0.0.1", true, vec![])];
        assert!(subsets(&bs, false, false, true).is_empty());
    }

    #[test]
    fn only_headless_services_list_addresses_without_ports() {
        let bs = vec![backend("10.0.0.1", true, vec![])];
        assert!(subsets(&bs, false, false, false).is_empty());
        let s = subsets(&bs, false, true, false);
        assert_eq!(ips(&s[0].addresses), ["10.0.0.1"]);
        assert!(s[0].ports.is_none());
    }
}
