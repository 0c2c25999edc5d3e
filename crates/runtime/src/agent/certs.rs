//! The node's certificates from the cluster CA, asked for with
//! CertificateSigningRequests as the kubelet does.
//!
//! - [`request`] sends a request and waits for its certificate. When the
//!   API server leaves it pending and the node's credential may approve it
//!   (the admin token `skiff up`'s local node runs with), the node approves
//!   it through the `approval` subresource, as an admin running
//!   `kubectl certificate approve` would; other nodes wait for someone to.
//! - [`Serving`] is the node endpoint's certificate: kept with its key in
//!   one file ([`SERVING_FILE`], 0600, replaced by rename so that a
//!   crash leaves the old or the new pair, never half), reused at start
//!   while it is from the cluster CA, names the node's current addresses
//!   and has more than 30% of its life left, and otherwise asked for again
//!   (signer `kubernetes.io/kubelet-serving`), as the kubelet's
//!   `serverTLSBootstrap` and certificate rotation do. Until one is issued
//!   the endpoint serves a self-signed certificate, which the API server
//!   refuses with a message saying what to do.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::json;

/// The signer of node serving certificates.
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The signer of node client certificates.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The serving certificate and its key, PEM, in the node's pki directory.
pub const SERVING_FILE: &str = "node-serving.pem";
/// A certificate is renewed once this share of its lifetime has passed,
/// as the kubelet rotates between 70% and 90%.
pub const RENEW_AT: f64 = 0.7;
/// How long a request is polled before the node gives up on it for now.
const ISSUE_WAIT: Duration = Duration::from_secs(120);

/// Why a certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("making a key or a certificate request: {0}")]
    Make(String),
    #[error("CertificateSigningRequest: {0}")]
    Api(#[from] kube::Error),
    #[error("CertificateSigningRequest {name} was {how}: {message}")]
    Refused {
        name: String,
        how: &'static str,
        message: String,
    },
    #[error("CertificateSigningRequest {name} is still pending after {secs} s: approve it with `kubectl certificate approve {name}`")]
    Pending { name: String, secs: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
}

/// What to ask a signer for.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// The Node's name: the subject is `CN=system:node:NAME,
    /// O=system:nodes`.
    pub node: &'a str,
    pub signer: &'a str,
    pub usages: &'a [&'a str],
    pub ips: &'a [IpAddr],
    pub dns_names: &'a [String],
}

impl CertRequest<'_> {
    /// A node client certificate request.
    pub fn client(node: &str) -> CertRequest<'_> {
        CertRequest {
            node,
            signer: CLIENT_SIGNER,
            usages: &["digital signature", "key encipherment", "client auth"],
            ips: &[],
            dns_names: &[],
        }
    }

    /// The PKCS#10 request (PEM) for `key`.
    fn pem(&self, key: &rcgen::KeyPair) -> Result<String, CertError> {
        let make = |e: rcgen::Error| CertError::Make(e.to_string());
        let mut params = rcgen::CertificateParams::new(self.dns_names.to_vec()).map_err(make)?;
        for ip in self.ips {
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(*ip));
        }
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            format!("system:node:{}", self.node),
        );
        dn.push(rcgen::DnType::OrganizationName, "system:nodes");
        params.distinguished_name = dn;
        params
            .serialize_request(key)
            .and_then(|r| r.pem())
            .map_err(make)
    }
}

/// The condition of a request that ends it, if any: `(type, message)`.
fn decided(csr: &CertificateSigningRequest) -> Option<(&'static str, String)> {
    let conds = csr.status.as_ref()?.conditions.as_ref()?;
    ["Denied", "Failed"].into_iter().find_map(|kind| {
        conds
            .iter()
            .find(|c| c.type_ == kind && c.status != "False")
            .map(|c| (kind, c.message.clone().unwrap_or_default()))
    })
}

/// Ask for a certificate for `key` and wait up to `wait` for it (PEM).
pub async fn request(
    client: &kube::Client,
    req: &CertRequest<'_>,
    key: &rcgen::KeyPair,
    wait: Duration,
) -> Result<String, CertError> {
    let name = submit(client, req, key).await?;
    wait_for(client, &name, req.node, wait).await
}

/// Send the CertificateSigningRequest; its name.
async fn submit(
    client: &kube::Client,
    req: &CertRequest<'_>,
    key: &rcgen::KeyPair,
) -> Result<String, CertError> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let obj: CertificateSigningRequest = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": format!("node-csr-{}-", req.node)},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(req.pem(key)?),
            "signerName": req.signer,
            "usages": req.usages,
        },
    }))
    .map_err(|e| CertError::Make(e.to_string()))?;
    let made = api.create(&PostParams::default(), &obj).await?;
    Ok(made.metadata.name.unwrap_or_default())
}

/// Wait up to `wait` for the certificate of request `name` (PEM),
/// approving it first if the node's credential may.
async fn wait_for(
    client: &kube::Client,
    name: &str,
    node: &str,
    wait: Duration,
) -> Result<String, CertError> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let started = tokio::time::Instant::now();
    let mut csr = api.get(name).await?;
    let mut tried_approving = false;
    loop {
        if let Some(cert) = csr.status.as_ref().and_then(|s| s.certificate.as_ref()) {
            return String::from_utf8(cert.0.clone())
                .map_err(|_| CertError::Tls(format!("{name}: the certificate is not PEM")));
        }
        let name = name.to_string();
        if let Some((kind, message)) = decided(&csr) {
            let how = if kind == "Denied" { "denied" } else { "failed" };
            return Err(CertError::Refused { name, how, message });
        }
        if !tried_approving {
            tried_approving = true;
            if let Some(c) = approve(&api, &name, node).await {
                csr = c;
                continue;
            }
        }
        if started.elapsed() >= wait {
            return Err(CertError::Pending {
                name,
                secs: wait.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        csr = api.get(&name).await?;
    }
}

/// Approve our own pending request when the credential allows it (the
/// admin's); None when it does not, which is how it should be for nodes.
async fn approve(
    api: &Api<CertificateSigningRequest>,
    name: &str,
    node: &str,
) -> Option<CertificateSigningRequest> {
    let patch = json!({"status": {"conditions": [{
        "type": "Approved",
        "status": "True",
        "reason": "NodeCredentialApproved",
        "message": format!("approved by node {node}, whose credential may approve certificates"),
    }]}});
    match api
        .patch_subresource(
            "approval",
            name,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(c) => {
            tracing::info!(csr = name, "approved the node's own certificate request");
            Some(c)
        }
        Err(e) => {
            tracing::debug!(csr = name, error = %e, "the node may not approve its own certificate request");
            None
        }
    }
}

/// The serving certificate of the node endpoint, replaced in place as new
/// ones are issued (the TLS listener asks it for each handshake).
#[derive(Debug)]
pub struct Serving {
    current: RwLock<Current>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// Where the certificate is kept; None keeps it in memory only.
    file: Option<PathBuf>,
    node: String,
    ips: Vec<IpAddr>,
    dns_names: Vec<String>,
    /// The cluster CA (PEM); without it nothing is asked for.
    ca_pem: Option<String>,
    /// A request still pending, and its key (PEM): waited on again rather
    /// than sending a new one each time.
    pending: std::sync::Mutex<Option<(String, String)>>,
}

#[derive(Debug, Clone)]
struct Current {
    key: Arc<CertifiedKey>,
    /// When to ask for a new one; None while the certificate is not one
    /// from the cluster CA for the node's addresses.
    renew_at: Option<SystemTime>,
}

impl Serving {
    /// The stored certificate when it is still good for `node` at `ips`,
    /// else a self-signed one until [`Serving::keep_current`] gets one.
    pub fn load(
        node: &str,
        ips: Vec<IpAddr>,
        ca_pem: Option<String>,
        pki_dir: Option<&Path>,
    ) -> Result<Serving, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut s = Serving {
            current: RwLock::new(self_signed(node, &ips, &provider)?),
            provider,
            file: pki_dir.map(|d| d.join(SERVING_FILE)),
            node: node.to_string(),
            ips,
            // A name that is no DNS name could never be checked.
            dns_names: ServerName::try_from(node.to_string())
                .map(|_| vec![node.to_string()])
                .unwrap_or_default(),
            ca_pem,
            pending: std::sync::Mutex::new(None),
        };
        let stored = match &s.file {
            Some(f) => match std::fs::read_to_string(f) {
                Ok(pem) => Some(pem),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(CertError::Io {
                        path: f.clone(),
                        source,
                    })
                }
            },
            None => None,
        };
        if let Some(pem) = stored {
            match s.check(&pem, SystemTime::now()) {
                Ok(current) => *s.current.get_mut().map_err(poisoned)? = current,
                Err(why) => tracing::info!(
                    "the node's serving certificate in {} will be replaced: {why}",
                    s.file.as_deref().unwrap_or(Path::new("")).display()
                ),
            }
        }
        Ok(s)
    }

    /// The certificate a handshake is answered with.
    fn certified(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.key.clone())
    }

    /// When the current certificate should be replaced: now if it is not
    /// the cluster CA's.
    fn renew_at(&self) -> SystemTime {
        self.current
            .read()
            .ok()
            .and_then(|c| c.renew_at)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Whether `pem` (certificate and key) is a certificate from the
    /// cluster CA for this node and its addresses, valid at `now` and not
    /// yet due for renewal: the certificate to serve if so.
    fn check(&self, pem: &str, now: SystemTime) -> Result<Current, String> {
        let ca = self
            .ca_pem
            .as_deref()
            .ok_or("no cluster CA to check it with")?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let leaf = certs.first().ok_or("no certificate in it")?;
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())?;
        let certified = CertifiedKey::from_der(certs.clone(), key, &self.provider)
            .map_err(|e| e.to_string())?;
        let (subject, not_before, not_after) = validity(leaf)?;
        let want = format!("system:node:{}", self.node);
        if subject != want {
            return Err(format!("it is for CN={subject}, not {want}"));
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| e.to_string())?;
        let at = UnixTime::since_unix_epoch(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let mut names: Vec<ServerName<'static>> = self
            .ips
            .iter()
            .map(|ip| ServerName::IpAddress((*ip).into()))
            .collect();
        for d in &self.dns_names {
            names.push(ServerName::try_from(d.clone()).map_err(|e| format!("{d}: {e}"))?);
        }
        for name in &names {
            use rustls::client::danger::ServerCertVerifier;
            verifier
                .verify_server_cert(leaf, &certs[1..], name, &[], at)
                .map_err(|e| format!("{}: {e}", name.to_str()))?;
        }
        let life = not_after
            .duration_since(not_before)
            .unwrap_or_default()
            .mul_f64(RENEW_AT);
        let renew_at = not_before + life;
        if now >= renew_at {
            return Err(format!(
                "{:.0}% of its lifetime has passed",
                RENEW_AT * 100.0
            ));
        }
        Ok(Current {
            key: Arc::new(certified),
            renew_at: Some(renew_at),
        })
    }

    /// Ask for a new serving certificate and install it.
    async fn renew(&self, client: &kube::Client) -> Result<(), CertError> {
        let pending = self.pending.lock().map_err(poisoned)?.take();
        let (name, key) = match pending {
            Some(p) => p,
            None => {
                let key = rcgen::KeyPair::generate().map_err(|e| CertError::Make(e.to_string()))?;
                let req = CertRequest {
                    node: &self.node,
                    signer: SERVING_SIGNER,
                    usages: &["digital signature", "key encipherment", "server auth"],
                    ips: &self.ips,
                    dns_names: &self.dns_names,
                };
                (submit(client, &req, &key).await?, key.serialize_pem())
            }
        };
        let cert = match wait_for(client, &name, &self.node, ISSUE_WAIT).await {
            Ok(c) => c,
            Err(e) => {
                if matches!(e, CertError::Pending { .. }) {
                    *self.pending.lock().map_err(poisoned)? = Some((name, key));
                }
                return Err(e);
            }
        };
        let pem = format!("{}\n{}", cert.trim_end(), key);
        let current = self
            .check(&pem, SystemTime::now())
            .map_err(|why| CertError::Tls(format!("the issued serving certificate: {why}")))?;
        if let Some(f) = &self.file {
            write_private(f, &pem)?;
        }
        *self.current.write().map_err(poisoned)? = current;
        tracing::info!(
            node = %self.node,
            "serving with a certificate from the cluster CA"
        );
        Ok(())
    }

    /// Whether the certificate served now is one from the cluster CA.
    pub fn from_cluster_ca(&self) -> bool {
        self.current.read().is_ok_and(|c| c.renew_at.is_some())
    }

    /// Keep a current certificate from the cluster CA: ask for one now if
    /// the node has none, then again as each nears its end. Failures are
    /// retried every minute; `first` is told after the first attempt.
    pub async fn keep_current(
        self: Arc<Self>,
        client: kube::Client,
        first: tokio::sync::oneshot::Sender<()>,
    ) {
        if self.ca_pem.is_none() {
            let _ = first.send(());
            return std::future::pending().await;
        }
        let mut first = Some(first);
        loop {
            let due = self.renew_at();
            let wait = due
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                if let Err(e) = self.renew(&client).await {
                    tracing::warn!(
                        node = %self.node,
                        "the node endpoint has no serving certificate from the cluster CA, so the API server will refuse it (logs, exec): {e}"
                    );
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    continue;
                }
            }
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
            // Look again at least hourly, so a clock that jumped is noticed.
            let wait = self
                .renew_at()
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::time::sleep(wait.clamp(Duration::from_secs(1), Duration::from_secs(3600))).await;
        }
    }
}

impl rustls::server::ResolvesServerCert for Serving {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certified()
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> CertError {
    CertError::Tls("the serving certificate's lock was poisoned".into())
}

/// A self-signed certificate for the node's name and addresses, served
/// until the cluster CA issues one.
fn self_signed(
    node: &str,
    ips: &[IpAddr],
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Current, CertError> {
    let mut names = vec![node.to_string(), "localhost".to_string()];
    names.extend(ips.iter().map(IpAddr::to_string));
    let cert =
        rcgen::generate_simple_self_signed(names).map_err(|e| CertError::Make(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let certified = CertifiedKey::from_der(vec![cert.cert.der().clone()], key, provider)
        .map_err(|e| CertError::Tls(e.to_string()))?;
    Ok(Current {
        key: Arc::new(certified),
        renew_at: None,
    })
}

/// The subject common name and validity of a DER certificate.
pub fn validity(der: &[u8]) -> Result<(String, SystemTime, SystemTime), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let subject = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("")
        .to_string();
    let time = |t: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0))
    };
    Ok((
        subject,
        time(cert.validity().not_before),
        time(cert.validity().not_after),
    ))
}

/// Whether a certificate (PEM) has passed [`RENEW_AT`] of its lifetime at
/// `now`.
pub fn due_for_renewal(cert_pem: &str, now: SystemTime) -> Result<bool, String> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    let (_, not_before, not_after) = validity(&der)?;
    let life = not_after
        .duration_since(not_before)
        .unwrap_or_default()
        .mul_f64(RENEW_AT);
    Ok(now >= not_before + life)
}

/// Write a file readable by its owner only, replacing any old one in one
/// step (a rename), so that a crash leaves the old or the new contents.
pub fn write_private(path: &Path, text: &str) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::Io { path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_or_foreign_certificate_is_not_kept() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca, &ca_key);
        let ip: IpAddr = "10.0.0.5".parse().expect("ip");
        let dir = tempfile::tempdir().expect("tmp");
        let s = Serving::load("n1", vec![ip], Some(ca_cert.pem()), Some(dir.path())).expect("load");
        assert!(!s.from_cluster_ca());
        let issue = |cn: &str, names: Vec<String>| {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut p = rcgen::CertificateParams::new(names).expect("params");
            p.distinguished_name
                .push(rcgen::DnType::CommonName, cn.to_string());
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            let c = p.signed_by(&key, &issuer).expect("sign");
            format!("{}{}", c.pem(), key.serialize_pem())
        };
        let now = SystemTime::now();
        let good = issue("system:node:n1", vec!["n1".into(), "10.0.0.5".into()]);
        assert!(s.check(&good, now).is_ok());
        let other = issue("system:node:n2", vec!["n1".into(), "10.0.0.5".into()]);
        assert!(s
            .check(&other, now)
            .expect_err("another node's")
            .contains("CN=system:node:n2"));
        let moved = issue("system:node:n1", vec!["n1".into(), "10.0.0.6".into()]);
        assert!(s
            .check(&moved, now)
            .expect_err("moved")
            .contains("10.0.0.5"));
        let own = rcgen::generate_simple_self_signed(vec!["n1".into(), "10.0.0.5".into()])
            .expect("self-signed");
        let own = format!("{}{}", own.cert.pem(), own.signing_key.serialize_pem());
        assert!(s.check(&own, now).is_err());
        // rcgen's default validity ends in 4096: 70% of it is far away,
        // but not from a clock set to 4000.
        let late = SystemTime::UNIX_EPOCH + Duration::from_secs(64_000_000_000);
        assert!(s.check(&good, late).is_err());
        // Kept across a restart when good.
        write_private(&dir.path().join(SERVING_FILE), &good).expect("write");
        let s = Serving::load("n1", vec![ip], Some(ca_cert.pem()), Some(dir.path())).expect("load");
        assert!(s.from_cluster_ca());
        // Not when the node's address changed.
        let other_ip = "10.0.0.7".parse().expect("ip");
        let s = Serving::load("n1", vec![other_ip], Some(ca_cert.pem()), Some(dir.path()))
            .expect("load");
        assert!(!s.from_cluster_ca());
    }
}
