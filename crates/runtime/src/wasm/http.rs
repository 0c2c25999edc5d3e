//! HTTP functions: a Wasm container that declares a `containerPort` serves
//! HTTP on the pod's IP at that port, with **one fresh instance of the
//! module per request**.
//!
//! The request goes to the guest CGI-style and the response comes back on
//! its stdout, as the sdk's `http` module documents (that module is the
//! contract: this side uses its [`sdk::Request::to_cgi_env`] and
//! [`sdk::Response::from_cgi`], the guest side the other half). Nothing
//! outlives a request: each gets a new store, new linear memory from the
//! pool, new WASI context; the container's limits apply to each instance.
//!
//! The container itself "runs" for as long as it listens. Stopping it stops
//! accepting connections at once, lets requests in flight finish within
//! the grace period (exit code 0), and drops what is left when it ends
//! (137, `Killed`).
//!
//! Every serving container is also entered in the runtime's [`Functions`]
//! table under its pod IP and port, so the node's gateway calls a local
//! function in-process rather than over a socket.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{ResourceTable, WasiCtxBuilder};

use super::guest::{self, P2Ctx, KILL_EXIT};
use super::prepare::Prepared;
use crate::cri::{self, ContainerConfig, ExitReason, ExitStatus, RuntimeError};
use crate::logs::{LogFile, Stream};

/// The largest request body a function is given; larger ones get 413.
pub const MAX_REQUEST_BODY: usize = 16 << 20;
/// The largest response a function may write; past it the request fails.
pub const MAX_RESPONSE: usize = 64 << 20;
/// How long one request may run before it is answered 504.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A response as functions and the gateway hand it around.
pub type Reply = http::Response<Full<Bytes>>;

/// The node's serving functions by pod IP and port.
#[derive(Default)]
pub struct Functions {
    by_addr: RwLock<HashMap<SocketAddr, Arc<Function>>>,
    /// Signalled whenever a function starts serving.
    pub added: tokio::sync::Notify,
}

impl Functions {
    /// The function serving `addr` on this node, if one does.
    pub fn get(&self, addr: &SocketAddr) -> Option<Arc<Function>> {
        self.by_addr
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(addr)
            .cloned()
    }

    /// The addresses served, sorted.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let map = self.by_addr.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<SocketAddr> = map.keys().copied().collect();
        out.sort();
        out
    }

    /// Every serving function once (a function serving two ports is
    /// listed once).
    pub fn all(&self) -> Vec<Arc<Function>> {
        let map = self.by_addr.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Arc<Function>> = Vec::new();
        for f in map.values() {
            if !out.iter().any(|o| Arc::ptr_eq(o, f)) {
                out.push(f.clone());
            }
        }
        out
    }

    /// How many addresses are served.
    pub fn len(&self) -> usize {
        self.by_addr.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, addr: SocketAddr, f: Arc<Function>) {
        let mut map = self.by_addr.write().unwrap_or_else(|p| p.into_inner());
        map.insert(addr, f);
        drop(map);
        self.added.notify_waiters();
    }

    fn remove(&self, addr: &SocketAddr, f: &Arc<Function>) {
        let mut map = self.by_addr.write().unwrap_or_else(|p| p.into_inner());
        // Only if it is still ours: a restarted container may hold it now.
        if map.get(addr).is_some_and(|cur| Arc::ptr_eq(cur, f)) {
            map.remove(addr);
        }
    }
}

/// One container's module, ready to answer requests.
pub struct Function {
    engine: wasmtime::Engine,
    prepared: Arc<Prepared>,
    cfg: ContainerConfig,
    log: LogFile,
    served: AtomicU64,
    /// When the last request came, Unix milliseconds; 0 before the first.
    last_request: AtomicU64,
}

/// How a request reached the function, for the CGI variables.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client (`REMOTE_ADDR`).
    pub remote: SocketAddr,
    /// The address the request was sent to, used as the host when the
    /// request names none.
    pub local: SocketAddr,
    /// Whether the client spoke TLS (to the gateway).
    pub tls: bool,
}

impl Function {
    /// Requests answered so far (whatever the status).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// The pod this function belongs to: namespace and name.
    pub fn pod(&self) -> (&str, &str) {
        (&self.cfg.namespace, &self.cfg.pod_name)
    }

    /// The pod's labels.
    pub fn labels(&self) -> &std::collections::BTreeMap<String, String> {
        &self.cfg.pod_labels
    }

    /// The ports it serves.
    pub fn ports(&self) -> &[u16] {
        &self.cfg.ports
    }

    /// When the last request came (Unix milliseconds), if one has.
    pub fn last_request_ms(&self) -> Option<u64> {
        Some(self.last_request.load(Ordering::Relaxed)).filter(|t| *t != 0)
    }

    /// Answer one HTTP request with a fresh instance: read its body (up to
    /// [`MAX_REQUEST_BODY`]), run the module, return what it wrote.
    pub async fn serve(&self, req: http::Request<Incoming>, peer: Peer) -> Reply {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return plain(413, "request body too large\n");
                }
                return plain(400, "reading the request body failed\n");
            }
        };
        self.call(&parts, body, peer).await
    }

    /// Answer a request whose body has been read already (the gateway's
    /// in-process path).
    pub async fn call(&self, parts: &http::request::Parts, body: Bytes, peer: Peer) -> Reply {
        self.served.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_request.store(now, Ordering::Relaxed);
        let req = cgi_request(parts, &body, peer);
        let protocol = match parts.version {
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        let mut cgi = req.to_cgi_env();
        cgi.push(("SERVER_PROTOCOL".into(), protocol.into()));
        match tokio::time::timeout(REQUEST_TIMEOUT, self.run(cgi, body)).await {
            Ok(Ok(out)) => match sdk::Response::from_cgi(&out) {
                Ok(resp) => self.reply(resp),
                Err(e) => self.fail(&req, &format!("the module's output is not a response: {e}")),
            },
            Ok(Err(why)) => self.fail(&req, &why),
            Err(_) => {
                self.note(&req, "timed out");
                plain(504, "the function did not answer in time\n")
            }
        }
    }

    /// Run the module once with the request's variables and body; its
    /// stdout, or why it failed.
    async fn run(&self, cgi: Vec<(String, String)>, body: Bytes) -> Result<Bytes, String> {
        // The request's variables win over the container's own.
        let mut env: Vec<(String, String)> = self
            .cfg
            .env
            .iter()
            .filter(|(k, _)| !cgi.iter().any(|(c, _)| c == k))
            .cloned()
            .collect();
        env.extend(cgi);
        let stdout = MemoryOutputPipe::new(MAX_RESPONSE);
        let stderr = self.log.stream(Stream::Stderr);
        let mut b = WasiCtxBuilder::new();
        b.args(&self.cfg.args)
            .envs(&env)
            .stdin(MemoryInputPipe::new(body))
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        guest::preopen_mounts(&mut b, &self.cfg).map_err(|e| e.to_string())?;
        let status = match &*self.prepared {
            Prepared::Module(pre) => {
                let mut store = guest::store(&self.engine, b.build_p1(), &self.cfg);
                let instance = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| guest::instantiate_error(e, &store).to_string())?;
                let entry = instance
                    .get_typed_func::<(), ()>(&mut store, "_start")
                    .map_err(|e| format!("_start: {e:#}"))?;
                let r = entry.call_async(&mut store, ()).await;
                guest::exit_status(r.map(|()| 0), store.data().memory_exceeded())
            }
            Prepared::Component(pre) => {
                let ctx = P2Ctx {
                    ctx: b.build(),
                    table: ResourceTable::new(),
                };
                let mut store = guest::store(&self.engine, ctx, &self.cfg);
                let command = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| guest::instantiate_error(e, &store).to_string())?;
                let r = command.wasi_cli_run().call_run(&mut store).await;
                let r = r.map(|res| if res.is_ok() { 0 } else { 1 });
                guest::exit_status(r, store.data().memory_exceeded())
            }
        };
        let _ = stderr.finish();
        match status.reason {
            ExitReason::Completed => Ok(stdout.contents()),
            ExitReason::OOMKilled => Err(format!(
                "out of memory: {}",
                status.message.unwrap_or_default()
            )),
            _ => Err(match status.message {
                Some(m) => m,
                None => format!("exit code {}", status.code),
            }),
        }
    }

    fn reply(&self, resp: sdk::Response) -> Reply {
        let mut b = http::Response::builder().status(resp.status);
        for (name, value) in &resp.headers {
            b = b.header(name.as_str(), value.as_str());
        }
        match b.body(Full::new(Bytes::from(resp.body))) {
            Ok(r) => r,
            Err(e) => {
                self.log_line(&format!(
                    "request failed: the module's response header is not valid HTTP: {e}"
                ));
                plain(500, "internal server error\n")
            }
        }
    }

    fn fail(&self, req: &sdk::Request, why: &str) -> Reply {
        self.note(req, why);
        plain(500, "internal server error\n")
    }

    fn note(&self, req: &sdk::Request, why: &str) {
        self.log_line(&format!("{} {} failed: {why}", req.method, req.path));
    }

    /// A line in the pod's log from skiff itself, on stderr.
    fn log_line(&self, text: &str) {
        let _ = self
            .log
            .write_line(Stream::Stderr, false, format!("skiff: {text}").as_bytes());
    }
}

/// The request as the sdk's protocol describes it.
fn cgi_request(parts: &http::request::Parts, body: &Bytes, peer: Peer) -> sdk::Request {
    let mut req = sdk::Request::new(parts.method.as_str(), parts.uri.path());
    req.query = parts.uri.query().unwrap_or("").to_string();
    req.remote_addr = peer.remote.ip().to_string();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| peer.local.to_string());
    let scheme = if peer.tls { "https" } else { "http" };
    req.full_url = match parts.uri.query() {
        Some(q) => format!("{scheme}://{host}{}?{q}", parts.uri.path()),
        None => format!("{scheme}://{host}{}", parts.uri.path()),
    };
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            req.headers.push((name.as_str().to_string(), v.to_string()));
        }
    }
    req.body = body.to_vec();
    req
}

/// A short plain-text answer from skiff itself.
pub fn plain(status: u16, text: &'static str) -> Reply {
    let mut r = http::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A serving HTTP function container.
pub struct HttpContainer {
    exit: watch::Receiver<Option<ExitStatus>>,
    stop_at: watch::Sender<Option<Instant>>,
    task: tokio::task::AbortHandle,
}

/// Bind the container's ports on its pod IP and start serving. Errors
/// (a port taken) are the container's CreateContainerError.
pub async fn start(
    engine: &wasmtime::Engine,
    prepared: Arc<Prepared>,
    cfg: ContainerConfig,
    table: Arc<Functions>,
) -> Result<HttpContainer, RuntimeError> {
    let log = LogFile::open_held(&cfg.log_path).map_err(|e| {
        RuntimeError::Internal(format!("opening the log {}: {e}", cfg.log_path.display()))
    })?;
    let mut listeners = Vec::new();
    for port in &cfg.ports {
        let addr = SocketAddr::new(cfg.pod_ip, *port);
        let l = bind(addr).map_err(|e| {
            RuntimeError::Config(format!(
                "serving containerPort {port} on the pod's address {}: {e}",
                cfg.pod_ip
            ))
        })?;
        listeners.push(l);
    }
    let function = Arc::new(Function {
        engine: engine.clone(),
        prepared,
        cfg,
        log: log.clone(),
        served: AtomicU64::new(0),
        last_request: AtomicU64::new(0),
    });
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    for a in &addrs {
        table.insert(*a, function.clone());
    }
    let _ = log.write_line(
        Stream::Stderr,
        false,
        format!(
            "skiff: serving HTTP on {} with a fresh instance per request",
            addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
        .as_bytes(),
    );
    let (exit_tx, exit) = watch::channel(None);
    let (stop_at, stop_rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let status = serve(listeners, function.clone(), stop_rx).await;
        for a in &addrs {
            table.remove(a, &function);
        }
        let _ = exit_tx.send(Some(status));
    });
    Ok(HttpContainer {
        exit,
        stop_at,
        task: task.abort_handle(),
    })
}

/// A listening socket with `SO_REUSEADDR` (a restarted container rebinds
/// at once while old connections linger in TIME_WAIT).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr.ip() {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accept and serve until stopped; then drain within the grace period.
async fn serve(
    listeners: Vec<TcpListener>,
    function: Arc<Function>,
    mut stop: watch::Receiver<Option<Instant>>,
) -> ExitStatus {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(64);
    let mut accepting = tokio::task::JoinSet::new();
    for l in listeners {
        let tx = conn_tx.clone();
        accepting.spawn(async move {
            loop {
                match l.accept().await {
                    Ok((s, remote)) => {
                        let local = s.local_addr().unwrap_or(remote);
                        if tx.send((s, remote, local)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // Out of descriptors and the like: back off a little.
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    drop(conn_tx);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            c = conn_rx.recv() => {
                let Some((stream, remote, local)) = c else { break };
                let _ = stream.set_nodelay(true);
                let f = function.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let f = f.clone();
                    async move {
                        let peer = Peer { remote, local, tls: false };
                        Ok::<_, std::convert::Infallible>(f.serve(req, peer).await)
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            changed = stop.changed() => {
                if changed.is_err() || stop.borrow().is_some() { break }
            }
        }
    }
    // Stopped: no new connections; those open finish their requests.
    accepting.abort_all();
    drop(conn_rx);
    tokio::select! {
        () = graceful.shutdown() => ExitStatus {
            code: 0,
            reason: ExitReason::Completed,
            message: None,
        },
        () = guest::killed(stop) => ExitStatus {
            code: KILL_EXIT,
            reason: ExitReason::Killed,
            message: Some("requests were still running at the end of the grace period".into()),
        },
    }
}

impl cri::Container for HttpContainer {
    fn wait(&mut self) -> BoxFuture<'_, ExitStatus> {
        Box::pin(guest::wait_exit(&mut self.exit))
    }

    fn stop(&self, grace: Duration) {
        guest::stop_by(&self.stop_at, Instant::now() + grace);
    }

    fn exec(&self) -> Result<cri::Exec, String> {
        Err(guest::NO_EXEC.into())
    }
}

impl Drop for HttpContainer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
