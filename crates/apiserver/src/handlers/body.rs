//! Request bodies in, responses out.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::request::Accept;

/// Response body: whole buffers or a stream (watches).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Largest request body accepted, as Kubernetes' default.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Read the whole body, refusing more than [`MAX_BODY`] bytes.
pub async fn read(body: hyper::body::Incoming) -> ApiResult<Bytes> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(MAX_BODY)),
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// The kinds of request body the server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Yaml,
    Protobuf,
    MergePatch,
    JsonPatch,
    StrategicMergePatch,
    ApplyPatch,
}

pub fn body_type(headers: &HeaderMap) -> ApiResult<BodyType> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(match mime.as_str() {
        // The Python client sends POST bodies with no content type.
        "" | "application/json" | "*/*" => BodyType::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => BodyType::Yaml,
        "application/vnd.kubernetes.protobuf" => BodyType::Protobuf,
        "application/merge-patch+json" => BodyType::MergePatch,
        "application/json-patch+json" => BodyType::JsonPatch,
        "application/strategic-merge-patch+json" => BodyType::StrategicMergePatch,
        "application/apply-patch+yaml" | "application/apply-patch+json" => BodyType::ApplyPatch,
        _ => return Err(ApiError::unsupported_media_type(ct)),
    })
}

/// Decode a body into JSON. Only objects are accepted unless `allow_array`
/// (JSON patch).
pub fn decode(kind: BodyType, bytes: &[u8], allow_array: bool) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON or YAML object",
        ));
    }
    let v: Value = match kind {
        BodyType::Protobuf => apimachinery::protobuf::decode(bytes)
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        BodyType::Yaml | BodyType::ApplyPatch => serde_yaml::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
        })?,
        _ => serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?,
    };
    match &v {
        Value::Object(_) => Ok(v),
        Value::Array(_) if allow_array => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "the request body must be a JSON object{}, not {}",
            if allow_array { " or array" } else { "" },
            type_name(&v)
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON (or YAML, when asked) response.
pub fn respond(code: StatusCode, v: &Value, accept: Accept) -> Response<Body> {
    let (ct, bytes) = if accept == Accept::Yaml {
        (
            "application/yaml",
            serde_yaml::to_string(v)
                .map(String::into_bytes)
                .unwrap_or_default(),
        )
    } else {
        (
            "application/json",
            serde_json::to_vec(v).unwrap_or_default(),
        )
    };
    raw(code, ct, bytes)
}

pub fn json(code: StatusCode, v: &Value) -> Response<Body> {
    respond(code, v, Accept::Json)
}

pub fn raw(code: StatusCode, content_type: &str, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(bytes));
    *r.status_mut() = code;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub fn error(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(code, &e.status())
}
