//! How `skiff node` gets a trusted connection and a credential of its own.
//!
//! 1. A node that joined before has its credential in `DATA_DIR/pki`
//!    (`ca.crt`, `node.crt`, `node.key`): it uses that, no token needed.
//! 2. Otherwise it needs the cluster CA: `--ca-file`, or read from the
//!    server's public `kube-public/cluster-info` over an unverified
//!    connection and accepted only if its SubjectPublicKeyInfo hashes to
//!    `--ca-cert-hash` (kubeadm's discovery; a man in the middle cannot
//!    forge a CA with that hash).
//! 3. With a bootstrap token (`skiff token create`), it makes a key, asks
//!    for a client certificate `CN=system:node:NAME, O=system:nodes` with
//!    a CertificateSigningRequest (the API server signs it at once for a
//!    bootstrapper), keeps it, and from then on is `system:node:NAME`:
//!    RBAC's `system:node` role narrowed by NodeRestriction. Any other
//!    token is used as it is (the admin token, for instance).
//! 4. At each start, a node whose client certificate has passed 70% of its
//!    lifetime asks for a new one as itself (the API server signs a node's
//!    renewal at once), for the same key, and replaces `node.crt` in one
//!    rename. The agent then asks for its serving certificate
//!    ([`runtime::agent::certs`]).

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use runtime::agent::certs::{self, CertError, CertRequest};

use super::node::{client, client_with, Credential};

/// How long a join waits for its client certificate.
const ISSUE_WAIT: Duration = Duration::from_secs(60);

/// A client for the API server at `server` and the cluster CA (PEM).
pub async fn connect(
    server: &str,
    pki: &Path,
    node_name: &str,
    token: Option<&str>,
    ca_file: Option<&Path>,
    ca_hash: Option<&str>,
) -> anyhow::Result<(kube::Client, String)> {
    let (ca_path, crt_path, key_path) = (
        pki.join("ca.crt"),
        pki.join("node.crt"),
        pki.join("node.key"),
    );
    if crt_path.exists() && key_path.exists() && ca_path.exists() {
        let read = |p: &Path| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        };
        let (ca, cert, key) = (read(&ca_path)?, read(&crt_path)?, read(&key_path)?);
        tracing::info!("using the node credential in {}", pki.display());
        let cert = rotate(server, &ca, cert, &key, node_name, &crt_path).await;
        return certified(server, ca, &cert, &key).await;
    }
    let token = token.ok_or_else(|| {
        anyhow!(
            "--token is required to join: make one with `skiff token create` on the control plane"
        )
    })?;
    let ca = match (ca_file, ca_hash) {
        (Some(f), hash) => {
            let ca = std::fs::read_to_string(f)
                .with_context(|| format!("reading --ca-file {}", f.display()))?;
            if let Some(h) = hash {
                check_hash(&ca, h)?;
            }
            ca
        }
        (None, Some(h)) => discover_ca(server, h).await?,
        (None, None) => bail!(
            "give --ca-cert-hash (printed by `skiff token create`) or --ca-file, so that the node knows it talks to your cluster"
        ),
    };
    if apiserver::authn::parse_bootstrap_token(token).is_none() {
        return Ok((client(server, &ca, token).await?, ca));
    }
    let (cert, key) = request_credential(server, &ca, token, node_name).await?;
    std::fs::create_dir_all(pki).with_context(|| format!("creating {}", pki.display()))?;
    for (path, text) in [(&ca_path, &ca), (&key_path, &key), (&crt_path, &cert)] {
        certs::write_private(path, text)?;
    }
    println!(
        "skiff node {node_name}: joined with a bootstrap token; credential kept in {}",
        pki.display()
    );
    certified(server, ca, &cert, &key).await
}

/// A client that authenticates with the node's certificate, and the CA.
async fn certified(
    server: &str,
    ca: String,
    cert: &str,
    key: &str,
) -> anyhow::Result<(kube::Client, String)> {
    let c = client_with(server, &ca, &Credential::Certificate { cert, key }).await?;
    Ok((c, ca))
}

fn check_hash(ca: &str, want: &str) -> anyhow::Result<()> {
    let got = apiserver::pki::ca_cert_hash(ca).map_err(|e| anyhow!("the cluster CA: {e}"))?;
    if !got.eq_ignore_ascii_case(want.trim()) {
        bail!(
            "the server's cluster CA has hash {got}, not the {want} given with --ca-cert-hash: refusing to join (is --server the right cluster?)"
        );
    }
    Ok(())
}

/// The CA from the server's `kube-public/cluster-info`, if it has `hash`.
async fn discover_ca(server: &str, hash: &str) -> anyhow::Result<String> {
    if !hash.starts_with("sha256:") {
        bail!("--ca-cert-hash {hash}: want sha256:HEX, as `skiff token create` prints it");
    }
    let url: http::Uri = server
        .parse()
        .with_context(|| format!("--server {server}"))?;
    tracing::info!(
        "reading the cluster CA from {server} to check it against --ca-cert-hash (nothing from this connection is trusted until it matches)"
    );
    let mut cfg = kube::Config::new(url);
    // Nothing from this connection is believed until the hash matches.
    cfg.accept_invalid_certs = true;
    let c = kube::Client::try_from(cfg).context("building the discovery client")?;
    let cm = Api::<ConfigMap>::namespaced(c, "kube-public")
        .get("cluster-info")
        .await
        .with_context(|| format!("reading kube-public/cluster-info from {server}"))?;
    let kubeconfig = cm
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .ok_or_else(|| anyhow!("{server}: cluster-info has no kubeconfig"))?;
    let kc: serde_yaml::Value =
        serde_yaml::from_str(kubeconfig).context("cluster-info's kubeconfig")?;
    let ca_b64 = kc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .ok_or_else(|| anyhow!("{server}: cluster-info names no CA"))?;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca_b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| anyhow!("{server}: cluster-info's CA is not base64 PEM"))?;
    check_hash(&ca, hash)?;
    Ok(ca)
}

/// The node's client certificate, renewed first when it has passed
/// [`certs::RENEW_AT`] of its lifetime: a new one for the same key, asked
/// for as the node itself, written over `crt_path` in one rename. A renewal
/// that fails leaves the old certificate in use (it is retried at the next
/// start).
async fn rotate(
    server: &str,
    ca: &str,
    cert: String,
    key: &str,
    node: &str,
    crt_path: &Path,
) -> String {
    match certs::due_for_renewal(&cert, SystemTime::now()) {
        Ok(false) => return cert,
        Ok(true) => {}
        Err(e) => {
            tracing::warn!("reading {}: {e}", crt_path.display());
            return cert;
        }
    }
    tracing::info!("the node's client certificate is due for renewal: asking for a new one");
    let renewed = async {
        let c = client_with(server, ca, &Credential::Certificate { cert: &cert, key }).await?;
        let pair = rcgen::KeyPair::from_pem(key).context("reading the node's key")?;
        let new = certs::request(&c, &CertRequest::client(node), &pair, ISSUE_WAIT).await?;
        certs::write_private(crt_path, &new)?;
        anyhow::Ok(new)
    };
    match renewed.await {
        Ok(new) => {
            println!(
                "skiff node {node}: renewed its client certificate ({})",
                crt_path.display()
            );
            new
        }
        Err(e) => {
            tracing::warn!("renewing the node's client certificate: {e:#}; using the old one");
            cert
        }
    }
}

/// Ask for a node client certificate with the bootstrap token; the
/// certificate and its key, PEM.
async fn request_credential(
    server: &str,
    ca: &str,
    token: &str,
    node: &str,
) -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate().context("making the node's key")?;
    let c = client(server, ca, token).await?;
    match certs::request(&c, &CertRequest::client(node), &key, ISSUE_WAIT).await {
        Ok(cert) => Ok((cert, key.serialize_pem())),
        Err(CertError::Api(kube::Error::Api(s))) if s.code == 401 => bail!(
            "the API server refused the join token (unknown or expired): make a new one with `skiff token create` on the control plane"
        ),
        Err(CertError::Api(kube::Error::Api(s))) if s.code == 403 => bail!(
            "the join token may not ask for node credentials: {}",
            s.message
        ),
        Err(e) => Err(e).context("asking for the node's client certificate"),
    }
}
