//! The service proxy: skiff's kube-proxy, in the kernel with nftables.
//!
//! Every node agent keeps one nftables table, `ip skiff`, so that a
//! connection to `ClusterIP:port`, to `NodeIP:nodePort` (any local
//! address, `127.0.0.1` included) or to an external IP of a Service
//! reaches one of the Service's ready endpoints, picked at random per
//! connection:
//!
//! - from the node itself (nat `output` hook): node processes, the
//!   gateway, `curl` on the host;
//! - from pods and other hosts (nat `prerouting` hook): Linux containers
//!   behind the pod bridge, traffic for NodePorts.
//!
//! A Service port with no ready endpoint refuses new connections at once
//! (a TCP reset, an ICMP port-unreachable for UDP), as kube-proxy does,
//! instead of letting clients time out. Traffic that arrives through a
//! NodePort or an external IP, and an endpoint calling its own Service
//! (hairpin), is masqueraded so that the answer comes back the same way;
//! ClusterIP traffic keeps its source address, so endpoints see the real
//! client. `sessionAffinity: ClientIP` keeps a client on its endpoint for
//! the configured time (but see "Reloads" below).
//!
//! `127.0.0.1:nodePort` reaches endpoints on this node (a Wasm pod's
//! address is local to its node). An endpoint on another node is reached
//! only where `net.ipv4.conf.all.route_localnet=1`: the kernel will not
//! route a packet with a loopback source off the host before postrouting
//! can masquerade it. skiff does not flip that host-wide switch
//! (kube-proxy's iptables mode does, and then needs a guard against
//! martian packets to 127.0.0.0/8; its nftables mode drops localhost
//! NodePorts altogether).
//!
//! # Why nftables rather than a userspace proxy
//!
//! - **Nothing on the data path.** After the first packet the kernel's
//!   connection tracking carries the translation: no extra socket pair,
//!   no copy through this process, no added latency per request (measured
//!   with `scripts/bench-http`: see its ClusterIP row).
//! - **Every protocol and the client's address.** TCP, UDP and SCTP alike;
//!   the endpoint sees the caller's IP, which a userspace proxy would
//!   replace with its own.
//! - **Survives the agent.** Rules stay in the kernel while the agent
//!   restarts or upgrades, so Service traffic keeps flowing (the agent
//!   deliberately does not delete its table when it stops); a userspace
//!   proxy takes its connections down with it.
//! - **Scales with lookups, not rule walks.** Service addresses are one
//!   verdict-map lookup (`ip daddr . meta l4proto . th dport vmap`), where
//!   iptables walks a chain per Service.
//!
//! The price: the agent needs CAP_NET_ADMIN and the `nft` command, and
//! there is no request-level behaviour (retries, HTTP routing): that is
//! the gateway's job ([`crate::gateway`]), which also calls local Wasm
//! functions in-process.
//!
//! # Reloads
//!
//! The agent watches Services and EndpointSlices; a burst of changes is
//! one rebuild. It renders the whole table ([`ruleset::render`]) and
//! loads it with one `nft -f -` transaction that deletes and redefines
//! the table, so a packet never meets a half-written ruleset; when the
//! text is what it loaded last, nothing is loaded. Established
//! connections keep their translation in conntrack across reloads. Until
//! both watches have listed everything, the rules of the previous run stay
//! as they are. Every 30 s the agent checks the table is still there
//! (a firewall reload may flush the whole ruleset) and loads it again if
//! not. A reload resets the affinity memory of `sessionAffinity:
//! ClientIP` (the table's sets are recreated): a client may move to
//! another endpoint after any Service change in the cluster.
//!
//! If `nft` is missing or refuses the rules (no CAP_NET_ADMIN), the agent
//! logs one warning and runs on without ClusterIP traffic.
//!
//! - [`index`]: Services and EndpointSlices → the service ports to program.
//! - [`ruleset`]: service ports → nftables text (pure, unit-tested).
//! - [`nft`]: loading the text with `nft -f -`.

pub mod index;
pub mod nft;
pub mod ruleset;
#[cfg(test)]
mod tests_netns;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use tokio::sync::Notify;

use crate::service::reflect;
use index::Index;
use nft::Nft;

/// How long a burst of Service/EndpointSlice events may take to land
/// before the rules are rebuilt once for all of them.
const COALESCE: Duration = Duration::from_millis(20);
/// How often the agent checks that its table is still in the kernel.
const RESYNC: Duration = Duration::from_secs(30);

/// Program Service traffic on this node until the agent stops. Never
/// returns: without `nft`, it warns once and waits.
pub async fn run(client: kube::Client) {
    run_with(client, Nft::default()).await;
}

/// [`run`], with rules loaded where `nft` says.
pub async fn run_with(client: kube::Client, nft: Nft) {
    if let Err(e) = nft.available().await {
        tracing::warn!(
            "service proxy disabled: {e}; ClusterIPs and NodePorts do not reach pods from this node"
        );
        std::future::pending::<()>().await;
    }
    let changed = Arc::new(Notify::new());
    let services = reflect::<Service>(Api::all(client.clone()), changed.clone(), "service proxy");
    let slices = reflect::<EndpointSlice>(Api::all(client), changed.clone(), "service proxy");
    // An empty cache would wipe the previous run's rules: wait for both.
    let (a, b) = tokio::join!(services.wait_until_ready(), slices.wait_until_ready());
    if a.is_err() || b.is_err() {
        std::future::pending::<()>().await;
    }
    let mut loaded: Option<String> = None;
    let mut failing = false;
    loop {
        let index = Index::build(&services.state(), &slices.state());
        let text = ruleset::render(&index);
        if loaded.as_deref() != Some(text.as_str()) {
            match nft.load(&text).await {
                Ok(()) => {
                    if failing {
                        tracing::info!("service proxy: rules loaded again");
                    }
                    failing = false;
                    tracing::debug!(
                        ports = index.ports.len(),
                        bytes = text.len(),
                        "service proxy: rules loaded"
                    );
                    loaded = Some(text);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            "service proxy: {e}; ClusterIPs and NodePorts may not reach pods from this node (retrying on changes)"
                        );
                    }
                    failing = true;
                }
            }
        }
        tokio::select! {
            () = changed.notified() => tokio::time::sleep(COALESCE).await,
            () = tokio::time::sleep(RESYNC) => {
                if !nft.table_present().await {
                    loaded = None;
                }
            }
        }
    }
}
