//! From Ingresses, Services and EndpointSlices to a routing table.
//!
//! Matching follows the Ingress specification:
//!
//! - A rule's `host` is exact (`foo.example.com`) or a wildcard of one
//!   label (`*.example.com` matches `bar.example.com`, not
//!   `baz.bar.example.com` nor `example.com`); a rule without a host
//!   matches every host. Exact hosts win over wildcards, wildcards over
//!   rules without a host.
//! - Among the paths of the matching host, the longest wins; an `Exact`
//!   path wins over a `Prefix` path of the same length. `Prefix` matches
//!   whole path elements: `/foo` matches `/foo`, `/foo/` and `/foo/bar`,
//!   not `/foobar`; a trailing `/` in the rule is ignored.
//!   `ImplementationSpecific` is treated as `Prefix`.
//! - Nothing matching: the `defaultBackend` of an Ingress, else 404.
//!
//! An Ingress is the gateway's when its `ingressClassName` is
//! [`CLASS`], or it names no class and the IngressClass [`CLASS`] is the
//! cluster's default (annotation `ingressclass.kubernetes.io/is-default-class`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use crate::service::SliceIndex;

/// The IngressClass the gateway serves.
pub const CLASS: &str = "skiff";
/// The annotation that makes an IngressClass the default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// How a rule's host matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    Exact(String),
    /// `*.example.com` as `.example.com`.
    Wildcard(String),
}

impl Host {
    fn parse(h: Option<&str>) -> Host {
        match h {
            None | Some("") => Host::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => Host::Wildcard(suffix.to_ascii_lowercase()),
                None => Host::Exact(h.to_ascii_lowercase()),
            },
        }
    }

    /// How well `host` matches: higher is more specific, None is no match.
    fn rank(&self, host: &str) -> Option<u8> {
        match self {
            Host::Any => Some(0),
            Host::Exact(h) => (h == host).then_some(2),
            Host::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .filter(|label| !label.is_empty() && !label.contains('.'))
                .map(|_| 1),
        }
    }
}

/// How a rule's path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Exact,
    Prefix,
}

/// Whether `path` is `prefix` or under it, element by element.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A Service port behind a route, with its current endpoints.
#[derive(Debug)]
pub struct Backend {
    pub namespace: String,
    pub service: String,
    /// The Service port as the Ingress names it (`80` or `http`).
    pub port: String,
    /// Ready endpoints, `podIP:targetPort`.
    pub endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Backend {
    /// The next endpoint in turn among `candidates` (a subset of
    /// [`Backend::endpoints`]).
    pub fn pick<'a>(&self, candidates: &'a [SocketAddr]) -> Option<&'a SocketAddr> {
        if candidates.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        candidates.get(i % candidates.len())
    }

    /// `namespace/service:port`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.service, self.port)
    }
}

#[derive(Debug)]
struct Rule {
    host: Host,
    path: String,
    kind: PathKind,
    backend: Arc<Backend>,
}

/// The routing table: rebuilt whenever an Ingress, Service or
/// EndpointSlice changes, read by every request.
#[derive(Debug, Default)]
pub struct Routes {
    rules: Vec<Rule>,
    default: Option<Arc<Backend>>,
    /// TLS Secrets (`namespace/name`) by host; `""` for a section without
    /// hosts.
    pub tls: HashMap<String, String>,
}

/// What the gateway's caches hold.
pub struct World<'a> {
    pub ingresses: &'a [Arc<Ingress>],
    pub classes: &'a [Arc<IngressClass>],
    pub services: &'a [Arc<Service>],
    pub slices: &'a [Arc<EndpointSlice>],
}

/// Whether the Ingress is the gateway's to serve.
pub fn ours(ing: &Ingress, classes: &[Arc<IngressClass>]) -> bool {
    let spec = ing.spec.as_ref();
    let legacy = ing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/ingress.class"));
    match (spec.and_then(|s| s.ingress_class_name.as_deref()), legacy) {
        (Some(c), _) => c == CLASS,
        (None, Some(c)) => c == CLASS,
        (None, None) => classes.iter().any(|c| {
            c.metadata.name.as_deref() == Some(CLASS)
                && c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
        }),
    }
}

impl Routes {
    /// Build the table.
    pub fn build(w: &World<'_>) -> Routes {
        let mut routes = Routes::default();
        let mut backends: HashMap<(String, String, String), Arc<Backend>> = HashMap::new();
        let slices = SliceIndex::new(w.slices);
        let mut backend = |ns: &str, b: &IngressBackend| -> Option<Arc<Backend>> {
            let svc = b.service.as_ref()?;
            let port = svc.port.as_ref()?;
            let port = match (&port.name, port.number) {
                (Some(n), _) if !n.is_empty() => n.clone(),
                (_, Some(n)) => n.to_string(),
                _ => return None,
            };
            let key = (ns.to_string(), svc.name.clone(), port.clone());
            let b = backends.entry(key).or_insert_with(|| {
                Arc::new(Backend {
                    endpoints: endpoints(w, &slices, ns, &svc.name, &port),
                    namespace: ns.to_string(),
                    service: svc.name.clone(),
                    port,
                    next: AtomicUsize::new(0),
                })
            });
            Some(b.clone())
        };
        let mut ingresses: Vec<&Arc<Ingress>> =
            w.ingresses.iter().filter(|i| ours(i, w.classes)).collect();
        // Oldest first, so the first Ingress to claim a route keeps it.
        ingresses.sort_by(|a, b| {
            let t = |i: &Ingress| i.metadata.creation_timestamp.clone();
            t(a).cmp(&t(b))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        for ing in ingresses {
            let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
            let Some(spec) = &ing.spec else { continue };
            if let Some(d) = &spec.default_backend {
                if routes.default.is_none() {
                    routes.default = backend(ns, d);
                }
            }
            for t in spec.tls.iter().flatten() {
                let Some(secret) = &t.secret_name else {
                    continue;
                };
                let hosts = t.hosts.clone().unwrap_or_default();
                if hosts.is_empty() {
                    routes
                        .tls
                        .entry(String::new())
                        .or_insert_with(|| format!("{ns}/{secret}"));
                }
                for h in hosts {
                    routes
                        .tls
                        .entry(h.to_ascii_lowercase())
                        .or_insert_with(|| format!("{ns}/{secret}"));
                }
            }
            for rule in spec.rules.iter().flatten() {
                let host = Host::parse(rule.host.as_deref());
                for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                    let Some(b) = backend(ns, &p.backend) else {
                        continue;
                    };
                    let kind = if p.path_type == "Exact" {
                        PathKind::Exact
                    } else {
                        PathKind::Prefix
                    };
                    routes.rules.push(Rule {
                        host: host.clone(),
                        path: p.path.clone().unwrap_or_else(|| "/".into()),
                        kind,
                        backend: b,
                    });
                }
            }
        }
        routes
    }

    /// The backend for a request to `host` (without port) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Backend>> {
        let host = host.to_ascii_lowercase();
        let mut best: Option<((u8, usize, bool), &Rule)> = None;
        for r in &self.rules {
            let Some(h) = r.host.rank(&host) else {
                continue;
            };
            let matched = match r.kind {
                PathKind::Exact => r.path == path,
                PathKind::Prefix => prefix_matches(&r.path, path),
            };
            if !matched {
                continue;
            }
            let len = r.path.trim_end_matches('/').len();
            let score = (h, len, r.kind == PathKind::Exact);
            // Strictly better only: the first (oldest) rule keeps a tie.
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, r));
            }
        }
        best.map(|(_, r)| &r.backend).or(self.default.as_ref())
    }

    /// Every backend in the table (for the activator and tests).
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.rules
            .iter()
            .map(|r| &r.backend)
            .chain(self.default.iter())
    }
}

/// The ready endpoints of a Service port named as an Ingress names it
/// (`80` or `http`); [`crate::service`] resolves them.
fn endpoints(
    w: &World<'_>,
    slices: &SliceIndex<'_>,
    ns: &str,
    svc: &str,
    port: &str,
) -> Vec<SocketAddr> {
    let Some(service) = w.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(svc)
    }) else {
        return Vec::new();
    };
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
    let Some(sp) = ports
        .into_iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(port) || p.port.to_string() == port)
    else {
        return Vec::new();
    };
    slices.ready_endpoints(service, sp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ing(name: &str, spec: serde_json::Value) -> Arc<Ingress> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": spec,
            }))
            .expect("ingress"),
        )
    }

    fn path(p: &str, kind: &str, svc: &str) -> serde_json::Value {
        json!({"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": {"number": 80}}}})
    }

    fn table(ings: &[Arc<Ingress>]) -> Routes {
        Routes::build(&World {
            ingresses: ings,
            classes: &[],
            services: &[],
            slices: &[],
        })
    }

    fn svc_of(r: &Routes, host: &str, p: &str) -> Option<String> {
        r.route(host, p).map(|b| b.service.clone())
    }

    #[test]
    fn longest_path_wins_and_exact_beats_prefix() {
        let r = table(&[ing(
            "a",
            json!({"ingressClassName": "skiff", "rules": [{"http": {"paths": [
                path("/", "Prefix", "root"),
                path("/api", "Prefix", "api"),
                path("/api/v1", "Exact", "v1exact"),
                path("/api/v1/", "Prefix", "v1prefix"),
            ]}}]}),
        )]);
        assert_eq!(svc_of(&r, "x", "/"), Some("root".into()));
        assert_eq!(svc_of(&r, "x", "/apix"), Some("root".into()));
        assert_eq!(svc_of(&r, "x", "/api"), Some("api".into()));
        assert_eq!(svc_of(&r, "x", "/api/"), Some("api".into()));
        assert_eq!(svc_of(&r, "x", "/api/v1"), Some("v1exact".into()));
        assert_eq!(svc_of(&r, "x", "/api/v1/users"), Some("v1prefix".into()));
    }

    #[test]
    fn hosts_exact_then_wildcard_then_any() {
        let r = table(&[ing(
            "a",
            json!({"ingressClassName": "skiff", "rules": [
                {"host": "foo.example.com", "http": {"paths": [path("/", "Prefix", "foo")]}},
                {"host": "*.example.com", "http": {"paths": [path("/", "Prefix", "wild")]}},
                {"http": {"paths": [path("/", "Prefix", "any")]}},
            ]}),
        )]);
        assert_eq!(svc_of(&r, "FOO.example.com", "/"), Some("foo".into()));
        assert_eq!(svc_of(&r, "bar.example.com", "/x"), Some("wild".into()));
        assert_eq!(svc_of(&r, "a.bar.example.com", "/"), Some("any".into()));
        assert_eq!(svc_of(&r, "example.com", "/"), Some("any".into()));
    }

    #[test]
    fn other_classes_are_left_alone_and_default_backend_catches_the_rest() {
        let r = table(&[
            ing(
                "mine",
                json!({"ingressClassName": "skiff", "rules": [{"http": {"paths": [path("/only", "Exact", "mine")]}}],
                "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}}}),
            ),
            ing(
                "theirs",
                json!({"ingressClassName": "nginx", "rules": [{"http": {"paths": [path("/", "Prefix", "theirs")]}}]}),
            ),
            ing(
                "unclassed",
                json!({"rules": [{"http": {"paths": [path("/", "Prefix", "unclassed")]}}]}),
            ),
        ]);
        assert_eq!(svc_of(&r, "h", "/only"), Some("mine".into()));
        assert_eq!(svc_of(&r, "h", "/other"), Some("fallback".into()));
        // With skiff the default class, the unclassed Ingress is served.
        let class: Arc<IngressClass> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "skiff", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}}, "spec": {}}))
                .expect("class"),
        );
        let ings = [ing(
            "unclassed",
            json!({"rules": [{"http": {"paths": [path("/", "Prefix", "unclassed")]}}]}),
        )];
        let r = Routes::build(&World {
            ingresses: &ings,
            classes: &[class],
            services: &[],
            slices: &[],
        });
        assert_eq!(svc_of(&r, "h", "/"), Some("unclassed".into()));
        assert!(table(&ings).route("h", "/").is_none());
    }

    #[test]
    fn endpoints_are_ready_addresses_at_the_named_target_port() {
        let svc: Arc<Service> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}))
            .expect("svc"),
        );
        let slice: Arc<EndpointSlice> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "web-x", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.3"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.2"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.4"], "conditions": {"ready": false}},
            ]}))
            .expect("slice"),
        );
        let ings = [ing(
            "a",
            json!({"ingressClassName": "skiff", "rules": [{"http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]}),
        )];
        let r = Routes::build(&World {
            ingresses: &ings,
            classes: &[],
            services: &[svc],
            slices: &[slice],
        });
        let b = r.route("h", "/").expect("route");
        let want: Vec<SocketAddr> = vec![
            "10.244.0.2:8080".parse().expect("a"),
            "10.244.0.3:8080".parse().expect("a"),
        ];
        assert_eq!(b.endpoints, want);
        let picks: Vec<_> = (0..4)
            .filter_map(|_| b.pick(&b.endpoints).copied())
            .collect();
        assert_eq!(picks, [want[0], want[1], want[0], want[1]]);
    }
}
