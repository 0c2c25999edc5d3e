//! Kubernetes defaulting: the fields a real cluster fills in on create, so
//! that `kubectl get -o yaml` against skiff shows what it shows against
//! Kubernetes and validation sees complete objects.
//!
//! Only absent (or `null`) fields are filled; a value the client sent is
//! never replaced. Besides the scheme defaults this covers the few things
//! Kubernetes' create strategies add that users see: a Pod's `Pending`
//! phase and QoS class, a Namespace's finalizer, phase and name label, a
//! Secret's `stringData` folded into `data`, and a Job's generated selector.

use serde_json::{json, Map, Value};

use super::quantity::parse_quantity;

type Defaulter = fn(&mut Value);

/// Defaulting per `(group, kind)`; kinds not listed have no defaults.
const DEFAULTERS: &[(&str, &str, Defaulter)] = &[
    ("", "Pod", default_pod),
    ("", "Service", default_service),
    ("", "Secret", default_secret),
    ("", "Namespace", default_namespace),
    ("", "Node", default_node),
    ("", "Endpoints", default_endpoints),
    ("apps", "Deployment", default_deployment),
    ("apps", "ReplicaSet", default_replica_set),
    ("apps", "DaemonSet", default_daemon_set),
    ("apps", "StatefulSet", default_stateful_set),
    ("batch", "Job", default_job),
    ("discovery.k8s.io", "EndpointSlice", default_endpoint_slice),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        super::admissionregistration::default_validating,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        super::admissionregistration::default_mutating,
    ),
    ("rbac.authorization.k8s.io", "RoleBinding", default_binding),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        default_binding,
    ),
];

/// Apply Kubernetes' defaults for `group`/`kind` to `obj` in place.
///
/// For a Job the API server should set `metadata.uid` first: Kubernetes
/// derives the Job's selector and pod labels from it.
pub fn default_object(group: &str, kind: &str, obj: &mut Value) {
    if let Some((_, _, f)) = DEFAULTERS
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
    {
        f(obj);
    }
    let Some(Value::Object(initial)) = initial_status(group, kind) else {
        return;
    };
    // Merged field by field: the API server may already have reset `status`
    // to `{}`.
    if let Some(status) = obj.as_object_mut().and_then(|o| object_at(o, "status")) {
        for (k, v) in initial {
            set_default(status, &k, v);
        }
    }
}

/// The status Kubernetes' create strategies reset an object to; it shows in
/// `kubectl get -o yaml` before any controller has reported.
fn initial_status(group: &str, kind: &str) -> Option<Value> {
    let status = match (group, kind) {
        ("", "Service") => json!({"loadBalancer": {}}),
        ("apps", "Deployment") | ("batch", "Job") => json!({}),
        ("apps", "ReplicaSet") => json!({"replicas": 0}),
        ("apps", "StatefulSet") => json!({"replicas": 0, "availableReplicas": 0}),
        ("apps", "DaemonSet") => json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                                        "numberMisscheduled": 0, "numberReady": 0}),
        _ => return None,
    };
    Some(status)
}

// ---- helpers ----

/// Set `key` when it is absent or null.
fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.to_string(), value);
    }
}

/// The object at `key`, created empty when absent or null; `None` when the
/// field holds something other than an object (validation will say so).
fn object_at<'a>(obj: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    set_default(obj, key, json!({}));
    obj.get_mut(key)?.as_object_mut()
}

/// Each object in the array at `key`.
fn each_in<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn spec_of(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    object_at(obj.as_object_mut()?, "spec")
}

// ---- pods ----

fn default_pod(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else {
        return;
    };
    default_pod_spec(spec);
    for list in ["containers", "initContainers"] {
        each_in(spec, list).for_each(default_requests_from_limits);
    }
    set_default(spec, "enableServiceLinks", json!(true));
    if spec.get("priorityClassName").is_none() {
        set_default(spec, "priority", json!(0));
    }
    let qos = qos_class(spec);
    if let Some(status) = obj.as_object_mut().and_then(|o| object_at(o, "status")) {
        set_default(status, "phase", json!("Pending"));
        set_default(status, "qosClass", json!(qos));
    }
}

/// Defaults shared by Pods and the pod templates of workloads.
fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        each_in(spec, list).for_each(default_container);
    }
    each_in(spec, "volumes").for_each(default_volume);
}

fn default_pod_template(spec: &mut Map<String, Value>) {
    if let Some(pod_spec) = object_at(spec, "template").and_then(|t| object_at(t, "spec")) {
        default_pod_spec(pod_spec);
    }
}

fn default_container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let policy = image_pull_policy(image);
    set_default(c, "imagePullPolicy", json!(policy));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    for port in each_in(c, "ports") {
        set_default(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default_probe(p);
        }
    }
    for env in each_in(c, "env") {
        let field_ref = env
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut);
        if let Some(field_ref) = field_ref {
            set_default(field_ref, "apiVersion", json!("v1"));
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (an image
/// pinned by digest counts as tagged).
fn image_pull_policy(image: &str) -> &'static str {
    let (name, digest) = image
        .split_once('@')
        .map_or((image, None), |(n, d)| (n, Some(d)));
    let last = name.rsplit('/').next().unwrap_or(name);
    match (last.split_once(':').map(|(_, tag)| tag), digest) {
        (Some("latest"), _) => "Always",
        (Some(_), _) | (None, Some(_)) => "IfNotPresent",
        (None, None) => "Always",
    }
}

fn default_probe(p: &mut Map<String, Value>) {
    set_default(p, "timeoutSeconds", json!(1));
    set_default(p, "periodSeconds", json!(10));
    set_default(p, "successThreshold", json!(1));
    set_default(p, "failureThreshold", json!(3));
    if let Some(http) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(http, "path", json!("/"));
        set_default(http, "scheme", json!("HTTP"));
    }
}

/// Volume sources whose files get mode 0644 unless told otherwise.
const MODE_SOURCES: &[&str] = &["secret", "configMap", "downwardAPI", "projected"];

fn default_volume(vol: &mut Map<String, Value>) {
    let has_source = vol.keys().any(|k| k != "name");
    if !has_source {
        vol.insert("emptyDir".to_string(), json!({}));
    }
    for source in MODE_SOURCES {
        if let Some(s) = vol.get_mut(*source).and_then(Value::as_object_mut) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(host_path) = vol.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_default(host_path, "type", json!(""));
    }
}

/// A Pod (not a template) requests what it limits when it names no request.
fn default_requests_from_limits(c: &mut Map<String, Value>) {
    let Some(limits) = c
        .get("resources")
        .and_then(|r| r.get("limits"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let Some(requests) = object_at(c, "resources").and_then(|r| object_at(r, "requests")) else {
        return;
    };
    for (name, q) in limits {
        requests.entry(name).or_insert(q);
    }
}

/// Kubernetes' QoS class from CPU and memory requests and limits.
fn qos_class(spec: &Map<String, Value>) -> &'static str {
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        for res in ["cpu", "memory"] {
            let amount = |kind: &str| {
                let q = c.get("resources")?.get(kind)?.get(res)?;
                let text = q.as_str().map_or_else(|| q.to_string(), str::to_string);
                parse_quantity(&text).ok().filter(|v| *v > 0)
            };
            let (request, limit) = (amount("requests"), amount("limits"));
            any |= request.is_some() || limit.is_some();
            guaranteed &= limit.is_some() && request.is_none_or(|r| Some(r) == limit);
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

// ---- apps and batch ----

fn default_deployment(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = object_at(spec, "strategy") {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate")) {
            if let Some(rolling) = object_at(strategy, "rollingUpdate") {
                set_default(rolling, "maxUnavailable", json!("25%"));
                set_default(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    default_pod_template(spec);
}

fn default_replica_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    default_pod_template(spec);
}

fn default_daemon_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else {
        return;
    };
    set_default(spec, "revisionHistoryLimit", json!(10));
    if let Some(strategy) = object_at(spec, "updateStrategy") {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate")) {
            if let Some(rolling) = object_at(strategy, "rollingUpdate") {
                set_default(rolling, "maxUnavailable", json!(1));
                set_default(rolling, "maxSurge", json!(0));
            }
        }
    }
    default_pod_template(spec);
}

fn default_stateful_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = object_at(spec, "updateStrategy") {
        if strategy.get("type").is_none_or(Value::is_null) {
            strategy.insert("type".to_string(), json!("RollingUpdate"));
            set_default(strategy, "rollingUpdate", json!({}));
        }
        let rolling_type = strategy.get("type") == Some(&json!("RollingUpdate"));
        let rolling = strategy
            .get_mut("rollingUpdate")
            .and_then(Value::as_object_mut);
        if let Some(rolling) = rolling.filter(|_| rolling_type) {
            set_default(rolling, "partition", json!(0));
        }
    }
    if let Some(policy) = object_at(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default(policy, "whenDeleted", json!("Retain"));
        set_default(policy, "whenScaled", json!("Retain"));
    }
    default_pod_template(spec);
}

fn default_job(obj: &mut Value) {
    generate_job_selector(obj);
    let template_labels = obj.pointer("/spec/template/metadata/labels").cloned();
    if let Some(meta) = obj.as_object_mut().and_then(|o| object_at(o, "metadata")) {
        let empty = meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if let (true, Some(labels)) = (empty, template_labels) {
            meta.insert("labels".to_string(), labels);
        }
    }
    let Some(spec) = spec_of(obj) else {
        return;
    };
    if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
        spec.insert("completions".to_string(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let backoff = if spec.get("backoffLimitPerIndex").is_some() {
        i64::from(i32::MAX)
    } else {
        6
    };
    set_default(spec, "backoffLimit", json!(backoff));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let replacement = if spec.get("podFailurePolicy").is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    default_pod_template(spec);
}

/// Unless `manualSelector` is true, a Job selects its pods by its own uid,
/// and its pod template carries the uid and job name as labels.
fn generate_job_selector(obj: &mut Value) {
    let manual = obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = spec_of(obj).filter(|_| !manual && !uid.is_empty()) else {
        return;
    };
    let labels = object_at(spec, "template")
        .and_then(|t| object_at(t, "metadata"))
        .and_then(|m| object_at(m, "labels"));
    if let Some(labels) = labels {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            set_default(labels, k, json!(v));
        }
    }
    if let Some(match_labels) =
        object_at(spec, "selector").and_then(|s| object_at(s, "matchLabels"))
    {
        set_default(
            match_labels,
            "batch.kubernetes.io/controller-uid",
            json!(uid),
        );
    }
}

// ---- core ----

fn default_service(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if spec.get("sessionAffinity") == Some(&json!("ClientIP")) {
        set_default(
            spec,
            "sessionAffinityConfig",
            json!({"clientIP": {"timeoutSeconds": 10800}}),
        );
    }
    for port in each_in(spec, "ports") {
        set_default(port, "protocol", json!("TCP"));
        let unset = port
            .get("targetPort")
            .is_none_or(|t| t.is_null() || t == 0 || t == "");
        if let (true, Some(p)) = (unset, port.get("port").cloned()) {
            port.insert("targetPort".to_string(), p);
        }
    }
    if ty == "ExternalName" {
        return;
    }
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// `type: Opaque`, and `stringData` folded into base64 `data` as
/// Kubernetes does when it decodes a Secret.
fn default_secret(obj: &mut Value) {
    let Some(secret) = obj.as_object_mut() else {
        return;
    };
    set_default(secret, "type", json!("Opaque"));
    let Some(Value::Object(string_data)) = secret.remove("stringData") else {
        return;
    };
    if let Some(data) = object_at(secret, "data") {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or("");
            data.insert(k, json!(base64_encode(text.as_bytes())));
        }
    }
}

/// Standard base64 with padding (Secret `data` values).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn default_namespace(obj: &mut Value) {
    let Some(ns) = obj.as_object_mut() else {
        return;
    };
    let name = ns.get("metadata").and_then(|m| m.get("name")).cloned();
    if let (Some(name), Some(labels)) = (
        name,
        object_at(ns, "metadata").and_then(|m| object_at(m, "labels")),
    ) {
        labels.insert("kubernetes.io/metadata.name".to_string(), name);
    }
    if let Some(spec) = object_at(ns, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = object_at(ns, "status") {
        set_default(status, "phase", json!("Active"));
    }
}

/// A Node can allocate all of its capacity unless it says otherwise; its
/// `podCIDR` and `podCIDRs` say the same thing (Kubernetes' conversion
/// keeps them so: `podCIDRs` from a lone `podCIDR`, and `podCIDR` is always
/// the first of `podCIDRs`).
fn default_node(obj: &mut Value) {
    if let Some(spec) = spec_of(obj) {
        sync_pod_cidrs(spec);
    }
    let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(capacity) = status.get("capacity").cloned() {
        set_default(status, "allocatable", capacity);
    }
}

fn sync_pod_cidrs(spec: &mut Map<String, Value>) {
    let first = spec
        .get("podCIDRs")
        .and_then(Value::as_array)
        .and_then(|l| l.first())
        .cloned();
    match first {
        Some(first) => {
            spec.insert("podCIDR".to_string(), first);
        }
        None => {
            let single = spec
                .get("podCIDR")
                .filter(|c| c.as_str().is_some_and(|c| !c.is_empty()));
            if let Some(single) = single.cloned() {
                spec.insert("podCIDRs".to_string(), Value::Array(vec![single]));
            }
        }
    }
}

fn default_endpoints(obj: &mut Value) {
    let Some(e) = obj.as_object_mut() else {
        return;
    };
    for subset in each_in(e, "subsets") {
        for port in each_in(subset, "ports") {
            set_default(port, "protocol", json!("TCP"));
        }
    }
}

fn default_endpoint_slice(obj: &mut Value) {
    let Some(slice) = obj.as_object_mut() else {
        return;
    };
    for port in each_in(slice, "ports") {
        set_default(port, "name", json!(""));
        set_default(port, "protocol", json!("TCP"));
    }
}

/// `roleRef.apiGroup` and the API group of User and Group subjects.
fn default_binding(obj: &mut Value) {
    let Some(binding) = obj.as_object_mut() else {
        return;
    };
    if let Some(role_ref) = binding.get_mut("roleRef").and_then(Value::as_object_mut) {
        set_default(role_ref, "apiGroup", json!("rbac.authorization.k8s.io"));
    }
    for subject in each_in(binding, "subjects") {
        let is_service_account =
            subject.get("kind").and_then(Value::as_str) == Some("ServiceAccount");
        let empty = subject
            .get("apiGroup")
            .is_none_or(|g| g.is_null() || g == "");
        if empty && !is_service_account {
            subject.insert("apiGroup".to_string(), json!("rbac.authorization.k8s.io"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64_encode(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn pull_policy_follows_the_image_tag_like_kubernetes() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(image_pull_policy("localhost:5000/app"), "Always");
        assert_eq!(image_pull_policy("localhost:5000/app:v1"), "IfNotPresent");
        assert_eq!(image_pull_policy("app@sha256:abcd"), "IfNotPresent");
    }
}
