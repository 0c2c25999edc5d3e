//! Starting the API server: store, PKI, kubeconfig, TLS listener and the
//! built-in loops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::handlers::ApiServer;
use crate::pki::{Pki, PkiError};
use crate::store::encryption::Transformer;
use crate::store::redb::RedbStore;
use crate::store::{Store, StoreError};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Watch events kept for resumption.
    pub history: usize,
    /// Most writes committed with one fsync (1 turns group commit off).
    pub max_batch: usize,
    /// An `EncryptionConfiguration` for encryption at rest; `None` uses
    /// `DATA_DIR/pki/encryption.yaml`, written with a fresh key for
    /// Secrets on first start.
    pub encryption_config: Option<PathBuf>,
    /// The audit log; `None` is `DATA_DIR/audit.log`.
    pub audit_log: Option<PathBuf>,
    /// A static token file (`token,user,uid[,groups]` lines).
    pub token_auth_file: Option<PathBuf>,
}

impl Config {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Config {
            data_dir,
            listen,
            history: 100_000,
            max_batch: crate::store::redb::MAX_BATCH,
            encryption_config: None,
            audit_log: None,
            token_auth_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Encryption(#[from] crate::store::encryption::EncryptionError),
    #[error("token auth file {0}")]
    TokenFile(String),
    #[error("certificates: {0}")]
    Pki(#[from] PkiError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub admin_token: String,
    pub ca_pem: String,
    pub store: Arc<dyn Store>,
}

/// Open the store, make sure the system namespaces exist, write the
/// kubeconfig and start serving. Returns once the listener is bound.
pub async fn start(cfg: Config) -> Result<Running, ServerError> {
    let io = |what: String| move |source| ServerError::Io { what, source };
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(io(format!("creating {}", cfg.data_dir.display())))?;
    let seal = match &cfg.encryption_config {
        Some(path) => Transformer::load(path)?,
        None => {
            let pki = cfg.data_dir.join("pki");
            std::fs::create_dir_all(&pki).map_err(io(format!("creating {}", pki.display())))?;
            let path = pki.join("encryption.yaml");
            if !path.exists() {
                Transformer::generate(&path)?;
            }
            Transformer::load(&path)?
        }
    };
    let store: Arc<dyn Store> = Arc::new(RedbStore::open_sealed(
        &cfg.data_dir.join("skiff.redb"),
        cfg.history,
        cfg.max_batch,
        Some(Arc::new(seal)),
    )?);
    crate::namespaces::ensure_system_namespaces(&*store).await?;

    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(io(format!("listening on {}", cfg.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(io("reading the bound address".into()))?;
    crate::namespaces::ensure_kubernetes_service(&*store, addr).await?;
    let mut hosts = vec![addr.ip().to_string()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        hosts.push(h.trim().to_string());
    }
    let pki = Pki::load_or_create(&cfg.data_dir.join("pki"), &hosts)?;
    let server_url = {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        match addr.ip() {
            std::net::IpAddr::V6(_) => format!("https://[{host}]:{}", addr.port()),
            std::net::IpAddr::V4(_) => format!("https://{host}:{}", addr.port()),
        }
    };
    crate::namespaces::ensure_cluster_info(&*store, &server_url, &pki.ca_pem).await?;
    crate::namespaces::ensure_all_namespace_defaults(&*store, &pki.ca_pem).await?;
    let kubeconfig = cfg.data_dir.join("kubeconfig.yaml");
    write_kubeconfig(&kubeconfig, addr, &pki)
        .map_err(io(format!("writing {}", kubeconfig.display())))?;

    let acceptor = TlsAcceptor::from(pki.server_config()?);
    let audit_path = cfg
        .audit_log
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("audit.log"));
    let audit = crate::audit::Audit::open(&audit_path).map_err(io(format!(
        "opening the audit log {}",
        audit_path.display()
    )))?;
    let key_path = cfg.data_dir.join("pki").join("service-account.key");
    let tokens = crate::authn::Tokens::load_or_create(&key_path).map_err(io(format!(
        "reading the ServiceAccount signing key {}",
        key_path.display()
    )))?;
    crate::rbac::ensure_defaults(&*store).await?;
    crate::services::ensure_ingress_class(&*store).await?;
    let static_tokens = match &cfg.token_auth_file {
        Some(path) => crate::authn::StaticTokens::load(path).map_err(ServerError::TokenFile)?,
        None => crate::authn::StaticTokens::default(),
    };
    let rbac = Arc::new(crate::rbac::Cache::default());
    tokio::spawn(rbac.clone().run(store.clone()));
    let nodes = Arc::new(crate::nodeauthz::NodeGraph::default());
    tokio::spawn(nodes.clone().run(store.clone()));
    let api = Arc::new(ApiServer {
        store: store.clone(),
        admin_token: pki.admin_token.clone(),
        audit: Some(audit),
        tokens: Arc::new(tokens),
        rbac,
        nodes,
        static_tokens,
        node_client: Arc::new(pki.node_client()?),
        signer: Arc::new(pki.signer()),
        ca_pem: pki.ca_pem.clone(),
    });
    tokio::spawn(serve(listener, acceptor, api));
    tokio::spawn(crate::namespaces::run(store.clone()));
    tokio::spawn(crate::gc::run(store.clone()));
    Ok(Running {
        addr,
        kubeconfig,
        admin_token: pki.admin_token.clone(),
        ca_pem: pki.ca_pem.clone(),
        store,
    })
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, api: Arc<ApiServer>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake");
                    return;
                }
            };
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(<[_]>::first)
                .and_then(|c| crate::authn::User::from_certificate(c));
            let svc = hyper::service::service_fn(move |req| {
                api.clone().handle(req, Some(peer), client_cert.clone())
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(1000);
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection");
            }
        });
    }
}

/// A kubeconfig for the admin: https with the cluster CA and the token.
pub fn kubeconfig_yaml(addr: SocketAddr, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: https://{host}:{port}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: admin\n    namespace: default\ncurrent-context: skiff\n",
        port = addr.port()
    )
}

fn write_kubeconfig(path: &Path, addr: SocketAddr, pki: &Pki) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("yaml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(kubeconfig_yaml(addr, &pki.ca_pem, &pki.admin_token).as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}
