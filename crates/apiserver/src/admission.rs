//! Admission for pod creation: what Kubernetes' `RuntimeClass` and
//! `DefaultTolerationSeconds` admission plugins do, applied before the pod
//! is validated and stored.
//!
//! DefaultTolerationSeconds gives every pod that does not already tolerate
//! them NoExecute tolerations for `node.kubernetes.io/not-ready` and
//! `node.kubernetes.io/unreachable` for 300 s, so the node lifecycle
//! controller evicts a dead node's pods after five minutes, not at once.
//!
//! A pod that names a RuntimeClass inherits the class's scheduling
//! constraints and overhead, so the scheduler only ever looks at the pod:
//! - the class must exist, or the pod is refused (403);
//! - `scheduling.nodeSelector` is merged into `spec.nodeSelector`, and a
//!   key the pod already sets to another value is a refusal;
//! - `scheduling.tolerations` are appended, skipping ones already present;
//! - `overhead.podFixed` becomes `spec.overhead`; a pod that sets an
//!   overhead of its own must agree with the class, and a pod may not set
//!   one when its class (or lack of class) defines none.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry;
use crate::resources;
use crate::store::Store;

/// Why a pod was refused; the text follows Kubernetes' RuntimeClass plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeClassError {
    /// `spec.runtimeClassName` names no RuntimeClass.
    #[error("pod rejected: RuntimeClass {0:?} not found")]
    NotFound(String),
    /// The pod's nodeSelector and the class's disagree on a key.
    #[error("conflict: runtimeClass.scheduling.nodeSelector[{key}] = {class}; pod.spec.nodeSelector[{key}] = {pod}")]
    SelectorConflict {
        key: String,
        class: String,
        pod: String,
    },
    /// The pod set an overhead other than the class's.
    #[error("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")]
    OverheadMismatch,
    /// The pod set an overhead but its class defines none.
    #[error("pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")]
    OverheadWithoutClass,
}

/// Apply RuntimeClass admission to a pod about to be created. `name` is
/// how a refusal names the pod (its name, or generateName).
pub fn admit_pod(store: &dyn Store, name: &str, pod: &mut Value) -> ApiResult<()> {
    let class = runtime_class_of(store, pod).map_err(|e| match e {
        Refusal::Api(e) => e,
        Refusal::Rule(e) => forbidden(name, &e),
    })?;
    apply_runtime_class(pod, class.as_ref()).map_err(|e| forbidden(name, &e))?;
    default_toleration_seconds(pod, DEFAULT_TOLERATION_SECONDS);
    service_account(store, name, pod)?;
    Ok(())
}

/// Kubernetes' ServiceAccount admission: a pod that names no account runs
/// as `default`; a pod naming an account that does not exist is refused;
/// unless the pod (or else its account) sets `automountServiceAccountToken:
/// false`, every container gets the account's token, the cluster CA and
/// the namespace at [`TOKEN_MOUNT_PATH`] from a projected
/// `kube-api-access-…` volume. (`default` is made with its namespace, so
/// a missing one is taken on trust.)
fn service_account(store: &dyn Store, name: &str, pod: &mut Value) -> ApiResult<()> {
    let mirror = pod["metadata"]["annotations"]
        .get("kubernetes.io/config.mirror")
        .is_some();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if mirror {
        return Ok(());
    }
    let account = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            spec.get("serviceAccount")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), Value::String(account.clone()));
    spec.insert("serviceAccount".into(), Value::String(account.clone()));
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let Some(r) = resources::by_kind("", "v1", "ServiceAccount") else {
        return Ok(());
    };
    let found = store
        .get(&registry::key(r, Some(&ns), &account))
        .map_err(|e| ApiError::internal(format!("looking up service account: {e}")))?;
    if found.is_none() && account != "default" {
        return Err(ApiError::forbidden(format!(
            "pods {name:?} is forbidden: error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found"
        )));
    }
    let account_automount = found
        .as_ref()
        .and_then(|sa| sa.value["automountServiceAccountToken"].as_bool());
    let automount = pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or(account_automount)
        .unwrap_or(true);
    if automount {
        mount_service_account_token(pod, &registry::random_suffix());
    }
    Ok(())
}

/// Where containers find their ServiceAccount's credentials.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How long the projected token is asked for: Kubernetes' 3607 s, which
/// its API server (and skiff's) extends for tokens bound to a pod, since
/// such a token dies with the pod anyway.
pub const PROJECTED_TOKEN_SECONDS: i64 = 3607;

/// Add the `kube-api-access-SUFFIX` volume (unless the pod has one) and
/// mount it in every init and app container that does not already mount
/// something at [`TOKEN_MOUNT_PATH`], as Kubernetes does.
pub fn mount_service_account_token(pod: &mut Value, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .find(|n| n.starts_with("kube-api-access-"))
        .map(str::to_string);
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| format!("kube-api-access-{suffix}"));
    let mount =
        serde_json::json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for field in ["initContainers", "containers"] {
        for c in spec
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c
                .entry("volumeMounts")
                .or_insert_with(|| Value::Array(Vec::new()));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if mounts
                .iter()
                .any(|m| m["mountPath"].as_str() == Some(TOKEN_MOUNT_PATH))
            {
                continue;
            }
            mounts.push(mount.clone());
            needed = true;
        }
    }
    if existing.is_none() && needed {
        let volume = serde_json::json!({
            "name": volume_name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": PROJECTED_TOKEN_SECONDS, "path": "token"}},
                    {"configMap": {"name": crate::namespaces::ROOT_CA_CONFIGMAP,
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        });
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(vs) => vs.push(volume),
            None => {
                spec.insert("volumes".into(), Value::Array(vec![volume]));
            }
        }
    }
}

/// Kubernetes' `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The taints DefaultTolerationSeconds adds tolerations for.
const NODE_HEALTH_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// Kubernetes' DefaultTolerationSeconds: add a NoExecute toleration with
/// `seconds` for each node-health taint the pod does not tolerate yet. A
/// toleration with an empty key or an empty effect already covers it.
pub fn default_toleration_seconds(pod: &mut Value, seconds: i64) {
    // A malformed spec is left for validation to refuse.
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let mut tolerations = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let covers = |t: &Value, key: &str| {
        let field = |f: &str| t.get(f).and_then(Value::as_str).unwrap_or_default();
        (field("key") == key || field("key").is_empty())
            && (field("effect") == "NoExecute" || field("effect").is_empty())
    };
    let mut added = false;
    for key in NODE_HEALTH_TAINTS {
        if !tolerations.iter().any(|t| covers(t, key)) {
            tolerations.push(serde_json::json!({"key": key, "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": seconds}));
            added = true;
        }
    }
    if added {
        spec.insert("tolerations".into(), Value::Array(tolerations));
    }
}

/// A lookup can fail as a refusal or as a store error.
enum Refusal {
    Rule(RuntimeClassError),
    Api(ApiError),
}

fn forbidden(name: &str, e: &RuntimeClassError) -> ApiError {
    ApiError::forbidden(format!("pods {name:?} is forbidden: {e}"))
}

/// The RuntimeClass the pod names, if it names one.
fn runtime_class_of(store: &dyn Store, pod: &Value) -> Result<Option<Value>, Refusal> {
    let Some(class) = pod["spec"]["runtimeClassName"].as_str() else {
        return Ok(None);
    };
    let r = resources::by_kind("node.k8s.io", "v1", "RuntimeClass")
        .ok_or_else(|| Refusal::Api(ApiError::internal("RuntimeClasses are not served")))?;
    let stored = store
        .get(&registry::key(r, None, class))
        .map_err(|e| Refusal::Api(ApiError::from_store(e, "runtimeclasses.node.k8s.io", class)))?;
    match stored {
        Some(s) => Ok(Some((*s.value).clone())),
        None => Err(Refusal::Rule(RuntimeClassError::NotFound(
            class.to_string(),
        ))),
    }
}

/// Fold a RuntimeClass (or its absence) into the pod's spec. Pure, so it
/// is tested without a store.
pub fn apply_runtime_class(
    pod: &mut Value,
    class: Option<&Value>,
) -> Result<(), RuntimeClassError> {
    set_overhead(pod, class)?;
    let Some(scheduling) = class.map(|c| &c["scheduling"]).filter(|s| s.is_object()) else {
        return Ok(());
    };
    merge_node_selector(pod, &scheduling["nodeSelector"])?;
    merge_tolerations(pod, &scheduling["tolerations"]);
    Ok(())
}

fn set_overhead(pod: &mut Value, class: Option<&Value>) -> Result<(), RuntimeClassError> {
    let pod_overhead = pod["spec"]
        .get("overhead")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .cloned();
    let class_overhead = class
        .and_then(|c| c["overhead"]["podFixed"].as_object())
        .cloned();
    match (class_overhead, pod_overhead) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(RuntimeClassError::OverheadWithoutClass),
        (Some(want), Some(have)) if !same_resources(&want, &have) => {
            Err(RuntimeClassError::OverheadMismatch)
        }
        (Some(want), _) => {
            pod["spec"]["overhead"] = Value::Object(want);
            Ok(())
        }
    }
}

/// Resource lists equal by value (`1000m` is `1`), as Kubernetes compares
/// quantities semantically.
fn same_resources(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let value = |v: &Value| {
        v.as_str()
            .and_then(|s| apimachinery::validation::parse_quantity(s).ok())
    };
    a.len() == b.len()
        && a.iter().all(|(k, va)| {
            b.get(k)
                .is_some_and(|vb| value(va).is_some() && value(va) == value(vb))
        })
}

fn merge_node_selector(pod: &mut Value, class: &Value) -> Result<(), RuntimeClassError> {
    let Some(class) = class.as_object().filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    let mut merged = pod["spec"]["nodeSelector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, want) in class {
        match merged.get(key) {
            Some(have) if have != want => {
                return Err(RuntimeClassError::SelectorConflict {
                    key: key.clone(),
                    class: want.as_str().unwrap_or_default().to_string(),
                    pod: have.as_str().unwrap_or_default().to_string(),
                })
            }
            _ => {
                merged.insert(key.clone(), want.clone());
            }
        }
    }
    pod["spec"]["nodeSelector"] = Value::Object(merged);
    Ok(())
}

fn merge_tolerations(pod: &mut Value, class: &Value) {
    let Some(extra) = class.as_array().filter(|a| !a.is_empty()) else {
        return;
    };
    let mut merged = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for t in extra {
        if !merged.iter().any(|have| same_toleration(have, t)) {
            merged.push(t.clone());
        }
    }
    pod["spec"]["tolerations"] = Value::Array(merged);
}

/// Tolerations equal once defaults are filled in (a missing operator is
/// `Equal`, missing strings are empty).
fn same_toleration(a: &Value, b: &Value) -> bool {
    let field = |v: &Value, f: &str, default: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    ["key", "value", "effect"]
        .iter()
        .all(|f| field(a, f, "") == field(b, f, ""))
        && field(a, "operator", "Equal") == field(b, "operator", "Equal")
        && a.get("tolerationSeconds").filter(|v| !v.is_null())
            == b.get("tolerationSeconds").filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::RedbStore;
    use crate::store::WriteOp;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "x"}]);
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn wasm_class() -> Value {
        json!({
            "metadata": {"name": "wasm"},
            "handler": "wasmtime",
            "overhead": {"podFixed": {"cpu": "10m", "memory": "16Mi"}},
            "scheduling": {
                "nodeSelector": {"skiff.dev/wasm": "true"},
                "tolerations": [{"key": "skiff.dev/wasm-only", "operator": "Exists", "effect": "NoSchedule"}],
            },
        })
    }

    async fn store_with(classes: &[Value]) -> (RedbStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(&dir.path().join("s.redb"), 100).expect("store");
        let r = resources::by_kind("node.k8s.io", "v1", "RuntimeClass").expect("served");
        for c in classes {
            let mut c = c.clone();
            registry::prepare_create(r, &mut c);
            let key = registry::key(r, None, c["metadata"]["name"].as_str().expect("name"));
            store
                .write(WriteOp::Create { key, value: c })
                .await
                .expect("create class");
        }
        (store, dir)
    }

    #[tokio::test]
    async fn unknown_runtime_class_is_forbidden_in_kubernetes_words() {
        let (store, _dir) = store_with(&[]).await;
        let mut p = pod(json!({"runtimeClassName": "gvisor"}));
        let err = admit_pod(&store, "p", &mut p).expect_err("refused");
        assert_eq!(err.code, 403);
        assert_eq!(err.reason, "Forbidden");
        assert_eq!(
            err.message,
            r#"pods "p" is forbidden: pod rejected: RuntimeClass "gvisor" not found"#
        );
    }

    #[tokio::test]
    async fn pods_run_as_default_unless_they_name_an_existing_account() {
        let (store, _dir) = store_with(&[]).await;
        let mut p = pod(json!({}));
        admit_pod(&store, "p", &mut p).expect("admitted");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["serviceAccount"], "default");
        let mut ghost = pod(json!({"serviceAccountName": "ghost"}));
        let err = admit_pod(&store, "p", &mut ghost).expect_err("refused");
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            r#"pods "p" is forbidden: error looking up service account default/ghost: serviceaccount "ghost" not found"#
        );
        crate::namespaces::ensure_default_service_account(&store, "default")
            .await
            .expect("default account");
        let r = resources::by_kind("", "v1", "ServiceAccount").expect("served");
        let mut sa = json!({"metadata": {"name": "ghost", "namespace": "default"}});
        registry::prepare_create(r, &mut sa);
        store
            .write(WriteOp::Create {
                key: registry::key(r, Some("default"), "ghost"),
                value: sa,
            })
            .await
            .expect("create account");
        let mut named = pod(json!({"serviceAccountName": "ghost"}));
        admit_pod(&store, "p", &mut named).expect("admitted");
    }

    fn token_mounts(p: &Value, field: &str, i: usize) -> Vec<String> {
        p["spec"][field][i]["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["mountPath"] == TOKEN_MOUNT_PATH)
            .filter_map(|m| m["name"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn the_token_volume_is_added_once_and_mounted_where_nothing_else_is() {
        let mut p = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [
                {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
                {"name": "plain", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            ],
            "volumes": [{"name": "mine", "emptyDir": {}}, {"name": "data", "emptyDir": {}}],
        }});
        mount_service_account_token(&mut p, "x2b4z");
        assert_eq!(
            token_mounts(&p, "initContainers", 0),
            ["kube-api-access-x2b4z"]
        );
        assert_eq!(token_mounts(&p, "containers", 0), ["mine"], "kept its own");
        assert_eq!(token_mounts(&p, "containers", 1), ["kube-api-access-x2b4z"]);
        let volumes = p["spec"]["volumes"].as_array().expect("volumes");
        assert_eq!(volumes.len(), 3);
        let v = &volumes[2];
        assert_eq!(v["projected"]["defaultMode"], 420);
        assert_eq!(
            v["projected"]["sources"][0]["serviceAccountToken"],
            json!({"expirationSeconds": 3607, "path": "token"})
        );
        assert_eq!(
            v["projected"]["sources"][1]["configMap"],
            json!({"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]})
        );
        assert_eq!(
            v["projected"]["sources"][2]["downwardAPI"]["items"][0]["path"],
            "namespace"
        );
        // Admitting again (a pod recreated from its own YAML) adds nothing.
        let before = p.clone();
        mount_service_account_token(&mut p, "other");
        assert_eq!(p, before);
    }

    #[tokio::test]
    async fn automount_follows_the_pod_then_its_account() {
        let (store, _dir) = store_with(&[]).await;
        let r = resources::by_kind("", "v1", "ServiceAccount").expect("served");
        let mut sa = json!({"metadata": {"name": "mute", "namespace": "default"},
                            "automountServiceAccountToken": false});
        registry::prepare_create(r, &mut sa);
        store
            .write(WriteOp::Create {
                key: registry::key(r, Some("default"), "mute"),
                value: sa,
            })
            .await
            .expect("create account");
        let admitted = |spec: Value| {
            let mut p = pod(spec);
            admit_pod(&store, "p", &mut p).expect("admitted");
            token_mounts(&p, "containers", 0).len()
        };
        assert_eq!(admitted(json!({})), 1, "default: mounted");
        assert_eq!(admitted(json!({"automountServiceAccountToken": false})), 0);
        assert_eq!(admitted(json!({"serviceAccountName": "mute"})), 0);
        assert_eq!(
            admitted(json!({"serviceAccountName": "mute", "automountServiceAccountToken": true})),
            1,
            "the pod's word wins"
        );
    }

    #[tokio::test]
    async fn class_scheduling_and_overhead_are_copied_into_the_pod() {
        let (store, _dir) = store_with(&[wasm_class()]).await;
        let mut p = pod(json!({
            "runtimeClassName": "wasm",
            "nodeSelector": {"zone": "a"},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        }));
        admit_pod(&store, "p", &mut p).expect("admitted");
        assert_eq!(
            p["spec"]["nodeSelector"],
            json!({"zone": "a", "skiff.dev/wasm": "true"})
        );
        // The pod's, the class's, then DefaultTolerationSeconds' two.
        let keys: Vec<&str> = p["spec"]["tolerations"]
            .as_array()
            .expect("tolerations")
            .iter()
            .filter_map(|t| t["key"].as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "dedicated",
                "skiff.dev/wasm-only",
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable"
            ]
        );
        assert_eq!(
            p["spec"]["overhead"],
            json!({"cpu": "10m", "memory": "16Mi"})
        );
    }

    #[tokio::test]
    async fn pod_without_runtime_class_only_gets_default_tolerations_and_account() {
        let (store, _dir) = store_with(&[wasm_class()]).await;
        let mut p = pod(json!({"nodeSelector": {"zone": "a"}}));
        let mut before = p.clone();
        admit_pod(&store, "p", &mut p).expect("admitted");
        default_toleration_seconds(&mut before, DEFAULT_TOLERATION_SECONDS);
        before["spec"]["serviceAccountName"] = json!("default");
        before["spec"]["serviceAccount"] = json!("default");
        let volume = p["spec"]["volumes"][0]["name"]
            .as_str()
            .expect("token volume");
        let suffix = volume.strip_prefix("kube-api-access-").expect("its name");
        mount_service_account_token(&mut before, suffix);
        assert_eq!(p, before);
    }

    #[test]
    fn default_toleration_seconds_adds_not_ready_and_unreachable_for_300s() {
        // Kubernetes' DefaultTolerationSeconds admission plugin.
        let mut p = pod(json!({}));
        default_toleration_seconds(&mut p, DEFAULT_TOLERATION_SECONDS);
        assert_eq!(
            p["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
    }

    #[test]
    fn default_toleration_seconds_keeps_the_pods_own_choice() {
        // The pod's own unreachable toleration (any seconds) stays alone;
        // only not-ready is added.
        let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 2});
        let mut p = pod(json!({"tolerations": [own.clone()]}));
        default_toleration_seconds(&mut p, 300);
        let t = p["spec"]["tolerations"].as_array().expect("list");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0], own);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        // An empty key with Exists (tolerate everything), or an empty
        // effect, already covers both.
        for covering in [
            json!({"operator": "Exists"}),
            json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists"}),
        ] {
            let mut p = pod(json!({"tolerations": [covering]}));
            default_toleration_seconds(&mut p, 300);
            let n = p["spec"]["tolerations"].as_array().expect("list").len();
            let expected = if p["spec"]["tolerations"][0].get("key").is_some() {
                2
            } else {
                1
            };
            assert_eq!(n, expected);
        }
        // A NoSchedule toleration for the key does not cover NoExecute.
        let mut p = pod(json!({"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]}));
        default_toleration_seconds(&mut p, 300);
        assert_eq!(p["spec"]["tolerations"].as_array().expect("list").len(), 3);
        // A spec that is not an object is left for validation to refuse.
        let mut bad = json!({"spec": "nonsense"});
        default_toleration_seconds(&mut bad, 300);
        assert_eq!(bad, json!({"spec": "nonsense"}));
    }

    #[test]
    fn conflicting_node_selector_is_refused() {
        // Kubernetes refuses rather than letting either side win.
        let mut p = pod(json!({"nodeSelector": {"skiff.dev/wasm": "false"}}));
        let err = apply_runtime_class(&mut p, Some(&wasm_class())).expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "conflict: runtimeClass.scheduling.nodeSelector[skiff.dev/wasm] = true; pod.spec.nodeSelector[skiff.dev/wasm] = false"
        );
    }

    #[test]
    fn same_node_selector_value_is_not_a_conflict() {
        let mut p = pod(json!({"nodeSelector": {"skiff.dev/wasm": "true"}}));
        apply_runtime_class(&mut p, Some(&wasm_class())).expect("agrees");
        assert_eq!(p["spec"]["nodeSelector"], json!({"skiff.dev/wasm": "true"}));
    }

    #[test]
    fn tolerations_already_present_are_not_duplicated() {
        // The default operator is Equal; spelling it out is the same toleration.
        let mut class = wasm_class();
        class["scheduling"]["tolerations"] =
            json!([{"key": "k", "value": "v", "effect": "NoSchedule"}]);
        let mut p = pod(
            json!({"tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]}),
        );
        apply_runtime_class(&mut p, Some(&class)).expect("admitted");
        assert_eq!(p["spec"]["tolerations"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn matching_overhead_is_accepted_semantically() {
        // 0.01 CPU is 10m: Kubernetes compares quantities by value.
        let mut p = pod(json!({"overhead": {"cpu": "0.01", "memory": "16Mi"}}));
        apply_runtime_class(&mut p, Some(&wasm_class())).expect("same overhead");
    }

    #[test]
    fn different_overhead_is_refused() {
        let mut p = pod(json!({"overhead": {"cpu": "1"}}));
        let err = apply_runtime_class(&mut p, Some(&wasm_class())).expect_err("mismatch");
        assert_eq!(err, RuntimeClassError::OverheadMismatch);
    }

    #[test]
    fn overhead_without_a_class_overhead_is_refused() {
        let mut p = pod(json!({"overhead": {"cpu": "1"}}));
        let err = apply_runtime_class(&mut p, None).expect_err("no class");
        assert_eq!(err, RuntimeClassError::OverheadWithoutClass);
        let mut bare = wasm_class();
        bare.as_object_mut().expect("object").remove("overhead");
        let mut p = pod(json!({"overhead": {"cpu": "1"}}));
        assert_eq!(
            apply_runtime_class(&mut p, Some(&bare)),
            Err(RuntimeClassError::OverheadWithoutClass)
        );
    }

    #[test]
    fn class_without_scheduling_only_sets_overhead() {
        let mut class = wasm_class();
        class.as_object_mut().expect("object").remove("scheduling");
        let mut p = pod(json!({}));
        apply_runtime_class(&mut p, Some(&class)).expect("admitted");
        assert!(p["spec"].get("nodeSelector").is_none());
        assert_eq!(p["spec"]["overhead"]["cpu"], "10m");
    }
}
