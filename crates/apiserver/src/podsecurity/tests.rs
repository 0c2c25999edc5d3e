//! Each check with a pod that fails it and one that passes, the wording
//! of the messages, and the labels.

use serde_json::{json, Value};

use super::*;

/// A pod that passes `restricted`, to be spoiled one field at a time.
fn restricted_pod() -> Value {
    json!({
        "metadata": {"name": "ok", "namespace": "ns"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "c",
                "image": "busybox",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    })
}

fn check(level: Level, pod: &Value) -> String {
    forbidden_detail(&evaluate(level, &pod["metadata"], &pod["spec"]))
}

/// `restricted_pod` with `edit` applied; both levels' messages.
fn spoiled(edit: impl FnOnce(&mut Value)) -> (String, String) {
    let mut pod = restricted_pod();
    edit(&mut pod);
    (check(Level::Baseline, &pod), check(Level::Restricted, &pod))
}

fn container(pod: &mut Value) -> &mut Value {
    &mut pod["spec"]["containers"][0]
}

#[test]
fn a_restricted_pod_passes_every_level() {
    let pod = restricted_pod();
    for level in [Level::Privileged, Level::Baseline, Level::Restricted] {
        assert_eq!(check(level, &pod), "", "{level:?}");
    }
}

#[test]
fn a_plain_pod_passes_baseline_and_fails_restricted_four_ways() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    assert_eq!(check(Level::Baseline, &pod), "");
    assert_eq!(
        check(Level::Restricted, &pod),
        "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
         seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
}

#[test]
fn host_namespaces() {
    let (b, r) = spoiled(|p| {
        p["spec"]["hostNetwork"] = json!(true);
        p["spec"]["hostIPC"] = json!(true);
    });
    assert_eq!(b, "host namespaces (hostNetwork=true, hostIPC=true)");
    assert_eq!(r, b);
    let (b, _) = spoiled(|p| p["spec"]["hostPID"] = json!(false));
    assert_eq!(b, "");
}

#[test]
fn privileged_containers_init_and_ephemeral_included() {
    let (b, _) = spoiled(|p| {
        container(p)["securityContext"]["privileged"] = json!(true);
        p["spec"]["initContainers"] =
            json!([{"name": "init", "securityContext": {"privileged": true}}]);
        p["spec"]["ephemeralContainers"] =
            json!([{"name": "debug", "securityContext": {"privileged": false}}]);
    });
    assert!(
        b.starts_with(
            "privileged (containers \"init\", \"c\" must not set securityContext.privileged=true)"
        ),
        "{b}"
    );
    let (b, _) = spoiled(|p| {
        p["spec"]["ephemeralContainers"] =
            json!([{"name": "debug", "securityContext": {"privileged": true}}]);
    });
    assert!(
        b.starts_with("privileged (container \"debug\" must not"),
        "{b}"
    );
}

#[test]
fn capabilities_beyond_the_default_set() {
    let (b, r) = spoiled(|p| {
        container(p)["securityContext"]["capabilities"]["add"] =
            json!(["NET_ADMIN", "CHOWN", "SYS_TIME"]);
    });
    assert_eq!(
        b,
        "non-default capabilities (container \"c\" must not include \"NET_ADMIN\", \"SYS_TIME\" in securityContext.capabilities.add)"
    );
    assert_eq!(
        r,
        "unrestricted capabilities (container \"c\" must not include \"CHOWN\", \"NET_ADMIN\", \"SYS_TIME\" in securityContext.capabilities.add)"
    );
    let (b, r) = spoiled(|p| {
        container(p)["securityContext"]["capabilities"]["add"] = json!(["NET_BIND_SERVICE"]);
    });
    assert_eq!((b.as_str(), r.as_str()), ("", ""));
    let (_, r) =
        spoiled(|p| container(p)["securityContext"]["capabilities"]["drop"] = json!(["NET_RAW"]));
    assert_eq!(
        r,
        "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"])"
    );
}

#[test]
fn host_path_volumes_and_restricted_volume_types() {
    let (b, r) = spoiled(|p| {
        p["spec"]["volumes"] = json!([
            {"name": "host", "hostPath": {"path": "/"}},
            {"name": "git", "gitRepo": {"repository": "x"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "cm", "configMap": {"name": "x"}},
        ]);
    });
    assert_eq!(b, "hostPath volumes (volume \"host\")");
    assert_eq!(
        r,
        "restricted volume types (volumes \"host\", \"git\" use restricted volume types \"gitRepo\", \"hostPath\")"
    );
    let (b, r) = spoiled(|p| {
        p["spec"]["volumes"] = json!([{"name": "n", "nfs": {"server": "s", "path": "/"}}])
    });
    assert_eq!(b, "");
    assert_eq!(
        r,
        "restricted volume types (volume \"n\" uses restricted volume type \"nfs\")"
    );
}

#[test]
fn host_ports() {
    let (b, _) = spoiled(|p| {
        container(p)["ports"] = json!([{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 443}, {"containerPort": 82}]);
    });
    assert_eq!(b, "hostPort (container \"c\" uses hostPorts 443, 8080)");
    let (b, _) = spoiled(|p| container(p)["ports"] = json!([{"containerPort": 80, "hostPort": 0}]));
    assert_eq!(b, "");
}

#[test]
fn app_armor_unconfined() {
    let (b, _) = spoiled(|p| {
        container(p)["securityContext"]["appArmorProfile"] = json!({"type": "Unconfined"});
    });
    assert_eq!(
        b,
        "forbidden AppArmor profile (container \"c\" must not set AppArmor profile type to \"Unconfined\")"
    );
    let (b, _) = spoiled(|p| {
        p["spec"]["securityContext"]["appArmorProfile"] =
            json!({"type": "Localhost", "localhostProfile": "x"});
        p["metadata"]["annotations"] =
            json!({"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"});
    });
    assert_eq!(b, "");
    let (b, _) = spoiled(|p| {
        p["metadata"]["annotations"] =
            json!({"container.apparmor.security.beta.kubernetes.io/c": "unconfined"});
    });
    assert_eq!(
        b,
        r#"forbidden AppArmor profile (annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/c=\"unconfined\"")"#
    );
}

#[test]
fn se_linux_options() {
    let (b, _) = spoiled(|p| {
        p["spec"]["securityContext"]["seLinuxOptions"] = json!({"type": "spc_t"});
        container(p)["securityContext"]["seLinuxOptions"] = json!({"user": "u", "level": "s0"});
    });
    assert_eq!(
        b,
        "seLinuxOptions (pod and container \"c\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set)"
    );
    let (b, _) = spoiled(|p| {
        container(p)["securityContext"]["seLinuxOptions"] =
            json!({"type": "container_t", "level": "s0:c1"});
    });
    assert_eq!(b, "");
}

#[test]
fn proc_mount() {
    let (b, _) = spoiled(|p| container(p)["securityContext"]["procMount"] = json!("Unmasked"));
    assert_eq!(
        b,
        "procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\")"
    );
    let (b, _) = spoiled(|p| container(p)["securityContext"]["procMount"] = json!("Default"));
    assert_eq!(b, "");
}

#[test]
fn seccomp_unconfined_and_required() {
    let (b, r) = spoiled(|p| {
        container(p)["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"});
    });
    assert_eq!(
        b,
        "seccompProfile (container \"c\" must not set securityContext.seccompProfile.type to \"Unconfined\")"
    );
    assert_eq!(r, b);
    // A container-level profile stands in for a missing pod-level one.
    let (_, r) = spoiled(|p| {
        p["spec"]["securityContext"] = json!({"runAsNonRoot": true});
        container(p)["securityContext"]["seccompProfile"] =
            json!({"type": "Localhost", "localhostProfile": "p.json"});
    });
    assert_eq!(r, "");
}

#[test]
fn sysctls() {
    let (b, _) = spoiled(|p| {
        p["spec"]["securityContext"]["sysctls"] = json!([
            {"name": "kernel.msgmax", "value": "1"},
            {"name": "net.ipv4.tcp_keepalive_time", "value": "60"},
            {"name": "net.core.somaxconn", "value": "1"},
        ]);
    });
    assert_eq!(b, "forbidden sysctls (kernel.msgmax, net.core.somaxconn)");
    let (b, _) = spoiled(|p| {
        p["spec"]["securityContext"]["sysctls"] =
            json!([{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]);
    });
    assert_eq!(b, "");
}

#[test]
fn host_process() {
    let (b, _) = spoiled(|p| {
        p["spec"]["securityContext"]["windowsOptions"] = json!({"hostProcess": true});
    });
    assert_eq!(
        b,
        "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)"
    );
}

#[test]
fn allow_privilege_escalation_and_run_as() {
    let (b, r) =
        spoiled(|p| container(p)["securityContext"]["allowPrivilegeEscalation"] = json!(true));
    assert_eq!(b, "");
    assert_eq!(
        r,
        "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)"
    );
    let (_, r) = spoiled(|p| container(p)["securityContext"]["runAsNonRoot"] = json!(false));
    assert_eq!(
        r,
        "runAsNonRoot != true (container \"c\" must not set securityContext.runAsNonRoot=false)"
    );
    let (b, r) = spoiled(|p| {
        p["spec"]["securityContext"]["runAsUser"] = json!(0);
        container(p)["securityContext"]["runAsUser"] = json!(1000);
    });
    assert_eq!(b, "");
    assert_eq!(r, "runAsUser=0 (pod must not set runAsUser=0)");
    // Container-level runAsNonRoot covers a pod that says nothing.
    let (_, r) = spoiled(|p| {
        p["spec"]["securityContext"] = json!({"seccompProfile": {"type": "RuntimeDefault"}});
        container(p)["securityContext"]["runAsNonRoot"] = json!(true);
    });
    assert_eq!(r, "");
}

#[test]
fn baseline_checks_come_first_then_restricted_ones() {
    let (_, r) = spoiled(|p| {
        p["spec"]["hostNetwork"] = json!(true);
        container(p)["securityContext"] = json!({"privileged": true});
    });
    assert!(
        r.starts_with("host namespaces (hostNetwork=true), privileged (container \"c\" must not set securityContext.privileged=true), allowPrivilegeEscalation != false"),
        "{r}"
    );
}

#[test]
fn labels_parse_into_a_policy() {
    let (p, errs) = Policy::from_labels(&json!({
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "v1.29",
        "pod-security.kubernetes.io/warn": "restricted",
        "app": "x",
    }));
    assert!(errs.is_empty());
    assert_eq!(p.enforce.to_string(), "baseline:v1.29");
    assert_eq!(p.warn.to_string(), "restricted:latest");
    assert_eq!(p.audit.to_string(), "privileged:latest");
    assert_eq!(Policy::from_labels(&Value::Null).0, Policy::default());
}

#[test]
fn bad_labels_fail_closed_for_enforce_and_open_for_the_rest() {
    let (p, errs) = Policy::from_labels(&json!({
        "pod-security.kubernetes.io/enforce": "foo",
        "pod-security.kubernetes.io/warn": "bar",
        "pod-security.kubernetes.io/audit-version": "1.2",
    }));
    assert_eq!(p.enforce.level, Level::Restricted);
    assert_eq!(p.warn.level, Level::Privileged);
    let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "foo": must be one of privileged, baseline, restricted"#,
            r#"metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "1.2": must be "latest" or "v1.x""#,
            r#"metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "bar": must be one of privileged, baseline, restricted"#,
        ]
    );
    for bad in ["v2.1", "v1.", "v1.01", "latest2", ""] {
        assert_eq!(Version::parse(bad), None, "{bad}");
    }
    assert_eq!(Version::parse("v1.0"), Some(Version::Minor(0)));
}

#[test]
fn only_image_changes_make_a_pod_update_significant() {
    let old = restricted_pod();
    let mut labels = old.clone();
    labels["metadata"]["labels"] = json!({"a": "b"});
    assert!(!significant_pod_update(&old, &labels));
    let mut image = old.clone();
    container(&mut image)["image"] = json!("busybox:2");
    assert!(significant_pod_update(&old, &image));
    let mut debug = old.clone();
    debug["spec"]["ephemeralContainers"] = json!([{"name": "d", "image": "x"}]);
    assert!(significant_pod_update(&old, &debug));
}

#[test]
fn workloads_are_checked_through_their_pod_template() {
    let deploy = resources::by_kind("apps", "v1", "Deployment").expect("served");
    let obj = json!({"spec": {"template": {"metadata": {}, "spec": {"hostPID": true}}}});
    let (_, spec) = pod_template(deploy, &obj).expect("a template");
    assert_eq!(spec["hostPID"], true);
    let job = resources::by_kind("batch", "v1", "Job").expect("served");
    let obj = json!({"spec": {"template": {"spec": {"hostIPC": true}}}});
    assert_eq!(
        pod_template(job, &obj).expect("a template").1["hostIPC"],
        true
    );
    let cm = resources::by_kind("", "v1", "ConfigMap").expect("served");
    assert!(pod_template(cm, &json!({})).is_none());
}

#[test]
fn enforce_refuses_with_kubernetes_words_and_warn_only_warns() {
    let policy = Policy {
        enforce: LevelVersion {
            level: Level::Baseline,
            version: Version::Latest,
        },
        warn: LevelVersion {
            level: Level::Restricted,
            version: Version::Latest,
        },
        audit: LevelVersion {
            level: Level::Restricted,
            version: Version::Minor(30),
        },
    };
    let pod = json!({"metadata": {}, "spec": {"hostNetwork": true, "containers": [{"name": "c"}]}});
    let err = evaluate_pod(policy, &[], &pod["metadata"], &pod["spec"], Some("web"))
        .expect_err("refused");
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        r#"pods "web" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)"#
    );
    let plain = json!({"metadata": {}, "spec": {"containers": [{"name": "c"}]}});
    let d = evaluate_pod(policy, &[], &plain["metadata"], &plain["spec"], Some("web"))
        .expect("allowed");
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].starts_with(
        r#"would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false"#
    ));
    assert!(d.audit_annotations[AUDIT_VIOLATIONS]
        .starts_with(r#"would violate PodSecurity "restricted:v1.30": "#));
    assert_eq!(d.audit_annotations[ENFORCE_POLICY], "baseline:latest");
    // A workload (no name to refuse) is only warned about.
    let d = evaluate_pod(policy, &[], &pod["metadata"], &pod["spec"], None).expect("allowed");
    assert!(d.warnings[0].contains("host namespaces (hostNetwork=true)"));
    // An unlabelled namespace says nothing at all.
    let d = evaluate_pod(
        Policy::default(),
        &[],
        &pod["metadata"],
        &pod["spec"],
        Some("web"),
    )
    .expect("allowed");
    assert_eq!(d, Decision::default());
}
