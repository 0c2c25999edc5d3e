//! What EndpointSlices a Service should have, and the fewest writes that
//! get there from the ones it has.
//!
//! Backends are grouped by the ports they serve (see [`super::pods`]); each
//! group is spread over slices of at most [`MAX_ENDPOINTS`] endpoints. The
//! [`plan`] keeps endpoints where they already are, as Kubernetes' reconciler
//! does, so that a change to one pod rewrites one slice rather than
//! reshuffling all of them:
//!
//! 1. each existing slice keeps the desired endpoints it already holds
//!    (updated in place when a pod's conditions changed) and drops the rest;
//!    a slice left empty, or for ports no backend serves any more, becomes
//!    *spare*;
//! 2. new endpoints go first into slices that are being rewritten anyway,
//!    then, if they all fit, into the fullest untouched slice with room,
//!    and only then into new slices — which reuse spare slices' names (an
//!    update) before creating any;
//! 3. spare slices nobody reused are deleted.
//!
//! A Service with no backends keeps one empty *placeholder* slice, as in
//! Kubernetes, so that consumers can tell "no endpoints" from "not yet
//! processed".

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};

use super::pods::{Backend, ResolvedPort};

/// Most endpoints in one slice (Kubernetes' `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS: usize = 100;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label saying which controller manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// The endpoints and ports one slice should hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Content {
    /// The ports every endpoint of the slice serves.
    pub ports: Vec<ResolvedPort>,
    /// The endpoints, in the order they are written.
    pub endpoints: Vec<Endpoint>,
}

/// The writes that bring a Service's slices to the desired state.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// New slices to create.
    pub create: Vec<Content>,
    /// Existing slices (by name) to rewrite with new content (and fresh
    /// labels and owner).
    pub update: Vec<(String, Content)>,
    /// Existing slices to delete.
    pub delete: Vec<String>,
}

impl Plan {
    /// Whether nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The slice endpoint for a backend, with Kubernetes' conditions: `serving`
/// is the pod's readiness, `ready` is serving and not terminating, and
/// `publishNotReadyAddresses` makes every endpoint ready.
pub fn endpoint(b: &Backend, publish_not_ready: bool) -> Endpoint {
    let ready = publish_not_ready || (b.pod_ready && !b.terminating);
    Endpoint {
        addresses: vec![b.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(b.pod_ready),
            terminating: Some(b.terminating),
        }),
        hostname: b.hostname.clone(),
        node_name: b.node_name.clone(),
        zone: b.zone.clone(),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(b.namespace.clone()),
            name: Some(b.pod_name.clone()),
            uid: Some(b.uid.clone()),
            ..ObjectReference::default()
        }),
        ..Endpoint::default()
    }
}

/// The desired endpoints of a Service, grouped by the ports they serve.
pub fn desired(
    backends: &[Backend],
    publish_not_ready: bool,
) -> BTreeMap<Vec<ResolvedPort>, Vec<Endpoint>> {
    let mut groups: BTreeMap<Vec<ResolvedPort>, Vec<Endpoint>> = BTreeMap::new();
    for b in backends {
        groups
            .entry(b.ports.clone())
            .or_default()
            .push(endpoint(b, publish_not_ready));
    }
    groups
}

/// Slice ports as written: the name always present (the API server
/// defaults a missing one to `""`, and comparisons must not see a change).
pub fn slice_ports(ports: &[ResolvedPort]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|p| EndpointPort {
            name: Some(p.name.clone()),
            protocol: Some(p.protocol.clone()),
            port: Some(p.port),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

/// A slice's ports in the form they are grouped by.
pub fn ports_of(slice: &EndpointSlice) -> Vec<ResolvedPort> {
    slice
        .ports
        .iter()
        .flatten()
        .map(|p| ResolvedPort {
            name: p.name.clone().unwrap_or_default(),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            port: p.port.unwrap_or(0),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

/// What identifies an endpoint across reconciles: the pod and its address.
fn identity(e: &Endpoint) -> (Option<&str>, Option<&str>) {
    (
        e.target_ref.as_ref().and_then(|r| r.uid.as_deref()),
        e.addresses.first().map(String::as_str),
    )
}

type Identity = (Option<String>, Option<String>);

fn owned_identity(e: &Endpoint) -> Identity {
    let (u, a) = identity(e);
    (u.map(str::to_string), a.map(str::to_string))
}

/// A slice being worked on: kept, possibly rewritten.
struct Working {
    name: String,
    ports: Vec<ResolvedPort>,
    endpoints: Vec<Endpoint>,
    changed: bool,
}

/// The writes that turn `existing` (this Service's managed slices) into
/// slices holding `desired`, at most `max` endpoints each. `current_meta`
/// says whether a slice's labels and owner are already right; one whose are
/// not is rewritten even if its endpoints are.
pub fn plan(
    existing: &[&EndpointSlice],
    desired: BTreeMap<Vec<ResolvedPort>, Vec<Endpoint>>,
    max: usize,
    current_meta: impl Fn(&EndpointSlice) -> bool,
) -> Plan {
    let max = max.max(1);
    let mut existing: Vec<&EndpointSlice> = existing.to_vec();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    if desired.values().all(Vec::is_empty) {
        return placeholder_plan(&existing, current_meta);
    }
    // What is still to be placed, per port set, by identity.
    let mut remaining: BTreeMap<Vec<ResolvedPort>, HashMap<Identity, Endpoint>> = desired
        .iter()
        .map(|(ports, eps)| {
            let by_id = eps.iter().map(|e| (owned_identity(e), e.clone())).collect();
            (ports.clone(), by_id)
        })
        .collect();
    let mut working = Vec::new();
    let mut spare = Vec::new();
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let ports = ports_of(slice);
        let Some(left) = remaining.get_mut(&ports) else {
            spare.push(name);
            continue;
        };
        let kept: Vec<Endpoint> = slice
            .endpoints
            .iter()
            .filter_map(|e| left.remove(&owned_identity(e)))
            .collect();
        if kept.is_empty() {
            spare.push(name);
            continue;
        }
        let changed = kept != slice.endpoints || !current_meta(slice);
        working.push(Working {
            name,
            ports,
            endpoints: kept,
            changed,
        });
    }
    let mut plan = Plan::default();
    for (ports, eps) in &desired {
        // New endpoints in the desired (stable) order.
        let left = remaining.get_mut(ports);
        let mut new: Vec<Endpoint> = match left {
            Some(left) => eps
                .iter()
                .filter_map(|e| left.remove(&owned_identity(e)))
                .collect(),
            None => Vec::new(),
        };
        place(&mut working, ports, &mut new, max);
        for chunk in new.chunks(max) {
            let content = Content {
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            };
            match spare.pop() {
                Some(name) => plan.update.push((name, content)),
                None => plan.create.push(content),
            }
        }
    }
    for w in working.into_iter().filter(|w| w.changed) {
        plan.update.push((
            w.name,
            Content {
                ports: w.ports,
                endpoints: w.endpoints,
            },
        ));
    }
    plan.delete = spare;
    plan
}

/// Put new endpoints into existing slices of their port set: first those
/// being rewritten anyway, then — only if all that is left fits — the
/// fullest untouched slice with room. Whatever does not fit stays in `new`.
fn place(working: &mut [Working], ports: &[ResolvedPort], new: &mut Vec<Endpoint>, max: usize) {
    for w in working.iter_mut().filter(|w| w.changed && w.ports == ports) {
        let room = max.saturating_sub(w.endpoints.len()).min(new.len());
        w.endpoints.extend(new.drain(..room));
    }
    if new.is_empty() {
        return;
    }
    let fullest_fitting = working
        .iter_mut()
        .filter(|w| !w.changed && w.ports == ports && w.endpoints.len() + new.len() <= max)
        .max_by_key(|w| w.endpoints.len());
    if let Some(w) = fullest_fitting {
        w.endpoints.append(new);
        w.changed = true;
    }
}

/// No backends: one slice with no endpoints and no ports, reusing an
/// existing one when possible.
fn placeholder_plan(
    existing: &[&EndpointSlice],
    current_meta: impl Fn(&EndpointSlice) -> bool,
) -> Plan {
    let mut plan = Plan::default();
    let is_placeholder =
        |s: &EndpointSlice| s.endpoints.is_empty() && s.ports.as_ref().is_none_or(Vec::is_empty);
    let keep = existing
        .iter()
        .position(|s| is_placeholder(s) && current_meta(s))
        .or_else(|| existing.iter().position(|s| is_placeholder(s)))
        .or(if existing.is_empty() { None } else { Some(0) });
    match keep {
        Some(i) => {
            let s = existing[i];
            if !(is_placeholder(s) && current_meta(s)) {
                let name = s.metadata.name.clone().unwrap_or_default();
                plan.update.push((name, Content::default()));
            }
        }
        None => plan.create.push(Content::default()),
    }
    plan.delete = existing
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != keep)
        .map(|(_, s)| s.metadata.name.clone().unwrap_or_default())
        .collect();
    plan
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

    fn backend(i: usize, ports: Vec<ResolvedPort>) -> Backend {
        Backend {
            ip: format!("10.244.{}.{}", i / 250, i % 250 + 1),
            pod_name: format!("p{i}"),
            namespace: "default".into(),
            uid: format!("u{i}"),
            hostname: None,
            node_name: Some("n1".into()),
            zone: None,
            pod_ready: true,
            terminating: false,
            ports,
        }
    }

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| backend(i, vec![port("http", 8080)]))
            .collect()
    }

    fn slice(name: &str, content: &Content) -> EndpointSlice {
        EndpointSlice {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: content.endpoints.clone(),
            ports: Some(slice_ports(&content.ports)),
        }
    }

    /// Apply a plan the way the API would, naming created slices `new-N`.
    fn apply(existing: Vec<EndpointSlice>, plan: &Plan) -> Vec<EndpointSlice> {
        let mut out: Vec<EndpointSlice> = existing
            .into_iter()
            .filter(|s| !plan.delete.contains(s.metadata.name.as_ref().unwrap()))
            .map(|s| {
                let name = s.metadata.name.clone().unwrap();
                match plan.update.iter().find(|(n, _)| *n == name) {
                    Some((_, c)) => slice(&name, c),
                    None => s,
                }
            })
            .collect();
        for (i, c) in plan.create.iter().enumerate() {
            out.push(slice(&format!("new-{i}"), c));
        }
        out
    }

    fn run(existing: &[EndpointSlice], backends: &[Backend]) -> Plan {
        let refs: Vec<&EndpointSlice> = existing.iter().collect();
        plan(&refs, desired(backends, false), MAX_ENDPOINTS, |_| true)
    }

    fn total(slices: &[EndpointSlice]) -> usize {
        slices.iter().map(|s| s.endpoints.len()).sum()
    }

    #[test]
    fn endpoint_conditions_follow_readiness_and_termination() {
        let mut b = backend(0, vec![]);
        let c = |e: Endpoint| {
            let c = e.conditions.unwrap();
            (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
        };
        assert_eq!(c(endpoint(&b, false)), (true, true, false));
        b.pod_ready = false;
        assert_eq!(c(endpoint(&b, false)), (false, false, false));
        assert_eq!(
            c(endpoint(&b, true)),
            (true, false, false),
            "publishNotReadyAddresses"
        );
        b.pod_ready = true;
        b.terminating = true;
        assert_eq!(
            c(endpoint(&b, false)),
            (false, true, true),
            "terminating is never ready"
        );
        let e = endpoint(&b, false);
        let r = e.target_ref.unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("u0"))
        );
        assert_eq!(e.addresses, vec![b.ip]);
    }

    #[test]
    fn two_hundred_fifty_endpoints_fill_three_slices_of_at_most_a_hundred() {
        let plan = run(&[], &backends(250));
        assert!(plan.update.is_empty() && plan.delete.is_empty());
        let mut sizes: Vec<usize> = plan.create.iter().map(|c| c.endpoints.len()).collect();
        sizes.sort();
        assert_eq!(sizes, [50, 100, 100]);
        let slices = apply(vec![], &plan);
        // Applying it again changes nothing.
        assert!(run(&slices, &backends(250)).is_empty());
    }

    #[test]
    fn one_changed_pod_rewrites_only_its_slice() {
        let mut bs = backends(250);
        let slices = apply(vec![], &run(&[], &bs));
        bs[120].pod_ready = false;
        let plan = run(&slices, &bs);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        let (name, content) = &plan.update[0];
        let before = slices
            .iter()
            .find(|s| s.metadata.name.as_ref() == Some(name))
            .unwrap();
        assert_eq!(content.endpoints.len(), before.endpoints.len());
        let flipped = content
            .endpoints
            .iter()
            .find(|e| e.addresses[0] == bs[120].ip)
            .unwrap();
        assert_eq!(flipped.conditions.as_ref().unwrap().ready, Some(false));
    }

    #[test]
    fn new_endpoints_fill_a_slice_with_room_before_creating_one() {
        let slices = apply(vec![], &run(&[], &backends(150)));
        let plan = run(&slices, &backends(180));
        assert!(plan.create.is_empty(), "30 more fit into the slice of 50");
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].1.endpoints.len(), 80);
        let after = apply(slices, &plan);
        assert_eq!(total(&after), 180);
    }

    #[test]
    fn removed_endpoints_leave_their_slice_and_an_emptied_slice_is_deleted() {
        let bs = backends(150);
        let slices = apply(vec![], &run(&[], &bs));
        // Keep only the endpoints of the first slice (whatever its size).
        let first: Vec<String> = slices[0]
            .endpoints
            .iter()
            .map(|e| e.addresses[0].clone())
            .collect();
        let kept: Vec<Backend> = bs.into_iter().filter(|b| first.contains(&b.ip)).collect();
        let plan = run(&slices, &kept);
        assert!(plan.create.is_empty() && plan.update.is_empty());
        assert_eq!(plan.delete, vec![slices[1].metadata.name.clone().unwrap()]);
    }

    #[test]
    fn pods_with_different_resolved_ports_get_separate_slices() {
        let mut bs = backends(3);
        bs[2].ports = vec![port("http", 9090)];
        let plan = run(&[], &bs);
        assert_eq!(plan.create.len(), 2);
        let by_port: BTreeMap<i32, usize> = plan
            .create
            .iter()
            .map(|c| (c.ports[0].port, c.endpoints.len()))
            .collect();
        assert_eq!(by_port, BTreeMap::from([(8080, 2), (9090, 1)]));
    }

    #[test]
    fn a_slice_for_ports_nobody_serves_is_reused_for_new_slices() {
        let slices = apply(vec![], &run(&[], &backends(2)));
        let moved: Vec<Backend> = (0..2)
            .map(|i| backend(i, vec![port("http", 9090)]))
            .collect();
        let plan = run(&slices, &moved);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].1.ports, vec![port("http", 9090)]);
    }

    #[test]
    fn no_backends_leave_one_empty_placeholder() {
        let plan = run(&[], &[]);
        assert_eq!(plan.create, vec![Content::default()]);
        let slices = apply(vec![], &run(&[], &backends(150)));
        let plan = run(&slices, &[]);
        assert!(plan.create.is_empty());
        assert_eq!(plan.update.len(), 1, "one slice becomes the placeholder");
        assert_eq!(plan.delete.len(), 1);
        let after = apply(slices, &plan);
        assert!(run(&after, &[]).is_empty());
    }

    #[test]
    fn stale_metadata_rewrites_a_slice_whose_endpoints_are_right() {
        let slices = apply(vec![], &run(&[], &backends(3)));
        let refs: Vec<&EndpointSlice> = slices.iter().collect();
        let plan = plan(&refs, desired(&backends(3), false), MAX_ENDPOINTS, |_| {
            false
        });
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].1.endpoints.len(), 3);
    }

    #[test]
    fn a_duplicated_endpoint_is_kept_once() {
        let bs = backends(2);
        let content = Content {
            ports: vec![port("http", 8080)],
            endpoints: desired(&bs, false).into_values().next().unwrap(),
        };
        let slices = vec![slice("a", &content), slice("b", &content)];
        let plan = run(&slices, &bs);
        assert_eq!(plan.delete, vec!["b".to_string()]);
        assert!(plan.update.is_empty() && plan.create.is_empty());
    }
}
