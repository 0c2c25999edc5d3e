//! Cluster DNS as a pod's resolver sees it: `skiff up` with
//! `--dns-listen` on loopback, Services created with kubectl, and Debian's
//! `dig` asking the node's DNS server (found through the Node annotation
//! `skiff.dev/dns`) — a ClusterIP Service, a headless one with endpoints
//! and a pod hostname, an ExternalName, a missing name, and a name outside
//! the cluster whose only upstream does not answer (SERVFAIL). Forwarding
//! to an upstream that does answer is tested in-process
//! (`crates/runtime/src/agent/tests_api.rs`), with no DNS of the outside
//! world needed.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::harness::{eventually, require, run, Skiff};

/// `dig @addr name type` with extra options: its stdout.
fn dig(addr: SocketAddr, name: &str, qtype: &str, extra: &[&str]) -> String {
    let mut cmd = Command::new(require("/usr/bin/dig", "apt-get install dnsutils"));
    cmd.arg(format!("@{}", addr.ip()))
        .args([
            "-p",
            &addr.port().to_string(),
            name,
            qtype,
            "+time=2",
            "+tries=1",
        ])
        .args(extra);
    run(cmd, None, Duration::from_secs(20)).stdout
}

fn short(addr: SocketAddr, name: &str, qtype: &str) -> Vec<String> {
    let mut v: Vec<String> = dig(addr, name, qtype, &["+short"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

const HEADLESS: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  ports:
  - name: pg
    port: 5432
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-manual
  labels:
    kubernetes.io/service-name: db
    endpointslice.kubernetes.io/managed-by: e2e.skiff.dev
addressType: IPv4
ports:
- name: pg
  port: 5432
  protocol: TCP
endpoints:
- addresses: ["10.250.0.5"]
  hostname: db-0
  conditions: {ready: true}
- addresses: ["10.250.0.6"]
  hostname: db-1
  conditions: {ready: true}
- addresses: ["10.250.0.7"]
  hostname: db-2
  conditions: {ready: false}
"#;

#[test]
fn the_node_answers_for_services_with_the_cluster_domain() {
    // Port 9 (discard) on loopback: an upstream that never answers.
    let s = Skiff::start_with(&[
        "--dns-listen",
        "127.0.0.1:0",
        "--dns-upstream",
        "127.0.0.1:9",
        "--cluster-domain",
        "skiff.test",
    ]);
    let addr: SocketAddr = eventually(30, "the node's skiff.dev/dns annotation", || {
        let nodes = s.get_json("/api/v1/nodes");
        nodes["items"][0]["metadata"]["annotations"]["skiff.dev/dns"]
            .as_str()?
            .parse()
            .ok()
    });
    assert!(addr.ip().is_loopback(), "{addr}");

    s.kubectl(
        "1.33",
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
    )
    .ok();
    s.kubectl(
        "1.33",
        &[
            "create",
            "service",
            "externalname",
            "ext",
            "--external-name",
            "db.example.com",
        ],
    )
    .ok();
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(HEADLESS))
        .ok();
    let ip = s
        .kubectl(
            "1.33",
            &["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"],
        )
        .ok()
        .stdout;

    let web = eventually(30, "web's A record", || {
        Some(short(addr, "web.default.svc.skiff.test", "A")).filter(|a| !a.is_empty())
    });
    assert_eq!(web, [ip.trim().to_string()]);
    // Only ready endpoints, and each by its hostname.
    let db = eventually(30, "db's endpoints", || {
        Some(short(addr, "db.default.svc.skiff.test", "A")).filter(|a| a.len() == 2)
    });
    assert_eq!(db, ["10.250.0.5", "10.250.0.6"]);
    assert_eq!(
        short(addr, "db-1.db.default.svc.skiff.test", "A"),
        ["10.250.0.6"]
    );
    assert_eq!(
        short(addr, "_pg._tcp.db.default.svc.skiff.test", "SRV"),
        [
            "0 100 5432 db-0.db.default.svc.skiff.test.",
            "0 100 5432 db-1.db.default.svc.skiff.test."
        ]
    );
    // The same over TCP.
    let tcp = dig(addr, "web.default.svc.skiff.test", "A", &["+short", "+tcp"]);
    assert_eq!(tcp.trim(), ip.trim());
    // An ExternalName is its alias (its target cannot be resolved here).
    assert_eq!(
        short(addr, "ext.default.svc.skiff.test", "CNAME"),
        ["db.example.com."]
    );

    let nx = dig(addr, "nope.default.svc.skiff.test", "A", &[]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(nx.contains("flags: qr aa rd ra"), "{nx}");
    assert!(nx.contains("IN\tSOA\tns.dns.skiff.test."), "{nx}");
    let nodata = dig(addr, "web.default.svc.skiff.test", "AAAA", &[]);
    assert!(nodata.contains("status: NOERROR"), "{nodata}");
    assert!(nodata.contains("ANSWER: 0"), "{nodata}");
    // The default domain is not this cluster's: it goes upstream, which
    // does not answer: SERVFAIL once its 2 s are up.
    let out = dig(addr, "web.default.svc.cluster.local", "A", &["+time=5"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");

    // Pods' nameserver: port 53 of the pod bridge's gateway, when this
    // host lets skiff set up the pod network. Looked up in the socket
    // table (no traffic to the pod range).
    let node = s.get_json("/api/v1/nodes");
    if let Some(cidr) = node["items"][0]["spec"]["podCIDR"].as_str() {
        let gw = format!("{}.1", cidr.trim_end_matches(".0/24"));
        let bridge_up = run(
            {
                let mut c = Command::new("ip");
                c.args(["-4", "-o", "addr", "show"]);
                c
            },
            None,
            Duration::from_secs(10),
        )
        .stdout
        .contains(&format!("inet {gw}/"));
        if bridge_up {
            let mut c = Command::new("ss");
            c.args(["-H", "-lnu", "src", &format!("{gw}:53")]);
            let udp = run(c, None, Duration::from_secs(10)).stdout;
            assert!(
                udp.contains(&format!("{gw}:53")),
                "no DNS on the bridge gateway {gw}: {udp:?}"
            );
        } else {
            eprintln!(
                "no pod bridge on this host (needs CAP_NET_ADMIN): skipped the bridge DNS check"
            );
        }
    }
    s.assert_no_panics();
}
