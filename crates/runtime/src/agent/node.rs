//! The Node object: registration and the periodic status heartbeat.
//!
//! Registration creates the Node or, after a restart, updates the one the
//! agent registered before (same name, same uid), so that pods bound to it
//! stay bound. The status carries what the scheduler and `kubectl` read:
//! capacity, addresses, `runtimeHandlers`, `nodeInfo`, the Ready condition.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::{AgentConfig, AgentError, Ctx};

/// What the agent knows about the machine it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub cpus: usize,
    pub memory_kib: u64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
}

impl HostFacts {
    /// Read from `/proc` and `/etc`; missing files give empty values rather
    /// than a failed registration.
    pub fn probe() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        HostFacts {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_kib: mem_total_kib(&read("/proc/meminfo")).unwrap_or(0),
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image: os_pretty_name(&read("/etc/os-release")),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in KiB.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn os_pretty_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

/// The address other machines reach this one at: the source address of the
/// default route (a UDP socket "connected" to a documentation address sends
/// nothing), or loopback on a machine without a route.
pub fn first_ipv4() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("192.0.2.1:9")?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() => ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// The Node's labels: the well-known ones, then the configured extras.
pub fn labels(cfg: &AgentConfig) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("kubernetes.io/arch".into(), json!(cfg.arch));
    m.insert("kubernetes.io/os".into(), json!("linux"));
    m.insert("kubernetes.io/hostname".into(), json!(cfg.node_name));
    for (k, v) in &cfg.labels {
        m.insert(k.clone(), json!(v));
    }
    Value::Object(m)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The node conditions of a healthy node, with the kubelet's reasons.
pub fn conditions(heartbeat: &str, since: &str) -> Value {
    let c = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": heartbeat, "lastTransitionTime": since})
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// The Node's whole status as the agent reports it.
pub fn status(
    cfg: &AgentConfig,
    host: &HostFacts,
    ip: IpAddr,
    handlers: &[&str],
    since: &str,
) -> Value {
    let resources = json!({
        "cpu": host.cpus.to_string(),
        "memory": format!("{}Ki", host.memory_kib),
        "pods": cfg.max_pods.to_string(),
    });
    let runtime_handlers: Vec<Value> = handlers
        .iter()
        .map(|h| json!({"name": h, "features": {"recursiveReadOnlyMounts": false, "userNamespaces": false}}))
        .collect();
    let runtime_version = handlers
        .first()
        .map(|h| format!("skiff-{h}://48"))
        .unwrap_or_else(|| "skiff://none".to_string());
    json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [
            {"type": "InternalIP", "address": ip.to_string()},
            {"type": "Hostname", "address": cfg.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.port}},
        "nodeInfo": {
            "architecture": cfg.arch,
            "operatingSystem": "linux",
            "kernelVersion": host.kernel,
            "osImage": host.os_image,
            "machineID": host.machine_id,
            "systemUUID": host.machine_id,
            "bootID": host.boot_id,
            "kubeletVersion": format!("v1.33.0-skiff.{}", cfg.version),
            "kubeProxyVersion": "",
            "containerRuntimeVersion": runtime_version,
        },
        "runtimeHandlers": runtime_handlers,
        "conditions": conditions(&now(), since),
    })
}

/// Create the Node, or take over the one registered under this name
/// before (labels updated, status rewritten). Returns the Node's uid.
/// Connection failures are retried with back-off: a node that starts
/// before its API server simply waits for it.
pub async fn register(
    client: &kube::Client,
    cfg: &AgentConfig,
    ip: IpAddr,
    handlers: &[&str],
) -> Result<String, AgentError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match try_register(client, cfg, ip, handlers).await {
            Ok(uid) => return Ok(uid),
            Err(e) if is_transient(&e) => {
                tracing::warn!(node = %cfg.node_name, error = %e, "API server unreachable; retrying registration");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(source) => {
                return Err(AgentError::Register {
                    node: cfg.node_name.clone(),
                    source,
                })
            }
        }
    }
}

/// Whether an API error may go away by itself (the server is down or busy).
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429 || s.code == 409,
        _ => true,
    }
}

async fn try_register(
    client: &kube::Client,
    cfg: &AgentConfig,
    ip: IpAddr,
    handlers: &[&str],
) -> Result<String, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let meta = json!({"metadata": {
        "name": cfg.node_name,
        "labels": labels(cfg),
        "annotations": cfg.annotations,
    }});
    let node = match api.get_opt(&cfg.node_name).await? {
        Some(_) => {
            api.patch(
                &cfg.node_name,
                &PatchParams::default(),
                &Patch::Merge(&meta),
            )
            .await?
        }
        None => {
            let obj: Node = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": meta["metadata"],
            }))
            .map_err(kube::Error::SerdeError)?;
            api.create(&PostParams::default(), &obj).await?
        }
    };
    let status = status(cfg, &HostFacts::probe(), ip, handlers, &now());
    api.patch_status(
        &cfg.node_name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await?;
    Ok(node.metadata.uid.unwrap_or_default())
}

/// Set one annotation of the Node, or remove it with `None` (for what
/// the agent learns after registering, such as its DNS address).
pub async fn annotate(
    client: &kube::Client,
    node: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Refresh the Node's conditions (lastHeartbeatTime) every
/// `status_refresh`, as the kubelet does alongside its Lease.
pub(crate) async fn heartbeat(ctx: Arc<Ctx>, handlers: Vec<&'static str>) {
    let mut since = now();
    let api: Api<Node> = Api::all(ctx.client.clone());
    // Like the kubelet: look every 10 s, write when something differs
    // (the node lifecycle controller marked the node Unknown while this
    // agent could not reach the API server) or every `status_refresh`.
    let check = ctx.cfg.status_refresh.min(Duration::from_secs(10));
    let mut tick = tokio::time::interval(check);
    tick.tick().await;
    let mut last_write = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let ready_elsewhere = match api.get_status(&ctx.cfg.node_name).await {
            Ok(n) => ready_condition(&n) == Some("True"),
            // Unreachable: keep trying at the next tick.
            Err(_) => continue,
        };
        if ready_elsewhere && last_write.elapsed() < ctx.cfg.status_refresh {
            continue;
        }
        if !ready_elsewhere {
            // Ready again from now on, as the kubelet reports a transition.
            since = now();
        }
        let status = status(
            &ctx.cfg,
            &HostFacts::probe(),
            ctx.node_ip,
            &handlers,
            &since,
        );
        let patch = json!({ "status": status });
        match api
            .patch_status(
                &ctx.cfg.node_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => last_write = tokio::time::Instant::now(),
            Err(e) => {
                tracing::warn!(node = %ctx.cfg.node_name, error = %e, "node status heartbeat failed")
            }
        }
    }
}

/// The status of the Node's Ready condition, if it has one.
fn ready_condition(n: &Node) -> Option<&str> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// Parse an RFC 3339 time as Kubernetes writes it.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_kib: 24_000_000,
            kernel: "6.8.0".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
        }
    }

    #[test]
    fn meminfo_total_in_kib() {
        let m = "MemTotal:       24567892 kB\nMemFree:         1234 kB\n";
        assert_eq!(mem_total_kib(m), Some(24_567_892));
        assert_eq!(mem_total_kib("garbage"), None);
    }

    #[test]
    fn os_release_pretty_name() {
        assert_eq!(
            os_pretty_name("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n"),
            "Debian GNU/Linux 12"
        );
        assert_eq!(os_pretty_name(""), "Linux");
    }

    #[test]
    fn labels_carry_the_well_known_ones_and_extras() {
        let mut cfg = AgentConfig::new("n1", "/tmp");
        cfg.arch = "arm64".into();
        cfg.labels.insert("wasm".into(), "yes".into());
        let l = labels(&cfg);
        assert_eq!(l["kubernetes.io/arch"], "arm64");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert_eq!(l["kubernetes.io/hostname"], "n1");
        assert_eq!(l["wasm"], "yes");
    }

    #[test]
    fn status_as_kubectl_and_the_scheduler_read_it() {
        let mut cfg = AgentConfig::new("n1", "/tmp");
        cfg.max_pods = 5000;
        cfg.port = 10555;
        let s = status(
            &cfg,
            &host(),
            "10.0.0.5".parse().expect("ip"),
            &["wasmtime"],
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(s["capacity"]["pods"], "5000");
        assert_eq!(s["capacity"]["memory"], "24000000Ki");
        assert_eq!(s["allocatable"]["cpu"], "2");
        assert_eq!(s["addresses"][0]["type"], "InternalIP");
        assert_eq!(s["addresses"][0]["address"], "10.0.0.5");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10555);
        assert_eq!(s["runtimeHandlers"][0]["name"], "wasmtime");
        assert_eq!(s["runtimeHandlers"][0]["features"]["userNamespaces"], false);
        assert_eq!(
            s["nodeInfo"]["containerRuntimeVersion"],
            "skiff-wasmtime://48"
        );
        assert!(s["nodeInfo"]["kubeletVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.33.0-skiff.")));
        let ready = s["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .expect("Ready condition");
        assert_eq!(ready["status"], "True");
        // The typed client must be able to read what we write.
        let _: k8s_openapi::api::core::v1::NodeStatus =
            serde_json::from_value(s).expect("a valid NodeStatus");
    }

    #[test]
    fn transient_errors_are_retried_client_errors_are_not() {
        let api = |code| {
            kube::Error::Api(
                kube::core::Status::failure("x", "y")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(is_transient(&api(503)));
        assert!(!is_transient(&api(403)));
    }
}
