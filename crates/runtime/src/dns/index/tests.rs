//! The zone's answers, built from Services and EndpointSlices as the
//! controllers write them.

use std::sync::Arc;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::json;

use super::*;

fn service(v: serde_json::Value) -> Arc<Service> {
    Arc::new(serde_json::from_value(v).expect("service"))
}

fn slice(v: serde_json::Value) -> Arc<EndpointSlice> {
    Arc::new(serde_json::from_value(v).expect("slice"))
}

fn world() -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
    let services = vec![
        service(
            json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {
                "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}, {"port": 9000}],
            }}),
        ),
        service(
            json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {
                "clusterIP": "None", "ports": [{"name": "pg", "port": 5432}],
            }}),
        ),
        service(
            json!({"metadata": {"name": "ext", "namespace": "shop"}, "spec": {
                "type": "ExternalName", "externalName": "db.example.com",
            }}),
        ),
        service(
            json!({"metadata": {"name": "pending", "namespace": "shop"}, "spec": {"clusterIP": ""}}),
        ),
    ];
    let slices = vec![
        slice(json!({
            "metadata": {"name": "db-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.1.7"], "hostname": "db-1", "conditions": {"ready": true}},
                {"addresses": ["10.244.0.9"], "conditions": {"ready": false}},
                {"addresses": ["10.244.2.3"]},
            ],
        })),
        // Another Service's slice in the namespace: not db's.
        slice(json!({
            "metadata": {"name": "other-x", "namespace": "shop", "labels": {"kubernetes.io/service-name": "other"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.3.3"], "conditions": {"ready": true}}],
        })),
    ];
    (services, slices)
}

fn index() -> Index {
    let (s, e) = world();
    Index::build(
        &World {
            services: &s,
            slices: &e,
        },
        &name("Cluster.Local"),
    )
}

fn name(s: &str) -> Name {
    let mut n = Name::from_ascii(s).expect("name");
    n.set_fqdn(true);
    n
}

fn ask(ix: &Index, q: &str, t: RecordType) -> Answer {
    ix.lookup(&name(q), t).expect("a name of the zone")
}

fn addrs(a: &Answer) -> Vec<String> {
    let mut v: Vec<String> = a
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The answer as a DNS message, through hickory's encoder and decoder:
/// what a client would read.
fn on_the_wire(q: &str, t: RecordType, a: &Answer) -> Message {
    let mut m = Message::response(7, hickory_proto::op::OpCode::Query);
    m.metadata.response_code = a.code;
    m.add_query(Query::query(name(q), t));
    m.add_answers(a.answers.clone());
    m.add_authorities(a.authorities.clone());
    m.add_additionals(a.additionals.clone());
    let bytes = m.to_vec().expect("encode");
    Message::from_vec(&bytes).expect("decode")
}

#[test]
fn a_cluster_ip_service_has_its_address() {
    let ix = index();
    let a = ask(&ix, "web.shop.svc.cluster.local", RecordType::A);
    assert_eq!(a.code, ResponseCode::NoError);
    assert_eq!(addrs(&a), ["10.96.0.10"]);
    assert!(a.authorities.is_empty());
    assert_eq!(a.answers[0].ttl, TTL);
    // Comparisons are case-insensitive; the answer keeps the asked case.
    let a = ask(&ix, "WEB.Shop.svc.cluster.LOCAL", RecordType::A);
    assert_eq!(addrs(&a), ["10.96.0.10"]);
    assert_eq!(a.answers[0].name.to_ascii(), "WEB.Shop.svc.cluster.LOCAL.");
    let m = on_the_wire(
        "web.shop.svc.cluster.local",
        RecordType::A,
        &ask(&ix, "web.shop.svc.cluster.local", RecordType::A),
    );
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        m.answers[0].data,
        RData::A(A("10.96.0.10".parse().expect("ip")))
    );
}

#[test]
fn a_headless_service_has_every_ready_endpoint() {
    let ix = index();
    let a = ask(&ix, "db.shop.svc.cluster.local", RecordType::A);
    assert_eq!(a.code, ResponseCode::NoError);
    // Not-ready 10.244.0.9 left out; unknown readiness counts as ready.
    assert_eq!(addrs(&a), ["10.244.0.5", "10.244.1.7", "10.244.2.3"]);
}

#[test]
fn publish_not_ready_addresses_publishes_them_all() {
    let (mut s, e) = world();
    s[1] = service(
        json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {
            "clusterIP": "None", "publishNotReadyAddresses": true,
        }}),
    );
    let ix = Index::build(
        &World {
            services: &s,
            slices: &e,
        },
        &name("cluster.local"),
    );
    assert_eq!(
        addrs(&ask(&ix, "db.shop.svc.cluster.local", RecordType::A)),
        ["10.244.0.5", "10.244.0.9", "10.244.1.7", "10.244.2.3"]
    );
}

#[test]
fn pods_of_a_headless_service_are_found_by_hostname() {
    let ix = index();
    assert_eq!(
        addrs(&ask(&ix, "db-0.db.shop.svc.cluster.local", RecordType::A)),
        ["10.244.0.5"]
    );
    assert_eq!(
        addrs(&ask(&ix, "db-1.db.shop.svc.cluster.local", RecordType::A)),
        ["10.244.1.7"]
    );
    // Without a hostname, the endpoint is named by its address.
    assert_eq!(
        addrs(&ask(
            &ix,
            "10-244-2-3.db.shop.svc.cluster.local",
            RecordType::A
        )),
        ["10.244.2.3"]
    );
    // A not-ready endpoint has no name.
    assert_eq!(
        ask(&ix, "10-244-0-9.db.shop.svc.cluster.local", RecordType::A).code,
        ResponseCode::NXDomain
    );
    // Reverse lookups of endpoint addresses name the pod.
    let ptr = ix
        .lookup(&name("5.0.244.10.in-addr.arpa"), RecordType::PTR)
        .expect("ours");
    assert_eq!(
        ptr.answers[0].data,
        RData::PTR(PTR(name("db-0.db.shop.svc.cluster.local")))
    );
}

#[test]
fn named_ports_have_srv_records_with_their_targets_addresses() {
    let ix = index();
    let a = ask(
        &ix,
        "_http._tcp.web.shop.svc.cluster.local",
        RecordType::SRV,
    );
    assert_eq!(a.code, ResponseCode::NoError);
    let RData::SRV(srv) = &a.answers[0].data else {
        panic!("{a:?}")
    };
    assert_eq!(
        (srv.port, srv.target.to_ascii().as_str()),
        (80, "web.shop.svc.cluster.local.")
    );
    assert_eq!(
        addrs(&Answer {
            answers: a.additionals.clone(),
            ..a.clone()
        }),
        ["10.96.0.10"]
    );
    let a = ask(&ix, "_dns._udp.web.shop.svc.cluster.local", RecordType::SRV);
    assert_eq!(a.answers.len(), 1);
    // A headless Service: one per endpoint, the endpoint's port.
    let a = ask(&ix, "_pg._tcp.db.shop.svc.cluster.local", RecordType::SRV);
    let mut targets: Vec<(u16, String)> = a
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            (5433, "10-244-2-3.db.shop.svc.cluster.local.".to_string()),
            (5433, "db-0.db.shop.svc.cluster.local.".to_string()),
            (5433, "db-1.db.shop.svc.cluster.local.".to_string()),
        ]
    );
    assert_eq!(a.additionals.len(), 3);
    // The wrong protocol is not a port of the Service; `_tcp` under it
    // exists only as a parent name.
    assert_eq!(
        ask(
            &ix,
            "_http._udp.web.shop.svc.cluster.local",
            RecordType::SRV
        )
        .code,
        ResponseCode::NXDomain
    );
    let parent = ask(&ix, "_tcp.web.shop.svc.cluster.local", RecordType::SRV);
    assert_eq!(
        (parent.code, parent.answers.len()),
        (ResponseCode::NoError, 0)
    );
}

#[test]
fn an_external_name_is_a_cname_for_every_type() {
    let ix = index();
    for t in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::CNAME,
        RecordType::TXT,
    ] {
        let a = ask(&ix, "ext.shop.svc.cluster.local", t);
        assert_eq!(a.code, ResponseCode::NoError, "{t}");
        assert_eq!(
            a.answers.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
            [RData::CNAME(CNAME(name("db.example.com")))],
            "{t}"
        );
    }
}

#[test]
fn names_that_do_not_exist_are_nxdomain_with_the_soa() {
    let ix = index();
    for q in [
        "nope.shop.svc.cluster.local",
        "web.other.svc.cluster.local",
        "web.shop.cluster.local",
        "x.db-0.db.shop.svc.cluster.local",
    ] {
        let a = ask(&ix, q, RecordType::A);
        assert_eq!(a.code, ResponseCode::NXDomain, "{q}");
        assert!(a.answers.is_empty(), "{q}");
        assert_eq!(a.authorities.len(), 1, "{q}");
        let RData::SOA(soa) = &a.authorities[0].data else {
            panic!("{q}: {a:?}")
        };
        assert_eq!(a.authorities[0].name, name("cluster.local"));
        assert_eq!(soa.minimum, TTL);
        let m = on_the_wire(q, RecordType::A, &a);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities.len(), 1);
    }
}

#[test]
fn other_types_of_existing_names_are_nodata() {
    let ix = index();
    for (q, t) in [
        ("web.shop.svc.cluster.local", RecordType::AAAA),
        ("web.shop.svc.cluster.local", RecordType::MX),
        ("db-0.db.shop.svc.cluster.local", RecordType::TXT),
        // Names that exist because names below them do.
        ("shop.svc.cluster.local", RecordType::A),
        ("svc.cluster.local", RecordType::A),
        ("cluster.local", RecordType::A),
        // A Service whose ClusterIP is not allocated yet.
        ("pending.shop.svc.cluster.local", RecordType::A),
    ] {
        let a = ask(&ix, q, t);
        assert_eq!(a.code, ResponseCode::NoError, "{q} {t}");
        assert!(a.answers.is_empty(), "{q} {t}");
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA, "{q} {t}");
    }
    // The apex does have its SOA.
    assert_eq!(ask(&ix, "cluster.local", RecordType::SOA).answers.len(), 1);
}

#[test]
fn the_schema_version_and_pod_names_are_served() {
    let ix = index();
    let a = ask(&ix, "dns-version.cluster.local", RecordType::TXT);
    assert_eq!(
        a.answers[0].data,
        RData::TXT(TXT::new(vec!["1.1.0".into()]))
    );
    assert_eq!(
        addrs(&ask(
            &ix,
            "10-244-0-77.shop.pod.cluster.local",
            RecordType::A
        )),
        ["10.244.0.77"]
    );
    assert_eq!(
        ask(&ix, "not-an-ip.shop.pod.cluster.local", RecordType::A).code,
        ResponseCode::NXDomain
    );
}

#[test]
fn names_outside_the_zone_are_not_answered() {
    let ix = index();
    assert!(ix.lookup(&name("example.com"), RecordType::A).is_none());
    assert!(ix.lookup(&name("local"), RecordType::A).is_none());
    // Reverse names the cluster does not hold go upstream too, and so do
    // other types of those it does.
    assert!(ix
        .lookup(&name("1.0.0.127.in-addr.arpa"), RecordType::PTR)
        .is_none());
    assert!(ix
        .lookup(&name("10.0.96.10.in-addr.arpa"), RecordType::A)
        .is_none());
    let ptr = ix
        .lookup(&name("10.0.96.10.in-addr.arpa"), RecordType::PTR)
        .expect("ours");
    assert_eq!(
        ptr.answers[0].data,
        RData::PTR(PTR(name("web.shop.svc.cluster.local")))
    );
}

#[test]
fn a_custom_domain_and_ipv6_addresses() {
    let services = vec![service(
        json!({"metadata": {"name": "v6", "namespace": "default"}, "spec": {
            "clusterIP": "fd00::10", "clusterIPs": ["fd00::10", "10.96.0.11"],
        }}),
    )];
    let ix = Index::build(
        &World {
            services: &services,
            slices: &[],
        },
        &name("edge.example"),
    );
    assert_eq!(
        addrs(&ask(&ix, "v6.default.svc.edge.example", RecordType::AAAA)),
        ["fd00::10"]
    );
    assert_eq!(
        addrs(&ask(&ix, "v6.default.svc.edge.example", RecordType::A)),
        ["10.96.0.11"]
    );
    assert!(ix
        .lookup(&name("v6.default.svc.cluster.local"), RecordType::A)
        .is_none());
}
