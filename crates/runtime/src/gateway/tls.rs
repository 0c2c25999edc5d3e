//! HTTPS on the gateway: certificates from the Secrets that Ingresses
//! name in `spec.tls`, chosen by the name the client asks for (SNI).
//!
//! A `tls` entry's `hosts` map to its Secret (`kubernetes.io/tls`:
//! `tls.crt` and `tls.key`, PEM); an entry without hosts is the certificate
//! for names no entry lists, and for clients that send no SNI. The first
//! Ingress (oldest) to claim a host keeps it. Parsed keys are kept per
//! Secret `resourceVersion`, so a rotated Secret is picked up on the next
//! handshake and an unchanged one is not parsed again. A handshake for a
//! name with no certificate fails: no certificate is better than a wrong
//! one.
//!
//! The gateway keeps only Secrets of type `kubernetes.io/tls` (a list and
//! watch with `fieldSelector=type=kubernetes.io/tls`), which is also all a
//! node credential may list: the API server's Node authorizer keeps other
//! Secrets to the nodes whose pods use them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::Store;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Gateway;

/// Picks the certificate for a handshake.
pub struct Certificates {
    gateway: std::sync::Weak<Gateway>,
    secrets: Store<Secret>,
    /// `namespace/name` → (resourceVersion, key).
    parsed: Mutex<HashMap<String, (String, Arc<CertifiedKey>)>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Certificates")
    }
}

impl Certificates {
    pub fn new(gateway: &Arc<Gateway>, secrets: Store<Secret>) -> Certificates {
        Certificates {
            gateway: Arc::downgrade(gateway),
            secrets,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// The key of Secret `ns/name`, parsed once per version.
    fn key_of(&self, secret_ref: &str) -> Option<Arc<CertifiedKey>> {
        let (ns, name) = secret_ref.split_once('/')?;
        let secret = self.secrets.state().into_iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })?;
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        if let Some((v, k)) = self
            .parsed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(secret_ref)
        {
            if *v == version {
                return Some(k.clone());
            }
        }
        let data = secret.data.as_ref()?;
        match certified_key(&data.get("tls.crt")?.0, &data.get("tls.key")?.0) {
            Ok(key) => {
                let key = Arc::new(key);
                self.parsed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(secret_ref.to_string(), (version, key.clone()));
                Some(key)
            }
            Err(e) => {
                tracing::warn!(secret = %secret_ref, "gateway: unusable TLS Secret: {e}");
                None
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let gw = self.gateway.upgrade()?;
        let routes = gw.routes();
        let name = hello.server_name().map(str::to_ascii_lowercase);
        let wildcard = name
            .as_deref()
            .and_then(|n| n.split_once('.'))
            .map(|(_, rest)| format!("*.{rest}"));
        let secret = name
            .as_deref()
            .and_then(|n| routes.tls.get(n))
            .or_else(|| wildcard.as_deref().and_then(|w| routes.tls.get(w)))
            .or_else(|| routes.tls.get(""))?;
        self.key_of(secret)
    }
}

/// A certificate chain and private key (PEM) as rustls signs with them.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if certs.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("tls.key: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls.key: {e}"))?;
    Ok(CertifiedKey::new(certs, signer))
}

/// The server configuration of the gateway's TLS port.
pub fn server_config(certs: Arc<Certificates>) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_pairs_become_keys_and_bad_ones_say_which_part() {
        let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()]).expect("cert");
        let key = certified_key(
            cert.cert.pem().as_bytes(),
            cert.signing_key.serialize_pem().as_bytes(),
        );
        assert!(key.is_ok(), "{:?}", key.err());
        let err = certified_key(b"", cert.signing_key.serialize_pem().as_bytes()).err();
        assert_eq!(err.as_deref(), Some("tls.crt holds no certificate"));
        let err = certified_key(cert.cert.pem().as_bytes(), b"junk")
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("tls.key:"), "{err}");
    }
}
