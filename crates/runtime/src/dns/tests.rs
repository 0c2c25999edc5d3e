//! The server on loopback sockets: hickory's client and `dig` ask it, a
//! tiny upstream answers what it forwards.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use serde_json::json;

use super::testing::{addresses, ask, dig, have_dig, upstream, Upstream};
use super::*;

async fn server(upstreams: Vec<SocketAddr>, timeout: Duration) -> (Arc<Dns>, SocketAddr) {
    let dns = Dns::new("cluster.local", Forwarder::new(upstreams, timeout)).expect("dns");
    let services: Vec<Arc<Service>> = [
        json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"name": "ext", "namespace": "shop"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
    ]
    .into_iter()
    .map(|v| Arc::new(serde_json::from_value(v).expect("svc")))
    .collect();
    dns.set_index(Index::build(
        &World {
            services: &services,
            slices: &[],
        },
        dns.zone(),
    ));
    let sockets = Sockets::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = sockets.local_addr();
    tokio::spawn(dns.clone().serve(vec![sockets]));
    (dns, addr)
}

async fn upstream_with_records() -> Upstream {
    upstream(&[
        ("outside.example.", "192.0.2.7".parse().expect("ip")),
        ("db.example.com.", "192.0.2.8".parse().expect("ip")),
    ])
    .await
}

#[tokio::test]
async fn the_zone_is_answered_over_udp_and_tcp_with_authority() {
    let up = upstream_with_records().await;
    let (_dns, addr) = server(vec![up.addr], Duration::from_secs(2)).await;
    for tcp in [false, true] {
        let m = ask(addr, "web.shop.svc.cluster.local.", RecordType::A, tcp).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative, "tcp={tcp}");
        assert_eq!(addresses(&m), ["10.96.0.10"], "tcp={tcp}");
        let m = ask(addr, "nope.shop.svc.cluster.local.", RecordType::A, tcp).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        let m = ask(addr, "web.shop.svc.cluster.local.", RecordType::AAAA, tcp).await;
        assert_eq!(
            (m.metadata.response_code, m.answers.len()),
            (ResponseCode::NoError, 0)
        );
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    }
    // Nothing in the zone went upstream.
    assert_eq!(up.asked.load(Ordering::SeqCst), 0);
    let m = ask(
        addr,
        "_http._tcp.web.shop.svc.cluster.local.",
        RecordType::SRV,
        false,
    )
    .await;
    assert!(matches!(&m.answers[0].data, RData::SRV(s) if s.port == 80));
    assert_eq!(
        m.additionals
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .count(),
        1
    );
}

#[tokio::test]
async fn names_outside_the_zone_are_forwarded_and_external_names_followed() {
    let up = upstream_with_records().await;
    let (_dns, addr) = server(vec![up.addr], Duration::from_secs(2)).await;
    for tcp in [false, true] {
        let m = ask(addr, "outside.example.", RecordType::A, tcp).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "tcp={tcp}");
        assert!(!m.metadata.authoritative);
        assert!(m.metadata.recursion_available);
        assert_eq!(addresses(&m), ["192.0.2.7"], "tcp={tcp}");
        // The upstream's NXDOMAIN is relayed as such.
        let m = ask(addr, "missing.example.", RecordType::A, tcp).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "tcp={tcp}"
        );
    }
    assert_eq!(up.asked.load(Ordering::SeqCst), 4);
    // An ExternalName: the alias, then its target's address from upstream.
    let m = ask(addr, "ext.shop.svc.cluster.local.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(matches!(&m.answers[0].data, RData::CNAME(c) if c.0.to_ascii() == "db.example.com."));
    assert_eq!(addresses(&m), ["192.0.2.8"]);
}

#[tokio::test]
async fn without_a_reachable_upstream_the_answer_is_servfail() {
    // One upstream that never answers, one where nothing listens.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr")
    };
    let (_dns, addr) = server(
        vec![silent.local_addr().expect("addr"), closed],
        Duration::from_millis(300),
    )
    .await;
    let m = ask(addr, "outside.example.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // The zone is still answered.
    let m = ask(addr, "web.shop.svc.cluster.local.", RecordType::A, false).await;
    assert_eq!(addresses(&m), ["10.96.0.10"]);
}

#[tokio::test]
async fn dig_reads_the_answers() {
    if !have_dig() {
        return;
    }
    let up = upstream_with_records().await;
    let (_dns, addr) = server(vec![up.addr], Duration::from_secs(2)).await;
    let run = move |name: &'static str, t: &'static str, extra: &'static [&'static str]| {
        tokio::task::spawn_blocking(move || dig(addr, name, t, extra).expect("dig runs"))
    };
    let short = run("web.shop.svc.cluster.local", "A", &["+short"])
        .await
        .expect("join");
    assert_eq!(short.trim(), "10.96.0.10");
    let tcp = run("web.shop.svc.cluster.local", "A", &["+short", "+tcp"])
        .await
        .expect("join");
    assert_eq!(tcp.trim(), "10.96.0.10");
    let fwd = run("outside.example", "A", &["+short"])
        .await
        .expect("join");
    assert_eq!(fwd.trim(), "192.0.2.7");
    let nx = run("nope.shop.svc.cluster.local", "A", &[])
        .await
        .expect("join");
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(nx.contains("flags: qr aa rd ra"), "{nx}");
    let ext = run("ext.shop.svc.cluster.local", "A", &["+short"])
        .await
        .expect("join");
    assert_eq!(
        ext.trim().lines().collect::<Vec<_>>(),
        ["db.example.com.", "192.0.2.8"]
    );
}

#[test]
fn cluster_domains_are_checked() {
    assert_eq!(
        zone_name("Cluster.Local.").expect("ok").to_ascii(),
        "cluster.local."
    );
    assert!(zone_name("").is_err());
    assert!(zone_name("bad..domain").is_err());
}
