//! PLACEHOLDER until the selector module lands.
use serde_json::Value;
#[derive(Debug, thiserror::Error)]
pub enum SelectorError {
    #[error("{0}")]
    Invalid(String),
}
#[derive(Debug, Clone, Default)]
pub struct LabelSelector;
impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let _ = s;
        Ok(LabelSelector)
    }
    pub fn from_json(v: &Value) -> Result<Self, SelectorError> {
        let _ = v;
        Ok(LabelSelector)
    }
    pub fn matches_object(&self, obj: &Value) -> bool {
        let _ = obj;
        true
    }
    pub fn is_empty(&self) -> bool {
        true
    }
}
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}
#[derive(Debug, Clone, Default)]
pub struct FieldSelector;
impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let _ = s;
        Ok(FieldSelector)
    }
    pub fn check_supported(&self, group: &str, kind: &str) -> Result<(), SelectorError> {
        let _ = (group, kind);
        Ok(())
    }
    pub fn matches(&self, obj: &Value) -> bool {
        let _ = obj;
        true
    }
}
