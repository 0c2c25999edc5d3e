//! The audit log: each mutating request is one audit.k8s.io/v1 Event line
//! saying who did what to which object and how it ended; reads are not
//! logged, and neither are request bodies.

use serde_json::Value;

use crate::harness::{eventually, Skiff};

fn events(s: &Skiff) -> Vec<Value> {
    std::fs::read_to_string(s.dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn mutating_requests_are_audited_with_who_what_and_result() {
    let s = Skiff::api_only();
    s.kubectl(
        "1.33",
        &["create", "configmap", "audited", "--from-literal=k=v"],
    )
    .ok();
    s.kubectl("1.33", &["get", "configmaps"]).ok();
    s.kubectl(
        "1.33",
        &[
            "create",
            "secret",
            "generic",
            "quiet",
            "--from-literal=token=never-in-the-log",
        ],
    )
    .ok();
    s.kubectl("1.33", &["delete", "configmap", "audited"]).ok();
    let (code, _) = s.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("{}"),
        None,
        false,
    );
    assert_eq!(code, 401);

    let all = eventually(10, "four audit events", || {
        let e = events(&s);
        (e.len() >= 4).then_some(e)
    });
    let find = |verb: &str, resource: &str| {
        all.iter()
            .find(|e| e["verb"] == verb && e["objectRef"]["resource"] == resource)
            .cloned()
            .unwrap_or_else(|| panic!("no {verb} {resource} in {all:#?}"))
    };
    let create = find("create", "configmaps");
    assert_eq!(create["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(create["user"]["username"], "admin");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(create["objectRef"]["namespace"], "default");
    assert!(
        create["userAgent"]
            .as_str()
            .unwrap_or("")
            .starts_with("kubectl"),
        "{create}"
    );
    assert_eq!(create["sourceIPs"][0], "127.0.0.1");
    let delete = find("delete", "configmaps");
    assert_eq!(delete["objectRef"]["name"], "audited");
    assert_eq!(delete["responseStatus"]["code"], 200);
    let anonymous = all
        .iter()
        .find(|e| e["responseStatus"]["code"] == 401)
        .expect("the refused request");
    assert_eq!(anonymous["user"]["username"], "system:anonymous");
    assert!(
        all.iter()
            .all(|e| e["verb"] != "get" && e["verb"] != "list"),
        "reads are not audited"
    );
    let text = std::fs::read_to_string(s.dir.join("audit.log")).expect("log");
    assert!(!text.contains("never-in-the-log") && !text.contains("bmV2ZXItaW4tdGhlLWxvZw"));
}
