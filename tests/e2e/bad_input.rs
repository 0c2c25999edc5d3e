//! Bad input gets a 4xx `metav1.Status` with Kubernetes' reason, the server
//! never panics, and nothing of a refused request is written: every refusal
//! is followed by a GET showing the store unchanged.

use serde_json::{json, Value};

use crate::harness::{Response, Skiff};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[track_caller]
fn status(r: &Response, code: u16, reason: &str) -> Value {
    assert_eq!(r.code, code, "HTTP status: {}", r.body);
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("not a JSON Status ({e}): {}", r.body));
    assert_eq!(v["kind"], "Status", "{}", r.body);
    assert_eq!(v["apiVersion"], "v1", "{}", r.body);
    assert_eq!(v["status"], "Failure", "{}", r.body);
    assert_eq!(v["code"], code, "{}", r.body);
    assert_eq!(v["reason"], reason, "{}", r.body);
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.body
    );
    assert!(
        r.header("content-type")
            .iter()
            .any(|c| c.starts_with("application/json")),
        "a Status is JSON: {}",
        r.headers
    );
    v
}

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or("")
}

/// Names of the objects in a list path.
fn names(s: &Skiff, path: &str) -> Vec<String> {
    s.get_json(path)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The store's revision: a refused request must not move it.
fn revision(s: &Skiff) -> String {
    s.get_json(CMS)["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_string()
}

fn post(s: &Skiff, path: &str, ct: &str, body: &[u8]) -> Response {
    s.request("POST", path, Some(ct), Some(body), true)
}

/// Run a request that must be refused and check nothing was written.
#[track_caller]
fn refused(s: &Skiff, what: &str, send: impl FnOnce() -> Response) -> Response {
    let before = (names(s, CMS), names(s, DEPLOYS), revision(s));
    let r = send();
    assert!(
        (400..500).contains(&r.code),
        "{what}: expected a 4xx, got {}: {}",
        r.code,
        r.body
    );
    let after = (names(s, CMS), names(s, DEPLOYS), revision(s));
    assert_eq!(before, after, "{what}: a refused request wrote something");
    r
}

fn deployment(name: &str, spec_extra: &str, containers: &str) -> String {
    format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"{name}"}},
        "spec":{{{spec_extra}"selector":{{"matchLabels":{{"app":"x"}}}},
        "template":{{"metadata":{{"labels":{{"app":"x"}}}},"spec":{{"containers":{containers}}}}}}}}}"#
    )
}

#[test]
fn malformed_bodies_get_400_and_write_nothing() {
    let s = Skiff::api_only();
    let r = refused(&s, "truncated JSON", || {
        post(
            &s,
            CMS,
            "application/json",
            b"{\"metadata\": {\"name\": \"half\"",
        )
    });
    status(&r, 400, "BadRequest");

    let r = refused(&s, "malformed YAML", || {
        post(
            &s,
            CMS,
            "application/yaml",
            b"metadata:\n  name: [unclosed\n",
        )
    });
    status(&r, 400, "BadRequest");

    let r = refused(&s, "YAML with a tab indent", || {
        post(&s, CMS, "application/yaml", b"metadata:\n\tname: tab\n")
    });
    status(&r, 400, "BadRequest");

    let r = refused(&s, "a JSON array", || {
        post(&s, CMS, "application/json", b"[1,2]")
    });
    status(&r, 400, "BadRequest");

    let r = refused(&s, "an empty body", || {
        post(&s, CMS, "application/json", b"")
    });
    status(&r, 400, "BadRequest");

    let r = refused(&s, "a name of the wrong type", || {
        post(&s, CMS, "application/json", br#"{"metadata":{"name":7}}"#)
    });
    assert!(r.code == 400 || r.code == 422, "{}", r.body);

    let r = refused(&s, "wrong apiVersion", || {
        post(
            &s,
            CMS,
            "application/json",
            br#"{"apiVersion":"apps/v2","kind":"ConfigMap","metadata":{"name":"wrong"}}"#,
        )
    });
    let v = status(&r, 400, "BadRequest");
    // kube-apiserver's wording for a body of another group/version.
    assert!(
        message(&v).contains(
            "the API version in the data (apps/v2) does not match the expected API version (v1)"
        ),
        "{v}"
    );

    let r = refused(&s, "wrong kind", || {
        post(
            &s,
            CMS,
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"wrongkind"}}"#,
        )
    });
    status(&r, 400, "BadRequest");

    let r = refused(&s, "an unsupported content type", || {
        post(&s, CMS, "text/plain", b"name=x")
    });
    status(&r, 415, "UnsupportedMediaType");
    s.assert_no_panics();
}

#[test]
fn bodies_over_3_mib_get_413_and_write_nothing() {
    let s = Skiff::api_only();
    let filler = "x".repeat(3 * 1024 * 1024 + 10);
    let big = format!(r#"{{"metadata":{{"name":"big"}},"data":{{"k":"{filler}"}}}}"#);
    let r = refused(&s, "3 MiB of JSON", || {
        post(&s, CMS, "application/json", big.as_bytes())
    });
    status(&r, 413, "RequestEntityTooLarge");

    let big_yaml = format!("metadata:\n  name: bigyaml\ndata:\n  k: {filler}\n");
    let r = refused(&s, "3 MiB of YAML", || {
        post(&s, CMS, "application/yaml", big_yaml.as_bytes())
    });
    status(&r, 413, "RequestEntityTooLarge");

    // An update over the limit leaves the object as it was.
    let r = post(
        &s,
        CMS,
        "application/json",
        br#"{"metadata":{"name":"small"},"data":{"k":"v"}}"#,
    );
    assert_eq!(r.code, 201, "{}", r.body);
    let r = refused(&s, "a 3 MiB merge patch", || {
        s.request(
            "PATCH",
            &format!("{CMS}/small"),
            Some("application/merge-patch+json"),
            Some(format!(r#"{{"data":{{"k":"{filler}"}}}}"#).as_bytes()),
            true,
        )
    });
    status(&r, 413, "RequestEntityTooLarge");
    assert_eq!(s.get_json(&format!("{CMS}/small"))["data"]["k"], "v");

    // Just under the limit is fine: the limit is on bytes read, not on the
    // object (padding with whitespace keeps the ConfigMap itself small,
    // which Kubernetes caps at 1 MiB of data).
    let fits = format!(
        r#"{{"metadata":{{"name":"fits"}},"data":{{"k":"v"}}{}}}"#,
        " ".repeat(3 * 1024 * 1024 - 100)
    );
    let r = post(&s, CMS, "application/json", fits.as_bytes());
    assert_eq!(r.code, 201, "a body just under 3 MiB is accepted");
    s.assert_no_panics();
}

#[test]
fn unknown_paths_missing_namespaces_and_no_token() {
    let s = Skiff::api_only();
    for path in [
        "/api/v1/namespaces/default/widgets",
        "/apis/apps/v1/namespaces/default/widgets",
        "/apis/nosuch.example.com/v1/things",
        "/api/v2/pods",
    ] {
        let r = s.request("GET", path, None, None, true);
        status(&r, 404, "NotFound");
    }
    let r = refused(&s, "POST of an unknown resource", || {
        post(
            &s,
            "/api/v1/namespaces/default/widgets",
            "application/json",
            br#"{"metadata":{"name":"w"}}"#,
        )
    });
    status(&r, 404, "NotFound");

    let r = refused(&s, "a missing namespace", || {
        post(
            &s,
            "/api/v1/namespaces/missing/configmaps",
            "application/json",
            br#"{"metadata":{"name":"x"}}"#,
        )
    });
    let v = status(&r, 404, "NotFound");
    assert!(
        message(&v).contains("namespaces \"missing\" not found"),
        "{v}"
    );

    let r = s.request("GET", CMS, None, None, false);
    status(&r, 401, "Unauthorized");
    let r = refused(&s, "a write with no token", || {
        s.request(
            "POST",
            CMS,
            Some("application/json"),
            Some(br#"{"metadata":{"name":"anon"}}"#),
            false,
        )
    });
    status(&r, 401, "Unauthorized");
    s.assert_no_panics();
}

#[test]
fn stale_resource_version_and_bad_updates_conflict_and_change_nothing() {
    let s = Skiff::api_only();
    let r = post(
        &s,
        CMS,
        "application/json",
        br#"{"metadata":{"name":"cc"},"data":{"v":"1"}}"#,
    );
    assert_eq!(r.code, 201, "{}", r.body);
    let rv = r.json()["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let put = |body: String| {
        s.request(
            "PUT",
            &format!("{CMS}/cc"),
            Some("application/json"),
            Some(body.as_bytes()),
            true,
        )
    };
    let update = |v: &str| {
        format!(r#"{{"metadata":{{"name":"cc","resourceVersion":"{rv}"}},"data":{{"v":"{v}"}}}}"#)
    };
    let r = put(update("2"));
    assert_eq!(r.code, 200, "{}", r.body);
    let after_first = r.json()["metadata"]["resourceVersion"].clone();

    let r = refused(&s, "a stale resourceVersion", || put(update("3")));
    let v = status(&r, 409, "Conflict");
    assert_eq!(
        message(&v),
        "Operation cannot be fulfilled on configmaps \"cc\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let cc = s.get_json(&format!("{CMS}/cc"));
    assert_eq!(cc["data"]["v"], "2", "the stale write changed nothing");
    assert_eq!(cc["metadata"]["resourceVersion"], after_first);

    let r = refused(&s, "a name that differs from the URL", || {
        put(r#"{"metadata":{"name":"other"},"data":{"v":"4"}}"#.to_string())
    });
    status(&r, 400, "BadRequest");

    let r = refused(&s, "an update with the wrong apiVersion", || {
        put(r#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"cc"},"data":{"v":"5"}}"#.to_string())
    });
    status(&r, 400, "BadRequest");

    let r = refused(&s, "a JSON patch to a path that is not there", || {
        s.request(
            "PATCH",
            &format!("{CMS}/cc"),
            Some("application/json-patch+json"),
            Some(br#"[{"op":"replace","path":"/nope/deeper","value":1}]"#),
            true,
        )
    });
    assert!(r.code == 422 || r.code == 400, "{}", r.body);

    let r = refused(&s, "a patch in an unknown content type", || {
        s.request(
            "PATCH",
            &format!("{CMS}/cc"),
            Some("text/plain"),
            Some(b"x"),
            true,
        )
    });
    status(&r, 415, "UnsupportedMediaType");
    assert_eq!(s.get_json(&format!("{CMS}/cc"))["data"]["v"], "2");

    // The server is still healthy.
    let r = s.request("GET", "/healthz", None, None, false);
    assert_eq!((r.code, r.body.as_str()), (200, "ok"));
    s.assert_no_panics();
}

#[test]
fn invalid_objects_get_422_with_causes_naming_the_fields() {
    let s = Skiff::api_only();
    let body = deployment("Bad_Name", "", "[]");
    let r = refused(&s, "a bad name and no containers", || {
        post(&s, DEPLOYS, "application/json", body.as_bytes())
    });
    let v = status(&r, 422, "Invalid");
    assert!(
        message(&v).starts_with("Deployment.apps \"Bad_Name\" is invalid: "),
        "{v}"
    );
    assert_eq!(v["details"]["name"], "Bad_Name");
    assert_eq!(v["details"]["group"], "apps");
    assert_eq!(v["details"]["kind"], "Deployment");
    let causes = v["details"]["causes"].as_array().expect("causes");
    let cause = |field: &str| {
        causes
            .iter()
            .find(|c| c["field"] == field)
            .unwrap_or_else(|| panic!("no cause for {field}: {v}"))
            .clone()
    };
    assert_eq!(cause("metadata.name")["reason"], "FieldValueInvalid");
    assert!(cause("metadata.name")["message"]
        .as_str()
        .is_some_and(|m| m.contains("a lowercase RFC 1123 subdomain")));
    assert_eq!(
        cause("spec.template.spec.containers"),
        json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.template.spec.containers"})
    );

    // A selector that does not match the template's labels.
    let body = deployment(
        "mismatch",
        r#""replicas":-1,"#,
        r#"[{"name":"c","image":"x"}]"#,
    )
    .replace(r#""labels":{"app":"x"}"#, r#""labels":{"app":"y"}"#);
    let r = refused(&s, "a selector that misses the template", || {
        post(&s, DEPLOYS, "application/json", body.as_bytes())
    });
    let v = status(&r, 422, "Invalid");
    let m = message(&v);
    assert!(
        m.contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{m}"
    );
    assert!(
        m.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"y\"}: `selector` does not match template `labels`"),
        "{m}"
    );
    s.assert_no_panics();
}

#[test]
fn field_validation_strict_warn_and_ignore() {
    let s = Skiff::api_only();
    let body = |name: &str| {
        deployment(
            name,
            r#""replicasx":3,"#,
            r#"[{"name":"c","image":"x","imagex":"y"}]"#,
        )
    };

    // Strict: kube-apiserver's strict decoding error, a 400.
    let strict = body("strict");
    let r = refused(&s, "unknown fields under Strict", || {
        post(
            &s,
            &format!("{DEPLOYS}?fieldValidation=Strict"),
            "application/json",
            strict.as_bytes(),
        )
    });
    let v = status(&r, 400, "BadRequest");
    let m = message(&v);
    assert!(
        m.starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: ")
            && m.contains("unknown field \"spec.replicasx\"")
            && m.contains("unknown field \"spec.template.spec.containers[0].imagex\""),
        "{m}"
    );

    // Warn: created, one Warning header per unknown field, and the unknown
    // fields are dropped, never stored.
    let r = post(
        &s,
        &format!("{DEPLOYS}?fieldValidation=Warn"),
        "application/json",
        body("warned").as_bytes(),
    );
    assert_eq!(r.code, 201, "{}", r.body);
    let warnings = r.header("warning").join("\n");
    assert!(
        warnings.contains(r#"299 - "unknown field \"spec.replicasx\"""#),
        "{}",
        r.headers
    );
    // Ignore: created silently, dropped all the same.
    let r = post(
        &s,
        &format!("{DEPLOYS}?fieldValidation=Ignore"),
        "application/json",
        body("ignored").as_bytes(),
    );
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(r.header("warning").is_empty(), "{}", r.headers);
    for name in ["warned", "ignored"] {
        let d = s.get_json(&format!("{DEPLOYS}/{name}"));
        assert!(
            d["spec"].get("replicasx").is_none()
                && d["spec"]["template"]["spec"]["containers"][0]
                    .get("imagex")
                    .is_none(),
            "{name}: unknown fields must be dropped, as kube-apiserver's decoder does: {}",
            d["spec"]
        );
        assert_eq!(d["spec"]["replicas"], 1, "defaulted, not replicasx");
    }
    s.assert_no_panics();
}

#[test]
fn server_side_apply_creates_then_conflicts_with_causes() {
    let s = Skiff::api_only();
    let apply = |query: &str, value: &str| {
        let body = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  k: {value}\n"
        );
        s.request(
            "PATCH",
            &format!("{CMS}/ssa{query}"),
            Some("application/apply-patch+yaml"),
            Some(body.as_bytes()),
            true,
        )
    };
    // Apply creates what is missing, with 201 as a create would.
    let r = apply("?fieldManager=one", "one");
    assert_eq!(r.code, 201, "{}", r.body);
    let managers: Vec<Value> = r.json()["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .map(|m| json!([m["manager"], m["operation"]]))
        .collect();
    assert_eq!(managers, [json!(["one", "Apply"])]);
    assert_eq!(apply("?fieldManager=one", "one").code, 200);

    // Another manager changing an owned field: 409 with one cause per field.
    let r = refused(&s, "a conflicting apply", || {
        apply("?fieldManager=two", "two")
    });
    let v = status(&r, 409, "Conflict");
    assert_eq!(
        message(&v),
        "Apply failed with 1 conflict: conflict with \"one\": .data.k"
    );
    assert_eq!(
        v["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"one\"", "field": ".data.k"}])
    );

    // kube-apiserver validates PatchOptions: apply needs a field manager,
    // and force belongs to apply only.
    let r = refused(&s, "an apply with no fieldManager", || apply("", "three"));
    let v = status(&r, 422, "Invalid");
    assert!(
        message(&v).contains("fieldManager: Required value: is required for apply patch"),
        "{v}"
    );
    let r = refused(&s, "force on a merge patch", || {
        s.request(
            "PATCH",
            &format!("{CMS}/ssa?force=true"),
            Some("application/merge-patch+json"),
            Some(br#"{"data":{"k":"four"}}"#),
            true,
        )
    });
    let v = status(&r, 422, "Invalid");
    assert!(
        message(&v).contains("force: Forbidden: may not be specified for non-apply patch"),
        "{v}"
    );

    // force takes the field over.
    let r = apply("?fieldManager=two&force=true", "two");
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(s.get_json(&format!("{CMS}/ssa"))["data"]["k"], "two");
    s.assert_no_panics();
}
