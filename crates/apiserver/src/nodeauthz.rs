//! The Node authorizer: what a node credential (`system:node:NAME` in
//! `system:nodes`) may read, as Kubernetes' `--authorization-mode=Node`.
//! It runs before RBAC; for a node it either allows a request or has no
//! opinion (with a reason that ends RBAC's refusal message). Users that are
//! not nodes never get an opinion.
//!
//! - Secrets and ConfigMaps: `get` (and a `list`/`watch` narrowed to one
//!   object by `fieldSelector=metadata.name=NAME`) of an object that a pod
//!   bound to the node (`spec.nodeName`) references — through volumes
//!   (`secret`, `configMap`, `projected` sources), `env[].valueFrom`,
//!   `envFrom` of any container (init and ephemeral ones too), or
//!   `imagePullSecrets`. That is everything the node agent reads.
//! - PersistentVolumeClaims: `get` of a claim a pod of the node mounts
//!   (`persistentVolumeClaim`, or `<pod>-<volume>` for an `ephemeral`
//!   volume).
//! - skiff's own rule: `list`/`watch` of Secrets selected by
//!   `fieldSelector=type=kubernetes.io/tls`, which the node's Ingress
//!   gateway keeps for HTTPS certificates. Ingresses may name any TLS
//!   Secret, and every node's gateway serves every Ingress, so these are
//!   the certificates every node serves anyway; other Secrets (tokens,
//!   registry credentials, Opaque) stay out of reach.
//!
//! RBAC's `system:node` role grants no Secrets or ConfigMaps, so nothing
//! else lets a node read them.
//!
//! "Which objects do the pods of node N use" is kept in memory
//! ([`NodeGraph`]): it follows the store's events, so a decision is one
//! hash lookup, not a scan of the cluster's pods. A refusal is rechecked
//! once the graph has applied every write committed before the request, so
//! a pod bound a moment ago (whose node asks for its Secret at once) is
//! never refused because its event is still in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apimachinery::selector::FieldSelector;
use serde_json::Value;
use tokio::sync::Notify;

use crate::authn::User;
use crate::rbac::Attributes;
use crate::store::{EventType, Store, StoreError};

/// Where pods live in the store.
const PODS: &str = "/core/pods/";

/// The Secret type the node gateway lists.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The longest a refusal waits for the graph to catch up with the store.
const CATCH_UP: Duration = Duration::from_secs(2);

/// What the Node authorizer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Leave it to RBAC; the reason (when there is one) is appended to a
    /// refusal, as Kubernetes' union authorizer does.
    NoOpinion(Option<String>),
    /// A named object no pod of the node uses.
    Unrelated(String),
}

impl Decision {
    /// The text to append to RBAC's refusal, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Decision::Allow => None,
            Decision::NoOpinion(r) => r.as_deref(),
            Decision::Unrelated(r) => Some(r),
        }
    }
}

/// One object a pod uses: `(resource, name)` in the pod's namespace.
pub type Ref = (&'static str, String);

/// Every Secret, ConfigMap and PersistentVolumeClaim a pod references, as
/// the node agent walks it.
pub fn references(pod: &Value) -> Vec<Ref> {
    let spec = &pod["spec"];
    let mut refs: Vec<Ref> = Vec::new();
    let mut add = |resource: &'static str, name: &Value| {
        if let Some(n) = name.as_str().filter(|n| !n.is_empty()) {
            if !refs.iter().any(|(r, m)| *r == resource && m == n) {
                refs.push((resource, n.to_string()));
            }
        }
    };
    for s in items(&spec["imagePullSecrets"]) {
        add("secrets", &s["name"]);
    }
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    for v in items(&spec["volumes"]) {
        add("secrets", &v["secret"]["secretName"]);
        add("configmaps", &v["configMap"]["name"]);
        for src in items(&v["projected"]["sources"]) {
            add("secrets", &src["secret"]["name"]);
            add("configmaps", &src["configMap"]["name"]);
        }
        add(
            "persistentvolumeclaims",
            &v["persistentVolumeClaim"]["claimName"],
        );
        if v["ephemeral"].is_object() {
            let name = v["name"].as_str().unwrap_or("");
            add(
                "persistentvolumeclaims",
                &Value::String(format!("{pod_name}-{name}")),
            );
        }
    }
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| items(&spec[*k]));
    for c in containers {
        for e in items(&c["env"]) {
            add("secrets", &e["valueFrom"]["secretKeyRef"]["name"]);
            add("configmaps", &e["valueFrom"]["configMapKeyRef"]["name"]);
        }
        for e in items(&c["envFrom"]) {
            add("secrets", &e["secretRef"]["name"]);
            add("configmaps", &e["configMapRef"]["name"]);
        }
    }
    refs
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// What one bound pod contributes to the graph.
struct PodEdges {
    node: String,
    namespace: String,
    refs: Vec<Ref>,
}

fn edge_key(node: &str, resource: &str, namespace: &str, name: &str) -> String {
    format!("{node}\0{resource}\0{namespace}\0{name}")
}

#[derive(Default)]
struct Graph {
    /// Pod storage key → its node and references (bound pods only).
    pods: HashMap<String, PodEdges>,
    /// Node, resource, namespace, name → how many of the node's pods use it.
    edges: HashMap<String, u32>,
}

impl Graph {
    fn remove(&mut self, key: &str) {
        let Some(p) = self.pods.remove(key) else {
            return;
        };
        for (r, name) in &p.refs {
            let k = edge_key(&p.node, r, &p.namespace, name);
            if let Some(n) = self.edges.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.edges.remove(&k);
                }
            }
        }
    }

    fn upsert(&mut self, key: &str, pod: &Value) {
        self.remove(key);
        let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            return;
        };
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("");
        let refs = references(pod);
        for (r, name) in &refs {
            *self
                .edges
                .entry(edge_key(node, r, namespace, name))
                .or_default() += 1;
        }
        self.pods.insert(
            key.to_string(),
            PodEdges {
                node: node.to_string(),
                namespace: namespace.to_string(),
                refs,
            },
        );
    }

    fn related(&self, node: &str, resource: &str, namespace: &str, name: &str) -> bool {
        self.edges
            .contains_key(&edge_key(node, resource, namespace, name))
    }
}

/// Nodes' relationships to the objects their pods use, following the store.
#[derive(Default)]
pub struct NodeGraph {
    graph: RwLock<Graph>,
    /// The store revision the graph reflects (0: not loaded yet). The graph
    /// follows every event, so this is exact.
    applied: AtomicU64,
    advanced: Notify,
}

impl NodeGraph {
    /// Whether node `node` has a pod that uses `resource` `namespace/name`.
    pub fn related(&self, node: &str, resource: &str, namespace: &str, name: &str) -> bool {
        self.graph
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .related(node, resource, namespace, name)
    }

    /// Apply one stored pod (or its deletion); for tests and loading.
    fn apply(&self, key: &str, pod: Option<&Value>) {
        let mut g = self.graph.write().unwrap_or_else(|e| e.into_inner());
        match pod {
            Some(p) => g.upsert(key, p),
            None => g.remove(key),
        }
    }

    fn rebuild(&self, store: &dyn Store) -> Result<u64, StoreError> {
        let listing = store.list(PODS, None, None)?;
        let mut g = Graph::default();
        for item in &listing.items {
            if let Some(key) = pod_key(&item.value) {
                g.upsert(&key, &item.value);
            }
        }
        *self.graph.write().unwrap_or_else(|e| e.into_inner()) = g;
        self.advance(listing.rev);
        Ok(listing.rev)
    }

    fn advance(&self, rev: u64) {
        self.applied.fetch_max(rev, Ordering::AcqRel);
        self.advanced.notify_waiters();
    }

    /// Follow the store until it closes: a full load, then every change.
    /// It watches every key, not only pods, so that it knows exactly which
    /// revision it has caught up with.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            let from = store.revision();
            let watch = store.watch("/", from);
            let loaded = match self.rebuild(&*store) {
                Ok(rev) => rev,
                Err(e) => {
                    tracing::warn!(error = %e, "loading pods for the node authorizer");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Ok(mut w) = watch else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            while let Some(ev) = w.events.recv().await {
                if ev.rev <= loaded {
                    continue;
                }
                if ev.key.starts_with(PODS) {
                    let pod = (ev.kind != EventType::Deleted).then_some(&*ev.object);
                    self.apply(&ev.key, pod);
                }
                self.advance(ev.rev);
            }
            // The watch fell behind or ended: load everything again.
        }
    }

    /// Wait until the graph reflects revision `rev` (at most [`CATCH_UP`]).
    async fn caught_up(&self, rev: u64) {
        let wait = async {
            loop {
                let advanced = self.advanced.notified();
                tokio::pin!(advanced);
                advanced.as_mut().enable();
                if self.applied.load(Ordering::Acquire) >= rev {
                    return;
                }
                advanced.await;
            }
        };
        let _ = tokio::time::timeout(CATCH_UP, wait).await;
    }

    /// Decide a request, rechecking a refusal once the graph has caught up
    /// with every write committed before it.
    pub async fn authorize(
        &self,
        store: &dyn Store,
        user: &User,
        a: &Attributes<'_>,
        field_selector: Option<&str>,
    ) -> Decision {
        let d = decide(self, user, a, field_selector);
        if !matches!(d, Decision::Unrelated(_)) {
            return d;
        }
        let now = store.revision();
        if self.applied.load(Ordering::Acquire) >= now {
            return d;
        }
        self.caught_up(now).await;
        decide(self, user, a, field_selector)
    }
}

/// The storage key of a pod object.
fn pod_key(pod: &Value) -> Option<String> {
    let ns = pod["metadata"]["namespace"].as_str()?;
    let name = pod["metadata"]["name"].as_str()?;
    Some(format!("{PODS}{ns}/{name}"))
}

/// The term `field=value` of a field selector, if it has one.
fn selected(selector: Option<&FieldSelector>, field: &str) -> Option<String> {
    selector?
        .terms()
        .iter()
        .find(|t| t.field == field && !t.negated)
        .map(|t| t.value.clone())
}

/// The Node authorizer's answer, from the graph as it is.
pub fn decide(
    graph: &NodeGraph,
    user: &User,
    a: &Attributes<'_>,
    field_selector: Option<&str>,
) -> Decision {
    let Some(node) = user.node_name() else {
        return Decision::NoOpinion(None);
    };
    if node.is_empty() {
        return Decision::NoOpinion(Some(format!("unknown node for user {:?}", user.name)));
    }
    if !a.group.is_empty() {
        return Decision::NoOpinion(None);
    }
    let no = |why: &str| Decision::NoOpinion(Some(why.to_string()));
    // An unparsable selector selects nothing here; the list refuses it.
    let fields = field_selector.and_then(|s| FieldSelector::parse(s).ok());
    let listing = matches!(a.verb, "list" | "watch");
    match a.resource {
        "secrets" | "configmaps" => {
            if !matches!(a.verb, "get" | "list" | "watch") {
                return no("can only read resources of this type");
            }
            if a.subresource.is_some() {
                return no("cannot read subresource");
            }
            if a.resource == "secrets"
                && listing
                && selected(fields.as_ref(), "type").as_deref() == Some(TLS_SECRET_TYPE)
            {
                return Decision::Allow;
            }
            let Some(ns) = a.namespace else {
                return no("can only read namespaced object of this type");
            };
            let name = match a.name {
                Some(n) => Some(n.to_string()),
                None if listing => selected(fields.as_ref(), "metadata.name"),
                None => None,
            };
            related(graph, node, a.resource, ns, name.as_deref())
        }
        "persistentvolumeclaims" => {
            if a.verb != "get" {
                return no("can only get individual resources of this type");
            }
            if a.subresource.is_some() {
                return no("cannot get subresource");
            }
            related(graph, node, a.resource, a.namespace.unwrap_or(""), a.name)
        }
        _ => Decision::NoOpinion(None),
    }
}

fn related(
    graph: &NodeGraph,
    node: &str,
    resource: &str,
    ns: &str,
    name: Option<&str>,
) -> Decision {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Decision::NoOpinion(Some("No Object name found".into()));
    };
    if graph.related(node, resource, ns, name) {
        Decision::Allow
    } else {
        Decision::Unrelated(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> User {
        User {
            name: format!("system:node:{name}"),
            uid: String::new(),
            groups: vec![crate::authn::NODES_GROUP.into()],
        }
    }

    fn get<'a>(resource: &'a str, ns: &'a str, name: &'a str) -> Attributes<'a> {
        Attributes {
            verb: "get",
            group: "",
            resource,
            subresource: None,
            namespace: Some(ns),
            name: Some(name),
        }
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "nodeName": "n1",
                "imagePullSecrets": [{"name": "regcred"}],
                "volumes": [
                    {"name": "tls", "secret": {"secretName": "certs"}},
                    {"name": "conf", "configMap": {"name": "nginx"}},
                    {"name": "all", "projected": {"sources": [
                        {"secret": {"name": "proj-s"}},
                        {"configMap": {"name": "kube-root-ca.crt"}},
                        {"serviceAccountToken": {"path": "token"}}
                    ]}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "db"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
                    {"name": "tmp", "emptyDir": {}}
                ],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
                "containers": [{"name": "c",
                    "env": [
                        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "api-key", "key": "k"}}},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "flags", "key": "k"}}},
                        {"name": "C", "value": "plain"},
                        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                    ],
                    "envFrom": [{"configMapRef": {"name": "env-cm"}}, {"secretRef": {"name": "certs"}}]}],
                "ephemeralContainers": [{"name": "dbg", "env": [
                    {"name": "E", "valueFrom": {"secretKeyRef": {"name": "debug", "key": "k"}}}]}]
            }
        })
    }

    #[test]
    fn the_walk_finds_what_the_agent_reads() {
        let mut refs = references(&pod());
        refs.sort();
        let want: Vec<Ref> = vec![
            ("configmaps", "env-cm".into()),
            ("configmaps", "flags".into()),
            ("configmaps", "kube-root-ca.crt".into()),
            ("configmaps", "nginx".into()),
            ("persistentvolumeclaims", "db".into()),
            ("persistentvolumeclaims", "web-scratch".into()),
            ("secrets", "api-key".into()),
            ("secrets", "certs".into()),
            ("secrets", "debug".into()),
            ("secrets", "init-env".into()),
            ("secrets", "proj-s".into()),
            ("secrets", "regcred".into()),
        ];
        assert_eq!(refs, want);
        assert!(references(&json!({"spec": {}})).is_empty());
    }

    #[test]
    fn nodes_get_what_their_pods_use_and_nothing_else() {
        let g = NodeGraph::default();
        g.apply("/core/pods/shop/web", Some(&pod()));
        let n1 = node("n1");
        assert_eq!(
            decide(&g, &n1, &get("secrets", "shop", "api-key"), None),
            Decision::Allow
        );
        assert_eq!(
            decide(&g, &n1, &get("configmaps", "shop", "nginx"), None),
            Decision::Allow
        );
        assert_eq!(
            decide(&g, &n1, &get("persistentvolumeclaims", "shop", "db"), None),
            Decision::Allow
        );
        let unrelated =
            Decision::Unrelated("no relationship found between node 'n1' and this object".into());
        // Another Secret, the same name elsewhere, another node.
        assert_eq!(
            decide(&g, &n1, &get("secrets", "shop", "other"), None),
            unrelated
        );
        assert_eq!(
            decide(&g, &n1, &get("secrets", "default", "api-key"), None),
            unrelated
        );
        assert!(matches!(
            decide(&g, &node("n2"), &get("secrets", "shop", "api-key"), None),
            Decision::Unrelated(_)
        ));
        // A ConfigMap of the name of a Secret the pod uses is not the Secret.
        assert!(matches!(
            decide(&g, &n1, &get("configmaps", "shop", "api-key"), None),
            Decision::Unrelated(_)
        ));
        // Not nodes, other resources: RBAC decides.
        let alice = User {
            name: "alice".into(),
            uid: String::new(),
            groups: vec![],
        };
        assert_eq!(
            decide(&g, &alice, &get("secrets", "shop", "x"), None),
            Decision::NoOpinion(None)
        );
        assert_eq!(
            decide(&g, &n1, &get("pods", "shop", "web"), None),
            Decision::NoOpinion(None)
        );
    }

    #[test]
    fn lists_need_a_name_or_the_tls_type() {
        let g = NodeGraph::default();
        g.apply("/core/pods/shop/web", Some(&pod()));
        let n1 = node("n1");
        let list = |resource, ns| Attributes {
            verb: "list",
            name: None,
            namespace: ns,
            ..get(resource, "", "")
        };
        assert_eq!(
            decide(&g, &n1, &list("secrets", Some("shop")), None),
            Decision::NoOpinion(Some("No Object name found".into()))
        );
        assert_eq!(
            decide(&g, &n1, &list("secrets", None), None),
            Decision::NoOpinion(Some("can only read namespaced object of this type".into()))
        );
        // One object by name, as the kubelet watches them.
        assert_eq!(
            decide(
                &g,
                &n1,
                &list("secrets", Some("shop")),
                Some("metadata.name=certs")
            ),
            Decision::Allow
        );
        assert!(matches!(
            decide(
                &g,
                &n1,
                &list("secrets", Some("shop")),
                Some("metadata.name!=certs")
            ),
            Decision::NoOpinion(_)
        ));
        // The gateway's TLS Secrets, anywhere; not ConfigMaps, not negated.
        for sel in [
            "type=kubernetes.io/tls",
            "metadata.namespace=a,type==kubernetes.io/tls",
        ] {
            assert_eq!(
                decide(&g, &n1, &list("secrets", None), Some(sel)),
                Decision::Allow,
                "{sel}"
            );
        }
        assert!(matches!(
            decide(
                &g,
                &n1,
                &list("secrets", None),
                Some("type!=kubernetes.io/tls")
            ),
            Decision::NoOpinion(_)
        ));
        assert!(matches!(
            decide(
                &g,
                &n1,
                &list("configmaps", None),
                Some("type=kubernetes.io/tls")
            ),
            Decision::NoOpinion(_)
        ));
        // Writes are RBAC's to refuse, with a reason.
        let del = Attributes {
            verb: "delete",
            ..get("secrets", "shop", "certs")
        };
        assert_eq!(
            decide(&g, &n1, &del, None),
            Decision::NoOpinion(Some("can only read resources of this type".into()))
        );
    }

    #[tokio::test]
    async fn the_graph_follows_the_store_and_waits_out_a_race() {
        use crate::store::WriteOp;
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            crate::store::redb::RedbStore::open(&dir.path().join("s.redb"), 1000).expect("store"),
        );
        // A pod stored before the graph starts is loaded.
        let write = |key: &str, pod: Value| {
            store.write(WriteOp::Create {
                key: key.to_string(),
                value: pod,
            })
        };
        write("/core/pods/shop/web", pod()).await.expect("write");
        let g = Arc::new(NodeGraph::default());
        tokio::spawn(g.clone().run(store.clone()));
        let n1 = node("n1");
        let a = get("secrets", "shop", "api-key");
        assert_eq!(g.authorize(&*store, &n1, &a, None).await, Decision::Allow);
        // A pod bound a moment ago: allowed at once, the refusal having
        // waited for the graph to apply it.
        let mut fresh = pod();
        fresh["metadata"]["name"] = json!("fresh");
        fresh["spec"] =
            json!({"nodeName": "n9", "volumes": [{"name": "v", "secret": {"secretName": "new"}}]});
        write("/core/pods/shop/fresh", fresh).await.expect("write");
        let a = get("secrets", "shop", "new");
        assert_eq!(
            g.authorize(&*store, &node("n9"), &a, None).await,
            Decision::Allow
        );
        // Unrelated stays refused, without waiting once caught up.
        let t = std::time::Instant::now();
        assert!(matches!(
            g.authorize(&*store, &n1, &a, None).await,
            Decision::Unrelated(_)
        ));
        assert!(t.elapsed() < CATCH_UP / 2, "{:?}", t.elapsed());
        // Deleted: gone.
        store
            .write(WriteOp::Delete {
                key: "/core/pods/shop/fresh".into(),
                expected: None,
            })
            .await
            .expect("delete");
        // (An allow is not rechecked: wait for the graph as a later
        // request would find it.)
        g.caught_up(store.revision()).await;
        assert!(matches!(
            g.authorize(&*store, &node("n9"), &a, None).await,
            Decision::Unrelated(_)
        ));
    }

    #[test]
    fn edges_follow_pods_moving_and_going() {
        let g = NodeGraph::default();
        let n1 = node("n1");
        let key = "/core/pods/shop/web";
        let mut p = pod();
        p["spec"]["nodeName"] = Value::Null;
        g.apply(key, Some(&p));
        assert!(!g.related("n1", "secrets", "shop", "certs"), "unbound");
        g.apply(key, Some(&pod()));
        // A second pod sharing a Secret keeps it when the first goes.
        let mut other = pod();
        other["metadata"]["name"] = json!("api");
        other["spec"]["volumes"] = json!([]);
        g.apply("/core/pods/shop/api", Some(&other));
        g.apply(key, None);
        assert_eq!(
            decide(&g, &n1, &get("secrets", "shop", "api-key"), None),
            Decision::Allow
        );
        assert!(matches!(
            decide(&g, &n1, &get("configmaps", "shop", "nginx"), None),
            Decision::Unrelated(_)
        ));
        // Moved to another node: the first loses it.
        other["spec"]["nodeName"] = json!("n2");
        g.apply("/core/pods/shop/api", Some(&other));
        assert!(!g.related("n1", "secrets", "shop", "api-key"));
        assert!(g.related("n2", "secrets", "shop", "api-key"));
        g.apply("/core/pods/shop/api", None);
        let graph = g.graph.read().expect("graph lock");
        assert!(graph.edges.is_empty() && graph.pods.is_empty());
    }
}
