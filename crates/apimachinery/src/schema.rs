//! A structural schema of Kubernetes types.
//!
//! Built once at start-up by the API server (from the OpenAPI schemas of the
//! served kinds plus the patch metadata Kubernetes keeps in struct tags) and
//! then read by strategic merge patch, server-side apply and field
//! validation. Types are named the way OpenAPI names them
//! (`io.k8s.api.core.v1.PodSpec`) and refer to each other by name, so
//! recursive types need no special case.

use std::collections::{BTreeMap, HashMap};

/// How a field's value is shaped.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeRef {
    /// A named object type defined in the [`SchemaSet`].
    Named(String),
    /// A JSON array of the inner type.
    Array(Box<TypeRef>),
    /// A JSON object with arbitrary keys, all values of the inner type.
    Map(Box<TypeRef>),
    String,
    Integer,
    Number,
    Boolean,
    /// `IntOrString`: either a JSON number or a string.
    IntOrString,
    /// Anything at all (`RawExtension`, `JSON`, free-form objects): never
    /// checked for unknown fields and merged as a whole.
    Any,
}

/// How a list is merged by strategic merge patch and server-side apply.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ListKind {
    /// Replaced as a whole (`x-kubernetes-list-type: atomic`, no patch strategy).
    #[default]
    Atomic,
    /// A list of scalars merged as a set (`patchStrategy: merge` on a
    /// primitive list, `x-kubernetes-list-type: set`).
    Set,
    /// A list of objects identified by the given keys
    /// (`patchMergeKey` / `x-kubernetes-list-map-keys`). The first key is the
    /// strategic merge patch merge key.
    Map(Vec<String>),
}

/// One field of an object type.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub ty: TypeRef,
    /// Only meaningful when `ty` is an [`TypeRef::Array`].
    pub list: ListKind,
    /// `patchStrategy: retainKeys` (e.g. `volumes[*]` sources, deployment strategy).
    pub retain_keys: bool,
    /// `x-kubernetes-map-type: atomic` on an object or map field.
    pub atomic: bool,
}

impl Field {
    pub fn new(ty: TypeRef) -> Self {
        Field {
            ty,
            list: ListKind::Atomic,
            retain_keys: false,
            atomic: false,
        }
    }
}

/// A named object type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectType {
    pub fields: BTreeMap<String, Field>,
    /// Required field names (for validation messages).
    pub required: Vec<String>,
}

/// All named types plus the root type of each served kind.
#[derive(Debug, Clone, Default)]
pub struct SchemaSet {
    pub types: HashMap<String, ObjectType>,
    /// `(group, version, kind)` → root type name. The core group is `""`.
    pub kinds: HashMap<(String, String, String), String>,
}

impl SchemaSet {
    /// The root type of a kind, if it is known.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// Look up a named type.
    pub fn get(&self, name: &str) -> Option<&ObjectType> {
        self.types.get(name)
    }

    /// The field `name` of the object type `ty`, when `ty` is a named type.
    pub fn field(&self, ty: &TypeRef, name: &str) -> Option<&Field> {
        match ty {
            TypeRef::Named(n) => self.types.get(n)?.fields.get(name),
            _ => None,
        }
    }
}
