//! `admissionregistration.k8s.io/v1` ValidatingWebhookConfiguration and
//! MutatingWebhookConfiguration: defaults and validation as Kubernetes'
//! `admissionregistration/v1` defaults and `validation.go` apply them, with
//! the same field paths and words (`webhooks[0].name: Invalid value: "x":
//! should be a domain with at least three segments separated by dots`).
//!
//! skiff speaks only `admission.k8s.io/v1` to webhooks, so where Kubernetes
//! accepts `v1beta1` in `admissionReviewVersions`, skiff requires `v1`.
//! `matchConditions` (CEL) are not evaluated, so they are refused rather
//! than silently ignored.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::meta::validate_label_selector;
use super::names::{is_dns1035_label, is_dns1123_subdomain, is_valid_port_num};
use super::{
    arr_of, child, duplicate, field_of, forbidden, index, invalid, not_supported, required, str_of,
    Errs,
};

const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const FAILURE_POLICIES: &[&str] = &["Fail", "Ignore"];
const MATCH_POLICIES: &[&str] = &["Equivalent", "Exact"];
const SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
const REINVOCATION: &[&str] = &["IfNeeded", "Never"];
/// The AdmissionReview versions skiff sends.
const REVIEW_VERSIONS: &[&str] = &["v1"];

fn obj_mut<'a>(m: &'a mut Map<String, Value>, k: &str) -> Option<&'a mut Map<String, Value>> {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.to_string(), json!({}));
    }
    m.get_mut(k).and_then(Value::as_object_mut)
}

fn set_default(m: &mut Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.to_string(), v);
    }
}

fn default_webhooks(obj: &mut Value, mutating: bool) {
    let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for hook in hooks.iter_mut().filter_map(Value::as_object_mut) {
        set_default(hook, "failurePolicy", json!("Fail"));
        set_default(hook, "matchPolicy", json!("Equivalent"));
        obj_mut(hook, "namespaceSelector");
        obj_mut(hook, "objectSelector");
        set_default(hook, "timeoutSeconds", json!(10));
        if mutating {
            set_default(hook, "reinvocationPolicy", json!("Never"));
        }
        if let Some(rules) = hook.get_mut("rules").and_then(Value::as_array_mut) {
            for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                set_default(rule, "scope", json!("*"));
            }
        }
        if let Some(service) = hook
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            set_default(service, "port", json!(443));
        }
    }
}

pub(super) fn default_validating(obj: &mut Value) {
    default_webhooks(obj, false);
}

pub(super) fn default_mutating(obj: &mut Value) {
    default_webhooks(obj, true);
}

pub(super) fn validate_validating(obj: &Value) -> Errs {
    validate_configuration(obj, false)
}

pub(super) fn validate_mutating(obj: &Value) -> Errs {
    validate_configuration(obj, true)
}

fn validate_configuration(obj: &Value, mutating: bool) -> Errs {
    let mut errs = Errs::new();
    let mut names = HashSet::new();
    for (i, hook) in arr_of(obj, "webhooks").iter().enumerate() {
        let path = index("webhooks", i);
        let name = str_of(hook, "name");
        if !names.insert(name) {
            errs.push(duplicate(&child(&path, "name"), name));
        }
        errs.extend(validate_webhook(hook, &path, mutating));
        errs.extend(validate_review_versions(
            arr_of(hook, "admissionReviewVersions"),
            &child(&path, "admissionReviewVersions"),
        ));
    }
    errs
}

/// Kubernetes' `IsFullyQualifiedName`.
fn fully_qualified_name(name: &str, path: &str) -> Errs {
    if name.is_empty() {
        return vec![required(path, "")];
    }
    let msgs = is_dns1123_subdomain(name);
    if !msgs.is_empty() {
        return vec![invalid(path, name, msgs.join(","))];
    }
    if name.split('.').count() < 3 {
        return vec![invalid(
            path,
            name,
            "should be a domain with at least three segments separated by dots",
        )];
    }
    Errs::new()
}

fn one_of(hook: &Value, key: &str, path: &str, valid: &[&str]) -> Option<super::FieldError> {
    let v = hook.get(key)?.as_str()?;
    (!valid.contains(&v)).then(|| not_supported(&child(path, key), v, valid))
}

fn validate_webhook(hook: &Value, path: &str, mutating: bool) -> Errs {
    let mut errs = fully_qualified_name(str_of(hook, "name"), &child(path, "name"));
    for (i, rule) in arr_of(hook, "rules").iter().enumerate() {
        errs.extend(validate_rule(rule, &index(&child(path, "rules"), i)));
    }
    errs.extend(one_of(hook, "failurePolicy", path, FAILURE_POLICIES));
    errs.extend(one_of(hook, "matchPolicy", path, MATCH_POLICIES));
    if mutating {
        errs.extend(one_of(hook, "reinvocationPolicy", path, REINVOCATION));
    }
    for sel in ["namespaceSelector", "objectSelector"] {
        if let Some(s) = hook.get(sel).filter(|s| s.is_object()) {
            errs.extend(validate_label_selector(s, &child(path, sel)));
        }
    }
    match hook.get("sideEffects").and_then(Value::as_str) {
        None | Some("") => errs.push(required(
            &child(path, "sideEffects"),
            &format!("must specify one of {}", SIDE_EFFECTS.join(", ")),
        )),
        Some(_) => errs.extend(one_of(hook, "sideEffects", path, SIDE_EFFECTS)),
    }
    if let Some(t) = hook.get("timeoutSeconds").and_then(Value::as_i64) {
        if !(1..=30).contains(&t) {
            errs.push(invalid(
                &child(path, "timeoutSeconds"),
                t,
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
    }
    if !arr_of(hook, "matchConditions").is_empty() {
        errs.push(forbidden(
            &child(path, "matchConditions"),
            "match conditions (CEL) are not supported by this server",
        ));
    }
    errs.extend(validate_client_config(
        field_of(hook, "clientConfig"),
        &child(path, "clientConfig"),
    ));
    errs
}

fn validate_client_config(cc: &Value, path: &str) -> Errs {
    let url = cc.get("url").and_then(Value::as_str);
    let service = cc.get("service").filter(|s| s.is_object());
    match (url, service) {
        (Some(u), None) => validate_url(u, &child(path, "url")),
        (None, Some(s)) => validate_service(s, &child(path, "service")),
        _ => vec![required(path, "exactly one of url or service is required")],
    }
}

/// Kubernetes' `ValidateWebhookURL` with https required.
fn validate_url(url: &str, path: &str) -> Errs {
    const FORM: &str = "; desired format: https://host[/path]";
    let mut errs = Errs::new();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if scheme != "https" {
        errs.push(invalid(
            path,
            scheme,
            format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = rest.split('/').next().unwrap_or("");
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        errs.push(invalid(path, host, format!("host must be specified{FORM}")));
    }
    if let Some(u) = user {
        errs.push(invalid(
            path,
            u,
            "user information is not permitted in the URL",
        ));
    }
    if !fragment.is_empty() {
        errs.push(invalid(
            path,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if !query.is_empty() {
        errs.push(invalid(
            path,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
    errs
}

/// Kubernetes' `ValidateWebhookService`.
fn validate_service(s: &Value, path: &str) -> Errs {
    let mut errs = Errs::new();
    if str_of(s, "name").is_empty() {
        errs.push(required(&child(path, "name"), "service name is required"));
    }
    if str_of(s, "namespace").is_empty() {
        errs.push(required(
            &child(path, "namespace"),
            "service namespace is required",
        ));
    }
    let port = s.get("port").and_then(Value::as_i64).unwrap_or(443);
    let msgs = is_valid_port_num(port);
    if !msgs.is_empty() {
        errs.push(invalid(
            &child(path, "port"),
            port,
            format!("port is not valid: {}", msgs.join(", ")),
        ));
    }
    let p = str_of(s, "path");
    if p.is_empty() || p == "/" {
        return errs;
    }
    let ppath = child(path, "path");
    if p == "//" {
        errs.push(invalid(&ppath, p, "segment[0] may not be empty"));
        return errs;
    }
    if !p.starts_with('/') {
        errs.push(invalid(&ppath, p, "must start with a '/'"));
    }
    let trimmed = p.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    for (i, seg) in trimmed.split('/').enumerate() {
        if seg.is_empty() {
            errs.push(invalid(&ppath, p, format!("segment[{i}] may not be empty")));
            continue;
        }
        for m in is_dns1123_subdomain(seg) {
            errs.push(invalid(&ppath, p, format!("segment[{i}]: {m}")));
        }
    }
    errs
}

fn has_wildcard(list: &[Value]) -> bool {
    list.iter().any(|v| v.as_str() == Some("*"))
}

/// Kubernetes' `validateRuleWithOperations` (subresources allowed).
fn validate_rule(rule: &Value, path: &str) -> Errs {
    let mut errs = Errs::new();
    let ops = arr_of(rule, "operations");
    let ops_path = child(path, "operations");
    if ops.is_empty() {
        errs.push(required(&ops_path, ""));
    }
    if ops.len() > 1 && has_wildcard(ops) {
        errs.push(invalid(
            &ops_path,
            Value::Array(ops.to_vec()),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        let op = op.as_str().unwrap_or("");
        if !OPERATIONS.contains(&op) {
            errs.push(not_supported(&index(&ops_path, i), op, OPERATIONS));
        }
    }
    let groups = arr_of(rule, "apiGroups");
    if groups.is_empty() {
        errs.push(required(&child(path, "apiGroups"), ""));
    }
    if groups.len() > 1 && has_wildcard(groups) {
        errs.push(invalid(
            &child(path, "apiGroups"),
            Value::Array(groups.to_vec()),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = arr_of(rule, "apiVersions");
    let versions_path = child(path, "apiVersions");
    if versions.is_empty() {
        errs.push(required(&versions_path, ""));
    }
    if versions.len() > 1 && has_wildcard(versions) {
        errs.push(invalid(
            &versions_path,
            Value::Array(versions.to_vec()),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.as_str().unwrap_or("").is_empty() {
            errs.push(required(&index(&versions_path, i), ""));
        }
    }
    errs.extend(validate_resources(
        arr_of(rule, "resources"),
        &child(path, "resources"),
    ));
    if let Some(scope) = rule.get("scope").and_then(Value::as_str) {
        if !SCOPES.contains(&scope) {
            errs.push(not_supported(&child(path, "scope"), scope, SCOPES));
        }
    }
    errs
}

/// Kubernetes' `validateResources`: `resource[/subresource]`, with `*`
/// and `*/*` standing alone.
fn validate_resources(resources: &[Value], path: &str) -> Errs {
    let mut errs = Errs::new();
    if resources.is_empty() {
        errs.push(required(path, ""));
    }
    let mut with_sub: HashSet<&str> = HashSet::new();
    let mut without_sub: HashSet<&str> = HashSet::new();
    for (i, r) in resources.iter().enumerate() {
        let r = r.as_str().unwrap_or("");
        let at = index(path, i);
        if r.is_empty() {
            errs.push(required(&at, ""));
            continue;
        }
        if r == "*/*" && resources.len() > 1 {
            errs.push(invalid(
                &at,
                r,
                "if '*/*' is present, must not specify other resources",
            ));
        }
        if r == "*" && resources.len() > 1 {
            errs.push(invalid(
                &at,
                r,
                "if '*' is present, must not specify other resources without subresources",
            ));
        }
        match r.split_once('/') {
            Some((res, _)) => {
                if without_sub.contains(res) {
                    errs.push(invalid(
                        &at,
                        r,
                        format!("if '{res}' is present, must not specify {r}"),
                    ));
                }
                with_sub.insert(res);
            }
            None => {
                without_sub.insert(r);
            }
        }
    }
    errs
}

/// Kubernetes' `validateAdmissionReviewVersions`, accepting only what skiff
/// sends (`v1`).
fn validate_review_versions(versions: &[Value], path: &str) -> Errs {
    let mut errs = Errs::new();
    if versions.is_empty() {
        errs.push(required(
            path,
            &format!("must specify one of {}", REVIEW_VERSIONS.join(", ")),
        ));
        return errs;
    }
    let mut seen = HashSet::new();
    let mut accepted = false;
    for (i, v) in versions.iter().enumerate() {
        let v = v.as_str().unwrap_or("");
        if !seen.insert(v) {
            errs.push(invalid(&index(path, i), v, "duplicate version"));
            continue;
        }
        for m in is_dns1035_label(v) {
            errs.push(invalid(&index(path, i), v, m));
        }
        accepted |= REVIEW_VERSIONS.contains(&v);
    }
    if !accepted {
        errs.push(invalid(
            path,
            Value::Array(versions.to_vec()),
            format!(
                "must include at least one of {}",
                REVIEW_VERSIONS.join(", ")
            ),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Value {
        json!({
            "name": "deny.example.com",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://127.0.0.1:8443/validate"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
        })
    }

    fn fields(errs: &Errs) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_good_configuration_passes_and_is_defaulted() {
        let mut c = json!({"webhooks": [hook()]});
        default_mutating(&mut c);
        let h = &c["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["rules"][0]["scope"], "*");
        assert!(
            validate_mutating(&c).is_empty(),
            "{:?}",
            validate_mutating(&c)
        );
    }

    #[test]
    fn errors_read_as_kubernetes_writes_them() {
        let mut h = hook();
        h["name"] = json!("deny");
        h.as_object_mut().map(|o| o.remove("sideEffects"));
        h["admissionReviewVersions"] = json!(["v1beta1"]);
        h["clientConfig"] = json!({"url": "http://x/y"});
        h["failurePolicy"] = json!("Maybe");
        h["timeoutSeconds"] = json!(31);
        let errs = fields(&validate_validating(&json!({"webhooks": [h]})));
        let want = [
            "webhooks[0].name: Invalid value: \"deny\": should be a domain with at least three segments separated by dots",
            "webhooks[0].failurePolicy: Unsupported value: \"Maybe\": supported values: \"Fail\", \"Ignore\"",
            "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
            "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
            "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
            "webhooks[0].admissionReviewVersions: Invalid value: [\"v1beta1\"]: must include at least one of v1",
        ];
        assert_eq!(errs, want);
    }

    #[test]
    fn client_config_is_url_or_service() {
        let mut h = hook();
        h["clientConfig"] =
            json!({"url": "https://a/b", "service": {"name": "s", "namespace": "n"}});
        assert_eq!(
            fields(&validate_validating(&json!({"webhooks": [h.clone()]}))),
            ["webhooks[0].clientConfig: Required value: exactly one of url or service is required"]
        );
        h["clientConfig"] =
            json!({"service": {"name": "", "namespace": "n", "port": 70000, "path": "x"}});
        assert_eq!(
            fields(&validate_validating(&json!({"webhooks": [h]}))),
            [
                "webhooks[0].clientConfig.service.name: Required value: service name is required",
                "webhooks[0].clientConfig.service.port: Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive",
                "webhooks[0].clientConfig.service.path: Invalid value: \"x\": must start with a '/'",
            ]
        );
    }

    #[test]
    fn rules_and_duplicates() {
        let mut h = hook();
        h["rules"] = json!([{"operations": ["*", "CREATE", "PATCH"], "apiGroups": [], "apiVersions": ["v1"], "resources": ["*/*", "pods"], "scope": "Everywhere"}]);
        let errs = fields(&validate_validating(&json!({"webhooks": [h, hook()]})));
        assert_eq!(
            errs,
            [
                "webhooks[0].rules[0].operations: Invalid value: [\"*\",\"CREATE\",\"PATCH\"]: if '*' is present, must not specify other operations",
                "webhooks[0].rules[0].operations[2]: Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\"",
                "webhooks[0].rules[0].apiGroups: Required value",
                "webhooks[0].rules[0].resources[0]: Invalid value: \"*/*\": if '*/*' is present, must not specify other resources",
                "webhooks[0].rules[0].scope: Unsupported value: \"Everywhere\": supported values: \"*\", \"Cluster\", \"Namespaced\"",
                "webhooks[1].name: Duplicate value: \"deny.example.com\"",
            ]
        );
    }
}
