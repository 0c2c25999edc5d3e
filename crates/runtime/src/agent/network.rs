//! The node's pod network: pod IPs from the Node's `spec.podCIDR`, and
//! routes to the other nodes' pod ranges.
//!
//! The control plane gives each Node a range (`spec.podCIDR`, a `/24` of
//! the cluster CIDR by default). The agent keeps a bridge, `skiff0`,
//! holding the range's first address; a pod that needs an address of its
//! own gets the lowest free one:
//!
//! - **Wasm pods** run in the agent's process, so their address is put on
//!   the bridge as a local `/32`: the pod's HTTP functions listen on it
//!   and every node routes to it. Wasm pods without ports (nothing can
//!   connect to them) report the node's address, so a node can hold tens
//!   of thousands of them with a `/24`.
//! - **Linux pods** get a veth pair whose host end is a port of the
//!   bridge and whose pod end, `eth0` in the pod's network namespace,
//!   holds the address ([`PodNetwork::assign_veth`], see
//!   [`super::sandbox`]); the bridge itself never holds it.
//!
//! For every other Node with a podCIDR, a route `podCIDR via InternalIP`
//! (tagged with protocol [`ROUTE_PROTO`], so the agent finds its own routes
//! again after a restart) makes pod IPs reachable across the fleet where
//! nodes share a link, as Kubernetes' simplest network plugins do.
//!
//! Links and routes are set with iproute2's `ip`, which every Linux host
//! has; configuring them needs CAP_NET_ADMIN. Without it, or while the
//! Node has no podCIDR, pods report the node's address (and two HTTP pods
//! on one node cannot share a port) — logged once, not fatal.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

/// The node's bridge unless `--pod-bridge` names another.
pub const BRIDGE: &str = "skiff0";
/// The routing protocol number skiff tags its routes with.
pub const ROUTE_PROTO: &str = "211";

/// An IPv4 network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// Parse `10.244.1.0/24`; the address is masked to the network.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = Self::mask_of(prefix);
        Some(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask_of(self.prefix) == u32::from(self.addr)
    }

    /// The gateway: the first address, kept by the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The addresses pods may get: all but the network, the gateway and
    /// the broadcast address.
    pub fn pod_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.addr);
        let size = 1u64 << (32 - u32::from(self.prefix));
        // Two below the top: the broadcast address is never handed out.
        (2..size.saturating_sub(1)).map(move |i| Ipv4Addr::from(base + i as u32))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Pod addresses of this node.
pub struct PodNetwork {
    node_ip: IpAddr,
    bridge: String,
    /// The node's range when the bridge is set up; None means pods share
    /// the node's address.
    range: Option<Cidr>,
    used: Mutex<HashSet<Ipv4Addr>>,
}

impl PodNetwork {
    /// No pod network: every pod reports the node's address.
    pub fn shared(node_ip: IpAddr) -> PodNetwork {
        PodNetwork {
            node_ip,
            bridge: BRIDGE.into(),
            range: None,
            used: Mutex::new(HashSet::new()),
        }
    }

    /// Set up the bridge for `range` and forget addresses no pod of
    /// `keep` holds (pods deleted while the agent was down). Falls back to
    /// [`PodNetwork::shared`] when the links cannot be configured.
    pub async fn setup(
        node_ip: IpAddr,
        bridge: &str,
        range: Cidr,
        keep: &HashSet<Ipv4Addr>,
    ) -> PodNetwork {
        match setup_bridge(bridge, range, keep).await {
            Ok(()) => PodNetwork {
                node_ip,
                bridge: bridge.into(),
                range: Some(range),
                used: Mutex::new(
                    keep.iter()
                        .copied()
                        .filter(|a| range.contains(*a))
                        .collect(),
                ),
            },
            Err(e) => {
                tracing::warn!(
                    "pods share the node's address {node_ip}: setting up the pod network {range} failed: {e}"
                );
                PodNetwork::shared(node_ip)
            }
        }
    }

    /// The node's range, when pods get addresses of their own.
    pub fn range(&self) -> Option<Cidr> {
        self.range
    }

    /// The node's own address.
    pub fn node_ip(&self) -> IpAddr {
        self.node_ip
    }

    /// An address for a Wasm pod that serves ports: the lowest free one of
    /// the range, put on the bridge. The node's address when there is no
    /// range or it is full.
    pub async fn assign_local(&self) -> Result<IpAddr, String> {
        let Some(range) = self.range else {
            return Ok(self.node_ip);
        };
        let ip = {
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            let Some(ip) = range.pod_addresses().find(|a| !used.contains(a)) else {
                return Err(format!("the node's pod range {range} has no free address"));
            };
            used.insert(ip);
            ip
        };
        if let Err(e) = ip_cmd(&["addr", "replace", &format!("{ip}/32"), "dev", &self.bridge]).await
        {
            self.forget(ip);
            return Err(format!(
                "putting the pod's address {ip} on {}: {e}",
                self.bridge
            ));
        }
        Ok(IpAddr::V4(ip))
    }

    /// The bridge the pod network hangs off.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// An address for a Linux pod's veth: the lowest free one of the
    /// range, only reserved (the sandbox puts it on the pod's `eth0`).
    pub fn assign_veth(&self) -> Result<IpAddr, String> {
        let Some(range) = self.range else {
            return Err("the node has no pod range".into());
        };
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let ip = range
            .pod_addresses()
            .find(|a| !used.contains(a))
            .ok_or_else(|| format!("the node's pod range {range} has no free address"))?;
        used.insert(ip);
        Ok(IpAddr::V4(ip))
    }

    /// Keep the veth address of a pod a previous agent started.
    pub fn adopt_veth(&self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip {
            if self.range.is_some_and(|r| r.contains(v4)) {
                self.used
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(v4);
            }
        }
    }

    /// Give a veth address back when its pod is gone.
    pub fn release_veth(&self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip {
            self.forget(v4);
        }
    }

    /// Keep an address an adopted pod already has (after an agent restart).
    pub async fn adopt_local(&self, ip: IpAddr) {
        let IpAddr::V4(v4) = ip else { return };
        let Some(range) = self.range.filter(|r| r.contains(v4)) else {
            return;
        };
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(v4);
        if let Err(e) = ip_cmd(&["addr", "replace", &format!("{v4}/32"), "dev", &self.bridge]).await
        {
            tracing::warn!("restoring the pod address {v4} in {range}: {e}");
        }
    }

    /// Give an address back when its pod is gone.
    pub async fn release(&self, ip: IpAddr) {
        let IpAddr::V4(v4) = ip else { return };
        if !self.range.is_some_and(|r| r.contains(v4)) {
            return;
        }
        if let Err(e) = ip_cmd(&["addr", "del", &format!("{v4}/32"), "dev", &self.bridge]).await {
            tracing::warn!("removing the pod address {v4}: {e}");
        }
        self.forget(v4);
    }

    fn forget(&self, ip: Ipv4Addr) {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

/// The bridge with the gateway address, up; pod addresses not in `keep`
/// removed.
async fn setup_bridge(bridge: &str, range: Cidr, keep: &HashSet<Ipv4Addr>) -> Result<(), String> {
    if !link_exists(bridge).await {
        ip_cmd(&["link", "add", bridge, "type", "bridge"]).await?;
    }
    let gw = format!("{}/{}", range.gateway(), range.prefix);
    ip_cmd(&["addr", "replace", &gw, "dev", bridge]).await?;
    ip_cmd(&["link", "set", bridge, "up"]).await?;
    // Addresses of pods that are gone, and of an earlier range.
    let out = ip_cmd(&["-4", "-o", "addr", "show", "dev", bridge]).await?;
    for line in out.lines() {
        let Some(addr) = line.split_whitespace().skip_while(|w| *w != "inet").nth(1) else {
            continue;
        };
        let Some((ip, prefix)) = addr.split_once('/') else {
            continue;
        };
        let Ok(ip) = ip.parse::<Ipv4Addr>() else {
            continue;
        };
        let stale = if prefix == "32" {
            !keep.contains(&ip) || !range.contains(ip)
        } else {
            addr != gw
        };
        if stale {
            let _ = ip_cmd(&["addr", "del", addr, "dev", bridge]).await;
        }
    }
    Ok(())
}

async fn link_exists(name: &str) -> bool {
    ip_cmd(&["link", "show", "dev", name]).await.is_ok()
}

/// Run `ip ARGS`; its stdout, or its stderr as the error.
pub async fn ip_cmd(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The podCIDR the control plane gave this Node, waiting up to `wait` for
/// one to be assigned.
pub async fn pod_cidr(client: &kube::Client, node: &str, wait: Duration) -> Option<Cidr> {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Ok(n) = api.get(node).await {
            if let Some(c) = n
                .spec
                .and_then(|s| s.pod_cidr)
                .and_then(|c| Cidr::parse(&c))
            {
                return Some(c);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The routes this node wants: every other Node's podCIDR via its
/// InternalIP.
pub fn wanted_routes<'a>(
    nodes: impl Iterator<Item = &'a Node>,
    me: &str,
) -> BTreeMap<String, String> {
    let mut routes = BTreeMap::new();
    for n in nodes {
        if n.metadata.name.as_deref() == Some(me) {
            continue;
        }
        let Some(cidr) = n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(Cidr::parse)
        else {
            continue;
        };
        let ip = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone());
        if let Some(ip) = ip {
            routes.insert(cidr.to_string(), ip);
        }
    }
    routes
}

/// Keep a route to every other node's pod range while the agent runs.
pub async fn maintain_routes(client: kube::Client, me: String) {
    let api: Api<Node> = Api::all(client);
    let mut nodes = BTreeMap::<String, Node>::new();
    let mut have = current_routes().await;
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut warned = HashSet::new();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Init) => nodes.clear(),
            Ok(Event::InitApply(n) | Event::Apply(n)) => {
                nodes.insert(n.metadata.name.clone().unwrap_or_default(), n);
            }
            Ok(Event::Delete(n)) => {
                nodes.remove(n.metadata.name.as_deref().unwrap_or_default());
            }
            Ok(Event::InitDone) => {}
            Err(e) => {
                tracing::warn!(error = %e, "watching nodes for pod routes; retrying");
                continue;
            }
        }
        let want = wanted_routes(nodes.values(), &me);
        for (cidr, via) in &want {
            if have.get(cidr) == Some(via) {
                continue;
            }
            let r = ip_cmd(&["route", "replace", cidr, "via", via, "proto", ROUTE_PROTO]).await;
            match r {
                Ok(_) => {
                    have.insert(cidr.clone(), via.clone());
                }
                Err(e) => {
                    if warned.insert(cidr.clone()) {
                        tracing::warn!("pods in {cidr} are unreachable from this node: {e}");
                    }
                }
            }
        }
        let gone: Vec<String> = have
            .keys()
            .filter(|c| !want.contains_key(*c))
            .cloned()
            .collect();
        for cidr in gone {
            let _ = ip_cmd(&["route", "del", &cidr, "proto", ROUTE_PROTO]).await;
            have.remove(&cidr);
        }
    }
}

/// skiff's routes as the kernel has them: `cidr → via`.
async fn current_routes() -> BTreeMap<String, String> {
    let mut routes = BTreeMap::new();
    let Ok(out) = ip_cmd(&["-4", "route", "show", "proto", ROUTE_PROTO]).await else {
        return routes;
    };
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let (Some(cidr), Some(i)) = (words.first(), words.iter().position(|w| *w == "via")) {
            if let Some(via) = words.get(i + 1) {
                routes.insert((*cidr).to_string(), (*via).to_string());
            }
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hand_out_addresses_between_the_gateway_and_broadcast() {
        let c = Cidr::parse("10.244.3.77/24").expect("cidr");
        assert_eq!(c.to_string(), "10.244.3.0/24");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 244, 3, 1));
        let all: Vec<_> = c.pod_addresses().collect();
        assert_eq!(all.len(), 253);
        assert_eq!(all[0], Ipv4Addr::new(10, 244, 3, 2));
        assert_eq!(all[252], Ipv4Addr::new(10, 244, 3, 254));
        assert!(c.contains(Ipv4Addr::new(10, 244, 3, 255)));
        assert!(!c.contains(Ipv4Addr::new(10, 244, 4, 1)));
        assert_eq!(
            Cidr::parse("10.0.0.0/30").map(|c| c.pod_addresses().count()),
            Some(1)
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0").is_none());
        assert!(Cidr::parse("fd00::/64").is_none());
    }

    #[test]
    fn routes_go_to_other_nodes_with_a_range_and_an_address() {
        let node = |name: &str, cidr: Option<&str>, ip: Option<&str>| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"podCIDR": cidr},
                "status": {"addresses": ip.map(|ip| vec![serde_json::json!({"type": "InternalIP", "address": ip})]).unwrap_or_default()},
            }))
            .expect("node")
        };
        let nodes = [
            node("me", Some("10.244.0.0/24"), Some("10.0.0.1")),
            node("b", Some("10.244.1.0/24"), Some("10.0.0.2")),
            node("c", None, Some("10.0.0.3")),
            node("d", Some("10.244.3.0/24"), None),
        ];
        let routes = wanted_routes(nodes.iter(), "me");
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            vec![("10.244.1.0/24".to_string(), "10.0.0.2".to_string())]
        );
    }
}
