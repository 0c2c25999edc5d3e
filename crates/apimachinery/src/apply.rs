//! Server-side apply and `metadata.managedFields`, as the Kubernetes API
//! server does them.
//!
//! Kubernetes tracks, for every object, which *field manager* owns which
//! fields (structured-merge-diff semantics). skiff keeps objects as JSON, so
//! this module walks `serde_json::Value`s against the structural
//! [`SchemaSet`]:
//!
//! - granular objects and maps are owned field by field; lists are owned as
//!   a whole unless the schema calls them a set (items owned by value) or a
//!   map (items owned by their key fields); `x-kubernetes-map-type: atomic`
//!   objects are owned as a whole. Where the schema knows nothing
//!   ([`TypeRef::Any`], undeclared fields) objects are granular and lists
//!   atomic.
//! - [`apply`] merges an applied configuration into the live object, removes
//!   what the manager applied before but no longer applies (unless someone
//!   else owns it), and refuses to change fields other managers own unless
//!   forced ([`ApplyError::Conflicts`]).
//! - [`record_update`] records a create, update or patch (operation
//!   `Update`): whatever the write set or changed now belongs to its manager
//!   and to nobody else.
//!
//! Owned fields are stored in the FieldsV1 format Kubernetes clients read
//! (`{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{}}}}}`).
//!
//! Not handled here, by design: resetting `status` on main-resource writes
//! of kinds with a status subresource (the caller strips it from the
//! applied configuration, as Kubernetes' reset fields do), converting
//! between API versions (every manager is compared in the served version),
//! capping `Update` entries at ten, and the `last-applied-configuration`
//! hand-over from client-side apply.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::schema::{Field, ListKind, ObjectType, SchemaSet, TypeRef};

/// The OpenAPI name of `ObjectMeta`, the type of every kind's `metadata`.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The manager Kubernetes credits with every field of an object that had no
/// `managedFields` when it was first applied to.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// `metadata` fields the API server sets itself; Kubernetes never tracks
/// their ownership (its "strip meta" field manager).
const SERVER_META_FIELDS: [&str; 9] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// List-map key fields whose missing value the Kubernetes OpenAPI schema
/// defaults (`protocol` of container, service and endpoint ports), so items
/// that omit them are still addressable, as in Kubernetes.
const KEY_DEFAULTS: [(&str, &str); 1] = [("protocol", "TCP")];

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Whether a managedFields entry was written by server-side apply or by any
/// other write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply (`PATCH` with `application/apply-patch+yaml`).
    Apply,
    /// Create, update or a non-apply patch.
    Update,
}

impl Operation {
    /// The wire name (`"Apply"`, `"Update"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One field that an apply would take from another manager.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The manager that owns the field now.
    pub manager: String,
    /// How that manager wrote it.
    pub operation: Operation,
    /// The subresource it wrote through (`status`), if any.
    pub subresource: Option<String>,
    /// The API version that manager used.
    pub api_version: String,
    /// The field as Kubernetes prints it: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="nginx"].image`.
    pub field: String,
}

impl Conflict {
    /// The manager as Kubernetes names it in conflict messages:
    /// `"kubectl"` for appliers, `"kubectl-edit" using apps/v1` for others,
    /// with `with subresource "status"` when written through one.
    pub fn manager_display(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The message of this conflict's `FieldManagerConflict` status cause:
    /// `conflict with "kubectl-client-side-apply" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_display())
    }
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// Fields other managers own would change (HTTP 409, reason `Conflict`).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration cannot be applied (bad type, missing list
    /// keys, duplicate list items, managedFields set, wrong version).
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The message as Kubernetes words it: `Apply failed with 1 conflict:
    /// conflict with "kubectl-client-side-apply" using apps/v1:
    /// .spec.replicas`, or for several, one block per manager.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager_display(),
            only.field
        );
    }
    let mut by_manager: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry(c.manager_display())
            .or_default()
            .push(&c.field);
    }
    let mut lines = Vec::new();
    for (manager, fields) in by_manager {
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Everything [`apply`] needs besides the two objects.
pub struct ApplyParams<'a> {
    /// The field manager (`?fieldManager=`, `kubectl` by default for kubectl).
    pub manager: &'a str,
    /// `?force=true`: take conflicting fields instead of failing.
    pub force: bool,
    /// The served `group/version` of the object (`apps/v1`, `v1`).
    pub api_version: &'a str,
    /// The current time, RFC 3339, recorded on the manager's entry.
    pub now: &'a str,
    /// Structural schemas of the served kinds.
    pub schema: &'a SchemaSet,
    /// The root type of the object's kind.
    pub ty: &'a TypeRef,
}

/// Server-side apply of `config` (the applied configuration: a full object
/// with apiVersion, kind and metadata) onto `live` (`None` when the object
/// does not exist yet: the result is then the object to create).
///
/// Returns the merged object with `metadata.managedFields` updated, holding
/// an `Apply` entry for the manager with exactly the fields of `config`.
/// Fields the manager applied before but omits now are removed unless
/// another manager owns them too. A field whose value would change and that
/// another manager owns is a conflict unless `force` is set, in which case
/// the other manager loses it. Managers applying the same value share it.
pub fn apply(live: Option<&Value>, config: &Value, p: &ApplyParams) -> Result<Value, ApplyError> {
    check_config(config, p.api_version)?;
    let schema = Schema { set: p.schema };
    let root = Slot::new(p.ty.clone());
    let applied = schema
        .field_set(config, &root, true)
        .map_err(|errs| invalid_config(config, p.api_version, &errs))?;
    let applied = without_server_fields(applied);

    let live = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut managers = match read_managed_fields(&live) {
        Some(m) if !m.is_empty() => m,
        // Kubernetes credits an object that nobody tracked yet to
        // "before-first-apply", so the first applier cannot silently take
        // fields it never set.
        _ if has_content(&live) => before_first_apply(&schema, &live, &root, p),
        _ => Managers::new(),
    };
    let live = strip_managed_fields(live);
    let me = EntryKey::apply(p.manager);
    let previous = managers.remove(&me);
    let last = previous.as_ref().map(|e| e.set.clone()).unwrap_or_default();

    let merged = schema.merge(Some(&live), config, &root).unwrap_or_default();
    let mut merged = strip_managed_fields(merged);
    let mut kept = applied.clone();
    for entry in managers.values() {
        kept.extend(entry.set.iter().cloned());
    }
    schema.prune(&mut merged, &last, &kept, &root);

    let diff = schema
        .compare(Some(&live), Some(&merged), &root)
        .ignoring_server_fields();
    let conflicts = find_conflicts(&managers, &diff);
    if !conflicts.is_empty() && !p.force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    take_from_others(&mut managers, &diff);
    // An apply that changes nothing keeps its time, so a repeated
    // `kubectl apply --server-side` leaves the object as it was and the
    // write can be skipped, as in Kubernetes.
    let time = match previous {
        Some(e) if merged == live => e.time,
        _ => Some(p.now.to_string()),
    };
    managers.insert(
        me,
        Entry {
            api_version: p.api_version.to_string(),
            time,
            set: applied,
        },
    );
    write_managed_fields(&mut merged, managers);
    Ok(merged)
}

/// Record a non-apply write (create, update, patch: operation `Update`,
/// optionally through a subresource like `status`) by `manager` from `old`
/// to `new`, writing `new.metadata.managedFields`.
///
/// Fields this write set or changed become the manager's and are removed
/// from every other manager; removed fields are removed from everyone. For
/// creates `old` is `None` and every field set is owned. As in Kubernetes,
/// managedFields the client sent in `new` replace the recorded ones (an
/// empty list, or a list of one empty entry, clears them), except through a
/// subresource or when they cannot be decoded.
#[allow(clippy::too_many_arguments)]
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
    schema: &SchemaSet,
    ty: &TypeRef,
) {
    if !new.is_object() {
        return;
    }
    let mut managers = managers_for_update(old, new, subresource.is_some());
    let schema = Schema { set: schema };
    let root = Slot::new(ty.clone());
    let old = old.cloned().map(strip_managed_fields);
    let stripped = strip_managed_fields(new.clone());
    let diff = schema
        .compare(old.as_ref(), Some(&stripped), &root)
        .ignoring_server_fields();
    take_from_others(&mut managers, &diff);
    let key = EntryKey::update(manager, api_version, subresource);
    let taken = diff.changed();
    if !taken.is_empty() {
        let entry = managers.entry(key).or_insert_with(|| Entry {
            api_version: api_version.to_string(),
            time: None,
            set: FieldSet::new(),
        });
        entry.set.extend(taken);
        entry.time = Some(now.to_string());
    }
    write_managed_fields(new, managers);
}

// ---------------------------------------------------------------------------
// Field paths and sets
// ---------------------------------------------------------------------------

/// One step of a field path, as structured-merge-diff names them.
#[derive(Debug, Clone)]
enum PathElement {
    /// A field of an object or a key of a map: `f:name`.
    Field(String),
    /// A list-map item by its key fields, sorted by name: `k:{"name":"x"}`.
    Key(Vec<(String, Value)>),
    /// A set item by value: `v:"x"`.
    Value(Value),
    /// A list item by position: `i:0` (only ever read, never written).
    Index(usize),
}

type Path = Vec<PathElement>;
type FieldSet = BTreeSet<Path>;

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The FieldsV1 member name.
    fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let obj: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", Value::Object(obj))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<PathElement> {
        let (kind, rest) = s.split_at_checked(2)?;
        match kind {
            "f:" => Some(PathElement::Field(rest.to_string())),
            "k:" => match serde_json::from_str(rest).ok()? {
                Value::Object(obj) => Some(key_element(obj.into_iter().collect())),
                _ => None,
            },
            "v:" => serde_json::from_str(rest).ok().map(PathElement::Value),
            "i:" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }
}

/// The path as Kubernetes prints it in conflicts: `.spec.containers[name="a"].image`.
fn path_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for pe in path {
        match pe {
            PathElement::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_string(v)))
                    .collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            PathElement::Value(v) => out.push_str(&format!("[={}]", value_string(v))),
            PathElement::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn key_element(mut fields: Vec<(String, Value)>) -> PathElement {
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    PathElement::Key(fields)
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((ka, va), (kb, vb)) in a.iter().zip(b) {
                    let c = ka.cmp(kb).then_with(|| value_cmp(va, vb));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => value_cmp(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// A total order on JSON values, in structured-merge-diff's order of kinds
/// (numbers, strings, booleans, lists, maps, null), so sets of paths sort
/// deterministically. Numbers compare by value (`1` equals `1.0`).
fn value_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.total_cmp(&y)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = value_cmp(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for ((kx, vx), (ky, vy)) in xs.iter().zip(&ys) {
                let c = kx.cmp(ky).then_with(|| value_cmp(vx, vy));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Paths Kubernetes never records: `apiVersion`, `kind`, `metadata` itself
/// and the metadata the server owns, including everything under
/// `metadata.managedFields`.
fn is_server_field(path: &[PathElement]) -> bool {
    let field = |pe: &PathElement, name: &str| matches!(pe, PathElement::Field(f) if f == name);
    match path {
        [only] => field(only, "apiVersion") || field(only, "kind") || field(only, "metadata"),
        [meta, f] if field(meta, "metadata") => SERVER_META_FIELDS.iter().any(|n| field(f, n)),
        [meta, mf, ..] => field(meta, "metadata") && field(mf, "managedFields"),
        [] => true,
    }
}

fn without_server_fields(set: FieldSet) -> FieldSet {
    set.into_iter().filter(|p| !is_server_field(p)).collect()
}

/// Paths in `set` that are `path` or lie under it.
fn has_path_under(set: &FieldSet, path: &Path) -> bool {
    set.range(path.clone()..)
        .next()
        .is_some_and(|p| p.starts_with(path))
}

/// FieldsV1: one JSON object per path element, `".": {}` where a path is
/// owned and also has owned children. `paths` are sorted and non-empty.
fn encode_fields(paths: &[&[PathElement]]) -> Value {
    let mut out = Map::new();
    let mut i = 0;
    while i < paths.len() {
        let head = &paths[i][0];
        let mut member = false;
        let mut children = Vec::new();
        while i < paths.len() && &paths[i][0] == head {
            match &paths[i][1..] {
                [] => member = true,
                rest => children.push(rest),
            }
            i += 1;
        }
        let mut node = match encode_fields(&children) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if member && !node.is_empty() {
            node.shift_insert(0, ".".to_string(), Value::Object(Map::new()));
        }
        out.insert(head.encode(), Value::Object(node));
    }
    Value::Object(out)
}

/// Reads FieldsV1; `None` when it is malformed (Kubernetes then ignores the
/// entry rather than failing the write).
fn decode_fields(v: &Value, prefix: &mut Path, out: &mut FieldSet) -> Option<()> {
    for (name, child) in v.as_object()? {
        if name == "." {
            continue;
        }
        let children = child.as_object()?;
        prefix.push(PathElement::decode(name)?);
        if children.is_empty() || children.contains_key(".") {
            out.insert(prefix.clone());
        }
        decode_fields(child, prefix, out)?;
        prefix.pop();
    }
    Some(())
}

// ---------------------------------------------------------------------------
// managedFields entries
// ---------------------------------------------------------------------------

/// What identifies an entry, as Kubernetes' manager identifier does: appliers
/// are one entry whatever version they apply, updaters one per version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EntryKey {
    manager: String,
    operation: Operation,
    /// Empty for `Apply` entries.
    api_version: String,
    subresource: Option<String>,
}

impl EntryKey {
    fn apply(manager: &str) -> Self {
        EntryKey {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version: String::new(),
            subresource: None,
        }
    }

    fn update(manager: &str, api_version: &str, subresource: Option<&str>) -> Self {
        EntryKey {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: api_version.to_string(),
            subresource: subresource.map(str::to_string),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    api_version: String,
    time: Option<String>,
    set: FieldSet,
}

type Managers = BTreeMap<EntryKey, Entry>;

fn read_entry(v: &Value) -> Option<(EntryKey, Entry)> {
    let s = |name: &str| v.get(name).and_then(Value::as_str);
    let operation = match s("operation")? {
        "Apply" => Operation::Apply,
        "Update" => Operation::Update,
        _ => return None,
    };
    if s("fieldsType").is_some_and(|t| t != "FieldsV1") {
        return None;
    }
    let api_version = s("apiVersion").unwrap_or_default().to_string();
    let mut set = FieldSet::new();
    if let Some(fields) = v.get("fieldsV1") {
        decode_fields(fields, &mut Vec::new(), &mut set)?;
    }
    let key = EntryKey {
        manager: s("manager").unwrap_or_default().to_string(),
        operation,
        api_version: match operation {
            Operation::Apply => String::new(),
            Operation::Update => api_version.clone(),
        },
        subresource: s("subresource")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    let entry = Entry {
        api_version,
        time: s("time").map(str::to_string),
        set,
    };
    Some((key, entry))
}

/// The entries of `metadata.managedFields`; `None` when there is no such
/// list or any entry cannot be decoded.
fn read_managed_fields(obj: &Value) -> Option<Managers> {
    let list = obj.get("metadata")?.get("managedFields")?.as_array()?;
    let mut out = Managers::new();
    for v in list {
        let (key, entry) = read_entry(v)?;
        out.entry(key).or_insert(entry);
    }
    Some(out)
}

/// Which recorded ownership an update starts from, as Kubernetes decides it:
/// the client's managedFields when it sent some (an empty list or `[{}]`
/// clears them), otherwise the stored ones.
fn managers_for_update(old: Option<&Value>, new: &Value, subresource: bool) -> Managers {
    let stored = || old.and_then(read_managed_fields).unwrap_or_default();
    if subresource {
        return stored();
    }
    let sent = new.get("metadata").and_then(|m| m.get("managedFields"));
    match sent.and_then(Value::as_array).map(Vec::as_slice) {
        Some([]) => return Managers::new(),
        Some([Value::Object(only)]) if only.is_empty() => return Managers::new(),
        _ => {}
    }
    match read_managed_fields(new) {
        Some(m) if !m.is_empty() => m,
        _ => stored(),
    }
}

fn entry_json(key: &EntryKey, entry: &Entry) -> Value {
    let paths: Vec<&[PathElement]> = entry.set.iter().map(Vec::as_slice).collect();
    let mut out = Map::new();
    out.insert("manager".into(), Value::from(key.manager.clone()));
    out.insert("operation".into(), Value::from(key.operation.as_str()));
    out.insert("apiVersion".into(), Value::from(entry.api_version.clone()));
    if let Some(t) = &entry.time {
        out.insert("time".into(), Value::from(t.clone()));
    }
    out.insert("fieldsType".into(), Value::from("FieldsV1"));
    out.insert("fieldsV1".into(), encode_fields(&paths));
    if let Some(sub) = &key.subresource {
        out.insert("subresource".into(), Value::from(sub.clone()));
    }
    Value::Object(out)
}

/// Kubernetes' order: operation, then time, manager, version, subresource.
fn entry_order(a: &(&EntryKey, &Entry), b: &(&EntryKey, &Entry)) -> Ordering {
    let secs = |e: &Entry| {
        e.time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp())
    };
    a.0.operation
        .cmp(&b.0.operation)
        .then_with(|| secs(a.1).cmp(&secs(b.1)))
        .then_with(|| a.0.manager.cmp(&b.0.manager))
        .then_with(|| a.1.api_version.cmp(&b.1.api_version))
        .then_with(|| a.0.subresource.cmp(&b.0.subresource))
}

/// Writes the non-empty entries to `metadata.managedFields` (removing the
/// field when none is left).
fn write_managed_fields(obj: &mut Value, managers: Managers) {
    let mut entries: Vec<(&EntryKey, &Entry)> =
        managers.iter().filter(|(_, e)| !e.set.is_empty()).collect();
    entries.sort_by(entry_order);
    let list: Vec<Value> = entries.iter().map(|(k, e)| entry_json(k, e)).collect();
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn strip_managed_fields(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

/// Whether an object has anything worth crediting to "before-first-apply".
fn has_content(obj: &Value) -> bool {
    obj.as_object().is_some_and(|m| !m.is_empty())
}

fn before_first_apply(schema: &Schema, live: &Value, root: &Slot, p: &ApplyParams) -> Managers {
    let live = strip_managed_fields(live.clone());
    let diff = schema
        .compare(None, Some(&live), root)
        .ignoring_server_fields();
    let mut out = Managers::new();
    out.insert(
        EntryKey::update(BEFORE_FIRST_APPLY, p.api_version, None),
        Entry {
            api_version: p.api_version.to_string(),
            time: Some(p.now.to_string()),
            set: diff.changed(),
        },
    );
    out
}

fn find_conflicts(managers: &Managers, diff: &Comparison) -> Vec<Conflict> {
    let changed = diff.changed();
    let mut out = Vec::new();
    for (key, entry) in managers {
        for path in entry.set.intersection(&changed) {
            out.push(Conflict {
                manager: key.manager.clone(),
                operation: key.operation,
                subresource: key.subresource.clone(),
                api_version: entry.api_version.clone(),
                field: path_string(path),
            });
        }
    }
    out
}

/// Fields a write changed or removed belong to no one else afterwards.
fn take_from_others(managers: &mut Managers, diff: &Comparison) {
    for entry in managers.values_mut() {
        entry.set.retain(|p| {
            !diff.added.contains(p) && !diff.modified.contains(p) && !diff.removed.contains(p)
        });
    }
    managers.retain(|_, e| !e.set.is_empty());
}

// ---------------------------------------------------------------------------
// Checking the applied configuration
// ---------------------------------------------------------------------------

fn check_config(config: &Value, api_version: &str) -> Result<(), ApplyError> {
    let Some(obj) = config.as_object() else {
        return Err(ApplyError::Invalid(
            "the applied configuration must be a JSON object".into(),
        ));
    };
    let sent = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if sent != api_version {
        return Err(ApplyError::Invalid(format!(
            "Incorrect version specified in apply patch. Specified patch version: {sent}, expected: {api_version}"
        )));
    }
    let managed = obj.get("metadata").and_then(|m| m.get("managedFields"));
    if managed.is_some_and(|m| !m.is_null()) {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    Ok(())
}

/// Worded as Kubernetes words typed-patch failures: `failed to create typed
/// patch object (apps/v1, Kind=Deployment): .spec...: element 0: ...`.
fn invalid_config(config: &Value, api_version: &str, errs: &[String]) -> ApplyError {
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    let detail = match errs {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    };
    ApplyError::Invalid(format!(
        "failed to create typed patch object ({api_version}, Kind={kind}): {detail}"
    ))
}

// ---------------------------------------------------------------------------
// Schema-directed walks
// ---------------------------------------------------------------------------

static ANY: TypeRef = TypeRef::Any;

/// The schema of one value: its type plus the list and map semantics its
/// field declares.
#[derive(Debug, Clone)]
struct Slot {
    ty: TypeRef,
    list: ListKind,
    atomic: bool,
    /// Whether the parent object's schema declares this field (map entries
    /// and unknown fields are owned themselves, declared fields only
    /// through their leaves).
    declared: bool,
    root: bool,
}

impl Slot {
    fn new(ty: TypeRef) -> Self {
        Slot {
            ty,
            list: ListKind::Atomic,
            atomic: false,
            declared: true,
            root: true,
        }
    }

    fn of(field: &Field) -> Self {
        Slot {
            ty: field.ty.clone(),
            list: field.list.clone(),
            atomic: field.atomic,
            declared: true,
            root: false,
        }
    }

    fn undeclared(ty: &TypeRef) -> Self {
        Slot {
            declared: false,
            ..Slot::of(&Field::new(ty.clone()))
        }
    }
}

/// How a value is merged and owned.
#[derive(Debug, Clone, PartialEq)]
enum Shape<'s> {
    /// Owned and replaced as a whole.
    Leaf,
    /// An object with declared fields.
    Struct(&'s ObjectType),
    /// An object with arbitrary keys, all values of one type.
    Map(TypeRef),
    /// A list whose scalar items are owned by value.
    Set(TypeRef),
    /// A list whose object items are owned by their key fields.
    ListMap(TypeRef, Vec<String>),
}

struct Schema<'s> {
    set: &'s SchemaSet,
}

/// What changed between two versions of an object.
#[derive(Debug, Default)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

impl Comparison {
    fn ignoring_server_fields(self) -> Self {
        Comparison {
            added: without_server_fields(self.added),
            modified: without_server_fields(self.modified),
            removed: without_server_fields(self.removed),
        }
    }

    fn changed(&self) -> FieldSet {
        self.added.union(&self.modified).cloned().collect()
    }
}

impl<'s> Schema<'s> {
    fn shape(&self, slot: &Slot, value: &Value) -> Shape<'s> {
        match value {
            Value::Object(_) if !slot.atomic => self.object_shape(&slot.ty),
            Value::Array(_) => match (&slot.ty, &slot.list) {
                (TypeRef::Array(item), ListKind::Set) => Shape::Set((**item).clone()),
                (TypeRef::Array(item), ListKind::Map(keys)) if !keys.is_empty() => {
                    Shape::ListMap((**item).clone(), keys.clone())
                }
                _ => Shape::Leaf,
            },
            _ => Shape::Leaf,
        }
    }

    fn object_shape(&self, ty: &TypeRef) -> Shape<'s> {
        match ty {
            TypeRef::Named(name) => match self.set.get(name) {
                Some(t) => Shape::Struct(t),
                // A type the set does not define is treated like `Any`.
                None => Shape::Map(TypeRef::Any),
            },
            TypeRef::Map(inner) => Shape::Map((**inner).clone()),
            TypeRef::Any => Shape::Map(TypeRef::Any),
            _ => Shape::Leaf,
        }
    }

    /// The shape both versions of a value share, or `Leaf` when they
    /// disagree (a type changed: the value is replaced as a whole).
    fn common_shape(&self, slot: &Slot, a: Option<&Value>, b: Option<&Value>) -> Shape<'s> {
        match (a, b) {
            (Some(a), Some(b)) => {
                let (sa, sb) = (self.shape(slot, a), self.shape(slot, b));
                if sa == sb {
                    sa
                } else {
                    Shape::Leaf
                }
            }
            (Some(v), None) | (None, Some(v)) => self.shape(slot, v),
            (None, None) => Shape::Leaf,
        }
    }

    /// The schema of field `key` of an object of shape `shape`.
    fn child(&self, shape: &Shape, parent: &Slot, key: &str) -> Slot {
        if let Shape::Struct(t) = shape {
            if let Some(f) = t.fields.get(key) {
                return Slot::of(f);
            }
        }
        // Every kind has these at the top, whether or not its type spells
        // them out (or is known at all).
        match (parent.root, key, shape) {
            (true, "apiVersion" | "kind", _) => Slot::of(&Field::new(TypeRef::String)),
            (true, "metadata", _) => Slot::of(&Field::new(TypeRef::Named(OBJECT_META.into()))),
            (_, _, Shape::Map(inner)) => Slot::undeclared(inner),
            _ => Slot::undeclared(&ANY),
        }
    }

    // --- the fields a value sets -------------------------------------------

    /// The paths `value` sets (structured-merge-diff's `ToFieldSet`). With
    /// `strict`, list items without their keys and duplicate items are
    /// errors; otherwise such items are skipped.
    fn field_set(&self, value: &Value, slot: &Slot, strict: bool) -> Result<FieldSet, Vec<String>> {
        let mut walk = SetWalk {
            schema: self,
            strict,
            out: FieldSet::new(),
            errors: Vec::new(),
        };
        walk.value(value, slot, &mut Vec::new());
        if walk.errors.is_empty() {
            Ok(walk.out)
        } else {
            Err(walk.errors)
        }
    }

    /// The items of a granular list with their path elements. Items that
    /// cannot be addressed (and, unless `strict`, duplicates) are reported
    /// in `errors` with their index.
    fn list_items(
        &self,
        shape: &Shape,
        items: &[Value],
        errors: &mut Vec<String>,
    ) -> Vec<(PathElement, usize)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let pe = match shape {
                Shape::ListMap(_, keys) => match list_key(item, keys) {
                    Ok(pe) => pe,
                    Err(e) => {
                        errors.push(format!("element {i}: {e}"));
                        continue;
                    }
                },
                _ => PathElement::Value(item.clone()),
            };
            if !seen.insert(pe.clone()) {
                errors.push(format!(
                    "duplicate entries for key {}",
                    path_string(std::slice::from_ref(&pe))
                ));
                continue;
            }
            out.push((pe, i));
        }
        out
    }

    fn item_slot(shape: &Shape) -> Slot {
        match shape {
            Shape::Set(item) | Shape::ListMap(item, _) => Slot::undeclared(item),
            _ => Slot::undeclared(&ANY),
        }
    }

    // --- merging -----------------------------------------------------------

    /// `config` merged onto `live`: config wins for leaves, objects merge by
    /// field, granular lists by item. A `null` in config unsets the field.
    fn merge(&self, live: Option<&Value>, config: &Value, slot: &Slot) -> Option<Value> {
        if config.is_null() {
            return None;
        }
        let Some(live) = live else {
            return Some(config.clone());
        };
        let shape = self.common_shape(slot, Some(live), Some(config));
        match (&shape, live, config) {
            (Shape::Struct(_) | Shape::Map(_), Value::Object(l), Value::Object(c)) => {
                let mut out = l.clone();
                for (key, cv) in c {
                    let child = self.child(&shape, slot, key);
                    match self.merge(l.get(key), cv, &child) {
                        Some(v) => {
                            out.insert(key.clone(), v);
                        }
                        None => {
                            out.shift_remove(key);
                        }
                    }
                }
                Some(Value::Object(out))
            }
            (Shape::Set(_) | Shape::ListMap(..), Value::Array(l), Value::Array(c)) => {
                Some(Value::Array(self.merge_list(&shape, l, c)))
            }
            _ => Some(config.clone()),
        }
    }

    /// Items of `config` in its order, merged with the live item of the same
    /// key; live-only items stay where they were relative to their
    /// neighbours, and live items that cannot be addressed are kept as they
    /// are.
    fn merge_list(&self, shape: &Shape, live: &[Value], config: &[Value]) -> Vec<Value> {
        let item_slot = Self::item_slot(shape);
        let mut ignored = Vec::new();
        let l = self.list_items(shape, live, &mut ignored);
        let c = self.list_items(shape, config, &mut ignored);
        let live_by_key: BTreeMap<&PathElement, usize> = l.iter().map(|(k, i)| (k, *i)).collect();
        let config_pos: BTreeMap<&PathElement, usize> =
            c.iter().enumerate().map(|(pos, (k, _))| (k, pos)).collect();
        let mut out = Vec::new();
        let mut next = 0;
        // Emits config items up to position `end` (inclusive).
        let emit_until = |end: usize, next: &mut usize, out: &mut Vec<Value>| {
            while *next <= end && *next < c.len() {
                let (key, ci) = &c[*next];
                let lv = live_by_key.get(key).map(|&li| &live[li]);
                out.extend(self.merge(lv, &config[*ci], &item_slot));
                *next += 1;
            }
        };
        let addressed: BTreeSet<usize> = l.iter().map(|(_, i)| *i).collect();
        let mut l = l.iter();
        for (i, lv) in live.iter().enumerate() {
            if !addressed.contains(&i) {
                out.push(lv.clone());
                continue;
            }
            let Some((key, _)) = l.next() else { break };
            match config_pos.get(key) {
                Some(&pos) => emit_until(pos, &mut next, &mut out),
                None => out.push(lv.clone()),
            }
        }
        emit_until(c.len(), &mut next, &mut out);
        out
    }

    // --- pruning -----------------------------------------------------------

    /// Removes from `obj` what the applier owned before (`last`) and nobody
    /// owns now (`kept`), keeping anything with an owned field below it.
    fn prune(&self, obj: &mut Value, last: &FieldSet, kept: &FieldSet, root: &Slot) {
        for path in last {
            if is_server_field(path) || has_path_under(kept, path) {
                continue;
            }
            self.remove_path(obj, path, root);
        }
    }

    /// Removes the value at `path`, then any object or list that removal
    /// left empty (Kubernetes' typed objects omit empty ones). Key fields of
    /// a list-map item are never removed on their own. Returns whether
    /// anything was removed.
    fn remove_path(&self, value: &mut Value, path: &[PathElement], slot: &Slot) -> bool {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        let shape = self.shape(slot, value);
        match (value, first) {
            (Value::Object(obj), PathElement::Field(name)) => {
                let child = self.child(&shape, slot, name);
                let Some(v) = obj.get_mut(name) else {
                    return false;
                };
                let removed = rest.is_empty() || self.remove_path(v, rest, &child);
                if rest.is_empty() || (removed && is_empty_container(v)) {
                    obj.shift_remove(name);
                }
                removed
            }
            (Value::Array(items), pe) => {
                let Some(i) = items.iter().position(|item| item_matches(item, pe)) else {
                    return false;
                };
                if is_key_field(pe, rest) {
                    return false;
                }
                let item_slot = Self::item_slot(&shape);
                let removed = rest.is_empty() || self.remove_path(&mut items[i], rest, &item_slot);
                if rest.is_empty() || (removed && is_empty_container(&items[i])) {
                    items.remove(i);
                }
                removed
            }
            _ => false,
        }
    }

    // --- comparing ---------------------------------------------------------

    fn compare(&self, old: Option<&Value>, new: Option<&Value>, root: &Slot) -> Comparison {
        let mut out = Comparison::default();
        self.compare_at(old, new, root, &mut Vec::new(), &mut out);
        out
    }

    /// structured-merge-diff's comparison: leaves are added, modified or
    /// removed; a granular node that appears or disappears is itself added
    /// or removed too, except a non-empty struct (Kubernetes' typed zero
    /// values make those present on both sides).
    fn compare_at(
        &self,
        old: Option<&Value>,
        new: Option<&Value>,
        slot: &Slot,
        path: &mut Path,
        out: &mut Comparison,
    ) {
        let (old, new) = (old.filter(|v| !v.is_null()), new.filter(|v| !v.is_null()));
        if old.is_none() && new.is_none() {
            return;
        }
        let shape = self.common_shape(slot, old, new);
        match &shape {
            Shape::Leaf => {
                if !path.is_empty() {
                    let target = match (old, new) {
                        (None, _) => &mut out.added,
                        (_, None) => &mut out.removed,
                        (Some(a), Some(b)) if a != b => &mut out.modified,
                        _ => return,
                    };
                    target.insert(path.clone());
                }
                return;
            }
            Shape::Struct(_) | Shape::Map(_) => {
                self.compare_fields(&shape, old, new, slot, path, out)
            }
            Shape::Set(_) | Shape::ListMap(..) => self.compare_items(&shape, old, new, path, out),
        }
        let owns_itself = !path.is_empty()
            && match (&shape, old.or(new)) {
                (Shape::Struct(_), Some(v)) => is_empty_container(v),
                _ => true,
            };
        if owns_itself {
            match (old, new) {
                (None, Some(_)) => out.added.insert(path.clone()),
                (Some(_), None) => out.removed.insert(path.clone()),
                _ => false,
            };
        }
    }

    fn compare_fields(
        &self,
        shape: &Shape,
        old: Option<&Value>,
        new: Option<&Value>,
        slot: &Slot,
        path: &mut Path,
        out: &mut Comparison,
    ) {
        let empty = Map::new();
        let o = old.and_then(Value::as_object).unwrap_or(&empty);
        let n = new.and_then(Value::as_object).unwrap_or(&empty);
        let keys = o.keys().chain(n.keys().filter(|k| !o.contains_key(*k)));
        for key in keys {
            let child = self.child(shape, slot, key);
            path.push(PathElement::Field(key.clone()));
            self.compare_at(o.get(key), n.get(key), &child, path, out);
            path.pop();
        }
    }

    fn compare_items<'v>(
        &self,
        shape: &Shape,
        old: Option<&'v Value>,
        new: Option<&'v Value>,
        path: &mut Path,
        out: &mut Comparison,
    ) {
        let mut ignored = Vec::new();
        let (old_items, new_items) = (array_items(old), array_items(new));
        let mut by_key = |items: &'v [Value]| -> BTreeMap<PathElement, &'v Value> {
            let addressed = self.list_items(shape, items, &mut ignored);
            addressed.into_iter().map(|(k, i)| (k, &items[i])).collect()
        };
        let o = by_key(old_items);
        let n = by_key(new_items);
        let item_slot = Self::item_slot(shape);
        let keys: BTreeSet<&PathElement> = o.keys().chain(n.keys()).collect();
        for key in keys {
            path.push(key.clone());
            let (ov, nv) = (o.get(key).copied(), n.get(key).copied());
            self.compare_at(ov, nv, &item_slot, path, out);
            match (ov, nv) {
                (None, Some(_)) => out.added.insert(path.clone()),
                (Some(_), None) => out.removed.insert(path.clone()),
                _ => false,
            };
            path.pop();
        }
    }
}

fn array_items(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether `rest` names one of the key fields of the list-map item `pe`.
fn is_key_field(pe: &PathElement, rest: &[PathElement]) -> bool {
    match (pe, rest) {
        (PathElement::Key(fields), [PathElement::Field(name)]) => {
            fields.iter().any(|(k, _)| k == name)
        }
        _ => false,
    }
}

fn item_matches(item: &Value, pe: &PathElement) -> bool {
    match pe {
        PathElement::Key(fields) => fields.iter().all(|(k, v)| {
            key_value(item, k).is_some_and(|iv| value_cmp(&iv, v) == Ordering::Equal)
        }),
        PathElement::Value(v) => value_cmp(item, v) == Ordering::Equal,
        _ => false,
    }
}

fn key_value(item: &Value, key: &str) -> Option<Value> {
    match item.get(key) {
        Some(v) if !v.is_null() => Some(v.clone()),
        _ => KEY_DEFAULTS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, d)| Value::from(*d)),
    }
}

/// The path element of a list-map item, worded as Kubernetes words a
/// missing key.
fn list_key(item: &Value, keys: &[String]) -> Result<PathElement, String> {
    if !item.is_object() {
        return Err(format!("expected an object, got {item}"));
    }
    let mut fields = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(v) = key_value(item, key) else {
            return Err(format!(
                "associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
            ));
        };
        fields.push((key.clone(), v));
    }
    Ok(key_element(fields))
}

/// One pass of [`Schema::field_set`].
struct SetWalk<'a, 's> {
    schema: &'a Schema<'s>,
    strict: bool,
    out: FieldSet,
    errors: Vec<String>,
}

impl SetWalk<'_, '_> {
    fn value(&mut self, value: &Value, slot: &Slot, path: &mut Path) {
        let shape = self.schema.shape(slot, value);
        match (&shape, value) {
            (Shape::Struct(_) | Shape::Map(_), Value::Object(obj)) => {
                for (key, v) in obj {
                    let child = self.schema.child(&shape, slot, key);
                    path.push(PathElement::Field(key.clone()));
                    self.value(v, &child, path);
                    if v.is_null() || is_empty_object(v) || !child.declared {
                        self.out.insert(path.clone());
                    }
                    path.pop();
                }
            }
            (Shape::Set(_) | Shape::ListMap(..), Value::Array(items)) => {
                self.items(&shape, items, path)
            }
            _ if !path.is_empty() => {
                self.out.insert(path.clone());
            }
            _ => {}
        }
    }

    fn items(&mut self, shape: &Shape, items: &[Value], path: &mut Path) {
        let mut errors = Vec::new();
        let addressed = self.schema.list_items(shape, items, &mut errors);
        if self.strict {
            let at = path_string(path);
            self.errors
                .extend(errors.into_iter().map(|e| format!("{at}: {e}")));
        }
        let item_slot = Schema::item_slot(shape);
        for (pe, i) in addressed {
            path.push(pe);
            self.value(&items[i], &item_slot, path);
            self.out.insert(path.clone());
            path.pop();
        }
    }
}

fn is_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:01:00Z";
    const T2: &str = "2026-01-01T00:02:00Z";

    fn named(n: &str) -> TypeRef {
        TypeRef::Named(n.to_string())
    }

    fn list_map(item: &str, keys: &[&str]) -> Field {
        Field {
            list: ListKind::Map(keys.iter().map(|k| k.to_string()).collect()),
            ..Field::new(TypeRef::Array(Box::new(named(item))))
        }
    }

    fn object(fields: Vec<(&str, Field)>) -> ObjectType {
        ObjectType {
            fields: fields
                .into_iter()
                .map(|(k, f)| (k.to_string(), f))
                .collect(),
            required: Vec::new(),
        }
    }

    /// A slice of the Deployment schema, with Kubernetes' list semantics.
    fn schema() -> SchemaSet {
        let s = || Field::new(TypeRef::String);
        let int = || Field::new(TypeRef::Integer);
        let mut set = SchemaSet::default();
        let mut add = |name: &str, t: ObjectType| {
            set.types.insert(name.to_string(), t);
        };
        add(
            OBJECT_META,
            object(vec![
                ("name", s()),
                ("namespace", s()),
                ("resourceVersion", s()),
                ("uid", s()),
                (
                    "labels",
                    Field::new(TypeRef::Map(Box::new(TypeRef::String))),
                ),
                (
                    "annotations",
                    Field::new(TypeRef::Map(Box::new(TypeRef::String))),
                ),
                (
                    "finalizers",
                    Field {
                        list: ListKind::Set,
                        ..Field::new(TypeRef::Array(Box::new(TypeRef::String)))
                    },
                ),
                (
                    "managedFields",
                    Field::new(TypeRef::Array(Box::new(TypeRef::Any))),
                ),
            ]),
        );
        add(
            "Deployment",
            object(vec![
                ("apiVersion", s()),
                ("kind", s()),
                ("metadata", Field::new(named(OBJECT_META))),
                ("spec", Field::new(named("DeploymentSpec"))),
            ]),
        );
        add(
            "DeploymentSpec",
            object(vec![
                ("replicas", int()),
                (
                    "selector",
                    Field {
                        atomic: true,
                        ..Field::new(named("LabelSelector"))
                    },
                ),
                ("template", Field::new(named("PodTemplateSpec"))),
            ]),
        );
        add(
            "LabelSelector",
            object(vec![(
                "matchLabels",
                Field::new(TypeRef::Map(Box::new(TypeRef::String))),
            )]),
        );
        add(
            "PodTemplateSpec",
            object(vec![
                ("metadata", Field::new(named(OBJECT_META))),
                ("spec", Field::new(named("PodSpec"))),
            ]),
        );
        add(
            "PodSpec",
            object(vec![("containers", list_map("Container", &["name"]))]),
        );
        add(
            "Container",
            object(vec![
                ("name", s()),
                ("image", s()),
                (
                    "args",
                    Field::new(TypeRef::Array(Box::new(TypeRef::String))),
                ),
                ("env", list_map("EnvVar", &["name"])),
                (
                    "ports",
                    list_map("ContainerPort", &["containerPort", "protocol"]),
                ),
            ]),
        );
        add("EnvVar", object(vec![("name", s()), ("value", s())]));
        add(
            "ContainerPort",
            object(vec![
                ("containerPort", int()),
                ("protocol", s()),
                ("name", s()),
            ]),
        );
        set
    }

    fn root() -> TypeRef {
        named("Deployment")
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {"containers": [
                    {"name": "nginx", "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}]}
                ]}}
            }
        })
    }

    fn run(
        live: Option<&Value>,
        config: &Value,
        manager: &str,
        force: bool,
        now: &str,
    ) -> Result<Value, ApplyError> {
        let schema = schema();
        let ty = root();
        let p = ApplyParams {
            manager,
            force,
            api_version: "apps/v1",
            now,
            schema: &schema,
            ty: &ty,
        };
        apply(live, config, &p)
    }

    fn update(old: Option<&Value>, new: &mut Value, manager: &str, sub: Option<&str>, now: &str) {
        record_update(old, new, manager, sub, "apps/v1", now, &schema(), &root());
    }

    fn entries(obj: &Value) -> Vec<Value> {
        obj["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn entry<'a>(obj: &'a Value, manager: &str, op: &str) -> Option<&'a Value> {
        obj["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == op)
    }

    fn fields<'a>(obj: &'a Value, manager: &str, op: &str) -> &'a Value {
        &entry(obj, manager, op).expect("entry")["fieldsV1"]
    }

    #[test]
    fn apply_to_missing_object_creates_it_with_an_apply_entry() {
        let config = deployment(3, "nginx:1.25");
        let out = run(None, &config, "kubectl", false, T0).unwrap();
        assert_eq!(out["spec"], config["spec"]);
        assert_eq!(out["metadata"]["name"], "web");
        // As `kubectl apply --server-side` shows it: no apiVersion, kind or
        // metadata.name, no "." on fields of structs, "." on list items.
        assert_eq!(
            entries(&out),
            vec![json!({
                "manager": "kubectl",
                "operation": "Apply",
                "apiVersion": "apps/v1",
                "time": T0,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"nginx\"}": {
                                ".": {}, "f:image": {}, "f:name": {},
                                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                    ".": {}, "f:containerPort": {}, "f:protocol": {}
                                }}
                            }
                        }}}
                    }
                }
            })]
        );
    }

    #[test]
    fn reapply_by_the_same_manager_changes_the_image_without_conflict() {
        let first = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let out = run(
            Some(&first),
            &deployment(3, "nginx:1.26"),
            "kubectl",
            false,
            T1,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.26"
        );
        let all = entries(&out);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0]["time"], T1);
        assert_eq!(all[0]["fieldsV1"], entries(&first)[0]["fieldsV1"]);
    }

    #[test]
    fn repeated_apply_leaves_the_object_unchanged() {
        let first = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let again = run(
            Some(&first),
            &deployment(3, "nginx:1.25"),
            "kubectl",
            false,
            T1,
        )
        .unwrap();
        assert_eq!(again, first);
    }

    #[test]
    fn fields_dropped_from_the_applied_config_are_removed() {
        let mut config = deployment(3, "nginx:1.25");
        config["metadata"]["annotations"] = json!({"team": "web"});
        config["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
        let first = run(None, &config, "kubectl", false, T0).unwrap();

        let mut config = deployment(3, "nginx:1.25");
        config["spec"].as_object_mut().unwrap().remove("replicas");
        config["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "B", "value": "2"}]);
        let out = run(Some(&first), &config, "kubectl", false, T1).unwrap();
        assert!(out["spec"].get("replicas").is_none());
        // Kubernetes' typed objects omit the emptied annotations map.
        assert!(out["metadata"].get("annotations").is_none());
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}])
        );
        let f = fields(&out, "kubectl", "Apply");
        assert!(f["f:spec"].get("f:replicas").is_none());
        assert!(f["f:metadata"].get("f:annotations").is_none());
    }

    #[test]
    fn dropped_field_another_manager_applied_too_is_kept_and_theirs() {
        let first = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let shared = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let second = run(Some(&first), &shared, "helm", false, T1).unwrap();
        let mut config = deployment(3, "nginx:1.25");
        config["spec"].as_object_mut().unwrap().remove("replicas");
        let out = run(Some(&second), &config, "kubectl", false, T2).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(
            fields(&out, "helm", "Apply")["f:spec"]["f:replicas"],
            json!({})
        );
        assert!(fields(&out, "kubectl", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none());
    }

    #[test]
    fn dropped_list_item_with_fields_owned_by_another_manager_keeps_them() {
        let first = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let mut edited = first.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-v"]);
        update(Some(&first), &mut edited, "kubectl-edit", None, T1);
        let mut config = deployment(3, "nginx:1.25");
        config["spec"]["template"]["spec"]["containers"] = json!([]);
        let out = run(Some(&edited), &config, "kubectl", false, T2).unwrap();
        // The image goes, the item stays with its key and the edited args.
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "args": ["-v"]}])
        );
    }

    /// A Deployment created by client-side `kubectl apply` (an Update entry).
    fn client_side_applied(replicas: i64) -> Value {
        let mut obj = deployment(replicas, "nginx:1.25");
        update(None, &mut obj, "kubectl-client-side-apply", None, T0);
        obj
    }

    #[test]
    fn different_value_for_a_field_owned_by_another_manager_conflicts() {
        let live = client_side_applied(1);
        let err = run(
            Some(&live),
            &deployment(3, "nginx:1.25"),
            "kubectl",
            false,
            T1,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        let ApplyError::Conflicts(cs) = err else {
            panic!("not a conflict")
        };
        assert_eq!(
            cs[0].cause_message(),
            "conflict with \"kubectl-client-side-apply\" using apps/v1"
        );
    }

    #[test]
    fn several_conflicts_are_listed_per_manager() {
        let live = client_side_applied(1);
        let err = run(
            Some(&live),
            &deployment(3, "nginx:1.26"),
            "kubectl",
            false,
            T1,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n\
             - .spec.replicas\n\
             - .spec.template.spec.containers[name=\"nginx\"].image"
        );
    }

    #[test]
    fn same_value_shares_ownership_without_conflict() {
        let live = client_side_applied(3);
        let out = run(
            Some(&live),
            &deployment(3, "nginx:1.25"),
            "kubectl",
            false,
            T1,
        )
        .unwrap();
        let csa = fields(&out, "kubectl-client-side-apply", "Update");
        let mine = fields(&out, "kubectl", "Apply");
        assert_eq!(csa["f:spec"]["f:replicas"], json!({}));
        assert_eq!(mine["f:spec"]["f:replicas"], json!({}));
        // Entries sort Apply before Update, as Kubernetes does.
        assert_eq!(entries(&out)[0]["operation"], "Apply");
    }

    #[test]
    fn force_takes_ownership_from_the_other_manager() {
        let live = client_side_applied(1);
        let out = run(
            Some(&live),
            &deployment(3, "nginx:1.25"),
            "kubectl",
            true,
            T1,
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        let csa = fields(&out, "kubectl-client-side-apply", "Update");
        assert!(csa["f:spec"].get("f:replicas").is_none());
        // Fields applied with the same value are still shared.
        assert!(csa["f:spec"]["f:template"].is_object());
        assert_eq!(
            fields(&out, "kubectl", "Apply")["f:spec"]["f:replicas"],
            json!({})
        );
    }

    #[test]
    fn conflicting_manager_with_a_subresource_is_named_with_it() {
        let first = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let mut scaled = first.clone();
        scaled["spec"]["replicas"] = json!(5);
        update(Some(&first), &mut scaled, "kubectl", Some("scale"), T1);
        assert!(fields(&scaled, "kubectl", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none());
        let err = run(
            Some(&scaled),
            &deployment(3, "nginx:1.25"),
            "kubectl",
            false,
            T2,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn object_without_managed_fields_belongs_to_before_first_apply() {
        let live = deployment(1, "nginx:1.25");
        let err = run(
            Some(&live),
            &deployment(3, "nginx:1.25"),
            "kubectl",
            false,
            T1,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn fields_v1_encodes_sets_composite_keys_and_self_first() {
        let mut config = deployment(3, "nginx:1.25");
        config["metadata"]["finalizers"] = json!(["b.example.com/x", "a.example.com/y"]);
        // `protocol` is defaulted to TCP for the key, as Kubernetes does.
        config["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"protocol": "UDP", "containerPort": 53}, {"containerPort": 80}]);
        let out = run(None, &config, "kubectl", false, T0).unwrap();
        let f = fields(&out, "kubectl", "Apply");
        assert_eq!(
            f["f:metadata"]["f:finalizers"],
            json!({"v:\"a.example.com/y\"": {}, "v:\"b.example.com/x\"": {}})
        );
        let text = serde_json::to_string(&f["f:spec"]["f:template"]["f:spec"]).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"#,
                r#""k:{\"containerPort\":53,\"protocol\":\"UDP\"}":{".":{},"f:containerPort":{},"f:protocol":{}},"#,
                r#""k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}"#
            )
        );
    }

    #[test]
    fn managed_fields_round_trip_through_fields_v1() {
        let out = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let managers = read_managed_fields(&out).unwrap();
        let mut again = out.clone();
        write_managed_fields(&mut again, managers);
        assert_eq!(again, out);
    }

    #[test]
    fn atomic_fields_are_owned_whole() {
        let mut config = deployment(3, "nginx:1.25");
        config["spec"]["selector"] = json!({"matchLabels": {"app": "web"}});
        config["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["a", "b"]);
        let out = run(None, &config, "kubectl", false, T0).unwrap();
        let f = fields(&out, "kubectl", "Apply");
        assert_eq!(f["f:spec"]["f:selector"], json!({}));
        assert_eq!(
            f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]["f:args"],
            json!({})
        );
    }

    #[test]
    fn list_items_from_other_managers_keep_their_place() {
        let first = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy"}]}}}});
        let second = run(Some(&first), &sidecar, "mesh", false, T1).unwrap();
        let mut config = deployment(3, "nginx:1.25");
        config["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "log", "image": "fluent"}));
        let out = run(Some(&second), &config, "kubectl", false, T2).unwrap();
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["nginx", "proxy", "log"]);
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let err = run(None, &json!([1]), "kubectl", false, T0).unwrap_err();
        assert!(matches!(err, ApplyError::Invalid(_)));

        let mut config = deployment(3, "nginx:1.25");
        config["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"value": "1"}]);
        assert_eq!(
            run(None, &config, "kubectl", false, T0).unwrap_err(),
            ApplyError::Invalid(
                "failed to create typed patch object (apps/v1, Kind=Deployment): \
                 .spec.template.spec.containers[name=\"nginx\"].env: element 0: associative list \
                 with keys has an element that omits key field \"name\" (and doesn't have default value)"
                    .into()
            )
        );

        let mut config = deployment(3, "nginx:1.25");
        let c = config["spec"]["template"]["spec"]["containers"][0].clone();
        config["spec"]["template"]["spec"]["containers"] = json!([c, c]);
        let msg = run(None, &config, "kubectl", false, T0)
            .unwrap_err()
            .message();
        assert!(
            msg.ends_with(
                ".spec.template.spec.containers: duplicate entries for key [name=\"nginx\"]"
            ),
            "{msg}"
        );

        let mut config = deployment(3, "nginx:1.25");
        config["metadata"]["managedFields"] = json!([]);
        assert_eq!(
            run(None, &config, "kubectl", false, T0)
                .unwrap_err()
                .message(),
            "metadata.managedFields must be nil"
        );

        let mut config = deployment(3, "nginx:1.25");
        config["apiVersion"] = json!("apps/v1beta1");
        assert_eq!(
            run(None, &config, "kubectl", false, T0).unwrap_err().message(),
            "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1"
        );
    }

    #[test]
    fn create_owns_every_field_set() {
        let obj = client_side_applied(1);
        let e = entry(&obj, "kubectl-client-side-apply", "Update").unwrap();
        assert_eq!(e["time"], T0);
        assert_eq!(e["apiVersion"], "apps/v1");
        let f = &e["fieldsV1"];
        // Maps and list items that appear are owned themselves (".").
        assert_eq!(f["f:metadata"]["f:labels"], json!({".": {}, "f:app": {}}));
        assert_eq!(f["f:spec"]["f:replicas"], json!({}));
        assert!(f.get("f:apiVersion").is_none() && f["f:metadata"].get("f:name").is_none());
    }

    #[test]
    fn update_moves_changed_fields_and_drops_removed_ones() {
        let first = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let mut edited = first.clone();
        edited["spec"]["replicas"] = json!(4);
        edited["metadata"].as_object_mut().unwrap().remove("labels");
        update(Some(&first), &mut edited, "kubectl-edit", None, T1);
        let mine = fields(&edited, "kubectl", "Apply");
        assert!(mine["f:spec"].get("f:replicas").is_none());
        assert!(mine.get("f:metadata").is_none());
        let theirs = fields(&edited, "kubectl-edit", "Update");
        assert_eq!(theirs, &json!({"f:spec": {"f:replicas": {}}}));
    }

    #[test]
    fn update_that_changes_nothing_adds_no_entry_and_keeps_times() {
        let first = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let mut same = first.clone();
        update(Some(&first), &mut same, "kubectl-edit", None, T1);
        assert_eq!(same, first);
    }

    #[test]
    fn update_sending_empty_managed_fields_resets_them() {
        let first = client_side_applied(1);
        let mut reset = first.clone();
        reset["metadata"]["managedFields"] = json!([]);
        update(Some(&first), &mut reset, "kubectl-edit", None, T1);
        assert!(reset["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn update_through_a_subresource_ignores_sent_managed_fields() {
        let first = client_side_applied(1);
        let mut scaled = first.clone();
        scaled["metadata"]["managedFields"] = json!([]);
        scaled["spec"]["replicas"] = json!(2);
        update(Some(&first), &mut scaled, "autoscaler", Some("scale"), T1);
        let e = entry(&scaled, "autoscaler", "Update").unwrap();
        assert_eq!(e["subresource"], "scale");
        assert!(entry(&scaled, "kubectl-client-side-apply", "Update").is_some());
    }

    #[test]
    fn entries_drop_when_their_last_field_is_taken() {
        let first = run(None, &deployment(3, "nginx:1.25"), "kubectl", false, T0).unwrap();
        let shared = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let second = run(Some(&first), &shared, "helm", false, T1).unwrap();
        let mut scaled = second.clone();
        scaled["spec"]["replicas"] = json!(9);
        update(Some(&second), &mut scaled, "hpa", None, T2);
        assert!(entry(&scaled, "helm", "Apply").is_none());
        assert!(entry(&scaled, "kubectl", "Apply").is_some());
    }

    #[test]
    fn kinds_without_a_schema_own_every_map_and_keep_lists_whole() {
        // Kubernetes deduces the schema of such objects: maps are granular
        // and own themselves, lists are atomic; metadata is still ObjectMeta.
        let schema = schema();
        let ty = named("io.example.v1.Widget");
        let p = ApplyParams {
            manager: "kubectl",
            force: false,
            api_version: "example.io/v1",
            now: T0,
            schema: &schema,
            ty: &ty,
        };
        let config = json!({"apiVersion": "example.io/v1", "kind": "Widget",
            "metadata": {"name": "w", "labels": {"a": "b"}},
            "spec": {"size": {"cpu": 1}, "items": [{"name": "x"}]}});
        let out = apply(None, &config, &p).unwrap();
        assert_eq!(
            fields(&out, "kubectl", "Apply"),
            &json!({
                "f:metadata": {"f:labels": {"f:a": {}}},
                "f:spec": {".": {}, "f:items": {}, "f:size": {".": {}, "f:cpu": {}}}
            })
        );
    }

    #[test]
    fn path_elements_print_as_kubernetes_prints_them() {
        let path = vec![
            PathElement::Field("spec".into()),
            key_element(vec![
                ("protocol".into(), json!("TCP")),
                ("containerPort".into(), json!(80)),
            ]),
            PathElement::Value(json!("x")),
        ];
        assert_eq!(
            path_string(&path),
            ".spec[containerPort=80,protocol=\"TCP\"][=\"x\"]"
        );
        assert_eq!(
            PathElement::decode("k:{\"protocol\":\"TCP\",\"containerPort\":80}"),
            Some(path[1].clone())
        );
        assert_eq!(PathElement::decode("x:y"), None);
    }
}
