//! `skiff node`: a node agent joining a cluster, and the node options
//! `skiff up` shares for its local node.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use runtime::agent::{self, AgentConfig};
use runtime::images::layers::LayerStore;
use runtime::images::{self, ImageStore, Platform, StoreConfig, StoreSource};
use runtime::linux::{LinuxOptions, LinuxRuntime};
use runtime::wasm::{WasmConfig, WasmRuntime};

/// How a node presents itself and what it runs.
#[derive(Debug, Clone, Args)]
pub struct NodeOpts {
    /// The Node's name (and `kubernetes.io/hostname`); the host name when unset.
    #[arg(long = "node-name")]
    pub node_name: Option<String>,
    /// Report this architecture (`amd64`, `arm64`) instead of the host's,
    /// e.g. to try a mixed fleet on one machine.
    #[arg(long)]
    pub arch: Option<String>,
    /// An extra Node label, `key=value` (repeatable).
    #[arg(long = "node-label", value_parser = parse_label)]
    pub node_labels: Vec<(String, String)>,
    /// A registry (`host:port`) spoken to over plain http (repeatable); with
    /// `skiff up` the scheduler reads image platforms from it the same way.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Pods this node accepts (`capacity.pods`); Wasm pods cost kilobytes,
    /// so the default is well above the kubelet's 110. Also sizes the Wasm
    /// instance pool (capped by `vm.max_map_count`).
    #[arg(long, default_value_t = 1000)]
    pub max_pods: u32,
    /// The largest linear memory a Wasm guest may have (a quantity:
    /// `256Mi`, `1Gi`); each pool slot reserves this much address space.
    #[arg(long, default_value = "1Gi", value_parser = parse_bytes)]
    pub max_wasm_memory: u64,
    /// The node endpoint's port (logs, exec); 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    pub node_port: u16,
    /// The node's InternalIP; the first non-loopback IPv4 when unset.
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// How long the node's heartbeat Lease is valid; it is renewed every
    /// quarter of this (the kubelet's flag of the same name). Keep it
    /// below the control plane's --node-monitor-grace-period.
    #[arg(long = "node-lease-duration-seconds", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub node_lease_duration_seconds: u32,
    /// The built-in gateway's port (Ingresses of class `skiff`), on the
    /// node's address and on loopback; 0 picks a free one (published as
    /// the Node annotation `skiff.dev/gateway`).
    #[arg(long = "gateway-port", default_value_t = 80)]
    pub gateway_port: u16,
    /// The Linux bridge that holds this node's pod addresses (at most 15
    /// characters); one per node, so two nodes on one host need two.
    #[arg(long = "pod-bridge", default_value = "skiff0", value_parser = parse_bridge)]
    pub pod_bridge: String,
    /// The gateway's HTTPS port, with certificates from the Ingresses'
    /// `tls` Secrets chosen by SNI; 0 picks a free one (published as the
    /// Node annotation `skiff.dev/gateway-tls`).
    #[arg(long = "gateway-tls-port", default_value_t = 443)]
    pub gateway_tls_port: u16,
    /// Run no gateway on this node.
    #[arg(long = "no-gateway")]
    pub no_gateway: bool,
    /// The cluster domain the node's DNS server answers for (Services are
    /// `NAME.NAMESPACE.svc.DOMAIN`); it listens on port 53 of the pod
    /// bridge's gateway, the nameserver pods are given.
    #[arg(long = "cluster-domain", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Serve cluster DNS on this address too (`IP:PORT`, UDP and TCP; port
    /// 0 picks a free one), published as the Node annotation `skiff.dev/dns`.
    #[arg(long = "dns-listen")]
    pub dns_listen: Option<SocketAddr>,
    /// Where names outside the cluster domain are forwarded (`IP` or
    /// `IP:PORT`, repeatable); the host's /etc/resolv.conf nameservers when
    /// unset.
    #[arg(long = "dns-upstream", value_parser = parse_upstream)]
    pub dns_upstreams: Vec<SocketAddr>,
    /// Leave ClusterIP/NodePort traffic alone: program no nftables rules
    /// (table `ip skiff`) on this node, e.g. when another service proxy
    /// runs here or several test clusters share one network namespace.
    #[arg(long = "no-service-proxy")]
    pub no_service_proxy: bool,
    /// Let pods run with `securityContext.privileged: true` (all
    /// capabilities, host devices): off by default, since such a pod owns
    /// the node.
    #[arg(long = "allow-privileged")]
    pub allow_privileged: bool,
    /// The most processes (tasks) one Linux container may have, as the
    /// kubelet's --pod-max-pids: a fork bomb stops there. 0 for no limit.
    #[arg(long = "pod-max-pids", default_value_t = runtime::linux::DEFAULT_PIDS_MAX)]
    pub pod_max_pids: u64,
    /// Run no Linux containers on this node (only Wasm): the node does not
    /// advertise the `linux` RuntimeClass handler.
    #[arg(long = "no-linux")]
    pub no_linux: bool,
}

fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("{s:?}: an upstream is IP or IP:PORT"))
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: a node label is key=value"))?;
    if k.is_empty() {
        return Err(format!("{s:?}: the label key is empty"));
    }
    Ok((k.to_string(), v.to_string()))
}

fn parse_bridge(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: a link name is 1 to 15 letters, digits, - or _"
        ))
    }
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let v =
        apimachinery::validation::quantity::quantity_value(s).map_err(|e| format!("{s:?}: {e}"))?;
    u64::try_from(v).map_err(|_| format!("{s:?}: must be positive"))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "skiff-node".into())
}

/// The node's runtimes and image source, ready for the agent.
pub struct Node {
    pub cfg: AgentConfig,
    pub wasm: Arc<WasmRuntime>,
    /// The `linux` handler, unless the node runs Wasm only.
    pub linux: Option<Arc<LinuxRuntime>>,
    pub images: Arc<StoreSource>,
}

impl NodeOpts {
    /// Build the node's parts under `data_dir` (`images/`, `wasm/`,
    /// `node/`).
    pub fn build(&self, data_dir: &Path) -> anyhow::Result<Node> {
        let name = self.node_name.clone().unwrap_or_else(host_name);
        let mut cfg = AgentConfig::new(name, data_dir.join("node"));
        if let Some(arch) = &self.arch {
            cfg.arch = arch.clone();
        }
        cfg.labels = self.node_labels.iter().cloned().collect::<BTreeMap<_, _>>();
        cfg.max_pods = self.max_pods;
        cfg.port = self.node_port;
        cfg.internal_ip = self.node_ip;
        cfg.pki_dir = Some(data_dir.join("pki"));
        cfg.lease_renew =
            std::time::Duration::from_millis(u64::from(self.node_lease_duration_seconds) * 250);
        cfg.lease_duration_seconds =
            i32::try_from(self.node_lease_duration_seconds).unwrap_or(i32::MAX);
        cfg.gateway_port = (!self.no_gateway).then_some(self.gateway_port);
        cfg.gateway_tls_port = (!self.no_gateway).then_some(self.gateway_tls_port);
        cfg.pod_bridge = self.pod_bridge.clone();
        cfg.cluster_domain = self.cluster_domain.clone();
        cfg.dns_listen = self.dns_listen;
        cfg.dns_upstreams = self.dns_upstreams.clone();
        cfg.service_proxy = !self.no_service_proxy;
        // The control plane assigns podCIDRs as nodes register.
        cfg.pod_cidr_wait = std::time::Duration::from_secs(10);
        let mut wcfg = WasmConfig::new(data_dir.join("wasm"));
        wcfg.max_instances = self.max_pods;
        wcfg.max_memory = self.max_wasm_memory;
        let wasm = WasmRuntime::new(wcfg).context("starting the wasmtime runtime")?;
        let sizing = wasm.sizing();
        if let Some(why) = sizing.capped_by {
            tracing::warn!(
                "the Wasm pool holds {} instances, fewer than --max-pods {}: capped by {why}",
                sizing.slots,
                self.max_pods
            );
            cfg.max_pods = sizing.slots;
        }
        let store = ImageStore::open(
            &data_dir.join(images::STORE_DIR),
            StoreConfig {
                insecure_registries: self.insecure_registries.clone(),
            },
        )
        .context("opening the image store")?;
        let platform = Platform::new("linux", &cfg.arch);
        let linux = if self.no_linux {
            None
        } else {
            let layers = LayerStore::new(store.root().join("layers"));
            let mut opts = LinuxOptions::new(data_dir.join("linux"), layers);
            opts.allow_privileged = self.allow_privileged;
            opts.pids_max = (self.pod_max_pids > 0).then_some(self.pod_max_pids);
            Some(Arc::new(
                LinuxRuntime::new(opts).context("preparing the linux runtime's directory")?,
            ))
        };
        Ok(Node {
            cfg,
            wasm: Arc::new(wasm),
            linux,
            images: Arc::new(StoreSource::new(Arc::new(store), platform)),
        })
    }
}

impl Node {
    /// Run the agent until it fails.
    pub async fn run(self, client: kube::Client) -> anyhow::Result<()> {
        let name = self.cfg.node_name.clone();
        let functions = self.wasm.functions();
        let mut runtimes: Vec<Arc<dyn runtime::cri::ContainerRuntime>> = vec![self.wasm];
        if let Some(linux) = self.linux {
            runtimes.push(linux);
        }
        agent::run(client, self.cfg, runtimes, self.images, functions)
            .await
            .with_context(|| format!("node agent {name}"))
    }
}

/// How a node proves who it is to the API server.
pub enum Credential<'a> {
    /// A bearer token (the admin's, or another user's).
    Token(&'a str),
    /// A client certificate and its key (PEM): the node credential a join
    /// with a bootstrap token gets.
    Certificate { cert: &'a str, key: &'a str },
}

/// A kubeconfig for `server`, trusting `ca_pem`, with a credential.
pub fn kubeconfig(server: &str, ca_pem: &str, cred: &Credential<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let user = match cred {
        Credential::Token(t) => format!("    token: {t}\n"),
        Credential::Certificate { cert, key } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64.encode(cert),
            b64.encode(key)
        ),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: node\n  user:\n{user}contexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: node\ncurrent-context: skiff\n",
        b64.encode(ca_pem)
    )
}

/// A kube client from a server URL, a CA bundle and a bearer token.
pub async fn client(server: &str, ca_pem: &str, token: &str) -> anyhow::Result<kube::Client> {
    client_with(server, ca_pem, &Credential::Token(token)).await
}

/// A kube client from a server URL, a CA bundle and a credential.
pub async fn client_with(
    server: &str,
    ca_pem: &str,
    cred: &Credential<'_>,
) -> anyhow::Result<kube::Client> {
    let yaml = kubeconfig(server, ca_pem, cred);
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).context("building a kubeconfig")?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .context("reading the kubeconfig")?;
    kube::Client::try_from(cfg).context("building the API client")
}

/// `skiff node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The API server (`https://HOST:PORT`).
    #[arg(long)]
    server: String,
    /// A join token from `skiff token create` (the node then gets a
    /// credential of its own, kept in DATA_DIR/pki, and later starts need
    /// no token), or another bearer token to run with as it is.
    #[arg(long, env = "SKIFF_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The cluster CA bundle (PEM) that signed the API server's certificate.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Trust the server whose cluster CA has this hash (`sha256:HEX`, as
    /// printed by `skiff token create`): the CA is read from the server and
    /// checked against it, so no CA file needs copying.
    #[arg(long)]
    ca_cert_hash: Option<String>,
    /// Where the node keeps images, compiled modules, pod state and logs.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value_os_t = super::default_data_dir().join("node"))]
    data_dir: PathBuf,
    /// The Node's name (the host name when unset).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    node: NodeOpts,
}

pub fn run(a: NodeArgs) -> anyhow::Result<ExitCode> {
    super::up::init_tracing();
    if !a.server.starts_with("https://") {
        bail!("--server {}: skiff nodes speak https only", a.server);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut opts = a.node.clone();
        if a.name.is_some() {
            opts.node_name = a.name.clone();
        }
        let mut node = opts.build(&a.data_dir)?;
        let (client, ca) = super::join::connect(
            &a.server,
            &a.data_dir.join("pki"),
            &node.cfg.node_name,
            a.token.as_deref(),
            a.ca_file.as_deref(),
            a.ca_cert_hash.as_deref(),
        )
        .await?;
        node.cfg.api_ca_pem = Some(ca);
        println!(
            "skiff node {} ready: joining {}",
            node.cfg.node_name, a.server
        );
        tokio::select! {
            r = node.run(client) => r.map(|()| ExitCode::FAILURE),
            r = super::up::shutdown_signal() => {
                r?;
                eprintln!("skiff: node stopping");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_quantities_parse_as_a_person_writes_them() {
        assert_eq!(parse_label("wasm=yes"), Ok(("wasm".into(), "yes".into())));
        assert_eq!(parse_label("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_label("novalue").is_err());
        assert!(parse_label("=x").is_err());
        assert_eq!(parse_bytes("256Mi"), Ok(256 << 20));
        assert_eq!(parse_bytes("1Gi"), Ok(1 << 30));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn dns_upstreams_default_to_port_53() {
        assert_eq!(
            parse_upstream("192.0.2.1"),
            Ok("192.0.2.1:53".parse().expect("addr"))
        );
        assert_eq!(
            parse_upstream("192.0.2.1:5353"),
            Ok("192.0.2.1:5353".parse().expect("addr"))
        );
        assert_eq!(parse_upstream("::1"), Ok("[::1]:53".parse().expect("addr")));
        assert!(parse_upstream("dns.example").is_err());
    }
}
