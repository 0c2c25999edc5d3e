//! Tests of the public validation API. Expected strings are what a
//! Kubernetes API server returns for the same request.

#![allow(clippy::unwrap_used)] // test inputs are literals built here

use serde_json::{json, Value};

use super::quantity::quantity_value;
use super::*;

fn msgs(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

/// Default then validate, as the API server does on create.
fn create(group: &str, kind: &str, mut obj: Value) -> Vec<String> {
    default_object(group, kind, &mut obj);
    msgs(&validate_create(group, kind, &obj))
}

fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
    default_object(group, kind, &mut obj);
    obj
}

fn pod(name: &str, containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"containers": containers}})
}

fn deployment(name: &str, selector: Value, template_labels: Value, containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"selector": selector,
                    "template": {"metadata": {"labels": template_labels},
                                 "spec": {"containers": containers}}}})
}

fn web_deployment() -> Value {
    deployment(
        "web",
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
        json!([{"name": "app", "image": "nginx"}]),
    )
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

// ---- names ----

#[test]
fn uppercase_and_underscore_names_fail_as_in_kubernetes() {
    let mut d = web_deployment();
    d["metadata"]["name"] = json!("Bad_Name");
    let errs = create("apps", "Deployment", d);
    assert_eq!(
        errs,
        vec![format!(
            "metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}"
        )]
    );
}

#[test]
fn names_longer_than_253_characters_are_too_long() {
    let long = "a".repeat(254);
    assert_eq!(
        is_dns1123_subdomain(&long),
        vec!["must be no more than 253 characters"]
    );
    assert!(is_dns1123_subdomain(&"a".repeat(253)).is_empty());
    let both = is_dns1123_subdomain(&format!("{}_", "a".repeat(253)));
    assert_eq!(
        both.len(),
        2,
        "length and syntax are both reported: {both:?}"
    );
}

#[test]
fn dns_label_messages_match_kubernetes() {
    assert_eq!(
        is_dns1123_label("My-Name"),
        vec!["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
    );
    assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
    assert_eq!(
        is_dns1123_label(&"a".repeat(64)),
        vec!["must be no more than 63 characters"]
    );
    assert!(is_dns1123_label("123-abc").is_empty());
    assert!(!is_dns1123_label("").is_empty());
    assert!(!is_dns1123_label("-a").is_empty());
}

#[test]
fn service_names_must_be_dns1035_labels() {
    let svc = json!({"metadata": {"name": "1web", "namespace": "default"},
                     "spec": {"ports": [{"port": 80}]}});
    assert_eq!(
        create("", "Service", svc),
        vec!["metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
    );
    assert!(is_dns1035_label("web-1").is_empty());
}

#[test]
fn namespace_names_may_not_contain_dots() {
    let ns = json!({"metadata": {"name": "team.a"}});
    assert_eq!(
        create("", "Namespace", ns),
        vec!["metadata.name: Invalid value: \"team.a\": must not contain dots"]
    );
}

#[test]
fn rbac_names_are_path_segments() {
    let role = |name: &str| json!({"metadata": {"name": name}, "rules": []});
    assert!(create(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        role("system:controller:Foo_Bar")
    )
    .is_empty());
    assert_eq!(
        create("rbac.authorization.k8s.io", "ClusterRole", role("a/b%c")),
        vec![
            "metadata.name: Invalid value: \"a/b%c\": may not contain '/'",
            "metadata.name: Invalid value: \"a/b%c\": may not contain '%'"
        ]
    );
    assert_eq!(is_valid_path_segment_name(".."), vec!["may not be '..'"]);
}

#[test]
fn generate_name_may_end_with_a_dash_and_name_is_then_optional() {
    let mut p = pod("", json!([{"name": "app", "image": "nginx"}]));
    p["metadata"] = json!({"generateName": "web-", "namespace": "default"});
    assert_eq!(
        create("", "Pod", p),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
}

#[test]
fn namespace_is_required_for_namespaced_and_forbidden_for_cluster_kinds() {
    let mut p = pod("web", json!([{"name": "app", "image": "nginx"}]));
    p["metadata"].as_object_mut().unwrap().remove("namespace");
    assert_eq!(
        create("", "Pod", p),
        vec!["metadata.namespace: Required value"]
    );
    let node = json!({"metadata": {"name": "n1", "namespace": "default"}});
    assert_eq!(
        create("", "Node", node),
        vec!["metadata.namespace: Forbidden: not allowed on this type"]
    );
}

#[test]
fn label_keys_and_values_are_checked_on_the_labels_map() {
    let mut p = pod("web", json!([{"name": "app", "image": "nginx"}]));
    p["metadata"]["labels"] = json!({"-bad": "ok", "good": "bad value"});
    assert_eq!(
        create("", "Pod", p),
        vec![
            "metadata.labels: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ]
    );
}

#[test]
fn qualified_names_accept_a_dns_prefix() {
    assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
    assert_eq!(
        is_qualified_name("/name"),
        vec!["prefix part must be non-empty"]
    );
    assert_eq!(is_qualified_name("a/b/c").len(), 1);
    assert!(is_qualified_name("Example.com/name")[0]
        .starts_with("prefix part a lowercase RFC 1123 subdomain"));
}

#[test]
fn annotations_over_256_kib_are_too_long() {
    let mut p = pod("web", json!([{"name": "app", "image": "nginx"}]));
    p["metadata"]["annotations"] = json!({"big": "x".repeat(256 * 1024)});
    assert_eq!(
        create("", "Pod", p),
        vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
}

// ---- message formats ----

#[test]
fn field_errors_print_like_kubernetes() {
    assert_eq!(
        required("spec.template.spec.containers", "").to_string(),
        "spec.template.spec.containers: Required value"
    );
    assert_eq!(
        not_supported("spec.foo", "x", &["a", "b"]).to_string(),
        "spec.foo: Unsupported value: \"x\": supported values: \"a\", \"b\""
    );
    assert_eq!(
        invalid("spec.replicas", -1, "must be greater than or equal to 0").to_string(),
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    assert_eq!(
        forbidden("spec", "nope").to_string(),
        "spec: Forbidden: nope"
    );
    assert_eq!(
        duplicate("a[1].name", "x").to_string(),
        "a[1].name: Duplicate value: \"x\""
    );
    assert_eq!(
        too_many("addresses", 101, 100).to_string(),
        "addresses: Too many: 101: must have at most 100 items"
    );
    assert_eq!(
        invalid("f", "quote\"d", "bad").to_string(),
        "f: Invalid value: \"quote\\\"d\": bad"
    );
}

#[test]
fn reasons_are_kubernetes_cause_types() {
    assert_eq!(required("a", "").reason(), "FieldValueRequired");
    assert_eq!(invalid("a", 1, "").reason(), "FieldValueInvalid");
    assert_eq!(
        not_supported("a", "x", &[]).reason(),
        "FieldValueNotSupported"
    );
    assert_eq!(duplicate("a", "x").reason(), "FieldValueDuplicate");
    assert_eq!(forbidden("a", "").reason(), "FieldValueForbidden");
    assert_eq!(too_long("a", 1).reason(), "FieldValueTooLong");
    assert_eq!(too_many("a", 2, 1).reason(), "FieldValueTooMany");
    assert_eq!(not_found("a", "x").reason(), "FieldValueNotFound");
}

#[test]
fn invalid_message_brackets_only_several_distinct_errors() {
    let one = [required("spec.template.spec.containers", "")];
    assert_eq!(
        invalid_message("Deployment.apps", "web", &one),
        "Deployment.apps \"web\" is invalid: spec.template.spec.containers: Required value"
    );
    let two = [
        required("a", ""),
        required("a", ""),
        invalid("b", "x", "bad"),
    ];
    assert_eq!(
        invalid_message("Pod", "p", &two),
        "Pod \"p\" is invalid: [a: Required value, b: Invalid value: \"x\": bad]"
    );
}

// ---- pods and templates ----

#[test]
fn deployment_template_without_containers_is_required() {
    let d = deployment(
        "web",
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
        json!([]),
    );
    assert_eq!(
        create("apps", "Deployment", d),
        vec!["spec.template.spec.containers: Required value"]
    );
}

#[test]
fn container_names_are_unique_across_containers_and_init_containers() {
    let mut p = pod(
        "web",
        json!([{"name": "app", "image": "a"}, {"name": "app", "image": "b"}]),
    );
    p["spec"]["initContainers"] = json!([{"name": "app", "image": "c"}]);
    assert_eq!(
        create("", "Pod", p),
        vec![
            "spec.containers[1].name: Duplicate value: \"app\"",
            "spec.initContainers[0].name: Duplicate value: \"app\""
        ]
    );
}

#[test]
fn container_fields_are_checked_with_their_paths() {
    let p = pod(
        "web",
        json!([{"name": "App", "ports": [{"containerPort": 70000, "protocol": "HTTP"}],
                "env": [{"name": "A=B"}], "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]),
    );
    assert_eq!(
        create("", "Pod", p),
        vec![
            "spec.containers[0].name: Invalid value: \"App\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.containers[0].image: Required value",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.containers[0].volumeMounts[0].name: Not found: \"data\""
        ]
    );
}

#[test]
fn volumes_must_be_unique_and_mounted_by_name() {
    let mut p = pod(
        "web",
        json!([{"name": "app", "image": "a", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]),
    );
    p["spec"]["volumes"] =
        json!([{"name": "data"}, {"name": "data", "emptyDir": {}, "hostPath": {"path": "/x"}}]);
    assert_eq!(
        create("", "Pod", p),
        vec![
            // Kubernetes checks sources in field order: hostPath comes before emptyDir.
            "spec.volumes[1].emptyDir: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[1].name: Duplicate value: \"data\""
        ]
    );
}

#[test]
fn requests_may_not_exceed_limits() {
    let p = pod(
        "web",
        json!([{"name": "app", "image": "a",
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1500m", "memory": "512Mi"}}}]),
    );
    assert_eq!(
        create("", "Pod", p),
        vec!["spec.containers[0].resources.requests[cpu]: Invalid value: \"1500m\": must be less than or equal to cpu limit of 1"]
    );
}

#[test]
fn bad_quantities_and_resource_names_are_invalid() {
    // A template, so that limits are not copied into requests as for Pods.
    let d = deployment(
        "web",
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
        json!([{"name": "app", "image": "a", "resources": {"limits": {"cpu": "lots", "gpu": 1}}}]),
    );
    assert_eq!(
        create("apps", "Deployment", d),
        vec![
            "spec.template.spec.containers[0].resources.limits[cpu]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            "spec.template.spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers"
        ]
    );
}

#[test]
fn unknown_restart_policy_is_not_supported() {
    let mut p = pod("web", json!([{"name": "app", "image": "a"}]));
    p["spec"]["restartPolicy"] = json!("Sometimes");
    assert_eq!(
        create("", "Pod", p),
        vec!["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""]
    );
}

#[test]
fn pod_defaults_match_kubectl_get_output() {
    let p = defaulted(
        "",
        "Pod",
        pod(
            "web",
            json!([{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]},
                                                      {"name": "side", "image": "busybox:1.36"}]),
        ),
    );
    let spec = &p["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["priority"], 0);
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["resources"], json!({}));
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        p["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert!(validate_create("", "Pod", &p).is_empty());
}

#[test]
fn pod_requests_default_to_limits_and_make_it_guaranteed() {
    let p = defaulted(
        "",
        "Pod",
        pod(
            "web",
            json!([{"name": "app", "image": "a",
        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}]),
        ),
    );
    assert_eq!(
        p["spec"]["containers"][0]["resources"]["requests"],
        json!({"cpu": "500m", "memory": "128Mi"})
    );
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
    let burstable = defaulted(
        "",
        "Pod",
        pod(
            "web",
            json!([{"name": "app", "image": "a",
        "resources": {"requests": {"cpu": "100m"}}}]),
        ),
    );
    assert_eq!(burstable["status"]["qosClass"], "Burstable");
}

#[test]
fn defaulting_keeps_values_the_client_sent() {
    let mut p = pod(
        "web",
        json!([{"name": "app", "image": "nginx", "imagePullPolicy": "Never"}]),
    );
    p["spec"]["restartPolicy"] = json!("Never");
    let p = defaulted("", "Pod", p);
    assert_eq!(p["spec"]["restartPolicy"], "Never");
    assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Never");
}

#[test]
fn pod_update_may_change_images_but_not_other_spec_fields() {
    let old = defaulted(
        "",
        "Pod",
        pod("web", json!([{"name": "app", "image": "nginx:1"}])),
    );
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert!(validate_update("", "Pod", &old, &new).is_empty());
    new["spec"]["restartPolicy"] = json!("Never");
    let errs = validate_update("", "Pod", &old, &new);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec");
    assert!(errs[0].to_string().starts_with(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
    ));
    assert!(
        errs[0].detail.ends_with("changed: spec.restartPolicy"),
        "{}",
        errs[0].detail
    );
}

#[test]
fn pod_update_may_only_add_tolerations() {
    let mut old = defaulted(
        "",
        "Pod",
        pod("web", json!([{"name": "app", "image": "a"}])),
    );
    old["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
    let mut new = old.clone();
    new["spec"]["tolerations"] =
        json!([{"key": "k", "operator": "Exists"}, {"key": "k2", "operator": "Exists"}]);
    assert!(validate_update("", "Pod", &old, &new).is_empty());
    new["spec"]["tolerations"] = json!([]);
    assert_eq!(
        msgs(&validate_update("", "Pod", &old, &new)),
        vec!["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
    );
    let seconds = |s: i64| json!([{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": s}]);
    old["spec"]["tolerations"] = seconds(300);
    new["spec"]["tolerations"] = seconds(60);
    assert!(
        validate_update("", "Pod", &old, &new).is_empty(),
        "tolerationSeconds may change"
    );
}

#[test]
fn pod_active_deadline_may_only_shrink() {
    let mut old = defaulted(
        "",
        "Pod",
        pod("web", json!([{"name": "app", "image": "a"}])),
    );
    old["spec"]["activeDeadlineSeconds"] = json!(100);
    let mut new = old.clone();
    new["spec"]["activeDeadlineSeconds"] = json!(50);
    assert!(validate_update("", "Pod", &old, &new).is_empty());
    new["spec"]["activeDeadlineSeconds"] = json!(200);
    assert_eq!(
        msgs(&validate_update("", "Pod", &old, &new)),
        vec!["spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"]
    );
}

#[test]
fn indexed_jobs_need_completions() {
    let mut j = job();
    j["spec"]["completionMode"] = json!("Indexed");
    j["spec"]["parallelism"] = json!(2);
    assert_eq!(
        create("batch", "Job", j),
        vec!["spec.completions: Required value: when completion mode is Indexed"]
    );
}

// ---- workloads ----

#[test]
fn selector_must_match_template_labels() {
    let d = deployment(
        "web",
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "other"}),
        json!([{"name": "app", "image": "a"}]),
    );
    assert_eq!(
        create("apps", "Deployment", d),
        vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"]
    );
}

#[test]
fn selector_expressions_are_evaluated_and_validated() {
    let sel =
        json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]});
    let ok = deployment(
        "web",
        sel,
        json!({"tier": "api"}),
        json!([{"name": "app", "image": "a"}]),
    );
    assert!(create("apps", "Deployment", ok).is_empty());
    let bad = json!({"matchExpressions": [{"key": "tier", "operator": "In"}]});
    let d = deployment(
        "web",
        bad,
        json!({"tier": "api"}),
        json!([{"name": "app", "image": "a"}]),
    );
    let errs = create("apps", "Deployment", d);
    assert!(errs.contains(&"spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'".to_string()), "{errs:?}");
}

#[test]
fn missing_or_empty_selector_is_rejected() {
    let mut d = web_deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(
        create("apps", "Deployment", d),
        vec!["spec.selector: Required value"]
    );
    let d = deployment(
        "web",
        json!({}),
        json!({"app": "web"}),
        json!([{"name": "app", "image": "a"}]),
    );
    assert_eq!(create("apps", "Deployment", d), vec!["spec.selector: Invalid value: map[string]string{}: empty selector is invalid for deployment"]);
}

#[test]
fn negative_replicas_are_invalid() {
    let mut d = web_deployment();
    d["spec"]["replicas"] = json!(-1);
    assert_eq!(
        create("apps", "Deployment", d),
        vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
    );
}

#[test]
fn recreate_strategy_may_not_have_rolling_update() {
    let mut d = web_deployment();
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
    assert_eq!(
        create("apps", "Deployment", d),
        vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
    );
}

#[test]
fn rolling_update_may_not_have_both_budgets_zero() {
    let mut d = web_deployment();
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
    assert_eq!(
        create("apps", "Deployment", d),
        vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"]
    );
}

#[test]
fn deployment_defaults_match_kubernetes() {
    let d = defaulted("apps", "Deployment", web_deployment());
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(d["status"], json!({}));
    let tpl = &spec["template"]["spec"];
    assert_eq!(tpl["restartPolicy"], "Always");
    assert_eq!(tpl["containers"][0]["imagePullPolicy"], "Always");
    assert!(
        tpl.get("priority").is_none(),
        "priority is set by admission on pods only"
    );
}

#[test]
fn deployment_selector_is_immutable() {
    let old = defaulted("apps", "Deployment", web_deployment());
    let mut new = old.clone();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
    new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "v": "2"});
    assert_eq!(
        msgs(&validate_update("apps", "Deployment", &old, &new)),
        vec!["spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"v\":\"2\"}}: field is immutable"]
    );
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(3);
    assert!(validate_update("apps", "Deployment", &old, &scaled).is_empty());
}

#[test]
fn metadata_name_is_immutable() {
    let old = defaulted("apps", "Deployment", web_deployment());
    let mut new = old.clone();
    new["metadata"]["name"] = json!("web2");
    assert_eq!(
        msgs(&validate_update("apps", "Deployment", &old, &new)),
        vec!["metadata.name: Invalid value: \"web2\": field is immutable"]
    );
}

#[test]
fn daemon_set_and_stateful_set_defaults() {
    let mut ds = web_deployment();
    ds["kind"] = json!("DaemonSet");
    let ds = defaulted("apps", "DaemonSet", ds);
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert!(validate_create("apps", "DaemonSet", &ds).is_empty());
    let sts = defaulted("apps", "StatefulSet", web_deployment());
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert!(validate_create("apps", "StatefulSet", &sts).is_empty());
}

#[test]
fn stateful_set_update_forbids_other_spec_fields() {
    let old = defaulted("apps", "StatefulSet", web_deployment());
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(5);
    assert!(validate_update("apps", "StatefulSet", &old, &new).is_empty());
    new["spec"]["podManagementPolicy"] = json!("Parallel");
    let errs = msgs(&validate_update("apps", "StatefulSet", &old, &new));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'"
    ));
}

fn job() -> Value {
    json!({"metadata": {"name": "pi", "namespace": "default", "uid": "1234"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "pi", "image": "perl:5"}]}}}})
}

#[test]
fn job_defaults_generate_selector_from_uid() {
    let j = defaulted("batch", "Job", job());
    let spec = &j["spec"];
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}})
    );
    assert_eq!(spec["template"]["metadata"]["labels"]["job-name"], "pi");
    assert_eq!(
        j["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "pi"
    );
    for (k, v) in [
        ("completions", json!(1)),
        ("parallelism", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
    ] {
        assert_eq!(spec[k], v, "{k}");
    }
    assert!(validate_create("batch", "Job", &j).is_empty());
}

#[test]
fn job_template_must_not_restart_always() {
    let mut j = job();
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    assert_eq!(
        create("batch", "Job", j),
        vec!["spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""]
    );
}

#[test]
fn job_template_is_immutable() {
    let old = defaulted("batch", "Job", job());
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:6");
    let errs = msgs(&validate_update("batch", "Job", &old, &new));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("spec.template: Invalid value: ")
            && errs[0].ends_with(": field is immutable")
    );
}

// ---- services ----

#[test]
fn service_defaults_match_kubernetes() {
    let svc = defaulted(
        "",
        "Service",
        json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}, {"name": "b", "port": 81, "targetPort": "http"}]}}),
    );
    let spec = &svc["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["ports"][1]["targetPort"], "http");
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));
    let mut reset = json!({"metadata": {"name": "web"}, "status": {}});
    default_object("", "Service", &mut reset);
    assert_eq!(reset["status"], json!({"loadBalancer": {}}));
    let cm = defaulted("", "ConfigMap", json!({"metadata": {"name": "c"}}));
    assert!(cm.get("status").is_none(), "kinds without status get none");
    assert!(spec.get("externalTrafficPolicy").is_none());
    assert_eq!(
        msgs(&validate_create("", "Service", &svc)),
        vec!["spec.ports[0].name: Required value"],
        "several ports must all be named"
    );
}

#[test]
fn service_rules() {
    let svc =
        |spec: Value| json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec});
    assert_eq!(
        create("", "Service", svc(json!({}))),
        vec!["spec.ports: Required value"]
    );
    assert!(create("", "Service", svc(json!({"clusterIP": "None"}))).is_empty());
    assert!(create(
        "",
        "Service",
        svc(json!({"type": "ExternalName", "externalName": "example.com."}))
    )
    .is_empty());
    assert_eq!(
        create("", "Service", svc(json!({"type": "Magic", "ports": [{"port": 80}]}))),
        vec!["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]
    );
    assert_eq!(
        create("", "Service", svc(json!({"clusterIP": "10.0.0.300", "ports": [{"port": 0}]}))),
        vec![
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            // targetPort was defaulted from port, so Kubernetes reports it too.
            "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.clusterIP: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        ]
    );
}

#[test]
fn service_cluster_ip_may_not_change() {
    let old = defaulted(
        "",
        "Service",
        json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.0.0.10", "ports": [{"port": 80}]}}),
    );
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.0.0.11");
    assert_eq!(
        msgs(&validate_update("", "Service", &old, &new)),
        vec!["spec.clusterIPs[0]: Invalid value: \"10.0.0.11\": may not change once set"]
    );
}

// ---- config maps and secrets ----

#[test]
fn config_map_keys_must_be_valid() {
    let cm = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"a b": "1", "ok.key": "2", "..x": "3"}});
    assert_eq!(
        create("", "ConfigMap", cm),
        vec![
            "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            "data[..x]: Invalid value: \"..x\": must not start with '..'"
        ]
    );
}

#[test]
fn immutable_config_maps_and_secret_types_do_not_change() {
    let old = json!({"metadata": {"name": "c", "namespace": "default"}, "immutable": true, "data": {"a": "1"}});
    let mut new = old.clone();
    new["data"]["a"] = json!("2");
    assert_eq!(
        msgs(&validate_update("", "ConfigMap", &old, &new)),
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );
    let old = defaulted(
        "",
        "Secret",
        json!({"metadata": {"name": "s", "namespace": "default"}}),
    );
    let mut new = old.clone();
    new["type"] = json!("kubernetes.io/tls");
    new["data"] = json!({"tls.crt": "", "tls.key": ""});
    assert_eq!(
        msgs(&validate_update("", "Secret", &old, &new)),
        vec!["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
    );
}

#[test]
fn secret_defaults_fold_string_data_and_type_keys_are_required() {
    let s = defaulted(
        "",
        "Secret",
        json!({"metadata": {"name": "s", "namespace": "default"}, "stringData": {"user": "admin"}}),
    );
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"], json!({"user": "YWRtaW4="}));
    assert!(s.get("stringData").is_none());
    let tls = json!({"metadata": {"name": "s", "namespace": "default"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}});
    assert_eq!(
        create("", "Secret", tls),
        vec!["data[tls.key]: Required value"]
    );
}

// ---- other kinds ----

#[test]
fn namespace_defaults_match_kubernetes() {
    let ns = defaulted("", "Namespace", json!({"metadata": {"name": "team"}}));
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    assert!(validate_create("", "Namespace", &ns).is_empty());
}

#[test]
fn rbac_rules_and_role_refs() {
    let role = json!({"metadata": {"name": "r", "namespace": "default"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]});
    assert_eq!(
        create("rbac.authorization.k8s.io", "Role", role),
        vec!["rules[0].verbs: Required value: verbs must contain at least one value"]
    );
    let binding = json!({"metadata": {"name": "b", "namespace": "default"},
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "default"}]});
    let old = defaulted("rbac.authorization.k8s.io", "RoleBinding", binding);
    assert_eq!(old["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(validate_create("rbac.authorization.k8s.io", "RoleBinding", &old).is_empty());
    let mut new = old.clone();
    new["roleRef"]["name"] = json!("other");
    assert_eq!(
        msgs(&validate_update("rbac.authorization.k8s.io", "RoleBinding", &old, &new)),
        vec!["roleRef: Invalid value: map[string]string{\"apiGroup\":\"rbac.authorization.k8s.io\", \"kind\":\"Role\", \"name\":\"other\"}: cannot change roleRef"]
    );
    let crb = json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}});
    assert_eq!(
        create("rbac.authorization.k8s.io", "ClusterRoleBinding", crb),
        vec!["roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""]
    );
}

#[test]
fn ingress_paths_and_backends() {
    let ing = json!({"metadata": {"name": "i", "namespace": "default"}, "spec": {"rules": [{"host": "example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
        {"path": "api", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
        {"path": "/x", "pathType": "Regex", "backend": {"service": {"name": "web"}}},
        {"path": "/y", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
    ]}}]}});
    assert_eq!(
        create("networking.k8s.io", "Ingress", ing),
        vec![
            "spec.rules[0].http.paths[1].path: Invalid value: \"api\": must be an absolute path",
            "spec.rules[0].http.paths[2].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
            "spec.rules[0].http.paths[2].backend: Required value: port name or number is required",
            "spec.rules[0].http.paths[3].pathType: Required value: pathType must be specified"
        ]
    );
    let empty = json!({"metadata": {"name": "i", "namespace": "default"}, "spec": {}});
    assert_eq!(
        create("networking.k8s.io", "Ingress", empty),
        vec!["spec: Invalid value: []: either `defaultBackend` or `rules` must be specified"]
    );
}

#[test]
fn runtime_class_handler_is_a_dns_label() {
    let rc = |h: &str| json!({"metadata": {"name": "wasm"}, "handler": h});
    assert!(create("node.k8s.io", "RuntimeClass", rc("wasmtime")).is_empty());
    let errs = create("node.k8s.io", "RuntimeClass", rc(""));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("handler: Invalid value: \"\": a lowercase RFC 1123 label"),
        "{errs:?}"
    );
}

#[test]
fn lease_durations_must_be_positive() {
    let lease = json!({"metadata": {"name": "l", "namespace": "kube-node-lease"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}});
    assert_eq!(
        create("coordination.k8s.io", "Lease", lease),
        vec![
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"
        ]
    );
}

#[test]
fn endpoint_slice_addresses_follow_address_type() {
    let slice = json!({"metadata": {"name": "s", "namespace": "default"}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["fe80::1"]}], "ports": [{"port": 80}]});
    let s = defaulted("discovery.k8s.io", "EndpointSlice", slice);
    assert_eq!(
        s["ports"][0],
        json!({"port": 80, "name": "", "protocol": "TCP"})
    );
    assert_eq!(
        msgs(&validate_create("discovery.k8s.io", "EndpointSlice", &s)),
        vec!["endpoints[1].addresses[0]: Invalid value: \"fe80::1\": must be a valid IPv4 address"]
    );
}

// ---- quantities ----

#[test]
fn quantities_parse_into_milli_units() {
    assert_eq!(parse_quantity("100m"), Ok(100));
    assert_eq!(parse_quantity("1"), Ok(1000));
    assert_eq!(parse_quantity("1.5"), Ok(1500));
    assert_eq!(parse_quantity("2e3"), Ok(2_000_000));
    assert_eq!(parse_quantity("1E-3"), Ok(1));
    assert_eq!(parse_quantity("1Gi"), Ok(1_073_741_824_000));
    assert_eq!(parse_quantity("1Ki"), Ok(1_024_000));
    assert_eq!(parse_quantity("128Mi"), Ok(134_217_728_000));
    assert_eq!(parse_quantity("1k"), Ok(1_000_000));
    assert_eq!(parse_quantity(".5"), Ok(500));
    assert_eq!(parse_quantity("+2"), Ok(2000));
    assert_eq!(parse_quantity("-1"), Ok(-1000));
    // Kubernetes rounds sub-milli amounts up when asked for milli-units.
    assert_eq!(parse_quantity("1n"), Ok(1));
    assert_eq!(parse_quantity("0"), Ok(0));
}

#[test]
fn bad_quantities_are_rejected_with_kubernetes_errors() {
    for bad in ["", ".", "abc", "1Gb", "- 1", "1 Gi"] {
        assert_eq!(parse_quantity(bad), Err(QuantityError::Format), "{bad:?}");
    }
    for bad in ["1iK", "1e", "1mm"] {
        assert_eq!(parse_quantity(bad), Err(QuantityError::Suffix), "{bad:?}");
    }
    assert_eq!(parse_quantity("1.2.3"), Err(QuantityError::Numeric));
    assert_eq!(parse_quantity("1e400"), Err(QuantityError::TooLarge));
    assert_eq!(
        quantity_value("1500m"),
        Ok(2),
        "Value rounds up like Kubernetes"
    );
    assert_eq!(quantity_value("1Mi"), Ok(1_048_576));
}

// ---- misc name helpers ----

#[test]
fn port_names_follow_iana_service_name_rules() {
    assert!(is_valid_port_name("http").is_empty());
    assert_eq!(
        is_valid_port_name("8080"),
        vec!["must contain at least one letter (a-z)"]
    );
    assert_eq!(
        is_valid_port_name("-a--b"),
        vec![
            "must not contain consecutive hyphens",
            "must not begin or end with a hyphen"
        ]
    );
    assert_eq!(
        is_valid_port_name("a-very-long-port-name"),
        vec!["must be no more than 15 characters"]
    );
    assert_eq!(
        is_valid_port_num(0),
        vec!["must be between 1 and 65535, inclusive"]
    );
}

#[test]
fn config_map_key_and_label_value_helpers() {
    assert!(is_config_map_key(".dockerconfigjson").is_empty());
    assert_eq!(is_config_map_key(".."), vec!["must not be '..'"]);
    assert!(is_valid_label_value("").is_empty());
    assert_eq!(
        is_valid_label_value(&"a".repeat(64)),
        vec!["must be no more than 63 characters"]
    );
}

#[test]
fn unknown_kinds_get_metadata_checks_only() {
    let obj = json!({"metadata": {"name": "Bad"}, "spec": {"anything": true}});
    assert!(!is_known_kind("example.com", "Widget"));
    assert_eq!(
        msgs(&validate_create("example.com", "Widget", &obj)),
        vec![format!(
            "metadata.name: Invalid value: \"Bad\": {SUBDOMAIN_MSG}"
        )]
    );
}

#[test]
fn stateful_set_mounts_may_name_claim_templates() {
    let mut sts = defaulted("apps", "StatefulSet", web_deployment());
    sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    let errs = msgs(&validate_create("apps", "StatefulSet", &sts));
    assert_eq!(
        errs,
        vec![
            "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\""
                .to_string()
        ]
    );
    sts["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}}]);
    assert!(validate_create("apps", "StatefulSet", &sts).is_empty());
}

// ---- Node pod CIDRs ----

fn node_with(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": spec})
}

/// Default both, then validate the update, as the API server does.
fn update(group: &str, kind: &str, old: Value, new: Value) -> Vec<String> {
    let old = defaulted(group, kind, old);
    let new = defaulted(group, kind, new);
    msgs(&validate_update(group, kind, &old, &new))
}

#[test]
fn a_pod_cidr_is_defaulted_into_pod_cidrs_and_must_be_a_cidr() {
    let n = defaulted("", "Node", node_with(json!({"podCIDR": "10.244.1.0/24"})));
    assert_eq!(n["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
    let n = defaulted(
        "",
        "Node",
        node_with(json!({"podCIDRs": ["10.244.2.0/24"]})),
    );
    assert_eq!(n["spec"]["podCIDR"], "10.244.2.0/24");
    assert!(create("", "Node", node_with(json!({"podCIDR": "10.244.1.0/24"}))).is_empty());
    assert_eq!(
        create("", "Node", node_with(json!({"podCIDR": "10.244.1.0"}))),
        vec!["spec.podCIDRs[0]: Invalid value: \"10.244.1.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    );
    assert_eq!(
        create(
            "",
            "Node",
            node_with(json!({"podCIDRs": ["10.244.1.0/33"]}))
        )
        .len(),
        1
    );
    // One per family: IPv4 plus IPv6 is fine, two IPv4 are not.
    assert!(create(
        "",
        "Node",
        node_with(json!({"podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}))
    )
    .is_empty());
    let errs = create(
        "",
        "Node",
        node_with(json!({"podCIDRs": ["10.244.1.0/24", "10.244.2.0/24"]})),
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].ends_with("may specify no more than one CIDR for each IP family"),
        "{errs:?}"
    );
}

#[test]
fn a_pod_cidr_may_be_set_once_and_never_changed() {
    const FORBIDDEN: &str =
        "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid";
    let none = node_with(json!({}));
    let one = node_with(json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}));
    assert!(
        update("", "Node", none.clone(), one.clone()).is_empty(),
        "from empty to valid"
    );
    assert!(update("", "Node", one.clone(), one.clone()).is_empty());
    let other = node_with(json!({"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]}));
    assert_eq!(update("", "Node", one.clone(), other), vec![FORBIDDEN]);
    assert_eq!(
        update("", "Node", one.clone(), none),
        vec![FORBIDDEN],
        "nor removed"
    );
    // An object stored before defaulting filled podCIDRs counts the same.
    let stored_alone = node_with(json!({"podCIDR": "10.244.1.0/24"}));
    let old = stored_alone.clone();
    assert!(msgs(&validate_update(
        "",
        "Node",
        &old,
        &defaulted("", "Node", stored_alone)
    ))
    .is_empty());
}
