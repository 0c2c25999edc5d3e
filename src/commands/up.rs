//! `skiff up`: the whole control plane in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory for the store, certificates and kubeconfig.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
    /// Address and port the API server listens on (https).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Watch events kept in memory so that watches can resume.
    #[arg(long, default_value_t = 100_000)]
    watch_history: usize,
    /// Run the control plane only, without a local node.
    #[arg(long)]
    no_node: bool,
    /// Run the API server alone: no scheduler, no controllers, no node
    /// (objects stay as written; for API conformance tests).
    #[arg(long)]
    api_only: bool,
    /// How long a node may go without renewing its Lease before it is
    /// marked NotReady (kube-controller-manager's flag of the same name).
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// An EncryptionConfiguration (apiserver.config.k8s.io/v1) for
    /// encryption at rest, as kube-apiserver's flag of the same name. By
    /// default Secrets are encrypted with an AES-GCM key skiff writes to
    /// DATA_DIR/pki/encryption.yaml on first start.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Where mutating requests are recorded, one audit.k8s.io/v1 Event per
    /// line (kube-apiserver's flag of the same name); DATA_DIR/audit.log
    /// by default.
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// A static token file, as kube-apiserver's flag of the same name:
    /// CSV lines `token,user,uid[,"group1,group2"]`. Those users are then
    /// authorized by RBAC like any other.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// The range nodes' pod subnets (`spec.podCIDR`) are cut from
    /// (kube-controller-manager's flag of the same name).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: controllers::nodeipam::Cidr,
    /// The prefix length of each node's pod subnet.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(1..=30))]
    node_cidr_mask_size: u8,
    #[command(flatten)]
    node: super::node::NodeOpts,
}

/// `40s`, `2m`, `500ms`, or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 40s or 2m"))?;
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => Ok(std::time::Duration::from_secs(n)),
        "m" => Ok(std::time::Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: the unit is ms, s or m")),
    }
}

pub fn run(a: UpArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut cfg = apiserver::server::Config::new(a.data_dir.clone(), a.listen);
        cfg.history = a.watch_history;
        cfg.encryption_config = a.encryption_provider_config.clone();
        cfg.audit_log = a.audit_log_path.clone();
        cfg.token_auth_file = a.token_auth_file.clone();
        let running = apiserver::server::start(cfg).await.with_context(|| {
            format!(
                "starting the API server with data in {}",
                a.data_dir.display()
            )
        })?;
        let yaml =
            apiserver::server::kubeconfig_yaml(running.addr, &running.ca_pem, &running.admin_token);
        let client = client_from(&yaml).await?;
        let mut parts = tokio::task::JoinSet::new();
        if !a.api_only {
            let controllers = client.clone();
            let mut settings = controllers::Settings::default();
            settings.node_lifecycle.grace = a.node_monitor_grace_period;
            settings.pod_network = controllers::nodeipam::Config {
                cluster_cidr: a.cluster_cidr,
                node_mask: a.node_cidr_mask_size,
            };
            settings.images = Some(std::sync::Arc::new(crate::platforms::RegistryPlatforms {
                client: client.clone(),
                insecure_registries: a.node.insecure_registries.clone(),
            }));
            settings.node_lifecycle.monitor_period = (a.node_monitor_grace_period / 8).clamp(
                std::time::Duration::from_millis(500),
                std::time::Duration::from_secs(5),
            );
            parts.spawn(async move {
                let r = controllers::run_all(controllers, settings).await;
                ("controllers", r)
            });
        }
        let node_name = if a.no_node || a.api_only {
            None
        } else {
            let mut node = a.node.build(&a.data_dir)?;
            node.cfg.api_ca_pem = Some(running.ca_pem.clone());
            let name = node.cfg.node_name.clone();
            let c = client.clone();
            parts.spawn(async move { ("node agent", node.run(c).await) });
            Some(name)
        };
        println!(
            "skiff ready: API server on https://{} (kubeconfig {}){}",
            running.addr,
            running.kubeconfig.display(),
            node_name.map(|n| format!(", node {n}")).unwrap_or_default()
        );
        println!(
            "  use it with: export KUBECONFIG={}; kubectl get namespaces",
            running.kubeconfig.display()
        );
        if parts.is_empty() {
            parts.spawn(async { ("API server", std::future::pending().await) });
        }
        tokio::select! {
            r = shutdown_signal() => r?,
            Some(Ok((part, r))) = parts.join_next() => {
                // Every part runs until the process ends: one ending is fatal.
                r.with_context(|| format!("the {part} stopped"))?;
                anyhow::bail!("the {part} stopped");
            }
        }
        eprintln!("skiff: shutting down");
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SKIFF_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// SIGINT (ctrl-c) or SIGTERM (systemd, kill, a container runtime).
pub(super) async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("listening for ctrl-c"),
        _ = term.recv() => Ok(()),
    }
}

/// An in-process API client from the kubeconfig `skiff up` wrote.
async fn client_from(yaml: &str) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::from_yaml(yaml).context("reading the kubeconfig")?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .context("building the API client")?;
    kube::Client::try_from(cfg).context("building the API client")
}
