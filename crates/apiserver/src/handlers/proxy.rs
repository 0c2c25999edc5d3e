//! `pods/NAME/log` and `pods/NAME/exec`: the API server proxies to the
//! node agent running the pod, as kube-apiserver proxies to the kubelet.
//!
//! The node endpoint is HTTPS, and the API server presents its node client
//! certificate (see [`crate::pki::NodeClient`]); nodes serve no one else.
//! The node must present a serving certificate from the cluster CA for
//! `system:node:NAME` and the address dialed (nodes ask for one with a
//! CertificateSigningRequest, see [`crate::csr`]); anything else ends the
//! request with a message saying what the node presented.
//!
//! Exec is a connection upgrade (WebSocket, `v5.channel.k8s.io`): the
//! client's upgrade request goes to the node as it is, and once the node
//! answers 101 the two connections are spliced byte for byte. The node
//! speaks the remote-command protocol.

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;

use super::body::Body;
use super::{ApiServer, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::resources;

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

/// Where a node agent serves, and which Node it must prove to be.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    node: String,
    ip: String,
    port: u16,
}

/// Where the node agent of `node` serves.
fn node_endpoint(node: &Value) -> ApiResult<Endpoint> {
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
    Ok(Endpoint {
        node: name.to_string(),
        ip: ip.to_string(),
        port: port as u16,
    })
}

impl ApiServer {
    pub(super) async fn pod_log(&self, ctx: &Ctx) -> ApiResult<Response<Body>> {
        let name = ctx.info.name.clone().unwrap_or_default();
        let pod = self.load(ctx.info.resource, ctx.info.namespace.as_deref(), &name)?;
        let container = pick_container(&pod.value, &name, ctx.query.get("container"))?;
        let previous = ctx.query.flag("previous");
        check_started(&pod.value, &name, &container, previous)?;
        let endpoint = self.pod_node(&pod.value)?;
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
        self.proxy_to_node(&endpoint, &path).await
    }

    /// `pods/NAME/exec`, already authorized (`create` on `pods/exec`):
    /// pass the client's upgrade to the node and splice the connections.
    pub(super) async fn pod_exec(
        &self,
        req: Request<Incoming>,
        info: &crate::request::RequestInfo,
        query: &super::Query,
    ) -> ApiResult<Response<Body>> {
        let name = info.name.clone().unwrap_or_default();
        let pod = self.load(info.resource, info.namespace.as_deref(), &name)?;
        let phase = pod.value["status"]["phase"].as_str().unwrap_or("");
        if phase == "Succeeded" || phase == "Failed" {
            return Err(ApiError::bad_request(format!(
                "cannot exec into a container in a completed pod; current phase is {phase}"
            )));
        }
        let container = pick_container(&pod.value, &name, query.get("container"))?;
        let endpoint = self.pod_node(&pod.value)?;
        let (ip, port) = (endpoint.ip.as_str(), endpoint.port);
        let ns = info.namespace.clone().unwrap_or_default();
        let uid = pod.value["metadata"]["uid"].as_str().unwrap_or("");
        let path = format!(
            "/exec/{ns}/{name}/{uid}/{container}?{}",
            req.uri().query().unwrap_or("")
        );
        let mut sender = self.node_connection(&endpoint).await?;
        let mut upstream = Request::builder()
            .method(req.method())
            .uri(path)
            .header("host", format!("{ip}:{port}"));
        for h in [
            http::header::CONNECTION,
            http::header::UPGRADE,
            http::header::SEC_WEBSOCKET_KEY,
            http::header::SEC_WEBSOCKET_VERSION,
            http::header::SEC_WEBSOCKET_PROTOCOL,
        ] {
            for v in req.headers().get_all(&h) {
                upstream = upstream.header(&h, v);
            }
        }
        let upstream = upstream
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let resp = sender
            .send_request(upstream)
            .await
            .map_err(|e| unreachable(ip, port, &e))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(node_error(resp).await);
        }
        let mut out = Response::new(
            Empty::<bytes::Bytes>::new()
                .map_err(|e: std::convert::Infallible| match e {})
                .boxed(),
        );
        *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for h in [
            http::header::CONNECTION,
            http::header::UPGRADE,
            http::header::SEC_WEBSOCKET_ACCEPT,
            http::header::SEC_WEBSOCKET_PROTOCOL,
        ] {
            if let Some(v) = resp.headers().get(&h) {
                out.headers_mut().insert(h, v.clone());
            }
        }
        tokio::spawn(async move {
            let (client, node) = tokio::join!(hyper::upgrade::on(req), hyper::upgrade::on(resp));
            match (client, node) {
                (Ok(c), Ok(n)) => {
                    let (mut c, mut n) = (TokioIo::new(c), TokioIo::new(n));
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut n).await;
                }
                (c, n) => tracing::debug!(
                    client = ?c.err().map(|e| e.to_string()),
                    node = ?n.err().map(|e| e.to_string()),
                    "exec: an upgrade did not complete"
                ),
            }
        });
        Ok(out)
    }

    /// The endpoint of the node agent running a pod.
    fn pod_node(&self, pod: &Value) -> ApiResult<Endpoint> {
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
        if node_name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "pod {name} is not scheduled to a node yet"
            )));
        }
        let nodes = resources::by_kind("", "v1", "Node")
            .ok_or_else(|| ApiError::internal("nodes not served"))?;
        let node = self.load(nodes, None, node_name)?;
        node_endpoint(&node.value)
    }

    /// An HTTP/1.1 connection to a node agent, authenticated with the node
    /// client certificate, once the node has proven to be the Node it is.
    async fn node_connection(
        &self,
        to: &Endpoint,
    ) -> ApiResult<hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>> {
        let (ip, port) = (to.ip.as_str(), to.port);
        let fail = |e: &dyn std::fmt::Display| unreachable(ip, port, e);
        let tls_config = self
            .node_client
            .config(&to.node)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let tcp = tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(|e| fail(&e))?;
        let server_name = match ip.parse::<std::net::IpAddr>() {
            Ok(addr) => ServerName::IpAddress(addr.into()),
            Err(_) => ServerName::try_from(ip.to_string()).map_err(|e| fail(&e))?,
        };
        let tls = tokio_rustls::TlsConnector::from(tls_config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| match untrusted_node(&e) {
                Some(why) => untrusted(to, why),
                None => fail(&e),
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| fail(&e))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    async fn proxy_to_node(&self, to: &Endpoint, path: &str) -> ApiResult<Response<Body>> {
        let (ip, port) = (to.ip.as_str(), to.port);
        let mut sender = self.node_connection(to).await?;
        let req = Request::get(path)
            .header("host", format!("{ip}:{port}"))
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(ip, port, &e))?;
        if !resp.status().is_success() {
            return Err(node_error(resp).await);
        }
        let body = resp.into_body().map_err(std::io::Error::other).boxed();
        let mut out = Response::new(body);
        out.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        Ok(out)
    }
}

/// Why the node's certificate was refused, when that is why TLS failed.
fn untrusted_node(e: &std::io::Error) -> Option<String> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
            Some(o.0.to_string())
        }
        rustls::Error::InvalidCertificate(c) => Some(c.to_string()),
        _ => None,
    }
}

/// A node that did not prove to be the Node it was reached as: the
/// request fails, and the message says how the node gets a certificate
/// the API server accepts. Nodes from before serving certificates came
/// from the cluster CA present self-signed ones until their next start.
fn untrusted(to: &Endpoint, why: String) -> ApiError {
    ApiError::new(
        502,
        "ServiceUnavailable",
        format!(
            "the node {:?} at {}:{} presented {why}; nodes get a serving certificate from the cluster CA (a CertificateSigningRequest for {}) when their agent starts: restart the node agent, and if `kubectl get csr` shows its request Pending, approve it with `kubectl certificate approve`",
            to.node, to.ip, to.port, crate::csr::KUBELET_SERVING_SIGNER
        ),
    )
}

/// A node agent that could not be reached.
fn unreachable(ip: &str, port: u16, e: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        502,
        "ServiceUnavailable",
        format!("the node agent at {ip}:{port} could not be reached: {e}"),
    )
}

/// A node agent's refusal as a Status with its code and words.
async fn node_error(resp: Response<Incoming>) -> ApiError {
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let msg = String::from_utf8_lossy(&bytes).trim().to_string();
    let reason = match status {
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::FORBIDDEN => "Forbidden",
        s if s.is_server_error() => "InternalError",
        _ => "BadRequest",
    };
    ApiError::new(status.as_u16(), reason, msg)
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
            Endpoint {
                node: "n".into(),
                ip: "10.0.0.2".into(),
                port: 10250
            }
        );
        assert!(node_endpoint(&json!({"metadata": {"name": "n"}, "status": {}})).is_err());
    }
}
