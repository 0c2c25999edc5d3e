//! Dynamic admission webhooks: `admissionregistration.k8s.io/v1`
//! MutatingWebhookConfiguration and ValidatingWebhookConfiguration, called
//! with `admission.k8s.io/v1` AdmissionReview over HTTPS, as kube-apiserver
//! calls them.
//!
//! Where they run in a write (see `handlers/write.rs`): after skiff's
//! built-in admission, [`mutate`] calls every matching mutating webhook in
//! order (configurations by name, then webhooks in their listed order) and
//! applies each one's JSONPatch before the next is called; the object is
//! then defaulted and validated; then [`validate`] calls the matching
//! validating webhooks, one after another in the same order (Kubernetes
//! calls them in parallel; the outcome is the same but for latency, and
//! the first refusal in order is the one reported). Webhooks are never
//! called for the webhook configurations themselves.
//!
//! A webhook matches a request when one of its `rules` names the operation,
//! group, version, resource (`pods`, `pods/status`, `*`, `*/status`, `*/*`)
//! and scope; its `namespaceSelector` selects the object's namespace (a
//! Namespace is selected by its own labels; cluster-scoped objects always
//! are); and its `objectSelector` selects the new or the old object. skiff
//! serves one version of each kind, so `matchPolicy: Equivalent` matches
//! exactly as `Exact` does.
//!
//! A refusal is the error Kubernetes gives (`admission webhook "NAME"
//! denied the request: MESSAGE`, with the webhook's code, at least 400). A
//! call that fails (no connection, TLS, timeout, a bad response) refuses
//! the request with 500 `failed calling webhook` under `failurePolicy:
//! Fail` and is logged and ignored under `Ignore`.
//!
//! Configurations are read from the store on every write that reaches the
//! webhook step: two scans of empty key ranges cost about 14 µs in a debug
//! build (docs/benchmarks.md), against a durable write's fsync, and a
//! cache could only add staleness.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use apimachinery::selector::LabelSelector;
use base64::Engine;
use http::{Request as HttpRequest, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use serde_json::{json, Map, Value};

use crate::authn::User;
use crate::error::{ApiError, ApiResult};
use crate::handlers::Ctx;
use crate::registry;
use crate::resources::{self, Resource};
use crate::store::Store;

/// The group whose objects are never sent to webhooks.
const GROUP: &str = "admissionregistration.k8s.io";
/// How much of a webhook's answer is read.
const MAX_RESPONSE: usize = 3 * 1024 * 1024;

/// An admission operation, as AdmissionReview names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// The `options` kind sent with it.
    fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
            Operation::Connect => "",
        }
    }
}

/// What a write asks, as webhooks see it.
pub struct Attributes<'a> {
    pub resource: &'static Resource,
    pub subresource: Option<&'a str>,
    pub operation: Operation,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub user: &'a User,
    pub dry_run: bool,
    /// CreateOptions, UpdateOptions, PatchOptions or DeleteOptions.
    pub options: Value,
    /// Where the webhooks' warnings go (the request's `Warning` headers).
    pub warnings: &'a Mutex<Vec<String>>,
}

impl<'a> Attributes<'a> {
    /// The attributes of the request in `ctx` on the object `name`.
    pub fn of(ctx: &'a Ctx, operation: Operation, name: &'a str) -> Attributes<'a> {
        let dry_run = ctx.query.dry_run().unwrap_or(false);
        let mut options = json!({"kind": operation.options_kind(), "apiVersion": "meta.k8s.io/v1"});
        if ctx.info.verb == crate::request::Verb::Patch {
            options["kind"] = json!("PatchOptions");
        }
        if dry_run {
            options["dryRun"] = json!(["All"]);
        }
        if operation != Operation::Delete {
            options["fieldManager"] = json!(ctx.field_manager());
        }
        Attributes {
            resource: ctx.info.resource,
            subresource: ctx.info.subresource.as_deref(),
            operation,
            namespace: ctx
                .info
                .namespace
                .as_deref()
                .filter(|_| ctx.info.resource.namespaced()),
            name,
            user: &ctx.user,
            dry_run,
            options,
            warnings: &ctx.warnings,
        }
    }
}

/// Where a webhook is served.
#[derive(Debug, Clone, PartialEq)]
enum Endpoint {
    Url(String),
    Service {
        namespace: String,
        name: String,
        path: String,
        port: u16,
    },
}

/// One webhook of a configuration, as called.
#[derive(Debug, Clone)]
struct Webhook {
    name: String,
    rules: Vec<Value>,
    namespace_selector: Value,
    object_selector: Value,
    ignore_failures: bool,
    side_effects: String,
    timeout: Duration,
    endpoint: Endpoint,
    ca_bundle: Vec<u8>,
}

impl Webhook {
    fn parse(h: &Value) -> Webhook {
        let cc = &h["clientConfig"];
        let endpoint = match cc["url"].as_str() {
            Some(u) => Endpoint::Url(u.to_string()),
            None => {
                let s = &cc["service"];
                Endpoint::Service {
                    namespace: s["namespace"].as_str().unwrap_or_default().to_string(),
                    name: s["name"].as_str().unwrap_or_default().to_string(),
                    path: s["path"].as_str().unwrap_or_default().to_string(),
                    port: s["port"]
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or(443),
                }
            }
        };
        let ca_bundle = cc["caBundle"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        Webhook {
            name: h["name"].as_str().unwrap_or_default().to_string(),
            rules: h["rules"].as_array().cloned().unwrap_or_default(),
            namespace_selector: h["namespaceSelector"].clone(),
            object_selector: h["objectSelector"].clone(),
            ignore_failures: h["failurePolicy"].as_str() == Some("Ignore"),
            side_effects: h["sideEffects"].as_str().unwrap_or_default().to_string(),
            timeout: Duration::from_secs(h["timeoutSeconds"].as_u64().unwrap_or(10).clamp(1, 30)),
            endpoint,
            ca_bundle,
        }
    }
}

/// The webhooks of every configuration of one kind, configurations by name
/// (the store lists keys in order), webhooks as listed.
fn webhooks(store: &dyn Store, kind: &str) -> ApiResult<Vec<Webhook>> {
    let r = resources::by_kind(GROUP, "v1", kind)
        .ok_or_else(|| ApiError::internal(format!("{kind} is not served")))?;
    let listing = store
        .list(&registry::prefix(r, None), None, None)
        .map_err(|e| ApiError::internal(format!("reading {kind}s: {e}")))?;
    Ok(listing
        .items
        .iter()
        .flat_map(|s| s.value["webhooks"].as_array().cloned().unwrap_or_default())
        .map(|h| Webhook::parse(&h))
        .collect())
}

// ---- matching ----

fn listed(list: &Value, want: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|v| v == "*" || v.as_str() == Some(want)))
}

/// Whether one rule of `rules` names the request (Kubernetes' `RuleMatcher`).
fn rule_matches(rule: &Value, a: &Attributes<'_>) -> bool {
    let r = a.resource;
    let scope_ok = match rule["scope"].as_str().unwrap_or("*") {
        "Cluster" => !r.namespaced(),
        "Namespaced" => r.namespaced(),
        _ => true,
    };
    scope_ok
        && listed(&rule["operations"], a.operation.as_str())
        && listed(&rule["apiGroups"], r.group)
        && listed(&rule["apiVersions"], r.version)
        && rule["resources"].as_array().is_some_and(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .any(|x| resource_matches(x, r.plural, a.subresource))
        })
}

/// `pods`, `pods/status`, `*`, `*/status`, `pods/*`, `*/*`.
fn resource_matches(pattern: &str, resource: &str, sub: Option<&str>) -> bool {
    let (pr, ps) = match pattern.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (pattern, None),
    };
    let resource_ok = pr == "*" || pr == resource;
    let sub_ok = match (ps, sub) {
        (None, None) => true,
        (Some("*"), _) => true,
        (Some(p), Some(s)) => p == s,
        _ => false,
    };
    resource_ok && sub_ok
}

fn selector(v: &Value) -> LabelSelector {
    if v.is_null() {
        return LabelSelector::everything();
    }
    // Invalid selectors were refused when the configuration was written.
    LabelSelector::from_json(v).unwrap_or_else(|_| LabelSelector::nothing())
}

fn labels(obj: Option<&Value>) -> Option<&Map<String, Value>> {
    obj.and_then(|o| o["metadata"]["labels"].as_object())
}

/// `objectSelector`: the new or the old object's labels.
fn object_selected(h: &Webhook, object: Option<&Value>, old: Option<&Value>) -> bool {
    let sel = selector(&h.object_selector);
    sel.is_empty()
        || [object, old]
            .into_iter()
            .flatten()
            .any(|o| sel.matches(labels(Some(o))))
}

/// `namespaceSelector`: the namespace's labels (a Namespace's own); every
/// cluster-scoped object of another kind is selected.
fn namespace_selected(
    store: &dyn Store,
    h: &Webhook,
    a: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<bool> {
    let sel = selector(&h.namespace_selector);
    if sel.is_empty() {
        return Ok(true);
    }
    let r = a.resource;
    if r.group.is_empty() && r.kind == "Namespace" {
        return Ok(sel.matches(labels(object.or(old))));
    }
    let Some(ns) = a.namespace else {
        return Ok(true);
    };
    let nsr = resources::by_kind("", "v1", "Namespace")
        .ok_or_else(|| ApiError::internal("namespaces not served"))?;
    let stored = store
        .get(&registry::key(nsr, None, ns))
        .map_err(|e| ApiError::internal(format!("reading namespace {ns}: {e}")))?;
    Ok(sel.matches(stored.as_ref().and_then(|s| labels(Some(&s.value)))))
}

fn matches(
    store: &dyn Store,
    h: &Webhook,
    a: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<bool> {
    if !h.rules.iter().any(|r| rule_matches(r, a)) {
        return Ok(false);
    }
    Ok(namespace_selected(store, h, a, object, old)? && object_selected(h, object, old))
}

// ---- the review ----

/// The AdmissionReview sent for one call.
fn review(a: &Attributes<'_>, uid: &str, object: Option<&Value>, old: Option<&Value>) -> Value {
    let r = a.resource;
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let resource = json!({"group": r.group, "version": r.version, "resource": r.plural});
    let mut user = json!({"username": a.user.name, "groups": a.user.groups});
    if !a.user.uid.is_empty() {
        user["uid"] = json!(a.user.uid);
    }
    let mut req = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "operation": a.operation.as_str(),
        "userInfo": user,
        "object": object.cloned().unwrap_or(Value::Null),
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": a.options,
    });
    if let Some(s) = a.subresource {
        req["subResource"] = json!(s);
        req["requestSubResource"] = json!(s);
    }
    if !a.name.is_empty() {
        req["name"] = json!(a.name);
    }
    if let Some(ns) = a.namespace {
        req["namespace"] = json!(ns);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
}

/// A webhook's answer, checked as Kubernetes' `VerifyAdmissionResponse`.
#[derive(Debug, PartialEq)]
struct Answer {
    allowed: bool,
    status: Value,
    /// The decoded JSONPatch, when one came.
    patch: Option<Value>,
    warnings: Vec<String>,
}

fn verify(uid: &str, mutating: bool, review: &Value) -> Result<Answer, String> {
    let gvk = (review["apiVersion"].as_str(), review["kind"].as_str());
    let resp = &review["response"];
    if !resp.is_object() {
        return Err("webhook response was absent".into());
    }
    let got_uid = resp["uid"].as_str().unwrap_or_default();
    if got_uid != uid {
        return Err(format!("expected response.uid={uid:?}, got {got_uid:?}"));
    }
    if gvk != (Some("admission.k8s.io/v1"), Some("AdmissionReview")) {
        let (av, k) = (gvk.0.unwrap_or_default(), gvk.1.unwrap_or_default());
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {av}, Kind={k}"
        ));
    }
    let patch_type = resp["patchType"].as_str().unwrap_or_default();
    let patch = resp["patch"].as_str().unwrap_or_default();
    if !patch.is_empty() && patch_type.is_empty() {
        return Err("webhook returned response.patch but not response.patchType".into());
    }
    if !patch_type.is_empty() && !mutating {
        return Err("validating webhook may not return response.patchType".into());
    }
    if !patch_type.is_empty() && patch_type != "JSONPatch" {
        return Err(format!(
            "webhook returned invalid response.patchType of {patch_type:?}"
        ));
    }
    let patch = if patch.is_empty() {
        None
    } else {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
        let ops: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
        if !ops.is_array() {
            return Err("received undecodable patch in webhook response: not a JSON array".into());
        }
        Some(ops).filter(|o| o.as_array().is_some_and(|a| !a.is_empty()))
    };
    Ok(Answer {
        allowed: resp["allowed"].as_bool().unwrap_or(false),
        status: resp["status"].clone(),
        patch,
        warnings: resp["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    })
}

/// A Kubernetes StatusReason as the static text `ApiError` carries;
/// reasons outside Kubernetes' set are dropped.
fn known_reason(reason: &str) -> &'static str {
    const REASONS: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "StoreReadError",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    REASONS
        .iter()
        .find(|r| **r == reason)
        .copied()
        .unwrap_or("")
}

/// A refusal, as Kubernetes' `webhookerrors.ToStatusErr` words it.
fn denied(webhook: &str, status: &Value) -> ApiError {
    let by = format!("admission webhook {webhook:?} denied the request");
    let message = status["message"].as_str().unwrap_or_default();
    let reason = status["reason"].as_str().unwrap_or_default();
    let text = if !message.is_empty() {
        format!("{by}: {message}")
    } else if !reason.is_empty() {
        format!("{by}: {reason}")
    } else {
        format!("{by} without explanation")
    };
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let mut err = ApiError::new(code, known_reason(reason), text);
    err.details = status.get("details").filter(|d| d.is_object()).cloned();
    err
}

/// A call that did not produce an answer (Kubernetes' `ErrCallingWebhook`).
fn call_failed(webhook: &str, why: &str) -> ApiError {
    ApiError::internal(format!("failed calling webhook {webhook:?}: {why}"))
}

// ---- calling ----

/// Where one call goes.
struct Target {
    /// `https://host:port/path?timeout=10s`, as errors show it.
    url: String,
    /// The address dialed.
    addr: (String, u16),
    /// The name the certificate must carry.
    server_name: String,
    path_and_query: String,
    host_header: String,
}

/// `https://host[:port][/path]` → (host, port, path).
fn split_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 443,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), 443),
        }
    };
    (!host.is_empty()).then(|| (host, port, path.to_string()))
}

/// Where a webhook is reached, resolving a Service to a ready endpoint.
/// `Err` is `(url shown, why)`.
fn target(store: &dyn Store, h: &Webhook) -> Result<Target, (String, String)> {
    let timeout = format!("?timeout={}s", h.timeout.as_secs());
    match &h.endpoint {
        Endpoint::Url(u) => {
            let shown = format!("{u}{timeout}");
            let (host, port, path) = split_url(u).ok_or_else(|| {
                (
                    shown.clone(),
                    "the webhook URL could not be parsed".to_string(),
                )
            })?;
            let host_header = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            Ok(Target {
                url: shown,
                addr: (host.clone(), port),
                server_name: host,
                path_and_query: format!("{path}{timeout}"),
                host_header,
            })
        }
        Endpoint::Service {
            namespace,
            name,
            path,
            port,
        } => {
            let host = format!("{name}.{namespace}.svc");
            let path = if path.is_empty() { "/" } else { path.as_str() };
            let shown = format!("https://{host}:{port}{path}{timeout}");
            let addr = resolve_service(store, namespace, name, *port)
                .map_err(|why| (shown.clone(), why))?;
            Ok(Target {
                url: shown,
                addr,
                server_name: host.clone(),
                path_and_query: format!("{path}{timeout}"),
                host_header: format!("{host}:{port}"),
            })
        }
    }
}

/// A Service port's first ready endpoint, from its EndpointSlices, or its
/// Endpoints when it has no slices (Kubernetes' endpoint resolver).
fn resolve_service(
    store: &dyn Store,
    ns: &str,
    name: &str,
    port: u16,
) -> Result<(String, u16), String> {
    let get = |kind: &str, group: &str| resources::by_kind(group, "v1", kind);
    let svc_r = get("Service", "").ok_or("services not served")?;
    let svc = store
        .get(&registry::key(svc_r, Some(ns), name))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("service {name:?} not found"))?;
    let sp = svc.value["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_u64() == Some(u64::from(port)))
        .cloned()
        .ok_or_else(|| format!("no service port {port} found for service {name:?}"))?;
    let port_name = sp["name"].as_str().unwrap_or_default();
    let no_endpoints = || format!("no endpoints available for service {name:?}");
    let slices_r = get("EndpointSlice", "discovery.k8s.io").ok_or("slices not served")?;
    let slices = store
        .list(&registry::prefix(slices_r, Some(ns)), None, None)
        .map_err(|e| e.to_string())?;
    let mut had_slices = false;
    for s in slices.items.iter().map(|s| &s.value) {
        if s["metadata"]["labels"]["kubernetes.io/service-name"].as_str() != Some(name) {
            continue;
        }
        had_slices = true;
        let Some(number) = s["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let ready = s["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["conditions"]["ready"].as_bool() != Some(false))
            .find_map(|e| e["addresses"][0].as_str());
        if let Some(ip) = ready {
            return Ok((ip.to_string(), number));
        }
    }
    if had_slices {
        return Err(no_endpoints());
    }
    let ep_r = get("Endpoints", "").ok_or("endpoints not served")?;
    let ep = store
        .get(&registry::key(ep_r, Some(ns), name))
        .map_err(|e| e.to_string())?
        .ok_or_else(no_endpoints)?;
    ep.value["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|ss| {
            let number = ss["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
                .and_then(|p| p["port"].as_u64())
                .and_then(|p| u16::try_from(p).ok())?;
            let ip = ss["addresses"][0]["ip"].as_str()?;
            Some((ip.to_string(), number))
        })
        .ok_or_else(no_endpoints)
}

/// The host's trusted roots, for webhooks without a `caBundle`.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let files = std::env::var("SSL_CERT_FILE").into_iter().chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(String::from),
        );
        for f in files {
            if let Ok(pem) = std::fs::read(&f) {
                let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                    .filter_map(Result::ok)
                    .collect();
                if !certs.is_empty() {
                    return certs;
                }
            }
        }
        Vec::new()
    })
}

fn tls_config(ca_bundle: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if ca_bundle.is_empty() {
        for c in system_roots() {
            let _ = roots.add(c.clone());
        }
    } else {
        for c in CertificateDer::pem_slice_iter(ca_bundle) {
            let c = c.map_err(|e| format!("unable to load root certificates: {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("unable to load root certificates: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Go's words for a failed dial, which users search for.
fn dial_error(addr: &(String, u16), e: &std::io::Error) -> String {
    let a = if addr.0.contains(':') {
        format!("[{}]:{}", addr.0, addr.1)
    } else {
        format!("{}:{}", addr.0, addr.1)
    };
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {a}: connect: connection refused")
        }
        _ => format!("dial tcp {a}: {e}"),
    }
}

/// POST the review and read the answer; `Err` is the reason in Go's words
/// minus the `Post "URL": ` prefix the caller adds.
async fn post(t: &Target, tls: Arc<rustls::ClientConfig>, body: Vec<u8>) -> Result<Value, String> {
    let tcp = tokio::net::TcpStream::connect((t.addr.0.as_str(), t.addr.1))
        .await
        .map_err(|e| dial_error(&t.addr, &e))?;
    let _ = tcp.set_nodelay(true);
    let name = match t.server_name.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(t.server_name.clone()).map_err(|e| format!("tls: {e}"))?,
    };
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = HttpRequest::post(&t.path_and_query)
        .header(http::header::HOST, &t.host_header)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .header(http::header::USER_AGENT, "skiff-apiserver")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        return Err(match status {
            StatusCode::NOT_FOUND => "the server could not find the requested resource".into(),
            s if s.is_server_error() => format!(
                "an error on the server ({text:?}) has prevented the request from succeeding"
            ),
            s => format!(
                "the server responded with the status code {} but did not return more information",
                s.as_u16()
            ),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON in the response: {e}"))
}

/// Call one webhook. `Ok(Err(..))` is a call failure, subject to the
/// failure policy; `Err` refuses the request whatever the policy.
async fn call(
    store: &dyn Store,
    h: &Webhook,
    a: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
    mutating: bool,
) -> ApiResult<Result<Answer, ApiError>> {
    if a.dry_run && !matches!(h.side_effects.as_str(), "None" | "NoneOnDryRun") {
        return Err(ApiError::bad_request(format!(
            "admission webhook {:?} does not support dry run",
            h.name
        )));
    }
    let uid = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&review(a, &uid, object, old))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let t = match target(store, h) {
        Ok(t) => t,
        Err((url, why)) => {
            let why = format!("failed to call webhook: Post {url:?}: {why}");
            return Ok(Err(call_failed(&h.name, &why)));
        }
    };
    let tls = match tls_config(&h.ca_bundle) {
        Ok(c) => c,
        Err(why) => {
            let why = format!("could not get REST client: {why}");
            return Ok(Err(call_failed(&h.name, &why)));
        }
    };
    let answer = match tokio::time::timeout(h.timeout, post(&t, tls, body)).await {
        Err(_) => Err("context deadline exceeded".to_string()),
        Ok(r) => r,
    };
    let review = match answer {
        Ok(v) => v,
        Err(why) => {
            let why = format!("failed to call webhook: Post {:?}: {why}", t.url);
            return Ok(Err(call_failed(&h.name, &why)));
        }
    };
    Ok(verify(&uid, mutating, &review).map_err(|why| {
        if why.starts_with("received undecodable patch") {
            call_failed(&h.name, &why)
        } else {
            call_failed(
                &h.name,
                &format!("received invalid webhook response: {why}"),
            )
        }
    }))
}

/// Apply the failure policy to a failed call: refuse, or log and go on.
fn failure(h: &Webhook, err: ApiError) -> ApiResult<()> {
    if h.ignore_failures {
        tracing::warn!(webhook = %h.name, error = %err.message, "Failed calling webhook, failing open");
        Ok(())
    } else {
        tracing::warn!(webhook = %h.name, error = %err.message, "Failed calling webhook, failing closed");
        Err(err)
    }
}

fn skip(a: &Attributes<'_>) -> bool {
    a.resource.group == GROUP
}

fn note_warnings(a: &Attributes<'_>, warnings: Vec<String>) {
    if !warnings.is_empty() {
        a.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(warnings);
    }
}

/// Run the mutating webhooks that match, in order, patching `object` with
/// each one's answer. `object` is `None` for a delete, where a patch is an
/// error as in Kubernetes.
pub async fn mutate(
    store: &dyn Store,
    a: &Attributes<'_>,
    mut object: Option<&mut Value>,
    old: Option<&Value>,
) -> ApiResult<()> {
    if skip(a) {
        return Ok(());
    }
    for h in webhooks(store, "MutatingWebhookConfiguration")? {
        if !matches(store, &h, a, object.as_deref(), old)? {
            continue;
        }
        // Webhooks see the object defaulted, as Kubernetes decodes it.
        if let Some(obj) = object.as_deref_mut() {
            apimachinery::validation::default_object(a.resource.group, a.resource.kind, obj);
        }
        let answer = match call(store, &h, a, object.as_deref(), old, true).await? {
            Ok(answer) => answer,
            Err(e) => {
                failure(&h, e)?;
                continue;
            }
        };
        note_warnings(a, answer.warnings);
        if !answer.allowed {
            return Err(denied(&h.name, &answer.status));
        }
        let Some(ops) = answer.patch else {
            continue;
        };
        let Some(obj) = object.as_deref_mut() else {
            return Err(ApiError::internal(format!(
                "admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                h.name
            )));
        };
        *obj = apimachinery::patch::json_patch(obj, &ops)
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(())
}

/// Run the validating webhooks that match, in order; the first refusal
/// (or failed call under `failurePolicy: Fail`) refuses the request.
pub async fn validate(
    store: &dyn Store,
    a: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<()> {
    if skip(a) {
        return Ok(());
    }
    for h in webhooks(store, "ValidatingWebhookConfiguration")? {
        if !matches(store, &h, a, object, old)? {
            continue;
        }
        match call(store, &h, a, object, old, false).await? {
            Ok(answer) => {
                note_warnings(a, answer.warnings);
                if !answer.allowed {
                    return Err(denied(&h.name, &answer.status));
                }
            }
            Err(e) => failure(&h, e)?,
        }
    }
    Ok(())
}

/// The calls `handlers/write.rs` makes, one line each.
impl crate::handlers::ApiServer {
    /// Mutating webhooks for the request in `ctx` on the object `name`.
    pub(crate) async fn mutating_webhooks(
        &self,
        ctx: &Ctx,
        op: Operation,
        name: &str,
        object: Option<&mut Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        if !sent_to_webhooks(ctx) {
            return Ok(());
        }
        mutate(&*self.store, &Attributes::of(ctx, op, name), object, old).await
    }

    /// Validating webhooks for the request in `ctx` on the object `name`.
    pub(crate) async fn validating_webhooks(
        &self,
        ctx: &Ctx,
        op: Operation,
        name: &str,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        if !sent_to_webhooks(ctx) {
            return Ok(());
        }
        validate(&*self.store, &Attributes::of(ctx, op, name), object, old).await
    }
}

/// The writes whose object is the resource itself: the main resource and
/// subresources that write the whole object (`status`, `finalize`,
/// `approval`). `scale`, `eviction` and `binding` carry other kinds, which
/// are not sent yet.
fn sent_to_webhooks(ctx: &Ctx) -> bool {
    !matches!(
        ctx.info.subresource.as_deref(),
        Some("scale" | "eviction" | "binding")
    )
}

#[cfg(test)]
mod tests;
