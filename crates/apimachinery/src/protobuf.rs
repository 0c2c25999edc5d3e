//! PLACEHOLDER until the protobuf module lands.
use serde_json::Value;
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf bodies are not supported yet")]
    Unsupported,
}
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let _ = body;
    Err(ProtobufError::Unsupported)
}
pub fn is_protobuf_content_type(ct: &str) -> bool {
    ct.starts_with("application/vnd.kubernetes.protobuf")
}
