//! Bad input gets a 4xx metav1.Status and writes nothing.

use serde_json::Value;

use crate::harness::Skiff;

#[track_caller]
fn status(body: &str, code: u16, reason: &str) -> Value {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not a JSON Status ({e}): {body}"));
    assert_eq!(v["kind"], "Status", "{body}");
    assert_eq!(v["code"], code, "{body}");
    assert_eq!(v["reason"], reason, "{body}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    v
}

fn configmap_names(s: &Skiff) -> Vec<String> {
    s.get_json("/api/v1/namespaces/default/configmaps")["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn bad_requests_get_a_status_and_write_nothing() {
    let s = Skiff::start();
    let cms = "/api/v1/namespaces/default/configmaps";

    let (code, body) = s.curl(
        "POST",
        cms,
        Some("application/json"),
        Some(b"{\"metadata\": {\"name\": \"half\""),
        true,
    );
    assert_eq!(code, 400);
    status(&body, 400, "BadRequest");

    let (code, body) = s.curl(
        "POST",
        cms,
        Some("application/yaml"),
        Some(b"metadata:\n  name: [unclosed\n"),
        true,
    );
    assert_eq!(code, 400);
    status(&body, 400, "BadRequest");

    let big = format!(
        "{{\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"k\":\"{}\"}}}}",
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let (code, body) = s.curl(
        "POST",
        cms,
        Some("application/json"),
        Some(big.as_bytes()),
        true,
    );
    assert_eq!(code, 413);
    status(&body, 413, "RequestEntityTooLarge");

    let (code, body) = s.curl(
        "GET",
        "/api/v1/namespaces/default/widgets",
        None,
        None,
        true,
    );
    assert_eq!(code, 404);
    status(&body, 404, "NotFound");

    let wrong = br#"{"apiVersion":"apps/v2","kind":"ConfigMap","metadata":{"name":"wrong"}}"#;
    let (code, body) = s.curl("POST", cms, Some("application/json"), Some(wrong), true);
    assert_eq!(code, 400);
    assert!(status(&body, 400, "BadRequest")["message"]
        .as_str()
        .unwrap_or("")
        .contains("apps/v2"));

    let kind = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"wrongkind"}}"#;
    let (code, _) = s.curl("POST", cms, Some("application/json"), Some(kind), true);
    assert_eq!(code, 400);

    let (code, body) = s.curl("POST", cms, Some("application/json"), Some(b"[1,2]"), true);
    assert_eq!(code, 400);
    status(&body, 400, "BadRequest");

    let (code, body) = s.curl("GET", cms, None, None, false);
    assert_eq!(code, 401);
    status(&body, 401, "Unauthorized");

    let (code, body) = s.curl(
        "POST",
        "/api/v1/namespaces/missing/configmaps",
        Some("application/json"),
        Some(br#"{"metadata":{"name":"x"}}"#),
        true,
    );
    assert_eq!(code, 404);
    assert!(status(&body, 404, "NotFound")["message"]
        .as_str()
        .unwrap_or("")
        .contains("namespaces \"missing\" not found"));

    assert!(
        configmap_names(&s).is_empty(),
        "nothing was written: {:?}",
        configmap_names(&s)
    );

    // Optimistic concurrency: a PUT with a stale resourceVersion conflicts.
    let (code, body) = s.curl(
        "POST",
        cms,
        Some("application/json"),
        Some(br#"{"metadata":{"name":"cc"},"data":{"v":"1"}}"#),
        true,
    );
    assert_eq!(code, 201, "{body}");
    let created: Value = serde_json::from_str(&body).expect("created object");
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let update = |v: &str| {
        format!(r#"{{"metadata":{{"name":"cc","resourceVersion":"{rv}"}},"data":{{"v":"{v}"}}}}"#)
    };
    let (code, body) = s.curl(
        "PUT",
        &format!("{cms}/cc"),
        Some("application/json"),
        Some(update("2").as_bytes()),
        true,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.curl(
        "PUT",
        &format!("{cms}/cc"),
        Some("application/json"),
        Some(update("3").as_bytes()),
        true,
    );
    assert_eq!(code, 409);
    status(&body, 409, "Conflict");
    assert_eq!(
        s.get_json(&format!("{cms}/cc"))["data"]["v"],
        "2",
        "the stale write changed nothing"
    );

    // A bad patch leaves the object as it was.
    let (code, body) = s.curl(
        "PATCH",
        &format!("{cms}/cc"),
        Some("application/json-patch+json"),
        Some(br#"[{"op":"replace","path":"/nope/deeper","value":1}]"#),
        true,
    );
    assert!(code == 422 || code == 400, "{code} {body}");
    let (code, _) = s.curl(
        "PATCH",
        &format!("{cms}/cc"),
        Some("text/plain"),
        Some(b"x"),
        true,
    );
    assert_eq!(code, 415);
    assert_eq!(s.get_json(&format!("{cms}/cc"))["data"]["v"], "2");

    // The server is still healthy.
    let (code, body) = s.curl("GET", "/healthz", None, None, false);
    assert_eq!((code, body.as_str()), (200, "ok"));
}
