//! A small HTTPS client for skiff's own API (benchmarks, CLI helpers).
//!
//! One HTTP/1.1 connection per [`Conn`], so that a benchmark's clients are
//! really concurrent connections, as separate kubectl processes would be.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where and how to reach an API server.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    token: String,
    tls: TlsConnector,
}

impl Client {
    /// A client that sends `token` as its bearer token.
    pub fn new(addr: SocketAddr, ca_pem: &str, token: &str) -> Result<Client> {
        Client::build(addr, ca_pem, token, None)
    }

    /// A client that authenticates with a client certificate (PEM) and
    /// sends no token.
    pub fn with_certificate(
        addr: SocketAddr,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Client> {
        Client::build(addr, ca_pem, "", Some((cert_pem, key_pem)))
    }

    fn build(
        addr: SocketAddr,
        ca_pem: &str,
        token: &str,
        identity: Option<(&str, &str)>,
    ) -> Result<Client> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(c.context("reading the cluster CA")?)
                .context("adding the cluster CA")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut cfg = match identity {
            Some((cert, key)) => {
                let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .context("reading the client certificate")?;
                let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .context("reading the client key")?;
                builder
                    .with_client_auth_cert(certs, key)
                    .context("the client certificate")?
            }
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Every connection does a full handshake, as separate kubectl
        // processes (which share no TLS session cache) do.
        cfg.resumption = rustls::client::Resumption::disabled();
        Ok(Client {
            addr,
            token: token.to_string(),
            tls: TlsConnector::from(Arc::new(cfg)),
        })
    }

    pub async fn connect(&self) -> Result<Conn> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = self.tls.connect(name, tcp).await.context("TLS handshake")?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            token: self.token.clone(),
        })
    }
}

pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    token: String,
}

impl Conn {
    /// Send a request and return the response with its body unread.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<http::Response<Incoming>> {
        self.sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "skiff");
        if !self.token.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let req = req
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        Ok(self.sender.send_request(req).await?)
    }

    /// Send a request and read the whole response.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}
