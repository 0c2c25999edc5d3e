//! Namespace lifecycle: the namespaces that always exist, and emptying a
//! namespace that is being deleted.
//!
//! Deleting a namespace marks it Terminating (it carries the `kubernetes`
//! finalizer in `spec.finalizers`). This loop then deletes everything in
//! it, the way each object would be deleted through the API (pods on a
//! node wait for their node, objects with finalizers wait for them), and
//! once nothing is left it drops the finalizer and the namespace goes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::registry::{self, name_of};
use crate::resources::{self, Resource};
use crate::store::{Store, StoreError, WriteOp};

/// How long a namespace stays Terminating before its contents are
/// deleted. `kubectl delete -f` of a file holding a namespace and its
/// objects deletes the namespace first and then each object; emptying the
/// namespace at once would answer those deletes with NotFound.
const SETTLE: Duration = Duration::from_secs(2);

/// Namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn namespaces() -> &'static Resource {
    resources::by_kind("", "v1", "Namespace").expect("the resource table serves namespaces")
}

/// The ServiceAccount every namespace has, as Kubernetes' ServiceAccount
/// controller makes it: pods that name none run as `default`.
pub async fn ensure_default_service_account(store: &dyn Store, ns: &str) -> Result<(), StoreError> {
    let Some(r) = resources::by_kind("", "v1", "ServiceAccount") else {
        return Ok(());
    };
    let key = registry::key(r, Some(ns), "default");
    if store.get(&key)?.is_some() {
        return Ok(());
    }
    let mut obj = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": "default", "namespace": ns}});
    registry::prepare_create(r, &mut obj);
    match store.write(WriteOp::Create { key, value: obj }).await {
        Ok(_) | Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The ConfigMap every namespace has with the cluster CA, as Kubernetes'
/// root-ca-cert-publisher makes it: pods' ServiceAccount volumes project
/// its `ca.crt` next to their token.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// `kube-root-ca.crt` in `ns` holding `ca_pem`, made when missing and
/// mended when it holds another CA (after the CA was replaced).
pub async fn ensure_root_ca(store: &dyn Store, ns: &str, ca_pem: &str) -> Result<(), StoreError> {
    ensure_config_map(
        store,
        ns,
        ROOT_CA_CONFIGMAP,
        json!({"ca.crt": ca_pem}),
        json!({"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}),
    )
    .await
}

/// A ConfigMap the API server keeps: made with `data` (and `annotations`)
/// when missing, its `data` put back when it differs. A concurrent write
/// wins until the next call.
async fn ensure_config_map(
    store: &dyn Store,
    ns: &str,
    name: &str,
    data: Value,
    annotations: Value,
) -> Result<(), StoreError> {
    let Some(r) = resources::by_kind("", "v1", "ConfigMap") else {
        return Ok(());
    };
    let key = registry::key(r, Some(ns), name);
    let current = store.get(&key)?;
    let write = match current {
        Some(c) if c.value["data"] == data => return Ok(()),
        Some(c) => {
            let mut obj = (*c.value).clone();
            obj["data"] = data;
            WriteOp::Update {
                key,
                value: obj,
                expected: Some(c.rev),
            }
        }
        None => {
            let mut obj = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns, "annotations": annotations},
                "data": data,
            });
            registry::prepare_create(r, &mut obj);
            WriteOp::Create { key, value: obj }
        }
    };
    match store.write(write).await {
        Ok(_)
        | Err(StoreError::AlreadyExists)
        | Err(StoreError::Conflict)
        | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What every namespace holds from its creation: the `default`
/// ServiceAccount and the `kube-root-ca.crt` ConfigMap.
pub async fn ensure_namespace_defaults(
    store: &dyn Store,
    ns: &str,
    ca_pem: &str,
) -> Result<(), StoreError> {
    ensure_default_service_account(store, ns).await?;
    ensure_root_ca(store, ns, ca_pem).await
}

/// [`ensure_namespace_defaults`] for every namespace that is not going
/// away (run at startup; new namespaces get theirs when they are created).
pub async fn ensure_all_namespace_defaults(
    store: &dyn Store,
    ca_pem: &str,
) -> Result<(), StoreError> {
    for ns in store.list(&namespaces().store_prefix(), None, None)?.items {
        let terminating = ns.value["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        if !terminating {
            ensure_namespace_defaults(store, name_of(&ns.value), ca_pem).await?;
        }
    }
    Ok(())
}

/// Create the system namespaces that are missing.
pub async fn ensure_system_namespaces(store: &dyn Store) -> Result<(), StoreError> {
    let r = namespaces();
    for ns in SYSTEM_NAMESPACES {
        let key = registry::key(r, None, ns);
        if store.get(&key)?.is_some() {
            continue;
        }
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}});
        registry::prepare_create(r, &mut obj);
        apimachinery::validation::default_object("", "Namespace", &mut obj);
        match store.write(WriteOp::Create { key, value: obj }).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The `default/kubernetes` Service every cluster has, pointing at the API
/// server (10.96.0.1, the first address of the service range).
pub async fn ensure_kubernetes_service(
    store: &dyn Store,
    api: std::net::SocketAddr,
) -> Result<(), StoreError> {
    let svc = resources::by_kind("", "v1", "Service").expect("the resource table serves services");
    let key = registry::key(svc, Some("default"), "kubernetes");
    if store.get(&key)?.is_none() {
        let mut obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api.port()}]},
        });
        registry::prepare_create(svc, &mut obj);
        apimachinery::validation::default_object("", "Service", &mut obj);
        match store.write(WriteOp::Create { key, value: obj }).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    let ep =
        resources::by_kind("", "v1", "Endpoints").expect("the resource table serves endpoints");
    let key = registry::key(ep, Some("default"), "kubernetes");
    let ip = if api.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        api.ip().to_string()
    };
    let mut obj = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": api.port(), "protocol": "TCP"}]}],
    });
    match store.get(&key)? {
        Some(cur) if cur.value["subsets"] == obj["subsets"] => Ok(()),
        Some(cur) => {
            let mut v = (*cur.value).clone();
            v["subsets"] = obj["subsets"].take();
            store
                .write(WriteOp::Update {
                    key,
                    value: v,
                    expected: Some(cur.rev),
                })
                .await
                .map(|_| ())
        }
        None => {
            registry::prepare_create(ep, &mut obj);
            store
                .write(WriteOp::Create { key, value: obj })
                .await
                .map(|_| ())
        }
    }
}

/// Run the namespace finalizer until the store closes.
pub async fn run(store: Arc<dyn Store>) {
    let r = namespaces();
    let mut seen: HashMap<String, Instant> = HashMap::new();
    loop {
        let from = store.revision();
        if let Err(e) = finalize_terminating(&*store, &mut seen).await {
            tracing::warn!(error = %e, "namespace cleanup");
        }
        // Wake on any namespace change, or every second to notice the
        // contents of terminating namespaces going away.
        let Ok(mut w) = store.watch(&r.store_prefix(), from) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), w.events.recv()).await;
    }
}

/// `seen` remembers when each namespace was first seen terminating.
async fn finalize_terminating(
    store: &dyn Store,
    seen: &mut HashMap<String, Instant>,
) -> Result<(), StoreError> {
    let r = namespaces();
    let mut terminating = HashMap::new();
    let listing = store.list(&r.store_prefix(), None, None)?;
    for ns in &listing.items {
        if ns.value["metadata"]
            .get("deletionTimestamp")
            .is_none_or(Value::is_null)
        {
            continue;
        }
        let name = name_of(&ns.value).to_string();
        terminating.insert(
            name.clone(),
            seen.get(&name).copied().unwrap_or_else(Instant::now),
        );
    }
    *seen = terminating;
    for ns in &listing.items {
        let name = name_of(&ns.value).to_string();
        if seen.get(&name).is_none_or(|since| since.elapsed() < SETTLE) {
            continue;
        }
        let remaining = empty_namespace(store, &name).await?;
        if remaining > 0 {
            continue;
        }
        let mut v = (*ns.value).clone();
        if let Some(f) = v["spec"]["finalizers"].as_array_mut() {
            f.retain(|x| x != "kubernetes");
        }
        let key = registry::key(r, None, &name);
        let done = v["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        let op = if done {
            WriteOp::Delete {
                key,
                expected: Some(ns.rev),
            }
        } else {
            WriteOp::Update {
                key,
                value: v,
                expected: Some(ns.rev),
            }
        };
        match store.write(op).await {
            Ok(_) | Err(StoreError::Conflict) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Delete what is in namespace `ns`; returns how many objects remain.
async fn empty_namespace(store: &dyn Store, ns: &str) -> Result<usize, StoreError> {
    let mut remaining = 0;
    for r in resources::all()
        .iter()
        .filter(|r| r.namespaced() && !r.create_only)
    {
        for obj in store
            .list(&registry::prefix(r, Some(ns)), None, None)?
            .items
        {
            remaining += 1;
            let key = registry::key(r, Some(ns), name_of(&obj.value));
            let deleting = obj.value["metadata"]
                .get("deletionTimestamp")
                .is_some_and(|t| !t.is_null());
            let finalizers = obj.value["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            let on_node = r.kind == "Pod"
                && obj.value["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty())
                && !matches!(
                    obj.value["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                );
            let op = if !finalizers && !on_node {
                WriteOp::Delete {
                    key,
                    expected: Some(obj.rev),
                }
            } else if deleting {
                continue;
            } else {
                let mut v = (*obj.value).clone();
                let grace = if r.kind == "Pod" {
                    v["spec"]["terminationGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(30)
                } else {
                    0
                };
                let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
                v["metadata"]["deletionTimestamp"] =
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                v["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                WriteOp::Update {
                    key,
                    value: v,
                    expected: Some(obj.rev),
                }
            };
            match store.write(op).await {
                Ok(_) | Err(StoreError::Conflict) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(remaining)
}

/// Where joining nodes read the cluster CA before they trust anything
/// (`kube-public/cluster-info`, readable without credentials, as kubeadm
/// publishes it): a kubeconfig with the server and its CA. Nodes check the
/// CA against the hash they were given (`--ca-cert-hash`). Rewritten when
/// it changed.
pub async fn ensure_cluster_info(
    store: &dyn Store,
    server: &str,
    ca_pem: &str,
) -> Result<(), StoreError> {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n"
    );
    ensure_config_map(
        store,
        "kube-public",
        CLUSTER_INFO,
        json!({"kubeconfig": kubeconfig}),
        json!({}),
    )
    .await
}

/// The ConfigMap in `kube-public` joining nodes read anonymously.
pub const CLUSTER_INFO: &str = "cluster-info";
