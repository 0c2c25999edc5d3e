//! get and list.

use std::sync::Arc;

use apimachinery::selector::{FieldSelector, LabelSelector};
use base64::Engine;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::body::{self, Body};
use super::{ApiServer, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::registry;
use crate::request::Accept;
use crate::resources::Resource;
use crate::store::Stored;

/// Label and field selectors of a list or watch.
pub struct Selectors {
    pub labels: Option<LabelSelector>,
    pub fields: Option<FieldSelector>,
}

impl Selectors {
    pub fn from_query(ctx: &Ctx) -> ApiResult<Selectors> {
        let r = ctx.info.resource;
        let labels = match ctx.query.get("labelSelector") {
            Some(s) => {
                Some(LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?)
            }
            None => None,
        };
        let fields = match ctx.query.get("fieldSelector") {
            Some(s) => {
                let f =
                    FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                f.check_supported(r.group, r.kind)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(f)
            }
            None => None,
        };
        Ok(Selectors { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.as_ref().is_none_or(|l| l.matches_object(obj))
            && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }
}

/// Continue tokens: the revision of the first page and the last key sent.
fn encode_continue(rev: u64, key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rev, "start": key}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String)> {
    let bad =
        || ApiError::bad_request("continue key is not valid: resend the list request without it");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["start"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

/// The object with `apiVersion` and `kind` of the version served.
pub fn versioned(r: &Resource, v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), json!(r.api_version()));
        o.insert("kind".into(), json!(r.kind));
    }
    v
}

fn partial_metadata(v: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": v.get("metadata").cloned().unwrap_or(json!({}))})
}

/// Render one object in the negotiated shape.
pub fn render_object(ctx: &Ctx, v: &Value) -> Value {
    let r = ctx.info.resource;
    match ctx.accept {
        Accept::Table { .. } => table(
            ctx,
            std::slice::from_ref(v),
            json!({"resourceVersion": v["metadata"]["resourceVersion"]}),
        ),
        Accept::Metadata => partial_metadata(v),
        Accept::Json | Accept::Yaml => versioned(r, v),
    }
}

fn table(ctx: &Ctx, items: &[Value], list_meta: Value) -> Value {
    let r = ctx.info.resource;
    let include = ctx.query.get("includeObject").unwrap_or("Metadata");
    let items: Vec<Value> = items.iter().map(|v| versioned(r, v)).collect();
    let mut t = apimachinery::table::table(
        r.group,
        r.kind,
        &items,
        list_meta,
        include,
        chrono::Utc::now(),
    );
    if let Accept::Table { v1beta1: true } = ctx.accept {
        t["apiVersion"] = json!("meta.k8s.io/v1beta1");
    }
    t
}

impl ApiServer {
    pub(super) fn load(&self, r: &Resource, ns: Option<&str>, name: &str) -> ApiResult<Stored> {
        let key = registry::key(r, ns, name);
        let q = crate::request::qualified(r);
        self.store
            .get(&key)
            .map_err(|e| ApiError::from_store(e, &q, name))?
            .ok_or_else(|| ApiError::not_found(&q, name))
    }

    pub(super) async fn get(self: Arc<Self>, ctx: &Ctx) -> ApiResult<Response<Body>> {
        let info = &ctx.info;
        let name = info.name.as_deref().unwrap_or("");
        match info.subresource.as_deref() {
            Some("scale") => return self.get_scale(ctx).await,
            Some("log") => return self.pod_log(ctx).await,
            Some("status") | None => {}
            Some(other) => {
                return Err(ApiError::method_not_allowed(format!(
                    "GET is not supported on {other}"
                )))
            }
        }
        let stored = self.load(info.resource, info.namespace.as_deref(), name)?;
        Ok(body::respond(
            StatusCode::OK,
            &render_object(ctx, &stored.value),
            ctx.accept,
        ))
    }

    pub(super) fn list(self: Arc<Self>, ctx: &Ctx) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let sel = Selectors::from_query(ctx)?;
        let prefix = registry::prefix(r, ctx.info.namespace.as_deref());
        let limit = ctx
            .query
            .u64("limit")?
            .filter(|l| *l > 0)
            .map(|l| l as usize);
        let (first_rev, after) = match ctx.query.get("continue") {
            Some(tok) => {
                let (rev, key) = decode_continue(tok)?;
                (Some(rev), Some(key))
            }
            None => (None, None),
        };
        // Page through the store until `limit` matching objects are found,
        // so that selective lists still fill their pages.
        let mut items: Vec<Value> = Vec::new();
        let mut cursor = after;
        let mut rev;
        let mut more;
        loop {
            let want = limit.map(|l| l - items.len());
            let listing = self
                .store
                .list(&prefix, cursor.as_deref(), want)
                .map_err(|e| ApiError::from_store(e, &ctx.info.qualified(), ""))?;
            rev = listing.rev;
            items.extend(
                listing
                    .items
                    .iter()
                    .filter(|s| sel.matches(&s.value))
                    .map(|s| (*s.value).clone()),
            );
            more = listing.continue_after.clone();
            match (&more, limit) {
                (Some(k), Some(l)) if items.len() < l => cursor = Some(k.clone()),
                _ => break,
            }
        }
        let rev = first_rev.unwrap_or(rev);
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if let Some(k) = &more {
            meta["continue"] = json!(encode_continue(rev, k));
        }
        let out = match ctx.accept {
            Accept::Table { .. } => table(ctx, &items, meta),
            Accept::Metadata => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": items.iter().map(partial_metadata).collect::<Vec<_>>(),
            }),
            Accept::Json | Accept::Yaml => json!({
                "kind": format!("{}List", r.kind),
                "apiVersion": r.api_version(),
                "metadata": meta,
                "items": items.iter().map(|v| versioned(r, v)).collect::<Vec<_>>(),
            }),
        };
        Ok(body::respond(StatusCode::OK, &out, ctx.accept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/core/pods/default/web-7");
        assert_eq!(
            decode_continue(&t).expect("decode"),
            (42, "/core/pods/default/web-7".to_string())
        );
        assert_eq!(
            decode_continue("not-a-token!").expect_err("garbage").code,
            400
        );
    }
}
