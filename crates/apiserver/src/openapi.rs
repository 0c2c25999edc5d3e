//! PLACEHOLDER until the openapi module lands.
use apimachinery::schema::SchemaSet;
use serde_json::{json, Value};
pub fn schema_set() -> &'static SchemaSet {
    static S: std::sync::OnceLock<SchemaSet> = std::sync::OnceLock::new();
    S.get_or_init(SchemaSet::default)
}
pub fn root_document() -> Value {
    json!({"paths": {}})
}
pub fn group_version_document(path: &str) -> Option<&'static Value> {
    let _ = path;
    None
}
