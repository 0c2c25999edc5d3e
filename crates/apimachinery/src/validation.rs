//! PLACEHOLDER until the validation module lands.
use serde_json::Value;
pub enum ErrorType {
    Required,
    Invalid,
}
pub struct FieldError {
    pub kind: ErrorType,
    pub field: String,
    pub value: Option<Value>,
    pub detail: String,
}
impl FieldError {
    pub fn reason(&self) -> &'static str {
        "FieldValueInvalid"
    }
}
impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.detail)
    }
}
pub fn invalid_message(kind_group: &str, name: &str, errs: &[FieldError]) -> String {
    format!(
        "{kind_group} \"{name}\" is invalid: {}",
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
pub fn default_object(group: &str, kind: &str, obj: &mut Value) {
    let _ = (group, kind, obj);
}
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let _ = (group, kind, obj);
    vec![]
}
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let _ = (group, kind, old, new);
    vec![]
}
