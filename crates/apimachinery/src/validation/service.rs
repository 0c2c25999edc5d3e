//! Services.

use std::collections::HashSet;

use serde_json::Value;

use super::meta::validate_labels;
use super::names::{
    is_dns1123_label, is_dns1123_subdomain, is_valid_ip, is_valid_port_name, is_valid_port_num,
};
use super::pod::{validate_port_number, validate_protocol};
use super::{
    arr_of, child, duplicate, field_of, forbidden, index, invalid, invalid_each, not_supported,
    required, str_of, Errs,
};

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const SESSION_AFFINITIES: &[&str] = &["ClientIP", "None"];

/// A Service is headless when its cluster IP is `None`.
fn is_headless(spec: &Value) -> bool {
    str_of(spec, "clusterIP") == "None"
        || arr_of(spec, "clusterIPs").first().and_then(Value::as_str) == Some("None")
}

/// Validate a Service (after defaulting).
pub(super) fn validate_service(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    let ty = str_of(spec, "type");
    let mut errs = Errs::new();
    if arr_of(spec, "ports").is_empty() && !is_headless(spec) && ty != "ExternalName" {
        errs.push(required("spec.ports", ""));
    }
    errs.extend(validate_type(spec, ty));
    errs.extend(validate_ports(spec));
    errs.extend(validate_labels(spec.get("selector"), "spec.selector"));
    errs.extend(validate_session_affinity(spec));
    errs.extend(validate_cluster_ip(spec, ty));
    errs
}

fn validate_type(spec: &Value, ty: &str) -> Errs {
    match ty {
        "" => vec![required("spec.type", "")],
        "ExternalName" => validate_external_name(spec),
        "NodePort" | "LoadBalancer" if is_headless(spec) => {
            let msg = format!("may not be set to 'None' for {ty} services");
            vec![invalid("spec.clusterIPs[0]", "None", msg)]
        }
        "ClusterIP" => validate_no_node_ports(spec),
        t if !SERVICE_TYPES.contains(&t) => vec![not_supported("spec.type", t, SERVICE_TYPES)],
        _ => Errs::new(),
    }
}

fn validate_external_name(spec: &Value) -> Errs {
    let mut errs = Errs::new();
    let msg = "may not be set for ExternalName services";
    let set = |f: &str| {
        spec.get(f)
            .is_some_and(|v| !v.is_null() && v != "" && v != &Value::Array(vec![]))
    };
    for f in ["clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if set(f) {
            errs.push(forbidden(&child("spec", f), msg));
        }
    }
    // A trailing dot marks the name fully qualified.
    let cname = str_of(spec, "externalName").trim_end_matches('.');
    if cname.is_empty() {
        errs.push(required("spec.externalName", ""));
    } else {
        errs.extend(invalid_each(
            "spec.externalName",
            cname,
            is_dns1123_subdomain(cname),
        ));
    }
    errs
}

fn validate_no_node_ports(spec: &Value) -> Errs {
    arr_of(spec, "ports")
        .iter()
        .enumerate()
        .filter(|(_, p)| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
        .map(|(i, _)| {
            forbidden(
                &child(&index("spec.ports", i), "nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            )
        })
        .collect()
}

fn validate_ports(spec: &Value) -> Errs {
    let ports = arr_of(spec, "ports");
    let mut names = HashSet::new();
    let mut errs = Errs::new();
    for (i, port) in ports.iter().enumerate() {
        let path = index("spec.ports", i);
        errs.extend(validate_port_name(port, &path, ports.len() > 1, &mut names));
        errs.extend(validate_port_number(port, "port", &path, false));
        if port.get("port").and_then(Value::as_i64).unwrap_or(0) == 0 {
            errs.push(invalid(
                &child(&path, "port"),
                0,
                "must be between 1 and 65535, inclusive",
            ));
        }
        errs.extend(validate_port_number(port, "nodePort", &path, false));
        errs.extend(validate_protocol(port, &path));
        errs.extend(validate_target_port(
            field_of(port, "targetPort"),
            &child(&path, "targetPort"),
        ));
    }
    errs
}

fn validate_port_name<'a>(
    port: &'a Value,
    path: &str,
    require: bool,
    seen: &mut HashSet<&'a str>,
) -> Errs {
    let name = str_of(port, "name");
    let name_path = child(path, "name");
    if name.is_empty() {
        return if require {
            vec![required(&name_path, "")]
        } else {
            Errs::new()
        };
    }
    let mut errs = invalid_each(&name_path, name, is_dns1123_label(name));
    if !seen.insert(name) {
        errs.push(duplicate(&name_path, name));
    }
    errs
}

/// `targetPort` is a port number or a named container port.
fn validate_target_port(target: &Value, path: &str) -> Errs {
    match target {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            is_valid_port_num(n)
                .into_iter()
                .map(|m| invalid(path, n, m))
                .collect()
        }
        Value::String(s) => invalid_each(path, s, is_valid_port_name(s)),
        _ => Errs::new(),
    }
}

fn validate_session_affinity(spec: &Value) -> Errs {
    match str_of(spec, "sessionAffinity") {
        "" => vec![required("spec.sessionAffinity", "")],
        a if !SESSION_AFFINITIES.contains(&a) => {
            vec![not_supported("spec.sessionAffinity", a, SESSION_AFFINITIES)]
        }
        _ => Errs::new(),
    }
}

/// `clusterIP` is empty (to be allocated), `None`, or an IP address.
fn validate_cluster_ip(spec: &Value, ty: &str) -> Errs {
    let ip = str_of(spec, "clusterIP");
    if ty == "ExternalName" || ip.is_empty() || ip == "None" {
        return Errs::new();
    }
    invalid_each("spec.clusterIP", ip, is_valid_ip(ip))
}

/// A Service keeps its cluster IP. An empty new value means the client left
/// it out; the API server copies the allocated one over.
pub(super) fn validate_service_update(old: &Value, new: &Value) -> Errs {
    let (old_spec, new_spec) = (field_of(old, "spec"), field_of(new, "spec"));
    let external = |s: &Value| str_of(s, "type") == "ExternalName";
    if external(old_spec) || external(new_spec) {
        return Errs::new();
    }
    let (old_ip, new_ip) = (str_of(old_spec, "clusterIP"), str_of(new_spec, "clusterIP"));
    if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip {
        return vec![invalid(
            "spec.clusterIPs[0]",
            new_ip,
            "may not change once set",
        )];
    }
    Errs::new()
}
