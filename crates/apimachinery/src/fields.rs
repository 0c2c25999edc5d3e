//! PLACEHOLDER until the fields module lands.
use crate::schema::{SchemaSet, TypeRef};
use serde_json::Value;
pub fn unknown_fields(schema: &SchemaSet, ty: &TypeRef, obj: &Value) -> Vec<String> {
    let _ = (schema, ty, obj);
    vec![]
}
pub fn type_errors(schema: &SchemaSet, ty: &TypeRef, obj: &Value) -> Vec<String> {
    let _ = (schema, ty, obj);
    vec![]
}
