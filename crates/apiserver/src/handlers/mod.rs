//! The HTTP surface: routing, authentication and the generic REST verbs.
//!
//! One set of handlers serves every kind; per-kind differences come from
//! [`crate::registry`] and the resource table. Reads ([`read`]) and watches
//! ([`watch`]) go straight to the store; writes ([`write`]) run the
//! pipeline decode → defaults → validation → managed fields → store, and
//! nothing is written unless every step passed.

pub mod body;
mod discovery;
mod proxy;
mod read;
mod watch;
mod write;

use std::sync::Arc;

use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::request::{Accept, Query, RequestInfo, Verb};
use crate::store::Store;
use body::Body;

/// The version skiff reports. kubectl's dispatcher picks the matching
/// `kubectl.1.<minor>`, so this decides which client users get.
pub const KUBE_MINOR: &str = "33";

/// Shared state of the API server.
pub struct ApiServer {
    pub store: Arc<dyn Store>,
    pub admin_token: String,
    /// Where mutating requests are recorded, when auditing is on.
    pub audit: Option<crate::audit::Audit>,
    /// Issues and verifies ServiceAccount tokens.
    pub tokens: Arc<crate::authn::Tokens>,
    /// RBAC bindings and roles in memory.
    pub rbac: Arc<crate::rbac::Cache>,
    /// Which objects each node's pods use, for the Node authorizer.
    pub nodes: Arc<crate::nodeauthz::NodeGraph>,
    /// Users of `--token-auth-file`.
    pub static_tokens: crate::authn::StaticTokens,
    /// TLS to node agents: the node client certificate, and the cluster
    /// CA their serving certificates must chain to.
    pub node_client: Arc<crate::pki::NodeClient>,
    /// Signs node certificates (CertificateSigningRequests).
    pub signer: Arc<crate::pki::Signer>,
    /// The cluster CA (PEM), published in every namespace's
    /// `kube-root-ca.crt`.
    pub ca_pem: String,
}

/// Everything a handler needs to know about one resource request.
pub struct Ctx {
    /// Who is asking.
    pub user: crate::authn::User,
    pub info: RequestInfo,
    pub query: Query,
    pub accept: Accept,
    pub headers: HeaderMap,
    /// `Warning` headers for the answer: what admission (Pod Security,
    /// webhooks) said while the request ran.
    pub warnings: std::sync::Mutex<Vec<String>>,
    /// Annotations admission adds to the request's audit event.
    pub audit_annotations: crate::audit::Annotations,
}

impl Ctx {
    /// The field manager of a write: `fieldManager`, else the client's
    /// user agent up to its first `/`, as Kubernetes does.
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.to_string();
        }
        let ua = self
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        ua.split('/').next().unwrap_or("unknown").to_string()
    }
}

impl ApiServer {
    /// Answer one request. `client_cert` is the user of the connection's
    /// verified client certificate, if it presented one.
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: Option<std::net::SocketAddr>,
        client_cert: Option<crate::authn::User>,
    ) -> Result<Response<Body>, std::convert::Infallible> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let user = self.authenticate(req.headers()).or(client_cert);
        let annotations = crate::audit::Annotations::default();
        req.extensions_mut().insert(annotations.clone());
        let audited = self
            .audit
            .as_ref()
            .filter(|_| crate::audit::Audit::audits(&method))
            .map(|_| {
                let ua = req
                    .headers()
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                (req.uri().clone(), ua, user.clone(), chrono::Utc::now())
            });
        let resp = match self.clone().route(req, user).await {
            Ok(r) => r,
            Err(e) => {
                if e.code >= 500 {
                    tracing::warn!(%method, %path, error = %e, "request failed");
                }
                body::error(&e)
            }
        };
        tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
        if let (Some(audit), Some((uri, ua, user, received))) = (&self.audit, audited) {
            let trimmed = path.trim_end_matches('/');
            let query = Query::parse(uri.query());
            let info = RequestInfo::parse(&method, trimmed, &query).ok().flatten();
            audit.record(&crate::audit::Record {
                method: &method,
                uri: &uri,
                info: info.as_ref(),
                user: user.as_ref().map(|u| u.name.as_str()),
                peer,
                user_agent: ua.as_deref(),
                received,
                code: resp.status().as_u16(),
                annotations: annotations.snapshot(),
            });
        }
        Ok(resp)
    }

    /// The user a request's bearer token names: the admin, or a
    /// ServiceAccount whose token verifies and whose account still exists
    /// with the uid the token names.
    fn authenticate(&self, headers: &HeaderMap) -> Option<crate::authn::User> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())?;
        let token = auth.strip_prefix("Bearer ")?.trim();
        if crate::authn::constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            return Some(crate::authn::User::admin());
        }
        if let Some(user) = self.static_tokens.user(token) {
            return Some(user);
        }
        if let Some((id, _)) = crate::authn::parse_bootstrap_token(token) {
            let secrets = crate::resources::by_kind("", "v1", "Secret")?;
            let stored = self
                .store
                .get(&crate::registry::key(
                    secrets,
                    Some("kube-system"),
                    &format!("bootstrap-token-{id}"),
                ))
                .ok()??;
            let user = crate::authn::bootstrap_user(token, &stored.value, chrono::Utc::now());
            if user.is_none() {
                tracing::debug!(
                    id,
                    "bootstrap token refused (unknown, expired or not for authentication)"
                );
            }
            return user;
        }
        let claims = match self.tokens.verify(token) {
            Ok(c) => c,
            Err(why) => {
                tracing::debug!(%why, "bearer token refused");
                return None;
            }
        };
        let sa = crate::resources::by_kind("", "v1", "ServiceAccount")?;
        let stored = self
            .store
            .get(&crate::registry::key(
                sa,
                Some(&claims.namespace),
                &claims.name,
            ))
            .ok()??;
        if stored.value["metadata"]["uid"].as_str() != Some(claims.uid.as_str()) {
            tracing::debug!(account = %claims.name, "token of a deleted ServiceAccount");
            return None;
        }
        if let Some(b) = &claims.bound {
            if let Err(why) = self.bound_object_alive(&claims.namespace, b) {
                tracing::debug!(account = %claims.name, %why, "bound token refused");
                return None;
            }
        }
        Some(crate::authn::User::service_account(
            &claims.namespace,
            &claims.name,
            &claims.uid,
        ))
    }

    /// Whether the object a token is bound to still stands: same uid and,
    /// for a pod, a deletion not yet due (a terminating pod keeps its
    /// token through its grace period, as in Kubernetes).
    fn bound_object_alive(&self, ns: &str, b: &crate::authn::BoundObject) -> Result<(), String> {
        let r = crate::resources::by_kind("", "v1", &b.kind)
            .ok_or_else(|| format!("tokens cannot be bound to {}", b.kind))?;
        let stored = self
            .store
            .get(&crate::registry::key(r, Some(ns), &b.name))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} {ns}/{} is gone", b.kind, b.name))?;
        let meta = &stored.value["metadata"];
        if meta["uid"].as_str() != Some(b.uid.as_str()) {
            return Err(format!("{} {ns}/{} was replaced", b.kind, b.name));
        }
        let due = meta["deletionTimestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t < chrono::Utc::now());
        if due {
            return Err(format!("{} {ns}/{} has been deleted", b.kind, b.name));
        }
        Ok(())
    }

    async fn route(
        self: Arc<Self>,
        req: Request<Incoming>,
        user: Option<crate::authn::User>,
    ) -> ApiResult<Response<Body>> {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        match path.as_str() {
            "/healthz" | "/livez" | "/readyz" => {
                return Ok(body::raw(StatusCode::OK, "text/plain", "ok"))
            }
            "/version" => return Ok(body::json(StatusCode::OK, &version())),
            _ => {}
        }
        // Joining nodes read the cluster CA before they have credentials.
        let cluster_info = req.method() == Method::GET
            && path
                == format!(
                    "/api/v1/namespaces/kube-public/configmaps/{}",
                    crate::namespaces::CLUSTER_INFO
                );
        let user = match user {
            Some(u) => u,
            None if cluster_info => crate::authn::User::anonymous(),
            None => return Err(ApiError::unauthorized()),
        };
        let accept_header = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        if req.method() == Method::GET {
            if let Some(resp) = discovery_route(&segs, accept_header.as_deref()) {
                return Ok(resp);
            }
        }
        let query = Query::parse(req.uri().query());
        let Some(info) = RequestInfo::parse(req.method(), &path, &query)? else {
            return Err(ApiError::not_found_path(&path));
        };
        if info.resource.plural == "pods"
            && info.resource.group.is_empty()
            && info.subresource.as_deref() == Some("exec")
            && info.name.is_some()
        {
            // Running a command is `create` on pods/exec whatever the
            // method (WebSocket clients send GET), as Kubernetes now
            // authorizes it.
            let mut check = info.clone();
            check.verb = Verb::Create;
            self.authorize(&user, &check, None)?;
            return self.pod_exec(req, &info, &query).await;
        }
        if !(cluster_info && user.name == crate::authn::ANONYMOUS) {
            // Node, then RBAC, as `--authorization-mode=Node,RBAC`.
            let node = self
                .nodes
                .authorize(
                    &*self.store,
                    &user,
                    &attributes(&info),
                    query.get("fieldSelector"),
                )
                .await;
            if node != crate::nodeauthz::Decision::Allow {
                self.authorize(&user, &info, node.reason())?;
            }
        }
        crate::noderestriction::check(&*self.store, &user, &info)?;
        if info.resource.group == "rbac.authorization.k8s.io"
            && !matches!(info.verb, Verb::Get | Verb::List | Verb::Watch)
        {
            self.rbac.note_write();
        }
        let accept = Accept::negotiate(accept_header.as_deref())?;
        let (parts, incoming) = req.into_parts();
        let ctx = Ctx {
            user,
            info,
            query,
            accept,
            headers: parts.headers,
            warnings: Default::default(),
            audit_annotations: parts
                .extensions
                .get::<crate::audit::Annotations>()
                .cloned()
                .unwrap_or_default(),
        };
        let resp = match ctx.info.verb {
            Verb::Get => self.get(&ctx).await,
            Verb::List => self.list(&ctx),
            Verb::Watch => self.watch(&ctx),
            Verb::Create => {
                let bytes = body::read(incoming).await?;
                self.create(&ctx, &bytes).await
            }
            Verb::Update => {
                let bytes = body::read(incoming).await?;
                self.update(&ctx, &bytes).await
            }
            Verb::Patch => {
                let bytes = body::read(incoming).await?;
                self.patch(&ctx, &bytes).await
            }
            Verb::Delete => {
                let bytes = body::read(incoming).await?;
                self.delete(&ctx, &bytes).await
            }
            Verb::DeleteCollection => {
                let bytes = body::read(incoming).await?;
                self.delete_collection(&ctx, &bytes).await
            }
        };
        let warnings = std::mem::take(&mut *ctx.warnings.lock().unwrap_or_else(|e| e.into_inner()));
        if warnings.is_empty() {
            return resp;
        }
        // Warnings reach the client with a refusal too, as in Kubernetes.
        Ok(write::with_warnings(
            resp.unwrap_or_else(|e| body::error(&e)),
            &warnings,
        ))
    }
}

impl ApiServer {
    /// RBAC: 403 with Kubernetes' message unless a rule allows the request.
    /// Access reviews about oneself are open to every user, as Kubernetes'
    /// `system:basic-user` role makes them. `reason` is why an earlier
    /// authorizer (Node) did not allow it, appended to the refusal.
    fn authorize(
        &self,
        user: &crate::authn::User,
        info: &RequestInfo,
        reason: Option<&str>,
    ) -> ApiResult<()> {
        let r = info.resource;
        if user.is_master()
            || (matches!(r.group, "authorization.k8s.io" | "authentication.k8s.io")
                && r.plural.starts_with("selfsubject"))
        {
            return Ok(());
        }
        let a = attributes(info);
        match crate::rbac::allowed_cached(&self.rbac, &*self.store, user, &a) {
            Ok(true) => Ok(()),
            Ok(false) => {
                let mut message = crate::rbac::forbidden_message(user, &a);
                if let Some(why) = reason {
                    message = format!("{message}: {why}");
                }
                let mut err = ApiError::forbidden(message);
                err.details =
                    Some(json!({"name": a.name.unwrap_or(""), "group": r.group, "kind": r.plural}));
                Err(err)
            }
            Err(e) => Err(ApiError::internal(format!("authorizing: {e}"))),
        }
    }
}

/// What a request does, as authorizers see it.
fn attributes(info: &RequestInfo) -> crate::rbac::Attributes<'_> {
    let r = info.resource;
    crate::rbac::Attributes {
        verb: info.verb.as_str(),
        group: r.group,
        resource: r.plural,
        subresource: info.subresource.as_deref(),
        namespace: info.namespace.as_deref().filter(|_| r.namespaced()),
        name: info.name.as_deref(),
    }
}

fn discovery_route(segs: &[&str], accept: Option<&str>) -> Option<Response<Body>> {
    match segs {
        ["api"] => Some(match discovery::aggregated_version(accept) {
            Some(v) => discovery::aggregated(true, v),
            None => discovery::api_versions(),
        }),
        ["apis"] => Some(match discovery::aggregated_version(accept) {
            Some(v) => discovery::aggregated(false, v),
            None => discovery::api_group_list(),
        }),
        ["api", v] => discovery::resource_list("", v),
        ["apis", g] => discovery::api_group(g),
        ["apis", g, v] => discovery::resource_list(g, v),
        // kubectl 1.27 and 1.28 fetch the v2 document before anything else
        // and fail on a 404; an empty protobuf document decodes as an empty
        // spec, after which they use the v3 documents.
        ["openapi", "v2"] => Some(body::raw(
            StatusCode::OK,
            crate::openapi::OPENAPI_V2_CONTENT_TYPE,
            bytes::Bytes::new(),
        )),
        ["openapi", "v3"] => Some(body::json(StatusCode::OK, &crate::openapi::root_document())),
        ["openapi", "v3", rest @ ..] => {
            let doc = crate::openapi::group_version_document(&rest.join("/"));
            Some(match doc {
                Some(d) => body::json(StatusCode::OK, d),
                None => body::error(&ApiError::not_found_path("")),
            })
        }
        _ => None,
    }
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-skiff.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

/// The architecture as Kubernetes names it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
