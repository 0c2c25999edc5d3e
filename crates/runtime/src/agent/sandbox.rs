//! A Linux pod's sandbox: the network and IPC namespaces all its
//! containers share.
//!
//! The agent cannot unshare a namespace itself (it is multi-threaded and
//! forbids `unsafe`), so it asks iproute2: `ip netns add skiff-<uid>`
//! makes a named namespace (a file under `/run/netns`), and a veth pair
//! joins it to the node's bridge:
//!
//! ```text
//! host:  skiff0 (podCIDR .1) ── vsk<uid12>          the host end, a bridge port
//! pod:                          eth0  <pod IP>/<prefix>, default via .1; lo up
//! ```
//!
//! The pod's address comes from the same range as Wasm pods'
//! ([`PodNetwork::assign_veth`]) but is never put on the bridge. The
//! namespace's name is kept in the pod's record, so a restarted agent
//! finds it again; deleting the namespace removes the veth pair with it.
//! Egress leaving the node is masqueraded ([`enable_egress`]): an
//! nftables table per bridge, [`nat_table`]. The IPC namespace is a file
//! of the same name under [`IPCNS_DIR`], made by the launcher
//! ([`container::namespaces`]), so System V IPC and POSIX message queues
//! work between a pod's containers as in Kubernetes.

use std::net::IpAddr;
use std::path::PathBuf;

use super::network::{ip_cmd, PodNetwork};

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// Where pods' IPC namespaces are kept.
pub const IPCNS_DIR: &str = "/run/skiff/ipcns";

/// The sandbox of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The namespace's name (`skiff-<uid12>`).
    pub netns: String,
    /// The pod's address on eth0.
    pub ip: IpAddr,
}

impl Sandbox {
    /// The namespace file containers join.
    pub fn path(&self) -> PathBuf {
        netns_path(&self.netns)
    }

    /// The IPC namespace file containers join.
    pub fn ipc_path(&self) -> PathBuf {
        PathBuf::from(IPCNS_DIR).join(&self.netns)
    }
}

async fn ensure_ipc(s: &Sandbox) -> Result<(), String> {
    let path = s.ipc_path();
    tokio::task::spawn_blocking(move || container::namespaces::create_ipc(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the pod's IPC namespace: {e}"))
}

/// The namespace file of `name`.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

fn short_uid(uid: &str) -> String {
    uid.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect()
}

/// The namespace name of pod `uid`.
pub fn netns_name(uid: &str) -> String {
    format!("skiff-{}", short_uid(uid))
}

/// The host end of pod `uid`'s veth (15 characters at most).
pub fn veth_name(uid: &str) -> String {
    format!("vsk{}", short_uid(uid))
}

/// Make pod `uid`'s sandbox, or take over the one a previous agent made
/// (`known`: the namespace and address in the pod's record).
pub async fn ensure(
    network: &PodNetwork,
    uid: &str,
    known: Option<(String, IpAddr)>,
) -> Result<Sandbox, String> {
    let range = network.range().ok_or_else(|| {
        "the node has no pod network (no podCIDR, or the bridge could not be set up): Linux pods need one".to_string()
    })?;
    let name = netns_name(uid);
    if let Some((ns, ip)) = known.filter(|(ns, _)| *ns == name) {
        if netns_path(&ns).exists() && link_exists(&veth_name(uid)).await {
            network.adopt_veth(ip);
            let s = Sandbox { netns: ns, ip };
            ensure_ipc(&s).await?;
            return Ok(s);
        }
        // Half there: start afresh, keeping the address.
        remove(&Sandbox { netns: ns, ip }).await;
        network.adopt_veth(ip);
        return create(network, uid, ip, range).await;
    }
    let ip = network.assign_veth()?;
    create(network, uid, ip, range).await
}

async fn create(
    network: &PodNetwork,
    uid: &str,
    ip: IpAddr,
    range: super::network::Cidr,
) -> Result<Sandbox, String> {
    let sandbox = Sandbox {
        netns: netns_name(uid),
        ip,
    };
    let made = match setup(network.bridge(), uid, &sandbox, range).await {
        Ok(()) => ensure_ipc(&sandbox).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(()) => Ok(sandbox),
        Err(e) => {
            remove(&sandbox).await;
            network.release_veth(ip);
            Err(format!("setting up the pod's network: {e}"))
        }
    }
}

async fn setup(
    bridge: &str,
    uid: &str,
    s: &Sandbox,
    range: super::network::Cidr,
) -> Result<(), String> {
    let host = veth_name(uid);
    let ns = s.netns.as_str();
    if !netns_path(ns).exists() {
        ip_cmd(&["netns", "add", ns]).await?;
    }
    let _ = ip_cmd(&["link", "del", &host]).await;
    ip_cmd(&[
        "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])
    .await?;
    ip_cmd(&["link", "set", &host, "master", bridge]).await?;
    ip_cmd(&["link", "set", &host, "up"]).await?;
    let addr = format!("{}/{}", s.ip, range.prefix);
    let gw = range.gateway().to_string();
    for args in [
        vec!["addr", "add", addr.as_str(), "dev", "eth0"],
        vec!["link", "set", "lo", "up"],
        vec!["link", "set", "eth0", "up"],
        vec!["route", "replace", "default", "via", gw.as_str()],
    ] {
        let mut full = vec!["-n", ns];
        full.extend(args);
        ip_cmd(&full).await?;
    }
    Ok(())
}

/// Delete the namespace (and with it the veth pair). Gone already is
/// fine.
pub async fn remove(s: &Sandbox) {
    let ipc = s.ipc_path();
    match tokio::task::spawn_blocking(move || container::namespaces::remove(&ipc)).await {
        Ok(Err(e)) => tracing::warn!(netns = %s.netns, "removing a pod's IPC namespace: {e}"),
        Err(e) => tracing::warn!(netns = %s.netns, "removing a pod's IPC namespace: {e}"),
        Ok(Ok(())) => {}
    }
    if netns_path(&s.netns).exists() {
        if let Err(e) = ip_cmd(&["netns", "del", &s.netns]).await {
            tracing::warn!(netns = %s.netns, "removing a pod's network namespace: {e}");
        }
    }
}

/// Remove the namespace of pod `uid` by name, when a record names it.
pub async fn remove_named(netns: &str) {
    if netns.starts_with("skiff-") {
        remove(&Sandbox {
            netns: netns.to_string(),
            ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        })
        .await;
    }
}

async fn link_exists(name: &str) -> bool {
    ip_cmd(&["link", "show", "dev", name]).await.is_ok()
}

/// Let pods reach beyond the node: IP forwarding on, and traffic from the
/// pod range to outside it, leaving through anything but the bridge,
/// masqueraded (the nftables table [`nat_table`], replaced whole). The
/// destination matters where `br_netfilter` is loaded: bridged pod-to-pod
/// packets then pass the nat hooks too, with a veth as their output. Failing that, pods
/// reach other pods and the node but not the outside: logged, not fatal.
pub async fn enable_egress(range: super::network::Cidr, bridge: &str) {
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        tracing::warn!("Linux pods cannot reach other nodes: enabling net.ipv4.ip_forward: {e}");
    }
    // One table per bridge: several nodes may share a host's network
    // namespace, each with its own bridge and range.
    let table = nat_table(bridge);
    let rules = format!(
        "table ip {table} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {range} ip daddr != {range} oifname != \"{bridge}\" masquerade\n  }}\n}}\n"
    );
    let _ = run_nft(&["delete", "table", "ip", &table], None).await;
    if let Err(e) = run_nft(&["-f", "-"], Some(&rules)).await {
        tracing::warn!("Linux pods cannot reach beyond the node: masquerading with nft: {e}");
    }
}

/// The nftables table of the node whose bridge is `bridge`
/// (`skiff_nat_<bridge>`, `-` spelled `_`).
pub fn nat_table(bridge: &str) -> String {
    let name: String = bridge
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("skiff_nat_{name}")
}

async fn run_nft(args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nft")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("running nft: {e}"))?;
    if let Some(mut w) = child.stdin.take() {
        if let Some(text) = stdin {
            w.write_all(text.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_limits() {
        let uid = "0f4c2a1e-9b7d-4c3e-8a21-5d6f7e8a9b0c";
        assert_eq!(netns_name(uid), "skiff-0f4c2a1e9b7d");
        assert_eq!(veth_name(uid), "vsk0f4c2a1e9b7d");
        assert!(veth_name(uid).len() <= 15);
        assert_eq!(nat_table("skt123-0"), "skiff_nat_skt123_0");
    }
}
