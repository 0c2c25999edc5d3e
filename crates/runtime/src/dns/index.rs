//! From Services and EndpointSlices to the records of the cluster zone.
//!
//! [`Index::build`] turns the watch caches into a map from owner name to
//! records, following the Kubernetes DNS specification (schema 1.1.0):
//!
//! - `dns-version.ZONE` TXT `1.1.0`.
//! - `SVC.NS.svc.ZONE` A/AAAA: the ClusterIPs of a Service; for a
//!   headless Service (`clusterIP: None`) every ready endpoint address of
//!   its EndpointSlices (label `kubernetes.io/service-name`; with
//!   `publishNotReadyAddresses`, every address).
//! - `HOST.SVC.NS.svc.ZONE` A/AAAA for each endpoint of a headless
//!   Service. HOST is the endpoint's `hostname` (a StatefulSet pod's name,
//!   set by the endpoint controller when the pod's `subdomain` names the
//!   Service), else the address with dashes (`10-244-0-5`), the
//!   system-assigned identifier the specification allows.
//! - `_PORT._PROTO.SVC.NS.svc.ZONE` SRV for every named port: the Service
//!   itself as target, or each endpoint's HOST name for a headless Service
//!   (with the endpoint's port), the targets' addresses as additionals.
//! - `SVC.NS.svc.ZONE` CNAME `externalName` for an ExternalName Service.
//! - PTR records for ClusterIPs and headless endpoint addresses.
//! - `A-B-C-D.NS.pod.ZONE` A `A.B.C.D` for any such name (what CoreDNS
//!   calls `pods insecure`): no lookup, so no index entry.
//!
//! [`Index::lookup`] answers a question from the map alone: records of the
//! asked type (NOERROR), a CNAME for any type at an ExternalName, NODATA
//! (NOERROR, no answers, the zone's SOA in authority) for names that exist
//! with other types or only have names below them, NXDOMAIN with the SOA
//! for the rest of the zone, and `None` for names that are not ours.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The schema version of the Kubernetes DNS specification served.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The TTL of every record: short, as CoreDNS's default, so that a
/// rescheduled pod is found again within seconds.
pub const TTL: u32 = 5;
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the DNS server's caches hold.
pub struct World<'a> {
    pub services: &'a [Arc<Service>],
    pub slices: &'a [Arc<EndpointSlice>],
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR or NXDOMAIN.
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    /// The zone's SOA for negative answers (NXDOMAIN and NODATA), so that
    /// resolvers cache them for its minimum TTL (RFC 2308).
    pub authorities: Vec<Record>,
    /// Addresses of SRV targets.
    pub additionals: Vec<Record>,
}

/// The cluster zone's records, rebuilt whenever a Service or EndpointSlice
/// changes and read by every query.
#[derive(Debug)]
pub struct Index {
    zone: Name,
    soa: Record,
    /// Owner name (lower case, with the root dot) → its records. A name
    /// that exists without records (a Service whose ClusterIP is not yet
    /// allocated) has an empty list.
    records: BTreeMap<String, Vec<Record>>,
    /// Names that exist only because names below them do (`svc.ZONE`,
    /// `NS.svc.ZONE`, `_tcp.SVC.NS.svc.ZONE`): NODATA, not NXDOMAIN.
    interior: HashSet<String>,
    /// Reverse names (`5.0.244.10.in-addr.arpa.`) → PTR records.
    reverse: BTreeMap<String, Vec<Record>>,
}

/// The lookup key of a name: lower case, fully qualified.
fn key(name: &Name) -> String {
    let mut s = name.to_ascii().to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// `label.parent`, or None when `label` is not a valid DNS label.
fn child(parent: &Name, label: &str) -> Option<Name> {
    parent.prepend_label(label.to_ascii_lowercase()).ok()
}

fn address_record(name: &Name, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name.clone(), TTL, data)
}

/// The reverse-lookup name of an address (`in-addr.arpa` / `ip6.arpa`).
fn reverse_name(ip: IpAddr) -> Option<Name> {
    let text = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    };
    Name::from_ascii(text).ok()
}

/// The system-assigned endpoint name: the address with dashes.
fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// One endpoint of a headless Service, as DNS names it.
struct Endpoint {
    ip: IpAddr,
    host: String,
    /// Port name → (number, protocol), from the endpoint's slice.
    ports: Vec<(String, u16, String)>,
}

/// Records being gathered for one build.
#[derive(Default)]
struct Builder {
    records: BTreeMap<String, Vec<Record>>,
    reverse: BTreeMap<String, Vec<Record>>,
}

impl Builder {
    /// Make `name` exist, with no records yet.
    fn touch(&mut self, name: &Name) {
        self.records.entry(key(name)).or_default();
    }

    fn add(&mut self, r: Record) {
        let list = self.records.entry(key(&r.name)).or_default();
        if !list.contains(&r) {
            list.push(r);
        }
    }

    fn add_ptr(&mut self, ip: IpAddr, target: &Name) {
        let Some(rev) = reverse_name(ip) else { return };
        let r = Record::from_rdata(rev.clone(), TTL, RData::PTR(PTR(target.clone())));
        let list = self.reverse.entry(key(&rev)).or_default();
        if !list.contains(&r) {
            list.push(r);
        }
    }
}

impl Index {
    /// An index of `zone` (`cluster.local`) holding only the zone's own
    /// records.
    pub fn empty(zone: &Name) -> Index {
        Index::build(
            &World {
                services: &[],
                slices: &[],
            },
            zone,
        )
    }

    /// Build the index of `zone` from the caches.
    pub fn build(w: &World<'_>, zone: &Name) -> Index {
        let mut zone = zone.to_lowercase();
        zone.set_fqdn(true);
        let mut b = Builder::default();
        let svc_zone = child(&zone, "svc").unwrap_or_else(|| zone.clone());
        b.touch(&zone);
        b.touch(&svc_zone);
        if let Some(pod) = child(&zone, "pod") {
            b.touch(&pod);
        }
        if let Some(v) = child(&zone, "dns-version") {
            b.add(Record::from_rdata(
                v,
                TTL,
                RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
            ));
        }
        for svc in w.services {
            add_service(&mut b, w, &svc_zone, svc);
        }
        // Every name between an owner and the apex exists.
        let mut interior = HashSet::new();
        for owner in b.records.keys() {
            let Ok(mut n) = Name::from_ascii(owner) else {
                continue;
            };
            while n.num_labels() > zone.num_labels() {
                n = n.base_name();
                interior.insert(key(&n));
            }
        }
        let soa = soa_record(&zone);
        b.add(soa.clone());
        Index {
            zone,
            soa,
            records: b.records,
            interior,
            reverse: b.reverse,
        }
    }

    /// The zone served.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// Whether `name` is in the cluster zone.
    pub fn in_zone(&self, name: &Name) -> bool {
        self.zone.zone_of(name)
    }

    /// The answer to `name`/`qtype` when the index has one; None when the
    /// question is for someone else (forward it).
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Option<Answer> {
        let k = key(name);
        if !self.in_zone(name) {
            // Reverse names of cluster addresses are ours for PTR; the
            // rest of in-addr.arpa belongs upstream.
            let ptrs = self.reverse.get(&k)?;
            return matches!(qtype, RecordType::PTR | RecordType::ANY)
                .then(|| self.positive(ptrs.clone(), Vec::new()));
        }
        let Some(records) = self.records.get(&k) else {
            if self.interior.contains(&k) {
                return Some(self.negative(ResponseCode::NoError));
            }
            if let Some(ip) = self.pod_address(name) {
                return Some(match qtype {
                    RecordType::A | RecordType::ANY => {
                        self.positive(vec![address_record(name, IpAddr::V4(ip))], Vec::new())
                    }
                    _ => self.negative(ResponseCode::NoError),
                });
            }
            return Some(self.negative(ResponseCode::NXDomain));
        };
        let mut answers: Vec<Record> = records
            .iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .map(|r| with_name(r, name))
            .collect();
        if answers.is_empty() && qtype != RecordType::CNAME {
            // A CNAME stands for every type at its name.
            answers = records
                .iter()
                .filter(|r| r.record_type() == RecordType::CNAME)
                .map(|r| with_name(r, name))
                .collect();
        }
        if answers.is_empty() {
            return Some(self.negative(ResponseCode::NoError));
        }
        let additionals = self.srv_additionals(&answers);
        Some(self.positive(answers, additionals))
    }

    /// The addresses of the SRV targets among `answers`.
    fn srv_additionals(&self, answers: &[Record]) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for r in answers {
            let RData::SRV(srv) = &r.data else { continue };
            for a in self.records.get(&key(&srv.target)).into_iter().flatten() {
                if matches!(a.record_type(), RecordType::A | RecordType::AAAA) && !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    /// `A-B-C-D.NS.pod.ZONE` → `A.B.C.D`.
    fn pod_address(&self, name: &Name) -> Option<Ipv4Addr> {
        if name.num_labels() != self.zone.num_labels() + 3 {
            return None;
        }
        let labels: Vec<String> = name
            .iter()
            .take(3)
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect();
        if labels.get(2).map(String::as_str) != Some("pod") {
            return None;
        }
        labels.first()?.replace('-', ".").parse().ok()
    }

    fn positive(&self, answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        Answer {
            code: ResponseCode::NoError,
            answers,
            authorities: Vec::new(),
            additionals,
        }
    }

    fn negative(&self, code: ResponseCode) -> Answer {
        Answer {
            code,
            answers: Vec::new(),
            authorities: vec![self.soa.clone()],
            additionals: Vec::new(),
        }
    }
}

/// The record as asked: the question's spelling of the owner name (the
/// 0x20 case some resolvers randomise must come back as sent).
fn with_name(r: &Record, name: &Name) -> Record {
    let mut r = r.clone();
    r.name = name.clone();
    r
}

fn soa_record(zone: &Name) -> Record {
    let ns = Name::from_ascii("ns.dns")
        .ok()
        .and_then(|n| n.append_domain(zone).ok())
        .unwrap_or_else(|| zone.clone());
    let mbox = child(zone, "hostmaster").unwrap_or_else(|| zone.clone());
    // The serial only has to grow: seconds since the epoch do.
    let serial = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let soa = SOA::new(ns, mbox, serial, 7200, 1800, 86400, TTL);
    Record::from_rdata(zone.clone(), TTL, RData::SOA(soa))
}

fn add_service(b: &mut Builder, w: &World<'_>, svc_zone: &Name, svc: &Service) {
    let (Some(name), Some(ns)) = (
        svc.metadata.name.as_deref(),
        svc.metadata.namespace.as_deref(),
    ) else {
        return;
    };
    let Some(base) = child(svc_zone, ns).and_then(|n| child(&n, name)) else {
        return;
    };
    let Some(spec) = &svc.spec else { return };
    b.touch(&base);
    if spec.type_.as_deref() == Some("ExternalName") {
        if let Some(target) = spec
            .external_name
            .as_deref()
            .and_then(|t| Name::from_ascii(t.trim_end_matches('.')).ok())
        {
            let mut target = target;
            target.set_fqdn(true);
            b.add(Record::from_rdata(base, TTL, RData::CNAME(CNAME(target))));
        }
        return;
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if headless {
        let publish_all = spec.publish_not_ready_addresses == Some(true);
        for ep in endpoints(w, ns, name, publish_all) {
            b.add(address_record(&base, ep.ip));
            let Some(host) = child(&base, &ep.host) else {
                continue;
            };
            b.add(address_record(&host, ep.ip));
            b.add_ptr(ep.ip, &host);
            for (port, number, proto) in &ep.ports {
                let Some(owner) = srv_owner(&base, port, proto) else {
                    continue;
                };
                let srv = SRV::new(0, 100, *number, host.clone());
                b.add(Record::from_rdata(owner, TTL, RData::SRV(srv)));
            }
        }
        return;
    }
    let mut ips: Vec<IpAddr> = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .filter_map(|s| s.parse().ok())
        .collect();
    ips.dedup();
    for ip in &ips {
        b.add(address_record(&base, *ip));
        b.add_ptr(*ip, &base);
    }
    for p in spec.ports.iter().flatten() {
        let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        let Ok(number) = u16::try_from(p.port) else {
            continue;
        };
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let Some(owner) = srv_owner(&base, port_name, proto) else {
            continue;
        };
        let srv = SRV::new(0, 100, number, base.clone());
        b.add(Record::from_rdata(owner, TTL, RData::SRV(srv)));
    }
}

/// `_PORT._PROTO.base`.
fn srv_owner(base: &Name, port: &str, proto: &str) -> Option<Name> {
    let proto = format!("_{}", proto.to_ascii_lowercase());
    child(base, &proto).and_then(|n| child(&n, &format!("_{port}")))
}

/// The endpoints DNS publishes for a headless Service: ready ones (or all
/// with `publishNotReadyAddresses`), named by hostname or address.
fn endpoints(w: &World<'_>, ns: &str, svc: &str, publish_all: bool) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    for slice in w.slices {
        let owned = slice.metadata.namespace.as_deref() == Some(ns)
            && slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .is_some_and(|s| s == svc);
        if !owned {
            continue;
        }
        let ports: Vec<(String, u16, String)> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let name = p.name.clone().filter(|n| !n.is_empty())?;
                let number = u16::try_from(p.port?).ok()?;
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                Some((name, number, proto))
            })
            .collect();
        for e in &slice.endpoints {
            // An unknown readiness counts as ready, as the API documents.
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready && !publish_all {
                continue;
            }
            for a in &e.addresses {
                let Ok(ip) = a.parse::<IpAddr>() else {
                    continue;
                };
                if out.iter().any(|o| o.ip == ip) {
                    continue;
                }
                let host = e
                    .hostname
                    .clone()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| dashed(ip));
                out.push(Endpoint {
                    ip,
                    host,
                    ports: ports.clone(),
                });
            }
        }
    }
    out.sort_by_key(|e| e.ip);
    out
}

#[cfg(test)]
mod tests;
