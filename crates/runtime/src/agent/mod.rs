//! The node agent: skiff's kubelet.
//!
//! It registers this machine as a Node, keeps a Lease in `kube-node-lease`
//! renewed, watches the pods bound to the node and drives each one through
//! its lifecycle with the runtime its RuntimeClass names, reporting status
//! and Events through the Kubernetes API. It is an ordinary API client
//! (kube-rs): the API server may be in this process or across the network.
//!
//! - [`node`]: the Node object and its periodic status heartbeat.
//! - [`lease`]: the node Lease, renewed every 10 s.
//! - [`pods`]: the watch on bound pods and one task per pod.
//! - [`container`]: one container's lifecycle (pull, start, wait, restart).
//! - [`status`]: pod and container status as Kubernetes reports it.
//! - [`events`]: core/v1 Events.
//! - [`probe`]: startup, liveness and readiness probes.
//! - [`sandbox`]: a Linux pod's network namespace and veth.
//! - [`env`](mod@env): command/args, env and volumes resolved into a [`ContainerConfig`].
//! - [`server`]: the node endpoint (HTTPS) the API server proxies `pods/log` to.
//! - [`certs`]: its serving certificate from the cluster CA (a
//!   CertificateSigningRequest), renewed as it nears its end.
//! - [`network`]: pod addresses on the node's bridge, routes to other nodes.
//!
//! Beside them run the built-in gateway ([`crate::gateway`]) and the
//! service proxy ([`crate::proxy`]) when the configuration asks for them.
//!
//! [`ContainerConfig`]: crate::cri::ContainerConfig

pub mod activity;
pub mod certs;
pub mod container;
pub mod env;
pub mod events;
pub mod exec;
pub mod lease;
pub mod network;
pub mod node;
pub mod pods;
pub mod probe;
pub mod sandbox;
pub mod server;
pub mod status;
#[cfg(test)]
pub(crate) mod tests_api;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::cri::ContainerRuntime;

/// Where the agent gets a container's image from: the image store, or any
/// other source that can hand over a verified module on disk.
pub trait ImageSource: Send + Sync {
    /// Make `image` available on this node, honouring `policy`
    /// (`Always`, `IfNotPresent` or `Never`) and using the pod's pull
    /// secrets (each a `.dockerconfigjson` document). The error is the
    /// message the pod shows under `ErrImagePull`.
    fn pull<'a>(
        &'a self,
        image: &'a str,
        policy: &'a str,
        pull_secrets: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<PulledImage, String>>;

    /// Whether `image` is on this node already, so that `IfNotPresent`
    /// will not contact a registry (the kubelet then reports "already
    /// present on machine" instead of a pull).
    fn present(&self, image: &str) -> bool {
        let _ = image;
        false
    }
}

/// An image ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// Content digest (`sha256:…`), reported as the container's `imageID`.
    pub digest: String,
    /// The module or component on disk.
    pub module_path: PathBuf,
    /// Whether the image is a Wasm module or component (rather than a
    /// Linux image).
    pub is_wasm: bool,
    /// A Linux image's layers and config (None for Wasm images).
    pub linux: Option<LinuxImage>,
}

/// What the `linux` handler needs of a Linux image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxImage {
    /// The layers, bottom first, verified in the store.
    pub layers: Vec<crate::images::Layer>,
    /// Entrypoint, Cmd, Env, WorkingDir and User.
    pub config: crate::images::ImageConfig,
}

/// How the agent presents itself and where it keeps its files.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name (`kubernetes.io/hostname` too).
    pub node_name: String,
    /// `kubernetes.io/arch` as Kubernetes names it (`amd64`, `arm64`).
    pub arch: String,
    /// Extra Node labels (`--node-label k=v`).
    pub labels: BTreeMap<String, String>,
    /// Per-pod state, volumes and container logs live here.
    pub data_dir: PathBuf,
    /// The node's InternalIP; the first non-loopback IPv4 when unset.
    pub internal_ip: Option<IpAddr>,
    /// The cluster CA (PEM). The node endpoint then serves only the API
    /// server's node client certificate, signed by it; without it, anyone
    /// who reaches the port reads logs and `kubectl exec` is refused.
    pub api_ca_pem: Option<String>,
    /// Where the node keeps its serving certificate and key
    /// ([`certs::SERVING_FILE`]); None keeps them in memory only, and the
    /// node asks for a new one at each start.
    pub pki_dir: Option<PathBuf>,
    /// The node endpoint's port (`daemonEndpoints.kubeletEndpoint.Port`);
    /// 0 picks a free one.
    pub port: u16,
    /// `capacity.pods`. Kubernetes' default is 110; in-process Wasm pods
    /// cost kilobytes, so Wasm nodes may set this much higher.
    pub max_pods: u32,
    /// skiff's version, reported in `nodeInfo`.
    pub version: String,
    /// How often the Lease is renewed.
    pub lease_renew: std::time::Duration,
    /// The Lease's `leaseDurationSeconds` (the kubelet renews every
    /// quarter of it).
    pub lease_duration_seconds: i32,
    /// How often the Node's status is refreshed when nothing changed.
    pub status_refresh: std::time::Duration,
    /// How long to wait at start for the control plane to give the Node a
    /// `spec.podCIDR`; without one pods share the node's address.
    pub pod_cidr_wait: std::time::Duration,
    /// The built-in gateway's port on the node's address and loopback
    /// (0 picks one); None runs no gateway. The address it listens on is
    /// published as the Node annotation [`GATEWAY_ANNOTATION`].
    pub gateway_port: Option<u16>,
    /// The gateway's HTTPS port (certificates from the Ingresses' `tls`
    /// Secrets), likewise; published as [`GATEWAY_TLS_ANNOTATION`]. Only
    /// with [`AgentConfig::gateway_port`].
    pub gateway_tls_port: Option<u16>,
    /// The bridge holding the node's pod addresses.
    pub pod_bridge: String,
    /// Extra Node annotations.
    pub annotations: BTreeMap<String, String>,
    /// The cluster domain the node's DNS server answers for.
    pub cluster_domain: String,
    /// An address the DNS server listens on (UDP and TCP; port 0 picks
    /// one) besides port 53 of the pod bridge's gateway, which it takes
    /// whenever the pod network is up. Published as [`DNS_ANNOTATION`].
    pub dns_listen: Option<SocketAddr>,
    /// Where names outside the cluster are forwarded; when empty, the
    /// nameservers of [`AgentConfig::resolv_conf`].
    pub dns_upstreams: Vec<SocketAddr>,
    /// The host's resolver configuration: the default upstreams, and what
    /// pods with `dnsPolicy: Default` get.
    pub resolv_conf: PathBuf,
    /// Program ClusterIP and NodePort traffic with nftables
    /// ([`crate::proxy`]). Off in [`AgentConfig::new`] (tests and
    /// embedders share one network namespace); `skiff node` and
    /// `skiff up` turn it on unless `--no-service-proxy`.
    pub service_proxy: bool,
}

/// The Node annotation naming the node's gateway, `IP:PORT`.
pub const GATEWAY_ANNOTATION: &str = "skiff.dev/gateway";
/// The Node annotation naming the gateway's HTTPS address, `IP:PORT`.
pub const GATEWAY_TLS_ANNOTATION: &str = "skiff.dev/gateway-tls";
/// The Node annotation naming the node's DNS server, `IP:PORT`: the
/// [`AgentConfig::dns_listen`] address when set, else the pod bridge's
/// gateway on port 53.
pub const DNS_ANNOTATION: &str = "skiff.dev/dns";
/// How long one upstream DNS server gets to answer a forwarded question.
const DNS_UPSTREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl AgentConfig {
    /// Defaults as the kubelet has them: the host's architecture, port
    /// 10250, 110 pods, Lease renewed every 10 s, status every minute.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            node_name: node_name.into(),
            arch: host_arch().to_string(),
            labels: BTreeMap::new(),
            data_dir: data_dir.into(),
            internal_ip: None,
            api_ca_pem: None,
            pki_dir: None,
            port: 10250,
            max_pods: 110,
            version: env!("CARGO_PKG_VERSION").to_string(),
            lease_renew: std::time::Duration::from_secs(10),
            lease_duration_seconds: lease::DEFAULT_DURATION_SECONDS,
            status_refresh: std::time::Duration::from_secs(60),
            pod_cidr_wait: std::time::Duration::ZERO,
            gateway_port: None,
            gateway_tls_port: None,
            pod_bridge: network::BRIDGE.into(),
            annotations: BTreeMap::new(),
            cluster_domain: crate::dns::CLUSTER_DOMAIN.into(),
            dns_listen: None,
            dns_upstreams: Vec::new(),
            resolv_conf: "/etc/resolv.conf".into(),
            service_proxy: false,
        }
    }
}

/// The host's architecture under its Kubernetes (Go) name.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("registering node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("preparing the agent's data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node endpoint: {0}")]
    Server(String),
    #[error("cluster DNS: {0}")]
    Dns(#[from] crate::dns::DnsError),
    #[error("the agent's {0} task ended unexpectedly")]
    TaskEnded(&'static str),
}

/// Shared by every task of the agent.
pub(crate) struct Ctx {
    pub client: kube::Client,
    pub cfg: AgentConfig,
    pub runtimes: Vec<Arc<dyn ContainerRuntime>>,
    pub images: Arc<dyn ImageSource>,
    /// The address pods report as hostIP (and podIP when they have no
    /// address of their own).
    pub node_ip: IpAddr,
    /// Pod addresses.
    pub network: network::PodNetwork,
    pub recorder: events::Recorder,
    /// RuntimeClass name → handler, read once per name for a short while
    /// (the kubelet keeps an informer; pods of one Deployment all ask).
    pub runtime_classes:
        std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
    /// The running containers `kubectl exec` can reach.
    pub execs: Arc<exec::Execs>,
    /// Told when the API server answers again after the lease could not
    /// be renewed: watches opened before may sit on connections that died
    /// with the link, so they start afresh (the kubelet likewise closes
    /// its connections when its heartbeat fails).
    pub reconnected: tokio::sync::Notify,
}

impl Ctx {
    pub fn runtime(&self, handler: &str) -> Option<Arc<dyn ContainerRuntime>> {
        self.runtimes
            .iter()
            .find(|r| r.handler() == handler)
            .cloned()
    }
}

/// Run the agent until a fatal error: register the Node, then heartbeat,
/// serve the node endpoint and run the pods bound to this node; serve
/// cluster DNS ([`crate::dns`]) on the pod bridge's gateway and on
/// [`AgentConfig::dns_listen`].
///
/// The API server may go away at any time after registration: the agent
/// keeps its pods running and retries with back-off.
pub async fn run(
    client: kube::Client,
    cfg: AgentConfig,
    runtimes: Vec<Arc<dyn ContainerRuntime>>,
    images: Arc<dyn ImageSource>,
    functions: Arc<crate::wasm::http::Functions>,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| AgentError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let mut cfg = cfg;
    let node_ip = cfg.internal_ip.unwrap_or_else(node::first_ipv4);
    let handlers: Vec<&'static str> = runtimes.iter().map(|r| r.handler()).collect();
    let serving = Arc::new(
        certs::Serving::load(
            &cfg.node_name,
            vec![node_ip],
            cfg.api_ca_pem.clone(),
            cfg.pki_dir.as_deref(),
        )
        .map_err(|e| AgentError::Server(format!("the serving certificate: {e}")))?,
    );
    let listener = server::bind(&cfg, serving.clone()).await?;
    cfg.port = listener.port();
    let gateway_listeners = match cfg.gateway_port {
        Some(port) => gateway_on(node_ip, port, GATEWAY_ANNOTATION, &mut cfg.annotations).await,
        None => Vec::new(),
    };
    let gateway_tls_listeners = match cfg.gateway_tls_port.filter(|_| cfg.gateway_port.is_some()) {
        Some(port) => gateway_on(node_ip, port, GATEWAY_TLS_ANNOTATION, &mut cfg.annotations).await,
        None => Vec::new(),
    };
    // A bad --cluster-domain stops the agent before it registers.
    crate::dns::zone_name(&cfg.cluster_domain)?;
    let mut dns_sockets = Vec::new();
    if let Some(addr) = cfg.dns_listen {
        let s = crate::dns::Sockets::bind(addr)
            .await
            .map_err(|e| AgentError::Server(format!("binding the DNS server on {addr}: {e}")))?;
        cfg.annotations
            .insert(DNS_ANNOTATION.into(), s.local_addr().to_string());
        dns_sockets.push(s);
    }
    let node_uid = node::register(&client, &cfg, node_ip, &handlers).await?;
    // The serving certificate is asked for once the Node reports the
    // addresses it names; the API server checks them against it.
    // The tasks are owned: cancelling `run` (dropping its future) stops
    // the whole agent, pods included, as a process exit would.
    let mut tasks = tokio::task::JoinSet::new();
    let (issued_tx, issued) = tokio::sync::oneshot::channel();
    let c = client.clone();
    tasks.spawn(async move {
        serving.keep_current(c, issued_tx).await;
        "serving certificate"
    });
    if tokio::time::timeout(std::time::Duration::from_secs(15), issued)
        .await
        .is_err()
    {
        tracing::warn!("still waiting for the node's serving certificate; carrying on");
    }
    let recorder = events::Recorder::new(client.clone(), cfg.node_name.clone());
    let network = match network::pod_cidr(&client, &cfg.node_name, cfg.pod_cidr_wait).await {
        Some(range) => {
            let keep = pods::adopted_addresses(&cfg.data_dir);
            network::PodNetwork::setup(node_ip, &cfg.pod_bridge, range, &keep).await
        }
        None => {
            if !cfg.pod_cidr_wait.is_zero() {
                tracing::warn!(
                    "node {} has no spec.podCIDR (is the control plane allocating node CIDRs?): pods share the node's address {node_ip}",
                    cfg.node_name
                );
            }
            network::PodNetwork::shared(node_ip)
        }
    };
    let routed = network.range().is_some();
    if let Some(range) = network.range() {
        if runtimes
            .iter()
            .any(|r| r.handler() == crate::linux::HANDLER)
        {
            sandbox::enable_egress(range, network.bridge()).await;
        }
    }
    if let Some(range) = network.range() {
        let addr = SocketAddr::new(IpAddr::V4(range.gateway()), crate::dns::forward::DNS_PORT);
        let bound = match crate::dns::Sockets::bind(addr).await {
            Ok(s) => {
                dns_sockets.push(s);
                true
            }
            Err(e) => {
                tracing::warn!("pods on this node have no cluster DNS: binding {addr}: {e}");
                false
            }
        };
        if cfg.dns_listen.is_none() {
            let value = bound.then(|| addr.to_string());
            if let Err(e) =
                node::annotate(&client, &cfg.node_name, DNS_ANNOTATION, value.as_deref()).await
            {
                tracing::warn!(error = %e, "publishing the DNS server's address on the Node");
            }
            if let Some(v) = value {
                cfg.annotations.insert(DNS_ANNOTATION.into(), v);
            }
        }
    }
    let dns = if dns_sockets.is_empty() {
        None
    } else {
        let bound: Vec<SocketAddr> = dns_sockets.iter().map(|s| s.local_addr()).collect();
        let upstreams = dns_upstreams(&cfg, &bound);
        if upstreams.is_empty() {
            tracing::warn!(
                "cluster DNS has no upstream (none given, none in {}): names outside {} will fail",
                cfg.resolv_conf.display(),
                cfg.cluster_domain
            );
        }
        let forwarder = crate::dns::Forwarder::new(upstreams, DNS_UPSTREAM_TIMEOUT);
        Some(crate::dns::Dns::new(&cfg.cluster_domain, forwarder)?)
    };
    let execs = Arc::new(exec::Execs::default());
    let ctx = Arc::new(Ctx {
        client,
        cfg,
        runtimes,
        images,
        network,
        node_ip,
        recorder,
        runtime_classes: Default::default(),
        execs: execs.clone(),
        reconnected: tokio::sync::Notify::new(),
    });
    let c = ctx.clone();
    tasks.spawn(async move {
        lease::run(c, node_uid).await;
        "lease"
    });
    let c = ctx.clone();
    tasks.spawn(async move {
        node::heartbeat(c, handlers).await;
        "node status"
    });
    let dir = ctx.cfg.data_dir.clone();
    tasks.spawn(async move {
        server::serve(listener, dir, execs).await;
        "node endpoint"
    });

    let c = ctx.clone();
    tasks.spawn(async move {
        pods::run(c).await;
        "pods"
    });
    let (c, f) = (ctx.clone(), functions.clone());
    tasks.spawn(async move {
        activity::report(c, f).await;
        "activity reports"
    });
    if !gateway_listeners.is_empty() {
        let gw = crate::gateway::Gateway::new(functions);
        let (g, c) = (gw.clone(), ctx.client.clone());
        tasks.spawn(async move {
            g.watch(c).await;
            "gateway watch"
        });
        for l in gateway_listeners {
            let g = gw.clone();
            tasks.spawn(async move {
                g.serve(l).await;
                "gateway"
            });
        }
        for l in gateway_tls_listeners {
            let (g, c) = (gw.clone(), ctx.client.clone());
            tasks.spawn(async move {
                g.serve_tls(l, c).await;
                "gateway (https)"
            });
        }
    }
    if let Some(dns) = dns {
        let (d, c) = (dns.clone(), ctx.client.clone());
        tasks.spawn(async move {
            d.watch(c).await;
            "dns watch"
        });
        tasks.spawn(async move {
            dns.serve(dns_sockets).await;
            "dns"
        });
    }
    if ctx.cfg.service_proxy {
        let c = ctx.client.clone();
        tasks.spawn(async move {
            crate::proxy::run(c).await;
            "service proxy"
        });
    }
    if routed {
        let (c, me) = (ctx.client.clone(), ctx.cfg.node_name.clone());
        tasks.spawn(async move {
            network::maintain_routes(c, me).await;
            "pod routes"
        });
    }
    let ended = tasks
        .join_next()
        .await
        .and_then(Result::ok)
        .unwrap_or("agent");
    Err(AgentError::TaskEnded(ended))
}

/// Where the DNS server forwards: the configured upstreams, else the
/// host's nameservers — never the server itself, which would loop.
fn dns_upstreams(cfg: &AgentConfig, own: &[SocketAddr]) -> Vec<SocketAddr> {
    let upstreams = if cfg.dns_upstreams.is_empty() {
        let text = std::fs::read_to_string(&cfg.resolv_conf).unwrap_or_default();
        crate::dns::resolv::ResolvConf::parse(&text).upstreams()
    } else {
        cfg.dns_upstreams.clone()
    };
    upstreams.into_iter().filter(|u| !own.contains(u)).collect()
}

/// Bind the gateway on `port` and publish where as the Node annotation
/// `annotation`. A port taken on this host costs the node its gateway, not
/// the node: a warning and no listeners.
async fn gateway_on(
    node_ip: IpAddr,
    port: u16,
    annotation: &str,
    annotations: &mut BTreeMap<String, String>,
) -> Vec<tokio::net::TcpListener> {
    let ls = bind_gateway(node_ip, port).await.unwrap_or_else(|e| {
        tracing::warn!("{e}");
        Vec::new()
    });
    if let Some(addr) = ls.first().and_then(|l| l.local_addr().ok()) {
        annotations.insert(annotation.into(), addr.to_string());
    }
    ls
}

/// The gateway's sockets: the node's address, and loopback too (on the
/// same port) so `curl localhost` works on the node itself.
async fn bind_gateway(
    node_ip: IpAddr,
    port: u16,
) -> Result<Vec<tokio::net::TcpListener>, AgentError> {
    let err = |ip: IpAddr, p: u16, e: std::io::Error| {
        AgentError::Server(format!(
            "binding the gateway on {ip}:{p}: {e} (choose another with --gateway-port, or 0 for a free one)"
        ))
    };
    let first = tokio::net::TcpListener::bind((node_ip, port))
        .await
        .map_err(|e| err(node_ip, port, e))?;
    let mut out = vec![first];
    let lo = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    if !node_ip.is_loopback() {
        let port = out[0].local_addr().map(|a| a.port()).unwrap_or(port);
        out.push(
            tokio::net::TcpListener::bind((lo, port))
                .await
                .map_err(|e| err(lo, port, e))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_arch_uses_kubernetes_names() {
        // Kubernetes labels nodes with GOARCH names, never Rust's.
        let arch = host_arch();
        assert!(!["x86_64", "aarch64"].contains(&arch), "{arch}");
    }

    #[test]
    fn defaults_match_the_kubelet() {
        let cfg = AgentConfig::new("n1", "/tmp/x");
        assert_eq!(cfg.port, 10250);
        assert_eq!(cfg.max_pods, 110);
        assert_eq!(cfg.lease_renew.as_secs(), 10);
    }
}
