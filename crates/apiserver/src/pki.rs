//! The cluster's certificate authority, serving certificate and admin token.
//!
//! `skiff up` keeps them under `DATA_DIR/pki/` so that a restart reuses the
//! CA that kubeconfigs and joined nodes already trust. The serving
//! certificate is issued fresh at every start for the addresses the server
//! listens on, so changing `--listen` never leaves a name mismatch.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// What the API server needs to serve TLS and check the admin token.
pub struct Pki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// The client certificate the API server presents to node agents
    /// (logs, exec), issued fresh at each start.
    pub node_client_cert_pem: String,
    pub node_client_key_pem: String,
    pub admin_token: String,
    /// The CA's key (PEM), for [`Pki::signer`].
    ca_key_pem: String,
}

/// Issues certificates from the cluster CA for CertificateSigningRequests
/// (node client and serving certificates).
pub struct Signer {
    ca_key_pem: String,
}

/// What a certificate the [`Signer`] issues says and allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// Server auth (a node's serving certificate) or client auth.
    pub server: bool,
    /// Subject alternative names: addresses and DNS names.
    pub ips: Vec<IpAddr>,
    pub dns_names: Vec<String>,
    /// How long it is valid from now (it is also valid from five minutes
    /// ago, for clocks a little behind, as Kubernetes' signer backdates).
    pub lifetime: std::time::Duration,
}

/// How far back a certificate's validity starts.
const BACKDATE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

impl Signer {
    /// A certificate for the key of a PKCS#10 request (PEM) as `profile`
    /// says: subject, usages and names come from the profile, only the
    /// public key from the request, whose own signature is verified first.
    pub fn sign(&self, csr_pem: &str, profile: &Profile) -> Result<String, PkiError> {
        let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)?;
        let key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::new(ca_params()?, key);
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, profile.common_name.as_str());
        for o in &profile.organizations {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        params.distinguished_name = dn;
        params.extended_key_usages = vec![if profile.server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        for ip in &profile.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for d in &profile.dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(d.as_str().try_into()?));
        }
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
        params.not_before = now - BACKDATE;
        params.not_after = now + profile.lifetime;
        let signed = rcgen::CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        }
        .signed_by(&issuer)?;
        Ok(signed.pem())
    }
}

fn read_or_none(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Write a secret file readable by its owner only.
fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-ca");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(p)
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Pki {
    /// Load the CA and admin token from `dir` (creating them on first use)
    /// and issue a serving certificate for `hosts` (names and IPs).
    pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.into(),
            source,
        })?;
        let ca_key_path = dir.join("ca.key");
        let ca_crt_path = dir.join("ca.crt");
        let (ca_key, ca_pem) = match (read_or_none(&ca_key_path)?, read_or_none(&ca_crt_path)?) {
            (Some(k), Some(c)) => (KeyPair::from_pem(&k)?, c),
            _ => {
                let key = KeyPair::generate()?;
                let cert = ca_params()?.self_signed(&key)?;
                write_private(&ca_key_path, &key.serialize_pem())?;
                write_private(&ca_crt_path, &cert.pem())?;
                (key, cert.pem())
            }
        };
        let token_path = dir.join("admin.token");
        let admin_token = match read_or_none(&token_path)? {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t = random_token();
                write_private(&token_path, &t)?;
                t
            }
        };
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "skiff-apiserver");
        params.distinguished_name = dn;
        params.subject_alt_names = sans(hosts)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, apimachinery::NODE_CLIENT_COMMON_NAME);
        client.distinguished_name = dn;
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client.not_before = rcgen::date_time_ymd(2024, 1, 1);
        client.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let client_key = KeyPair::generate()?;
        let client_cert = client.signed_by(&client_key, &issuer)?;
        Ok(Pki {
            ca_pem,
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
            node_client_cert_pem: client_cert.pem(),
            node_client_key_pem: client_key.serialize_pem(),
            admin_token,
            ca_key_pem: ca_key.serialize_pem(),
        })
    }

    /// A rustls server configuration offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let tls = |e: &dyn std::fmt::Display| PkiError::Tls(e.to_string());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| tls(&e))?;
        let key =
            PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).map_err(|e| tls(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Client certificates signed by the cluster CA authenticate their
        // subject (nodes joined with a token get one); clients without one
        // use bearer tokens.
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(ca_roots(&self.ca_pem)?),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls(&e))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| tls(&e))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

impl Pki {
    /// What signs node client certificates.
    pub fn signer(&self) -> Signer {
        Signer {
            ca_key_pem: self.ca_key_pem.clone(),
        }
    }

    /// The hash nodes pin the CA by when they join (`--ca-cert-hash`):
    /// `sha256:` and the hex SHA-256 of the CA certificate's
    /// SubjectPublicKeyInfo, as kubeadm's discovery hash.
    pub fn ca_hash(&self) -> Result<String, PkiError> {
        ca_cert_hash(&self.ca_pem).map_err(PkiError::Tls)
    }

    /// What the API server talks to node agents with: its node client
    /// certificate, and the cluster CA to verify the nodes' serving
    /// certificates against.
    pub fn node_client(&self) -> Result<NodeClient, PkiError> {
        let tls = |e: &dyn std::fmt::Display| PkiError::Tls(e.to_string());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.node_client_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| tls(&e))?;
        let key = PrivateKeyDer::from_pem_slice(self.node_client_key_pem.as_bytes())
            .map_err(|e| tls(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(ca_roots(&self.ca_pem)?),
            provider.clone(),
        )
        .build()
        .map_err(|e| tls(&e))?;
        Ok(NodeClient {
            certs,
            key,
            provider,
            webpki,
        })
    }
}

/// The cluster CA as a rustls root store.
fn ca_roots(ca_pem: &str) -> Result<rustls::RootCertStore, PkiError> {
    let tls = |e: &dyn std::fmt::Display| PkiError::Tls(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    Ok(roots)
}

/// The API server's side of its connections to node agents (logs, exec),
/// as kube-apiserver's `--kubelet-client-certificate` and
/// `--kubelet-certificate-authority`: it presents the node client
/// certificate and accepts a node only if its serving certificate chains to
/// the cluster CA, names the address dialed, and is `system:node:NAME` for
/// the Node being reached. A node's address comes from its own Node object,
/// so the name check is what stops one node from answering for another.
pub struct NodeClient {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
}

impl NodeClient {
    /// A TLS client configuration for reaching the agent of Node `node`.
    pub fn config(&self, node: &str) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        let tls = |e: &dyn std::fmt::Display| PkiError::Tls(e.to_string());
        let verifier = NodeCertificate {
            node: node.to_string(),
            webpki: self.webpki.clone(),
        };
        let cfg = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| tls(&e))?;
        Ok(Arc::new(cfg))
    }
}

/// Why a node's serving certificate was refused, in words for a person.
#[derive(Debug)]
pub struct UntrustedNode(pub String);

impl std::fmt::Display for UntrustedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UntrustedNode {}

/// Verifies a node's serving certificate: webpki's checks against the
/// cluster CA (chain, validity, usage, the dialed address), then the
/// subject `CN=system:node:NAME` of the Node being reached.
#[derive(Debug)]
struct NodeCertificate {
    node: String,
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
}

fn untrusted(why: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(UntrustedNode(why)),
    )))
}

/// The subject and issuer common names of a DER certificate.
fn subject_and_issuer(der: &[u8]) -> (String, String) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return (String::new(), String::new());
    };
    let cn = |n: &x509_parser::x509::X509Name<'_>| {
        n.iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("")
            .to_string()
    };
    (cn(cert.subject()), cn(cert.issuer()))
}

impl rustls::client::danger::ServerCertVerifier for NodeCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let (subject, issuer) = subject_and_issuer(end_entity);
        let want = format!("system:node:{}", self.node);
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(_) => {}
            Err(rustls::Error::InvalidCertificate(e)) => {
                let why = match e {
                    _ if subject == issuer => format!(
                        "a self-signed certificate (CN={subject}) that the cluster CA did not sign"
                    ),
                    rustls::CertificateError::UnknownIssuer
                    | rustls::CertificateError::BadSignature => format!(
                        "a certificate (CN={subject}, issuer CN={issuer}) that the cluster CA did not sign"
                    ),
                    rustls::CertificateError::Other(o) => {
                        format!("a certificate (CN={subject}) that is not valid here: {}", o.0)
                    }
                    e => format!("a certificate (CN={subject}) that is not valid here: {e}"),
                };
                return Err(untrusted(why));
            }
            Err(e) => return Err(e),
        }
        if subject != want {
            return Err(untrusted(format!(
                "a certificate for CN={subject}, not {want}"
            )));
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `sha256:HEX` of the SubjectPublicKeyInfo of the first certificate in
/// `pem`.
pub fn ca_cert_hash(pem: &str) -> Result<String, String> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or("no certificate in the PEM")?
        .map_err(|e| e.to_string())?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    Ok(format!(
        "sha256:{}",
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

fn sans(hosts: &[String]) -> Result<Vec<SanType>, PkiError> {
    let mut out = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        SanType::IpAddress(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
        SanType::DnsName("kubernetes.default.svc".try_into()?),
    ];
    for h in hosts {
        let san = match h.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => continue,
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(h.as_str().try_into()?),
        };
        if !out.contains(&san) {
            out.push(san);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn ca_and_token_are_kept_across_restarts_and_cert_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Pki::load_or_create(dir.path(), &["10.1.2.3".into()]).expect("first");
        let b = Pki::load_or_create(dir.path(), &[]).expect("second");
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert_eq!(a.admin_token.len(), 48);
        assert!(a.server_config().is_ok());
        // The serving certificate chains to the CA.
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(a.ca_pem.as_bytes()) {
            roots.add(c.expect("ca pem")).expect("add root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
        let cert = CertificateDer::from_pem_slice(a.server_cert_pem.as_bytes()).expect("cert");
        let name = rustls_pki_types::ServerName::try_from("10.1.2.3").expect("name");
        verifier
            .verify_server_cert(&cert, &[], &name, &[], rustls_pki_types::UnixTime::now())
            .expect("server cert verifies for its listen address");
    }
    /// A serving certificate from `pki`'s CA through the CSR path, for
    /// `cn` at `ip`, and its key.
    fn node_cert(pki: &Pki, cn: &str, ip: &str) -> (String, KeyPair) {
        let key = KeyPair::generate().expect("key");
        let csr = CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(&key)
            .and_then(|r| r.pem())
            .expect("csr");
        let profile = Profile {
            common_name: cn.into(),
            organizations: vec!["system:nodes".into()],
            server: true,
            ips: vec![ip.parse().expect("ip")],
            dns_names: vec![],
            lifetime: std::time::Duration::from_secs(3600),
        };
        (pki.signer().sign(&csr, &profile).expect("sign"), key)
    }

    fn verify(pki: &Pki, node: &str, cert_pem: &str, dialed: &str) -> Result<(), String> {
        let nc = pki.node_client().expect("node client");
        let verifier = NodeCertificate {
            node: node.into(),
            webpki: nc.webpki.clone(),
        };
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("pem");
        let name = rustls_pki_types::ServerName::try_from(dialed.to_string()).expect("name");
        verifier
            .verify_server_cert(&der, &[], &name, &[], rustls_pki_types::UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_api_server_accepts_only_the_nodes_own_certificate_from_the_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(dir.path(), &[]).expect("pki");
        let (good, _) = node_cert(&pki, "system:node:n1", "10.0.0.5");
        verify(&pki, "n1", &good, "10.0.0.5").expect("its own certificate");
        // Another node's certificate, even from the CA and for this address.
        let (other, _) = node_cert(&pki, "system:node:n2", "10.0.0.5");
        let e = verify(&pki, "n1", &other, "10.0.0.5").expect_err("another node's");
        assert!(e.contains("CN=system:node:n2, not system:node:n1"), "{e}");
        // Its own name, but not the address dialed.
        let e = verify(&pki, "n1", &good, "10.0.0.6").expect_err("wrong address");
        assert!(e.contains("not valid") && e.contains("10.0.0.6"), "{e}");
        // Self-signed, as nodes served before.
        let own = rcgen::generate_simple_self_signed(vec!["n1".into(), "10.0.0.5".into()])
            .expect("self-signed");
        let e = verify(&pki, "n1", &own.cert.pem(), "10.0.0.5").expect_err("self-signed");
        assert!(
            e.contains("a self-signed certificate") && e.contains("the cluster CA did not sign"),
            "{e}"
        );
        // From another CA.
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let other_ca = Pki::load_or_create(elsewhere.path(), &[]).expect("pki");
        let (foreign, _) = node_cert(&other_ca, "system:node:n1", "10.0.0.5");
        let e = verify(&pki, "n1", &foreign, "10.0.0.5").expect_err("another CA");
        assert!(e.contains("the cluster CA did not sign"), "{e}");
    }
}
