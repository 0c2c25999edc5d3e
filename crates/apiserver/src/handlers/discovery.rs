//! Discovery: which groups, versions and resources the server has.
//!
//! kubectl ≥ 1.27 asks for aggregated discovery (one document for all of
//! `/api` or `/apis`, `apidiscovery.k8s.io` v2beta1 or v2) and falls back to
//! the legacy per-group-version documents; both are served from the one
//! resource table.

use http::StatusCode;
use serde_json::{json, Value};

use super::body::{self, Body};
use crate::resources::{self, Resource};

/// The aggregated discovery version the client asked for, if any.
pub fn aggregated_version(accept: Option<&str>) -> Option<&'static str> {
    for part in accept.unwrap_or("").split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=APIGroupDiscoveryList") && has("g=apidiscovery.k8s.io") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

fn subresource_entry(r: &Resource, sub: &str) -> Value {
    let (group, version, kind, verbs): (&str, &str, &str, &[&str]) = match sub {
        "status" => (r.group, r.version, r.kind, &["get", "patch", "update"]),
        "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        "binding" => ("", "v1", "Binding", &["create"]),
        "eviction" => ("policy", "v1", "Eviction", &["create"]),
        "log" => ("", "v1", "Pod", &["get"]),
        "exec" => ("", "v1", "PodExecOptions", &["create", "get"]),
        "finalize" => ("", "v1", "Namespace", &["update"]),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
        _ => (r.group, r.version, r.kind, &["get"]),
    };
    json!({"subresource": sub, "responseKind": {"group": group, "version": version, "kind": kind}, "verbs": verbs})
}

fn aggregated_resource(r: &Resource) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        v["subresources"] = r
            .subresources
            .iter()
            .map(|s| subresource_entry(r, s))
            .collect();
    }
    v
}

/// Aggregated discovery for `/api` (core) or `/apis` (named groups).
pub fn aggregated(core: bool, version: &str) -> Response {
    let items: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let res: Vec<Value> = resources::all()
                        .iter()
                        .filter(|r| r.group == g && r.version == *v)
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": v, "resources": res, "freshness": "Current"})
                })
                .collect();
            let mut item = json!({"metadata": {"creationTimestamp": null}, "versions": versions});
            if !core {
                item["metadata"]["name"] = json!(g);
            }
            item
        })
        .collect();
    let doc = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    body::raw(
        StatusCode::OK,
        &ct,
        serde_json::to_vec(&doc).unwrap_or_default(),
    )
}

type Response = http::Response<Body>;

pub fn api_versions() -> Response {
    body::json(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }),
    )
}

fn group_entry(g: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
}

pub fn api_group_list() -> Response {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(g, &vs))
        .collect();
    body::json(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

pub fn api_group(group: &str) -> Option<Response> {
    let (g, vs) = resources::groups()
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())?;
    let mut v = group_entry(g, &vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(body::json(StatusCode::OK, &v))
}

/// Legacy `APIResourceList` for one group/version.
pub fn resource_list(group: &str, version: &str) -> Option<Response> {
    let rs: Vec<&Resource> = resources::all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in rs {
        let mut v = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced(),
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            v["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        out.push(v);
        for s in r.subresources {
            let e = subresource_entry(r, s);
            let mut sv = json!({
                "name": format!("{}/{}", r.plural, s),
                "singularName": "",
                "namespaced": r.namespaced(),
                "kind": e["responseKind"]["kind"],
                "verbs": e["verbs"],
            });
            if !e["responseKind"]["group"].as_str().unwrap_or("").is_empty() {
                sv["group"] = e["responseKind"]["group"].clone();
                sv["version"] = e["responseKind"]["version"].clone();
            }
            out.push(sv);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(body::json(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    ))
}
