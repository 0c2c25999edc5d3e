//! Pod Security admission: Kubernetes' built-in `PodSecurity` plugin,
//! which holds pods to the Pod Security Standards a namespace's labels name.
//!
//! A namespace picks a level (`privileged`, `baseline`, `restricted`) for
//! each of three modes with `pod-security.kubernetes.io/<mode>` labels, and
//! a policy version with `pod-security.kubernetes.io/<mode>-version`:
//! - `enforce`: a pod that violates the level is refused (403);
//! - `warn`: the client is told (`Warning` header), the write goes ahead;
//!   pods and workloads with pod templates both get warnings;
//! - `audit`: the audit event of the request is annotated.
//!
//! Unlabelled modes are `privileged:latest`, so an unlabelled namespace is
//! not restricted at all. Every version (`latest` or `v1.x`) is evaluated
//! with the newest checks; the version is only echoed in messages.
//!
//! Checks, their order, and the wording of every message follow
//! `k8s.io/pod-security-admission` as of Kubernetes 1.33, because people
//! and scripts read them: the baseline checks, then (for `restricted`) the
//! restricted ones. Baseline checks that a restricted check supersedes
//! (capabilities, hostPath volumes, seccomp) only run at `baseline`.
//!
//! The checks read the pod spec alone. Wasm pods are judged like any other:
//! the standard is about what a spec asks for, whatever runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use apimachinery::validation::{ErrorType, FieldError};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry;
use crate::resources::{self, Resource};
use crate::store::Store;

/// The label prefix of every Pod Security label and audit annotation.
pub const PREFIX: &str = "pod-security.kubernetes.io/";
/// Audit annotation: the violations of the `audit` level.
pub const AUDIT_VIOLATIONS: &str = "pod-security.kubernetes.io/audit-violations";
/// Audit annotation: the enforce level a pod was checked against.
pub const ENFORCE_POLICY: &str = "pod-security.kubernetes.io/enforce-policy";
/// Audit annotation: the namespace's labels did not parse.
pub const ERROR: &str = "pod-security.kubernetes.io/error";
/// How many existing pods a new enforce level is tried on, as Kubernetes.
const MAX_PODS_TO_CHECK: usize = 3000;

/// A Pod Security Standard, from least to most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A policy version: `latest` or `v1.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Latest,
    Minor(u32),
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        if s == "latest" {
            return Some(Version::Latest);
        }
        let minor = s.strip_prefix("v1.")?;
        let digits = !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit());
        if !digits || (minor.len() > 1 && minor.starts_with('0')) {
            return None;
        }
        minor.parse().ok().map(Version::Minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::Minor(m) => write!(f, "v1.{m}"),
        }
    }
}

/// A level at a version, shown as Kubernetes does: `restricted:latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: Version,
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

const PRIVILEGED_LATEST: LevelVersion = LevelVersion {
    level: Level::Privileged,
    version: Version::Latest,
};

/// What a namespace's labels ask for in each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            enforce: PRIVILEGED_LATEST,
            audit: PRIVILEGED_LATEST,
            warn: PRIVILEGED_LATEST,
        }
    }
}

impl Policy {
    /// The policy of a namespace's labels, and what was wrong with them.
    /// A bad enforce level fails closed (`restricted`), bad audit and warn
    /// levels fail open (`privileged`), a bad version is `latest`; all as
    /// Kubernetes' `PolicyToEvaluate`.
    pub fn from_labels(labels: &Value) -> (Policy, Vec<FieldError>) {
        let mut p = Policy::default();
        let mut errs = Vec::new();
        let empty = Map::new();
        let labels = labels.as_object().unwrap_or(&empty);
        let modes: [(&str, &mut LevelVersion, Level); 3] = [
            ("enforce", &mut p.enforce, Level::Restricted),
            ("audit", &mut p.audit, Level::Privileged),
            ("warn", &mut p.warn, Level::Privileged),
        ];
        for (mode, lv, fallback) in modes {
            let key = format!("{PREFIX}{mode}");
            if let Some(v) = labels.get(&key) {
                let v = v.as_str().unwrap_or_default();
                lv.level = Level::parse(v).unwrap_or_else(|| {
                    errs.push(label_error(
                        &key,
                        v,
                        "must be one of privileged, baseline, restricted",
                    ));
                    fallback
                });
            }
            let key = format!("{PREFIX}{mode}-version");
            if let Some(v) = labels.get(&key) {
                let v = v.as_str().unwrap_or_default();
                lv.version = Version::parse(v).unwrap_or_else(|| {
                    errs.push(label_error(&key, v, "must be \"latest\" or \"v1.x\""));
                    Version::Latest
                });
            }
        }
        (p, errs)
    }

    fn all_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn]
            .iter()
            .all(|lv| lv.level == Level::Privileged)
    }
}

fn label_error(key: &str, value: &str, detail: &str) -> FieldError {
    FieldError {
        kind: ErrorType::Invalid,
        field: format!("metadata.labels[{key}]"),
        value: Some(json!(value)),
        detail: detail.into(),
    }
}

/// One failed check: a short reason and, optionally, what failed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

/// `reason (detail), reason, …`: what refusals and warnings print.
pub fn forbidden_detail(vs: &[Violation]) -> String {
    vs.iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `reason, reason, …`: what the existing-pods warnings print.
pub fn forbidden_reason(vs: &[Violation]) -> String {
    vs.iter()
        .map(|v| v.reason.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- the checks ----

/// A pod (or pod template) as the checks see it.
struct Pod<'a> {
    annotations: &'a Map<String, Value>,
    spec: &'a Value,
}

type Check = fn(&Pod<'_>) -> Option<Violation>;

/// Baseline checks that no restricted check supersedes, in Kubernetes'
/// order (its check files sorted by name).
const BASELINE: [Check; 8] = [
    app_armor_profile,
    host_namespaces,
    host_ports,
    privileged,
    proc_mount,
    se_linux_options,
    sysctls,
    windows_host_process,
];
/// Baseline checks that a restricted check covers (Kubernetes' `Overlap`).
const BASELINE_ONLY: [Check; 3] = [capabilities_baseline, host_path_volumes, seccomp_baseline];
const RESTRICTED: [Check; 6] = [
    allow_privilege_escalation,
    capabilities_restricted,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_restricted,
];

/// Every violation of `level` by a pod with these metadata and spec.
pub fn evaluate(level: Level, metadata: &Value, spec: &Value) -> Vec<Violation> {
    let empty = Map::new();
    let pod = Pod {
        annotations: metadata["annotations"].as_object().unwrap_or(&empty),
        spec,
    };
    let checks: Vec<Check> = match level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => BASELINE.iter().chain(&BASELINE_ONLY).copied().collect(),
        Level::Restricted => BASELINE.iter().chain(&RESTRICTED).copied().collect(),
    };
    checks.into_iter().filter_map(|c| c(&pod)).collect()
}

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation {
        reason: reason.into(),
        detail: detail.into(),
    })
}

/// Init, regular and ephemeral containers, as Kubernetes visits them.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| spec[k].as_array().into_iter().flatten())
}

fn name(c: &Value) -> String {
    c["name"].as_str().unwrap_or_default().to_string()
}

/// The security context of a container or pod, or Null.
fn sc(v: &Value) -> &Value {
    &v["securityContext"]
}

fn pluralize<'a>(one: &'a str, many: &'a str, n: usize) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Go's `joinQuote`: `"a", "b"`.
fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|s| go_quote(s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Go's `%q` for the strings that appear in pod specs.
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `container "a"` / `containers "a", "b"`.
fn containers_phrase(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Names of the containers for which `bad` holds.
fn bad_containers(spec: &Value, bad: impl Fn(&Value) -> bool) -> Vec<String> {
    containers(spec).filter(|c| bad(c)).map(name).collect()
}

fn app_armor_profile(pod: &Pod<'_>) -> Option<Violation> {
    let allowed = |t: &Value| matches!(t.as_str(), Some("RuntimeDefault" | "Localhost"));
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let profile = &sc(pod.spec)["appArmorProfile"];
    if profile.is_object() && !allowed(&profile["type"]) {
        setters.push("pod".to_string());
        values.insert(profile["type"].as_str().unwrap_or_default().to_string());
    }
    let mut bad = Vec::new();
    for c in containers(pod.spec) {
        let p = &sc(c)["appArmorProfile"];
        if p.is_object() && !allowed(&p["type"]) {
            bad.push(name(c));
            values.insert(p["type"].as_str().unwrap_or_default().to_string());
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    let mut values: Vec<String> = values.into_iter().collect();
    let mut annotations: Vec<String> = pod
        .annotations
        .iter()
        .filter(|(k, _)| k.starts_with("container.apparmor.security.beta.kubernetes.io/"))
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or_default();
            let ok = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (!ok).then(|| format!("{k}={}", go_quote(v)))
        })
        .collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn host_namespaces(pod: &Pod<'_>) -> Option<Violation> {
    let shared: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| pod.spec[*k].as_bool() == Some(true))
        .map(|k| format!("{k}=true"))
        .collect();
    if shared.is_empty() {
        return None;
    }
    violation("host namespaces", shared.join(", "))
}

fn host_ports(pod: &Pod<'_>) -> Option<Violation> {
    let mut ports = BTreeSet::new();
    let mut bad = Vec::new();
    for c in containers(pod.spec) {
        let used: Vec<i64> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["hostPort"].as_i64())
            .filter(|p| *p != 0)
            .collect();
        if !used.is_empty() {
            bad.push(name(c));
            // Kubernetes keeps them in a string set: sorted as text.
            ports.extend(used.iter().map(i64::to_string));
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

fn privileged(pod: &Pod<'_>) -> Option<Violation> {
    let bad = bad_containers(pod.spec, |c| sc(c)["privileged"].as_bool() == Some(true));
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

fn proc_mount(pod: &Pod<'_>) -> Option<Violation> {
    let mut types = BTreeSet::new();
    let mut bad = Vec::new();
    for c in containers(pod.spec) {
        if let Some(t) = sc(c)["procMount"].as_str().filter(|t| *t != "Default") {
            bad.push(name(c));
            types.insert(t.to_string());
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&types)
        ),
    )
}

fn se_linux_options(pod: &Pod<'_>) -> Option<Violation> {
    const TYPES: [&str; 5] = [
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    let mut bad_types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |opts: &Value| {
        if !opts.is_object() {
            return true;
        }
        let s = |k: &str| opts[k].as_str().unwrap_or_default().to_string();
        let mut ok = true;
        if !TYPES.contains(&s("type").as_str()) {
            bad_types.insert(s("type"));
            ok = false;
        }
        if !s("user").is_empty() {
            set_user = true;
            ok = false;
        }
        if !s("role").is_empty() {
            set_role = true;
            ok = false;
        }
        ok
    };
    let mut setters = Vec::new();
    if !valid(&sc(pod.spec)["seLinuxOptions"]) {
        setters.push("pod".to_string());
    }
    let bad: Vec<String> = containers(pod.spec)
        .filter(|c| !valid(&sc(c)["seLinuxOptions"]))
        .map(name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&bad_types)
        ));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

/// The sysctls Kubernetes counts as safe (its list as of 1.32).
const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

fn sysctls(pod: &Pod<'_>) -> Option<Violation> {
    let bad: Vec<&str> = sc(pod.spec)["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation("forbidden sysctls", bad.join(", "))
}

fn windows_host_process(pod: &Pod<'_>) -> Option<Violation> {
    let host_process = |sc: &Value| sc["windowsOptions"]["hostProcess"].as_bool() == Some(true);
    let mut setters = Vec::new();
    if host_process(sc(pod.spec)) {
        setters.push("pod".to_string());
    }
    let bad = bad_containers(pod.spec, |c| host_process(sc(c)));
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

/// Docker's default capabilities, which baseline lets a container add.
const DEFAULT_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Value) -> impl Iterator<Item = &str> {
    sc(c)["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn capabilities_baseline(pod: &Pod<'_>) -> Option<Violation> {
    let mut caps = BTreeSet::new();
    let mut bad = Vec::new();
    for c in containers(pod.spec) {
        let extra: Vec<&str> = added_capabilities(c)
            .filter(|cap| !DEFAULT_CAPABILITIES.contains(cap))
            .collect();
        if !extra.is_empty() {
            bad.push(name(c));
            caps.extend(extra);
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(&caps)
        ),
    )
}

fn host_path_volumes(pod: &Pod<'_>) -> Option<Violation> {
    let bad: Vec<String> = volumes(pod.spec)
        .filter(|v| v["hostPath"].is_object())
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    )
}

fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec["volumes"].as_array().into_iter().flatten()
}

fn valid_seccomp(t: &Value) -> bool {
    matches!(t.as_str(), Some("RuntimeDefault" | "Localhost"))
}

fn seccomp_baseline(pod: &Pod<'_>) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let profile = &sc(pod.spec)["seccompProfile"];
    if profile.is_object() && !valid_seccomp(&profile["type"]) {
        setters.push("pod".to_string());
        values.insert(profile["type"].as_str().unwrap_or_default().to_string());
    }
    let mut bad = Vec::new();
    for c in containers(pod.spec) {
        let p = &sc(c)["seccompProfile"];
        if p.is_object() && !valid_seccomp(&p["type"]) {
            bad.push(name(c));
            values.insert(p["type"].as_str().unwrap_or_default().to_string());
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn allow_privilege_escalation(pod: &Pod<'_>) -> Option<Violation> {
    let bad = bad_containers(pod.spec, |c| {
        sc(c)["allowPrivilegeEscalation"].as_bool() != Some(false)
    });
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

fn capabilities_restricted(pod: &Pod<'_>) -> Option<Violation> {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(pod.spec) {
        let capabilities = &sc(c)["capabilities"];
        if !capabilities.is_object() {
            missing_drop.push(name(c));
            continue;
        }
        let drops_all = capabilities["drop"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d == "ALL");
        if !drops_all {
            missing_drop.push(name(c));
        }
        let extra: Vec<&str> = added_capabilities(c)
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(name(c));
            caps.extend(extra);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&caps)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

/// Volume types restricted pods may use.
const ALLOWED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Volume sources Kubernetes names when it refuses them.
const NAMED_VOLUMES: [&str; 21] = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn restricted_volumes(pod: &Pod<'_>) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in volumes(pod.spec) {
        if ALLOWED_VOLUMES.iter().any(|k| v[*k].is_object()) {
            continue;
        }
        bad.push(name(v));
        let named = NAMED_VOLUMES.iter().find(|k| v[**k].is_object());
        types.insert(named.copied().unwrap_or("unknown"));
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root(pod: &Pod<'_>) -> Option<Violation> {
    let mut setters = Vec::new();
    let pod_value = sc(pod.spec)["runAsNonRoot"].as_bool();
    if pod_value == Some(false) {
        setters.push("pod".to_string());
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(pod.spec) {
        match sc(c)["runAsNonRoot"].as_bool() {
            Some(false) => explicit.push(name(c)),
            Some(true) => {}
            None if pod_value != Some(true) => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    violation(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicit)
        ),
    )
}

fn run_as_user(pod: &Pod<'_>) -> Option<Violation> {
    let root = |sc: &Value| sc["runAsUser"].as_i64() == Some(0);
    let mut setters = Vec::new();
    if root(sc(pod.spec)) {
        setters.push("pod".to_string());
    }
    let bad = bad_containers(pod.spec, |c| root(sc(c)));
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

fn seccomp_restricted(pod: &Pod<'_>) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let profile = &sc(pod.spec)["seccompProfile"];
    let mut pod_set = false;
    if profile.is_object() {
        if valid_seccomp(&profile["type"]) {
            pod_set = true;
        } else {
            setters.push("pod".to_string());
            values.insert(profile["type"].as_str().unwrap_or_default().to_string());
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(pod.spec) {
        let p = &sc(c)["seccompProfile"];
        if p.is_object() {
            if !valid_seccomp(&p["type"]) {
                explicit.push(name(c));
                values.insert(p["type"].as_str().unwrap_or_default().to_string());
            }
        } else if !pod_set {
            implicit.push(name(c));
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&implicit)
        ),
    )
}

// ---- admission ----

/// What admission adds to an allowed request: warnings for the client and
/// annotations for the audit event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    pub warnings: Vec<String>,
    pub audit_annotations: BTreeMap<String, String>,
}

impl Decision {
    /// Hand the warnings and audit annotations to the request. A request
    /// retried after a lost race is admitted again; its warnings count once.
    pub fn record(self, ctx: &crate::handlers::Ctx) {
        if let Ok(mut w) = ctx.warnings.lock() {
            for warning in self.warnings {
                if !w.contains(&warning) {
                    w.push(warning);
                }
            }
        }
        ctx.audit_annotations.extend(self.audit_annotations);
    }
}

/// Subresources of pods that cannot change what the checks read.
const IGNORED_POD_SUBRESOURCES: [&str; 8] = [
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// Admit a create (`old` is None) or update of any object: namespaces have
/// their labels checked, pods are held to their namespace's policy, and
/// workloads with pod templates draw warnings and audit annotations.
/// `name` is how a refusal names the object.
pub fn admit(
    store: &dyn Store,
    r: &Resource,
    subresource: Option<&str>,
    name: &str,
    old: Option<&Value>,
    new: &Value,
) -> ApiResult<Decision> {
    match (r.group, r.kind) {
        ("", "Namespace") if subresource.is_none() => admit_namespace(store, r, name, old, new),
        ("", "Pod") => {
            if subresource.is_some_and(|s| IGNORED_POD_SUBRESOURCES.contains(&s)) {
                return Ok(Decision::default());
            }
            if old.is_some_and(|old| !significant_pod_update(old, new)) {
                return Ok(Decision::default());
            }
            let (policy, errs) = namespace_policy(store, new)?;
            evaluate_pod(policy, &errs, &new["metadata"], &new["spec"], Some(name))
        }
        _ if subresource.is_none() => {
            let Some((metadata, spec)) = pod_template(r, new) else {
                return Ok(Decision::default());
            };
            let (policy, errs) = namespace_policy(store, new)?;
            evaluate_pod(policy, &errs, metadata, spec, None)
        }
        _ => Ok(Decision::default()),
    }
}

/// The pod template of a workload kind, if it is one and has one. (skiff
/// serves no CronJobs, ReplicationControllers or PodTemplates.)
fn pod_template<'a>(r: &Resource, obj: &'a Value) -> Option<(&'a Value, &'a Value)> {
    let template = match (r.group, r.kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
            &obj["spec"]["template"]
        }
        _ => return None,
    };
    template
        .is_object()
        .then(|| (&template["metadata"], &template["spec"]))
}

/// The policy of the namespace an object is in, with its label errors.
fn namespace_policy(store: &dyn Store, obj: &Value) -> ApiResult<(Policy, Vec<FieldError>)> {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let Some(nsr) = resources::by_kind("", "v1", "Namespace") else {
        return Ok((Policy::default(), Vec::new()));
    };
    let stored = store
        .get(&registry::key(nsr, None, ns))
        .map_err(|e| ApiError::internal(format!("failed to lookup namespace {ns}: {e}")))?;
    Ok(match stored {
        Some(s) => Policy::from_labels(&s.value["metadata"]["labels"]),
        None => (Policy::default(), Vec::new()),
    })
}

/// Kubernetes' `EvaluatePod`: enforce (pods only, `refuse_as` is the pod's
/// name), then audit, then warn (only for a request that is allowed).
fn evaluate_pod(
    policy: Policy,
    label_errors: &[FieldError],
    metadata: &Value,
    spec: &Value,
    refuse_as: Option<&str>,
) -> ApiResult<Decision> {
    let mut d = Decision::default();
    if label_errors.is_empty()
        && policy.audit.level == Level::Privileged
        && policy.warn.level == Level::Privileged
        && (refuse_as.is_none() || policy.all_privileged())
    {
        return Ok(d);
    }
    if !label_errors.is_empty() {
        let errs: Vec<String> = label_errors.iter().map(ToString::to_string).collect();
        let agg = if errs.len() == 1 {
            errs[0].clone()
        } else {
            format!("[{}]", errs.join(", "))
        };
        d.audit_annotations
            .insert(ERROR.into(), format!("Failed to parse policy: {agg}"));
    }
    if let Some(name) = refuse_as {
        d.audit_annotations
            .insert(ENFORCE_POLICY.into(), policy.enforce.to_string());
        let vs = evaluate(policy.enforce.level, metadata, spec);
        if !vs.is_empty() {
            let mut err = ApiError::forbidden(format!(
                "pods {} is forbidden: violates PodSecurity {}: {}",
                go_quote(name),
                go_quote(&policy.enforce.to_string()),
                forbidden_detail(&vs)
            ));
            err.details = Some(json!({"name": name, "group": "", "kind": "pods"}));
            return Err(err);
        }
    }
    let audit = evaluate(policy.audit.level, metadata, spec);
    if !audit.is_empty() {
        d.audit_annotations
            .insert(AUDIT_VIOLATIONS.into(), would_violate(policy.audit, &audit));
    }
    let warn = evaluate(policy.warn.level, metadata, spec);
    if !warn.is_empty() {
        d.warnings.push(would_violate(policy.warn, &warn));
    }
    Ok(d)
}

fn would_violate(lv: LevelVersion, vs: &[Violation]) -> String {
    format!(
        "would violate PodSecurity {}: {}",
        go_quote(&lv.to_string()),
        forbidden_detail(vs)
    )
}

/// Whether a pod update can change what the checks read: Kubernetes only
/// lets images (and seccomp annotations, and ephemeral containers) change
/// on a pod, so only those count.
fn significant_pod_update(old: &Value, new: &Value) -> bool {
    const SECCOMP_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
    const SECCOMP_CONTAINER: &str = "container.seccomp.security.alpha.kubernetes.io/";
    let annotation = |pod: &Value, k: &str| pod["metadata"]["annotations"][k].clone();
    if annotation(old, SECCOMP_POD) != annotation(new, SECCOMP_POD) {
        return true;
    }
    let container_changed = |o: &Value, n: &Value| {
        let key = format!("{SECCOMP_CONTAINER}{}", name(n));
        o["image"] != n["image"] || annotation(old, &key) != annotation(new, &key)
    };
    for k in ["containers", "initContainers"] {
        let (o, n) = (list(&old["spec"][k]), list(&new["spec"][k]));
        if o.len() != n.len() || o.iter().zip(n).any(|(o, n)| container_changed(o, n)) {
            return true;
        }
    }
    let old_ephemeral = list(&old["spec"]["ephemeralContainers"]);
    list(&new["spec"]["ephemeralContainers"]).iter().any(|n| {
        match old_ephemeral.iter().find(|o| o["name"] == n["name"]) {
            None => true,
            Some(o) => container_changed(o, n),
        }
    })
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Namespaces: labels must parse (on create, and on update when they
/// changed); a stricter enforce level is tried on the pods already there,
/// and what they violate comes back as warnings.
fn admit_namespace(
    store: &dyn Store,
    r: &Resource,
    name: &str,
    old: Option<&Value>,
    new: &Value,
) -> ApiResult<Decision> {
    let (policy, errs) = Policy::from_labels(&new["metadata"]["labels"]);
    let Some(old) = old else {
        if !errs.is_empty() {
            return Err(registry::invalid(r, name, &errs));
        }
        return Ok(Decision::default());
    };
    let (old_policy, old_errs) = Policy::from_labels(&old["metadata"]["labels"]);
    if !errs.is_empty() && (old_errs.is_empty() || errs != old_errs) {
        return Err(registry::invalid(r, name, &errs));
    }
    let (new_e, old_e) = (policy.enforce, old_policy.enforce);
    if new_e == old_e
        || new_e.level == Level::Privileged
        || (new_e.version == old_e.version && new_e.level <= old_e.level)
    {
        return Ok(Decision::default());
    }
    Ok(Decision {
        warnings: existing_pod_warnings(store, name, new_e)?,
        audit_annotations: BTreeMap::new(),
    })
}

/// Kubernetes' `EvaluatePodsInNamespace`: pods with the same violations
/// share one warning naming the first of them and how many others.
fn existing_pod_warnings(
    store: &dyn Store,
    namespace: &str,
    enforce: LevelVersion,
) -> ApiResult<Vec<String>> {
    let Some(pods) = resources::by_kind("", "v1", "Pod") else {
        return Ok(Vec::new());
    };
    let listing = match store.list(&registry::prefix(pods, Some(namespace)), None, None) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(namespace, error = %e, "listing pods for PodSecurity");
            return Ok(vec![
                "failed to list pods while checking new PodSecurity enforce level".into(),
            ]);
        }
    };
    let pods: Vec<&Value> = prioritize(listing.items.iter().map(|s| &*s.value).collect());
    let total = pods.len();
    let checked = &pods[..total.min(MAX_PODS_TO_CHECK)];
    // reason -> (first pod name, count), in order of first appearance
    let mut seen: Vec<(String, String, usize)> = Vec::new();
    for pod in checked {
        let vs = evaluate(enforce.level, &pod["metadata"], &pod["spec"]);
        if vs.is_empty() {
            continue;
        }
        let reason = forbidden_reason(&vs);
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
        match seen.iter_mut().find(|(r, _, _)| *r == reason) {
            Some((_, first, n)) => {
                if pod_name < first.as_str() {
                    *first = pod_name.to_string();
                }
                *n += 1;
            }
            None => seen.push((reason, pod_name.to_string(), 1)),
        }
    }
    let mut warnings = Vec::new();
    if checked.len() < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {} of {total} existing pods",
            checked.len()
        ));
    }
    if !seen.is_empty() {
        warnings.push(format!(
            "existing pods in namespace {} violate the new PodSecurity enforce level {}",
            go_quote(namespace),
            go_quote(&enforce.to_string())
        ));
    }
    let mut per_pod: Vec<String> = seen
        .into_iter()
        .map(|(reason, first, n)| match n {
            1 => format!("{first}: {reason}"),
            2 => format!("{first} (and 1 other pod): {reason}"),
            n => format!("{first} (and {} other pods): {reason}", n - 1),
        })
        .collect();
    per_pod.sort();
    warnings.extend(per_pod);
    Ok(warnings)
}

/// One pod per controller first, so a few thousand replicas of one
/// Deployment do not hide a lone bad pod.
fn prioritize(pods: Vec<&Value>) -> Vec<&Value> {
    let mut first = Vec::new();
    let mut duplicates = Vec::new();
    let mut controllers = BTreeSet::new();
    for pod in pods {
        let controller = list(&pod["metadata"]["ownerReferences"])
            .iter()
            .find(|o| o["controller"].as_bool() == Some(true))
            .map(|o| o["uid"].as_str().unwrap_or_default().to_string());
        match controller {
            Some(uid) if !controllers.insert(uid.clone()) => duplicates.push(pod),
            _ => first.push(pod),
        }
    }
    first.extend(duplicates);
    first
}

#[cfg(test)]
mod tests;
