use super::*;
use crate::store::redb::RedbStore;
use crate::store::WriteOp;

fn res(kind: &str) -> &'static Resource {
    resources::all()
        .iter()
        .find(|r| r.kind == kind)
        .expect("served kind")
}

fn attrs<'a>(
    kind: &str,
    op: Operation,
    sub: Option<&'a str>,
    ns: Option<&'a str>,
    user: &'a User,
    warnings: &'a Mutex<Vec<String>>,
) -> Attributes<'a> {
    Attributes {
        resource: res(kind),
        subresource: sub,
        operation: op,
        namespace: ns,
        name: "x",
        user,
        dry_run: false,
        options: json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}),
        warnings,
    }
}

fn hook(rules: Value) -> Webhook {
    Webhook::parse(&json!({
        "name": "h.example.com",
        "rules": rules,
        "namespaceSelector": {},
        "objectSelector": {},
        "sideEffects": "None",
        "clientConfig": {"url": "https://127.0.0.1:1/x"},
    }))
}

#[test]
fn rules_match_operation_group_version_resource_and_scope() {
    let user = User::admin();
    let w = Mutex::new(Vec::new());
    let cm = attrs("ConfigMap", Operation::Create, None, Some("a"), &user, &w);
    let rule = |ops: Value, groups: Value, resources: Value, scope: &str| json!({"operations": ops, "apiGroups": groups, "apiVersions": ["v1"], "resources": resources, "scope": scope});
    assert!(rule_matches(
        &rule(json!(["CREATE"]), json!([""]), json!(["configmaps"]), "*"),
        &cm
    ));
    assert!(rule_matches(
        &rule(json!(["*"]), json!(["*"]), json!(["*"]), "Namespaced"),
        &cm
    ));
    assert!(!rule_matches(
        &rule(
            json!(["UPDATE", "DELETE"]),
            json!([""]),
            json!(["configmaps"]),
            "*"
        ),
        &cm
    ));
    assert!(!rule_matches(
        &rule(
            json!(["CREATE"]),
            json!(["apps"]),
            json!(["configmaps"]),
            "*"
        ),
        &cm
    ));
    assert!(!rule_matches(
        &rule(
            json!(["CREATE"]),
            json!([""]),
            json!(["configmaps"]),
            "Cluster"
        ),
        &cm
    ));
    let ns = attrs("Namespace", Operation::Create, None, None, &user, &w);
    assert!(rule_matches(
        &rule(json!(["CREATE"]), json!([""]), json!(["*"]), "Cluster"),
        &ns
    ));
    // A rule for the main resource does not see its status, and back.
    let status = attrs(
        "Pod",
        Operation::Update,
        Some("status"),
        Some("a"),
        &user,
        &w,
    );
    assert!(!rule_matches(
        &rule(json!(["UPDATE"]), json!([""]), json!(["pods"]), "*"),
        &status
    ));
    for r in ["pods/status", "*/status", "pods/*", "*/*"] {
        assert!(
            rule_matches(
                &rule(json!(["UPDATE"]), json!([""]), json!([r]), "*"),
                &status
            ),
            "{r}"
        );
    }
    assert!(!rule_matches(
        &rule(json!(["UPDATE"]), json!([""]), json!(["*"]), "*"),
        &status
    ));
}

#[tokio::test]
async fn selectors_read_the_namespace_and_the_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("s.redb"), 100).expect("store");
    store
        .write(WriteOp::Create {
            key: "/core/namespaces/team".into(),
            value: json!({"metadata": {"name": "team", "labels": {"webhooks": "on"}}}),
        })
        .await
        .expect("namespace");
    let user = User::admin();
    let w = Mutex::new(Vec::new());
    let mut h = hook(
        json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]),
    );
    h.namespace_selector = json!({"matchLabels": {"webhooks": "on"}});
    let obj = json!({"metadata": {"name": "x"}});
    let in_team = attrs(
        "ConfigMap",
        Operation::Create,
        None,
        Some("team"),
        &user,
        &w,
    );
    let elsewhere = attrs(
        "ConfigMap",
        Operation::Create,
        None,
        Some("other"),
        &user,
        &w,
    );
    assert!(matches(&store, &h, &in_team, Some(&obj), None).expect("match"));
    assert!(!matches(&store, &h, &elsewhere, Some(&obj), None).expect("match"));
    // Namespaces are selected by their own labels; other cluster-scoped
    // objects always are.
    let ns = attrs("Namespace", Operation::Create, None, None, &user, &w);
    let labelled = json!({"metadata": {"name": "n", "labels": {"webhooks": "on"}}});
    assert!(matches(&store, &h, &ns, Some(&labelled), None).expect("match"));
    assert!(!matches(&store, &h, &ns, Some(&obj), None).expect("match"));
    let node = attrs("Node", Operation::Create, None, None, &user, &w);
    assert!(matches(&store, &h, &node, Some(&obj), None).expect("match"));
    // objectSelector: the new or the old object.
    h.namespace_selector = json!({});
    h.object_selector =
        json!({"matchExpressions": [{"key": "deny", "operator": "In", "values": ["yes"]}]});
    let deny = json!({"metadata": {"labels": {"deny": "yes"}}});
    assert!(object_selected(&h, Some(&obj), Some(&deny)));
    assert!(object_selected(&h, Some(&deny), None));
    assert!(!object_selected(&h, Some(&obj), None));
    assert!(!object_selected(&h, None, None));
}

#[test]
fn the_review_carries_what_kubernetes_sends() {
    let user = User::service_account("team", "ci", "1234");
    let w = Mutex::new(Vec::new());
    let a = attrs(
        "Pod",
        Operation::Update,
        Some("status"),
        Some("team"),
        &user,
        &w,
    );
    let old = json!({"metadata": {"name": "x"}});
    let r = review(&a, "u-1", Some(&old), Some(&old));
    assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["kind"], "AdmissionReview");
    let q = &r["request"];
    assert_eq!(q["uid"], "u-1");
    assert_eq!(
        q["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(
        q["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert_eq!(q["requestKind"], q["kind"]);
    assert_eq!(q["subResource"], "status");
    assert_eq!(
        (q["name"].as_str(), q["namespace"].as_str()),
        (Some("x"), Some("team"))
    );
    assert_eq!(q["operation"], "UPDATE");
    assert_eq!(q["userInfo"]["username"], "system:serviceaccount:team:ci");
    assert_eq!(q["userInfo"]["uid"], "1234");
    assert_eq!(q["dryRun"], false);
    assert_eq!(q["options"]["kind"], "CreateOptions");
    let create = attrs(
        "ConfigMap",
        Operation::Create,
        None,
        Some("team"),
        &user,
        &w,
    );
    let r = review(&create, "u", Some(&old), None);
    assert!(r["request"]["oldObject"].is_null());
    assert!(r["request"].get("subResource").is_none());
}

fn answer(resp: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
}

#[test]
fn answers_are_checked_and_patches_decoded() {
    let ops = json!([{"op": "add", "path": "/metadata/labels/added", "value": "yes"}]);
    let patch = base64::engine::general_purpose::STANDARD.encode(ops.to_string());
    let a = verify(
        "u",
        true,
        &answer(json!({"uid": "u", "allowed": true, "patchType": "JSONPatch", "patch": patch, "warnings": ["careful"]})),
    )
    .expect("valid");
    assert!(a.allowed);
    assert_eq!(a.patch, Some(ops.clone()));
    assert_eq!(a.warnings, ["careful"]);
    let patched = apimachinery::patch::json_patch(&json!({"metadata": {"labels": {}}}), &ops)
        .expect("applies");
    assert_eq!(patched["metadata"]["labels"]["added"], "yes");

    let bad = |resp: Value, mutating: bool| verify("u", mutating, &answer(resp)).expect_err("bad");
    assert_eq!(
        bad(json!({"uid": "v", "allowed": true}), true),
        "expected response.uid=\"u\", got \"v\""
    );
    assert_eq!(
        verify("u", true, &json!({"apiVersion": "v1", "kind": "AdmissionReview", "response": {"uid": "u"}}))
            .expect_err("wrong kind"),
        "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got v1, Kind=AdmissionReview"
    );
    assert_eq!(
        bad(json!({"uid": "u", "allowed": true, "patch": patch}), true),
        "webhook returned response.patch but not response.patchType"
    );
    assert_eq!(
        bad(
            json!({"uid": "u", "allowed": true, "patchType": "JSONPatch", "patch": patch}),
            false
        ),
        "validating webhook may not return response.patchType"
    );
    assert!(bad(
        json!({"uid": "u", "allowed": true, "patchType": "JSONPatch", "patch": "!!"}),
        true
    )
    .starts_with("received undecodable patch in webhook response"));
    assert_eq!(
        verify(
            "u",
            true,
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})
        )
        .expect_err("absent"),
        "webhook response was absent"
    );
}

#[test]
fn refusals_and_failures_read_as_kubernetes_writes_them() {
    let e = denied(
        "deny.example.com",
        &json!({"code": 403, "message": "no thanks", "reason": "Forbidden"}),
    );
    assert_eq!(
        (e.code, e.reason, e.message.as_str()),
        (
            403,
            "Forbidden",
            "admission webhook \"deny.example.com\" denied the request: no thanks"
        )
    );
    let e = denied("d.example.com", &Value::Null);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            400,
            "admission webhook \"d.example.com\" denied the request without explanation"
        )
    );
    let e = denied("d.example.com", &json!({"code": 200, "reason": "Because"}));
    assert_eq!(
        (e.code, e.reason, e.message.as_str()),
        (
            400,
            "",
            "admission webhook \"d.example.com\" denied the request: Because"
        )
    );
    let e = call_failed(
        "h.example.com",
        "failed to call webhook: Post \"https://127.0.0.1:1/x?timeout=10s\": dial tcp 127.0.0.1:1: connect: connection refused",
    );
    assert_eq!(e.code, 500);
    assert_eq!(
        e.message,
        "Internal error occurred: failed calling webhook \"h.example.com\": failed to call webhook: Post \"https://127.0.0.1:1/x?timeout=10s\": dial tcp 127.0.0.1:1: connect: connection refused"
    );
}

#[test]
fn urls_split_into_dial_address_and_path() {
    assert_eq!(
        split_url("https://127.0.0.1:8443/validate"),
        Some(("127.0.0.1".into(), 8443, "/validate".into()))
    );
    assert_eq!(
        split_url("https://hooks.example.com"),
        Some(("hooks.example.com".into(), 443, "/".into()))
    );
    assert_eq!(
        split_url("https://[::1]:9443/m"),
        Some(("::1".into(), 9443, "/m".into()))
    );
    assert_eq!(split_url("http://x/"), None);
}

#[tokio::test]
async fn services_resolve_to_a_ready_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("s.redb"), 100).expect("store");
    let put = |key: &str, value: Value| {
        store.write(WriteOp::Create {
            key: key.into(),
            value,
        })
    };
    assert_eq!(
        resolve_service(&store, "hooks", "api", 443).expect_err("no service"),
        "service \"api\" not found"
    );
    put(
        "/core/services/hooks/api",
        json!({"metadata": {"name": "api", "namespace": "hooks"}, "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}),
    )
    .await
    .expect("service");
    assert_eq!(
        resolve_service(&store, "hooks", "api", 8443).expect_err("no port"),
        "no service port 8443 found for service \"api\""
    );
    assert_eq!(
        resolve_service(&store, "hooks", "api", 443).expect_err("no endpoints"),
        "no endpoints available for service \"api\""
    );
    put(
        "/discovery.k8s.io/endpointslices/hooks/api-abcde",
        json!({
            "metadata": {"name": "api-abcde", "namespace": "hooks", "labels": {"kubernetes.io/service-name": "api"}},
            "ports": [{"name": "https", "port": 8443}],
            "endpoints": [
                {"addresses": ["10.244.0.9"], "conditions": {"ready": false}},
                {"addresses": ["10.244.0.7"], "conditions": {"ready": true}},
            ],
        }),
    )
    .await
    .expect("slice");
    assert_eq!(
        resolve_service(&store, "hooks", "api", 443).expect("resolved"),
        ("10.244.0.7".to_string(), 8443)
    );
}

#[test]
fn webhooks_skip_their_own_configurations() {
    let user = User::admin();
    let w = Mutex::new(Vec::new());
    let a = attrs(
        "ValidatingWebhookConfiguration",
        Operation::Create,
        None,
        None,
        &user,
        &w,
    );
    assert!(skip(&a));
    assert!(!skip(&attrs(
        "ConfigMap",
        Operation::Create,
        None,
        Some("a"),
        &user,
        &w
    )));
}

/// What the webhook step costs a write when no webhook is registered:
/// the two configuration lookups. `cargo test -p apiserver
/// webhook::tests::lookup_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn lookup_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("s.redb"), 100).expect("store");
    let n = 20_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let m = webhooks(&store, "MutatingWebhookConfiguration").expect("list");
        let v = webhooks(&store, "ValidatingWebhookConfiguration").expect("list");
        assert!(m.is_empty() && v.is_empty());
    }
    let per = start.elapsed() / n;
    println!("both lookups, no configurations: {per:?} per write");
}
