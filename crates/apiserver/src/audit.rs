//! The audit log: one JSON line per mutating request (create, update,
//! patch, delete, deletecollection, and requests refused before they got
//! that far), in the shape of Kubernetes' `audit.k8s.io/v1` Event at level
//! `Metadata`: who (`user`, `sourceIPs`, `userAgent`), what (`verb`,
//! `requestURI`, `objectRef`), when (`requestReceivedTimestamp`,
//! `stageTimestamp`) and the result (`responseStatus.code`). Bodies are
//! never logged, so Secrets do not leak into it. Admission plugins may add
//! `annotations` (Pod Security's `pod-security.kubernetes.io/*`).
//!
//! Lines go through a channel to a writer thread that flushes whenever it
//! has caught up, so a burst of writes costs the request path a send.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::request::RequestInfo;

/// Where audit events go.
#[derive(Debug, Clone)]
pub struct Audit {
    tx: mpsc::Sender<String>,
}

/// One request as the audit log records it.
pub struct Record<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub info: Option<&'a RequestInfo>,
    pub user: Option<&'a str>,
    pub peer: Option<SocketAddr>,
    pub user_agent: Option<&'a str>,
    pub received: DateTime<Utc>,
    pub code: u16,
    /// The event's `annotations`, from admission.
    pub annotations: BTreeMap<String, String>,
}

/// Audit annotations gathered while a request is handled, shared between
/// the handler that adds them and the code that writes the event.
#[derive(Debug, Clone, Default)]
pub struct Annotations(Arc<Mutex<BTreeMap<String, String>>>);

impl Annotations {
    pub fn extend(&self, more: impl IntoIterator<Item = (String, String)>) {
        if let Ok(mut m) = self.0.lock() {
            m.extend(more);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Audit {
    /// Append to `path` (created with mode 0600 if missing).
    pub fn open(path: &Path) -> std::io::Result<Audit> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let (tx, rx) = mpsc::channel::<String>();
        let path: PathBuf = path.to_path_buf();
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_loop(file, rx, &path))?;
        Ok(Audit { tx })
    }

    /// Whether a request with this method is audited.
    pub fn audits(method: &http::Method) -> bool {
        matches!(
            *method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE
        )
    }

    /// Record one request.
    pub fn record(&self, r: &Record<'_>) {
        let _ = self.tx.send(event(r).to_string());
    }
}

fn write_loop(file: std::fs::File, rx: mpsc::Receiver<String>, path: &Path) {
    let mut out = std::io::BufWriter::new(file);
    while let Ok(line) = rx.recv() {
        let mut ok = writeln!(out, "{line}").is_ok();
        // Take whatever else is queued, then flush once.
        while let Ok(more) = rx.try_recv() {
            ok &= writeln!(out, "{more}").is_ok();
        }
        ok &= out.flush().is_ok();
        if !ok {
            tracing::warn!(path = %path.display(), "cannot write the audit log");
        }
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The audit.k8s.io/v1 Event for a request.
pub fn event(r: &Record<'_>) -> Value {
    let verb = match r.info {
        Some(i) => i.verb.as_str().to_string(),
        None => r.method.as_str().to_lowercase(),
    };
    let mut e = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": uuid::Uuid::new_v4().to_string(),
        "stage": "ResponseComplete",
        "requestURI": r.uri.to_string(),
        "verb": verb,
        "user": match r.user {
            Some(u) => json!({"username": u, "groups": ["system:masters", "system:authenticated"]}),
            None => json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]}),
        },
        "sourceIPs": r.peer.map(|p| vec![p.ip().to_string()]).unwrap_or_default(),
        "responseStatus": {"metadata": {}, "code": r.code},
        "requestReceivedTimestamp": timestamp(r.received),
        "stageTimestamp": timestamp(Utc::now()),
    });
    if let Some(ua) = r.user_agent {
        e["userAgent"] = json!(ua);
    }
    if !r.annotations.is_empty() {
        e["annotations"] = json!(r.annotations);
    }
    if let Some(i) = r.info {
        let mut obj = json!({
            "resource": i.resource.plural,
            "apiVersion": i.resource.version,
        });
        if !i.resource.group.is_empty() {
            obj["apiGroup"] = json!(i.resource.group);
        }
        if let Some(ns) = &i.namespace {
            obj["namespace"] = json!(ns);
        }
        if let Some(n) = &i.name {
            obj["name"] = json!(n);
        }
        if let Some(s) = &i.subresource {
            obj["subresource"] = json!(s);
        }
        e["objectRef"] = obj;
    }
    e
}
