//! networking.k8s.io Ingress and IngressClass, discovery.k8s.io EndpointSlice.

use std::collections::HashSet;

use serde_json::Value;

use super::names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_valid_port_name, is_valid_port_num,
};
use super::pod::validate_protocol;
use super::{
    arr_of, child, duplicate, field_of, immutable, index, invalid, invalid_each, not_supported,
    required, str_of, too_long, too_many, Errs,
};

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
const MAX_ENDPOINT_ADDRESSES: usize = 100;
const MAX_CONTROLLER_LEN: usize = 250;

// ---- Ingress ----

/// Validate an Ingress: a default backend or rules, hosts, paths and
/// backends.
pub(super) fn validate_ingress(obj: &Value) -> Errs {
    let spec = field_of(obj, "spec");
    let mut errs = Errs::new();
    let rules = arr_of(spec, "rules");
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default_backend.is_none() {
        errs.push(invalid(
            "spec",
            Value::Array(vec![]),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        errs.extend(validate_backend(backend, "spec.defaultBackend"));
    }
    for (i, rule) in rules.iter().enumerate() {
        errs.extend(validate_rule(rule, &index("spec.rules", i)));
    }
    let class = str_of(spec, "ingressClassName");
    if !class.is_empty() {
        errs.extend(invalid_each(
            "spec.ingressClassName",
            class,
            is_dns1123_subdomain(class),
        ));
    }
    errs
}

fn validate_rule(rule: &Value, path: &str) -> Errs {
    let mut errs = validate_host(str_of(rule, "host"), &child(path, "host"));
    if let Some(http) = rule.get("http").filter(|h| !h.is_null()) {
        let http_path = child(path, "http");
        let paths_path = child(&http_path, "paths");
        let paths = arr_of(http, "paths");
        if paths.is_empty() {
            errs.push(required(&paths_path, ""));
        }
        for (i, p) in paths.iter().enumerate() {
            errs.extend(validate_http_path(p, &index(&paths_path, i)));
        }
    }
    errs
}

fn validate_host(host: &str, path: &str) -> Errs {
    if host.is_empty() {
        return Errs::new();
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return vec![invalid(path, host, "must be a DNS name, not an IP address")];
    }
    // A wildcard host is `*.` followed by a subdomain.
    let checked = host.strip_prefix("*.").unwrap_or(host);
    invalid_each(path, host, is_dns1123_subdomain(checked))
}

fn validate_http_path(p: &Value, path: &str) -> Errs {
    let path_type_path = child(path, "pathType");
    let Some(path_type) = p.get("pathType").and_then(Value::as_str) else {
        return vec![required(&path_type_path, "pathType must be specified")];
    };
    let value = str_of(p, "path");
    let value_path = child(path, "path");
    let mut errs = match path_type {
        "Exact" | "Prefix" => validate_strict_path(value, &value_path),
        "ImplementationSpecific" if !value.is_empty() && !value.starts_with('/') => {
            vec![invalid(&value_path, value, "must be an absolute path")]
        }
        "ImplementationSpecific" => Errs::new(),
        other => vec![not_supported(&path_type_path, other, PATH_TYPES)],
    };
    errs.extend(validate_backend(
        field_of(p, "backend"),
        &child(path, "backend"),
    ));
    errs
}

fn validate_strict_path(value: &str, path: &str) -> Errs {
    let mut errs = Errs::new();
    if !value.starts_with('/') {
        errs.push(invalid(path, value, "must be an absolute path"));
    }
    for seq in INVALID_PATH_SEQUENCES.iter().filter(|s| value.contains(*s)) {
        errs.push(invalid(path, value, format!("must not contain '{seq}'")));
    }
    for suffix in INVALID_PATH_SUFFIXES.iter().filter(|s| value.ends_with(*s)) {
        errs.push(invalid(path, value, format!("cannot end with '{suffix}'")));
    }
    errs
}

/// A backend names either a Service (by name and port) or a resource.
fn validate_backend(backend: &Value, path: &str) -> Errs {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|r| !r.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => vec![invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )],
        (None, Some(r)) => validate_resource_backend(r, &child(path, "resource")),
        (Some(s), None) => validate_service_backend(s, path),
        (None, None) => vec![invalid(path, "", "resource or service backend is required")],
    }
}

fn validate_resource_backend(r: &Value, path: &str) -> Errs {
    ["kind", "name"]
        .iter()
        .filter(|f| str_of(r, f).is_empty())
        .map(|f| required(&child(path, f), ""))
        .collect()
}

fn validate_service_backend(service: &Value, path: &str) -> Errs {
    let name = str_of(service, "name");
    let name_path = child(path, "service.name");
    let mut errs = if name.is_empty() {
        vec![required(&name_path, "")]
    } else {
        invalid_each(&name_path, name, is_dns1035_label(name))
    };
    let port = field_of(service, "port");
    let port_name = str_of(port, "name");
    let number = port.get("number").and_then(Value::as_i64).unwrap_or(0);
    match (port_name.is_empty(), number) {
        (false, n) if n != 0 => {
            errs.push(invalid(path, "", "cannot set both port name & port number"))
        }
        (false, _) => errs.extend(invalid_each(
            &child(path, "service.port.name"),
            port_name,
            is_valid_port_name(port_name),
        )),
        (true, 0) => errs.push(required(path, "port name or number is required")),
        (true, n) => errs.extend(
            is_valid_port_num(n)
                .into_iter()
                .map(|m| invalid(&child(path, "service.port.number"), n, m)),
        ),
    }
    errs
}

// ---- IngressClass ----

/// An IngressClass names its controller as a domain-prefixed path.
pub(super) fn validate_ingress_class(obj: &Value) -> Errs {
    let controller = str_of(field_of(obj, "spec"), "controller");
    let path = "spec.controller";
    if controller.is_empty() {
        return vec![required(path, "")];
    }
    let mut errs = Errs::new();
    if controller.len() > MAX_CONTROLLER_LEN {
        errs.push(too_long(path, MAX_CONTROLLER_LEN));
    }
    match controller.split_once('/') {
        Some((domain, rest)) if !rest.is_empty() => {
            errs.extend(invalid_each(path, domain, is_dns1123_subdomain(domain)));
        }
        _ => errs.push(invalid(
            path,
            controller,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
    errs
}

/// An IngressClass's controller is fixed.
pub(super) fn validate_ingress_class_update(old: &Value, new: &Value) -> Errs {
    let get = |v: &Value| field_of(field_of(v, "spec"), "controller").clone();
    immutable(&get(new), &get(old), "spec.controller")
        .into_iter()
        .collect()
}

// ---- EndpointSlice ----

/// Validate an EndpointSlice: address type, addresses and ports.
pub(super) fn validate_endpoint_slice(obj: &Value) -> Errs {
    let address_type = str_of(obj, "addressType");
    let mut errs = match address_type {
        "" => vec![required("addressType", "")],
        t if !ADDRESS_TYPES.contains(&t) => vec![not_supported("addressType", t, ADDRESS_TYPES)],
        _ => Errs::new(),
    };
    for (i, ep) in arr_of(obj, "endpoints").iter().enumerate() {
        errs.extend(validate_slice_endpoint(
            ep,
            address_type,
            &index("endpoints", i),
        ));
    }
    errs.extend(validate_slice_ports(obj));
    errs
}

fn validate_slice_endpoint(ep: &Value, address_type: &str, path: &str) -> Errs {
    let addresses = arr_of(ep, "addresses");
    let addresses_path = child(path, "addresses");
    if addresses.is_empty() {
        return vec![required(&addresses_path, "must contain at least 1 address")];
    }
    if addresses.len() > MAX_ENDPOINT_ADDRESSES {
        return vec![too_many(
            &addresses_path,
            addresses.len(),
            MAX_ENDPOINT_ADDRESSES,
        )];
    }
    let mut errs = Errs::new();
    for (i, addr) in addresses.iter().enumerate() {
        let addr = addr.as_str().unwrap_or("");
        if let Some(msg) = address_error(addr, address_type) {
            errs.push(invalid(&index(&addresses_path, i), addr, msg));
        }
    }
    errs
}

fn address_error(addr: &str, address_type: &str) -> Option<String> {
    let ip = addr.parse::<std::net::IpAddr>().ok();
    match address_type {
        "IPv4" if !ip.is_some_and(|ip| ip.is_ipv4()) => {
            Some("must be a valid IPv4 address".to_string())
        }
        "IPv6" if !ip.is_some_and(|ip| ip.is_ipv6()) => {
            Some("must be a valid IPv6 address".to_string())
        }
        "FQDN" => is_dns1123_subdomain(addr).into_iter().next(),
        _ => None,
    }
}

fn validate_slice_ports(obj: &Value) -> Errs {
    let mut errs = Errs::new();
    let mut names = HashSet::new();
    for (i, port) in arr_of(obj, "ports").iter().enumerate() {
        let path = index("ports", i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            errs.extend(invalid_each(
                &child(&path, "name"),
                name,
                is_dns1123_label(name),
            ));
        }
        if !names.insert(name) {
            errs.push(duplicate(&child(&path, "name"), name));
        }
        errs.extend(validate_protocol(port, &path));
        if let Some(n) = port.get("port").and_then(Value::as_i64) {
            errs.extend(
                is_valid_port_num(n)
                    .into_iter()
                    .map(|m| invalid(&child(&path, "port"), n, m)),
            );
        }
    }
    errs
}

/// An EndpointSlice's address type is fixed.
pub(super) fn validate_endpoint_slice_update(old: &Value, new: &Value) -> Errs {
    immutable(
        field_of(new, "addressType"),
        field_of(old, "addressType"),
        "addressType",
    )
    .into_iter()
    .collect()
}
