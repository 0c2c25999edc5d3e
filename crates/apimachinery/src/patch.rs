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
        index: usize,
        op: String,
        path: String,
        reason: String,
    },
    /// An item of a list merged by key lacks the key (Kubernetes' wording).
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    /// A `$patch` directive other than `replace`, `delete` or `merge`.
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownDirective { directive: String, map: String },
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
    OrderMismatch { patch: String, order: String },
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
                && x
                    .iter()
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
