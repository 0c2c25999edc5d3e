//! CertificateSigningRequests: how a node that joined with a bootstrap
//! token gets its own credential.
//!
//! On create, the API server records who asked (`spec.username`, `groups`,
//! `uid`, as Kubernetes does) and checks the request. A request for the
//! `kubernetes.io/kube-apiserver-client-kubelet` signer whose subject is
//! `CN=system:node:NAME, O=system:nodes`, asking for client auth only, is
//! approved and signed at once when a bootstrapper (`system:bootstrappers`)
//! or that same node (renewal) made it: what Kubernetes' csrapproving and
//! csrsigning controllers do for node client certificates. The certificate
//! comes from the cluster CA and is valid for a year. Other requests are
//! stored unanswered (no other signer runs).

use apimachinery::validation::{ErrorType, FieldError};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::authn::{User, BOOTSTRAPPERS_GROUP, NODES_GROUP};
use crate::error::{ApiError, ApiResult};
use crate::pki::Signer;
use crate::resources::Resource;

/// The signer of node client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// How long a node client certificate is valid.
const NODE_CERT_DAYS: i64 = 365;

fn invalid(r: &Resource, name: &str, field: &str, detail: String) -> ApiError {
    crate::registry::invalid(
        r,
        name,
        &[FieldError {
            kind: ErrorType::Invalid,
            field: field.into(),
            value: None,
            detail,
        }],
    )
}

/// The subject of a PKCS#10 request: common name and organizations.
fn subject(pem: &str) -> Result<(String, Vec<String>), String> {
    let block = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateSigningRequestDer| d)
        .map_err(|e| format!("not a PEM CERTIFICATE REQUEST: {e}"))?;
    let (_, req) =
        <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(block.as_ref())
            .map_err(|e| format!("not a PKCS#10 request: {e}"))?;
    let s = &req.certification_request_info.subject;
    let cn = s
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("")
        .to_string();
    let orgs = s
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Ok((cn, orgs))
}

/// Admit a new CertificateSigningRequest from `user` (after the common
/// create preparation, so the status set here is kept).
pub fn admit(r: &Resource, user: &User, obj: &mut Value, signer: &Signer) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    obj["spec"]["username"] = json!(user.name);
    obj["spec"]["groups"] = json!(user.groups);
    if !user.uid.is_empty() {
        obj["spec"]["uid"] = json!(user.uid);
    }
    let pem = obj["spec"]["request"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            invalid(
                r,
                &name,
                "spec.request",
                "must be a base64-encoded PEM CERTIFICATE REQUEST".into(),
            )
        })?;
    let (cn, orgs) = subject(&pem).map_err(|e| invalid(r, &name, "spec.request", e))?;
    if obj["spec"]["signerName"] != KUBELET_CLIENT_SIGNER {
        return Ok(());
    }
    let node = cn.strip_prefix("system:node:").unwrap_or("");
    if node.is_empty() || orgs != [NODES_GROUP] {
        return Err(invalid(
            r,
            &name,
            "spec.request",
            format!(
                "{KUBELET_CLIENT_SIGNER} signs only subjects CN=system:node:NAME, O=system:nodes (this one: CN={cn:?}, O={orgs:?})"
            ),
        ));
    }
    let usages: Vec<&str> = obj["spec"]["usages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let allowed = ["digital signature", "key encipherment", "client auth"];
    if !usages.contains(&"client auth") || usages.iter().any(|u| !allowed.contains(u)) {
        return Err(invalid(
            r,
            &name,
            "spec.usages",
            format!("{KUBELET_CLIENT_SIGNER} issues client certificates: usages must be \"client auth\" with \"digital signature\" and \"key encipherment\", not {usages:?}"),
        ));
    }
    let bootstrapper = user.groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP);
    let renewal = user.name == cn && user.groups.iter().any(|g| g == NODES_GROUP);
    if !bootstrapper && !renewal {
        // Stored for someone else to decide; nothing here signs it later.
        return Ok(());
    }
    let cert = signer
        .client_certificate(&pem, &cn, &orgs, NODE_CERT_DAYS)
        .map_err(|e| invalid(r, &name, "spec.request", e.to_string()))?;
    let now = crate::registry::now_rfc3339();
    obj["status"] = json!({
        "conditions": [{
            "type": "Approved",
            "status": "True",
            "reason": "AutoApproved",
            "message": format!("Auto approving the client certificate of node {node} requested by {}", user.name),
            "lastUpdateTime": now,
            "lastTransitionTime": now,
        }],
        "certificate": base64::engine::general_purpose::STANDARD.encode(cert),
    });
    tracing::info!(node, requester = %user.name, "signed a node client certificate");
    Ok(())
}
