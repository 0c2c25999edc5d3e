//! create, update, patch (four flavours), delete and deletecollection,
//! plus the subresources that write (`status`, `scale`, `binding`,
//! `finalize`) and the review kinds answered without storage.
//!
//! Every write is checked completely before the store sees it, and reaches
//! the store as one conditional write, so a failed request changes nothing.

use std::sync::Arc;

use apimachinery::apply::{self, ApplyError, ApplyParams};
use apimachinery::patch;
use apimachinery::schema::TypeRef;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use super::body::{self, Body, BodyType};
use super::read::{render_object, versioned, Selectors};
use super::{ApiServer, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::registry::{self, meta_mut, name_of};
use crate::request::qualified;
use crate::resources::{self, Resource};
use crate::store::{StoreError, Stored, WriteOp};
use crate::webhook::Operation;

/// How often a patch is retried when someone else wrote in between.
const PATCH_RETRIES: usize = 8;

fn root_type(r: &Resource) -> TypeRef {
    TypeRef::Named(r.openapi.to_string())
}

/// Unknown-field handling: `Strict` refuses, `Warn` (the default) answers
/// with warnings, `Ignore` says nothing.
/// Unknown fields are dropped once checked: Kubernetes never stores them.
fn field_validation(ctx: &Ctx, r: &Resource, obj: &mut Value) -> ApiResult<Vec<String>> {
    let schema = crate::openapi::schema_set();
    let ty = root_type(r);
    let type_errors = apimachinery::fields::type_errors(schema, &ty, obj);
    if !type_errors.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {}",
            r.kind,
            r.version,
            r.kind,
            type_errors.join(", ")
        )));
    }
    let mode = ctx.query.get("fieldValidation").unwrap_or("Warn");
    if mode == "Ignore" {
        apimachinery::fields::prune_unknown(schema, &ty, obj);
        return Ok(Vec::new());
    }
    let unknown: Vec<String> = apimachinery::fields::unknown_fields(schema, &ty, obj)
        .into_iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match mode {
        "Strict" if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            r.kind,
            r.version,
            r.kind,
            unknown.join(", ")
        ))),
        "Strict" | "Warn" => {
            apimachinery::fields::prune_unknown(schema, &ty, obj);
            Ok(unknown)
        }
        other => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
        ))),
    }
}

pub(super) fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = HeaderValue::from_str(&v) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

/// Check (or, for clients that omit them, fill in) apiVersion and kind.
fn check_type(r: &Resource, obj: &mut Value) -> ApiResult<()> {
    let want = r.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want),
        Some(v) if v == want => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(r.kind),
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({}) for {}",
                r.kind,
                qualified(r)
            )))
        }
    }
    if !obj.get("metadata").is_none_or(Value::is_object) {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    Ok(())
}

/// The namespace in the body must agree with the URL; it defaults to it.
fn check_namespace(ctx: &Ctx, obj: &mut Value) -> ApiResult<()> {
    let r = ctx.info.resource;
    let body_ns = obj["metadata"]
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    if !r.namespaced() {
        meta_mut(obj).remove("namespace");
        return Ok(());
    }
    let url_ns = ctx.info.namespace.clone().unwrap_or_default();
    match body_ns {
        Some(ns) if !ns.is_empty() && ns != url_ns => Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({url_ns})"
        ))),
        _ => {
            meta_mut(obj).insert("namespace".into(), json!(url_ns));
            Ok(())
        }
    }
}

fn created(ctx: &Ctx, v: &Value, warnings: &[String]) -> Response<Body> {
    with_warnings(
        body::respond(StatusCode::CREATED, &render_object(ctx, v), ctx.accept),
        warnings,
    )
}

fn ok(ctx: &Ctx, v: &Value, warnings: &[String]) -> Response<Body> {
    with_warnings(
        body::respond(StatusCode::OK, &render_object(ctx, v), ctx.accept),
        warnings,
    )
}

fn success_status(r: &Resource, v: &Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name_of(v), "group": r.group, "kind": r.plural, "uid": v["metadata"]["uid"]},
    })
}

/// Objects equal but for what a no-op write would touch.
fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

impl ApiServer {
    fn now(&self) -> String {
        registry::now_rfc3339()
    }

    /// Namespaced writes need a namespace that exists and is not going away.
    /// `name` is the object being created, which the refusal names.
    fn check_namespace_open(&self, r: &Resource, ns: Option<&str>, name: &str) -> ApiResult<()> {
        let Some(ns) = ns.filter(|_| r.namespaced()) else {
            return Ok(());
        };
        let nsr = resources::by_kind("", "v1", "Namespace")
            .ok_or_else(|| ApiError::internal("namespaces not served"))?;
        let stored = self.load(nsr, None, ns)?;
        if stored.value["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            let mut err = ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                qualified(r),
            ));
            err.details = Some(json!({
                "name": name, "group": r.group, "kind": r.plural,
                "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}],
            }));
            return Err(err);
        }
        Ok(())
    }

    pub(super) async fn create(
        self: Arc<Self>,
        ctx: &Ctx,
        bytes: &[u8],
    ) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        match ctx.info.subresource.as_deref() {
            Some("binding") => return self.bind(ctx, bytes).await,
            Some("eviction") => return self.evict(ctx).await,
            Some("token") if r.kind == "ServiceAccount" => return self.token_request(ctx, bytes),
            Some(s) => {
                return Err(ApiError::method_not_allowed(format!(
                    "POST is not supported on the {s} subresource"
                )))
            }
            None => {}
        }
        let bt = body::body_type(&ctx.headers)?;
        if !matches!(bt, BodyType::Json | BodyType::Yaml | BodyType::Protobuf) {
            return Err(ApiError::unsupported_media_type(
                "patch types are for PATCH",
            ));
        }
        let mut obj = body::decode(bt, bytes, false)?;
        check_type(r, &mut obj)?;
        if r.create_only {
            let reviewed = review(&*self.store, &self.nodes, &ctx.user, r, obj)?;
            return Ok(body::respond(StatusCode::CREATED, &reviewed, ctx.accept));
        }
        let warnings = field_validation(ctx, r, &mut obj)?;
        check_namespace(ctx, &mut obj)?;
        crate::noderestriction::check_create(&ctx.user, &ctx.info, &obj)?;
        let generate = obj["metadata"]
            .get("generateName")
            .and_then(Value::as_str)
            .map(str::to_string);
        let name = name_of(&obj).to_string();
        if name.is_empty() && generate.is_none() {
            return Err(registry::invalid(
                r,
                "",
                &[apimachinery::validation::FieldError {
                    kind: apimachinery::validation::ErrorType::Required,
                    field: "metadata.name".into(),
                    value: None,
                    detail: "name or generateName is required".into(),
                }],
            ));
        }
        if obj["metadata"]
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let shown = if name.is_empty() {
            generate.clone().unwrap_or_default()
        } else {
            name.clone()
        };
        self.check_namespace_open(r, ctx.info.namespace.as_deref(), &shown)?;
        if r.group.is_empty() && r.kind == "Pod" {
            crate::admission::admit_pod(&*self.store, &shown, &mut obj)?;
        }
        registry::prepare_create(r, &mut obj);
        if r.group == "certificates.k8s.io" && r.kind == "CertificateSigningRequest" {
            let node = |name: &str| {
                let nodes = crate::resources::by_kind("", "v1", "Node")?;
                self.load(nodes, None, name)
                    .ok()
                    .map(|s| (*s.value).clone())
            };
            crate::csr::admit(r, &ctx.user, &mut obj, &self.signer, &node)?;
        }
        // Admission webhooks (webhook.rs): mutating, after built-in admission.
        self.mutating_webhooks(ctx, Operation::Create, &name, Some(&mut obj), None)
            .await?;
        let manager = ctx.field_manager();
        for attempt in 0..8 {
            let mut obj = obj.clone();
            if name.is_empty() {
                let g = generate.clone().unwrap_or_default();
                meta_mut(&mut obj).insert(
                    "name".into(),
                    json!(format!("{g}{}", registry::random_suffix())),
                );
            }
            registry::default_and_validate_create(r, &mut obj)?;
            crate::podsecurity::admit(&*self.store, r, None, name_of(&obj), None, &obj)?
                .record(ctx);
            let now = self.now();
            apply::record_update(
                None,
                &mut obj,
                &manager,
                None,
                &r.api_version(),
                &now,
                crate::openapi::schema_set(),
                &root_type(r),
            );
            let this_name = name_of(&obj).to_string();
            // Admission webhooks (webhook.rs): validating, after validation.
            self.validating_webhooks(ctx, Operation::Create, &this_name, Some(&obj), None)
                .await?;
            match self.store_new(ctx, obj).await? {
                Ok(v) => {
                    if r.kind == "Namespace" && r.group.is_empty() && !ctx.query.dry_run()? {
                        crate::namespaces::ensure_namespace_defaults(
                            &*self.store,
                            name_of(&v),
                            &self.ca_pem,
                        )
                        .await
                        .map_err(|e| {
                            ApiError::internal(format!("filling the new namespace: {e}"))
                        })?;
                    }
                    return Ok(created(ctx, &v, &warnings));
                }
                // A generated name that is taken: draw another.
                Err(StoreError::AlreadyExists) if name.is_empty() && attempt < 7 => continue,
                Err(e) => return Err(ApiError::from_store(e, &qualified(r), &this_name)),
            }
        }
        Err(ApiError::internal("could not generate a unique name"))
    }

    /// The tail of every create: allocations the kind needs (Service IPs),
    /// then the write, unless this is a dry run. The inner result is the
    /// store's, so callers can retry on a taken name.
    async fn store_new(&self, ctx: &Ctx, mut obj: Value) -> ApiResult<Result<Value, StoreError>> {
        let r = ctx.info.resource;
        let _allocation = if r.kind == "Service" && r.group.is_empty() {
            let guard = crate::services::ALLOCATION.lock().await;
            crate::services::allocate(&*self.store, &mut obj)?;
            Some(guard)
        } else {
            None
        };
        if ctx.query.dry_run()? {
            return Ok(Ok(obj));
        }
        let key = registry::key(r, ctx.info.namespace.as_deref(), name_of(&obj));
        Ok(self
            .store
            .write(WriteOp::Create { key, value: obj })
            .await
            .map(|s| (*s.value).clone()))
    }

    pub(super) async fn update(
        self: Arc<Self>,
        ctx: &Ctx,
        bytes: &[u8],
    ) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let name = ctx.info.name.clone().unwrap_or_default();
        let bt = body::body_type(&ctx.headers)?;
        if !matches!(bt, BodyType::Json | BodyType::Yaml | BodyType::Protobuf) {
            return Err(ApiError::unsupported_media_type(
                "patch types are for PATCH",
            ));
        }
        let mut new = body::decode(bt, bytes, false)?;
        if ctx.info.subresource.as_deref() == Some("scale") {
            let replicas = new["spec"]["replicas"].as_i64();
            let rv = new["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse().ok());
            return self.set_scale(ctx, replicas, rv).await;
        }
        check_type(r, &mut new)?;
        let warnings = field_validation(ctx, r, &mut new)?;
        check_namespace(ctx, &mut new)?;
        if name_of(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&new)
            )));
        }
        let old = self.load(r, ctx.info.namespace.as_deref(), &name)?;
        let expected = match new["metadata"]
            .get("resourceVersion")
            .and_then(Value::as_str)
        {
            None | Some("") => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
            ),
        };
        if expected.is_some_and(|e| e != old.rev) {
            return Err(ApiError::from_store(
                StoreError::Conflict,
                &qualified(r),
                &name,
            ));
        }
        let s = self
            .finish_update(ctx, &old, new, Some(old.rev), true)
            .await?;
        Ok(ok(ctx, &s.value, &warnings))
    }

    /// The common tail of update, patch and apply: server-owned fields,
    /// validation, managed fields, then one conditional write (or a
    /// delete, when the last finalizer of a deleted object went away).
    async fn finish_update(
        &self,
        ctx: &Ctx,
        old: &Stored,
        mut new: Value,
        expected: Option<u64>,
        track: bool,
    ) -> ApiResult<Stored> {
        let r = ctx.info.resource;
        let sub = ctx.info.subresource.as_deref().filter(|s| *s != "scale");
        let name = name_of(&old.value).to_string();
        // Admission webhooks (webhook.rs): mutating, after built-in admission.
        self.mutating_webhooks(
            ctx,
            Operation::Update,
            &name,
            Some(&mut new),
            Some(&old.value),
        )
        .await?;
        registry::prepare_update(r, &old.value, &mut new, sub);
        if sub.is_none() {
            registry::default_and_validate_update(r, &old.value, &mut new)?;
        }
        if sub == Some("approval") && r.kind == "CertificateSigningRequest" {
            if crate::csr::decides(&old.value, &new) {
                self.authorize_approval(&ctx.user, &new)?;
            }
            crate::csr::approval(r, &old.value, &mut new, &self.signer)?;
        }
        let sub_of_request = ctx.info.subresource.as_deref();
        crate::podsecurity::admit(
            &*self.store,
            r,
            sub_of_request,
            &name,
            Some(&old.value),
            &new,
        )?
        .record(ctx);
        // Admission webhooks (webhook.rs): validating, after validation.
        self.validating_webhooks(ctx, Operation::Update, &name, Some(&new), Some(&old.value))
            .await?;
        if same_object(&old.value, &new) {
            return Ok(old.clone());
        }
        if track {
            let now = self.now();
            apply::record_update(
                Some(&old.value),
                &mut new,
                &ctx.field_manager(),
                sub,
                &r.api_version(),
                &now,
                crate::openapi::schema_set(),
                &root_type(r),
            );
        }
        if ctx.query.dry_run()? {
            return Ok(Stored {
                rev: old.rev,
                value: Arc::new(new),
            });
        }
        let key = registry::key(r, ctx.info.namespace.as_deref(), &name);
        let finalized = new["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null())
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
            && !(r.kind == "Namespace"
                && new["spec"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty()))
            && !(r.kind == "Pod" && pod_awaits_node(&new));
        let op = if finalized {
            WriteOp::Delete { key, expected }
        } else {
            WriteOp::Update {
                key,
                value: new,
                expected,
            }
        };
        self.store
            .write(op)
            .await
            .map_err(|e| ApiError::from_store(e, &qualified(r), &name))
    }

    pub(super) async fn patch(
        self: Arc<Self>,
        ctx: &Ctx,
        bytes: &[u8],
    ) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let bt = body::body_type(&ctx.headers)?;
        if bt == BodyType::ApplyPatch {
            return self.apply(ctx, bytes).await;
        }
        if !matches!(
            bt,
            BodyType::MergePatch | BodyType::JsonPatch | BodyType::StrategicMergePatch
        ) {
            return Err(ApiError::unsupported_media_type(
                "PATCH needs application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml",
            ));
        }
        if ctx.query.0.contains_key("force") {
            return Err(patch_options_invalid(
                "force",
                "Forbidden: may not be specified for non-apply patch",
                "FieldValueForbidden",
            ));
        }
        let patch_doc = body::decode(bt, bytes, bt == BodyType::JsonPatch)?;
        let name = ctx.info.name.clone().unwrap_or_default();
        let scale = ctx.info.subresource.as_deref() == Some("scale");
        for _ in 0..PATCH_RETRIES {
            let old = self.load(r, ctx.info.namespace.as_deref(), &name)?;
            let base = if scale {
                scale_of(r, &old.value)
            } else {
                (*old.value).clone()
            };
            let ty = if scale {
                TypeRef::Named("io.k8s.api.autoscaling.v1.Scale".into())
            } else {
                root_type(r)
            };
            let patched = match bt {
                BodyType::MergePatch => Ok(patch::merge_patch(&base, &patch_doc)),
                BodyType::JsonPatch => patch::json_patch(&base, &patch_doc),
                _ => patch::strategic_merge_patch(
                    &base,
                    &patch_doc,
                    crate::openapi::schema_set(),
                    &ty,
                ),
            }
            .map_err(|e| patch_error(r, &name, e))?;
            if scale {
                let replicas = patched["spec"]["replicas"].as_i64();
                return self.set_scale(ctx, replicas, None).await;
            }
            let mut new = patched;
            check_type(r, &mut new)?;
            let warnings = field_validation(ctx, r, &mut new)?;
            if name_of(&new) != name {
                return Err(ApiError::bad_request(
                    "metadata.name cannot be changed by a patch",
                ));
            }
            // A resourceVersion the patch itself carries is a precondition;
            // without one, a patch that lost a race with another write is
            // applied again to the newer object, as Kubernetes does.
            let rv = patch_sets_resource_version(bt, &patch_doc)
                .then(|| {
                    new["metadata"]
                        .get("resourceVersion")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<u64>().ok())
                })
                .flatten();
            if rv.is_some_and(|v| v != old.rev) {
                return Err(ApiError::from_store(
                    StoreError::Conflict,
                    &qualified(r),
                    &name,
                ));
            }
            match self
                .finish_update(ctx, &old, new, Some(old.rev), true)
                .await
            {
                Ok(s) => return Ok(ok(ctx, &s.value, &warnings)),
                Err(e) if e.reason == "Conflict" && rv.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(retries_exhausted(r, &name))
    }

    /// Server-side apply (`application/apply-patch+yaml`): creates when the
    /// object is missing, merges by field ownership otherwise.
    async fn apply(self: Arc<Self>, ctx: &Ctx, bytes: &[u8]) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let name = ctx.info.name.clone().unwrap_or_default();
        let Some(manager) = ctx.query.get("fieldManager").map(str::to_string) else {
            return Err(patch_options_invalid(
                "fieldManager",
                "Required value: is required for apply patch",
                "FieldValueRequired",
            ));
        };
        let mut config = body::decode(BodyType::ApplyPatch, bytes, false)?;
        check_type(r, &mut config)?;
        // The main resource does not own status where a status subresource
        // exists: drop it before it is merged or tracked.
        if r.subresources.contains(&"status") && ctx.info.subresource.is_none() {
            if let Some(o) = config.as_object_mut() {
                o.remove("status");
            }
        }
        let warnings = field_validation(ctx, r, &mut config)?;
        check_namespace(ctx, &mut config)?;
        if name_of(&config) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&config)
            )));
        }
        let force = ctx.query.flag("force");
        let ty = root_type(r);
        for _ in 0..PATCH_RETRIES {
            let now = self.now();
            let av = r.api_version();
            let params = ApplyParams {
                manager: &manager,
                force,
                api_version: &av,
                now: &now,
                schema: crate::openapi::schema_set(),
                ty: &ty,
            };
            let key = registry::key(r, ctx.info.namespace.as_deref(), &name);
            let old = self
                .store
                .get(&key)
                .map_err(|e| ApiError::from_store(e, &qualified(r), &name))?;
            let merged = apply::apply(old.as_ref().map(|s| &*s.value), &config, &params)
                .map_err(|e| apply_error(r, &name, e))?;
            let Some(old) = old else {
                self.check_namespace_open(r, ctx.info.namespace.as_deref(), &name)?;
                let mut obj = merged;
                let managed = obj["metadata"].get("managedFields").cloned();
                registry::prepare_create(r, &mut obj);
                if let Some(m) = managed {
                    meta_mut(&mut obj).insert("managedFields".into(), m);
                }
                // Admission webhooks (webhook.rs), around validation.
                self.mutating_webhooks(ctx, Operation::Create, &name, Some(&mut obj), None)
                    .await?;
                registry::default_and_validate_create(r, &mut obj)?;
                crate::podsecurity::admit(&*self.store, r, None, &name, None, &obj)?.record(ctx);
                self.validating_webhooks(ctx, Operation::Create, &name, Some(&obj), None)
                    .await?;
                match self.store_new(ctx, obj).await? {
                    Ok(v) => return Ok(created(ctx, &v, &warnings)),
                    Err(StoreError::AlreadyExists) => continue,
                    Err(e) => return Err(ApiError::from_store(e, &qualified(r), &name)),
                }
            };
            match self
                .finish_update(ctx, &old, merged, Some(old.rev), false)
                .await
            {
                Ok(s) => return Ok(ok(ctx, &s.value, &warnings)),
                Err(e)
                    if e.reason == "Conflict"
                        && e.details.as_ref().is_none_or(|d| d.get("causes").is_none()) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        Err(retries_exhausted(r, &name))
    }

    pub(super) async fn delete(
        self: Arc<Self>,
        ctx: &Ctx,
        bytes: &[u8],
    ) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let name = ctx.info.name.clone().unwrap_or_default();
        let opts = delete_options(ctx, bytes)?;
        let old = self.load(r, ctx.info.namespace.as_deref(), &name)?;
        self.delete_retrying(ctx, r, old, &opts).await
    }

    /// [`Self::delete_one`], read again and retried when another write
    /// landed between the read and the delete (a node's status patch, a
    /// controller's update) — unless the client made the resourceVersion
    /// a precondition. Kubernetes' registry retries the same way, so a
    /// delete is refused with 409 only for a failed precondition.
    async fn delete_retrying(
        &self,
        ctx: &Ctx,
        r: &Resource,
        mut old: Stored,
        opts: &DeleteOptions,
    ) -> ApiResult<Response<Body>> {
        let name = name_of(&old.value).to_string();
        let ns = old.value["metadata"]["namespace"]
            .as_str()
            .map(str::to_string);
        let mut attempts = 0;
        loop {
            match self.delete_one(ctx, r, old, opts).await {
                Err(e)
                    if e.is_write_conflict() && opts.resource_version.is_none() && attempts < 8 =>
                {
                    attempts += 1;
                    old = self.load(r, ns.as_deref(), &name)?;
                }
                done => return done,
            }
        }
    }

    async fn delete_one(
        &self,
        ctx: &Ctx,
        r: &Resource,
        old: Stored,
        opts: &DeleteOptions,
    ) -> ApiResult<Response<Body>> {
        let name = name_of(&old.value).to_string();
        let q = qualified(r);
        if let Some(uid) = &opts.uid {
            if old.value["metadata"]["uid"].as_str() != Some(uid) {
                return Err(ApiError::conflict(
                    &q,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        old.value["metadata"]["uid"].as_str().unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(rv) = opts.resource_version {
            if rv != old.rev {
                return Err(ApiError::conflict(&q, &name, &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    old.rev
                )));
            }
        }
        // Admission webhooks (webhook.rs): a delete has only the old object.
        self.mutating_webhooks(ctx, Operation::Delete, &name, None, Some(&old.value))
            .await?;
        self.validating_webhooks(ctx, Operation::Delete, &name, None, Some(&old.value))
            .await?;
        let mut new = (*old.value).clone();
        let already = new["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        let grace = self.grace_period(r, &new, opts);
        let mut finalizers: Vec<Value> = new["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Orphan and Foreground hand the object to the garbage collector,
        // which removes its finalizer once dependents are dealt with.
        let propagation = match opts.propagation.as_deref() {
            Some("Orphan") => Some(crate::gc::ORPHAN),
            Some("Foreground") => Some(crate::gc::FOREGROUND),
            _ => None,
        };
        if let Some(f) = propagation.filter(|_| !already && r.kind != "Namespace") {
            if !finalizers.iter().any(|x| x == f) {
                finalizers.push(json!(f));
            }
        }
        let pending = !finalizers.is_empty()
            || (r.kind == "Namespace")
            || (r.kind == "Pod" && grace > 0 && pod_awaits_node(&new));
        let key = registry::key(r, ctx.info.namespace.as_deref(), &name);
        if !pending || (r.kind == "Pod" && grace == 0 && finalizers.is_empty()) {
            if ctx.query.dry_run()? {
                return Ok(body::json(StatusCode::OK, &success_status(r, &old.value)));
            }
            let s = self
                .store
                .write(WriteOp::Delete {
                    key,
                    expected: Some(old.rev),
                })
                .await
                .map_err(|e| ApiError::from_store(e, &q, &name))?;
            return Ok(body::json(StatusCode::OK, &success_status(r, &s.value)));
        }
        if already {
            return Ok(body::respond(
                StatusCode::OK,
                &render_object(ctx, &old.value),
                ctx.accept,
            ));
        }
        {
            let m = meta_mut(&mut new);
            let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
            m.insert(
                "deletionTimestamp".into(),
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            if !finalizers.is_empty() {
                m.insert("finalizers".into(), Value::Array(finalizers));
            }
        }
        if r.kind == "Namespace" {
            new["status"]["phase"] = json!("Terminating");
        }
        if ctx.query.dry_run()? {
            return Ok(body::respond(
                StatusCode::OK,
                &render_object(ctx, &new),
                ctx.accept,
            ));
        }
        let s = self
            .store
            .write(WriteOp::Update {
                key,
                value: new,
                expected: Some(old.rev),
            })
            .await
            .map_err(|e| ApiError::from_store(e, &q, &name))?;
        Ok(body::respond(
            StatusCode::OK,
            &render_object(ctx, &s.value),
            ctx.accept,
        ))
    }

    fn grace_period(&self, r: &Resource, obj: &Value, opts: &DeleteOptions) -> i64 {
        if r.kind != "Pod" {
            return 0;
        }
        opts.grace
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0)
    }

    pub(super) async fn delete_collection(
        self: Arc<Self>,
        ctx: &Ctx,
        bytes: &[u8],
    ) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let opts = delete_options(ctx, bytes)?;
        let sel = Selectors::from_query(ctx)?;
        let listing = self
            .store
            .list(
                &registry::prefix(r, ctx.info.namespace.as_deref()),
                None,
                None,
            )
            .map_err(|e| ApiError::from_store(e, &qualified(r), ""))?;
        let mut deleted = Vec::new();
        for s in listing.items.into_iter().filter(|s| sel.matches(&s.value)) {
            let v = s.value.clone();
            match self.delete_retrying(ctx, r, s, &opts).await {
                Ok(_) => deleted.push(versioned(r, &v)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(body::json(
            StatusCode::OK,
            &json!({
                "kind": format!("{}List", r.kind), "apiVersion": r.api_version(),
                "metadata": {"resourceVersion": self.store.revision().to_string()}, "items": deleted,
            }),
        ))
    }

    /// `pods/NAME/binding`: assign a pod to a node, once.
    async fn bind(&self, ctx: &Ctx, bytes: &[u8]) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let name = ctx.info.name.clone().unwrap_or_default();
        let binding = body::decode(body::body_type(&ctx.headers)?, bytes, false)?;
        let node = binding["target"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                registry::invalid(
                    r,
                    &name,
                    &[apimachinery::validation::FieldError {
                        kind: apimachinery::validation::ErrorType::Required,
                        field: "target.name".into(),
                        value: None,
                        detail: "a binding needs the node's name".into(),
                    }],
                )
            })?;
        let old = self.load(r, ctx.info.namespace.as_deref(), &name)?;
        if let Some(cur) = old.value["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict(
                &qualified(r),
                &name,
                &format!("pod {name} is already assigned to node \"{cur}\""),
            ));
        }
        if old.value["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            return Err(ApiError::conflict(
                &qualified(r),
                &name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        let mut new = (*old.value).clone();
        new["spec"]["nodeName"] = json!(node);
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": self.now()});
        let conds = new["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conds: Vec<Value> = conds
            .into_iter()
            .filter(|c| c["type"] != "PodScheduled")
            .collect();
        conds.push(cond);
        new["status"]["conditions"] = Value::Array(conds);
        let key = registry::key(r, ctx.info.namespace.as_deref(), &name);
        self.store
            .write(WriteOp::Update {
                key,
                value: new,
                expected: Some(old.rev),
            })
            .await
            .map_err(|e| ApiError::from_store(e, &qualified(r), &name))?;
        Ok(body::json(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    /// `pods/NAME/eviction`: a delete that respects the grace period.
    async fn evict(&self, ctx: &Ctx) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let name = ctx.info.name.clone().unwrap_or_default();
        let old = self.load(r, ctx.info.namespace.as_deref(), &name)?;
        self.delete_one(ctx, r, old, &DeleteOptions::default())
            .await?;
        Ok(body::json(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    pub(super) async fn get_scale(&self, ctx: &Ctx) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let name = ctx.info.name.clone().unwrap_or_default();
        let old = self.load(r, ctx.info.namespace.as_deref(), &name)?;
        Ok(body::json(StatusCode::OK, &scale_of(r, &old.value)))
    }

    /// Write `spec.replicas` through the scale subresource.
    async fn set_scale(
        &self,
        ctx: &Ctx,
        replicas: Option<i64>,
        expected_rv: Option<u64>,
    ) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let name = ctx.info.name.clone().unwrap_or_default();
        let Some(replicas) = replicas.filter(|n| *n >= 0) else {
            return Err(ApiError::invalid("Scale", "autoscaling", &name,
                format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: must be a non-negative integer"),
                vec![json!({"reason": "FieldValueInvalid", "message": "must be a non-negative integer", "field": "spec.replicas"})]));
        };
        for _ in 0..PATCH_RETRIES {
            let old = self.load(r, ctx.info.namespace.as_deref(), &name)?;
            if expected_rv.is_some_and(|rv| rv != old.rev) {
                return Err(ApiError::from_store(
                    StoreError::Conflict,
                    &qualified(r),
                    &name,
                ));
            }
            let mut new = (*old.value).clone();
            new["spec"]["replicas"] = json!(replicas);
            match self
                .finish_update(ctx, &old, new, Some(old.rev), true)
                .await
            {
                Ok(s) => return Ok(body::json(StatusCode::OK, &scale_of(r, &s.value))),
                Err(e) if e.reason == "Conflict" && expected_rv.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(retries_exhausted(r, &name))
    }
}

impl ApiServer {
    /// Deciding a CertificateSigningRequest needs `approve` on `signers`
    /// named for its signer (or for `DOMAIN/*`), as Kubernetes'
    /// CertificateApproval admission checks.
    fn authorize_approval(&self, user: &crate::authn::User, csr: &Value) -> ApiResult<()> {
        let signer = csr["spec"]["signerName"].as_str().unwrap_or("");
        let wildcard = signer
            .split_once('/')
            .map(|(domain, _)| format!("{domain}/*"));
        for name in std::iter::once(signer).chain(wildcard.as_deref()) {
            let a = crate::rbac::Attributes {
                verb: "approve",
                group: "certificates.k8s.io",
                resource: "signers",
                subresource: None,
                namespace: None,
                name: Some(name),
            };
            match crate::rbac::allowed_cached(&self.rbac, &*self.store, user, &a) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(ApiError::internal(format!("authorizing: {e}"))),
            }
        }
        Err(ApiError::forbidden(format!(
            "certificatesigningrequests.certificates.k8s.io \"{}\" is forbidden: user not permitted to approve requests with signerName {signer:?}",
            name_of(csr)
        )))
    }
}

/// A pod bound to a node waits for the node agent to confirm its
/// containers stopped before it disappears.
fn pod_awaits_node(pod: &Value) -> bool {
    let bound = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    bound && !finished
}

/// `autoscaling/v1` Scale view of a workload.
fn scale_of(r: &Resource, v: &Value) -> Value {
    let selector = apimachinery::selector::LabelSelector::from_json(&v["spec"]["selector"])
        .map(|s| s.to_string())
        .unwrap_or_default();
    let m = &v["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": v["spec"]["replicas"].as_i64().unwrap_or(if r.kind == "Job" { 0 } else { 1 })},
        "status": {"replicas": v["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

#[derive(Debug, Default)]
struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<u64>,
}

fn delete_options(ctx: &Ctx, bytes: &[u8]) -> ApiResult<DeleteOptions> {
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        body::decode(body::body_type(&ctx.headers)?, bytes, false)?
    };
    let propagation = body["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or(ctx.query.get("propagationPolicy").map(str::to_string));
    if let Some(p) = &propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    let orphan = body["orphanDependents"].as_bool();
    Ok(DeleteOptions {
        grace: body["gracePeriodSeconds"]
            .as_i64()
            .or(ctx.query.i64("gracePeriodSeconds")?),
        propagation: propagation.or(orphan.filter(|o| *o).map(|_| "Orphan".to_string())),
        uid: body["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok()),
    })
}

/// Every retry of a read-modify-write lost to a concurrent writer.
fn retries_exhausted(r: &Resource, name: &str) -> ApiError {
    ApiError::conflict(&qualified(r), name, "too many concurrent writes; try again")
}

/// 422 for PatchOptions, as Kubernetes' ValidatePatchOptions words it.
fn patch_options_invalid(field: &str, what: &str, reason: &str) -> ApiError {
    let detail = what.split_once(": ").map_or(what, |(_, d)| d);
    ApiError::invalid(
        "PatchOptions",
        "meta.k8s.io",
        "",
        format!("PatchOptions.meta.k8s.io \"\" is invalid: {field}: {what}"),
        vec![json!({"reason": reason, "message": detail, "field": field})],
    )
}

fn patch_error(r: &Resource, name: &str, e: patch::PatchError) -> ApiError {
    ApiError::invalid(
        r.kind,
        r.group,
        name,
        format!("{} \"{name}\" could not be patched: {e}", qualified(r)),
        vec![],
    )
}

fn apply_error(r: &Resource, name: &str, e: ApplyError) -> ApiError {
    match &e {
        ApplyError::Conflicts(cs) => {
            let causes: Vec<Value> = cs
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": c.cause_message(), "field": c.field}))
                .collect();
            let mut err = ApiError::new(409, "Conflict", e.message());
            err.details =
                Some(json!({"name": name, "group": r.group, "kind": r.plural, "causes": causes}));
            err
        }
        ApplyError::Invalid(m) => ApiError::invalid(r.kind, r.group, name, m.clone(), vec![]),
    }
}

/// SelfSubjectAccessReview / SelfSubjectRulesReview, answered by the Node
/// authorizer and RBAC for the user asking (`kubectl auth can-i`, `kubectl
/// auth can-i --list`).
fn review(
    store: &dyn crate::store::Store,
    nodes: &crate::nodeauthz::NodeGraph,
    user: &crate::authn::User,
    r: &Resource,
    mut obj: Value,
) -> ApiResult<Value> {
    let internal = |e: crate::store::StoreError| ApiError::internal(format!("authorizing: {e}"));
    // Paths open to every authenticated user (Kubernetes' system:discovery),
    // each with everything below it.
    const DISCOVERY: [&str; 7] = [
        "/api", "/apis", "/healthz", "/livez", "/readyz", "/openapi", "/version",
    ];
    let discovery = json!({
        "verbs": ["get"],
        "nonResourceURLs": DISCOVERY.iter().flat_map(|p| [p.to_string(), format!("{p}/*")]).collect::<Vec<_>>(),
    });
    match r.kind {
        // `kubectl auth whoami`: who the API server takes the caller for.
        "SelfSubjectReview" => {
            let mut info = json!({"username": user.name, "groups": user.groups});
            if !user.uid.is_empty() {
                info["uid"] = json!(user.uid);
            }
            obj["status"] = json!({"userInfo": info});
        }
        "SelfSubjectAccessReview" => {
            let ra = &obj["spec"]["resourceAttributes"];
            let mut by_node = false;
            let allowed = if ra.is_object() {
                let field = |k: &str| ra[k].as_str().filter(|s| !s.is_empty());
                let a = crate::rbac::Attributes {
                    verb: field("verb").unwrap_or(""),
                    group: field("group").unwrap_or(""),
                    resource: field("resource").unwrap_or(""),
                    subresource: field("subresource"),
                    namespace: field("namespace"),
                    name: field("name"),
                };
                by_node = crate::nodeauthz::decide(nodes, user, &a, None)
                    == crate::nodeauthz::Decision::Allow;
                by_node || crate::rbac::allowed(store, user, &a).map_err(internal)?
            } else {
                // nonResourceAttributes: discovery is open to everyone.
                let path = obj["spec"]["nonResourceAttributes"]["path"]
                    .as_str()
                    .unwrap_or("");
                user.is_master()
                    || DISCOVERY
                        .iter()
                        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
            };
            obj["status"] = if by_node {
                json!({"allowed": true})
            } else if allowed {
                json!({"allowed": true, "reason": if user.is_master() { "member of system:masters" } else { "allowed by RBAC" }})
            } else {
                json!({"allowed": false})
            };
        }
        _ => {
            let (resource_rules, non_resource) = if user.is_master() {
                (
                    vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
                    vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
                )
            } else {
                let ns = obj["spec"]["namespace"].as_str().filter(|s| !s.is_empty());
                let mut rules: Vec<Value> = crate::rbac::rules_for(store, user, ns)
                    .map_err(internal)?
                    .iter()
                    .map(crate::rbac::Rule::to_json)
                    .collect();
                rules.push(json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}));
                (rules, vec![discovery])
            };
            obj["status"] = json!({
                "resourceRules": resource_rules,
                "nonResourceRules": non_resource,
                // What the Node authorizer grants a node depends on its pods.
                "incomplete": user.node_name().is_some(),
            });
        }
    }
    meta_mut(&mut obj).insert("creationTimestamp".into(), Value::Null);
    Ok(obj)
}

impl ApiServer {
    /// `serviceaccounts/NAME/token` (TokenRequest, as `kubectl create
    /// token` and nodes send it): a signed token for the account, valid
    /// for `spec.expirationSeconds` (default one hour, at least 10
    /// minutes, at most a day). With `spec.boundObjectRef` naming a Pod or
    /// Secret of the namespace, the token is accepted only while that
    /// object exists; a pod's projected token (3607 s, what the
    /// ServiceAccount admission asks for) is extended to a year, as
    /// Kubernetes' `--service-account-extend-token-expiration` does, since
    /// it dies with the pod. A node may only ask for tokens bound to pods
    /// it runs, for their own account.
    fn token_request(&self, ctx: &Ctx, bytes: &[u8]) -> ApiResult<Response<Body>> {
        let r = ctx.info.resource;
        let ns = ctx.info.namespace.as_deref().unwrap_or("default");
        let name = ctx.info.name.as_deref().unwrap_or_default();
        let bt = body::body_type(&ctx.headers)?;
        let mut req = if bytes.is_empty() {
            json!({})
        } else {
            body::decode(bt, bytes, false)?
        };
        let sa = self.load(r, Some(ns), name)?;
        let uid = sa.value["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let audiences: Vec<String> = req["spec"]["audiences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        // The lifetime granted, which the answer's spec shows; a pod's
        // projected token then lives longer than it says, as in Kubernetes.
        let seconds = req["spec"]["expirationSeconds"]
            .as_i64()
            .unwrap_or(3600)
            .clamp(600, 86_400);
        let bound = self.token_binding(ctx, ns, name, &req["spec"]["boundObjectRef"])?;
        let mut lifetime = seconds;
        if let Some(b) = &bound {
            if b.kind == "Pod" && seconds == crate::admission::PROJECTED_TOKEN_SECONDS {
                lifetime = EXTENDED_TOKEN_SECONDS;
            }
            req["spec"]["boundObjectRef"]["uid"] = json!(b.uid);
        }
        let (token, exp) =
            self.tokens
                .issue_bound(ns, name, &uid, &audiences, lifetime, bound.as_ref());
        req["apiVersion"] = json!("authentication.k8s.io/v1");
        req["kind"] = json!("TokenRequest");
        req["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": null});
        req["spec"]["expirationSeconds"] = json!(seconds);
        if audiences.is_empty() {
            req["spec"]["audiences"] = json!([crate::authn::ISSUER]);
        }
        req["status"] = json!({
            "token": token,
            "expirationTimestamp": exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        Ok(body::respond(StatusCode::CREATED, &req, ctx.accept))
    }

    /// The object a TokenRequest binds its token to, checked: it exists in
    /// the namespace with the uid given (if any); a pod runs as the
    /// account; and a node asks only for pods bound to itself (Kubernetes'
    /// NodeRestriction and Node authorizer).
    fn token_binding(
        &self,
        ctx: &Ctx,
        ns: &str,
        account: &str,
        reference: &Value,
    ) -> ApiResult<Option<crate::authn::BoundObject>> {
        let node = ctx.user.node_name();
        let forbidden = |why: &str| {
            ApiError::forbidden(format!("serviceaccounts {account:?} is forbidden: {why}"))
        };
        if reference.is_null() {
            return match node {
                Some(_) => Err(forbidden("node requested token not bound to a pod")),
                None => Ok(None),
            };
        }
        let kind = reference["kind"].as_str().unwrap_or_default();
        let object = reference["name"].as_str().unwrap_or_default();
        if !matches!(kind, "Pod" | "Secret") {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of kind {kind:?}: only Pod and Secret are supported"
            )));
        }
        if node.is_some() && kind != "Pod" {
            return Err(forbidden("node requested token not bound to a pod"));
        }
        let r = crate::resources::by_kind("", "v1", kind)
            .ok_or_else(|| ApiError::internal(format!("{kind} is not served")))?;
        let stored = self.load(r, Some(ns), object)?;
        let uid = stored.value["metadata"]["uid"].as_str().unwrap_or_default();
        if let Some(want) = reference["uid"].as_str().filter(|u| !u.is_empty()) {
            if want != uid {
                return Err(ApiError::conflict(
                    r.plural,
                    object,
                    &format!("the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"),
                ));
            }
        }
        if kind == "Pod" {
            let spec = &stored.value["spec"];
            if spec["serviceAccountName"].as_str().unwrap_or("default") != account {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
                )));
            }
            if let Some(node) = node {
                if spec["nodeName"].as_str() != Some(node) {
                    return Err(forbidden(
                        "node requested token bound to a pod scheduled on a different node",
                    ));
                }
            }
        }
        Ok(Some(crate::authn::BoundObject {
            kind: kind.to_string(),
            name: object.to_string(),
            uid: uid.to_string(),
        }))
    }
}

/// A pod's projected token lives a year (it dies with its pod first).
const EXTENDED_TOKEN_SECONDS: i64 = 365 * 24 * 3600;

/// Whether a patch document names `metadata.resourceVersion` (making it a
/// precondition of the patch).
fn patch_sets_resource_version(bt: BodyType, patch: &Value) -> bool {
    match bt {
        BodyType::JsonPatch => patch.as_array().is_some_and(|ops| {
            ops.iter()
                .any(|op| op["path"].as_str() == Some("/metadata/resourceVersion"))
        }),
        _ => patch["metadata"].get("resourceVersion").is_some(),
    }
}

#[cfg(test)]
mod patch_precondition_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_resource_version_in_the_patch_is_a_precondition() {
        // kubectl scale / set image send no resourceVersion: their patch is
        // re-applied after a conflicting write instead of failing with 409.
        let merge = json!({"spec": {"replicas": 3}});
        assert!(!patch_sets_resource_version(BodyType::MergePatch, &merge));
        let pinned = json!({"metadata": {"resourceVersion": "12"}, "spec": {}});
        assert!(patch_sets_resource_version(
            BodyType::StrategicMergePatch,
            &pinned
        ));
        let ops = json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]);
        assert!(!patch_sets_resource_version(BodyType::JsonPatch, &ops));
        let ops = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "7"}]);
        assert!(patch_sets_resource_version(BodyType::JsonPatch, &ops));
    }
}
