//! The node's built-in gateway: an Ingress controller for the IngressClass
//! `skiff`, served by every node agent.
//!
//! It watches Ingresses, IngressClasses, Services and EndpointSlices and
//! keeps a [`routes::Routes`] table, rebuilt when any of them changes (a
//! burst of changes is one rebuild). A request is matched to a Service
//! port, then sent to one of its ready endpoints:
//!
//! - **In-process** when this node serves one of the endpoints itself (a
//!   Wasm HTTP function in the node's [`Functions`] table): the request
//!   goes straight to a fresh instance, no socket in between. Local
//!   endpoints are preferred when there are any, as topology-aware routing
//!   prefers the local zone.
//! - Otherwise **proxied** over HTTP/1.1 to `podIP:port`, round-robin,
//!   with `X-Forwarded-For`/`-Proto`/`-Host` added and hop-by-hop headers
//!   dropped.
//!
//! No route is 404, a route whose Service has no ready endpoint 503, an
//! endpoint that does not answer 502; each with a one-line reason.

pub mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::Api;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::service::reflect;
use crate::wasm::http::{plain, Functions, Peer, MAX_REQUEST_BODY};
use routes::{Routes, World};

/// The body the gateway answers with.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Headers that belong to one connection and are not forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The gateway of one node.
pub struct Gateway {
    routes: RwLock<Arc<Routes>>,
    functions: Arc<Functions>,
    client: hyper_util::client::legacy::Client<HttpConnector, Body>,
    /// Signalled after every rebuild (tests and the activator wait on it).
    pub rebuilt: Notify,
}

impl Gateway {
    /// A gateway with an empty table; [`Gateway::watch`] fills it.
    pub fn new(functions: Arc<Functions>) -> Arc<Gateway> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Arc::new(Gateway {
            routes: RwLock::new(Arc::new(Routes::default())),
            functions,
            client,
            rebuilt: Notify::new(),
        })
    }

    /// The current table.
    pub fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Keep the table in step with the cluster until the watches end.
    pub async fn watch(self: Arc<Self>, client: kube::Client) {
        let changed = Arc::new(Notify::new());
        let ingresses = reflect::<Ingress>(Api::all(client.clone()), changed.clone(), "gateway");
        let classes = reflect::<IngressClass>(Api::all(client.clone()), changed.clone(), "gateway");
        let services = reflect::<Service>(Api::all(client.clone()), changed.clone(), "gateway");
        let slices = reflect::<EndpointSlice>(Api::all(client), changed.clone(), "gateway");
        loop {
            changed.notified().await;
            // Let a burst of events land, then rebuild once.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let (i, c, s, e) = (
                ingresses.state(),
                classes.state(),
                services.state(),
                slices.state(),
            );
            let table = Routes::build(&World {
                ingresses: &i,
                classes: &c,
                services: &s,
                slices: &e,
            });
            *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
            self.rebuilt.notify_waiters();
        }
    }

    /// Accept connections on `listener` and route their requests.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "gateway: accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().unwrap_or(remote);
            let gw = self.clone();
            let svc = hyper::service::service_fn(move |req| {
                let gw = gw.clone();
                async move {
                    let peer = Peer {
                        remote,
                        local,
                        tls: false,
                    };
                    Ok::<_, std::convert::Infallible>(gw.handle(req, peer).await)
                }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    }

    /// Route one request.
    pub async fn handle(&self, req: http::Request<Incoming>, peer: Peer) -> http::Response<Body> {
        let host = request_host(&req);
        let routes = self.routes();
        let Some(backend) = routes.route(host_only(&host), req.uri().path()) else {
            return boxed(plain(404, "no Ingress rule matches this host and path\n"));
        };
        let local: Vec<SocketAddr> = backend
            .endpoints
            .iter()
            .copied()
            .filter(|a| self.functions.get(a).is_some())
            .collect();
        if let Some(addr) = backend.pick(&local) {
            if let Some(f) = self.functions.get(addr) {
                let (parts, body) = req.into_parts();
                let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => return boxed(plain(413, "request body too large\n")),
                };
                return boxed(f.call(&parts, body, peer).await);
            }
        }
        let Some(addr) = backend.pick(&backend.endpoints).copied() else {
            tracing::debug!(backend = %backend.name(), "no ready endpoints");
            return boxed(plain(503, "the Service has no ready endpoints\n"));
        };
        self.proxy(req, addr, &host, peer).await
    }

    /// Forward to a remote endpoint.
    async fn proxy(
        &self,
        req: http::Request<Incoming>,
        to: SocketAddr,
        host: &str,
        peer: Peer,
    ) -> http::Response<Body> {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let Ok(uri) = format!("http://{to}{path}").parse::<http::Uri>() else {
            return boxed(plain(400, "the request path is not a valid URI\n"));
        };
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        let client_ip = peer.remote.ip().to_string();
        let xff = match parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {client_ip}"),
            None => client_ip,
        };
        let proto = if peer.tls { "https" } else { "http" };
        for (name, value) in [
            ("x-forwarded-for", xff.as_str()),
            ("x-forwarded-proto", proto),
            ("x-forwarded-host", host),
        ] {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                parts.headers.insert(name, v);
            }
        }
        if !parts.headers.contains_key(http::header::HOST) {
            if let Ok(v) = http::HeaderValue::from_str(host) {
                parts.headers.insert(http::header::HOST, v);
            }
        }
        let req = http::Request::from_parts(parts, body.boxed());
        match self.client.request(req).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                http::Response::from_parts(parts, body.boxed())
            }
            Err(e) => {
                tracing::debug!(endpoint = %to, error = %e, "gateway: proxying");
                boxed(plain(502, "the endpoint did not answer\n"))
            }
        }
    }
}

fn strip_hop_by_hop(h: &mut http::HeaderMap) {
    // Headers named by Connection are hop-by-hop too.
    let named: Vec<String> = h
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for n in HOP_BY_HOP.iter().copied().chain(named.iter().map(String::as_str)) {
        h.remove(n);
    }
}

/// The host the client asked for: `Host`, else the URI's authority.
fn request_host<B>(req: &http::Request<B>) -> String {
    req.headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// `host:port` without the port (IPv6 literals keep their brackets).
fn host_only(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[..]).trim_start_matches('[');
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn boxed(r: http::Response<Full<Bytes>>) -> http::Response<Body> {
    r.map(|b| b.map_err(|never| match never {}).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_only("example.com:8080"), "example.com");
        assert_eq!(host_only("example.com"), "example.com");
        assert_eq!(host_only("[::1]:80"), "::1");
    }

    #[test]
    fn connection_named_headers_are_dropped() {
        let mut h = http::HeaderMap::new();
        h.insert("connection", http::HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", http::HeaderValue::from_static("1"));
        h.insert("x-kept", http::HeaderValue::from_static("1"));
        h.insert("upgrade", http::HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }
}
