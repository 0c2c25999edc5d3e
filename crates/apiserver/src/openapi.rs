//! The OpenAPI v3 documents skiff publishes and the structural schema built
//! from the same source.
//!
//! Both come from k8s-openapi's schemars `JsonSchema` impls, one definition
//! per named type. Those schemas lack the patch metadata Kubernetes keeps in
//! struct tags (`patchMergeKey`, `+listType=map`, `+structType=atomic`), so
//! it is added here from one table, [`LIST_RULES`], and from
//! [`ATOMIC_STRUCTS`]. The same table feeds the [`SchemaSet`] (strategic
//! merge patch, server-side apply, field validation) and the
//! `x-kubernetes-*` extensions of the published documents, so kubectl's
//! client-side merge and skiff's server-side merge cannot disagree.
//!
//! kubectl reads these documents for two things: `kubectl apply` looks for
//! a PATCH operation of the kind that takes `fieldValidation` before it
//! leaves validation to the server, and `kubectl explain` finds a kind by its
//! `x-kubernetes-group-version-kind` and walks `#/components/schemas/` refs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use apimachinery::schema::{Field, ListKind, ObjectType, SchemaSet, TypeRef};
use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::resources::{self, Resource};

/// The content type kubectl 1.27 and 1.28 require from `/openapi/v2`.
///
/// Those versions fetch the protobuf OpenAPI v2 document before anything
/// else and give up on a 404, but an empty body (`200` with this content
/// type) decodes as a valid empty document, after which they use the v3
/// documents here for field validation and `explain`. skiff serves exactly
/// that rather than a second copy of every schema.
pub const OPENAPI_V2_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// Types whose values are always free-form JSON, whatever their schema says.
const ANY_TYPES: &[&str] = &[
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
];

macro_rules! core {
    ($t:literal) => {
        concat!("io.k8s.api.core.v1.", $t)
    };
}

/// How one list or object field merges, from Kubernetes' struct tags.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// `+listType=map` with these `+listMapKey`s; the first is the
    /// `patchMergeKey` and the patch strategy is `merge`.
    Map(&'static [&'static str]),
    /// Like [`Rule::Map`] with `patchStrategy: merge,retainKeys` (items are
    /// one-of unions such as volume sources).
    MapRetainKeys(&'static [&'static str]),
    /// A list of scalars merged as a set (`patchStrategy: merge`,
    /// `+listType=set`).
    Set,
    /// `patchStrategy: retainKeys` on a one-of object.
    RetainKeys,
}

/// `(type, field, rule)` for every field whose merge is not "replace the
/// list". Lists of conditions are keyed by `type` everywhere without being
/// listed here (see [`rule_for`]).
const LIST_RULES: &[(&str, &str, Rule)] = &[
    (core!("PodSpec"), "containers", Rule::Map(&["name"])),
    (core!("PodSpec"), "initContainers", Rule::Map(&["name"])),
    (
        core!("PodSpec"),
        "ephemeralContainers",
        Rule::Map(&["name"]),
    ),
    (core!("PodSpec"), "volumes", Rule::MapRetainKeys(&["name"])),
    (core!("PodSpec"), "imagePullSecrets", Rule::Map(&["name"])),
    (core!("PodSpec"), "hostAliases", Rule::Map(&["ip"])),
    (
        core!("PodSpec"),
        "topologySpreadConstraints",
        Rule::Map(&["topologyKey", "whenUnsatisfiable"]),
    ),
    (
        core!("PodSpec"),
        "resourceClaims",
        Rule::MapRetainKeys(&["name"]),
    ),
    (core!("PodSpec"), "schedulingGates", Rule::Map(&["name"])),
    (core!("Container"), "env", Rule::Map(&["name"])),
    (
        core!("Container"),
        "ports",
        Rule::Map(&["containerPort", "protocol"]),
    ),
    (
        core!("Container"),
        "volumeMounts",
        Rule::Map(&["mountPath"]),
    ),
    (
        core!("Container"),
        "volumeDevices",
        Rule::Map(&["devicePath"]),
    ),
    (core!("EphemeralContainer"), "env", Rule::Map(&["name"])),
    (
        core!("EphemeralContainer"),
        "ports",
        Rule::Map(&["containerPort", "protocol"]),
    ),
    (
        core!("EphemeralContainer"),
        "volumeMounts",
        Rule::Map(&["mountPath"]),
    ),
    (
        core!("EphemeralContainer"),
        "volumeDevices",
        Rule::Map(&["devicePath"]),
    ),
    (
        core!("ResourceRequirements"),
        "claims",
        Rule::Map(&["name"]),
    ),
    (core!("PodStatus"), "podIPs", Rule::Map(&["ip"])),
    (core!("PodStatus"), "hostIPs", Rule::Map(&["ip"])),
    (
        core!("PodStatus"),
        "resourceClaimStatuses",
        Rule::MapRetainKeys(&["name"]),
    ),
    (core!("NodeStatus"), "addresses", Rule::Map(&["type"])),
    (core!("NodeSpec"), "podCIDRs", Rule::Set),
    (
        core!("ServiceSpec"),
        "ports",
        Rule::Map(&["port", "protocol"]),
    ),
    (core!("ServiceAccount"), "secrets", Rule::Map(&["name"])),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        Rule::Map(&["uid"]),
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        Rule::Set,
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        Rule::RetainKeys,
    ),
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
        "webhooks",
        Rule::Map(&["name"]),
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
        "webhooks",
        Rule::Map(&["name"]),
    ),
];

/// Types tagged `+structType=atomic` (or `+mapType=atomic`): replaced as a
/// whole by apply and strategic merge patch.
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    core!("ObjectReference"),
    core!("LocalObjectReference"),
    core!("TypedLocalObjectReference"),
    core!("NodeSelector"),
    core!("NodeSelectorTerm"),
    core!("TopologySelectorTerm"),
    core!("ConfigMapKeySelector"),
    core!("SecretKeySelector"),
    core!("ObjectFieldSelector"),
    core!("ResourceFieldSelector"),
    core!("SecretReference"),
];

/// The merge rule of `type_name.field`, whose schema is `field_schema`.
fn rule_for(type_name: &str, field: &str, field_schema: &Value) -> Option<Rule> {
    if let Some((_, _, rule)) = LIST_RULES
        .iter()
        .find(|(t, f, _)| *t == type_name && *f == field)
    {
        return Some(*rule);
    }
    // Every `conditions` list in Kubernetes is keyed by `type`
    // (`patchMergeKey=type`, `+listMapKey=type`).
    let is_array = field_schema.get("type").and_then(Value::as_str) == Some("array");
    (field == "conditions" && is_array).then_some(Rule::Map(&["type"]))
}

/// Raw definitions of every served kind and everything they reach, with the
/// patch metadata extensions applied, keyed by OpenAPI name.
fn definitions() -> &'static Map<String, Value> {
    static DEFS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut defs = generate_definitions();
        normalize_special_types(&mut defs);
        annotate_definitions(&mut defs);
        add_list_types(&mut defs);
        defs
    })
}

/// Every type skiff serves (and the few the HTTP surface refers to), as
/// generated by schemars with OpenAPI 3.0 settings.
fn generate_definitions() -> Map<String, Value> {
    let mut gen = SchemaGenerator::new(SchemaSettings::openapi3());
    macro_rules! register {
        ($($t:ty),* $(,)?) => { $( gen.subschema_for::<$t>(); )* };
    }
    register!(
        api::core::v1::Namespace,
        api::core::v1::Pod,
        api::core::v1::Node,
        api::core::v1::Event,
        api::core::v1::ConfigMap,
        api::core::v1::Secret,
        api::core::v1::ServiceAccount,
        api::core::v1::Service,
        api::core::v1::Endpoints,
        api::admissionregistration::v1::MutatingWebhookConfiguration,
        api::admissionregistration::v1::ValidatingWebhookConfiguration,
        api::apps::v1::Deployment,
        api::apps::v1::ReplicaSet,
        api::apps::v1::DaemonSet,
        api::apps::v1::StatefulSet,
        api::apps::v1::ControllerRevision,
        api::batch::v1::Job,
        api::certificates::v1::CertificateSigningRequest,
        api::coordination::v1::Lease,
        api::discovery::v1::EndpointSlice,
        api::networking::v1::Ingress,
        api::networking::v1::IngressClass,
        api::node::v1::RuntimeClass,
        api::rbac::v1::Role,
        api::rbac::v1::ClusterRole,
        api::rbac::v1::RoleBinding,
        api::rbac::v1::ClusterRoleBinding,
        api::authentication::v1::SelfSubjectReview,
        api::authorization::v1::SelfSubjectAccessReview,
        api::authorization::v1::SelfSubjectRulesReview,
        api::autoscaling::v1::Scale,
        meta::Status,
        meta::DeleteOptions,
        meta::Patch,
        meta::ListMeta,
    );
    gen.take_definitions(true)
}

/// Publish IntOrString and Quantity the way Kubernetes' v3 documents do,
/// so clients that switch on `type` see one.
fn normalize_special_types(defs: &mut Map<String, Value>) {
    if let Some(Value::Object(s)) = defs.get_mut(INT_OR_STRING) {
        s.insert("format".into(), json!("int-or-string"));
        s.insert(
            "oneOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    if let Some(Value::Object(s)) = defs.get_mut(QUANTITY) {
        s.insert(
            "oneOf".into(),
            json!([{"type": "string"}, {"type": "number"}]),
        );
    }
}

/// Add `x-kubernetes-*` merge extensions to fields and atomic types, and
/// `x-kubernetes-group-version-kind` to every served kind.
fn annotate_definitions(defs: &mut Map<String, Value>) {
    for (name, def) in defs.iter_mut() {
        if ATOMIC_STRUCTS.contains(&name.as_str()) {
            if let Value::Object(obj) = def {
                obj.insert("x-kubernetes-map-type".into(), json!("atomic"));
            }
        }
        let Some(Value::Object(props)) = def.get_mut("properties") else {
            continue;
        };
        for (field, schema) in props.iter_mut() {
            annotate_field(name, field, schema);
        }
    }
    for r in resources::all() {
        set_gvk(defs, r.openapi, r.group, r.version, r.kind);
        drop_required_metadata(defs, r.openapi);
    }
    set_gvk(defs, SCALE, "autoscaling", "v1", "Scale");
    set_gvk(defs, STATUS, "", "v1", "Status");
}

/// k8s-openapi marks `metadata` of every kind required because its Rust
/// field is not optional; Kubernetes' schemas do not (`kubectl explain`
/// would print `-required-`), and `generateName` objects arrive without a name.
fn drop_required_metadata(defs: &mut Map<String, Value>, name: &str) {
    let Some(Value::Object(obj)) = defs.get_mut(name) else {
        return;
    };
    if let Some(Value::Array(required)) = obj.get_mut("required") {
        required.retain(|f| f != "metadata");
        if required.is_empty() {
            obj.remove("required");
        }
    }
}

fn set_gvk(defs: &mut Map<String, Value>, name: &str, group: &str, version: &str, kind: &str) {
    if let Some(Value::Object(obj)) = defs.get_mut(name) {
        obj.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": group, "kind": kind, "version": version}]),
        );
    }
}

fn annotate_field(type_name: &str, field: &str, schema: &mut Value) {
    let rule = rule_for(type_name, field, schema);
    let Value::Object(obj) = schema else {
        return;
    };
    let is_array = obj.get("type").and_then(Value::as_str) == Some("array");
    let ext = |obj: &mut Map<String, Value>, k: &str, v: Value| {
        obj.insert(format!("x-kubernetes-{k}"), v);
    };
    match rule {
        Some(Rule::Map(keys)) | Some(Rule::MapRetainKeys(keys)) => {
            ext(obj, "list-type", json!("map"));
            ext(obj, "list-map-keys", json!(keys));
            ext(obj, "patch-merge-key", json!(keys.first()));
            let strategy = if matches!(rule, Some(Rule::MapRetainKeys(_))) {
                "merge,retainKeys"
            } else {
                "merge"
            };
            ext(obj, "patch-strategy", json!(strategy));
        }
        Some(Rule::Set) => {
            ext(obj, "list-type", json!("set"));
            ext(obj, "patch-strategy", json!("merge"));
        }
        Some(Rule::RetainKeys) => ext(obj, "patch-strategy", json!("retainKeys")),
        None if is_array => ext(obj, "list-type", json!("atomic")),
        None => {}
    }
}

/// k8s-openapi has no schema for `XList` types; build them the way
/// Kubernetes publishes them so list operations can refer to them.
fn add_list_types(defs: &mut Map<String, Value>) {
    for r in resources::all().iter().filter(|r| !r.create_only) {
        let list_name = format!("{}List", r.openapi);
        let schema = json!({
            "description": format!("{}List is a list of {}.", r.kind, r.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                "items": {"type": "array", "description": format!("List of {}.", r.plural), "items": schema_ref(r.openapi)},
                "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                "metadata": {"allOf": [schema_ref(LIST_META)], "description": "Standard list metadata."},
            },
            "x-kubernetes-group-version-kind": [{"group": r.group, "kind": format!("{}List", r.kind), "version": r.version}],
        });
        defs.insert(list_name, schema);
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{SCHEMA_REF_PREFIX}{name}")})
}

// ---------------------------------------------------------------------------
// The structural schema.

/// The [`SchemaSet`] of every served kind, built once.
pub fn schema_set() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| build_schema_set(definitions()))
}

fn build_schema_set(defs: &Map<String, Value>) -> SchemaSet {
    let mut set = SchemaSet::default();
    for (name, def) in defs {
        if is_object_type(name, def) {
            set.types.insert(name.clone(), object_type(name, def, defs));
        }
    }
    for r in resources::all() {
        if set.types.contains_key(r.openapi) {
            let key = (
                r.group.to_string(),
                r.version.to_string(),
                r.kind.to_string(),
            );
            set.kinds.insert(key, r.openapi.to_string());
        }
    }
    set
}

/// A definition becomes a named object type when it has properties; other
/// definitions (Time, Quantity, RawExtension) are inlined as scalars or Any.
fn is_object_type(name: &str, def: &Value) -> bool {
    !ANY_TYPES.contains(&name) && def.get("properties").is_some_and(Value::is_object)
}

fn object_type(name: &str, def: &Value, defs: &Map<String, Value>) -> ObjectType {
    let mut out = ObjectType::default();
    if let Some(Value::Object(props)) = def.get("properties") {
        for (field, schema) in props {
            out.fields
                .insert(field.clone(), field_of(name, field, schema, defs));
        }
    }
    if let Some(Value::Array(required)) = def.get("required") {
        out.required = required
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
    }
    out
}

fn field_of(type_name: &str, field: &str, schema: &Value, defs: &Map<String, Value>) -> Field {
    let ty = type_ref(schema, defs);
    let mut f = Field::new(ty);
    match rule_for(type_name, field, schema) {
        Some(Rule::Map(keys)) => {
            f.list = ListKind::Map(keys.iter().map(|k| k.to_string()).collect())
        }
        Some(Rule::MapRetainKeys(keys)) => {
            f.list = ListKind::Map(keys.iter().map(|k| k.to_string()).collect());
            f.retain_keys = true;
        }
        Some(Rule::Set) => f.list = ListKind::Set,
        Some(Rule::RetainKeys) => f.retain_keys = true,
        None => {}
    }
    f.atomic = matches!(&f.ty, TypeRef::Named(n) if ATOMIC_STRUCTS.contains(&n.as_str()));
    f
}

/// The shape of a (sub)schema. A `$ref` may appear bare or, when the field
/// carries its own description, as the single entry of `allOf`.
fn type_ref(schema: &Value, defs: &Map<String, Value>) -> TypeRef {
    if let Some(name) = referenced_name(schema) {
        return named_type_ref(name, defs);
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return TypeRef::IntOrString;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => {
            let items = schema
                .get("items")
                .map_or(TypeRef::Any, |i| type_ref(i, defs));
            TypeRef::Array(Box::new(items))
        }
        Some("object") => match schema.get("additionalProperties") {
            Some(inner) if inner.is_object() => TypeRef::Map(Box::new(type_ref(inner, defs))),
            _ => TypeRef::Any,
        },
        Some("string") => TypeRef::String,
        Some("integer") => TypeRef::Integer,
        Some("number") => TypeRef::Number,
        Some("boolean") => TypeRef::Boolean,
        _ => TypeRef::Any,
    }
}

fn referenced_name(schema: &Value) -> Option<&str> {
    let reference = schema.get("$ref").or_else(|| {
        let all_of = schema.get("allOf")?.as_array()?;
        all_of.first()?.get("$ref")
    })?;
    reference.as_str()?.strip_prefix(SCHEMA_REF_PREFIX)
}

fn named_type_ref(name: &str, defs: &Map<String, Value>) -> TypeRef {
    // Kubernetes decodes Quantity from a JSON number as well as a string
    // (`cpu: 1`), which is exactly what IntOrString accepts.
    if name == INT_OR_STRING || name == QUANTITY {
        return TypeRef::IntOrString;
    }
    match defs.get(name) {
        Some(def) if is_object_type(name, def) => TypeRef::Named(name.to_string()),
        Some(def) if !ANY_TYPES.contains(&name) => type_ref(def, defs),
        _ => TypeRef::Any,
    }
}

// ---------------------------------------------------------------------------
// The published documents.

/// The `/openapi/v3` discovery document: one entry per served group-version
/// with a URL whose `hash` changes whenever the document does, so clients
/// may cache it.
pub fn root_document() -> Value {
    static ROOT: OnceLock<Value> = OnceLock::new();
    ROOT.get_or_init(build_root_document).clone()
}

fn build_root_document() -> Value {
    let mut paths = Map::new();
    for (group, versions) in resources::groups() {
        for version in versions {
            let path = gv_path(group, version);
            if let Some(doc) = group_version_document(&path) {
                let url = format!("/openapi/v3/{path}?hash={}", document_hash(doc));
                paths.insert(path, json!({"serverRelativeURL": url}));
            }
        }
    }
    json!({"paths": paths})
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn document_hash(doc: &Value) -> String {
    let digest = Sha256::digest(doc.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02X}")).collect()
}

/// The OpenAPI 3.0 document of one group-version (`api/v1`,
/// `apis/apps/v1`), or `None` if skiff serves no such group-version.
pub fn group_version_document(path: &str) -> Option<&'static Value> {
    static DOCS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    DOCS.get_or_init(build_documents)
        .get(path.trim_matches('/'))
}

fn build_documents() -> HashMap<String, Value> {
    let mut by_gv: BTreeMap<String, Vec<&'static Resource>> = BTreeMap::new();
    for r in resources::all() {
        by_gv
            .entry(gv_path(r.group, r.version))
            .or_default()
            .push(r);
    }
    by_gv
        .into_iter()
        .map(|(path, rs)| {
            let doc = gv_document(&rs);
            (path, doc)
        })
        .collect()
}

fn gv_document(rs: &[&'static Resource]) -> Value {
    let mut paths = Map::new();
    let mut roots: Vec<String> = vec![STATUS.into(), DELETE_OPTIONS.into(), PATCH.into()];
    for r in rs {
        roots.push(r.openapi.to_string());
        if !r.create_only {
            roots.push(format!("{}List", r.openapi));
        }
        if r.subresources.contains(&"scale") {
            roots.push(SCALE.to_string());
        }
        resource_paths(r, &mut paths);
    }
    let defs = definitions();
    let schemas: Map<String, Value> = reachable(&roots, defs)
        .into_iter()
        .filter_map(|name| defs.get(&name).map(|d| (name, d.clone())))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// Every definition reachable from `roots` through `$ref`s.
fn reachable(roots: &[String], defs: &Map<String, Value>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(def) = defs.get(&name) {
            collect_refs(def, &mut todo);
        }
    }
    seen
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(obj) => {
            if let Some(name) = obj
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(SCHEMA_REF_PREFIX))
            {
                out.push(name.to_string());
            }
            obj.values().for_each(|child| collect_refs(child, out));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_refs(child, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Paths and operations.

/// What an operation does, as Kubernetes' `x-kubernetes-action` and
/// operation id prefix name it.
#[derive(Clone, Copy, PartialEq)]
enum Action {
    List,
    Create,
    DeleteCollection,
    Get,
    Replace,
    Patch,
    Delete,
}

impl Action {
    fn verb(self) -> (&'static str, &'static str) {
        match self {
            Action::List => ("list", "list"),
            Action::Create => ("create", "post"),
            Action::DeleteCollection => ("deleteCollection", "deletecollection"),
            Action::Get => ("read", "get"),
            Action::Replace => ("replace", "put"),
            Action::Patch => ("patch", "patch"),
            Action::Delete => ("delete", "delete"),
        }
    }
}

/// One URL of a resource and the type its operations carry.
struct Endpoint<'a> {
    r: &'a Resource,
    /// The body type (the kind, or `Scale`).
    body: String,
    /// `x-kubernetes-group-version-kind` of the body.
    gvk: Value,
    /// `Status`, `Scale` or empty: appended to operation ids.
    suffix: &'static str,
    namespaced: bool,
    all_namespaces: bool,
}

fn resource_paths(r: &Resource, paths: &mut Map<String, Value>) {
    let base = format!("/{}", gv_path(r.group, r.version));
    let ns = if r.namespaced() {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{base}{ns}/{}", r.plural);
    let kind_gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
    let ep = |body: &str, gvk: &Value, suffix: &'static str, all_namespaces: bool| Endpoint {
        r,
        body: body.to_string(),
        gvk: gvk.clone(),
        suffix,
        namespaced: r.namespaced() && !all_namespaces,
        all_namespaces,
    };
    let main = ep(r.openapi, &kind_gvk, "", false);
    if r.create_only {
        paths.insert(collection, path_item(&main, &[Action::Create], false));
        return;
    }
    let collection_actions = [Action::List, Action::Create, Action::DeleteCollection];
    paths.insert(
        collection.clone(),
        path_item(&main, &collection_actions, false),
    );
    let item_actions = [Action::Get, Action::Replace, Action::Patch, Action::Delete];
    paths.insert(
        format!("{collection}/{{name}}"),
        path_item(&main, &item_actions, true),
    );
    if r.namespaced() {
        let all = ep(r.openapi, &kind_gvk, "", true);
        paths.insert(
            format!("{base}/{}", r.plural),
            path_item(&all, &[Action::List], false),
        );
    }
    let sub_actions = [Action::Get, Action::Replace, Action::Patch];
    if r.subresources.contains(&"status") {
        let status = ep(r.openapi, &kind_gvk, "Status", false);
        paths.insert(
            format!("{collection}/{{name}}/status"),
            path_item(&status, &sub_actions, true),
        );
    }
    if r.subresources.contains(&"scale") {
        let scale_gvk = json!({"group": "autoscaling", "kind": "Scale", "version": "v1"});
        let scale = ep(SCALE, &scale_gvk, "Scale", false);
        paths.insert(
            format!("{collection}/{{name}}/scale"),
            path_item(&scale, &sub_actions, true),
        );
    }
}

fn path_item(ep: &Endpoint, actions: &[Action], named: bool) -> Value {
    let mut item = Map::new();
    for &action in actions {
        let method = match action {
            Action::List | Action::Get => "get",
            Action::Create => "post",
            Action::Replace => "put",
            Action::Patch => "patch",
            Action::Delete | Action::DeleteCollection => "delete",
        };
        item.insert(method.into(), operation(ep, action));
    }
    let mut params = Vec::new();
    if named {
        params.push(path_param("name", &format!("name of the {}", ep.r.kind)));
    }
    if ep.namespaced {
        params.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    params.push(query_param(
        "pretty",
        "If 'true', then the output is pretty printed.",
        "string",
    ));
    item.insert("parameters".into(), Value::Array(params));
    Value::Object(item)
}

fn operation(ep: &Endpoint, action: Action) -> Value {
    let (verb, k8s_action) = action.verb();
    let body_schema = schema_ref(&ep.body);
    let response = match action {
        Action::List => schema_ref(&format!("{}List", ep.r.openapi)),
        Action::Delete | Action::DeleteCollection => schema_ref(STATUS),
        _ => body_schema.clone(),
    };
    let mut op = json!({
        "description": describe(action, ep),
        "operationId": operation_id(verb, ep, action),
        "tags": [tag(ep.r)],
        "parameters": query_params(action),
        "responses": {
            "200": {"description": "OK", "content": content(&["application/json", "application/yaml"], &response)},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": k8s_action,
        "x-kubernetes-group-version-kind": ep.gvk,
    });
    let body = match action {
        Action::Create | Action::Replace => Some(content(&["*/*"], &body_schema)),
        Action::Patch => Some(content(PATCH_CONTENT_TYPES, &schema_ref(PATCH))),
        Action::Delete | Action::DeleteCollection => {
            Some(content(&["*/*"], &schema_ref(DELETE_OPTIONS)))
        }
        Action::List | Action::Get => None,
    };
    if let (Some(body), Value::Object(obj)) = (body, &mut op) {
        let required = matches!(action, Action::Create | Action::Replace | Action::Patch);
        obj.insert(
            "requestBody".into(),
            json!({"content": body, "required": required}),
        );
    }
    op
}

const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

fn content(types: &[&str], schema: &Value) -> Value {
    let map: Map<String, Value> = types
        .iter()
        .map(|t| (t.to_string(), json!({"schema": schema})))
        .collect();
    Value::Object(map)
}

fn describe(action: Action, ep: &Endpoint) -> String {
    let what = match ep.suffix {
        "Status" => format!("status of the specified {}", ep.r.kind),
        "Scale" => format!("scale of the specified {}", ep.r.kind),
        _ => match action {
            Action::List | Action::DeleteCollection => format!("collection of {}", ep.r.kind),
            Action::Create => format!("a {}", ep.r.kind),
            _ => format!("the specified {}", ep.r.kind),
        },
    };
    let verb = match action {
        Action::List => "list or watch objects of kind",
        Action::Create => "create",
        Action::DeleteCollection => "delete",
        Action::Get => "read",
        Action::Replace => "replace",
        Action::Patch => "partially update",
        Action::Delete => "delete",
    };
    if action == Action::List {
        format!("{verb} {}", ep.r.kind)
    } else {
        format!("{verb} {what}")
    }
}

/// `patchAppsV1NamespacedDeploymentStatus`, `listCoreV1PodForAllNamespaces`.
fn operation_id(verb: &str, ep: &Endpoint, action: Action) -> String {
    let gv = format!("{}{}", camel_group(ep.r.group), capitalize(ep.r.version));
    let scope = if ep.namespaced { "Namespaced" } else { "" };
    let all = if ep.all_namespaces && action == Action::List {
        "ForAllNamespaces"
    } else {
        ""
    };
    format!("{verb}{gv}{scope}{}{}{all}", ep.r.kind, ep.suffix)
}

/// `rbac.authorization.k8s.io` → `RbacAuthorization`, `` → `Core`.
fn camel_group(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalize)
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

fn tag(r: &Resource) -> String {
    let g = camel_group(r.group);
    let mut chars = g.chars();
    let lower: String = chars
        .next()
        .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect());
    format!("{lower}_{}", r.version)
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn query_param(name: &str, description: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

const DRY_RUN: (&str, &str, &str) = ("dryRun", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed", "string");
const FIELD_MANAGER: (&str, &str, &str) = (
    "fieldManager",
    "fieldManager is a name associated with the actor or entity that is making these changes.",
    "string",
);
const FIELD_VALIDATION: (&str, &str, &str) = ("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict", "string");
const FORCE: (&str, &str, &str) = ("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.", "boolean");
const LIST_PARAMS: &[(&str, &str, &str)] = &[
    ("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\".", "boolean"),
    ("continue", "The continue option should be set when retrieving more results from the server.", "string"),
    ("fieldSelector", "A selector to restrict the list of returned objects by their fields.", "string"),
    ("labelSelector", "A selector to restrict the list of returned objects by their labels.", "string"),
    ("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
    ("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from.", "string"),
    ("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls.", "string"),
    ("sendInitialEvents", "`sendInitialEvents=true` may be set together with `watch=true`.", "boolean"),
    ("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    ("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.", "boolean"),
];
const DELETE_PARAMS: &[(&str, &str, &str)] = &[
    DRY_RUN,
    ("gracePeriodSeconds", "The duration in seconds before the object should be deleted.", "integer"),
    ("propagationPolicy", "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'.", "string"),
];

fn query_params(action: Action) -> Value {
    let params: &[(&str, &str, &str)] = match action {
        Action::List => LIST_PARAMS,
        Action::Create | Action::Replace => &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
        Action::Patch => &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE],
        Action::Delete | Action::DeleteCollection => DELETE_PARAMS,
        Action::Get => &[],
    };
    params
        .iter()
        .map(|(n, d, t)| query_param(n, d, t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(ty: &str, name: &str) -> &'static Field {
        let set = schema_set();
        set.types
            .get(ty)
            .and_then(|t| t.fields.get(name))
            .unwrap_or_else(|| panic!("{ty}.{name} missing from the schema set"))
    }

    fn keys(k: &[&str]) -> ListKind {
        ListKind::Map(k.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn every_served_resource_has_its_type_in_the_schema_set() {
        let set = schema_set();
        for r in resources::all() {
            let name = set.kind(r.group, r.version, r.kind);
            assert_eq!(
                name,
                Some(r.openapi),
                "{}/{} {}",
                r.group,
                r.version,
                r.kind
            );
            assert!(set.get(r.openapi).is_some(), "{} has no type", r.openapi);
        }
    }

    #[test]
    fn pod_spec_lists_merge_by_kubernetes_patch_merge_keys() {
        let pod_spec = core!("PodSpec");
        assert_eq!(field(pod_spec, "containers").list, keys(&["name"]));
        assert_eq!(field(pod_spec, "initContainers").list, keys(&["name"]));
        assert_eq!(field(pod_spec, "hostAliases").list, keys(&["ip"]));
        assert_eq!(
            field(pod_spec, "topologySpreadConstraints").list,
            keys(&["topologyKey", "whenUnsatisfiable"])
        );
        let volumes = field(pod_spec, "volumes");
        assert_eq!(volumes.list, keys(&["name"]));
        assert!(
            volumes.retain_keys,
            "volumes are patchStrategy merge,retainKeys"
        );
        // Tolerations carry no merge key in Kubernetes: replaced whole.
        assert_eq!(field(pod_spec, "tolerations").list, ListKind::Atomic);
        let container = core!("Container");
        assert_eq!(field(container, "env").list, keys(&["name"]));
        assert_eq!(
            field(container, "ports").list,
            keys(&["containerPort", "protocol"])
        );
        assert_eq!(field(container, "volumeMounts").list, keys(&["mountPath"]));
        assert_eq!(field(container, "args").list, ListKind::Atomic);
    }

    #[test]
    fn deployment_and_service_fields_match_kubernetes_struct_tags() {
        let spec = "io.k8s.api.apps.v1.DeploymentSpec";
        assert!(field(spec, "strategy").retain_keys);
        let selector = field(spec, "selector");
        assert!(selector.atomic, "LabelSelector is +structType=atomic");
        assert_eq!(
            selector.ty,
            TypeRef::Named("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector".into())
        );
        assert_eq!(field(spec, "replicas").ty, TypeRef::Integer);
        assert_eq!(
            field("io.k8s.api.apps.v1.DeploymentStatus", "conditions").list,
            keys(&["type"])
        );
        assert_eq!(
            field(core!("ServiceSpec"), "ports").list,
            keys(&["port", "protocol"])
        );
        let port = field(core!("ServicePort"), "targetPort");
        assert_eq!(port.ty, TypeRef::IntOrString);
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        assert_eq!(field(meta, "finalizers").list, ListKind::Set);
        assert_eq!(field(meta, "ownerReferences").list, keys(&["uid"]));
    }

    #[test]
    fn conditions_are_keyed_by_type_in_every_status() {
        for ty in [
            core!("PodStatus"),
            core!("NodeStatus"),
            core!("NamespaceStatus"),
            "io.k8s.api.apps.v1.ReplicaSetStatus",
            "io.k8s.api.apps.v1.StatefulSetStatus",
            "io.k8s.api.apps.v1.DaemonSetStatus",
            "io.k8s.api.batch.v1.JobStatus",
        ] {
            assert_eq!(field(ty, "conditions").list, keys(&["type"]), "{ty}");
        }
    }

    #[test]
    fn special_types_become_scalars_or_any() {
        let requirements = field(core!("ResourceRequirements"), "limits");
        // Quantity accepts `cpu: 1` as well as `cpu: "1"`.
        assert_eq!(
            requirements.ty,
            TypeRef::Map(Box::new(TypeRef::IntOrString))
        );
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        assert_eq!(field(meta, "creationTimestamp").ty, TypeRef::String);
        assert_eq!(
            field("io.k8s.api.apps.v1.ControllerRevision", "data").ty,
            TypeRef::Any
        );
        assert_eq!(
            field(meta, "labels").ty,
            TypeRef::Map(Box::new(TypeRef::String))
        );
        assert!(schema_set()
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.Time")
            .is_none());
    }

    #[test]
    fn strict_validation_finds_unknown_fields_in_a_real_deployment() {
        let set = schema_set();
        let root = TypeRef::Named("io.k8s.api.apps.v1.Deployment".into());
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx", "imagee": "x",
                    "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]}}}
        });
        let unknown = apimachinery::fields::unknown_fields(set, &root, &obj);
        assert_eq!(unknown, vec!["spec.template.spec.containers[0].imagee"]);
        assert!(apimachinery::fields::type_errors(set, &root, &obj).is_empty());
    }

    fn doc(path: &str) -> &'static Value {
        group_version_document(path).unwrap_or_else(|| panic!("no document for {path}"))
    }

    #[test]
    fn patch_operations_advertise_field_validation_for_kubectl() {
        let apps = doc("apis/apps/v1");
        let op = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        let names: Vec<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for p in ["fieldValidation", "fieldManager", "force", "dryRun"] {
            assert!(names.contains(&p), "missing {p} in {names:?}");
        }
        assert_eq!(op["x-kubernetes-action"], "patch");
        assert_eq!(
            op["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        for ct in PATCH_CONTENT_TYPES {
            assert!(op["requestBody"]["content"].get(*ct).is_some(), "{ct}");
        }
    }

    #[test]
    fn every_kind_patch_operation_carries_field_validation() {
        // kubectl only checks the first PATCH operation it finds for a GVK,
        // so all of them (status and scale too) must carry the parameter.
        for r in resources::all().iter().filter(|r| !r.create_only) {
            let d = doc(&gv_path(r.group, r.version));
            let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
            let patches: Vec<&Value> = d["paths"]
                .as_object()
                .into_iter()
                .flat_map(|p| p.values())
                .filter_map(|item| item.get("patch"))
                .filter(|op| op["x-kubernetes-group-version-kind"] == gvk)
                .collect();
            assert!(!patches.is_empty(), "{} has no patch operation", r.kind);
            for op in patches {
                let has = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == "fieldValidation" && p["in"] == "query");
                assert!(has, "{}", op["operationId"]);
            }
        }
    }

    #[test]
    fn documents_carry_merge_extensions_and_gvks() {
        let core = doc("api/v1");
        let schemas = &core["components"]["schemas"];
        let containers = &schemas[core!("PodSpec")]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(
            schemas[core!("PodSpec")]["properties"]["volumes"]["x-kubernetes-patch-strategy"],
            "merge,retainKeys"
        );
        assert_eq!(
            schemas[core!("Service")]["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Service", "version": "v1"}])
        );
        assert_eq!(
            schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
            "atomic"
        );
        // An apps document holds no core kinds but everything a Deployment reaches.
        let apps = &doc("apis/apps/v1")["components"]["schemas"];
        assert!(apps.get(core!("Pod")).is_none());
        assert!(apps.get(core!("PodTemplateSpec")).is_some());
        assert!(apps.get(SCALE).is_some());
    }

    #[test]
    fn kinds_do_not_require_metadata_but_keep_their_other_required_fields() {
        // Kubernetes' Deployment schema has no `required`; DeploymentSpec
        // requires selector and template.
        let apps = &doc("apis/apps/v1")["components"]["schemas"];
        assert!(apps["io.k8s.api.apps.v1.Deployment"]
            .get("required")
            .is_none());
        assert_eq!(
            apps["io.k8s.api.apps.v1.DeploymentSpec"]["required"],
            json!(["selector", "template"])
        );
        let rbac = &doc("apis/rbac.authorization.k8s.io/v1")["components"]["schemas"];
        assert_eq!(
            rbac["io.k8s.api.rbac.v1.RoleBinding"]["required"],
            json!(["roleRef"])
        );
    }

    #[test]
    fn every_ref_in_a_document_resolves_within_it() {
        for (group, versions) in resources::groups() {
            for v in versions {
                let d = doc(&gv_path(group, v));
                let mut refs = Vec::new();
                collect_refs(d, &mut refs);
                for name in refs {
                    assert!(
                        d["components"]["schemas"].get(&name).is_some(),
                        "{group}/{v}: dangling {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn root_document_lists_each_group_version_with_a_hash() {
        let root = root_document();
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap_or_default();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
        assert!(root["paths"]["api/v1"].is_object());
        assert!(root["paths"]["apis/rbac.authorization.k8s.io/v1"].is_object());
        assert_eq!(
            root["paths"].as_object().map(|p| p.len()),
            Some(resources::groups().len())
        );
    }

    #[test]
    fn unknown_group_versions_have_no_document() {
        assert!(group_version_document("apis/apps/v2").is_none());
        assert!(group_version_document("apis/example.com/v1").is_none());
        assert!(
            group_version_document("/api/v1").is_some(),
            "a leading slash is tolerated"
        );
    }

    #[test]
    fn operation_ids_follow_kubernetes_naming() {
        let apps = doc("apis/apps/v1");
        let status = &apps["paths"]
            ["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]["patch"];
        assert_eq!(
            status["operationId"],
            "patchAppsV1NamespacedDeploymentStatus"
        );
        let core = doc("api/v1");
        assert_eq!(
            core["paths"]["/api/v1/pods"]["get"]["operationId"],
            "listCoreV1PodForAllNamespaces"
        );
        assert_eq!(
            core["paths"]["/api/v1/nodes/{name}"]["put"]["operationId"],
            "replaceCoreV1Node"
        );
        let rbac = doc("apis/rbac.authorization.k8s.io/v1");
        assert_eq!(
            rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["post"]["operationId"],
            "createRbacAuthorizationV1ClusterRole"
        );
    }
}
