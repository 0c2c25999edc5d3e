//! PLACEHOLDER until the apply module lands.
use crate::schema::{SchemaSet, TypeRef};
use serde_json::Value;
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub field: String,
}
pub enum ApplyError {
    Conflicts(Vec<Conflict>),
    Invalid(String),
}
impl ApplyError {
    pub fn message(&self) -> String {
        String::new()
    }
}
pub struct ApplyParams<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub api_version: &'a str,
    pub now: &'a str,
    pub schema: &'a SchemaSet,
    pub ty: &'a TypeRef,
}
pub fn apply(live: Option<&Value>, config: &Value, p: &ApplyParams) -> Result<Value, ApplyError> {
    let _ = (live, p);
    Ok(config.clone())
}
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
    let _ = (old, new, manager, subresource, api_version, now, schema, ty);
}
