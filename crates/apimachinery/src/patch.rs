//! PLACEHOLDER until the patch module lands.
use crate::schema::{SchemaSet, TypeRef};
use serde_json::Value;
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    Invalid(String),
}
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let _ = patch;
    target.clone()
}
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, PatchError> {
    let _ = ops;
    Ok(target.clone())
}
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    schema: &SchemaSet,
    ty: &TypeRef,
) -> Result<Value, PatchError> {
    let _ = (patch, schema, ty);
    Ok(target.clone())
}
