//! `resolv.conf`: the host's, read; a pod's, written.
//!
//! A pod's resolver configuration follows its `dnsPolicy` as the kubelet
//! builds it:
//!
//! - `ClusterFirst` (the default): the node's DNS server (the pod bridge's
//!   gateway address), the search path `NS.svc.ZONE svc.ZONE ZONE`
//!   followed by the host's search domains, and `options ndots:5`, so that
//!   `web` and `web.other` find Services before the outside world. A pod
//!   on the host network gets the host's configuration instead (Kubernetes
//!   asks for `ClusterFirstWithHostNet` to opt in), as does any pod when the
//!   node runs no DNS server.
//! - `ClusterFirstWithHostNet`: `ClusterFirst`, on the host network too.
//! - `Default`: the host's configuration (its nameservers, search and
//!   options).
//! - `None`: nothing but the pod's `dnsConfig`.
//!
//! `dnsConfig` is merged into every policy: its nameservers and searches
//! are appended (without repeats), its options replace those of the same
//! name. The result keeps at most 3 nameservers and 32 search domains, the
//! limits glibc and the kubelet apply.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::PodSpec;

use super::forward::DNS_PORT;

/// At most this many nameservers are read by resolvers.
pub const MAX_NAMESERVERS: usize = 3;
/// At most this many search domains (the kubelet's limit).
pub const MAX_SEARCHES: usize = 32;

/// A resolver configuration, as `resolv.conf` holds one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Read the `nameserver`, `search`/`domain` and `options` lines of a
    /// `resolv.conf`; everything else (comments, `sortlist`) is skipped.
    pub fn parse(text: &str) -> ResolvConf {
        let mut rc = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => rc.nameservers.extend(words.next().map(str::to_string)),
                // The last search or domain line wins, as in glibc.
                Some("search" | "domain") => rc.searches = words.map(str::to_string).collect(),
                Some("options") => {
                    for o in words {
                        set_option(&mut rc.options, o);
                    }
                }
                _ => {}
            }
        }
        rc
    }

    /// The nameservers as socket addresses, port 53; entries that are not
    /// addresses (or carry an IPv6 zone) are left out.
    pub fn upstreams(&self) -> Vec<SocketAddr> {
        self.nameservers
            .iter()
            .filter_map(|n| n.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, DNS_PORT))
            .collect()
    }

    fn limit(mut self) -> ResolvConf {
        self.nameservers.truncate(MAX_NAMESERVERS);
        self.searches.truncate(MAX_SEARCHES);
        self
    }
}

impl fmt::Display for ResolvConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.nameservers {
            writeln!(f, "nameserver {n}")?;
        }
        if !self.searches.is_empty() {
            writeln!(f, "search {}", self.searches.join(" "))?;
        }
        if !self.options.is_empty() {
            writeln!(f, "options {}", self.options.join(" "))?;
        }
        Ok(())
    }
}

/// Add or replace an option by its name (`ndots:2` replaces `ndots:5`).
fn set_option(options: &mut Vec<String>, option: &str) {
    let name = option.split(':').next().unwrap_or(option);
    match options
        .iter_mut()
        .find(|o| o.split(':').next().unwrap_or(o) == name)
    {
        Some(o) => *o = option.to_string(),
        None => options.push(option.to_string()),
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

/// What the node knows about cluster DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The address pods ask: the pod bridge's gateway. None when the node
    /// serves no DNS to pods.
    pub nameserver: Option<IpAddr>,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// The `resolv.conf` of a pod in `namespace` with `spec`, given the node's
/// cluster DNS and the host's own `resolv.conf`.
pub fn pod_resolv_conf(
    spec: &PodSpec,
    namespace: &str,
    cluster: &ClusterDns,
    host: &ResolvConf,
) -> ResolvConf {
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network == Some(true);
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut rc = match (policy, cluster.nameserver) {
        ("None", _) => ResolvConf::default(),
        (_, Some(ns)) if cluster_first => {
            let domain = cluster.domain.trim_end_matches('.');
            let mut searches = vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ];
            for s in &host.searches {
                push_unique(&mut searches, s);
            }
            ResolvConf {
                nameservers: vec![ns.to_string()],
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => host.clone(),
    };
    if let Some(cfg) = &spec.dns_config {
        for n in cfg.nameservers.iter().flatten() {
            push_unique(&mut rc.nameservers, n);
        }
        for s in cfg.searches.iter().flatten() {
            push_unique(&mut rc.searches, s);
        }
        for o in cfg.options.iter().flatten() {
            let Some(name) = o.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            match o.value.as_deref() {
                Some(v) => set_option(&mut rc.options, &format!("{name}:{v}")),
                None => set_option(&mut rc.options, name),
            }
        }
    }
    rc.limit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut v = v;
        v["containers"] = serde_json::json!([{"name": "c"}]);
        serde_json::from_value(v).expect("pod spec")
    }

    fn host() -> ResolvConf {
        ResolvConf::parse(
            "# from the DHCP lease\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nsearch corp.example\noptions edns0 ndots:2\n",
        )
    }

    fn cluster() -> ClusterDns {
        ClusterDns {
            nameserver: Some("10.244.0.1".parse().expect("ip")),
            domain: "cluster.local".into(),
        }
    }

    #[test]
    fn host_resolv_conf_is_read_as_glibc_does() {
        let rc = ResolvConf::parse(
            "domain first.example\nsearch a.example b.example # trailing\nnameserver 10.0.0.2\nnameserver 10.0.0.3 ; old\noptions ndots:1\noptions ndots:3 rotate\nsortlist 10.0.0.0\n",
        );
        assert_eq!(rc.nameservers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(rc.searches, ["a.example", "b.example"]);
        assert_eq!(rc.options, ["ndots:3", "rotate"]);
        assert_eq!(
            rc.upstreams(),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().expect("addr"),
                "10.0.0.3:53".parse().expect("addr")
            ]
        );
        // A link-local address with a zone is not a socket address.
        assert_eq!(host().upstreams().len(), 1);
    }

    #[test]
    fn cluster_first_asks_the_node_and_searches_the_namespace_first() {
        let rc = pod_resolv_conf(&spec(serde_json::json!({})), "shop", &cluster(), &host());
        assert_eq!(
            rc.to_string(),
            "nameserver 10.244.0.1\n\
             search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
             options ndots:5\n"
        );
        let explicit = spec(serde_json::json!({"dnsPolicy": "ClusterFirst"}));
        assert_eq!(pod_resolv_conf(&explicit, "shop", &cluster(), &host()), rc);
    }

    #[test]
    fn host_network_pods_need_cluster_first_with_host_net() {
        let hn = spec(serde_json::json!({"hostNetwork": true}));
        assert_eq!(pod_resolv_conf(&hn, "shop", &cluster(), &host()), host());
        let opt_in =
            spec(serde_json::json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert_eq!(
            pod_resolv_conf(&opt_in, "shop", &cluster(), &host()).nameservers,
            ["10.244.0.1"]
        );
    }

    #[test]
    fn default_policy_and_a_node_without_dns_use_the_hosts_configuration() {
        let d = spec(serde_json::json!({"dnsPolicy": "Default"}));
        assert_eq!(pod_resolv_conf(&d, "shop", &cluster(), &host()), host());
        let no_dns = ClusterDns {
            nameserver: None,
            ..cluster()
        };
        assert_eq!(
            pod_resolv_conf(&spec(serde_json::json!({})), "shop", &no_dns, &host()),
            host()
        );
    }

    #[test]
    fn none_takes_only_dns_config_and_dns_config_merges_into_the_others() {
        let none = spec(serde_json::json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"],
            "searches": ["my.dns.search.suffix"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        }}));
        assert_eq!(
            pod_resolv_conf(&none, "shop", &cluster(), &host()).to_string(),
            "nameserver 1.1.1.1\nsearch my.dns.search.suffix\noptions ndots:2 edns0\n"
        );
        let merged = spec(serde_json::json!({"dnsConfig": {
            "nameservers": ["10.244.0.1", "192.0.2.1", "192.0.2.2", "192.0.2.3"],
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}],
        }}));
        let rc = pod_resolv_conf(&merged, "shop", &cluster(), &host());
        // Repeats dropped, three nameservers kept, ndots replaced.
        assert_eq!(rc.nameservers, ["10.244.0.1", "192.0.2.1", "192.0.2.2"]);
        assert_eq!(
            rc.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "extra.example"
            ]
        );
        assert_eq!(rc.options, ["ndots:1", "single-request"]);
    }

    #[test]
    fn a_custom_cluster_domain_shapes_the_search_path() {
        let c = ClusterDns {
            domain: "edge.example.".into(),
            ..cluster()
        };
        let rc = pod_resolv_conf(
            &spec(serde_json::json!({})),
            "default",
            &c,
            &ResolvConf::default(),
        );
        assert_eq!(
            rc.searches,
            [
                "default.svc.edge.example",
                "svc.edge.example",
                "edge.example"
            ]
        );
    }
}
