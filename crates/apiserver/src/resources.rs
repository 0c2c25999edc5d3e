//! The table of kinds skiff serves.
//!
//! One row per resource: where it lives in the URL space, what kubectl's
//! discovery needs to know about it (short names, categories, verbs,
//! subresources) and which OpenAPI type describes it. Everything that
//! differs between kinds beyond this table lives in the per-kind strategy
//! (`registry`).

/// Whether a kind lives in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// One served resource (a kind in one group/version).
#[derive(Debug, Clone)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Plural lower-case name used in URLs (`deployments`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub scope: Scope,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served (`status`, `scale`, `binding`, `log`).
    pub subresources: &'static [&'static str],
    /// OpenAPI type name of the kind (`io.k8s.api.apps.v1.Deployment`).
    pub openapi: &'static str,
    /// Create-only "virtual" resources such as SelfSubjectAccessReview:
    /// never stored, answered by the server.
    pub create_only: bool,
}

impl Resource {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// Verbs for discovery.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.create_only {
            &["create"]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }

    /// The key prefix under which objects of this resource are stored.
    /// Independent of version so that a kind served in several versions
    /// shares one collection.
    pub fn store_prefix(&self) -> String {
        format!(
            "/{}/{}/",
            if self.group.is_empty() {
                "core"
            } else {
                self.group
            },
            self.plural
        )
    }
}

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $scope:ident,
     short: [$($short:expr),*], cat: [$($cat:expr),*], sub: [$($sub:expr),*], $openapi:expr) => {
        Resource {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            scope: Scope::$scope,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            openapi: $openapi,
            create_only: false,
        }
    };
}

/// Every resource skiff serves, in discovery order.
pub fn all() -> &'static [Resource] {
    static ALL: std::sync::OnceLock<Vec<Resource>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut v = vec![
            res!("", "v1", "Namespace", "namespaces", "namespace", Cluster, short: ["ns"], cat: [], sub: ["status", "finalize"], "io.k8s.api.core.v1.Namespace"),
            res!("", "v1", "Pod", "pods", "pod", Namespaced, short: ["po"], cat: ["all"], sub: ["status", "binding", "log", "eviction", "exec"], "io.k8s.api.core.v1.Pod"),
            res!("", "v1", "Node", "nodes", "node", Cluster, short: ["no"], cat: [], sub: ["status"], "io.k8s.api.core.v1.Node"),
            res!("", "v1", "Event", "events", "event", Namespaced, short: ["ev"], cat: [], sub: [], "io.k8s.api.core.v1.Event"),
            res!("", "v1", "ConfigMap", "configmaps", "configmap", Namespaced, short: ["cm"], cat: [], sub: [], "io.k8s.api.core.v1.ConfigMap"),
            res!("", "v1", "Secret", "secrets", "secret", Namespaced, short: [], cat: [], sub: [], "io.k8s.api.core.v1.Secret"),
            res!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", Namespaced, short: ["sa"], cat: [], sub: ["token"], "io.k8s.api.core.v1.ServiceAccount"),
            res!("", "v1", "Service", "services", "service", Namespaced, short: ["svc"], cat: ["all"], sub: ["status"], "io.k8s.api.core.v1.Service"),
            res!("", "v1", "Endpoints", "endpoints", "endpoints", Namespaced, short: ["ep"], cat: [], sub: [], "io.k8s.api.core.v1.Endpoints"),
            res!("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", Cluster, short: [], cat: ["api-extensions"], sub: [], "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration"),
            res!("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "validatingwebhookconfiguration", Cluster, short: [], cat: ["api-extensions"], sub: [], "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration"),
            res!("apps", "v1", "Deployment", "deployments", "deployment", Namespaced, short: ["deploy"], cat: ["all"], sub: ["status", "scale"], "io.k8s.api.apps.v1.Deployment"),
            res!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", Namespaced, short: ["rs"], cat: ["all"], sub: ["status", "scale"], "io.k8s.api.apps.v1.ReplicaSet"),
            res!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", Namespaced, short: ["ds"], cat: ["all"], sub: ["status"], "io.k8s.api.apps.v1.DaemonSet"),
            res!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", Namespaced, short: ["sts"], cat: ["all"], sub: ["status", "scale"], "io.k8s.api.apps.v1.StatefulSet"),
            res!("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", Namespaced, short: [], cat: [], sub: [], "io.k8s.api.apps.v1.ControllerRevision"),
            res!("batch", "v1", "Job", "jobs", "job", Namespaced, short: [], cat: ["all"], sub: ["status"], "io.k8s.api.batch.v1.Job"),
            res!("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest", Cluster, short: ["csr"], cat: [], sub: ["status", "approval"], "io.k8s.api.certificates.v1.CertificateSigningRequest"),
            res!("coordination.k8s.io", "v1", "Lease", "leases", "lease", Namespaced, short: [], cat: [], sub: [], "io.k8s.api.coordination.v1.Lease"),
            res!("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", Namespaced, short: [], cat: [], sub: [], "io.k8s.api.discovery.v1.EndpointSlice"),
            res!("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", Namespaced, short: ["ing"], cat: [], sub: ["status"], "io.k8s.api.networking.v1.Ingress"),
            res!("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", Cluster, short: [], cat: [], sub: [], "io.k8s.api.networking.v1.IngressClass"),
            res!("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", "runtimeclass", Cluster, short: [], cat: [], sub: [], "io.k8s.api.node.v1.RuntimeClass"),
            res!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", Namespaced, short: [], cat: [], sub: [], "io.k8s.api.rbac.v1.Role"),
            res!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", Cluster, short: [], cat: [], sub: [], "io.k8s.api.rbac.v1.ClusterRole"),
            res!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", Namespaced, short: [], cat: [], sub: [], "io.k8s.api.rbac.v1.RoleBinding"),
            res!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", Cluster, short: [], cat: [], sub: [], "io.k8s.api.rbac.v1.ClusterRoleBinding"),
        ];
        let mut ssar = res!("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", Cluster, short: [], cat: [], sub: [], "io.k8s.api.authorization.v1.SelfSubjectAccessReview");
        ssar.create_only = true;
        let mut ssrr = res!("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", Cluster, short: [], cat: [], sub: [], "io.k8s.api.authorization.v1.SelfSubjectRulesReview");
        ssrr.create_only = true;
        let mut ssr = res!("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", Cluster, short: [], cat: [], sub: [], "io.k8s.api.authentication.v1.SelfSubjectReview");
        ssr.create_only = true;
        v.push(ssar);
        v.push(ssrr);
        v.push(ssr);
        v
    })
}

/// Find a resource by group, version and plural (as in a URL).
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    all()
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Find a resource by group, version and kind (as in a manifest).
pub fn by_kind(group: &str, version: &str, kind: &str) -> Option<&'static Resource> {
    all()
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The groups served, in discovery order, each with its versions.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in all() {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}
