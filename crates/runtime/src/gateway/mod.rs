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
//!
//! **Activation.** A request whose Service has no ready endpoint, where a
//! Deployment behind the Service opted in to scale to zero
//! (`skiff.dev/scale-to-zero`) and is at 0 replicas, scales it back to its
//! `skiff.dev/scaled-from` count (1 if unknown) and waits, up to
//! [`ACTIVATION_TIMEOUT`], for an endpoint to be ready; then it is answered
//! like any other. Concurrent requests share one scale-up. The held request
//! does not wait for the new pod's readiness to travel through the API
//! (pod status, EndpointSlice, this table): as soon as a function of the
//! Service's pods listens on this node, it is called in-process.

pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::reflector::Store;
use kube::Api;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::service::{reflect, reflect_selected};
use crate::wasm::http::{plain, Function, Functions, Peer, MAX_REQUEST_BODY};
use routes::{Routes, World};

/// How long a request waits for a scaled-to-zero function to come up.
pub const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(30);
/// On a Deployment: scale to zero after this long without requests.
pub const IDLE_ANNOTATION: &str = "skiff.dev/scale-to-zero";
/// On a Deployment scaled to zero: its replicas before.
pub const SCALED_FROM_ANNOTATION: &str = "skiff.dev/scaled-from";

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
    /// What the activator reads, once the watches run.
    caches: std::sync::OnceLock<Caches>,
    /// Deployments being woken, with when: one scale-up per wake.
    waking: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

struct Caches {
    api: kube::Client,
    services: Store<Service>,
    deployments: Store<Deployment>,
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
            caches: std::sync::OnceLock::new(),
            waking: Default::default(),
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
        let slices = reflect::<EndpointSlice>(Api::all(client.clone()), changed.clone(), "gateway");
        // Deployments change no route: a Notify of their own, never read.
        let deployments =
            reflect::<Deployment>(Api::all(client.clone()), Arc::new(Notify::new()), "gateway");
        let _ = self.caches.set(Caches {
            api: client,
            services: services.clone(),
            deployments,
        });
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
        self.accept(listener, None).await;
    }

    /// Accept TLS connections on `listener`, with certificates from the
    /// Ingresses' Secrets ([`tls`]).
    pub async fn serve_tls(self: Arc<Self>, listener: TcpListener, client: kube::Client) {
        // Only `kubernetes.io/tls` Secrets: all a certificate can come from,
        // and all the Node authorizer lets a node list.
        let tls_only = kube::runtime::watcher::Config::default().fields("type=kubernetes.io/tls");
        let secrets = reflect_selected::<Secret>(
            Api::all(client),
            tls_only,
            Arc::new(Notify::new()),
            "gateway",
        );
        let certs = Arc::new(tls::Certificates::new(&self, secrets));
        match tls::server_config(certs) {
            Ok(cfg) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
                self.accept(listener, Some(acceptor)).await;
            }
            Err(e) => tracing::error!("gateway: no TLS: {e}"),
        }
    }

    async fn accept(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
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
            let peer = Peer {
                remote,
                local,
                tls: tls.is_some(),
            };
            let gw = self.clone();
            match &tls {
                None => {
                    tokio::spawn(gw.serve_connection(stream, peer));
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // A handshake for a name without a certificate
                        // fails here; nothing to answer.
                        if let Ok(s) = acceptor.accept(stream).await {
                            gw.serve_connection(s, peer).await;
                        }
                    });
                }
            }
        }
    }

    async fn serve_connection<S>(self: Arc<Self>, stream: S, peer: Peer)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let gw = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let gw = gw.clone();
            async move { Ok::<_, std::convert::Infallible>(gw.handle(req, peer).await) }
        });
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
    }

    /// Route one request.
    pub async fn handle(&self, req: http::Request<Incoming>, peer: Peer) -> http::Response<Body> {
        let host = request_host(&req);
        let routes = self.routes();
        let Some(mut backend) = routes.route(host_only(&host), req.uri().path()).cloned() else {
            return boxed(plain(404, "no Ingress rule matches this host and path\n"));
        };
        if backend.endpoints.is_empty() {
            match self
                .activate(&backend, host_only(&host), req.uri().path())
                .await
            {
                Activation::Ready(b) => backend = b,
                Activation::Local(f) => return call_local(&f, req, peer).await,
                Activation::NotScaledToZero => {}
                Activation::TimedOut => {
                    return boxed(plain(
                        504,
                        "the function was scaled to zero and did not come up in time\n",
                    ))
                }
            }
        }
        let local: Vec<SocketAddr> = backend
            .endpoints
            .iter()
            .copied()
            .filter(|a| self.functions.get(a).is_some())
            .collect();
        if let Some(addr) = backend.pick(&local) {
            if let Some(f) = self.functions.get(addr) {
                return call_local(&f, req, peer).await;
            }
        }
        let Some(addr) = backend.pick(&backend.endpoints).copied() else {
            tracing::debug!(backend = %backend.name(), "no ready endpoints");
            return boxed(plain(503, "the Service has no ready endpoints\n"));
        };
        self.proxy(req, addr, &host, peer).await
    }

    /// Wake the scaled-to-zero Deployments behind `backend`'s Service and
    /// wait for the route to have an endpoint.
    async fn activate(&self, backend: &routes::Backend, host: &str, path: &str) -> Activation {
        let Some(c) = self.caches.get() else {
            return Activation::NotScaledToZero;
        };
        let behind = scalable_deployments(c, &backend.namespace, &backend.service);
        let waking_now = {
            let waking = self.waking.lock().unwrap_or_else(|p| p.into_inner());
            behind.iter().any(|d| {
                let key = format!(
                    "{}/{}",
                    d.metadata.namespace.as_deref().unwrap_or_default(),
                    d.metadata.name.as_deref().unwrap_or_default()
                );
                waking.contains_key(&key)
            })
        };
        let asleep: Vec<&Deployment> = behind
            .iter()
            .filter(|d| d.spec.as_ref().is_some_and(|s| s.replicas == Some(0)))
            .collect();
        // Woken by an earlier request and not ready yet: wait with it.
        if asleep.is_empty() && !waking_now {
            return Activation::NotScaledToZero;
        }
        let started = std::time::Instant::now();
        for d in asleep {
            self.wake(c, d).await;
        }
        let deadline = tokio::time::Instant::now() + ACTIVATION_TIMEOUT;
        let target = local_target(c, backend);
        loop {
            let rebuilt = self.rebuilt.notified();
            let added = self.functions.added.notified();
            tokio::pin!(rebuilt, added);
            rebuilt.as_mut().enable();
            added.as_mut().enable();
            // An endpoint the table knows, or sooner: a function of the
            // Service's pods on this node that already listens (the
            // endpoint's status still on its way through the API).
            let ready = match self.routes().route(host, path) {
                Some(b) if !b.endpoints.is_empty() => Some(Activation::Ready(b.clone())),
                _ => target
                    .as_ref()
                    .and_then(|t| self.local_function(t))
                    .map(Activation::Local),
            };
            if let Some(a) = ready {
                let mut waking = self.waking.lock().unwrap_or_else(|p| p.into_inner());
                for d in &behind {
                    waking.remove(&key_of(d));
                }
                drop(waking);
                tracing::info!(
                    service = %backend.name(),
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "activated from zero"
                );
                return a;
            }
            let woke = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    () = &mut rebuilt => {}
                    () = &mut added => {}
                }
            });
            if woke.await.is_err() {
                return Activation::TimedOut;
            }
        }
    }

    /// A function on this node serving the Service's pods at its target
    /// port.
    fn local_function(&self, t: &LocalTarget) -> Option<Arc<Function>> {
        self.functions.all().into_iter().find(|f| {
            let (ns, _) = f.pod();
            ns == t.namespace
                && t.selector.iter().all(|(k, v)| f.labels().get(k) == Some(v))
                && match t.port {
                    Some(p) => f.ports().contains(&p),
                    None => f.ports().len() == 1,
                }
        })
    }

    /// Scale one Deployment back up, once however many requests ask.
    async fn wake(&self, c: &Caches, d: &Deployment) {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let key = key_of(d);
        {
            let mut waking = self.waking.lock().unwrap_or_else(|p| p.into_inner());
            let now = std::time::Instant::now();
            waking.retain(|_, at| now.duration_since(*at) < ACTIVATION_TIMEOUT);
            if waking.contains_key(&key) {
                return;
            }
            waking.insert(key.clone(), now);
        }
        let replicas = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SCALED_FROM_ANNOTATION))
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1);
        let patch = serde_json::json!({
            "metadata": {"annotations": {SCALED_FROM_ANNOTATION: null}},
            "spec": {"replicas": replicas},
        });
        let api: Api<Deployment> = Api::namespaced(c.api.clone(), &ns);
        let r = api
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await;
        match r {
            Ok(_) => tracing::info!(deployment = %key, replicas, "a request woke it from zero"),
            Err(e) => {
                tracing::warn!(deployment = %key, error = %e, "waking from zero");
                self.waking
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
            }
        }
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
        let xff = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
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

/// What waking a backend came to.
enum Activation {
    /// An endpoint is ready: the backend as the table now has it.
    Ready(Arc<routes::Backend>),
    /// A function of the Service's pods listens on this node.
    Local(Arc<Function>),
    /// Nothing behind the Service is scaled to zero: a plain 503.
    NotScaledToZero,
    TimedOut,
}

/// `namespace/name` of a Deployment.
fn key_of(d: &Deployment) -> String {
    format!(
        "{}/{}",
        d.metadata.namespace.as_deref().unwrap_or_default(),
        d.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Which local functions can answer for a Service port: pods in its
/// namespace with its selector's labels, serving its target port (None:
/// a named target port, taken when a function serves one port only).
struct LocalTarget {
    namespace: String,
    selector: std::collections::BTreeMap<String, String>,
    port: Option<u16>,
}

fn local_target(c: &Caches, backend: &routes::Backend) -> Option<LocalTarget> {
    let svc = c.services.state().into_iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(backend.namespace.as_str())
            && s.metadata.name.as_deref() == Some(backend.service.as_str())
    })?;
    let spec = svc.spec.as_ref()?;
    let selector = spec.selector.clone().filter(|s| !s.is_empty())?;
    let sp = spec.ports.as_ref()?.iter().find(|p| {
        p.name.as_deref() == Some(backend.port.as_str()) || p.port.to_string() == backend.port
    })?;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let port = match &sp.target_port {
        None => u16::try_from(sp.port).ok(),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        Some(IntOrString::String(_)) => None,
    };
    Some(LocalTarget {
        namespace: backend.namespace.clone(),
        selector,
        port,
    })
}

/// The Deployments behind a Service that opted in to scale to zero: their
/// pod template carries every label of the selector.
fn scalable_deployments(c: &Caches, ns: &str, service: &str) -> Vec<Deployment> {
    let Some(svc) = c.services.state().into_iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(service)
    }) else {
        return Vec::new();
    };
    let Some(selector) = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .filter(|s| !s.is_empty())
    else {
        return Vec::new();
    };
    c.deployments
        .state()
        .into_iter()
        .filter(|d| d.metadata.namespace.as_deref() == Some(ns))
        .filter(|d| {
            d.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(IDLE_ANNOTATION))
        })
        .filter(|d| {
            let labels = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref());
            labels.is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
        })
        .map(|d| (*d).clone())
        .collect()
}

/// A request to a function on this node, without a socket.
async fn call_local(
    f: &Function,
    req: http::Request<Incoming>,
    peer: Peer,
) -> http::Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return boxed(plain(413, "request body too large\n")),
    };
    boxed(f.call(&parts, body, peer).await)
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
    for n in HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
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
        return host
            .split_once(']')
            .map_or(host, |(h, _)| h)
            .trim_start_matches('[');
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
        h.insert(
            "connection",
            http::HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", http::HeaderValue::from_static("1"));
        h.insert("x-kept", http::HeaderValue::from_static("1"));
        h.insert("upgrade", http::HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }
}
