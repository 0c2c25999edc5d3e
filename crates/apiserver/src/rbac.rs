//! RBAC, as Kubernetes evaluates it: deny by default; a request is allowed
//! when a ClusterRoleBinding, or a RoleBinding in the request's namespace,
//! binds the user (by name, group, or ServiceAccount) to a Role or
//! ClusterRole with a rule covering it. A rule covers a request when its
//! `verbs`, `apiGroups` and `resources` (`pods`, `pods/log`, `*`, `*/scale`)
//! contain the request's, and `resourceNames` is empty or names the object.
//! Members of `system:masters` are allowed everything without a lookup.
//!
//! The default ClusterRoles `cluster-admin`, `admin`, `edit` and `view` are
//! created at startup when missing, with Kubernetes' intent: `view` reads
//! everything but Secrets, `edit` writes workloads and config, `admin` adds
//! Roles and RoleBindings in a namespace. Discovery and `/version` are open
//! to every authenticated user (`system:discovery`).

use serde_json::{json, Value};

use crate::authn::User;
use crate::registry;
use crate::resources;
use crate::store::{Store, StoreError, WriteOp};

/// What a request does, for the authorizer.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

impl Rule {
    fn from_json(v: &Value) -> Rule {
        Rule {
            verbs: strings(&v["verbs"]),
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            resource_names: strings(&v["resourceNames"]),
            non_resource_urls: strings(&v["nonResourceURLs"]),
        }
    }

    /// Whether the rule allows the request.
    pub fn covers(&self, a: &Attributes<'_>) -> bool {
        let has = |list: &[String], x: &str| list.iter().any(|v| v == "*" || v == x);
        if !has(&self.verbs, a.verb) || !has(&self.api_groups, a.group) {
            return false;
        }
        let resource_ok = self.resources.iter().any(|r| match a.subresource {
            None => r == "*" || r == a.resource,
            Some(sub) => {
                r == "*"
                    || *r == format!("{}/{sub}", a.resource)
                    || *r == format!("*/{sub}")
                    || *r == format!("{}/*", a.resource)
            }
        });
        resource_ok
            && (self.resource_names.is_empty()
                || a.name
                    .is_some_and(|n| self.resource_names.iter().any(|x| x == n)))
    }

    /// The rule as a SelfSubjectRulesReview lists it.
    pub fn to_json(&self) -> Value {
        let mut v =
            json!({"verbs": self.verbs, "apiGroups": self.api_groups, "resources": self.resources});
        if !self.resource_names.is_empty() {
            v["resourceNames"] = json!(self.resource_names);
        }
        v
    }
}

/// Whether a binding's subjects include the user.
fn binds(binding: &Value, user: &User) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            let name = s["name"].as_str().unwrap_or_default();
            match s["kind"].as_str().unwrap_or_default() {
                "User" => name == user.name,
                "Group" => user.groups.iter().any(|g| g == name),
                "ServiceAccount" => {
                    let ns = s["namespace"].as_str().unwrap_or_default();
                    user.name == format!("system:serviceaccount:{ns}:{name}")
                }
                _ => false,
            }
        })
}

fn list(store: &dyn Store, kind: &str, ns: Option<&str>) -> Result<Vec<Value>, StoreError> {
    let Some(r) = resources::by_kind("rbac.authorization.k8s.io", "v1", kind) else {
        return Ok(Vec::new());
    };
    Ok(store
        .list(&registry::prefix(r, ns), None, None)?
        .items
        .into_iter()
        .map(|s| (*s.value).clone())
        .collect())
}

fn rbac_resource(kind: &str) -> Option<&'static resources::Resource> {
    resources::by_kind("rbac.authorization.k8s.io", "v1", kind)
}

/// The storage key of the Role or ClusterRole a binding refers to (a
/// Role lives in the binding's namespace); `None` for any other kind.
fn role_ref_key(role_ref: &Value, ns: Option<&str>) -> Option<String> {
    let name = role_ref["name"].as_str()?;
    match role_ref["kind"].as_str()? {
        "ClusterRole" => Some(registry::key(rbac_resource("ClusterRole")?, None, name)),
        "Role" => Some(registry::key(rbac_resource("Role")?, ns, name)),
        _ => None,
    }
}

/// The storage key of an RBAC object, from its kind and metadata.
fn object_key(obj: &Value) -> Option<String> {
    let r = rbac_resource(obj["kind"].as_str()?)?;
    let name = obj["metadata"]["name"].as_str()?;
    Some(registry::key(
        r,
        obj["metadata"]["namespace"].as_str(),
        name,
    ))
}

fn rules_of(role: &Value) -> Vec<Rule> {
    role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Rule::from_json)
        .collect()
}

fn role_rules(
    store: &dyn Store,
    role_ref: &Value,
    ns: Option<&str>,
) -> Result<Vec<Rule>, StoreError> {
    let Some(key) = role_ref_key(role_ref, ns) else {
        return Ok(Vec::new());
    };
    Ok(store
        .get(&key)?
        .map(|s| rules_of(&s.value))
        .unwrap_or_default())
}

/// Every rule that applies to the user in `namespace` (cluster-wide
/// bindings always; RoleBindings of that namespace when given).
pub fn rules_for(
    store: &dyn Store,
    user: &User,
    namespace: Option<&str>,
) -> Result<Vec<Rule>, StoreError> {
    let mut rules = Vec::new();
    for b in list(store, "ClusterRoleBinding", None)? {
        if binds(&b, user) {
            rules.extend(role_rules(store, &b["roleRef"], None)?);
        }
    }
    if let Some(ns) = namespace {
        for b in list(store, "RoleBinding", Some(ns))? {
            if binds(&b, user) {
                rules.extend(role_rules(store, &b["roleRef"], Some(ns))?);
            }
        }
    }
    Ok(rules)
}

/// Allow or deny a request.
pub fn allowed(store: &dyn Store, user: &User, a: &Attributes<'_>) -> Result<bool, StoreError> {
    if user.is_master() {
        return Ok(true);
    }
    Ok(rules_for(store, user, a.namespace)?
        .iter()
        .any(|r| r.covers(a)))
}

/// Kubernetes' refusal text: `pods is forbidden: User "x" cannot create
/// resource "pods" in API group "" in the namespace "ns"`.
pub fn forbidden_message(user: &User, a: &Attributes<'_>) -> String {
    let what = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_string(),
    };
    let named = a
        .name
        .map(|n| format!("{what} \"{n}\""))
        .unwrap_or_else(|| what.clone());
    let scope = match a.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_string(),
    };
    format!(
        "{named} is forbidden: User \"{}\" cannot {} resource \"{what}\" in API group \"{}\"{scope}",
        user.name, a.verb, a.group
    )
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// The default ClusterRoles, as `(name, rules)`.
fn default_roles() -> Vec<(&'static str, Vec<Value>)> {
    let core_read = &[
        "pods",
        "pods/log",
        "pods/status",
        "services",
        "endpoints",
        "configmaps",
        "persistentvolumeclaims",
        "serviceaccounts",
        "events",
        "replicationcontrollers",
        "limitranges",
        "resourcequotas",
    ][..];
    let apps = &[
        "deployments",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
        "daemonsets",
        "controllerrevisions",
    ][..];
    let batch = &["jobs", "cronjobs"][..];
    let net = &["ingresses", "networkpolicies"][..];
    let view = vec![
        rule(&[""], core_read, READ),
        rule(&[""], &["namespaces"], READ),
        rule(&["apps"], apps, READ),
        rule(&["batch"], batch, READ),
        rule(&["networking.k8s.io"], net, READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
    ];
    let mut edit = view.clone();
    let core_write = &[
        "pods",
        "pods/exec",
        "pods/eviction",
        "services",
        "endpoints",
        "configmaps",
        "secrets",
        "persistentvolumeclaims",
        "serviceaccounts",
        "serviceaccounts/token",
        "replicationcontrollers",
    ][..];
    edit.push(rule(&[""], core_write, WRITE));
    edit.push(rule(&[""], &["secrets"], READ));
    edit.push(rule(&["apps"], apps, WRITE));
    edit.push(rule(&["batch"], batch, WRITE));
    edit.push(rule(&["networking.k8s.io"], net, WRITE));
    let mut admin = edit.clone();
    admin.push(rule(
        &["rbac.authorization.k8s.io"],
        &["roles", "rolebindings"],
        &["*"],
    ));
    // What a node agent does; NodeRestriction admission narrows the writes
    // to its own Node, Lease and pods (crate::noderestriction). No Secrets
    // or ConfigMaps: the Node authorizer grants a node those its pods use
    // (crate::nodeauthz), as in Kubernetes.
    let node = vec![
        rule(
            &[""],
            &["nodes"],
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        rule(&[""], &["nodes/status"], &["get", "update", "patch"]),
        rule(
            &[""],
            &["pods"],
            &["get", "list", "watch", "patch", "delete"],
        ),
        rule(&[""], &["pods/status"], &["get", "update", "patch"]),
        rule(&[""], &["events"], &["create", "update", "patch"]),
        // Tokens for the pods it runs (checked in the TokenRequest handler).
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&[""], &["services", "endpoints"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingressclasses"],
            READ,
        ),
        rule(&["node.k8s.io"], &["runtimeclasses"], READ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        rule(
            &["apps"],
            &["deployments"],
            &["get", "list", "watch", "patch"],
        ),
        rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create", "get", "list", "watch"],
        ),
    ];
    let bootstrapper = vec![rule(
        &["certificates.k8s.io"],
        &["certificatesigningrequests"],
        &["create", "get", "list", "watch"],
    )];
    vec![
        ("cluster-admin", vec![rule(&["*"], &["*"], &["*"])]),
        ("admin", admin),
        ("edit", edit),
        ("view", view),
        ("system:node", node),
        ("system:node-bootstrapper", bootstrapper),
    ]
}

/// Create the default ClusterRoles and their bindings when they are
/// missing, and — as Kubernetes reconciles its bootstrap roles — add the
/// rules and subjects a newer skiff's defaults have to existing ones,
/// unless they are annotated `rbac.authorization.kubernetes.io/autoupdate:
/// "false"`. Nothing a user added is removed.
pub async fn ensure_defaults(store: &dyn Store) -> Result<(), StoreError> {
    let (Some(cr), Some(crb)) = (
        resources::by_kind("rbac.authorization.k8s.io", "v1", "ClusterRole"),
        resources::by_kind("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    ) else {
        return Ok(());
    };
    let labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let annotations = json!({AUTOUPDATE: "true"});
    let mut objects: Vec<(String, Value, &resources::Resource)> = default_roles()
        .into_iter()
        .map(|(name, rules)| {
            (
                registry::key(cr, None, name),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": name, "labels": labels, "annotations": annotations},
                       "rules": rules}),
                cr,
            )
        })
        .collect();
    for (role, group) in [
        ("cluster-admin", "system:masters"),
        ("system:node", crate::authn::NODES_GROUP),
        (
            "system:node-bootstrapper",
            crate::authn::BOOTSTRAPPERS_GROUP,
        ),
    ] {
        objects.push((
            registry::key(crb, None, role),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": role, "labels": labels, "annotations": annotations},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]}),
            crb,
        ));
    }
    for (key, mut obj, r) in objects {
        if let Some(mut current) = store.get(&key)? {
            if let Some(fixed) = narrowed_node_role(&current.value) {
                match store
                    .write(WriteOp::Update {
                        key: key.clone(),
                        value: fixed,
                        expected: Some(current.rev),
                    })
                    .await
                {
                    Ok(narrowed) => current = narrowed,
                    // Someone else wrote it meanwhile: next start.
                    Err(StoreError::Conflict | StoreError::NotFound) => continue,
                    Err(e) => return Err(e),
                }
            }
            reconcile_default(store, key, &current, &obj).await?;
            continue;
        }
        registry::prepare_create(r, &mut obj);
        match store.write(WriteOp::Create { key, value: obj }).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The annotation that lets skiff add to a default role or binding.
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// Add to a stored default role (binding) the rules (subjects) of
/// `default` it lacks, unless autoupdate is off.
async fn reconcile_default(
    store: &dyn Store,
    key: String,
    current: &crate::store::Stored,
    default: &Value,
) -> Result<(), StoreError> {
    if current.value["metadata"]["annotations"][AUTOUPDATE] == "false" {
        return Ok(());
    }
    let field = if default.get("rules").is_some() {
        "rules"
    } else {
        "subjects"
    };
    let have = current.value[field].as_array().cloned().unwrap_or_default();
    let missing: Vec<Value> = default[field]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|want| !have.contains(want))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut updated = (*current.value).clone();
    let mut all = have;
    all.extend(missing);
    updated[field] = Value::Array(all);
    match store
        .write(WriteOp::Update {
            key,
            value: updated,
            expected: Some(current.rev),
        })
        .await
    {
        // Someone else wrote it meanwhile: theirs stands until next start.
        Ok(_) | Err(StoreError::Conflict) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The stored `system:node` ClusterRole without the Secrets and ConfigMaps
/// that skiff's default role granted before the Node authorizer, when it
/// still grants them and is a default (Kubernetes' `autoupdate: "false"`
/// annotation keeps a role as it is). Nothing else in it changes, and other
/// roles are never rewritten.
fn narrowed_node_role(stored: &Value) -> Option<Value> {
    let meta = &stored["metadata"];
    let ours = meta["name"] == "system:node"
        && meta["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        && meta["annotations"][AUTOUPDATE] != "false";
    let rules = stored["rules"].as_array()?;
    let core = |r: &Value| strings(&r["apiGroups"]) == [""];
    let granted = |r: &Value| {
        strings(&r["resources"])
            .iter()
            .any(|x| x == "secrets" || x == "configmaps")
    };
    if !ours || !rules.iter().any(|r| core(r) && granted(r)) {
        return None;
    }
    let mut kept = Vec::new();
    for r in rules {
        let mut r = r.clone();
        if core(&r) && granted(&r) {
            let rest: Vec<String> = strings(&r["resources"])
                .into_iter()
                .filter(|x| x != "secrets" && x != "configmaps")
                .collect();
            if rest.is_empty() {
                continue;
            }
            r["resources"] = json!(rest);
        }
        kept.push(r);
    }
    let mut fixed = stored.clone();
    fixed["rules"] = Value::Array(kept);
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(
        verb: &'a str,
        resource: &'a str,
        sub: Option<&'a str>,
        ns: Option<&'a str>,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource,
            subresource: sub,
            namespace: ns,
            name: None,
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_subresources() {
        let r = Rule::from_json(
            &json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
        );
        assert!(r.covers(&attrs("get", "pods", None, Some("a"))));
        assert!(r.covers(&attrs("get", "pods", Some("log"), Some("a"))));
        assert!(!r.covers(&attrs("create", "pods", None, Some("a"))));
        assert!(!r.covers(&attrs("get", "pods", Some("exec"), Some("a"))));
        assert!(!r.covers(&attrs("get", "secrets", None, Some("a"))));
        let mut apps = attrs("get", "deployments", None, None);
        apps.group = "apps";
        assert!(!r.covers(&apps), "another API group");
        let star =
            Rule::from_json(&json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/scale"]}));
        assert!(star.covers(&Attributes {
            subresource: Some("scale"),
            ..apps.clone()
        }));
        assert!(!star.covers(&apps));
        let named = Rule::from_json(
            &json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app"]}),
        );
        assert!(named.covers(&Attributes {
            name: Some("app"),
            ..attrs("get", "configmaps", None, Some("a"))
        }));
        assert!(
            !named.covers(&attrs("get", "configmaps", None, Some("a"))),
            "a list names no object"
        );
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let sa = User::service_account("team", "reader", "u");
        let b = json!({"subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "team"}]});
        assert!(binds(&b, &sa));
        let other_ns = json!({"subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "else"}]});
        assert!(!binds(&other_ns, &sa));
        assert!(binds(
            &json!({"subjects": [{"kind": "Group", "name": "system:serviceaccounts:team"}]}),
            &sa
        ));
        assert!(binds(
            &json!({"subjects": [{"kind": "User", "name": "system:serviceaccount:team:reader"}]}),
            &sa
        ));
    }

    #[test]
    fn refusals_read_like_kubernetes() {
        let sa = User::service_account("team", "reader", "u");
        assert_eq!(
            forbidden_message(&sa, &attrs("create", "pods", None, Some("team"))),
            "pods is forbidden: User \"system:serviceaccount:team:reader\" cannot create resource \"pods\" in API group \"\" in the namespace \"team\""
        );
        assert_eq!(
            forbidden_message(&sa, &Attributes { name: Some("n1"), ..attrs("get", "nodes", None, None) }),
            "nodes \"n1\" is forbidden: User \"system:serviceaccount:team:reader\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
        );
    }

    #[tokio::test]
    async fn defaults_gain_new_rules_unless_autoupdate_is_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            crate::store::redb::RedbStore::open(&dir.path().join("s.redb"), 1000).expect("store");
        ensure_defaults(&store).await.expect("defaults");
        let r =
            resources::by_kind("rbac.authorization.k8s.io", "v1", "ClusterRole").expect("served");
        // An older skiff's system:node role (one rule) and a view role a
        // user pinned with autoupdate "false" and cut down.
        let rewrite = |name: &'static str, f: fn(&mut Value)| {
            let store = &store;
            async move {
                let key = registry::key(r, None, name);
                let cur = store.get(&key).expect("read").expect("default role");
                let mut v = (*cur.value).clone();
                f(&mut v);
                store
                    .write(WriteOp::Update {
                        key,
                        value: v,
                        expected: None,
                    })
                    .await
                    .expect("rewrite");
            }
        };
        rewrite("system:node", |v| {
            v["rules"] = json!([v["rules"][0].clone(), {"apiGroups": ["x"], "resources": ["mine"], "verbs": ["get"]}]);
        })
        .await;
        rewrite("view", |v| {
            v["metadata"]["annotations"][AUTOUPDATE] = json!("false");
            v["rules"] = json!([]);
        })
        .await;
        ensure_defaults(&store).await.expect("reconciled");
        let rules = |name: &str| -> Vec<Value> {
            let v = store
                .get(&registry::key(r, None, name))
                .expect("read")
                .expect("role");
            v.value["rules"].as_array().cloned().unwrap_or_default()
        };
        let node = rules("system:node");
        let defaults = default_roles();
        let (_, want) = defaults
            .iter()
            .find(|(n, _)| *n == "system:node")
            .expect("default");
        for rule in want {
            assert!(node.contains(rule), "{rule} restored");
        }
        assert!(
            node.iter().any(|r| r["resources"] == json!(["mine"])),
            "the user's own rule stays"
        );
        assert!(rules("view").is_empty(), "autoupdate false is left alone");
    }

    #[tokio::test]
    async fn the_cache_follows_bindings_and_roles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
            crate::store::redb::RedbStore::open(&dir.path().join("s.redb"), 1000).expect("store"),
        );
        ensure_defaults(&*store).await.expect("defaults");
        let cache = std::sync::Arc::new(Cache::default());
        tokio::spawn(cache.clone().run(store.clone()));
        let sa = User::service_account("team", "reader", "u");
        let list = attrs("list", "pods", None, Some("team"));
        let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "rb", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "team"}]});
        let key = object_key(&binding).expect("a RoleBinding's key");
        store
            .write(WriteOp::Create {
                key: key.clone(),
                value: binding,
            })
            .await
            .expect("create");
        let mut seen = false;
        for _ in 0..100 {
            if cache.allows(&sa, &list) {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(seen, "the cache saw the new binding");
        assert!(!cache.allows(&sa, &attrs("list", "pods", None, Some("other"))));
        assert!(!cache.allows(&sa, &attrs("create", "pods", None, Some("team"))));
        store
            .write(WriteOp::Delete {
                key,
                expected: None,
            })
            .await
            .expect("delete");
        for _ in 0..100 {
            if !cache.allows(&sa, &list) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the cache kept a deleted binding");
    }

    #[test]
    fn view_reads_but_never_secrets() {
        let roles = default_roles();
        let view: Vec<Rule> = roles
            .iter()
            .find(|(n, _)| *n == "view")
            .map(|(_, r)| r.iter().map(Rule::from_json).collect())
            .unwrap_or_default();
        let ok = |a: Attributes<'_>| view.iter().any(|r| r.covers(&a));
        assert!(ok(attrs("list", "pods", None, Some("a"))));
        assert!(ok(attrs("get", "pods", Some("log"), Some("a"))));
        assert!(!ok(attrs("get", "secrets", None, Some("a"))));
        assert!(!ok(attrs("create", "pods", None, Some("a"))));
    }

    #[test]
    fn the_node_role_leaves_secrets_to_the_node_authorizer() {
        let roles = default_roles();
        let (_, node) = roles
            .iter()
            .find(|(n, _)| *n == "system:node")
            .expect("system:node");
        let rules: Vec<Rule> = node.iter().map(Rule::from_json).collect();
        let ok = |a: Attributes<'_>| rules.iter().any(|r| r.covers(&a));
        assert!(ok(attrs("list", "services", None, None)));
        for verb in ["get", "list", "watch"] {
            assert!(!ok(attrs(verb, "secrets", None, Some("a"))), "{verb}");
            assert!(!ok(attrs(verb, "configmaps", None, Some("a"))), "{verb}");
        }
    }

    #[test]
    fn an_old_default_node_role_loses_secrets_and_configmaps_only() {
        let labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
        let old = json!({"metadata": {"name": "system:node", "labels": labels}, "rules": [
            rule(&[""], &["configmaps", "secrets", "services", "endpoints"], READ),
            rule(&[""], &["secrets"], READ),
            rule(&["example.com"], &["secrets"], READ),
        ]});
        let fixed = narrowed_node_role(&old).expect("narrowed");
        assert_eq!(
            fixed["rules"],
            json!([
                rule(&[""], &["services", "endpoints"], READ),
                rule(&["example.com"], &["secrets"], READ),
            ])
        );
        assert!(narrowed_node_role(&fixed).is_none(), "already narrow");
        let mut kept = old.clone();
        kept["metadata"]["annotations"] =
            json!({"rbac.authorization.kubernetes.io/autoupdate": "false"});
        assert!(narrowed_node_role(&kept).is_none(), "opted out");
        let mut other = old.clone();
        other["metadata"]["name"] = json!("edit");
        assert!(narrowed_node_role(&other).is_none());
    }
}

/// Bindings and roles kept in memory, indexed by subject, so that a check
/// costs a few hash lookups however many RoleBindings exist. It follows
/// the store through a watch. In the moment after an RBAC write through
/// the API (until its event is applied) a request the cache does not allow
/// is checked against the store before it is refused, so a binding created
/// a moment ago is never missed; otherwise a refusal costs no store read.
/// (Writes that only remove access — garbage collection, namespace
/// deletion — cannot make the cache wrongly refuse.)
#[derive(Default)]
pub struct Cache {
    inner: std::sync::RwLock<Index>,
    last_write: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long after an RBAC write refusals are checked against the store.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
struct Index {
    ready: bool,
    /// Binding storage key → what it binds.
    bindings: std::collections::HashMap<String, Binding>,
    /// Subject (`User:x`, `Group:g`, `ServiceAccount:ns:name`) → binding keys.
    by_subject: std::collections::HashMap<String, std::collections::HashSet<String>>,
    /// Role or ClusterRole storage key → its rules.
    roles: std::collections::HashMap<String, Vec<Rule>>,
}

struct Binding {
    /// The RoleBinding's namespace; `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    subjects: Vec<String>,
    /// The storage key of the role it grants (`None`: a roleRef of an
    /// unknown kind, which grants nothing).
    role: Option<String>,
}

const RBAC_PREFIX: &str = "/rbac.authorization.k8s.io/";

fn subject_keys(b: &Value) -> Vec<String> {
    b["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let name = s["name"].as_str()?;
            Some(match s["kind"].as_str()? {
                "ServiceAccount" => format!(
                    "ServiceAccount:{}:{name}",
                    s["namespace"].as_str().unwrap_or_default()
                ),
                kind => format!("{kind}:{name}"),
            })
        })
        .collect()
}

fn user_keys(user: &User) -> Vec<String> {
    let mut keys = vec![format!("User:{}", user.name)];
    keys.extend(user.groups.iter().map(|g| format!("Group:{g}")));
    if let Some(rest) = user.name.strip_prefix("system:serviceaccount:") {
        keys.push(format!("ServiceAccount:{rest}"));
    }
    keys
}

impl Index {
    fn remove(&mut self, key: &str) {
        self.roles.remove(key);
        if let Some(b) = self.bindings.remove(key) {
            for s in b.subjects {
                if let Some(set) = self.by_subject.get_mut(&s) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_subject.remove(&s);
                    }
                }
            }
        }
    }

    fn upsert(&mut self, key: &str, obj: &Value) {
        self.remove(key);
        let namespace = obj["metadata"]["namespace"].as_str().map(str::to_string);
        match obj["kind"].as_str() {
            Some("Role" | "ClusterRole") => {
                self.roles.insert(key.to_string(), rules_of(obj));
            }
            Some(kind @ ("RoleBinding" | "ClusterRoleBinding")) => {
                let namespace = namespace.filter(|_| kind == "RoleBinding");
                let subjects = subject_keys(obj);
                for s in &subjects {
                    self.by_subject
                        .entry(s.clone())
                        .or_default()
                        .insert(key.to_string());
                }
                let role = role_ref_key(&obj["roleRef"], namespace.as_deref());
                self.bindings.insert(
                    key.to_string(),
                    Binding {
                        namespace,
                        subjects,
                        role,
                    },
                );
            }
            _ => {}
        }
    }
}

impl Cache {
    /// An RBAC object is about to be written through the API.
    pub fn note_write(&self) {
        *self.last_write.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::Instant::now());
    }

    /// Whether a refusal must be checked against the store.
    fn unsettled(&self) -> bool {
        let ready = self.inner.read().unwrap_or_else(|e| e.into_inner()).ready;
        let recent = self
            .last_write
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < SETTLE);
        !ready || recent
    }

    /// Whether the cached bindings allow the request (false also when the
    /// cache has not loaded yet).
    fn allows(&self, user: &User, a: &Attributes<'_>) -> bool {
        let idx = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if !idx.ready {
            return false;
        }
        user_keys(user)
            .iter()
            .filter_map(|k| idx.by_subject.get(k))
            .flatten()
            .filter_map(|bk| idx.bindings.get(bk))
            .filter(|b| b.namespace.is_none() || b.namespace.as_deref() == a.namespace)
            .filter_map(|b| b.role.as_ref().and_then(|r| idx.roles.get(r)))
            .flatten()
            .any(|r| r.covers(a))
    }

    fn rebuild(&self, store: &dyn Store) -> Result<(), StoreError> {
        let mut idx = Index::default();
        for item in store.list(RBAC_PREFIX, None, None)?.items {
            if let Some(key) = object_key(&item.value) {
                idx.upsert(&key, &item.value);
            }
        }
        idx.ready = true;
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = idx;
        Ok(())
    }

    /// Follow the store until it closes: a full load, then every change.
    pub async fn run(self: std::sync::Arc<Self>, store: std::sync::Arc<dyn Store>) {
        loop {
            let from = store.revision();
            let watch = store.watch(RBAC_PREFIX, from);
            if let Err(e) = self.rebuild(&*store) {
                tracing::warn!(error = %e, "loading RBAC bindings");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            let Ok(mut w) = watch else {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            };
            while let Some(ev) = w.events.recv().await {
                let mut idx = self.inner.write().unwrap_or_else(|e| e.into_inner());
                match ev.kind {
                    crate::store::EventType::Deleted => idx.remove(&ev.key),
                    _ => idx.upsert(&ev.key, &ev.object),
                }
            }
            // The watch fell behind or ended: load everything again.
        }
    }
}

/// Allow or deny, asking the cache first and the store before refusing.
pub fn allowed_cached(
    cache: &Cache,
    store: &dyn Store,
    user: &User,
    a: &Attributes<'_>,
) -> Result<bool, StoreError> {
    if user.is_master() || cache.allows(user, a) {
        return Ok(true);
    }
    if cache.unsettled() {
        return allowed(store, user, a);
    }
    Ok(false)
}
