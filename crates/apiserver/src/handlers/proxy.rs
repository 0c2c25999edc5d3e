//! `pods/NAME/log`: the API server proxies to the node agent running the
//! pod, as kube-apiserver proxies to the kubelet.
//!
//! The node endpoint is HTTPS. Until nodes get certificates from the
//! cluster CA, the API server checks the TLS handshake's signatures but not
//! the node certificate's issuer: the node is found through its own Node
//! object, which only the cluster's admin can write today.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;

use super::body::Body;
use super::{ApiServer, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::resources;

/// Accepts the node's self-signed certificate but still verifies the
/// handshake signatures against it.
#[derive(Debug)]
struct NodeCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for NodeCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn node_tls() -> Result<Arc<rustls::ClientConfig>, ApiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::internal(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NodeCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The container a log request is for: named, or the pod's only one.
fn pick_container(pod: &Value, name: &str, requested: Option<&str>) -> ApiResult<String> {
    let names: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|f| pod["spec"][f].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    match requested {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => {
            let main: Vec<&str> = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            match main.as_slice() {
                [only] => Ok(only.to_string()),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    main.join(" ")
                ))),
            }
        }
    }
}

/// Refuse, as Kubernetes does, to read logs of a container that never ran.
fn check_started(pod: &Value, pod_name: &str, container: &str, previous: bool) -> ApiResult<()> {
    let status = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|f| pod["status"][f].as_array().into_iter().flatten())
        .find(|s| s["name"] == container);
    let waiting = |s: &Value| {
        s["state"]
            .get("waiting")
            .map(|w| w["reason"].as_str().unwrap_or("").to_string())
    };
    match status {
        None => Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
        ))),
        Some(s) if previous && s["lastState"].get("terminated").is_none() => {
            Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            )))
        }
        Some(s)
            if !previous && waiting(s).is_some() && s["lastState"].get("terminated").is_none() =>
        {
            Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {}",
                waiting(s).unwrap_or_default()
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Where the node agent of `node` serves.
fn node_endpoint(node: &Value) -> ApiResult<(String, u16)> {
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let addrs = node["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| {
            addrs
                .iter()
                .find(|a| a["type"] == *t)
                .and_then(|a| a["address"].as_str())
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "node {name} reports no address to reach its agent at"
            ))
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| *p > 0 && *p < 65536)
        .ok_or_else(|| {
            ApiError::bad_request(format!("node {name} reports no agent endpoint port"))
        })?;
    Ok((ip.to_string(), port as u16))
}

impl ApiServer {
    pub(super) async fn pod_log(&self, ctx: &Ctx) -> ApiResult<Response<Body>> {
        let name = ctx.info.name.clone().unwrap_or_default();
        let pod = self.load(ctx.info.resource, ctx.info.namespace.as_deref(), &name)?;
        let container = pick_container(&pod.value, &name, ctx.query.get("container"))?;
        let previous = ctx.query.flag("previous");
        check_started(&pod.value, &name, &container, previous)?;
        let node_name = pod.value["spec"]["nodeName"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let nodes = resources::by_kind("", "v1", "Node")
            .ok_or_else(|| ApiError::internal("nodes not served"))?;
        let node = self.load(nodes, None, &node_name)?;
        let (ip, port) = node_endpoint(&node.value)?;
        let mut query = Vec::new();
        for k in ["follow", "previous", "timestamps"] {
            if ctx.query.flag(k) {
                query.push(format!("{k}=true"));
            }
        }
        for k in ["tailLines", "sinceSeconds", "sinceTime", "limitBytes"] {
            if let Some(v) = ctx.query.get(k) {
                query.push(format!("{k}={}", crate::request::percent_encode(v)));
            }
        }
        let ns = ctx.info.namespace.clone().unwrap_or_default();
        let path = format!("/containerLogs/{ns}/{name}/{container}?{}", query.join("&"));
        self.proxy_to_node(&ip, port, &path).await
    }

    async fn proxy_to_node(&self, ip: &str, port: u16, path: &str) -> ApiResult<Response<Body>> {
        let unreachable = |e: &dyn std::fmt::Display| {
            ApiError::new(
                502,
                "ServiceUnavailable",
                format!("the node agent at {ip}:{port} could not be reached: {e}"),
            )
        };
        let tcp = tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(|e| unreachable(&e))?;
        let server_name = match ip.parse::<std::net::IpAddr>() {
            Ok(addr) => ServerName::IpAddress(addr.into()),
            Err(_) => ServerName::try_from(ip.to_string()).map_err(|e| unreachable(&e))?,
        };
        let tls = tokio_rustls::TlsConnector::from(node_tls()?)
            .connect(server_name, tcp)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::get(path)
            .header("host", format!("{ip}:{port}"))
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = resp.status();
        let body = resp.into_body().map_err(std::io::Error::other).boxed();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let msg = String::from_utf8_lossy(&bytes).trim().to_string();
            return Err(ApiError::new(
                status.as_u16(),
                if status == StatusCode::NOT_FOUND {
                    "NotFound"
                } else {
                    "BadRequest"
                },
                msg,
            ));
        }
        let mut out = Response::new(body);
        out.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_the_only_container_or_asks() {
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pick_container(&one, "p", None).expect("only one"), "a");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        let e = pick_container(&two, "p", None).expect_err("ambiguous");
        assert!(e.message.contains("choose one of: [a b]"), "{}", e.message);
        assert_eq!(pick_container(&two, "p", Some("i")).expect("init"), "i");
        assert_eq!(
            pick_container(&two, "p", Some("z"))
                .expect_err("unknown")
                .code,
            400
        );
    }

    #[test]
    fn waiting_containers_have_no_logs() {
        let pod = json!({"status": {"containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "ErrImagePull"}}}]}});
        let e = check_started(&pod, "p", "a", false).expect_err("waiting");
        assert!(
            e.message.ends_with("is waiting to start: ErrImagePull"),
            "{}",
            e.message
        );
        let ran =
            json!({"status": {"containerStatuses": [{"name": "a", "state": {"running": {}}}]}});
        assert!(check_started(&ran, "p", "a", false).is_ok());
        assert!(
            check_started(&ran, "p", "a", true).is_err(),
            "no previous instance"
        );
    }

    #[test]
    fn node_endpoint_prefers_internal_ip() {
        let node = json!({"metadata": {"name": "n"}, "status": {"addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "10.0.0.2"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(
            node_endpoint(&node).expect("endpoint"),
            ("10.0.0.2".to_string(), 10250)
        );
        assert!(node_endpoint(&json!({"metadata": {"name": "n"}, "status": {}})).is_err());
    }
}
