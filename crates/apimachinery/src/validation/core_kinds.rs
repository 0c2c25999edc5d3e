//! Core kinds with small rule sets: Event, ConfigMap, Secret, Endpoints.

use serde_json::{Map, Value};

use super::names::{is_config_map_key, is_dns1123_label, is_dns1123_subdomain, is_valid_ip};
use super::pod::{validate_port_number, validate_protocol};
use super::{
    arr_of, child, duplicate, field_of, forbidden, immutable, index, invalid, invalid_each, key,
    obj_of, required, str_of, too_long, Errs,
};

/// Kubernetes' `MaxSecretSize`, also the ConfigMap limit.
const MAX_DATA_SIZE: usize = 1024 * 1024;

/// Required data keys per Secret type.
const SECRET_TYPE_KEYS: &[(&str, &[&str])] = &[
    ("kubernetes.io/dockercfg", &[".dockercfg"]),
    ("kubernetes.io/dockerconfigjson", &[".dockerconfigjson"]),
    ("kubernetes.io/ssh-auth", &["ssh-privatekey"]),
    ("kubernetes.io/tls", &["tls.crt", "tls.key"]),
];

// ---- Event ----

/// An Event's namespace must match the namespace of what it is about
/// (events about cluster-scoped objects live in `default`).
pub(super) fn validate_event(obj: &Value) -> Errs {
    let ns = str_of(field_of(obj, "metadata"), "namespace");
    let involved_ns = str_of(field_of(obj, "involvedObject"), "namespace");
    let has_event_time = obj.get("eventTime").is_some_and(|t| !t.is_null());
    let mut errs = Errs::new();
    let mismatch = if involved_ns.is_empty() {
        !ns.is_empty() && ns != "default"
    } else {
        ns != involved_ns
    };
    if !has_event_time && mismatch {
        errs.push(invalid(
            "involvedObject.namespace",
            involved_ns,
            "does not match event.namespace",
        ));
    }
    if has_event_time {
        for field in [
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
        ] {
            if str_of(obj, field).is_empty() {
                errs.push(required(field, ""));
            }
        }
    }
    errs
}

// ---- ConfigMap and Secret ----

/// Keys of one data map: valid, and not repeated in `other` (ConfigMap's
/// `data` and `binaryData` share one key space).
fn validate_data_keys(
    data: Option<&Map<String, Value>>,
    path: &str,
    other: Option<(&Map<String, Value>, &str)>,
) -> Errs {
    let mut errs = Errs::new();
    for k in data.into_iter().flat_map(|d| d.keys()) {
        let field = key(path, k);
        errs.extend(invalid_each(&field, k, is_config_map_key(k)));
        if let Some((_, other_name)) = other.filter(|(o, _)| o.contains_key(k)) {
            errs.push(invalid(
                &field,
                k.as_str(),
                format!("duplicate of key present in {other_name}"),
            ));
        }
    }
    errs
}

fn data_size(data: Option<&Map<String, Value>>, decode_base64: bool) -> usize {
    let len = |v: &Value| v.as_str().map_or(0, str::len);
    let size = |v: &Value| {
        if decode_base64 {
            len(v) / 4 * 3
        } else {
            len(v)
        }
    };
    data.into_iter().flat_map(|d| d.values()).map(size).sum()
}

/// Validate a ConfigMap's keys and total size.
pub(super) fn validate_config_map(obj: &Value) -> Errs {
    let data = obj_of(obj, "data");
    let binary = obj_of(obj, "binaryData");
    let mut errs = validate_data_keys(data, "data", binary.map(|b| (b, "binaryData")));
    errs.extend(validate_data_keys(
        binary,
        "binaryData",
        data.map(|d| (d, "data")),
    ));
    if data_size(data, false) + data_size(binary, true) > MAX_DATA_SIZE {
        errs.push(too_long("data", MAX_DATA_SIZE));
    }
    errs
}

/// Validate a Secret's keys, size and the keys its type requires.
pub(super) fn validate_secret(obj: &Value) -> Errs {
    let data = obj_of(obj, "data");
    let mut errs = validate_data_keys(data, "data", None);
    if data_size(data, true) > MAX_DATA_SIZE {
        errs.push(too_long("data", MAX_DATA_SIZE));
    }
    errs.extend(validate_secret_type(obj, data));
    errs
}

fn validate_secret_type(obj: &Value, data: Option<&Map<String, Value>>) -> Errs {
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let missing = |keys: &[&str]| -> Errs {
        keys.iter()
            .filter(|k| !has(k))
            .map(|k| required(&key("data", k), ""))
            .collect()
    };
    match str_of(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let annotations = field_of(field_of(obj, "metadata"), "annotations");
            if str_of(annotations, "kubernetes.io/service-account.name").is_empty() {
                return vec![required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                )];
            }
            Errs::new()
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            missing(&["username", "password"])
        }
        t => SECRET_TYPE_KEYS
            .iter()
            .find(|(ty, _)| *ty == t)
            .map_or_else(Errs::new, |(_, keys)| missing(keys)),
    }
}

/// Once `immutable: true`, the flag and the data of a ConfigMap or Secret
/// are fixed.
fn validate_immutable_data(old: &Value, new: &Value, data_fields: &[&str]) -> Errs {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Errs::new();
    }
    let msg = "field is immutable when `immutable` is set";
    let mut errs = Errs::new();
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(forbidden("immutable", msg));
    }
    for f in data_fields {
        if field_of(old, f) != field_of(new, f) {
            errs.push(forbidden(f, msg));
        }
    }
    errs
}

/// ConfigMap updates respect `immutable`.
pub(super) fn validate_config_map_update(old: &Value, new: &Value) -> Errs {
    validate_immutable_data(old, new, &["data", "binaryData"])
}

/// Secret updates respect `immutable` and never change `type`.
pub(super) fn validate_secret_update(old: &Value, new: &Value) -> Errs {
    let mut errs: Errs = immutable(field_of(new, "type"), field_of(old, "type"), "type")
        .into_iter()
        .collect();
    errs.extend(validate_immutable_data(old, new, &["data"]));
    errs
}

// ---- Endpoints ----

/// Validate Endpoints: addresses are IPs, ports valid and named when there
/// is more than one.
pub(super) fn validate_endpoints(obj: &Value) -> Errs {
    let mut errs = Errs::new();
    for (i, subset) in arr_of(obj, "subsets").iter().enumerate() {
        let path = index("subsets", i);
        for list in ["addresses", "notReadyAddresses"] {
            errs.extend(validate_endpoint_addresses(subset, list, &path));
        }
        errs.extend(validate_endpoint_ports(subset, &child(&path, "ports")));
    }
    errs
}

fn validate_endpoint_addresses(subset: &Value, list: &str, path: &str) -> Errs {
    let mut errs = Errs::new();
    for (i, addr) in arr_of(subset, list).iter().enumerate() {
        let p = index(&child(path, list), i);
        let ip = str_of(addr, "ip");
        errs.extend(invalid_each(&child(&p, "ip"), ip, is_valid_ip(ip)));
        let host = str_of(addr, "hostname");
        if !host.is_empty() {
            errs.extend(invalid_each(
                &child(&p, "hostname"),
                host,
                is_dns1123_label(host),
            ));
        }
        let node = str_of(addr, "nodeName");
        if !node.is_empty() {
            errs.extend(invalid_each(
                &child(&p, "nodeName"),
                node,
                is_dns1123_subdomain(node),
            ));
        }
    }
    errs
}

fn validate_endpoint_ports(subset: &Value, path: &str) -> Errs {
    let ports = arr_of(subset, "ports");
    let mut errs = Errs::new();
    let mut names = std::collections::HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        let name = str_of(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(required(&child(&p, "name"), ""));
        } else if !name.is_empty() {
            errs.extend(invalid_each(
                &child(&p, "name"),
                name,
                is_dns1123_label(name),
            ));
            if !names.insert(name) {
                errs.push(duplicate(&child(&p, "name"), name));
            }
        }
        errs.extend(validate_port_number(port, "port", &p, true));
        errs.extend(validate_protocol(port, &p));
    }
    errs
}
