//! The agent against the real API server, in-process.
//!
//! Most lifecycle tests drive the agent with `ScriptRuntime`: a test double
//! of the runtime contract (`cri`) that runs a few-line script (`echo`,
//! `sleep`, `exit`, `loop`) and writes CRI-format logs, so that each
//! lifecycle path (restarts and back-off, grace periods, re-adoption,
//! outages) is exercised with exact, fast timings. The real wasmtime
//! handler runs pods through the same agent in
//! `the_wasmtime_runtime_runs_pods_through_the_agent`, and end to end with
//! the real binary, kubectl and a registry in `tests/e2e/wasm.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use sha2::Digest;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::*;
use crate::cri::{self, ContainerConfig, ExitReason, ExitStatus, RuntimeError};

/// Images are files in a directory: `local/NAME` is `dir/NAME`.
struct LocalImages(PathBuf);

impl ImageSource for LocalImages {
    fn pull<'a>(
        &'a self,
        image: &'a str,
        _policy: &'a str,
        _secrets: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<PulledImage, String>> {
        Box::pin(async move {
            let name = image
                .strip_prefix("local/")
                .ok_or_else(|| format!("{image}: not a local image"))?;
            let path = self.0.join(name);
            let bytes =
                std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            Ok(PulledImage {
                digest: format!("sha256:{:x}", sha2::Sha256::digest(&bytes)),
                module_path: path,
                // Stands for an ordinary OCI image in the bad-input tests.
                is_wasm: !name.starts_with("linux-"),
                linux: None,
            })
        })
    }
}

struct ScriptRuntime;

struct ScriptContainer {
    exit: watch::Receiver<Option<ExitStatus>>,
    stop: watch::Sender<Option<Duration>>,
}

async fn log(f: &mut tokio::fs::File, line: &str) {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let _ = f
        .write_all(format!("{ts} stdout F {line}\n").as_bytes())
        .await;
}

async fn run_script(
    cfg: ContainerConfig,
    mut stop: watch::Receiver<Option<Duration>>,
) -> ExitStatus {
    let script = std::fs::read_to_string(&cfg.module_path).unwrap_or_default();
    let env: HashMap<String, String> = cfg.env.iter().cloned().collect();
    let Ok(mut out) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cfg.log_path)
        .await
    else {
        return ExitStatus {
            code: 1,
            reason: ExitReason::Error,
            message: Some("log".into()),
        };
    };
    let killed = ExitStatus {
        code: 137,
        reason: ExitReason::Killed,
        message: None,
    };
    for line in script.lines() {
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        match cmd {
            "echo" => {
                let text = env.iter().fold(rest.to_string(), |t, (k, v)| {
                    t.replace(&format!("${{{k}}}"), v)
                });
                log(&mut out, &text.replace("${ARGV0}", &cfg.args[0])).await;
            }
            "sleep" => tokio::time::sleep(Duration::from_millis(rest.parse().unwrap_or(0))).await,
            "exit" => {
                let code = rest.parse().unwrap_or(0);
                let reason = if code == 0 {
                    ExitReason::Completed
                } else {
                    ExitReason::Error
                };
                return ExitStatus {
                    code,
                    reason,
                    message: None,
                };
            }
            "loop" => {
                // Ignores the stop request, like a guest spinning: only the
                // forced stop after the grace period ends it.
                let _ = stop.wait_for(|s| s.is_some()).await;
                let grace = stop.borrow().unwrap_or_default();
                tokio::time::sleep(grace).await;
                return killed;
            }
            _ => {}
        }
    }
    ExitStatus {
        code: 0,
        reason: ExitReason::Completed,
        message: None,
    }
}

impl cri::ContainerRuntime for ScriptRuntime {
    fn handler(&self) -> &'static str {
        "wasmtime"
    }
    fn start(
        &self,
        config: ContainerConfig,
    ) -> BoxFuture<'_, Result<Box<dyn cri::Container>, RuntimeError>> {
        Box::pin(async move {
            if std::fs::read_to_string(&config.module_path).is_err() {
                return Err(RuntimeError::InvalidImage("not a script".into()));
            }
            let (exit_tx, exit) = watch::channel(None);
            let (stop, stop_rx) = watch::channel(None);
            tokio::spawn(async move {
                let status = run_script(config, stop_rx).await;
                let _ = exit_tx.send(Some(status));
            });
            Ok(Box::new(ScriptContainer { exit, stop }) as Box<dyn cri::Container>)
        })
    }
}

impl cri::Container for ScriptContainer {
    fn wait(&mut self) -> BoxFuture<'_, ExitStatus> {
        Box::pin(async move {
            let r = self.exit.wait_for(|e| e.is_some()).await;
            r.ok().and_then(|e| e.clone()).unwrap_or(ExitStatus {
                code: 137,
                reason: ExitReason::Killed,
                message: None,
            })
        })
    }
    fn stop(&self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
    }
}

struct Cluster {
    client: kube::Client,
    /// What the agent uses: direct, or through a proxy a test can cut.
    agent_client: kube::Client,
    api_addr: std::net::SocketAddr,
    kubeconfig: Box<dyn Fn(std::net::SocketAddr) -> String + Send + Sync>,
    /// The cluster CA: agents get their serving certificates from it.
    ca_pem: String,
    images: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

/// The real API server on a loopback port, its store under `dir`, and an
/// admin client of it (the runtime's tests that need an API).
pub(crate) async fn api_server(dir: &Path) -> (apiserver::server::Running, kube::Client) {
    let cfg = apiserver::server::Config::new(dir.join("api"), "127.0.0.1:0".parse().expect("addr"));
    let running = apiserver::server::start(cfg).await.expect("API server");
    let yaml =
        apiserver::server::kubeconfig_yaml(running.addr, &running.ca_pem, &running.admin_token);
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig");
    let kcfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(kcfg).expect("client");
    (running, client)
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("tmp");
    let (running, client) = api_server(dir.path()).await;
    let (ca, token) = (running.ca_pem.clone(), running.admin_token.clone());
    let ca_pem = ca.clone();
    let kubeconfig = Box::new(move |addr| apiserver::server::kubeconfig_yaml(addr, &ca, &token));
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    let rc: RuntimeClass =
        serde_json::from_value(json!({"metadata": {"name": "wasmtime"}, "handler": "wasmtime"}))
            .expect("rc");
    Api::<RuntimeClass>::all(client.clone())
        .create(&PostParams::default(), &rc)
        .await
        .expect("RuntimeClass");
    let data = dir.path().join("node");
    Cluster {
        api_addr: running.addr,
        agent_client: client.clone(),
        kubeconfig,
        ca_pem,
        client,
        images,
        data,
        _dir: dir,
    }
}

impl Cluster {
    fn start_agent(
        &self,
        name: &str,
        tune: impl FnOnce(&mut AgentConfig),
    ) -> tokio::task::JoinHandle<Result<(), AgentError>> {
        self.start_agent_with(name, tune, Arc::new(ScriptRuntime))
    }

    fn start_agent_with(
        &self,
        name: &str,
        tune: impl FnOnce(&mut AgentConfig),
        runtime: Arc<dyn cri::ContainerRuntime>,
    ) -> tokio::task::JoinHandle<Result<(), AgentError>> {
        let mut cfg = AgentConfig::new(name, self.data.clone());
        cfg.port = 0;
        cfg.internal_ip = Some("127.0.0.1".parse().expect("ip"));
        cfg.labels.insert("wasm".into(), "yes".into());
        cfg.api_ca_pem = Some(self.ca_pem.clone());
        tune(&mut cfg);
        let runtimes: Vec<Arc<dyn cri::ContainerRuntime>> = vec![runtime];
        tokio::spawn(run(
            self.agent_client.clone(),
            cfg,
            runtimes,
            Arc::new(LocalImages(self.images.clone())),
            Arc::default(),
        ))
    }

    fn image(&self, name: &str, script: &str) -> String {
        std::fs::write(self.images.join(name), script).expect("write image");
        format!("local/{name}")
    }

    async fn pod(&self, name: &str, image: &str, restart: &str, extra: Value) -> Pod {
        let mut spec = json!({
            "nodeName": "n1", "runtimeClassName": "wasmtime", "restartPolicy": restart,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image}],
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
        )
        .expect("pod");
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
    }

    async fn pod_json(&self, name: &str) -> Option<Value> {
        let p = Api::<Pod>::namespaced(self.client.clone(), "default")
            .get_opt(name)
            .await
            .expect("get pod")?;
        Some(serde_json::to_value(p).expect("json"))
    }
}

async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn container_status(p: &Value) -> Value {
    p["status"]["containerStatuses"][0].clone()
}

#[tokio::test]
async fn node_registers_with_labels_handlers_capacity_and_renews_its_lease() {
    let c = cluster().await;
    let _agent = c.start_agent("n1", |cfg| {
        cfg.max_pods = 2000;
        cfg.arch = "arm64".into();
        cfg.lease_renew = Duration::from_millis(300);
    });
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node = eventually(20, "node registered with status", || async {
        nodes
            .get_opt("n1")
            .await
            .ok()
            .flatten()
            .filter(|n| n.status.as_ref().is_some_and(|s| s.node_info.is_some()))
    })
    .await;
    let v = serde_json::to_value(&node).expect("json");
    let labels = &v["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/arch"], "arm64");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["kubernetes.io/hostname"], "n1");
    assert_eq!(labels["wasm"], "yes");
    let s = &v["status"];
    assert_eq!(s["capacity"]["pods"], "2000");
    assert_eq!(s["runtimeHandlers"][0]["name"], "wasmtime");
    assert_eq!(s["nodeInfo"]["architecture"], "arm64");
    assert_eq!(s["addresses"][0]["address"], "127.0.0.1");
    assert!(
        s["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    let uid = node.metadata.uid.clone();

    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
    let renew = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.renew_time.clone())
            .map(|t| t.0)
    };
    let first = eventually(10, "lease", || async {
        leases.get_opt("n1").await.ok().flatten()
    })
    .await;
    assert_eq!(
        first
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .as_deref(),
        Some("n1")
    );
    assert_eq!(
        first.spec.as_ref().and_then(|s| s.lease_duration_seconds),
        Some(40)
    );
    assert_eq!(
        first
            .metadata
            .owner_references
            .as_ref()
            .map(|o| o[0].uid.clone()),
        uid.clone()
    );
    let t0 = renew(&first);
    eventually(10, "lease renewed", || async {
        let l = leases.get_opt("n1").await.ok().flatten()?;
        (renew(&l) != t0).then_some(())
    })
    .await;

    // A restarted agent keeps the same Node.
    _agent.abort();
    let _again = c.start_agent("n1", |_| {});
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = nodes.get("n1").await.expect("node");
    assert_eq!(again.metadata.uid, uid, "re-registration keeps the Node");
}

#[tokio::test]
async fn one_shot_pod_runs_to_succeeded_with_configmap_env_in_its_log() {
    let c = cluster().await;
    let _agent = c.start_agent("n1", |_| {});
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "greeting"}, "data": {"GREETING": "hello from a configmap"}}),
    )
    .expect("cm");
    Api::<ConfigMap>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .expect("cm");
    let image = c.image("hello", "echo ${ARGV0}: ${GREETING}\nsleep 1500\nexit 0\n");
    let env = json!({"containers": [{"name": "main", "image": image, "env": [
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "greeting", "key": "GREETING"}}}]}]});
    c.pod("hello", &image, "Never", env).await;
    let running = eventually(20, "hello Running", || async {
        let p = c.pod_json("hello").await?;
        (p["status"]["phase"] == "Running").then_some(p)
    })
    .await;
    let st = container_status(&running);
    assert!(st["state"]["running"]["startedAt"].is_string(), "{st}");
    assert_eq!(st["ready"], true);
    assert!(
        st["containerID"]
            .as_str()
            .is_some_and(|id| id.starts_with("wasmtime://")),
        "{st}"
    );
    assert!(
        st["imageID"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:")),
        "{st}"
    );
    assert_eq!(running["status"]["podIP"], "127.0.0.1");
    let done = eventually(20, "hello Succeeded", || async {
        let p = c.pod_json("hello").await?;
        (p["status"]["phase"] == "Succeeded").then_some(p)
    })
    .await;
    let t = &container_status(&done)["state"]["terminated"];
    assert_eq!(t["exitCode"], 0);
    assert_eq!(t["reason"], "Completed");
    assert!(t["startedAt"].is_string() && t["finishedAt"].is_string());
    let ready = done["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .expect("Ready");
    assert_eq!(ready["reason"], "PodCompleted");

    // kubectl logs goes through the API server to the node endpoint.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let logs = pods
        .logs("hello", &LogParams::default())
        .await
        .expect("logs");
    assert_eq!(
        logs, "main: hello from a configmap\n",
        "argv[0] is the container name; env from the ConfigMap"
    );
    // Following a finished container returns, as with the kubelet.
    let followed = tokio::time::timeout(
        Duration::from_secs(5),
        pods.logs(
            "hello",
            &LogParams {
                follow: true,
                ..LogParams::default()
            },
        ),
    )
    .await
    .expect("follow of a completed container ends")
    .expect("logs");
    assert_eq!(followed, "main: hello from a configmap\n");
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let reasons: Vec<String> = eventually(10, "events", || async {
        let list = events.list(&Default::default()).await.ok()?;
        let r: Vec<String> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
        r.iter().any(|x| x == "Started").then_some(r)
    })
    .await;
    for want in ["Pulling", "Pulled", "Created", "Started"] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }
}

#[tokio::test]
async fn failing_container_restarts_and_backs_off_in_crash_loop() {
    let c = cluster().await;
    let _agent = c.start_agent("n1", |_| {});
    let image = c.image("trap", "echo failing\nexit 3\n");
    c.pod("trap", &image, "Always", json!({})).await;
    let p = eventually(30, "CrashLoopBackOff", || async {
        let p = c.pod_json("trap").await?;
        (container_status(&p)["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(p)
    })
    .await;
    let st = container_status(&p);
    assert!(st["restartCount"].as_u64().unwrap_or(0) >= 1, "{st}");
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(st["lastState"]["terminated"]["reason"], "Error");
    assert!(
        st["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("back-off 10s restarting failed container=main")),
        "{st}"
    );
    assert_eq!(
        p["status"]["phase"], "Running",
        "a crash-looping Always pod is Running, as in Kubernetes"
    );
    // lastState is the run that just ended, not the first one.
    assert_eq!(
        st["lastState"]["terminated"]["containerID"], st["containerID"],
        "{st}"
    );
    assert_eq!(
        st["restartCount"], 1,
        "the second run failed; the second restart waits 10 s"
    );
    // The previous run's output is there for `kubectl logs --previous`.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let prev = pods
        .logs(
            "trap",
            &LogParams {
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .expect("previous logs");
    assert_eq!(prev, "failing\n");
}

#[tokio::test]
async fn deleting_a_running_pod_stops_it_within_grace_and_the_pod_goes() {
    let c = cluster().await;
    let _agent = c.start_agent("n1", |_| {});
    let image = c.image("spin", "echo spinning\nloop\n");
    c.pod("spin", &image, "Always", json!({})).await;
    eventually(20, "spin Running", || async {
        (c.pod_json("spin").await?["status"]["phase"] == "Running").then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let t = Instant::now();
    pods.delete("spin", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(15, "spin gone", || async {
        c.pod_json("spin").await.is_none().then_some(())
    })
    .await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "the 1 s grace period was given: {took:?}"
    );
    assert!(
        took <= Duration::from_secs(5),
        "stopped within its grace period: {took:?}"
    );
    let pods_dir = c.data.join("pods");
    eventually(5, "pod files removed", || async {
        let empty = std::fs::read_dir(&pods_dir).map_or(true, |mut d| d.next().is_none());
        empty.then_some(())
    })
    .await;
}

#[tokio::test]
async fn unpullable_image_shows_err_image_pull_then_back_off() {
    let c = cluster().await;
    let _agent = c.start_agent("n1", |_| {});
    c.pod("missing", "registry.invalid/nope:v1", "Always", json!({}))
        .await;
    let p = eventually(20, "ImagePullBackOff", || async {
        let p = c.pod_json("missing").await?;
        (container_status(&p)["state"]["waiting"]["reason"] == "ImagePullBackOff").then_some(p)
    })
    .await;
    assert_eq!(p["status"]["phase"], "Pending");
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node = serde_json::to_value(nodes.get("n1").await.expect("node")).expect("json");
    assert!(
        node["status"]["conditions"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")),
        "the node stays Ready"
    );
}

#[tokio::test]
async fn restarted_agent_readopts_its_pods_without_doubling() {
    let c = cluster().await;
    let agent = c.start_agent("n1", |_| {});
    let long = c.image("long", "echo up\nloop\n");
    let once = c.image("once", "exit 0\n");
    c.pod("long", &long, "Always", json!({})).await;
    c.pod("once", &once, "Never", json!({})).await;
    eventually(20, "long Running and once Succeeded", || async {
        let (l, o) = (c.pod_json("long").await?, c.pod_json("once").await?);
        (l["status"]["phase"] == "Running" && o["status"]["phase"] == "Succeeded").then_some(())
    })
    .await;
    agent.abort();
    let _ = agent.await;
    let _again = c.start_agent("n1", |_| {});
    let p = eventually(20, "long restarted once", || async {
        let p = c.pod_json("long").await?;
        let st = container_status(&p);
        (st["restartCount"] == 1 && st["state"]["running"].is_object()).then_some(p)
    })
    .await;
    assert_eq!(
        container_status(&p)["lastState"]["terminated"]["reason"],
        "ContainerStatusUnknown"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        container_status(&c.pod_json("long").await.expect("long"))["restartCount"],
        1,
        "restarted once, not again"
    );
    let o = c.pod_json("once").await.expect("once");
    assert_eq!(
        o["status"]["phase"], "Succeeded",
        "a completed pod is not run again"
    );
    assert_eq!(container_status(&o)["restartCount"], 0);
}

#[tokio::test]
async fn linux_image_without_runtime_class_fails_with_a_clear_reason() {
    let c = cluster().await;
    let _agent = c.start_agent("n1", |_| {});
    let image = c.image("linux-nginx", "not wasm");
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "nginx", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": image}]}}),
    )
    .expect("pod");
    Api::<Pod>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let p = eventually(20, "CreateContainerError", || async {
        let p = c.pod_json("nginx").await?;
        (container_status(&p)["state"]["waiting"]["reason"] == "CreateContainerError").then_some(p)
    })
    .await;
    let msg = container_status(&p)["state"]["waiting"]["message"].clone();
    assert!(
        msg.as_str()
            .is_some_and(|m| m.contains("Linux container image")),
        "{msg}"
    );
}

/// A TCP forwarder to the API server that a test can take down: while down
/// it drops every connection, as an unreachable server would.
struct Outage {
    up: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Outage {
    async fn start(target: std::net::SocketAddr) -> (Self, std::net::SocketAddr) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (u, c) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                if !u.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                c.lock().expect("lock").push(h);
            }
        });
        (Outage { up, conns }, addr)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for h in self.conns.lock().expect("lock").drain(..) {
                h.abort();
            }
        }
    }
}

#[tokio::test]
async fn api_server_outage_keeps_pods_running_and_status_catches_up() {
    let mut c = cluster().await;
    let target = c.api_addr;
    let (outage, proxy) = Outage::start(target).await;
    let kc = kube::config::Kubeconfig::from_yaml(&(c.kubeconfig)(proxy)).expect("kubeconfig");
    let kcfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    c.agent_client = kube::Client::try_from(kcfg).expect("client");
    let _agent = c.start_agent("n1", |_| {});
    let image = c.image("job", "echo started\nsleep 2000\nexit 0\n");
    c.pod("job", &image, "Never", json!({})).await;
    eventually(20, "job Running", || async {
        (c.pod_json("job").await?["status"]["phase"] == "Running").then_some(())
    })
    .await;
    outage.set_up(false);
    // The guest finishes while the API server is unreachable.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        c.pod_json("job").await.expect("job")["status"]["phase"],
        "Running",
        "nothing reached the API meanwhile"
    );
    outage.set_up(true);
    let p = eventually(40, "status to catch up", || async {
        let p = c.pod_json("job").await?;
        (p["status"]["phase"] == "Succeeded").then_some(p)
    })
    .await;
    assert_eq!(
        container_status(&p)["state"]["terminated"]["exitCode"],
        0,
        "the pod ran once and was not restarted"
    );
    assert_eq!(container_status(&p)["restartCount"], 0);
}

#[tokio::test]
async fn missing_configmap_waits_in_create_container_config_error_until_created() {
    let c = cluster().await;
    let _agent = c.start_agent("n1", |_| {});
    let image = c.image("greeter", "echo ${GREETING}\nexit 0\n");
    let env = json!({"containers": [{"name": "main", "image": image, "env": [
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "GREETING"}}}]}]});
    c.pod("greeter", &image, "Never", env).await;
    let p = eventually(20, "CreateContainerConfigError", || async {
        let p = c.pod_json("greeter").await?;
        (container_status(&p)["state"]["waiting"]["reason"] == "CreateContainerConfigError")
            .then_some(p)
    })
    .await;
    // The kubelet's wording.
    assert_eq!(
        container_status(&p)["state"]["waiting"]["message"],
        "configmap \"late\" not found"
    );
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "late"}, "data": {"GREETING": "better late"}}),
    )
    .expect("cm");
    Api::<ConfigMap>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .expect("cm");
    eventually(30, "greeter Succeeded", || async {
        (c.pod_json("greeter").await?["status"]["phase"] == "Succeeded").then_some(())
    })
    .await;
    let logs = Api::<Pod>::namespaced(c.client.clone(), "default")
        .logs("greeter", &LogParams::default())
        .await
        .expect("logs");
    assert_eq!(logs, "better late\n");
}

#[tokio::test]
async fn init_containers_run_in_order_before_the_containers() {
    let c = cluster().await;
    let _agent = c.start_agent("n1", |_| {});
    let first = c.image("first", "echo first\nsleep 300\nexit 0\n");
    let second = c.image("second", "echo second\nexit 0\n");
    let main = c.image("main", "echo main\nexit 0\n");
    let spec = json!({
        "initContainers": [{"name": "first", "image": first}, {"name": "second", "image": second}],
        "containers": [{"name": "main", "image": main}],
    });
    c.pod("init", &main, "Never", spec).await;
    let p = eventually(20, "init pod Succeeded", || async {
        let p = c.pod_json("init").await?;
        (p["status"]["phase"] == "Succeeded").then_some(p)
    })
    .await;
    let inits = p["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(inits.len(), 2);
    let finished = |s: &Value| {
        s["state"]["terminated"]["finishedAt"]
            .as_str()
            .map(str::to_string)
    };
    let started = |s: &Value| {
        s["state"]["terminated"]["startedAt"]
            .as_str()
            .map(str::to_string)
    };
    assert!(
        inits
            .iter()
            .all(|s| s["state"]["terminated"]["reason"] == "Completed"),
        "{inits:?}"
    );
    // Each starts only after the previous one finished.
    assert!(finished(&inits[0]) <= started(&inits[1]), "{inits:?}");
    assert!(finished(&inits[1]) <= started(&container_status(&p)), "{p}");
    let initialized = p["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Initialized").cloned())
        .expect("Initialized");
    assert_eq!(initialized["status"], "True");
}

#[tokio::test]
async fn the_wasmtime_runtime_runs_pods_through_the_agent() {
    let c = cluster().await;
    let wasm = crate::wasm::WasmRuntime::new(crate::wasm::WasmConfig::new(c.data.join("wasm")))
        .expect("wasmtime runtime");
    let _agent = c.start_agent_with("n1", |_| {}, Arc::new(wasm));
    // Prints its first argument (argv[0] is the container name) and exits 3.
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (local $p i32) (local $n i32)
        (drop (call $args_get (i32.const 0) (i32.const 256)))
        ;; argv[0] is a NUL-terminated string at 256: measure it
        (local.set $p (i32.load (i32.const 0)))
        (block $done (loop $scan
          (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
          (local.set $n (i32.add (local.get $n) (i32.const 1)))
          (br $scan)))
        (i32.store8 (i32.add (local.get $p) (local.get $n)) (i32.const 10))
        (i32.store (i32.const 64) (local.get $p))
        (i32.store (i32.const 68) (i32.add (local.get $n) (i32.const 1)))
        (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))
        (call $exit (i32.const 3))))"#;
    let bytes = wat::parse_str(wat).expect("wat");
    std::fs::write(c.images.join("argv0"), bytes).expect("write");
    c.pod("argv0", "local/argv0", "Never", json!({})).await;
    let done = eventually(30, "argv0 to fail with exit code 3", || async {
        let p = c.pod_json("argv0").await?;
        (p["status"]["phase"] == "Failed").then_some(p)
    })
    .await;
    let t = &container_status(&done)["state"]["terminated"];
    assert_eq!(t["exitCode"], 3, "{t}");
    assert_eq!(t["reason"], "Error", "{t}");
    let logs = Api::<Pod>::namespaced(c.client.clone(), "default")
        .logs("argv0", &LogParams::default())
        .await
        .expect("logs");
    assert_eq!(logs, "main\n");
}

#[tokio::test]
async fn readiness_follows_its_probe_and_liveness_failures_restart_the_container() {
    let c = cluster().await;
    let _agent = c.start_agent("n1", |_| {});
    let image = c.image("serve", "echo up\nloop\n");
    // Readiness on a port nobody listens on yet; the test opens it later.
    let ready_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let extra = json!({"containers": [{"name": "main", "image": image,
        "readinessProbe": {"tcpSocket": {"port": ready_port}, "periodSeconds": 1, "failureThreshold": 1}}]});
    c.pod("ready", &image, "Always", extra).await;
    let p = eventually(20, "Running but not ready", || async {
        let p = c.pod_json("ready").await?;
        (p["status"]["phase"] == "Running").then_some(p)
    })
    .await;
    assert_eq!(container_status(&p)["ready"], false, "{p}");
    assert_eq!(container_status(&p)["started"], true);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", ready_port))
        .await
        .expect("bind the readiness port");
    eventually(20, "ready once the probe passes", || async {
        let p = c.pod_json("ready").await?;
        (container_status(&p)["ready"] == true).then_some(())
    })
    .await;
    drop(listener);
    eventually(20, "not ready again once it fails", || async {
        let p = c.pod_json("ready").await?;
        (container_status(&p)["ready"] == false).then_some(())
    })
    .await;

    // Liveness failing once restarts the container, with the kubelet's Events.
    let dead_port = ready_port;
    let extra = json!({"containers": [{"name": "main", "image": image,
        "livenessProbe": {"tcpSocket": {"port": dead_port}, "periodSeconds": 1, "failureThreshold": 2}}]});
    c.pod("live", &image, "Always", extra).await;
    let p = eventually(30, "a restart after the liveness probe failed", || async {
        let p = c.pod_json("live").await?;
        (container_status(&p)["restartCount"].as_u64() >= Some(1)).then_some(p)
    })
    .await;
    assert_eq!(
        container_status(&p)["lastState"]["terminated"]["exitCode"],
        137,
        "{p}"
    );
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let messages: Vec<String> = eventually(10, "Unhealthy and Killing events", || async {
        let list = events.list(&Default::default()).await.ok()?;
        let m: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("live"))
            .filter_map(|e| Some(format!("{}: {}", e.reason.clone()?, e.message.clone()?)))
            .collect();
        m.iter()
            .any(|x| x.starts_with("Killing: Container main failed liveness probe"))
            .then_some(m)
    })
    .await;
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Unhealthy: Liveness probe failed: dial tcp")),
        "{messages:?}"
    );

    // An exec probe cannot run in a Wasm container: a warning, and ignored.
    let extra = json!({"containers": [{"name": "main", "image": image,
        "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}}}]});
    c.pod("exec", &image, "Always", extra).await;
    eventually(20, "ready despite the exec probe", || async {
        let p = c.pod_json("exec").await?;
        (container_status(&p)["ready"] == true).then_some(())
    })
    .await;
    eventually(10, "a ProbeWarning event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("ProbeWarning")
                    && e.involved_object.name.as_deref() == Some("exec")
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_node_marked_unknown_by_the_control_plane_reports_ready_again_within_10s() {
    let c = cluster().await;
    // A long refresh: only the 10 s check can bring Ready back in time.
    let _agent = c.start_agent("n1", |cfg| cfg.status_refresh = Duration::from_secs(600));
    let nodes: Api<Node> = Api::all(c.client.clone());
    eventually(20, "the node registered Ready", || async {
        let n = nodes.get_opt("n1").await.ok()??;
        let ready = n
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "True").then_some(())
    })
    .await;
    // What the node lifecycle controller writes when the Lease went stale.
    let unknown = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown",
        "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}]}});
    nodes
        .patch_status(
            "n1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&unknown),
        )
        .await
        .expect("mark Unknown");
    eventually(20, "Ready=True again", || async {
        let n = nodes.get_opt("n1").await.ok()??;
        let ready = n
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "True" && ready.reason.as_deref() == Some("KubeletReady")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_node_serves_cluster_dns_from_services_and_endpoint_slices() {
    use crate::dns::testing::{addresses, ask, dig, have_dig, upstream};
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::{RData, RecordType};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    let c = cluster().await;
    let up = upstream(&[("outside.example.", "192.0.2.7".parse().expect("ip"))]).await;
    let up_addr = up.addr;
    let _agent = c.start_agent("n1", |cfg| {
        cfg.dns_listen = Some("127.0.0.1:0".parse().expect("addr"));
        cfg.dns_upstreams = vec![up_addr];
    });
    // The node says where its DNS server is.
    let nodes: Api<Node> = Api::all(c.client.clone());
    let addr: std::net::SocketAddr = eventually(20, "the skiff.dev/dns annotation", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get_opt("n1").await.ok()??;
            n.metadata.annotations?.get(DNS_ANNOTATION)?.parse().ok()
        }
    })
    .await;

    let services: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let create = |v: Value| {
        let services = services.clone();
        async move {
            let s: Service = serde_json::from_value(v).expect("service");
            services
                .create(&PostParams::default(), &s)
                .await
                .expect("create service")
        }
    };
    let web = create(
        json!({"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80}]}}),
    )
    .await;
    let cluster_ip = web.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP");
    create(json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})).await;
    create(json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "outside.example"}})).await;
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.0.6"], "hostname": "db-1", "conditions": {"ready": true}},
            {"addresses": ["10.244.0.7"], "hostname": "db-2", "conditions": {"ready": false}},
        ],
    }))
    .expect("slice");
    Api::<EndpointSlice>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &slice)
        .await
        .expect("create slice");

    // The ClusterIP, once the watch has brought the Service in.
    let got = eventually(20, "web's A record", || async move {
        let m = ask(addr, "web.default.svc.cluster.local.", RecordType::A, false).await;
        (m.metadata.response_code == ResponseCode::NoError).then(|| addresses(&m))
    })
    .await;
    assert_eq!(got.as_slice(), std::slice::from_ref(&cluster_ip));
    // The headless Service: its ready endpoints, and each pod by hostname.
    let db = eventually(20, "db's endpoints", || async move {
        let m = ask(addr, "db.default.svc.cluster.local.", RecordType::A, true).await;
        Some(addresses(&m)).filter(|a| !a.is_empty())
    })
    .await;
    assert_eq!(db, ["10.244.0.5", "10.244.0.6"]);
    let m = ask(
        addr,
        "db-1.db.default.svc.cluster.local.",
        RecordType::A,
        false,
    )
    .await;
    assert_eq!(addresses(&m), ["10.244.0.6"]);
    let m = ask(
        addr,
        "db-2.db.default.svc.cluster.local.",
        RecordType::A,
        false,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(
        addr,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
        false,
    )
    .await;
    assert_eq!(m.answers.len(), 2);
    // The ExternalName: an alias, followed upstream.
    let m = ask(addr, "ext.default.svc.cluster.local.", RecordType::A, false).await;
    assert!(matches!(&m.answers[0].data, RData::CNAME(t) if t.0.to_ascii() == "outside.example."));
    assert_eq!(addresses(&m), ["192.0.2.7"]);
    // Out of the zone: forwarded, the answer relayed.
    let m = ask(addr, "outside.example.", RecordType::A, false).await;
    assert_eq!(addresses(&m), ["192.0.2.7"]);
    assert!(up.asked.load(std::sync::atomic::Ordering::SeqCst) >= 2);

    if have_dig() {
        let out = tokio::task::spawn_blocking(move || {
            let short = |name: &str, t: &str| dig(addr, name, t, &["+short"]).expect("dig runs");
            (
                short("web.default.svc.cluster.local", "A"),
                short("db.default.svc.cluster.local", "A"),
                short("outside.example", "A"),
                dig(addr, "nope.default.svc.cluster.local", "A", &[]).expect("dig runs"),
            )
        })
        .await
        .expect("join");
        assert_eq!(out.0.trim(), cluster_ip);
        let mut db: Vec<&str> = out.1.lines().collect();
        db.sort();
        assert_eq!(db, ["10.244.0.5", "10.244.0.6"]);
        assert_eq!(out.2.trim(), "192.0.2.7");
        assert!(out.3.contains("status: NXDOMAIN"), "{}", out.3);
    }

    // Deleting a Service takes its name away.
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(20, "web to be gone", || async move {
        let m = ask(addr, "web.default.svc.cluster.local.", RecordType::A, false).await;
        (m.metadata.response_code == ResponseCode::NXDomain).then_some(())
    })
    .await;
}

#[tokio::test]
async fn projected_tokens_are_renewed_in_place_with_a_new_bound_token() {
    assert_eq!(env::refresh_after(600), Duration::from_secs(480));
    assert_eq!(env::refresh_after(3607), Duration::from_secs(2885));
    assert_eq!(env::refresh_after(7 * 86_400), Duration::from_secs(86_400));
    let dir = tempfile::tempdir().expect("tmp");
    let (running, client) = api_server(dir.path()).await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "reader", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}],
                 "volumes": [{"name": "short", "projected": {"sources": [
                     {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}}]}}]},
    }))
    .expect("pod");
    let pod = Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let sources = env::fetch_sources(&client, &pod).await.expect("sources");
    let pod_dir = dir.path().join("pod");
    env::materialize_volumes(&pod, &sources, &Default::default(), &pod_dir).expect("volumes");
    let file = pod_dir.join("volumes/short/token");
    let first = std::fs::read_to_string(&file).expect("token written");
    // The admission's own volume holds a token too, with the CA and namespace.
    let access = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .expect("volumes")[1]
        .name
        .clone();
    assert!(access.starts_with("kube-api-access-"), "{access}");
    let ns = std::fs::read_to_string(pod_dir.join("volumes").join(&access).join("namespace"));
    assert_eq!(ns.expect("namespace file"), "default");

    // Tokens carry whole seconds: the next one differs a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env::refresh_token(&client, &pod, &pod_dir, &(String::new(), 600))
        .await
        .expect("renewed");
    let second = std::fs::read_to_string(&file).expect("token");
    assert_ne!(first, second, "a new token");
    assert!(!pod_dir.join("volumes/short/token.skiff-new").exists());
    // The new token authenticates (as default, which may not list pods: 403,
    // not 401) for as long as the pod exists.
    let listing_pods_as = |token: String| {
        let yaml = apiserver::server::kubeconfig_yaml(running.addr, &running.ca_pem, &token);
        async move {
            let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig");
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .expect("config");
            let c = kube::Client::try_from(cfg).expect("client");
            match Api::<Pod>::namespaced(c, "kube-system")
                .list(&Default::default())
                .await
            {
                Err(kube::Error::Api(s)) => s.code,
                other => panic!("expected an API error: {other:?}"),
            }
        }
    };
    assert_eq!(listing_pods_as(second.clone()).await, 403);
    Api::<Pod>::namespaced(client.clone(), "default")
        .delete("reader", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete");
    eventually(10, "the token dies with its pod", || async {
        (listing_pods_as(second.clone()).await == 401).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_node_confirming_a_deletion_is_not_refused_for_a_concurrent_status_write() {
    // The node's final delete names only the pod's uid; a status patch
    // landing between the API server's read and its delete must not turn
    // it into a 409 (the pod would stay Terminating for good).
    let dir = tempfile::tempdir().expect("tmp");
    let (_running, client) = api_server(dir.path()).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..30 {
        let name = format!("racy-{i}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": "n1", "automountServiceAccountToken": false,
                     "containers": [{"name": "c", "image": "x"}]},
        }))
        .expect("pod");
        let pod = pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("create");
        let writer = {
            let (pods, name) = (pods.clone(), name.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let status = json!({"status": {"message": format!("write {n}")}});
                    if pods
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        pods.delete(&name, &params)
            .await
            .unwrap_or_else(|e| panic!("deleting {name} during status writes: {e}"));
        writer.await.expect("writer");
    }
}
