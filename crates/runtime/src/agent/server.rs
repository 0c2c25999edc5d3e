//! The node endpoint: HTTPS on `daemonEndpoints.kubeletEndpoint.Port`.
//!
//! The API server proxies `pods/log` here as kube-apiserver proxies to the
//! kubelet: `GET /containerLogs/{namespace}/{pod}/{container}` with
//! `follow`, `tailLines`, `timestamps` and `previous`; and `pods/exec` as
//! a WebSocket upgrade of `GET /exec/{namespace}/{pod}/{uid}/{container}`
//! (see [`super::exec`]). `/healthz` answers `ok`.
//!
//! The serving certificate comes from the cluster CA ([`super::certs`]):
//! the API server accepts the endpoint only with a certificate for
//! `system:node:NAME` and the node's address; until one is issued it is
//! self-signed, and refused. With the cluster CA
//! ([`AgentConfig::api_ca_pem`], always set by `skiff up` and `skiff
//! node`) the endpoint completes TLS only with a client certificate signed
//! by it and serves only the API server's
//! ([`apimachinery::NODE_CLIENT_COMMON_NAME`]): a node's endpoint runs
//! commands as root in its containers.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::net::TcpListener;

use super::exec::Execs;
use super::status::{PodRecord, State};
use super::{AgentConfig, AgentError};

type Body = BoxBody<Bytes, std::io::Error>;

/// The listener and TLS settings, made before the Node is registered so
/// that the Node reports the port actually bound (`port: 0` picks one).
pub struct Listener {
    tcp: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    /// Clients must present the API server's certificate.
    client_auth: bool,
}

impl Listener {
    /// The port bound.
    pub fn port(&self) -> u16 {
        self.tcp.local_addr().map_or(0, |a| a.port())
    }
}

/// Bind `cfg.port` on every address, serving `cert` (which may change
/// while it serves).
pub async fn bind(
    cfg: &AgentConfig,
    cert: Arc<super::certs::Serving>,
) -> Result<Listener, AgentError> {
    let err = |e: &dyn std::fmt::Display| AgentError::Server(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?;
    let builder = match &cfg.api_ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            use rustls_pki_types::pem::PemObject;
            for c in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(c.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| err(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let tls = builder.with_cert_resolver(cert);
    let tcp = TcpListener::bind(("0.0.0.0", cfg.port))
        .await
        .map_err(|e| AgentError::Server(format!("binding port {}: {e}", cfg.port)))?;
    Ok(Listener {
        tcp,
        tls: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
        client_auth: cfg.api_ca_pem.is_some(),
    })
}

/// Whether a verified client certificate is the API server's.
fn is_api_server(certs: Option<&[rustls_pki_types::CertificateDer<'_>]>) -> bool {
    let Some(leaf) = certs.and_then(<[_]>::first) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
        return false;
    };
    let mut names = cert.subject().iter_common_name();
    matches!(
        (names.next().and_then(|n| n.as_str().ok()), names.next()),
        (Some(apimachinery::NODE_CLIENT_COMMON_NAME), None)
    )
}

/// Serve until the process ends.
pub async fn serve(listener: Listener, data_dir: PathBuf, execs: Arc<Execs>) {
    let data_dir = Arc::new(data_dir);
    let client_auth = listener.client_auth;
    loop {
        let Ok((tcp, _)) = listener.tcp.accept().await else {
            continue;
        };
        let (tls, data_dir, execs) = (listener.tls.clone(), data_dir.clone(), execs.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let trusted = is_api_server(stream.get_ref().1.peer_certificates());
            if client_auth && !trusted {
                tracing::warn!(
                    "node endpoint: refused a client certificate that is not the API server's"
                );
                return;
            }
            let svc = hyper::service::service_fn(move |req| {
                handle(req, data_dir.clone(), execs.clone(), trusted)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

fn text(code: StatusCode, s: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(s))
            .map_err(|e: Infallible| match e {})
            .boxed(),
    );
    *r.status_mut() = code;
    r
}

async fn handle(
    req: Request<Incoming>,
    data_dir: Arc<PathBuf>,
    execs: Arc<Execs>,
    trusted: bool,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let query = LogQuery::parse(req.uri().query().unwrap_or(""));
    if path == "/healthz" {
        return Ok(text(StatusCode::OK, "ok".into()));
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let resp = match parts.as_slice() {
        ["containerLogs", ns, pod, container] => {
            container_logs(&data_dir, ns, pod, container, query).await
        }
        ["exec", ns, pod, uid, container] => {
            let (ns, pod, uid, container) = (
                ns.to_string(),
                pod.to_string(),
                uid.to_string(),
                container.to_string(),
            );
            exec(req, &execs, trusted, &ns, &pod, &uid, &container)
        }
        _ => text(StatusCode::NOT_FOUND, format!("{path} not found")),
    };
    Ok(resp)
}

/// Upgrade an exec request to a remote-command WebSocket session. The
/// container is checked first, so that a client falling back to another
/// protocol hears why the container cannot be reached, not only that the
/// protocol is refused.
fn exec(
    req: Request<Incoming>,
    execs: &Execs,
    trusted: bool,
    ns: &str,
    pod: &str,
    uid: &str,
    container: &str,
) -> Response<Body> {
    if !trusted {
        return text(
            StatusCode::FORBIDDEN,
            "this node was started without the cluster CA, so it cannot tell the API server from anyone else: exec is refused".into(),
        );
    }
    let target = match execs.get(uid, container) {
        Some(Ok(e)) => e,
        Some(Err(why)) => return text(StatusCode::BAD_REQUEST, why),
        None => {
            return text(
                StatusCode::NOT_FOUND,
                format!("container {container} is not running in pod {ns}/{pod} on this node"),
            )
        }
    };
    let spec = super::exec::parse_query(req.uri().query().unwrap_or(""));
    if spec.command.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 command".into(),
        );
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let upgrade = header("upgrade").to_ascii_lowercase();
    if upgrade.starts_with("spdy") {
        return text(
            StatusCode::BAD_REQUEST,
            "skiff serves exec over WebSocket (v5.channel.k8s.io, kubectl 1.30 and newer); this client asked for SPDY".into(),
        );
    }
    let key = header("sec-websocket-key");
    if upgrade != "websocket" || key.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "exec needs a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Protocol: v5.channel.k8s.io)".into(),
        );
    }
    let offered = header("sec-websocket-protocol");
    let Some(protocol) = super::exec::PROTOCOLS
        .iter()
        .find(|p| offered.split(',').any(|o| o.trim() == **p))
    else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "none of the offered exec protocols ({offered}) is served; skiff speaks {}",
                super::exec::PROTOCOLS.join(", ")
            ),
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let v5 = *protocol == super::exec::PROTOCOLS[0];
    tracing::info!(pod = %format!("{ns}/{pod}"), container, command = ?spec.command, "exec");
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => super::exec::session(TokioIo::new(upgraded), target, spec, v5).await,
            Err(e) => tracing::debug!(error = %e, "exec: the upgrade did not complete"),
        }
    });
    let mut r = Response::new(
        http_body_util::Empty::new()
            .map_err(|e: Infallible| match e {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static(protocol),
    );
    r
}

/// The query of a log request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogQuery {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
}

/// A query flag as the kubelet reads it: present and empty, or true for
/// Go's `strconv.ParseBool` (the Python client sends `True`).
pub fn flag(v: &str) -> bool {
    v.is_empty() || matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

impl LogQuery {
    /// Parse `follow=true&tailLines=10…`; unknown keys are ignored.
    pub fn parse(q: &str) -> Self {
        let mut out = LogQuery::default();
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            let on = flag(&v);
            match &*k {
                "follow" => out.follow = on,
                "previous" => out.previous = on,
                "timestamps" => out.timestamps = on,
                "tailLines" => out.tail_lines = v.parse().ok(),
                _ => {}
            }
        }
        out
    }
}

/// The log file of a container run: the newest pod directory for
/// `ns/pod` (a pod re-created under the same name has a new uid), the
/// highest restart number, or the one before it for `previous`.
pub fn find_log(
    data_dir: &Path,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Option<PathBuf> {
    let prefix = format!("{ns}_{pod}_");
    let dirs = std::fs::read_dir(data_dir.join("logs")).ok()?;
    let pod_dir = dirs
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?
        .path();
    let mut runs: Vec<(u32, PathBuf)> = std::fs::read_dir(pod_dir.join(container))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_string_lossy()
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    runs.sort();
    let idx = runs.len().checked_sub(if previous { 2 } else { 1 })?;
    runs.get(idx).map(|(_, p)| p.clone())
}

/// A CRI log line (`<time> <stream> <P|F> <text>`) as kubectl shows it.
pub fn render_line(line: &str, timestamps: bool) -> String {
    let mut parts = line.splitn(4, ' ');
    let (Some(ts), Some(_stream), Some(_tag)) = (parts.next(), parts.next(), parts.next()) else {
        return format!("{line}\n");
    };
    let msg = parts.next().unwrap_or("");
    if timestamps {
        format!("{ts} {msg}\n")
    } else {
        format!("{msg}\n")
    }
}

// A stand-in for `crate::logs::read` until that lands on main: reads the
// CRI file, honours tailLines and timestamps, and follows by polling.
async fn container_logs(
    data_dir: &Path,
    ns: &str,
    pod: &str,
    container: &str,
    q: LogQuery,
) -> Response<Body> {
    let Some(path) = find_log(data_dir, ns, pod, container, q.previous) else {
        let what = if q.previous {
            "previous terminated container"
        } else {
            "container"
        };
        return text(
            StatusCode::NOT_FOUND,
            format!("{what} \"{container}\" in pod \"{pod}\" has no logs on this node"),
        );
    };
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return text(
            StatusCode::NOT_FOUND,
            format!("log file {} is gone", path.display()),
        );
    };
    let mut reader = BufReader::new(file);
    let mut head = String::new();
    let mut lines: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    loop {
        head.clear();
        match reader.read_line(&mut head).await {
            Ok(0) | Err(_) => break,
            Ok(_) if !head.ends_with('\n') => {
                // A partial last line: leave it for the follower.
                let back = i64::try_from(head.len()).unwrap_or(0);
                let _ = reader.seek(std::io::SeekFrom::Current(-back)).await;
                break;
            }
            Ok(_) => {
                lines.push_back(render_line(head.trim_end_matches('\n'), q.timestamps));
                if q.tail_lines.is_some_and(|t| lines.len() > t) {
                    lines.pop_front();
                }
            }
        }
    }
    let first: String = lines.into_iter().collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let _ = tx.send(Ok(Frame::data(Bytes::from(first)))).await;
    if q.follow {
        tokio::spawn(follow(reader, path, q.timestamps, tx));
    }
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    Response::new(StreamBody::new(stream).boxed())
}

/// Send lines as they are appended, until the client leaves, the log file
/// is removed, or a newer run of the container starts a new file.
async fn follow(
    mut reader: BufReader<tokio::fs::File>,
    path: PathBuf,
    timestamps: bool,
    tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
) {
    let mut line = String::new();
    loop {
        match reader.read_line(&mut line).await {
            Ok(n) if n > 0 && line.ends_with('\n') => {
                let out = render_line(line.trim_end_matches('\n'), timestamps);
                line.clear();
                if tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(_) => {}
            Err(_) => return,
        }
        if tx.is_closed() || !path.exists() || newer_run_exists(&path) || run_finished(&path) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the run writing `path` has ended (`kubectl logs -f` of a
/// finished container returns, as with the kubelet). The pod's state file
/// sits beside the logs: `<data>/logs/<ns>_<pod>_<uid>/<container>/<n>.log`
/// ↔ `<data>/pods/<uid>/state.json`.
fn run_finished(path: &Path) -> bool {
    let run: Option<u32> = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok());
    let container_dir = path.parent();
    let container = container_dir
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let pod_dir = container_dir.and_then(Path::parent);
    let uid = pod_dir
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit('_').next())
        .map(str::to_string);
    let data_dir = pod_dir.and_then(Path::parent).and_then(Path::parent);
    let (Some(run), Some(container), Some(uid), Some(data_dir)) = (run, container, uid, data_dir)
    else {
        return false;
    };
    let Some(record) = PodRecord::load(&super::pods::pod_dir(data_dir, &uid).join("state.json"))
    else {
        return false;
    };
    record
        .init
        .iter()
        .chain(record.containers.iter())
        .find(|c| c.name == container)
        .is_some_and(|c| c.restart_count == run && matches!(c.state, State::Terminated(_)))
}

fn newer_run_exists(path: &Path) -> bool {
    let n: Option<u32> = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok());
    match (n, path.parent()) {
        (Some(n), Some(dir)) => dir.join(format!("{}.log", n + 1)).exists(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_query_as_the_api_server_forwards_it() {
        let q = LogQuery::parse("follow=true&tailLines=5&timestamps=true");
        assert_eq!(
            q,
            LogQuery {
                follow: true,
                previous: false,
                timestamps: true,
                tail_lines: Some(5)
            }
        );
        assert_eq!(LogQuery::parse(""), LogQuery::default());
        assert_eq!(LogQuery::parse("tailLines=x").tail_lines, None);
    }

    #[test]
    fn cri_lines_rendered_with_or_without_timestamps() {
        let l = "2026-01-01T00:00:00.000000000Z stdout F hello world";
        assert_eq!(render_line(l, false), "hello world\n");
        assert_eq!(
            render_line(l, true),
            "2026-01-01T00:00:00.000000000Z hello world\n"
        );
        assert_eq!(
            render_line("2026 stdout F ", false),
            "\n",
            "empty lines stay"
        );
    }

    #[test]
    fn follow_ends_when_the_run_has_terminated() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("logs/ns_web_u1/main/0.log");
        std::fs::create_dir_all(log.parent().expect("parent")).expect("mkdir");
        std::fs::write(&log, "").expect("write");
        let state = crate::agent::pods::pod_dir(dir.path(), "u1");
        std::fs::create_dir_all(&state).expect("mkdir");
        let mut r = PodRecord {
            uid: "u1".into(),
            ..PodRecord::default()
        };
        let mut c = crate::agent::status::ContainerRecord::waiting("main", "img", "x");
        c.state = State::Running {
            started_at: "t".into(),
        };
        r.containers.push(c.clone());
        r.save(&state.join("state.json")).expect("save");
        assert!(!run_finished(&log), "still running");
        c.state = State::Terminated(crate::agent::status::Terminated {
            exit_code: 0,
            reason: "Completed".into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
            container_id: String::new(),
        });
        r.containers[0] = c;
        r.save(&state.join("state.json")).expect("save");
        assert!(run_finished(&log));
    }

    #[test]
    fn finds_current_and_previous_runs() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = dir.path().join("logs/ns_web_u1/main");
        std::fs::create_dir_all(&c).expect("mkdir");
        for n in [0, 1, 10] {
            std::fs::write(c.join(format!("{n}.log")), "").expect("write");
        }
        assert_eq!(
            find_log(dir.path(), "ns", "web", "main", false),
            Some(c.join("10.log")),
            "numeric, not lexical"
        );
        assert_eq!(
            find_log(dir.path(), "ns", "web", "main", true),
            Some(c.join("1.log"))
        );
        assert_eq!(find_log(dir.path(), "ns", "web", "other", false), None);
        assert_eq!(
            find_log(dir.path(), "ns", "we", "main", false),
            None,
            "pod names match whole"
        );
    }
}
