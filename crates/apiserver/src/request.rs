//! Turning an HTTP request into what the API server should do.
//!
//! [`RequestInfo::parse`] reads the Kubernetes URL layout
//! (`/api/v1/namespaces/NS/pods/NAME/status`, `/apis/GROUP/VERSION/...`)
//! and the method into a verb and a resource; [`Query`] holds the query
//! parameters the handlers understand; [`Accept`] is the negotiated
//! response shape (plain object, Table, or PartialObjectMetadata).

use std::collections::HashMap;

use crate::error::{ApiError, ApiResult};
use crate::resources::{self, Resource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A request for a resource (as opposed to discovery, OpenAPI, health).
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub verb: Verb,
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parsed query string.
#[derive(Debug, Default, Clone)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut m = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(percent_decode(k), percent_decode(v));
        }
        Query(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A boolean parameter, read as Go's `strconv.ParseBool` reads it (the
    /// Python client sends `watch=True`); a bare `?watch` counts as true.
    pub fn flag(&self, k: &str) -> bool {
        matches!(
            self.0.get(k).map(String::as_str),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True" | "")
        )
    }

    pub fn u64(&self, k: &str) -> ApiResult<Option<u64>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for query parameter {k}: {v:?}"))
            }),
        }
    }

    pub fn i64(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for query parameter {k}: {v:?}"))
            }),
        }
    }

    /// `dryRun=All`: validate and answer, but write nothing.
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {v:?}; supported values: \"All\""
            ))),
        }
    }
}

/// Escape a query value (everything but unreserved characters).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decode `%XX` escapes and `+` in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RequestInfo {
    /// Parse a resource URL. `Ok(None)` means the path is not a resource
    /// path at all (discovery and the like are routed before this).
    pub fn parse(
        method: &http::Method,
        path: &str,
        query: &Query,
    ) -> ApiResult<Option<RequestInfo>> {
        let segs: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let (group, version, rest) = match segs.first().map(String::as_str) {
            Some("api") if segs.len() >= 3 => ("", segs[1].as_str(), &segs[2..]),
            Some("apis") if segs.len() >= 4 => (segs[1].as_str(), segs[2].as_str(), &segs[3..]),
            _ => return Ok(None),
        };
        let mut rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        let mut watch_path = false;
        if rest.first() == Some(&"watch") {
            watch_path = true;
            rest.remove(0);
        }
        let (namespace, rest): (Option<String>, Vec<&str>) =
            if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
                (Some(rest[1].to_string()), rest[2..].to_vec())
            } else {
                (None, rest)
            };
        // `/api/v1/namespaces/NAME[/status|/finalize]` addresses the
        // namespace itself.
        let (plural, name, sub, namespace) = match (namespace, rest.as_slice()) {
            (Some(ns), [sub]) if *sub == "status" || *sub == "finalize" => {
                ("namespaces", Some(ns), Some(sub.to_string()), None)
            }
            (ns, [plural]) => (*plural, None, None, ns),
            (ns, [plural, name]) => (*plural, Some(name.to_string()), None, ns),
            (ns, [plural, name, sub]) => {
                (*plural, Some(name.to_string()), Some(sub.to_string()), ns)
            }
            (None, []) if segs.len() == 4 && segs[0] == "api" && segs[2] == "namespaces" => {
                ("namespaces", Some(segs[3].clone()), None, None)
            }
            _ => return Err(ApiError::not_found_path(path)),
        };
        let resource = resources::by_plural(group, version, plural)
            .ok_or_else(|| ApiError::not_found_path(path))?;
        if let Some(s) = &sub {
            if !resource.subresources.contains(&s.as_str()) {
                return Err(ApiError::not_found_path(path));
            }
        }
        if resource.namespaced() && namespace.is_none() && name.is_some() {
            return Err(ApiError::not_found_path(path));
        }
        if !resource.namespaced() && namespace.is_some() {
            return Err(ApiError::not_found_path(path));
        }
        let verb = match *method {
            http::Method::GET | http::Method::HEAD if name.is_none() => {
                if watch_path || query.flag("watch") {
                    Verb::Watch
                } else {
                    Verb::List
                }
            }
            http::Method::GET | http::Method::HEAD if watch_path => Verb::Watch,
            http::Method::GET | http::Method::HEAD => Verb::Get,
            http::Method::POST => Verb::Create,
            http::Method::PUT => Verb::Update,
            http::Method::PATCH => Verb::Patch,
            http::Method::DELETE if name.is_none() => Verb::DeleteCollection,
            http::Method::DELETE => Verb::Delete,
            _ => {
                return Err(ApiError::method_not_allowed(format!(
                    "the server does not allow this method on the requested resource: {method}"
                )))
            }
        };
        Ok(Some(RequestInfo {
            verb,
            resource,
            namespace,
            name,
            subresource: sub,
        }))
    }

    /// `deployments.apps` / `pods`: how Kubernetes names the resource in
    /// messages.
    pub fn qualified(&self) -> String {
        qualified(self.resource)
    }
}

pub fn qualified(r: &Resource) -> String {
    if r.group.is_empty() {
        r.plural.to_string()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

impl ApiError {
    pub fn not_found_path(path: &str) -> ApiError {
        let _ = path;
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
}

/// What shape the client wants the response in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Json,
    Yaml,
    /// `meta.k8s.io` Table (v1 or v1beta1: the body is the same).
    Table {
        v1beta1: bool,
    },
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

impl Accept {
    /// Pick the first offered media type we can produce. Protobuf is
    /// skipped when JSON is also offered; offered alone it is refused.
    pub fn negotiate(header: Option<&str>) -> ApiResult<Accept> {
        let Some(h) = header.filter(|h| !h.trim().is_empty()) else {
            return Ok(Accept::Json);
        };
        for part in h.split(',') {
            let mut params = part.split(';').map(str::trim);
            let mime = params.next().unwrap_or("").to_ascii_lowercase();
            let mut as_ = None;
            let mut v = None;
            let mut g = None;
            for p in params {
                match p.split_once('=') {
                    Some(("as", x)) => as_ = Some(x.to_string()),
                    Some(("v", x)) => v = Some(x.to_string()),
                    Some(("g", x)) => g = Some(x.to_string()),
                    _ => {}
                }
            }
            if !matches!(
                mime.as_str(),
                "application/json" | "*/*" | "application/*" | "application/yaml"
            ) {
                continue;
            }
            match (as_.as_deref(), g.as_deref()) {
                (None, _) if mime == "application/yaml" => return Ok(Accept::Yaml),
                (None, _) => return Ok(Accept::Json),
                (Some("Table"), Some("meta.k8s.io")) => {
                    return Ok(Accept::Table {
                        v1beta1: v.as_deref() == Some("v1beta1"),
                    })
                }
                (
                    Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                    Some("meta.k8s.io"),
                ) => return Ok(Accept::Metadata),
                _ => continue,
            }
        }
        Err(ApiError::not_acceptable(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn parse(m: Method, p: &str) -> RequestInfo {
        RequestInfo::parse(&m, p, &Query::default())
            .expect("parse")
            .expect("resource path")
    }

    #[test]
    fn parses_the_kubernetes_url_layout() {
        let r = parse(Method::GET, "/api/v1/namespaces/default/pods/web-1/log");
        assert_eq!(
            (
                r.verb,
                r.resource.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (
                Verb::Get,
                "pods",
                Some("default"),
                Some("web-1"),
                Some("log")
            )
        );
        let r = parse(Method::GET, "/apis/apps/v1/deployments");
        assert_eq!((r.verb, r.namespace), (Verb::List, None));
        let r = parse(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.plural, r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let r = parse(Method::PUT, "/api/v1/namespaces/x/finalize");
        assert_eq!(
            (
                r.resource.plural,
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let r = parse(Method::GET, "/api/v1/watch/namespaces/default/pods");
        assert_eq!(r.verb, Verb::Watch);
        let r = parse(Method::DELETE, "/api/v1/namespaces/default/configmaps");
        assert_eq!(r.verb, Verb::DeleteCollection);
    }

    #[test]
    fn unknown_resources_and_subresources_are_not_found() {
        for p in [
            "/api/v1/widgets",
            "/apis/apps/v2/deployments",
            "/api/v1/namespaces/a/configmaps/x/status",
            "/api/v1/pods/x",
        ] {
            let e = RequestInfo::parse(&Method::GET, p, &Query::default()).expect_err(p);
            assert_eq!(e.code, 404, "{p}");
        }
    }

    #[test]
    fn negotiates_table_then_json() {
        let a = Accept::negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")).expect("ok");
        assert_eq!(a, Accept::Table { v1beta1: false });
        assert_eq!(
            Accept::negotiate(Some("application/vnd.kubernetes.protobuf, */*")).expect("ok"),
            Accept::Json
        );
        assert!(Accept::negotiate(Some("application/vnd.kubernetes.protobuf")).is_err());
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1&fieldManager=kubectl",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
    }
}
