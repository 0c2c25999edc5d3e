//! The three PATCH flavours the Kubernetes API server accepts.
//!
//! - [`merge_patch`]: RFC 7386 JSON merge patch
//!   (`application/merge-patch+json`): objects merge, `null` deletes, every
//!   other value (lists included) replaces.
//! - [`json_patch`]: RFC 6902 JSON patch (`application/json-patch+json`), a
//!   list of `add`/`remove`/`replace`/`move`/`copy`/`test` operations that
//!   either all apply or none do.
//! - [`strategic_merge_patch`]: Kubernetes' strategic merge patch
//!   (`application/strategic-merge-patch+json`), what `kubectl apply`,
//!   `kubectl edit` and `kubectl patch` send by default. It is a merge patch
//!   that knows, from the [`SchemaSet`], which lists merge item by item (by a
//!   merge key, or as a set of scalars) and understands the directives
//!   `$patch`, `$retainKeys`, `$setElementOrder/<field>` and
//!   `$deleteFromPrimitiveList/<field>`.
//!
//! Strategic merge patch follows the server side of Kubernetes'
//! `strategicpatch` package closely, because kubectl computes its patches
//! expecting exactly that behaviour: in particular, items a patch adds to a
//! merged list without `$setElementOrder` land *before* the items only the
//! server had (kubectl always sends `$setElementOrder` for `apply`, so the
//! order it wants wins there). Where skiff deliberately differs, it is to
//! keep directives out of stored objects: a value the live object lacks is
//! merged into an empty value of the same shape instead of being copied
//! verbatim, so nested directives are resolved and nested `null`s dropped.
//!
//! Error messages match Kubernetes' wording where Kubernetes has one, since
//! they reach clients inside a `Status`.

use crate::schema::{ListKind, SchemaSet, TypeRef};
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a patch could not be applied. The `Display` text is what the API
/// server puts in the `Status` message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch body is not the kind of JSON document its content type needs.
    #[error("{0}")]
    BadDocument(String),
    /// One JSON patch operation could not be applied; `index` counts from 0.
    #[error("json patch operation {index} ({op:?} at {path:?}): {reason}")]
    JsonPatchOp {
        /// Position of the failing operation in the patch array.
        index: usize,
        /// The operation's `op` member, empty when it had none.
        op: String,
        /// The operation's `path` member, empty when it had none.
        path: String,
        /// What went wrong, for a person to act on.
        reason: String,
    },
    /// An item of a list merged by key lacks the key (Kubernetes' wording).
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The item, printed as Kubernetes prints it (`map[image:httpd]`).
        map: String,
        /// The merge key it lacks.
        key: String,
    },
    /// A `$patch` directive other than `replace`, `delete` or `merge`.
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownDirective {
        /// The `$patch` value given.
        directive: String,
        /// The map that carried it.
        map: String,
    },
    /// A `$retainKeys` directive that is not a list, or that leaves out a
    /// field the same patch sets.
    #[error("invalid patch format of retainKeys: {0}")]
    RetainKeys(String),
    /// A malformed `$deleteFromPrimitiveList/<field>` directive.
    #[error("invalid patch format of primitive list: {0}")]
    PrimitiveList(String),
    /// A malformed `$setElementOrder/<field>` directive.
    #[error("invalid patch format of setElementOrder list: {0}")]
    SetElementOrder(String),
    /// The patch list orders items differently from its `$setElementOrder`.
    #[error("the order in patch list {patch} doesn't match $setElementOrder list {order}")]
    OrderMismatch {
        /// The patch list.
        patch: String,
        /// The `$setElementOrder` list.
        order: String,
    },
    /// Any other patch that cannot be merged with the object.
    #[error("{0}")]
    Invalid(String),
}

// ---------------------------------------------------------------------------
// JSON merge patch (RFC 7386)
// ---------------------------------------------------------------------------

/// RFC 7386 JSON merge patch (`application/merge-patch+json`): objects merge
/// recursively, `null` deletes a key, anything else (lists too) replaces.
/// A patch that is not an object replaces the whole target.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            out.shift_remove(key);
        } else {
            let merged = merge_patch(out.get(key).unwrap_or(&Value::Null), value);
            out.insert(key.clone(), merged);
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// JSON patch (RFC 6902)
// ---------------------------------------------------------------------------

/// RFC 6902 JSON patch (`application/json-patch+json`). `ops` must be an
/// array of operations; they apply in order and the first failure (a missing
/// path, a failed `test`, a malformed operation) aborts the whole patch with
/// an error naming the operation's index and path.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, PatchError> {
    let ops = ops.as_array().ok_or_else(|| {
        PatchError::BadDocument("a JSON patch must be a JSON array of operations".into())
    })?;
    let mut doc = target.clone();
    for (index, raw) in ops.iter().enumerate() {
        Operation::parse(raw)
            .and_then(|op| op.apply(&mut doc))
            .map_err(|reason| op_error(index, raw, reason))?;
    }
    Ok(doc)
}

fn op_error(index: usize, raw: &Value, reason: String) -> PatchError {
    let text = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    PatchError::JsonPatchOp {
        index,
        op: text("op"),
        path: text("path"),
        reason,
    }
}

/// One parsed JSON patch operation; pointers are already split into tokens.
enum Operation<'a> {
    Add(Vec<String>, &'a Value),
    Remove(Vec<String>),
    Replace(Vec<String>, &'a Value),
    Move { from: Vec<String>, to: Vec<String> },
    Copy { from: Vec<String>, to: Vec<String> },
    Test(Vec<String>, &'a Value),
}

impl<'a> Operation<'a> {
    fn parse(raw: &'a Value) -> Result<Self, String> {
        let obj = raw
            .as_object()
            .ok_or("an operation must be a JSON object")?;
        let member = |k: &str| obj.get(k).ok_or_else(|| format!("missing {k:?} member"));
        let pointer = |k: &str| -> Result<Vec<String>, String> {
            let text = member(k)?
                .as_str()
                .ok_or_else(|| format!("{k:?} must be a string"))?;
            parse_pointer(text)
        };
        let op = member("op")?.as_str().ok_or("\"op\" must be a string")?;
        let path = pointer("path")?;
        Ok(match op {
            "add" => Operation::Add(path, member("value")?),
            "remove" => Operation::Remove(path),
            "replace" => Operation::Replace(path, member("value")?),
            "move" => Operation::Move {
                from: pointer("from")?,
                to: path,
            },
            "copy" => Operation::Copy {
                from: pointer("from")?,
                to: path,
            },
            "test" => Operation::Test(path, member("value")?),
            other => return Err(format!("unknown operation {other:?}")),
        })
    }

    fn apply(self, doc: &mut Value) -> Result<(), String> {
        match self {
            Operation::Add(path, value) => pointer_add(doc, &path, value.clone()),
            Operation::Remove(path) => pointer_remove(doc, &path).map(drop),
            Operation::Replace(path, value) => {
                let slot = pointer_get_mut(doc, &path).ok_or("the path does not exist")?;
                *slot = value.clone();
                Ok(())
            }
            Operation::Move { from, to } => {
                if to.len() > from.len() && to.starts_with(&from) {
                    return Err("cannot move a value into one of its own children".into());
                }
                let value = pointer_remove(doc, &from)
                    .map_err(|e| format!("the \"from\" location: {e}"))?;
                pointer_add(doc, &to, value)
            }
            Operation::Copy { from, to } => {
                let value = pointer_get(doc, &from)
                    .ok_or("the \"from\" location does not exist")?
                    .clone();
                pointer_add(doc, &to, value)
            }
            Operation::Test(path, expected) => {
                let actual = pointer_get(doc, &path).ok_or("the path does not exist")?;
                if json_equal(actual, expected) {
                    Ok(())
                } else {
                    Err(format!(
                        "test failed: the value is {}, not {}",
                        short(actual),
                        short(expected)
                    ))
                }
            }
        }
    }
}

/// Split an RFC 6901 pointer into unescaped reference tokens.
fn parse_pointer(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let rest = text
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {text:?}: it must start with \"/\""))?;
    rest.split('/').map(|t| unescape_token(t, text)).collect()
}

fn unescape_token(token: &str, pointer: &str) -> Result<String, String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => {
                return Err(format!(
                    "invalid JSON pointer {pointer:?}: \"~\" must be followed by 0 or 1"
                ))
            }
        }
    }
    Ok(out)
}

/// An array index token: decimal digits without leading zeros.
fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

fn pointer_get<'v>(doc: &'v Value, tokens: &[String]) -> Option<&'v Value> {
    tokens.iter().try_fold(doc, |cur, token| match cur {
        Value::Object(m) => m.get(token),
        Value::Array(a) => a.get(array_index(token)?),
        _ => None,
    })
}

fn pointer_get_mut<'v>(doc: &'v mut Value, tokens: &[String]) -> Option<&'v mut Value> {
    tokens.iter().try_fold(doc, |cur, token| match cur {
        Value::Object(m) => m.get_mut(token),
        Value::Array(a) => a.get_mut(array_index(token)?),
        _ => None,
    })
}

/// The container holding the pointer's last token, and that token.
fn parent_mut<'v, 't>(
    doc: &'v mut Value,
    tokens: &'t [String],
) -> Result<(&'v mut Value, &'t String), String> {
    let (last, parent) = tokens
        .split_last()
        .ok_or("the whole document cannot be removed")?;
    let container = pointer_get_mut(doc, parent).ok_or_else(|| {
        format!(
            "the parent location {:?} does not exist",
            format_pointer(parent)
        )
    })?;
    Ok((container, last))
}

fn pointer_add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    if tokens.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (container, last) = parent_mut(doc, tokens)?;
    match container {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let index = if last == "-" {
                a.len()
            } else {
                array_index(last).ok_or_else(|| format!("{last:?} is not an array index"))?
            };
            if index > a.len() {
                return Err(format!(
                    "index {index} is out of bounds for an array of length {}",
                    a.len()
                ));
            }
            a.insert(index, value);
            Ok(())
        }
        _ => Err("the parent location is neither an object nor an array".into()),
    }
}

fn pointer_remove(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let (container, last) = parent_mut(doc, tokens)?;
    let removed = match container {
        Value::Object(m) => m.shift_remove(last.as_str()),
        Value::Array(a) => match array_index(last) {
            Some(i) if i < a.len() => Some(a.remove(i)),
            _ => None,
        },
        _ => None,
    };
    removed.ok_or_else(|| "the path does not exist".into())
}

fn format_pointer(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// JSON equality with numbers compared by value, so `1` equals `1.0` as
/// RFC 6902 `test` and merge-key matching require.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Compact JSON for messages, cut short so a whole pod template never ends
/// up in an error.
fn short(v: &Value) -> String {
    const MAX: usize = 120;
    let text = v.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

// ---------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------

/// Strategic merge patch (`application/strategic-merge-patch+json`) as the
/// Kubernetes API server applies it to an object of type `ty`.
///
/// Lists declared in `schema` as [`ListKind::Map`] merge item by item on the
/// first key, [`ListKind::Set`] lists merge as ordered sets of scalars, and
/// every other list is replaced. Where the schema knows nothing (an unknown
/// type, [`TypeRef::Any`], a field it does not list) maps merge and lists
/// are replaced, as in a JSON merge patch.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    schema: &SchemaSet,
    ty: &TypeRef,
) -> Result<Value, PatchError> {
    let patch = patch.as_object().ok_or_else(|| {
        PatchError::BadDocument("a strategic merge patch must be a JSON object".into())
    })?;
    let smp = Strategic { schema };
    smp.merge_map(target.as_object(), patch, Some(ty))
        .map(Value::Object)
}

/// What the schema says about one field's value.
#[derive(Clone, Copy, Default)]
struct FieldInfo<'a> {
    ty: Option<&'a TypeRef>,
    list: Option<&'a ListKind>,
}

impl<'a> FieldInfo<'a> {
    fn is_known_non_list(&self) -> bool {
        matches!(self.ty, Some(t) if !matches!(t, TypeRef::Array(_) | TypeRef::Any))
    }

    fn element_type(&self) -> Option<&'a TypeRef> {
        match self.ty {
            Some(TypeRef::Array(inner)) => Some(inner),
            _ => None,
        }
    }

    fn strategy(&self) -> ListStrategy<'a> {
        match self.list {
            Some(ListKind::Map(keys)) => keys
                .first()
                .map_or(ListStrategy::Replace, |k| ListStrategy::Keyed(k)),
            Some(ListKind::Set) => ListStrategy::Set,
            _ => ListStrategy::Replace,
        }
    }
}

/// How a list field merges.
#[derive(Clone, Copy)]
enum ListStrategy<'a> {
    /// Items are objects matched by this merge key.
    Keyed(&'a str),
    /// Items are scalars merged as an ordered set.
    Set,
    /// The patch's list replaces the live one.
    Replace,
}

impl ListStrategy<'_> {
    /// The part of an item that identifies it for ordering and matching.
    fn identity<'v>(&self, item: &'v Value) -> Option<&'v Value> {
        match self {
            ListStrategy::Keyed(key) => item.get(*key),
            _ => Some(item),
        }
    }

    fn same_item(&self, a: &Value, b: &Value) -> bool {
        match (self.identity(a), self.identity(b)) {
            (Some(a), Some(b)) => json_equal(a, b),
            _ => false,
        }
    }

    fn position(&self, list: &[Value], item: &Value) -> Option<usize> {
        list.iter().position(|x| self.same_item(x, item))
    }
}

/// A strategic merge over one schema.
struct Strategic<'s> {
    schema: &'s SchemaSet,
}

impl<'s> Strategic<'s> {
    fn field<'a>(&self, parent: Option<&'a TypeRef>, key: &str) -> FieldInfo<'a>
    where
        's: 'a,
    {
        match parent {
            Some(named @ TypeRef::Named(_)) => {
                self.schema
                    .field(named, key)
                    .map_or_else(FieldInfo::default, |f| FieldInfo {
                        ty: Some(&f.ty),
                        list: Some(&f.list),
                    })
            }
            // Values of a string-keyed map all share the inner type; lists
            // inside such maps carry no merge strategy.
            Some(TypeRef::Map(inner)) => FieldInfo {
                ty: Some(inner),
                list: None,
            },
            _ => FieldInfo::default(),
        }
    }

    /// Merge `patch` into `original` (absent when the live object has no
    /// such map). Directive order follows Kubernetes: `$patch`, then
    /// `$retainKeys`, then `$setElementOrder`, then the fields, then
    /// `$deleteFromPrimitiveList`.
    fn merge_map(
        &self,
        original: Option<&Map<String, Value>>,
        patch: &Map<String, Value>,
        ty: Option<&TypeRef>,
    ) -> Result<Map<String, Value>, PatchError> {
        match patch.get(DIRECTIVE) {
            None => {}
            Some(Value::String(d)) if d == "merge" => {}
            Some(Value::String(d)) if d == "delete" => return Ok(Map::new()),
            Some(Value::String(d)) if d == "replace" => {
                let mut rest = patch.clone();
                rest.shift_remove(DIRECTIVE);
                return self.merge_map(None, &rest, ty);
            }
            Some(other) => {
                return Err(PatchError::UnknownDirective {
                    directive: go_fmt(other),
                    map: go_fmt(&Value::Object(patch.clone())),
                })
            }
        }
        let mut out = original.cloned().unwrap_or_default();
        if let Some(keys) = patch.get(RETAIN_KEYS) {
            retain_keys(&mut out, patch, keys)?;
        }
        let ordered = self.apply_element_orders(&mut out, patch, ty)?;
        let mut deletions = Vec::new();
        for (key, value) in patch {
            if let Some(field) = directive_field(key, DELETE_FROM_PRIMITIVE_LIST)? {
                deletions.push((field, value));
            } else if !is_directive_key(key) && !ordered.contains(&key.as_str()) {
                self.merge_field(&mut out, key, value, self.field(ty, key))?;
            }
        }
        for (field, values) in deletions {
            delete_from_primitive_list(&mut out, field, values, self.field(ty, field))?;
        }
        Ok(out)
    }

    fn merge_field(
        &self,
        out: &mut Map<String, Value>,
        key: &str,
        patch: &Value,
        info: FieldInfo<'_>,
    ) -> Result<(), PatchError> {
        if patch.is_null() {
            out.shift_remove(key);
            return Ok(());
        }
        let merged = self.merge_value(out.get(key), patch, info)?;
        out.insert(key.to_string(), merged);
        Ok(())
    }

    /// Merge one non-null patch value. A live value of another JSON type is
    /// treated as absent, so the patch value replaces it.
    fn merge_value(
        &self,
        original: Option<&Value>,
        patch: &Value,
        info: FieldInfo<'_>,
    ) -> Result<Value, PatchError> {
        Ok(match patch {
            Value::Object(p) => {
                let o = original.and_then(Value::as_object);
                Value::Object(self.merge_map(o, p, info.ty)?)
            }
            Value::Array(p) => {
                let o = original.and_then(Value::as_array).map(Vec::as_slice);
                Value::Array(self.merge_list(o, p, info)?)
            }
            scalar => scalar.clone(),
        })
    }

    fn merge_list(
        &self,
        original: Option<&[Value]>,
        patch: &[Value],
        info: FieldInfo<'_>,
    ) -> Result<Vec<Value>, PatchError> {
        let original = original.unwrap_or_default();
        match info.strategy() {
            ListStrategy::Replace => Ok(patch.to_vec()),
            ListStrategy::Set => merge_set(original, patch),
            ListStrategy::Keyed(key) => self.merge_keyed(original, patch, key, info.element_type()),
        }
    }

    /// Merge a list of objects by merge key: `$patch: delete` items remove
    /// every live item with their key, a `$patch: replace` item makes the
    /// other patch items the whole list, other items merge into the live
    /// item with their key or are added.
    fn merge_keyed(
        &self,
        original: &[Value],
        patch: &[Value],
        key: &str,
        elem: Option<&TypeRef>,
    ) -> Result<Vec<Value>, PatchError> {
        let strategy = ListStrategy::Keyed(key);
        let mut base = original.to_vec();
        let mut items = Vec::new();
        let mut replace = false;
        for item in patch {
            let obj = expect_object(item, key)?;
            match obj.get(DIRECTIVE) {
                None => items.push(obj),
                Some(Value::String(d)) if d == "delete" => {
                    let k = merge_key_of(obj, key)?;
                    base.retain(|live| !live.get(key).is_some_and(|v| json_equal(v, k)));
                }
                Some(Value::String(d)) if d == "replace" => replace = true,
                Some(Value::String(d)) if d == "merge" => {
                    return Err(PatchError::Invalid(
                        "merging lists cannot yet be specified in the patch".into(),
                    ))
                }
                Some(other) => {
                    return Err(PatchError::UnknownDirective {
                        directive: go_fmt(other),
                        map: go_fmt(item),
                    })
                }
            }
        }
        if replace {
            base = items
                .iter()
                .map(|i| self.merge_map(None, i, elem).map(Value::Object))
                .collect::<Result<_, _>>()?;
            items.clear();
        }
        for live in &base {
            merge_key_of(expect_object(live, key)?, key)?;
        }
        let mut merged = base.clone();
        for item in &items {
            let k = merge_key_of(item, key)?;
            let found = merged
                .iter()
                .position(|live| live.get(key).is_some_and(|v| json_equal(v, k)));
            match found {
                Some(i) => {
                    let m = self.merge_map(merged[i].as_object(), item, elem)?;
                    merged[i] = Value::Object(m);
                }
                None => merged.push(Value::Object(self.merge_map(None, item, elem)?)),
            }
        }
        let patch_order: Vec<Value> = items.into_iter().cloned().map(Value::Object).collect();
        Ok(enforce_order(merged, &patch_order, &base, strategy))
    }

    /// Handle every `$setElementOrder/<field>` of `patch`: merge that field's
    /// patch list, then order the result. Returns the fields it handled so
    /// the main merge skips them.
    fn apply_element_orders<'p>(
        &self,
        out: &mut Map<String, Value>,
        patch: &'p Map<String, Value>,
        ty: Option<&TypeRef>,
    ) -> Result<Vec<&'p str>, PatchError> {
        let mut handled = Vec::new();
        for (key, order) in patch {
            if let Some(field) = directive_field(key, SET_ELEMENT_ORDER)? {
                self.apply_element_order(out, patch, field, order, self.field(ty, field))?;
                handled.push(field);
            }
        }
        Ok(handled)
    }

    fn apply_element_order(
        &self,
        out: &mut Map<String, Value>,
        patch: &Map<String, Value>,
        field: &str,
        order: &Value,
        info: FieldInfo<'_>,
    ) -> Result<(), PatchError> {
        let order = order.as_array().ok_or_else(|| {
            PatchError::SetElementOrder(format!("{SET_ELEMENT_ORDER}/{field} must be a list"))
        })?;
        if info.is_known_non_list() {
            return Err(PatchError::SetElementOrder(format!(
                "field {field:?} is not a list"
            )));
        }
        let live = list_member(out, field, "the object")?;
        let patch_list = list_member(patch, field, "the patch")?;
        let strategy = info.strategy();
        if let ListStrategy::Keyed(key) = strategy {
            for item in order {
                merge_key_of(expect_object(item, key)?, key)?;
            }
        }
        let merged = match (live, patch_list) {
            (None, None) => return Ok(()),
            (Some(l), None) => l.to_vec(),
            (l, Some(p)) => {
                let merged = self.merge_list(l, p, info)?;
                check_patch_order(p, order, strategy)?;
                merged
            }
        };
        let live = live.unwrap_or_default();
        let ordered = enforce_order(merged, order, live, strategy);
        out.insert(field.to_string(), Value::Array(ordered));
        Ok(())
    }
}

/// True for keys that are directives rather than fields.
fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// The field a `<prefix>/<field>` directive key names, `None` when `key`
/// is not that directive.
fn directive_field<'k>(key: &'k str, prefix: &str) -> Result<Option<&'k str>, PatchError> {
    let Some(rest) = key.strip_prefix(prefix) else {
        return Ok(None);
    };
    match rest.strip_prefix('/') {
        Some(field) if !field.is_empty() => Ok(Some(field)),
        _ => {
            let why = format!("{key:?} must be written {prefix}/<field>");
            Err(if prefix == SET_ELEMENT_ORDER {
                PatchError::SetElementOrder(why)
            } else {
                PatchError::PrimitiveList(why)
            })
        }
    }
}

/// A list-valued member of `map`, or an error naming `whose` when the
/// member is something else.
fn list_member<'m>(
    map: &'m Map<String, Value>,
    field: &str,
    whose: &str,
) -> Result<Option<&'m [Value]>, PatchError> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(other) => Err(PatchError::SetElementOrder(format!(
            "field {field:?} in {whose} is not a list but {}",
            short(other)
        ))),
    }
}

/// `$retainKeys`: drop live keys not listed, after checking the patch sets
/// no field it does not also list.
fn retain_keys(
    out: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    keys: &Value,
) -> Result<(), PatchError> {
    let keys = keys
        .as_array()
        .ok_or_else(|| PatchError::RetainKeys(format!("{RETAIN_KEYS} must be a list")))?;
    let listed = |k: &str| keys.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch {
        if !v.is_null() && !is_directive_key(k) && !listed(k) {
            return Err(PatchError::RetainKeys(format!(
                "the patch sets {k:?} but {RETAIN_KEYS} does not list it"
            )));
        }
    }
    out.retain(|k, _| listed(k));
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>`: remove these scalars from the list.
fn delete_from_primitive_list(
    out: &mut Map<String, Value>,
    field: &str,
    values: &Value,
    info: FieldInfo<'_>,
) -> Result<(), PatchError> {
    let name = format!("{DELETE_FROM_PRIMITIVE_LIST}/{field}");
    let values = values
        .as_array()
        .ok_or_else(|| PatchError::PrimitiveList(format!("{name} must be a list")))?;
    if values.iter().any(|v| v.is_object() || v.is_array()) {
        return Err(PatchError::PrimitiveList(format!(
            "{name} may only list scalars"
        )));
    }
    if matches!(info.strategy(), ListStrategy::Keyed(_)) || info.is_known_non_list() {
        return Err(PatchError::PrimitiveList(format!(
            "field {field:?} is not a list of scalars"
        )));
    }
    match out.get_mut(field) {
        None => Ok(()),
        Some(Value::Array(live)) => {
            live.retain(|v| !values.iter().any(|d| json_equal(v, d)));
            Ok(())
        }
        Some(other) => Err(PatchError::PrimitiveList(format!(
            "field {field:?} is not a list but {}",
            short(other)
        ))),
    }
}

/// Union of two scalar lists without duplicates, ordered as Kubernetes
/// orders merged lists.
fn merge_set(original: &[Value], patch: &[Value]) -> Result<Vec<Value>, PatchError> {
    if let Some(bad) = original
        .iter()
        .chain(patch)
        .find(|v| v.is_object() || v.is_array())
    {
        return Err(PatchError::Invalid(format!(
            "cannot merge lists without merge key: {} is not a scalar",
            short(bad)
        )));
    }
    let mut merged: Vec<Value> = Vec::new();
    for v in original.iter().chain(patch) {
        if !merged.iter().any(|m| json_equal(m, v)) {
            merged.push(v.clone());
        }
    }
    Ok(enforce_order(merged, patch, original, ListStrategy::Set))
}

/// Order a merged list the way Kubernetes does: items named in `wanted`
/// (the patch list or `$setElementOrder`) follow that order; the other
/// ("server-only") items keep their live order and are slotted in before
/// the first wanted item that came after them in the live list. A wanted
/// item the live list lacks is placed as soon as it is reached, which is
/// why a patch that adds items without `$setElementOrder` puts them first.
fn enforce_order(
    merged: Vec<Value>,
    wanted: &[Value],
    live: &[Value],
    strategy: ListStrategy<'_>,
) -> Vec<Value> {
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| strategy.position(wanted, item).is_some());
    sort_by_list(&mut named, wanted, strategy);
    sort_by_list(&mut server_only, live, strategy);
    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server = match (server_only.peek(), named.peek()) {
            (Some(s), Some(n)) => matches!(
                (strategy.position(live, s), strategy.position(live, n)),
                (Some(si), Some(ni)) if si < ni
            ),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_server {
            server_only.next()
        } else {
            named.next()
        };
        out.extend(next);
    }
    out
}

/// Stable sort by position in `order`; items it lacks go last.
fn sort_by_list(items: &mut [Value], order: &[Value], strategy: ListStrategy<'_>) {
    items.sort_by_cached_key(|item| strategy.position(order, item).unwrap_or(usize::MAX));
}

/// Kubernetes' check that the patch list names its items in the same
/// relative order as `$setElementOrder` and names no item it lacks.
fn check_patch_order(
    patch: &[Value],
    order: &[Value],
    strategy: ListStrategy<'_>,
) -> Result<(), PatchError> {
    let mut remaining = order.iter();
    let in_order = patch
        .iter()
        .filter(|item| item.get(DIRECTIVE).is_none())
        .all(|item| remaining.any(|o| strategy.same_item(item, o)));
    if in_order {
        Ok(())
    } else {
        Err(PatchError::OrderMismatch {
            patch: go_fmt(&Value::Array(patch.to_vec())),
            order: go_fmt(&Value::Array(order.to_vec())),
        })
    }
}

fn expect_object<'v>(item: &'v Value, key: &str) -> Result<&'v Map<String, Value>, PatchError> {
    item.as_object().ok_or_else(|| {
        PatchError::Invalid(format!(
            "expected a map in a list merged by key {key:?}, but received {}",
            short(item)
        ))
    })
}

fn merge_key_of<'v>(item: &'v Map<String, Value>, key: &str) -> Result<&'v Value, PatchError> {
    item.get(key).ok_or_else(|| PatchError::NoMergeKey {
        map: go_fmt(&Value::Object(item.clone())),
        key: key.to_string(),
    })
}

/// Render a value the way Go's `%v` prints decoded JSON
/// (`map[image:nginx name:web]`), which is how Kubernetes' messages show
/// the offending patch item.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_fmt).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by_key(|(k, _)| *k);
            let items: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schema::{Field, ObjectType};
    use serde_json::json;

    // -- a hand-built schema with the patch metadata of the real types ------

    fn named(n: &str) -> TypeRef {
        TypeRef::Named(n.into())
    }

    fn list_of(inner: TypeRef, list: ListKind) -> Field {
        Field {
            list,
            ..Field::new(TypeRef::Array(Box::new(inner)))
        }
    }

    fn keyed(inner: &str, keys: &[&str]) -> Field {
        list_of(
            named(inner),
            ListKind::Map(keys.iter().map(|k| k.to_string()).collect()),
        )
    }

    fn object(fields: Vec<(&str, Field)>) -> ObjectType {
        ObjectType {
            fields: fields
                .into_iter()
                .map(|(k, f)| (k.to_string(), f))
                .collect(),
            required: vec![],
        }
    }

    fn schema() -> SchemaSet {
        let s = || Field::new(TypeRef::String);
        let string_map = || Field::new(TypeRef::Map(Box::new(TypeRef::String)));
        let mut set = SchemaSet::default();
        let mut add = |name: &str, ty: ObjectType| {
            set.types.insert(name.to_string(), ty);
        };
        add(
            "Deployment",
            object(vec![
                ("metadata", Field::new(named("ObjectMeta"))),
                ("spec", Field::new(named("DeploymentSpec"))),
            ]),
        );
        add(
            "Pod",
            object(vec![
                ("metadata", Field::new(named("ObjectMeta"))),
                ("spec", Field::new(named("PodSpec"))),
                ("status", Field::new(named("PodStatus"))),
            ]),
        );
        add(
            "ObjectMeta",
            object(vec![
                ("name", s()),
                ("labels", string_map()),
                ("annotations", string_map()),
                ("finalizers", list_of(TypeRef::String, ListKind::Set)),
            ]),
        );
        add(
            "DeploymentSpec",
            object(vec![
                ("replicas", Field::new(TypeRef::Integer)),
                ("template", Field::new(named("PodTemplateSpec"))),
                (
                    "strategy",
                    Field {
                        retain_keys: true,
                        ..Field::new(named("DeploymentStrategy"))
                    },
                ),
            ]),
        );
        add(
            "DeploymentStrategy",
            object(vec![
                ("type", s()),
                ("rollingUpdate", Field::new(TypeRef::Any)),
            ]),
        );
        add(
            "PodTemplateSpec",
            object(vec![
                ("metadata", Field::new(named("ObjectMeta"))),
                ("spec", Field::new(named("PodSpec"))),
            ]),
        );
        add(
            "PodSpec",
            object(vec![
                ("containers", keyed("Container", &["name"])),
                ("nodeSelector", string_map()),
                ("tolerations", list_of(TypeRef::Any, ListKind::Atomic)),
            ]),
        );
        add(
            "Container",
            object(vec![
                ("name", s()),
                ("image", s()),
                ("args", list_of(TypeRef::String, ListKind::Atomic)),
                ("env", keyed("EnvVar", &["name"])),
                (
                    "ports",
                    keyed("ContainerPort", &["containerPort", "protocol"]),
                ),
                ("volumeMounts", keyed("VolumeMount", &["mountPath"])),
            ]),
        );
        add(
            "EnvVar",
            object(vec![
                ("name", s()),
                ("value", s()),
                ("valueFrom", Field::new(TypeRef::Any)),
            ]),
        );
        add(
            "ContainerPort",
            object(vec![
                ("containerPort", Field::new(TypeRef::Integer)),
                ("protocol", s()),
                ("name", s()),
            ]),
        );
        add(
            "VolumeMount",
            object(vec![("mountPath", s()), ("name", s())]),
        );
        add(
            "PodStatus",
            object(vec![
                ("phase", s()),
                ("conditions", keyed("PodCondition", &["type"])),
            ]),
        );
        add("PodCondition", object(vec![("type", s()), ("status", s())]));
        set
    }

    fn smp(target: Value, patch: Value, kind: &str) -> Result<Value, PatchError> {
        strategic_merge_patch(&target, &patch, &schema(), &named(kind))
    }

    fn pod_smp(target: Value, patch: Value) -> Value {
        smp(target, patch, "Pod").unwrap()
    }

    fn names(list: &Value, key: &str) -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| match &i[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "finalizers": ["a", "b"]
            },
            "spec": {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {"spec": {"containers": [
                    {"name": "web", "image": "nginx:1.24",
                     "ports": [{"containerPort": 80, "protocol": "TCP"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                    {"name": "sidecar", "image": "busybox"}
                ]}}
            }
        })
    }

    // -- JSON merge patch -----------------------------------------------------

    #[test]
    fn merge_patch_null_deletes_and_objects_merge() {
        let target =
            json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"replicas": 1}});
        let patch = json!({"metadata": {"labels": {"tier": null, "new": "x"}}, "spec": null});
        assert_eq!(
            merge_patch(&target, &patch),
            json!({"metadata": {"labels": {"app": "web", "new": "x"}}})
        );
    }

    #[test]
    fn merge_patch_rfc7386_examples() {
        // The test cases of RFC 7386 appendix A that exercise distinct rules.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "patch {patch}");
        }
    }

    // -- JSON patch -----------------------------------------------------------

    fn jp(target: Value, ops: Value) -> Result<Value, PatchError> {
        json_patch(&target, &ops)
    }

    #[test]
    fn json_patch_each_operation() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "x"});
        let out = jp(
            doc,
            json!([
                {"op": "add", "path": "/a/b/1", "value": 9},
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/c", "value": "y"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/a/b/0", "path": "/first"},
                {"op": "remove", "path": "/d"},
                {"op": "test", "path": "/a/b", "value": [9, 2, 3]}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {"b": [9, 2, 3]}, "c": "y", "first": 1}));
    }

    #[test]
    fn json_patch_pointer_escapes_for_annotation_keys() {
        // kubectl users address "example.com/owner" as example.com~1owner.
        let doc = json!({"metadata": {"annotations": {"example.com/owner": "a", "x~y": "b"}}});
        let out = jp(
            doc,
            json!([
                {"op": "replace", "path": "/metadata/annotations/example.com~1owner", "value": "z"},
                {"op": "remove", "path": "/metadata/annotations/x~0y"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"annotations": {"example.com/owner": "z"}}})
        );
        let err = jp(
            json!({}),
            json!([{"op": "add", "path": "/a~2", "value": 1}]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("must be followed by 0 or 1"),
            "{err}"
        );
    }

    #[test]
    fn json_patch_rollout_undo_replaces_template() {
        // kubectl rollout undo sends the old ReplicaSet's template this way.
        let ops = json!([
            {"op": "replace", "path": "/spec/template",
             "value": {"spec": {"containers": [{"name": "web", "image": "nginx:1.23"}]}}},
            {"op": "replace", "path": "/metadata/annotations",
             "value": {"deployment.kubernetes.io/revision": "1"}}
        ]);
        let out = json_patch(&deployment(), &ops).unwrap();
        assert_eq!(
            out["spec"]["template"],
            json!({"spec": {"containers": [{"name": "web", "image": "nginx:1.23"}]}})
        );
        assert_eq!(out["spec"]["replicas"], 1);

        // The same patch against an object without spec names op 0 and its path.
        let err = json_patch(&json!({"metadata": {}}), &ops).unwrap_err();
        assert_eq!(
            err,
            PatchError::JsonPatchOp {
                index: 0,
                op: "replace".into(),
                path: "/spec/template".into(),
                reason: "the path does not exist".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "json patch operation 0 (\"replace\" at \"/spec/template\"): the path does not exist"
        );
    }

    #[test]
    fn json_patch_errors_name_the_operation() {
        let doc = json!({"spec": {"replicas": 2, "list": [1]}});
        let cases = [
            (
                json!([{"op": "remove", "path": "/spec/missing"}]),
                0,
                "the path does not exist",
            ),
            (
                json!([{"op": "test", "path": "/spec/replicas", "value": 2},
                       {"op": "test", "path": "/spec/replicas", "value": 3}]),
                1,
                "test failed: the value is 2, not 3",
            ),
            (
                json!([{"op": "add", "path": "/nope/x", "value": 1}]),
                0,
                "the parent location \"/nope\" does not exist",
            ),
            (
                json!([{"op": "add", "path": "/spec/list/5", "value": 1}]),
                0,
                "out of bounds",
            ),
            (
                json!([{"op": "replace", "path": "/spec/list/01", "value": 1}]),
                0,
                "does not exist",
            ),
            (
                json!([{"op": "replace", "path": "/spec/list/-", "value": 1}]),
                0,
                "does not exist",
            ),
            (
                json!([{"op": "add", "path": "/spec/x"}]),
                0,
                "missing \"value\"",
            ),
            (
                json!([{"op": "move", "path": "/spec/x"}]),
                0,
                "missing \"from\"",
            ),
            (
                json!([{"op": "frobnicate", "path": "/spec"}]),
                0,
                "unknown operation",
            ),
            (
                json!([{"op": "add", "path": "spec", "value": 1}]),
                0,
                "must start with",
            ),
            (
                json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]),
                0,
                "own children",
            ),
            (json!([{"op": "remove", "path": ""}]), 0, "whole document"),
            (json!(["add"]), 0, "must be a JSON object"),
        ];
        for (ops, index, reason) in cases {
            match jp(doc.clone(), ops.clone()) {
                Err(PatchError::JsonPatchOp {
                    index: i,
                    reason: r,
                    ..
                }) => {
                    assert_eq!(i, index, "{ops}");
                    assert!(r.contains(reason), "{ops}: {r}");
                }
                other => panic!("{ops}: {other:?}"),
            }
        }
        let err = jp(doc, json!({"op": "add"})).unwrap_err();
        assert!(matches!(err, PatchError::BadDocument(_)));
    }

    #[test]
    fn json_patch_test_compares_numbers_by_value_and_root_ops_work() {
        let out = jp(
            json!({"n": 1, "o": {"a": [1.0]}}),
            json!([
                {"op": "test", "path": "/n", "value": 1.0},
                {"op": "test", "path": "/o", "value": {"a": [1]}},
                {"op": "replace", "path": "", "value": {"fresh": true}}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"fresh": true}));
        // An empty patch is a no-op, as for kubectl patch --type=json -p '[]'.
        assert_eq!(jp(json!({"a": 1}), json!([])).unwrap(), json!({"a": 1}));
    }

    // -- Strategic merge patch: what kubectl apply sends ----------------------

    #[test]
    fn smp_kubectl_apply_changed_image_and_replicas() {
        // The two-way patch kubectl apply computes for a new image and
        // replica count: $setElementOrder lists every container it manages.
        let patch = json!({
            "metadata": {"annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
            "spec": {
                "replicas": 3,
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "containers": [{"image": "nginx:1.25", "name": "web"}]
                }}
            }
        });
        let out = smp(deployment(), patch, "Deployment").unwrap();
        let mut want = deployment();
        want["spec"]["replicas"] = json!(3);
        want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.25");
        want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
            json!("{...}");
        assert_eq!(out, want);
    }

    #[test]
    fn smp_kubectl_apply_adds_env_var_at_the_end() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
                "env": [{"name": "C", "value": "3"}],
                "name": "web"
            }]
        }}}});
        let out = smp(deployment(), patch, "Deployment").unwrap();
        let env = &out["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(names(env, "name"), ["A", "B", "C"]);
        assert_eq!(env[2], json!({"name": "C", "value": "3"}));
        assert_eq!(
            names(&out["spec"]["template"]["spec"]["containers"], "name"),
            ["web", "sidecar"]
        );
    }

    #[test]
    fn smp_kubectl_apply_removes_env_var() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "B"}],
                "env": [{"$patch": "delete", "name": "A"}, {"name": "B", "value": "22"}],
                "name": "web"
            }]
        }}}});
        let out = smp(deployment(), patch, "Deployment").unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "22"}])
        );
    }

    #[test]
    fn smp_kubectl_apply_changes_value_source_of_env_var() {
        // value -> valueFrom: kubectl sends value: null alongside the new field.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{
            "name": "web",
            "env": [{"name": "A", "value": null,
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        }]}}}});
        let out = smp(deployment(), patch, "Deployment").unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["env"][0],
            json!({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
        );
    }

    // -- Strategic merge patch: list merging and ordering ---------------------

    #[test]
    fn smp_new_item_without_set_element_order_goes_first() {
        // Kubernetes' "Update API Objects in Place Using kubectl patch" task:
        // patching in patch-demo-ctr-2 lists it before the existing container.
        let live = json!({"spec": {"containers": [{"name": "patch-demo-ctr", "image": "nginx"}]}});
        let patch =
            json!({"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}});
        let out = pod_smp(live, patch);
        assert_eq!(
            names(&out["spec"]["containers"], "name"),
            ["patch-demo-ctr-2", "patch-demo-ctr"]
        );
    }

    #[test]
    fn smp_patch_order_wins_over_live_order() {
        // Kubernetes' "preserve the order from the patch in a merging list" cases.
        let live = json!({"spec": {"containers": [
            {"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}]}});
        let out = pod_smp(
            live.clone(),
            json!({"spec": {"containers": [
                {"name": "3", "image": "c"}, {"name": "1", "image": "a"}, {"name": "2", "args": ["x"]}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "3", "image": "c"}, {"name": "1", "image": "a"},
                   {"name": "2", "image": "b", "args": ["x"]}])
        );
        let out = pod_smp(
            live,
            json!({"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}),
        );
        assert_eq!(names(&out["spec"]["containers"], "name"), ["2", "3", "1"]);
    }

    #[test]
    fn smp_set_element_order_keeps_server_only_items_near_their_neighbours() {
        // "x" was added by someone else; the client reorders b before a.
        let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}});
        let patch =
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}});
        let out = pod_smp(live, patch);
        assert_eq!(names(&out["spec"]["containers"], "name"), ["x", "b", "a"]);
    }

    #[test]
    fn smp_set_element_order_naming_absent_items() {
        // Kubernetes: "$setElementOrder contains item that is not present in
        // the list to be merged" (maps and primitives).
        let live = json!({"spec": {"containers": [{"name": "1"}, {"name": "3"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
            "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]}});
        assert_eq!(
            pod_smp(live, patch)["spec"]["containers"],
            json!([{"name": "3", "image": "3"}, {"name": "1", "image": "1"}])
        );
        let live = json!({"metadata": {"finalizers": ["1", "3"]}});
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["3", "2", "1"]}});
        assert_eq!(
            pod_smp(live, patch)["metadata"]["finalizers"],
            json!(["3", "1"])
        );
    }

    #[test]
    fn smp_set_element_order_must_agree_with_patch_list() {
        // Kubernetes: "should check if order in $setElementOrder and patch list match".
        let live = json!({"spec": {"containers": [{"name": "1"}, {"name": "3"}, {"name": "2"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
            "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]}});
        let err = smp(live, patch, "Pod").unwrap_err();
        assert!(matches!(err, PatchError::OrderMismatch { .. }));
        assert!(err.to_string().contains("doesn't match"), "{err}");
    }

    #[test]
    fn smp_delete_directive_removes_all_matching_items() {
        // Kubernetes: "delete all duplicate entries in a merging list".
        let live = json!({"status": {"conditions": [
            {"type": "1"}, {"type": "1"}, {"type": "2", "status": "a"}, {"type": "3"}, {"type": "3"}]}});
        let patch = json!({"status": {"conditions": [
            {"type": "1", "$patch": "delete"}, {"type": "3", "$patch": "delete"}]}});
        assert_eq!(
            pod_smp(live, patch)["status"]["conditions"],
            json!([{"type": "2", "status": "a"}])
        );
    }

    #[test]
    fn smp_status_condition_update_by_type() {
        // What the kubelet sends when a pod becomes ready.
        let live = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}});
        let patch = json!({"status": {
            "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Ready"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "phase": "Running"}});
        let out = pod_smp(live, patch);
        assert_eq!(out["status"]["phase"], "Running");
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}])
        );
    }

    #[test]
    fn smp_replace_directive_in_list() {
        // Kubernetes: "delete all items from merging list" and replacing with new items.
        let live = json!({"spec": {"containers": [{"name": "1"}, {"name": "2"}]}});
        let out = pod_smp(
            live.clone(),
            json!({"spec": {"containers": [{"$patch": "replace"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([]));
        let out = pod_smp(
            live,
            json!({"spec": {"containers": [{"name": "9", "image": "x", "args": null}, {"$patch": "replace"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "9", "image": "x"}])
        );
    }

    #[test]
    fn smp_ports_merge_on_numeric_key() {
        let live = json!({"spec": {"containers": [{"name": "web", "ports": [
            {"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "web",
            "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}, {"containerPort": 8080}],
            "ports": [{"containerPort": 80.0, "name": "http"}, {"containerPort": 8080, "protocol": "TCP"}]}]}});
        let out = pod_smp(live, patch);
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            // 80.0 matched the live 80 (one item, not two) and, like any
            // patched scalar, its value is the patch's.
            json!([{"containerPort": 80.0, "protocol": "TCP", "name": "http"},
                   {"containerPort": 443, "protocol": "TCP"},
                   {"containerPort": 8080, "protocol": "TCP"}])
        );
    }

    #[test]
    fn smp_volume_mounts_keyed_by_mount_path() {
        let live = json!({"spec": {"containers": [{"name": "web", "volumeMounts": [
            {"mountPath": "/data", "name": "data"}, {"mountPath": "/cfg", "name": "cfg"}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "web", "volumeMounts": [
            {"mountPath": "/cfg", "$patch": "delete"}, {"mountPath": "/data", "name": "data2"}]}]}});
        assert_eq!(
            pod_smp(live, patch)["spec"]["containers"][0]["volumeMounts"],
            json!([{"mountPath": "/data", "name": "data2"}])
        );
    }

    #[test]
    fn smp_missing_merge_key_is_an_error() {
        // kubectl patch deployment nginx -p '{"spec":{"template":{"spec":{"containers":[{"image":"httpd"}]}}}}'
        // answers: map: map[image:httpd] does not contain declared merge key: name
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "httpd"}]}}}});
        let err = smp(deployment(), patch, "Deployment").unwrap_err();
        assert_eq!(
            err.to_string(),
            "map: map[image:httpd] does not contain declared merge key: name"
        );
        // A delete item without its key, and a live item without one, fail the same way.
        let err = pod_smp_err(
            json!({}),
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
        );
        assert_eq!(
            err.to_string(),
            "map: map[$patch:delete] does not contain declared merge key: name"
        );
        let err = pod_smp_err(
            json!({"spec": {"containers": [{}]}}),
            json!({"spec": {"containers": [{"name": "a"}]}}),
        );
        assert_eq!(
            err.to_string(),
            "map: map[] does not contain declared merge key: name"
        );
    }

    fn pod_smp_err(target: Value, patch: Value) -> PatchError {
        smp(target, patch, "Pod").unwrap_err()
    }

    #[test]
    fn smp_keyed_list_items_must_be_objects_and_directives_known() {
        let err = pod_smp_err(json!({}), json!({"spec": {"containers": ["web"]}}));
        assert!(err.to_string().contains("expected a map"), "{err}");
        let err = pod_smp_err(
            json!({}),
            json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
        );
        assert_eq!(
            err.to_string(),
            "merging lists cannot yet be specified in the patch"
        );
        let err = pod_smp_err(
            json!({}),
            json!({"spec": {"containers": [{"name": "a", "$patch": "zap"}]}}),
        );
        assert_eq!(
            err.to_string(),
            "unknown patch type: zap in map: map[$patch:zap name:a]"
        );
    }

    // -- Strategic merge patch: primitive lists -------------------------------

    #[test]
    fn smp_primitive_set_union_without_duplicates() {
        // Kubernetes: "unique scalars when merging lists".
        let live = json!({"metadata": {"finalizers": ["1", "2"]}});
        let out = pod_smp(live, json!({"metadata": {"finalizers": ["2", "3"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["1", "2", "3"]));
        // "preserve the order from the patch in a merging int list".
        let live = json!({"metadata": {"finalizers": ["1", "2", "3"]}});
        let out = pod_smp(live, json!({"metadata": {"finalizers": ["3", "1"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["2", "3", "1"]));
    }

    #[test]
    fn smp_delete_from_primitive_list() {
        let live = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["a", "d"],
            "$deleteFromPrimitiveList/finalizers": ["b", "c", "zzz"],
            "finalizers": ["d"]}});
        assert_eq!(
            pod_smp(live, patch)["metadata"]["finalizers"],
            json!(["a", "d"])
        );
        // Deleting from a list the object lacks does not create it.
        let out = pod_smp(
            json!({"metadata": {}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        );
        assert_eq!(out, json!({"metadata": {}}));
        // ... and the directive must be a list, of a primitive list.
        let err = pod_smp_err(
            json!({}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}),
        );
        assert!(matches!(err, PatchError::PrimitiveList(_)), "{err}");
        let err = pod_smp_err(
            json!({}),
            json!({"spec": {"$deleteFromPrimitiveList/containers": ["x"]}}),
        );
        assert!(matches!(err, PatchError::PrimitiveList(_)), "{err}");
        let err = pod_smp_err(
            json!({}),
            json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}}),
        );
        assert!(matches!(err, PatchError::PrimitiveList(_)), "{err}");
    }

    #[test]
    fn smp_atomic_list_is_replaced() {
        let live = json!({"spec": {"containers": [{"name": "web", "args": ["a", "b"]}],
                                   "tolerations": [{"key": "k1"}]}});
        let patch = json!({"spec": {"containers": [{"name": "web", "args": ["c"]}],
                                    "tolerations": [{"key": "k2"}]}});
        let out = pod_smp(live, patch);
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["c"]));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "k2"}]));
    }

    // -- Strategic merge patch: map directives --------------------------------

    #[test]
    fn smp_null_deletes_and_unmatched_null_is_ignored() {
        let live = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        let patch = json!({"metadata": {"labels": {"tier": null, "gone": null}, "annotations": {"a": null}}});
        assert_eq!(
            pod_smp(live, patch),
            json!({"metadata": {"labels": {"app": "web"}, "annotations": {}}})
        );
    }

    #[test]
    fn smp_replace_directive_in_map() {
        // Kubernetes: "add key and delete all keys from map", nested and at the root.
        let live = json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}});
        let out = pod_smp(
            live.clone(),
            json!({"spec": {"nodeSelector": {"c": "3", "$patch": "replace"}}}),
        );
        assert_eq!(out, json!({"spec": {"nodeSelector": {"c": "3"}}}));
        let out = pod_smp(live, json!({"other": "a", "$patch": "replace"}));
        assert_eq!(out, json!({"other": "a"}));
    }

    #[test]
    fn smp_delete_and_merge_directives_in_map() {
        // Kubernetes: "delete map from nested map" leaves an empty map.
        let live = json!({"spec": {"nodeSelector": {"a": "1"}}, "metadata": {"name": "p"}});
        let out = pod_smp(
            live.clone(),
            json!({"spec": {"nodeSelector": {"$patch": "delete"}}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"nodeSelector": {}}, "metadata": {"name": "p"}})
        );
        let out = pod_smp(live.clone(), json!({"$patch": "delete"}));
        assert_eq!(out, json!({}));
        // $patch: merge is the default and is dropped.
        let out = pod_smp(
            live.clone(),
            json!({"spec": {"$patch": "merge", "nodeSelector": {"b": "2"}}}),
        );
        assert_eq!(out["spec"], json!({"nodeSelector": {"a": "1", "b": "2"}}));
        let err = pod_smp_err(live, json!({"spec": {"$patch": "zap"}}));
        assert_eq!(
            err.to_string(),
            "unknown patch type: zap in map: map[$patch:zap]"
        );
    }

    #[test]
    fn smp_retain_keys_clears_other_fields() {
        // kubectl apply switching a Deployment from RollingUpdate to Recreate.
        let patch = json!({"spec": {"strategy": {
            "$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}});
        let out = smp(deployment(), patch, "Deployment").unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        // Without the null, rollingUpdate is still cleared by $retainKeys.
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = smp(deployment(), patch, "Deployment").unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        // Kubernetes: "retainKeys map can add a field when no retainKeys directive present".
        let patch = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}});
        let out = smp(deployment(), patch, "Deployment").unwrap();
        assert_eq!(
            out["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
        );
    }

    #[test]
    fn smp_retain_keys_must_list_patched_fields() {
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}});
        let err = smp(deployment(), patch, "Deployment").unwrap_err();
        assert!(matches!(err, PatchError::RetainKeys(_)));
        assert!(
            err.to_string()
                .starts_with("invalid patch format of retainKeys"),
            "{err}"
        );
        let patch = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        assert!(matches!(
            smp(deployment(), patch, "Deployment"),
            Err(PatchError::RetainKeys(_))
        ));
    }

    #[test]
    fn smp_set_element_order_errors() {
        let err = pod_smp_err(
            json!({"spec": {"nodeSelector": {"a": "b"}}}),
            json!({"spec": {"$setElementOrder/nodeSelector": ["a"]}}),
        );
        assert!(matches!(err, PatchError::SetElementOrder(_)), "{err}");
        let err = pod_smp_err(
            json!({}),
            json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
        );
        assert!(matches!(err, PatchError::SetElementOrder(_)), "{err}");
        let err = pod_smp_err(
            json!({}),
            json!({"spec": {"$setElementOrder/containers": [{"image": "a"}]}}),
        );
        assert!(matches!(err, PatchError::NoMergeKey { .. }), "{err}");
        let err = pod_smp_err(json!({}), json!({"spec": {"$setElementOrder": []}}));
        assert!(matches!(err, PatchError::SetElementOrder(_)), "{err}");
        // An unknown field whose live value is not a list.
        let err = pod_smp_err(json!({"extra": 1}), json!({"$setElementOrder/extra": [1]}));
        assert!(matches!(err, PatchError::SetElementOrder(_)), "{err}");
    }

    #[test]
    fn smp_directives_never_reach_the_result() {
        // A new container whose own lists carry directives: merged into an
        // empty container, not copied verbatim.
        let live = json!({"spec": {"containers": [{"name": "web"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "new"}],
            "containers": [{"name": "new",
                "$setElementOrder/env": [{"name": "X"}],
                "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}],
                "volumeMounts": [{"$patch": "replace"}, {"mountPath": "/m", "name": null}]}],
            "nodeSelector": {"$patch": "replace", "a": "1", "b": null}}});
        let out = pod_smp(live, patch);
        assert_eq!(
            out,
            json!({"spec": {
                "containers": [{"name": "web"},
                    {"name": "new", "env": [{"name": "X", "value": "1"}],
                     "volumeMounts": [{"mountPath": "/m"}]}],
                "nodeSelector": {"a": "1"}}})
        );
        assert!(!out.to_string().contains('$'));
    }

    #[test]
    fn smp_without_schema_acts_like_merge_patch() {
        let live = json!({"data": {"a": "1", "b": "2"}, "items": [1, 2], "spec": {"unknownList": [{"name": "x"}]}});
        let patch = json!({"data": {"b": null, "c": "3"}, "items": [3], "spec": {"unknownList": [{"name": "y"}]}});
        let want = json!({"data": {"a": "1", "c": "3"}, "items": [3], "spec": {"unknownList": [{"name": "y"}]}});
        assert_eq!(smp(live.clone(), patch.clone(), "Pod").unwrap(), want);
        assert_eq!(
            strategic_merge_patch(&live, &patch, &schema(), &TypeRef::Any).unwrap(),
            want
        );
        assert_eq!(
            smp(live.clone(), patch.clone(), "NoSuchType").unwrap(),
            want
        );
        // Fields typed Any (an env var's valueFrom) merge like merge patch too.
        let live = json!({"spec": {"containers": [{"name": "w", "env": [{"name": "A",
            "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "w", "env": [{"name": "A",
            "valueFrom": {"secretKeyRef": {"key": "k2"}}}]}]}});
        assert_eq!(
            pod_smp(live, patch)["spec"]["containers"][0]["env"][0]["valueFrom"],
            json!({"secretKeyRef": {"name": "s", "key": "k2"}})
        );
    }

    #[test]
    fn smp_type_changes_replace_and_patch_must_be_an_object() {
        let out = pod_smp(
            json!({"spec": "weird"}),
            json!({"spec": {"nodeSelector": {"a": "1", "b": null}}}),
        );
        assert_eq!(out, json!({"spec": {"nodeSelector": {"a": "1"}}}));
        let out = pod_smp(
            json!({"metadata": {"finalizers": "x"}}),
            json!({"metadata": {"finalizers": ["a", "a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a"]));
        assert!(matches!(
            pod_smp_err(json!({}), json!([1])),
            PatchError::BadDocument(_)
        ));
        let err = pod_smp_err(json!({}), json!({"metadata": {"finalizers": [{"a": 1}]}}));
        assert!(
            err.to_string()
                .contains("cannot merge lists without merge key"),
            "{err}"
        );
    }

    #[test]
    fn smp_does_not_touch_unpatched_fields_or_the_inputs() {
        let live = deployment();
        let patch = json!({"spec": {"replicas": 2}});
        let out = smp(live.clone(), patch.clone(), "Deployment").unwrap();
        assert_eq!(live, deployment());
        let mut want = deployment();
        want["spec"]["replicas"] = json!(2);
        assert_eq!(out, want);
        assert_eq!(smp(live, json!({}), "Deployment").unwrap(), deployment());
    }
}
