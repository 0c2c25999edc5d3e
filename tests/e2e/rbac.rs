//! Authentication and RBAC through kubectl: a ServiceAccount token from
//! `kubectl create token`, a RoleBinding to the default `view` role, and
//! what that account may and may not do — with Kubernetes' own messages.

use crate::harness::{eventually, Skiff};

#[test]
fn a_service_account_bound_to_view_reads_its_namespace_only() {
    let s = Skiff::api_only();
    s.kubectl("1.33", &["create", "namespace", "team"]).ok();
    s.kubectl(
        "1.33",
        &["-n", "team", "create", "serviceaccount", "reader"],
    )
    .ok();
    s.kubectl(
        "1.33",
        &[
            "-n",
            "team",
            "create",
            "rolebinding",
            "reader-view",
            "--clusterrole=view",
            "--serviceaccount=team:reader",
        ],
    )
    .ok();
    s.kubectl(
        "1.33",
        &[
            "-n",
            "team",
            "create",
            "configmap",
            "settings",
            "--from-literal=a=b",
        ],
    )
    .ok();
    // Every namespace gets its `default` account; pods naming a missing
    // account are refused as Kubernetes refuses them.
    s.kubectl("1.33", &["-n", "team", "get", "serviceaccount", "default"])
        .ok();
    let ghost = s.kubectl_stdin(
        "1.33",
        &["-n", "team", "apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  serviceAccountName: ghost\n  containers: [{name: c, image: x}]\n"),
    );
    assert!(
        ghost.stderr.contains(
            "error looking up service account team/ghost: serviceaccount \"ghost\" not found"
        ),
        "{}",
        ghost.stderr
    );
    let token = s
        .kubectl("1.33", &["-n", "team", "create", "token", "reader"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let flag = format!("--token={token}");
    let as_reader = |args: &[&str]| {
        let mut a = vec![flag.as_str()];
        a.extend(args);
        s.kubectl("1.33", &a)
    };

    let cms = as_reader(&["-n", "team", "get", "configmaps"]).ok().stdout;
    assert!(cms.contains("settings"), "{cms}");
    let who = "User \"system:serviceaccount:team:reader\"";
    let create = as_reader(&[
        "-n",
        "team",
        "create",
        "configmap",
        "x",
        "--from-literal=k=v",
    ]);
    assert_ne!(create.code, 0);
    assert!(
        create.stderr.contains(&format!(
            "configmaps is forbidden: {who} cannot create resource \"configmaps\" in API group \"\" in the namespace \"team\""
        )),
        "{}",
        create.stderr
    );
    let elsewhere = as_reader(&["-n", "default", "get", "pods"]);
    assert_ne!(elsewhere.code, 0);
    assert!(
        elsewhere.stderr.contains(&format!(
            "pods is forbidden: {who} cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        )),
        "{}",
        elsewhere.stderr
    );
    let secrets = as_reader(&["-n", "team", "get", "secrets"]);
    assert!(
        secrets.code != 0 && secrets.stderr.contains("forbidden"),
        "view never reads Secrets: {}",
        secrets.stderr
    );

    // The oldest kubectl served sees the same answers.
    let old_cms = s
        .kubectl("1.27", &[flag.as_str(), "-n", "team", "get", "configmaps"])
        .ok()
        .stdout;
    assert!(old_cms.contains("settings"), "{old_cms}");
    let old_create = s.kubectl(
        "1.27",
        &[
            flag.as_str(),
            "-n",
            "team",
            "create",
            "configmap",
            "y",
            "--from-literal=k=v",
        ],
    );
    assert!(
        old_create.code != 0 && old_create.stderr.contains("configmaps is forbidden"),
        "{}",
        old_create.stderr
    );
    assert_eq!(
        s.kubectl(
            "1.27",
            &[flag.as_str(), "-n", "team", "auth", "can-i", "list", "pods"]
        )
        .stdout
        .trim(),
        "yes"
    );

    // kubectl auth can-i asks the server about itself.
    assert_eq!(
        as_reader(&["-n", "team", "auth", "can-i", "list", "pods"])
            .stdout
            .trim(),
        "yes"
    );
    assert_eq!(
        as_reader(&["-n", "team", "auth", "can-i", "create", "pods"])
            .stdout
            .trim(),
        "no"
    );
    assert_eq!(
        as_reader(&["-n", "default", "auth", "can-i", "list", "pods"])
            .stdout
            .trim(),
        "no"
    );
    let list = as_reader(&["-n", "team", "auth", "can-i", "--list"])
        .ok()
        .stdout;
    let pods_line = list
        .lines()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_else(|| panic!("no pods line in {list}"));
    assert!(pods_line.contains("[get list watch]"), "{list}");
    assert!(!list.lines().any(|l| l.starts_with("secrets ")), "{list}");

    // Not logged in: kubectl says so.
    let bogus = s.kubectl("1.33", &["--token=not-a-token", "get", "pods"]);
    assert_ne!(bogus.code, 0);
    assert!(
        bogus.stderr.contains("You must be logged in to the server"),
        "{}",
        bogus.stderr
    );

    // Deleting the account revokes its tokens.
    s.kubectl(
        "1.33",
        &["-n", "team", "delete", "serviceaccount", "reader"],
    )
    .ok();
    let revoked = as_reader(&["-n", "team", "get", "configmaps"]);
    assert!(
        revoked.stderr.contains("You must be logged in"),
        "{}",
        revoked.stderr
    );
    // The admin is untouched by all this.
    assert!(s
        .kubectl("1.33", &["auth", "can-i", "*", "*"])
        .ok()
        .stdout
        .contains("yes"));
}

#[test]
fn users_of_a_token_file_are_authorized_through_their_groups() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("tokens.csv");
    std::fs::write(
        &file,
        "# team tokens\nalice-t0ken,alice,1001,\"devs,oncall\"\n",
    )
    .expect("token file");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let s = Skiff::start_in_with(
        &data,
        &[
            "--api-only",
            "--token-auth-file",
            file.to_str().expect("path"),
        ],
    );
    s.kubectl("1.33", &["create", "namespace", "dev"]).ok();
    s.kubectl(
        "1.33",
        &[
            "-n",
            "dev",
            "create",
            "rolebinding",
            "devs-edit",
            "--clusterrole=edit",
            "--group=devs",
        ],
    )
    .ok();
    let alice = |args: &[&str]| {
        let mut a = vec!["--token=alice-t0ken"];
        a.extend(args);
        s.kubectl("1.33", &a)
    };
    alice(&[
        "-n",
        "dev",
        "create",
        "configmap",
        "made-by-alice",
        "--from-literal=k=v",
    ])
    .ok();
    let other = alice(&[
        "-n",
        "default",
        "create",
        "configmap",
        "x",
        "--from-literal=k=v",
    ]);
    assert!(
        other
            .stderr
            .contains("User \"alice\" cannot create resource \"configmaps\""),
        "{}",
        other.stderr
    );
    eventually(10, "the audit log naming alice", || {
        let audit = std::fs::read_to_string(data.join("audit.log")).unwrap_or_default();
        audit.contains("\"username\":\"alice\"").then_some(())
    });
}
