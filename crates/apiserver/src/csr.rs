//! CertificateSigningRequests: how nodes get their credentials from the
//! cluster CA.
//!
//! On create, the API server records who asked (`spec.username`, `groups`,
//! `uid`, as Kubernetes does) and checks the request against its signer.
//! skiff runs two signers, both from the cluster CA, valid a year (or
//! `spec.expirationSeconds`, if shorter):
//!
//! - `kubernetes.io/kube-apiserver-client-kubelet`, node client
//!   certificates `CN=system:node:NAME, O=system:nodes` for client auth.
//!   Approved and signed at once when a bootstrapper
//!   (`system:bootstrappers`) or that same node (renewal) asks: what
//!   Kubernetes' csrapproving controller does.
//! - `kubernetes.io/kubelet-serving`, node serving certificates, same
//!   subject, for server auth, naming the node's addresses. Approved and
//!   signed at once only when the node itself asks (`system:node:NAME`)
//!   and every name in it is one its Node object reports: IP SANs among its
//!   `InternalIP`/`ExternalIP` addresses, DNS SANs among its `Hostname`,
//!   `InternalDNS` and `ExternalDNS` ones. The node writes those addresses
//!   itself (NodeRestriction limits it to its own Node), so the rule
//!   trusts a node about where it is; what it cannot do is get a
//!   certificate with another node's name, which is what the API server
//!   checks when it connects ([`crate::pki::NodeClient`]). Kubernetes
//!   leaves these requests to an external approver; anything outside the
//!   rule stays pending here too.
//!
//! A pending request is decided through the `approval` subresource
//! (`kubectl certificate approve|deny`), by a user allowed to `approve`
//! `signers` of its signer name, as Kubernetes' CertificateApproval
//! admission checks. An approved request for one of the two signers is
//! signed then, or marked `Failed` if its signer would not issue it.
//! Requests for other signers are kept as they are: nothing signs them.

use std::net::IpAddr;
use std::time::Duration;

use apimachinery::validation::{ErrorType, FieldError};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::authn::{User, BOOTSTRAPPERS_GROUP, NODES_GROUP};
use crate::error::{ApiError, ApiResult};
use crate::pki::{Profile, Signer};
use crate::resources::Resource;

/// The signer of node client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of node serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// How long a node certificate is valid (kube-controller-manager's
/// `--cluster-signing-duration` default).
const NODE_CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// The shortest `spec.expirationSeconds` honoured, as in Kubernetes.
const MIN_EXPIRATION_SECONDS: u64 = 600;

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

/// What a PKCS#10 request asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Request {
    common_name: String,
    organizations: Vec<String>,
    ips: Vec<IpAddr>,
    dns_names: Vec<String>,
    /// Names of other kinds (e-mail, URI, …), which no node certificate
    /// carries.
    other_names: Vec<String>,
}

fn parse_request(pem: &str) -> Result<Request, String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let block = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateSigningRequestDer| d)
        .map_err(|e| format!("not a PEM CERTIFICATE REQUEST: {e}"))?;
    let (_, req) =
        <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(block.as_ref())
            .map_err(|e| format!("not a PKCS#10 request: {e}"))?;
    let s = &req.certification_request_info.subject;
    let mut out = Request {
        common_name: s
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("")
            .to_string(),
        organizations: s
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect(),
        ..Request::default()
    };
    for ext in req.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = ext else {
            continue;
        };
        for n in &san.general_names {
            match n {
                GeneralName::DNSName(d) => out.dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
                    Ok(v4) => out.ips.push(IpAddr::from(v4)),
                    Err(_) => match <[u8; 16]>::try_from(*b) {
                        Ok(v6) => out.ips.push(IpAddr::from(v6)),
                        Err(_) => return Err(format!("an IP SAN of {} bytes", b.len())),
                    },
                },
                other => out.other_names.push(other.to_string()),
            }
        }
    }
    Ok(out)
}

/// What the request's signer would issue, or why it will not. `None` for
/// signers skiff does not run.
fn profile(
    signer: &str,
    req: &Request,
    usages: &[&str],
    expiration_seconds: Option<u64>,
) -> Option<Result<Profile, String>> {
    let server = match signer {
        KUBELET_CLIENT_SIGNER => false,
        KUBELET_SERVING_SIGNER => true,
        _ => return None,
    };
    Some(node_profile(
        server,
        signer,
        req,
        usages,
        expiration_seconds,
    ))
}

fn node_profile(
    server: bool,
    signer: &str,
    req: &Request,
    usages: &[&str],
    expiration_seconds: Option<u64>,
) -> Result<Profile, String> {
    let (cn, orgs) = (&req.common_name, &req.organizations);
    let node = cn.strip_prefix("system:node:").unwrap_or("");
    if node.is_empty() || orgs.as_slice() != [NODES_GROUP] {
        return Err(format!(
            "{signer} signs only subjects CN=system:node:NAME, O=system:nodes (this one: CN={cn:?}, O={orgs:?})"
        ));
    }
    let auth = if server { "server auth" } else { "client auth" };
    let allowed = ["digital signature", "key encipherment", auth];
    if !usages.contains(&auth) || usages.iter().any(|u| !allowed.contains(u)) {
        let what = if server { "serving" } else { "client" };
        return Err(format!(
            "{signer} issues {what} certificates: usages must be \"{auth}\" with \"digital signature\" and \"key encipherment\", not {usages:?}"
        ));
    }
    if !req.other_names.is_empty() {
        return Err(format!(
            "{signer} issues no e-mail or URI names: {:?}",
            req.other_names
        ));
    }
    if server && req.ips.is_empty() && req.dns_names.is_empty() {
        return Err(format!(
            "{signer} needs at least one DNS or IP subject alternative name"
        ));
    }
    let lifetime = expiration_seconds
        .map(|s| Duration::from_secs(s.max(MIN_EXPIRATION_SECONDS)))
        .map_or(NODE_CERT_LIFETIME, |d| d.min(NODE_CERT_LIFETIME));
    Ok(Profile {
        common_name: cn.clone(),
        organizations: orgs.clone(),
        server,
        // A client certificate names no one but its subject.
        ips: if server { req.ips.clone() } else { Vec::new() },
        dns_names: if server {
            req.dns_names.clone()
        } else {
            Vec::new()
        },
        lifetime,
    })
}

/// Why a request is approved at once, or None to leave it pending. `node`
/// looks up a Node object by name.
fn auto_approval(
    signer: &str,
    user: &User,
    req: &Request,
    node: &dyn Fn(&str) -> Option<Value>,
) -> Option<String> {
    let name = req.common_name.strip_prefix("system:node:")?;
    let itself = user.name == req.common_name && user.groups.iter().any(|g| g == NODES_GROUP);
    match signer {
        KUBELET_CLIENT_SIGNER => {
            let bootstrapper = user.groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP);
            (bootstrapper || itself).then(|| {
                format!(
                    "Auto approving the client certificate of node {name} requested by {}",
                    user.name
                )
            })
        }
        KUBELET_SERVING_SIGNER if itself => {
            let node = node(name)?;
            let reported = |types: &[&str]| -> Vec<String> {
                node["status"]["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|a| a["type"].as_str().is_some_and(|t| types.contains(&t)))
                    .filter_map(|a| a["address"].as_str().map(str::to_string))
                    .collect()
            };
            let ips: Vec<IpAddr> = reported(&["InternalIP", "ExternalIP"])
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
            let names = reported(&["Hostname", "InternalDNS", "ExternalDNS"]);
            let known = req.ips.iter().all(|ip| ips.contains(ip))
                && req.dns_names.iter().all(|d| names.contains(d));
            known.then(|| {
                format!("Auto approving the serving certificate of node {name}, requested by the node itself for the addresses its Node reports")
            })
        }
        _ => None,
    }
}

fn usages(obj: &Value) -> Vec<&str> {
    obj["spec"]["usages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn request_pem(obj: &Value) -> Option<String> {
    obj["spec"]["request"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
}

fn condition(kind: &str, reason: &str, message: String) -> Value {
    let now = crate::registry::now_rfc3339();
    json!({
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    })
}

/// Admit a new CertificateSigningRequest from `user` (after the common
/// create preparation, so the status set here is kept). `node` looks up a
/// Node object by name, for the serving certificate rule.
pub fn admit(
    r: &Resource,
    user: &User,
    obj: &mut Value,
    signer: &Signer,
    node: &dyn Fn(&str) -> Option<Value>,
) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    obj["spec"]["username"] = json!(user.name);
    obj["spec"]["groups"] = json!(user.groups);
    if !user.uid.is_empty() {
        obj["spec"]["uid"] = json!(user.uid);
    }
    let pem = request_pem(obj).ok_or_else(|| {
        invalid(
            r,
            &name,
            "spec.request",
            "must be a base64-encoded PEM CERTIFICATE REQUEST".into(),
        )
    })?;
    let req = parse_request(&pem).map_err(|e| invalid(r, &name, "spec.request", e))?;
    let signer_name = obj["spec"]["signerName"].as_str().unwrap_or("").to_string();
    let expiration = obj["spec"]["expirationSeconds"].as_u64();
    let Some(profile) = profile(&signer_name, &req, &usages(obj), expiration) else {
        return Ok(());
    };
    let profile = profile.map_err(|e| {
        let field = if e.contains("usages") {
            "spec.usages"
        } else {
            "spec.request"
        };
        invalid(r, &name, field, e)
    })?;
    let Some(why) = auto_approval(&signer_name, user, &req, node) else {
        // Pending until someone approves it (`kubectl certificate approve`).
        return Ok(());
    };
    let cert = signer
        .sign(&pem, &profile)
        .map_err(|e| invalid(r, &name, "spec.request", e.to_string()))?;
    obj["status"] = json!({
        "conditions": [condition("Approved", "AutoApproved", why)],
        "certificate": base64::engine::general_purpose::STANDARD.encode(cert),
    });
    tracing::info!(subject = %profile.common_name, signer = %signer_name, requester = %user.name, "signed a node certificate");
    Ok(())
}

fn has_condition(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] != "False")
}

/// Whether an update through `approval` decides the request (adds an
/// Approved or Denied condition): that needs `approve` on its signer.
pub fn decides(old: &Value, new: &Value) -> bool {
    ["Approved", "Denied"]
        .iter()
        .any(|k| has_condition(new, k) && !has_condition(old, k))
}

/// An update through the `approval` subresource, after only
/// `status.conditions` was taken from it: conditions are checked, and a
/// request newly approved is signed (or marked Failed) as its signer does.
pub fn approval(r: &Resource, old: &Value, new: &mut Value, signer: &Signer) -> ApiResult<()> {
    let name = new["metadata"]["name"].as_str().unwrap_or("").to_string();
    if has_condition(new, "Approved") && has_condition(new, "Denied") {
        return Err(invalid(
            r,
            &name,
            "status.conditions",
            "Approved and Denied conditions are mutually exclusive".into(),
        ));
    }
    for kind in ["Approved", "Denied"] {
        if has_condition(old, kind) && !has_condition(new, kind) {
            return Err(invalid(
                r,
                &name,
                "status.conditions",
                format!("updates may not remove a condition of type {kind:?}"),
            ));
        }
    }
    if !has_condition(new, "Approved")
        || has_condition(new, "Failed")
        || new["status"]["certificate"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    {
        return Ok(());
    }
    let signer_name = new["spec"]["signerName"].as_str().unwrap_or("").to_string();
    let issued = request_pem(new)
        .ok_or_else(|| "spec.request is not a base64-encoded PEM request".to_string())
        .and_then(|pem| parse_request(&pem).map(|req| (pem, req)))
        .and_then(|(pem, req)| {
            let expiration = new["spec"]["expirationSeconds"].as_u64();
            match profile(&signer_name, &req, &usages(new), expiration) {
                None => Ok(None),
                Some(p) => {
                    p.and_then(|p| signer.sign(&pem, &p).map(Some).map_err(|e| e.to_string()))
                }
            }
        });
    match issued {
        Ok(None) => {}
        Ok(Some(cert)) => {
            new["status"]["certificate"] =
                json!(base64::engine::general_purpose::STANDARD.encode(cert));
            tracing::info!(csr = %name, signer = %signer_name, "signed an approved certificate request");
        }
        Err(why) => {
            let mut conds = new["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conds.push(condition("Failed", "SignerValidationFailure", why));
            new["status"]["conditions"] = Value::Array(conds);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_user(name: &str) -> User {
        User {
            name: format!("system:node:{name}"),
            uid: String::new(),
            groups: vec![NODES_GROUP.into(), "system:authenticated".into()],
        }
    }

    fn csr(cn: &str, ips: &[&str], dns: &[&str]) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut names: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
        names.extend(ips.iter().map(|i| i.to_string()));
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, cn);
        dn.push(rcgen::DnType::OrganizationName, NODES_GROUP);
        params.distinguished_name = dn;
        let pem = params
            .serialize_request(&key)
            .and_then(|r| r.pem())
            .expect("csr");
        (pem, key)
    }

    fn object(pem: &str, signer: &str, usages: &[&str]) -> Value {
        json!({
            "metadata": {"name": "x"},
            "spec": {
                "request": base64::engine::general_purpose::STANDARD.encode(pem),
                "signerName": signer,
                "usages": usages,
            },
        })
    }

    const SERVING: [&str; 3] = ["digital signature", "key encipherment", "server auth"];

    fn nodes(name: &str) -> Option<Value> {
        (name == "n1").then(|| {
            json!({"status": {"addresses": [
                {"type": "InternalIP", "address": "10.0.0.5"},
                {"type": "Hostname", "address": "n1"},
            ]}})
        })
    }

    fn pki() -> (tempfile::TempDir, crate::pki::Pki) {
        let dir = tempfile::tempdir().expect("tmp");
        let pki = crate::pki::Pki::load_or_create(dir.path(), &[]).expect("pki");
        (dir, pki)
    }

    fn resource() -> &'static Resource {
        crate::resources::by_kind("certificates.k8s.io", "v1", "CertificateSigningRequest")
            .expect("csr resource")
    }

    fn admitted(user: &User, cn: &str, ips: &[&str], dns: &[&str], usages: &[&str]) -> Value {
        let (_d, pki) = pki();
        let (pem, _) = csr(cn, ips, dns);
        let mut obj = object(&pem, KUBELET_SERVING_SIGNER, usages);
        admit(resource(), user, &mut obj, &pki.signer(), &nodes).expect("admitted");
        obj
    }

    fn issued(obj: &Value) -> bool {
        obj["status"]["certificate"].is_string()
    }

    #[test]
    fn a_node_gets_a_serving_certificate_for_the_addresses_its_node_reports() {
        let obj = admitted(
            &node_user("n1"),
            "system:node:n1",
            &["10.0.0.5"],
            &["n1"],
            &SERVING,
        );
        assert!(issued(&obj), "{obj}");
        assert_eq!(obj["status"]["conditions"][0]["type"], "Approved");
        let pem = base64::engine::general_purpose::STANDARD
            .decode(obj["status"]["certificate"].as_str().expect("cert"))
            .expect("b64");
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|d: rustls_pki_types::CertificateDer| d)
            .expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
        let cn = cert.subject().iter_common_name().next().expect("cn");
        assert_eq!(cn.as_str().expect("cn"), "system:node:n1");
        let eku = cert.extended_key_usage().expect("eku").expect("present");
        assert!(eku.value.server_auth && !eku.value.client_auth);
    }

    #[test]
    fn a_serving_request_naming_other_addresses_stays_pending() {
        for (ips, dns) in [
            (&["10.0.0.6"][..], &["n1"][..]),
            (&["10.0.0.5"][..], &["elsewhere.example"][..]),
        ] {
            let obj = admitted(&node_user("n1"), "system:node:n1", ips, dns, &SERVING);
            assert!(!issued(&obj), "{ips:?} {dns:?}: {obj}");
            assert!(obj["status"].is_null());
        }
    }

    #[test]
    fn a_serving_request_for_another_node_or_from_someone_else_stays_pending() {
        // n2 asking for n1's name, with n1's addresses.
        let obj = admitted(
            &node_user("n2"),
            "system:node:n1",
            &["10.0.0.5"],
            &[],
            &SERVING,
        );
        assert!(!issued(&obj), "{obj}");
        // A bootstrapper may ask for client certificates only.
        let boot = User {
            name: "system:bootstrap:abcdef".into(),
            uid: String::new(),
            groups: vec![BOOTSTRAPPERS_GROUP.into()],
        };
        let obj = admitted(&boot, "system:node:n1", &["10.0.0.5"], &[], &SERVING);
        assert!(!issued(&obj), "{obj}");
        // A node whose Node object does not exist yet.
        let obj = admitted(&node_user("n3"), "system:node:n3", &[], &["n3"], &SERVING);
        assert!(!issued(&obj), "{obj}");
    }

    #[test]
    fn a_serving_request_with_client_usages_or_no_names_is_invalid() {
        let (_d, pki) = pki();
        let (pem, _) = csr("system:node:n1", &["10.0.0.5"], &[]);
        let mut obj = object(
            &pem,
            KUBELET_SERVING_SIGNER,
            &["digital signature", "client auth"],
        );
        let e = admit(
            resource(),
            &node_user("n1"),
            &mut obj,
            &pki.signer(),
            &nodes,
        )
        .expect_err("client usage");
        assert!(e.message.contains("spec.usages"), "{}", e.message);
        let (pem, _) = csr("system:node:n1", &[], &[]);
        let mut obj = object(&pem, KUBELET_SERVING_SIGNER, &SERVING);
        let e = admit(
            resource(),
            &node_user("n1"),
            &mut obj,
            &pki.signer(),
            &nodes,
        )
        .expect_err("no names");
        assert!(
            e.message.contains("at least one DNS or IP"),
            "{}",
            e.message
        );
    }

    #[test]
    fn approving_a_pending_serving_request_signs_it_and_a_bad_one_fails() {
        let (_d, pki) = pki();
        let (pem, _) = csr("system:node:n1", &["10.9.9.9"], &[]);
        let mut old = object(&pem, KUBELET_SERVING_SIGNER, &SERVING);
        admit(
            resource(),
            &node_user("n1"),
            &mut old,
            &pki.signer(),
            &nodes,
        )
        .expect("admit");
        assert!(!issued(&old));
        let mut new = old.clone();
        new["status"]["conditions"] = json!([{"type": "Approved", "status": "True"}]);
        assert!(decides(&old, &new));
        approval(resource(), &old, &mut new, &pki.signer()).expect("approval");
        assert!(issued(&new), "{new}");
        // Removing the decision is refused.
        let mut undo = new.clone();
        undo["status"]["conditions"] = json!([]);
        assert!(approval(resource(), &new, &mut undo, &pki.signer()).is_err());
        // A request its signer will not issue is marked Failed on approval.
        let mut odd = old.clone();
        odd["spec"]["usages"] = json!(["server auth", "code signing"]);
        let mut new = odd.clone();
        new["status"]["conditions"] = json!([{"type": "Approved", "status": "True"}]);
        approval(resource(), &odd, &mut new, &pki.signer()).expect("approval");
        assert!(!issued(&new));
        assert_eq!(new["status"]["conditions"][1]["type"], "Failed");
        assert_eq!(
            new["status"]["conditions"][1]["reason"],
            "SignerValidationFailure"
        );
    }

    #[test]
    fn client_certificates_are_still_signed_for_bootstrappers_and_the_node_itself() {
        let (_d, pki) = pki();
        let usages = ["digital signature", "key encipherment", "client auth"];
        for user in [
            User {
                name: "system:bootstrap:abcdef".into(),
                uid: String::new(),
                groups: vec![BOOTSTRAPPERS_GROUP.into()],
            },
            node_user("n1"),
        ] {
            let (pem, _) = csr("system:node:n1", &[], &[]);
            let mut obj = object(&pem, KUBELET_CLIENT_SIGNER, &usages);
            admit(resource(), &user, &mut obj, &pki.signer(), &nodes).expect("admit");
            assert!(issued(&obj), "{}: {obj}", user.name);
        }
        let (pem, _) = csr("system:node:n1", &[], &[]);
        let mut obj = object(&pem, KUBELET_CLIENT_SIGNER, &usages);
        admit(
            resource(),
            &node_user("n2"),
            &mut obj,
            &pki.signer(),
            &nodes,
        )
        .expect("admit");
        assert!(!issued(&obj), "another node's client certificate");
    }
}
