//! Unknown-field and wrong-type detection for server-side field validation.
//!
//! Kubernetes decodes every write strictly when asked to
//! (`fieldValidation=Strict`, the default of `kubectl apply` since 1.27),
//! warns with a `Warning` header under `fieldValidation=Warn`, and drops the
//! fields silently under `Ignore`. skiff keeps objects as JSON, so it walks
//! the object against the structural [`SchemaSet`] instead of relying on a
//! strict typed decoder. Paths are worded as Kubernetes words them
//! (`spec.template.spec.containers[0].foo`), so the messages callers build
//! (`unknown field "spec.foo"`) match what kubectl users already know.
//!
//! A value of the wrong JSON type is a separate problem: Kubernetes rejects it
//! whatever the field validation mode, so it is reported in its own list.

use serde_json::{Map, Value};

use crate::schema::{SchemaSet, TypeRef};

/// The OpenAPI name of `ObjectMeta`, the type of every kind's `metadata`.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Paths of fields in `obj` the schema does not know (`spec.foo`,
/// `spec.template.spec.containers[0].foo`), in document order.
///
/// `apiVersion` and `kind` at the root are always known and `metadata` at
/// the root is `ObjectMeta` even when the kind's type does not list it.
/// [`TypeRef::Any`] values (and maps of them) are never looked into, nor are
/// named types the set does not define. Values of the wrong JSON type are not
/// descended into; [`type_errors`] reports them.
pub fn unknown_fields(schema: &SchemaSet, ty: &TypeRef, obj: &Value) -> Vec<String> {
    let mut walk = Walk::new(schema);
    walk.value(ty, obj, "");
    walk.unknown
}

/// Values whose JSON type does not match the schema, each as Kubernetes
/// words it: `spec.replicas: Invalid value: "string": spec.replicas in body
/// must be of type integer: "string"`.
///
/// `null` is accepted everywhere (Kubernetes decodes it as "unset").
/// [`TypeRef::IntOrString`] accepts a string or any number.
pub fn type_errors(schema: &SchemaSet, ty: &TypeRef, obj: &Value) -> Vec<String> {
    let mut walk = Walk::new(schema);
    walk.value(ty, obj, "");
    walk.type_errors
}

/// Remove the fields [`unknown_fields`] reports, as Kubernetes' decoder
/// drops them under `fieldValidation=Warn` and `Ignore`: an unknown field
/// is never stored.
pub fn prune_unknown(schema: &SchemaSet, ty: &TypeRef, obj: &mut Value) {
    prune(schema, ty, obj, true);
}

fn prune(schema: &SchemaSet, ty: &TypeRef, value: &mut Value, root: bool) {
    if !type_matches(ty, value) {
        return;
    }
    match (ty, value) {
        (TypeRef::Named(name), Value::Object(fields)) => {
            let Some(object_type) = schema.get(name) else {
                return;
            };
            fields.retain(|k, _| {
                object_type.fields.contains_key(k)
                    || (root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
            });
            for (k, v) in fields.iter_mut() {
                match object_type.fields.get(k) {
                    Some(field) => prune(schema, &field.ty, v, false),
                    None if k == "metadata" => {
                        prune(schema, &TypeRef::Named(OBJECT_META.to_string()), v, false)
                    }
                    None => {}
                }
            }
        }
        (TypeRef::Array(item), Value::Array(items)) => {
            for v in items {
                prune(schema, item, v, false);
            }
        }
        (TypeRef::Map(inner), Value::Object(entries)) => {
            for v in entries.values_mut() {
                prune(schema, inner, v, false);
            }
        }
        _ => {}
    }
}

/// One pass over an object, collecting both kinds of problem.
struct Walk<'a> {
    schema: &'a SchemaSet,
    unknown: Vec<String>,
    type_errors: Vec<String>,
}

impl<'a> Walk<'a> {
    fn new(schema: &'a SchemaSet) -> Self {
        Walk {
            schema,
            unknown: Vec::new(),
            type_errors: Vec::new(),
        }
    }

    fn value(&mut self, ty: &TypeRef, value: &Value, path: &str) {
        if value.is_null() || matches!(ty, TypeRef::Any) {
            return;
        }
        if !type_matches(ty, value) {
            self.type_errors.push(type_error(path, ty, value));
            return;
        }
        match (ty, value) {
            (TypeRef::Named(name), Value::Object(fields)) => self.object(name, fields, path),
            (TypeRef::Array(item), Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    self.value(item, v, &format!("{path}[{i}]"));
                }
            }
            (TypeRef::Map(inner), Value::Object(entries)) => {
                for (key, v) in entries {
                    self.value(inner, v, &join(path, key));
                }
            }
            _ => {}
        }
    }

    fn object(&mut self, name: &str, fields: &Map<String, Value>, path: &str) {
        // A type the set does not define is treated like `Any`: reporting
        // every field of it as unknown would reject valid objects.
        let Some(object_type) = self.schema.get(name) else {
            return;
        };
        for (key, value) in fields {
            let child = join(path, key);
            match object_type.fields.get(key) {
                Some(field) => self.value(&field.ty, value, &child),
                None if path.is_empty() => self.root_field(key, value),
                None => self.unknown.push(child),
            }
        }
    }

    /// `apiVersion`, `kind` and `metadata` belong to every kind at the top
    /// level, whether or not its type spells them out.
    fn root_field(&mut self, key: &str, value: &Value) {
        match key {
            "apiVersion" | "kind" => self.value(&TypeRef::String, value, key),
            "metadata" => self.value(&TypeRef::Named(OBJECT_META.to_string()), value, key),
            _ => self.unknown.push(key.to_string()),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_matches(ty: &TypeRef, value: &Value) -> bool {
    match ty {
        TypeRef::Named(_) | TypeRef::Map(_) => value.is_object(),
        TypeRef::Array(_) => value.is_array(),
        TypeRef::String => value.is_string(),
        TypeRef::Integer => value.is_i64() || value.is_u64(),
        TypeRef::Number => value.is_number(),
        TypeRef::Boolean => value.is_boolean(),
        TypeRef::IntOrString => value.is_string() || value.is_number(),
        TypeRef::Any => true,
    }
}

/// The OpenAPI type name Kubernetes uses in "must be of type" messages.
fn expected_name(ty: &TypeRef) -> &'static str {
    match ty {
        TypeRef::Named(_) | TypeRef::Map(_) => "object",
        TypeRef::Array(_) => "array",
        TypeRef::String => "string",
        TypeRef::Integer => "integer",
        TypeRef::Number => "number",
        TypeRef::Boolean => "boolean",
        TypeRef::IntOrString => "integer,string",
        TypeRef::Any => "any",
    }
}

/// The JSON type name of a value as Kubernetes reports it.
fn actual_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(path: &str, ty: &TypeRef, value: &Value) -> String {
    let actual = actual_name(value);
    let expected = expected_name(ty);
    if path.is_empty() {
        format!("Invalid value: \"{actual}\": body must be of type {expected}: \"{actual}\"")
    } else {
        format!(
            "{path}: Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, ObjectType};
    use serde_json::json;

    fn object(fields: &[(&str, TypeRef)]) -> ObjectType {
        ObjectType {
            fields: fields
                .iter()
                .map(|(n, t)| (n.to_string(), Field::new(t.clone())))
                .collect(),
            required: Vec::new(),
        }
    }

    fn named(n: &str) -> TypeRef {
        TypeRef::Named(n.to_string())
    }

    /// A cut-down Deployment: enough nesting to exercise objects inside
    /// lists inside objects, maps, `Any` and `IntOrString`.
    fn schema() -> SchemaSet {
        let mut s = SchemaSet::default();
        let t = &mut s.types;
        t.insert(
            "Deployment".into(),
            object(&[
                ("apiVersion", TypeRef::String),
                ("kind", TypeRef::String),
                ("spec", named("DeploymentSpec")),
            ]),
        );
        t.insert(
            OBJECT_META.into(),
            object(&[
                ("name", TypeRef::String),
                ("labels", TypeRef::Map(Box::new(TypeRef::String))),
            ]),
        );
        t.insert(
            "DeploymentSpec".into(),
            object(&[
                ("replicas", TypeRef::Integer),
                ("paused", TypeRef::Boolean),
                ("template", named("PodTemplateSpec")),
                ("extra", TypeRef::Any),
                ("annotationsLike", TypeRef::Map(Box::new(TypeRef::Any))),
                ("byName", TypeRef::Map(Box::new(named("Container")))),
                ("undefined", named("NotInTheSet")),
            ]),
        );
        t.insert(
            "PodTemplateSpec".into(),
            object(&[("metadata", named(OBJECT_META)), ("spec", named("PodSpec"))]),
        );
        t.insert(
            "PodSpec".into(),
            object(&[("containers", TypeRef::Array(Box::new(named("Container"))))]),
        );
        t.insert(
            "Container".into(),
            object(&[
                ("name", TypeRef::String),
                ("port", TypeRef::IntOrString),
                ("weight", TypeRef::Number),
            ]),
        );
        s
    }

    fn root() -> TypeRef {
        named("Deployment")
    }

    #[test]
    fn a_valid_object_has_no_problems() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "paused": false, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "port": 80, "weight": 0.5}]}
            }}
        });
        assert!(unknown_fields(&schema(), &root(), &obj).is_empty());
        assert!(type_errors(&schema(), &root(), &obj).is_empty());
    }

    #[test]
    fn unknown_fields_are_named_by_path_like_kubernetes() {
        // Kubernetes: `unknown field "spec.template.spec.containers[1].imagee"`.
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "bogus": 1,
            "metadata": {"name": "web", "nmae": "x"},
            "spec": {"foo": true, "template": {
                "metadata": {"labelz": {}},
                "spec": {"containers": [{"name": "a"}, {"name": "b", "imagee": "nginx"}]}
            }}
        });
        assert_eq!(
            unknown_fields(&schema(), &root(), &obj),
            vec![
                "bogus",
                "metadata.nmae",
                "spec.foo",
                "spec.template.metadata.labelz",
                "spec.template.spec.containers[1].imagee",
            ]
        );
    }

    #[test]
    fn root_api_version_kind_and_metadata_are_known_even_if_the_type_omits_them() {
        let mut s = SchemaSet::default();
        s.types.insert(
            "Bare".into(),
            object(&[("data", TypeRef::Map(Box::new(TypeRef::String)))]),
        );
        s.types
            .insert(OBJECT_META.into(), object(&[("name", TypeRef::String)]));
        let obj = json!({"apiVersion": "v1", "kind": "Bare", "metadata": {"name": "x", "oops": 1}, "data": {"k": "v"}});
        assert_eq!(
            unknown_fields(&s, &named("Bare"), &obj),
            vec!["metadata.oops"]
        );
        // Only at the root: a nested object has no implicit `kind`.
        let obj = json!({"spec": {"kind": "x"}});
        assert_eq!(unknown_fields(&schema(), &root(), &obj), vec!["spec.kind"]);
    }

    #[test]
    fn any_and_maps_of_any_are_never_checked() {
        let obj = json!({"spec": {
            "extra": {"whatever": {"deep": [1, "two"]}},
            "annotationsLike": {"a": {"b": 1}, "c": [true]}
        }});
        assert!(unknown_fields(&schema(), &root(), &obj).is_empty());
        assert!(type_errors(&schema(), &root(), &obj).is_empty());
    }

    #[test]
    fn types_missing_from_the_set_are_not_second_guessed() {
        let obj = json!({"spec": {"undefined": {"anything": 1}}});
        assert!(unknown_fields(&schema(), &root(), &obj).is_empty());
    }

    #[test]
    fn map_values_of_named_types_are_checked_under_their_key() {
        let obj = json!({"spec": {"byName": {"web": {"name": "web", "nope": 1}}}});
        assert_eq!(
            unknown_fields(&schema(), &root(), &obj),
            vec!["spec.byName.web.nope"]
        );
    }

    #[test]
    fn wrong_types_are_reported_like_kubernetes_schema_validation() {
        let obj = json!({"spec": {"replicas": "3", "paused": "no", "template": {"spec": {"containers": {"name": "c"}}}}});
        assert_eq!(
            type_errors(&schema(), &root(), &obj),
            vec![
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
                r#"spec.paused: Invalid value: "string": spec.paused in body must be of type boolean: "string""#,
                r#"spec.template.spec.containers: Invalid value: "object": spec.template.spec.containers in body must be of type array: "object""#,
            ]
        );
        // A value of the wrong type is not also searched for unknown fields.
        assert!(unknown_fields(&schema(), &root(), &obj).is_empty());
    }

    #[test]
    fn a_fractional_number_is_not_an_integer() {
        // Kubernetes refuses `replicas: 1.5` when decoding into int32.
        let obj = json!({"spec": {"replicas": 1.5}});
        assert_eq!(
            type_errors(&schema(), &root(), &obj),
            vec![
                r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#
            ]
        );
    }

    #[test]
    fn int_or_string_accepts_string_or_number_but_not_bool() {
        let ok = json!({"spec": {"template": {"spec": {"containers": [{"port": "http"}, {"port": 8080}, {"port": 1.5}]}}}});
        assert!(type_errors(&schema(), &root(), &ok).is_empty());
        let bad = json!({"spec": {"template": {"spec": {"containers": [{"port": true}]}}}});
        assert_eq!(
            type_errors(&schema(), &root(), &bad),
            vec![
                r#"spec.template.spec.containers[0].port: Invalid value: "boolean": spec.template.spec.containers[0].port in body must be of type integer,string: "boolean""#
            ]
        );
    }

    #[test]
    fn null_means_unset_and_is_accepted_anywhere() {
        let obj = json!({"metadata": null, "spec": {"replicas": null, "template": null}});
        assert!(type_errors(&schema(), &root(), &obj).is_empty());
        assert!(unknown_fields(&schema(), &root(), &obj).is_empty());
    }

    #[test]
    fn a_root_that_is_not_an_object_is_a_type_error() {
        let errs = type_errors(&schema(), &root(), &json!([1]));
        assert_eq!(
            errs,
            vec![r#"Invalid value: "array": body must be of type object: "array""#]
        );
        assert!(unknown_fields(&schema(), &root(), &json!("x")).is_empty());
    }

    #[test]
    fn numbers_are_not_strings() {
        // Kubernetes: `cannot unmarshal number into Go struct field Container.name of type string`.
        let obj = json!({"metadata": {"name": 5}});
        assert_eq!(
            type_errors(&schema(), &root(), &obj),
            vec![
                r#"metadata.name: Invalid value: "integer": metadata.name in body must be of type string: "integer""#
            ]
        );
    }

    #[test]
    fn prune_removes_exactly_what_is_reported() {
        let (schema, ty) = (schema(), root());
        let mut v = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "bogus": 1}, "spec": {"replicasx": 3}});
        assert!(!unknown_fields(&schema, &ty, &v).is_empty());
        prune_unknown(&schema, &ty, &mut v);
        assert!(unknown_fields(&schema, &ty, &v).is_empty(), "{v}");
        assert_eq!(v["metadata"]["name"], "a");
        assert_eq!(v["apiVersion"], "apps/v1");
    }
}
