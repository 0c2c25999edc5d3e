//! `skiff bench wasm`: Wasm pods on a real node agent.
//!
//! The API server runs in this process; the node is a separate
//! `skiff node` process (this binary), so its memory can be read on its
//! own. The image is in the node's store before the run (pull policy
//! IfNotPresent: "image cached").
//!
//! - **start latency**: one pod at a time, from the create request to a
//!   watch seeing `phase: Running`. The peer, in the same run, is the
//!   floor any node agent could reach on this API server: the benchmark
//!   itself marks each pod Running as soon as it is created (one status
//!   write) and the same watch sees it.
//! - **density**: many idle pods created concurrently on the one node,
//!   until all are Running; the node process's RSS idle and per pod, and
//!   its memory mappings (what caps the Wasm pool).
//! - **deployment**: a Deployment scaled 0 → N through the scheduler and
//!   the ReplicaSet and Deployment controllers until every pod is Running,
//!   then a rollout of all N replicas until `kubectl rollout status` would
//!   be done.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;

use super::percentile;

/// An idle WASI command: sleeps an hour at a time, forever (a module
/// waiting for work, as most edge pods do).
const IDLE_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; one clock subscription at 0: tag 0 (clock) at 8, clock id 1
    ;; (monotonic) at 16, timeout 3600 s in ns at 24
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (loop $forever
      (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
      (br $forever))))"#;

const IMAGE: &str = "bench.local/skiff/idle:v1";
const NODE: &str = "bench-node";

#[derive(Debug, Args)]
pub struct WasmArgs {
    /// Pods started one at a time for the latency figures (each side).
    #[arg(long, default_value_t = 200)]
    latency_pods: usize,
    /// Idle pods started concurrently for the density figures.
    #[arg(long, default_value_t = 2000)]
    density_pods: usize,
    /// Replicas of the Deployment (0 skips it).
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// The Deployment's pods opt out of the ServiceAccount token volume
    /// (automountServiceAccountToken: false), to see what the token costs.
    #[arg(long)]
    no_service_account_token: bool,
    /// Creates in flight at once in the density phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Where the API server's store and the node's data go.
    #[arg(long, default_value = "/tmp/skiff-bench-wasm")]
    dir: PathBuf,
}

/// When each pod was first seen Running by the watch.
#[derive(Default)]
struct Seen {
    running: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

impl Seen {
    async fn wait(&self, name: &str, limit: Duration) -> Result<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if let Some(t) = self.lock().get(name) {
                return Ok(*t);
            }
            if Instant::now() > deadline {
                bail!("pod {name} was not seen Running within {limit:?}");
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    async fn wait_count(&self, prefix: &str, n: usize, limit: Duration) -> Result<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            let (count, last) = {
                let m = self.lock();
                let it = m.iter().filter(|(k, _)| k.starts_with(prefix));
                it.fold((0, None::<Instant>), |(c, l), (_, t)| {
                    (c + 1, Some(l.map_or(*t, |l| l.max(*t))))
                })
            };
            if count >= n {
                return last.context("no pods");
            }
            if Instant::now() > deadline {
                bail!("{count} of {n} {prefix}* pods Running after {limit:?}");
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn watch_running(pods: Api<Pod>, seen: Arc<Seen>) {
    let stream = watcher(pods, watcher::Config::default().labels("bench=wasm"));
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        let pods: Vec<Pod> = match ev {
            Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => vec![p],
            _ => continue,
        };
        let now = Instant::now();
        for p in pods {
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if let (true, Some(name)) = (running, p.metadata.name) {
                seen.lock().entry(name).or_insert(now);
                seen.changed.notify_waiters();
            }
        }
    }
}

fn pod(name: &str, node: &str) -> Pod {
    pod_with_token(name, node, true)
}

/// A bench pod; `token: false` opts out of the ServiceAccount token volume
/// (`automountServiceAccountToken: false`), whose TokenRequest and
/// `kube-root-ca.crt` read every other pod's start waits for.
fn pod_with_token(name: &str, node: &str, token: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "wasm"}},
        "spec": {
            "nodeName": node, "runtimeClassName": "wasmtime",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": token,
            "containers": [{"name": "idle", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                            "resources": {"limits": {"memory": "1Mi"}}}],
        }
    }))
    .unwrap_or_default()
}

/// The node process and what it costs.
struct NodeProcess {
    child: std::process::Child,
}

impl NodeProcess {
    fn rss_kib(&self) -> u64 {
        status_field(self.child.id(), "VmRSS:")
    }

    fn maps(&self) -> usize {
        std::fs::read_to_string(format!("/proc/{}/maps", self.child.id()))
            .map(|m| m.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn start_node(
    dir: &Path,
    server: &str,
    token: &str,
    ca: &Path,
    max_pods: usize,
) -> Result<NodeProcess> {
    let node_dir = dir.join("node");
    let store = runtime::images::ImageStore::open(
        &node_dir.join(runtime::images::STORE_DIR),
        Default::default(),
    )?;
    let wasm = wat::parse_str(IDLE_WAT)?;
    store.add_wasm(IMAGE, &wasm)?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["node", "--server", server, "--ca-file"])
        .arg(ca)
        .arg("--data-dir")
        .arg(&node_dir)
        .args(["--name", NODE, "--node-port", "0", "--node-ip", "127.0.0.1"])
        .args([
            "--max-pods",
            &max_pods.to_string(),
            "--max-wasm-memory",
            "1Mi",
        ])
        .env("SKIFF_TOKEN", token)
        .env("SKIFF_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting the node process")?;
    Ok(NodeProcess { child })
}

async fn wait_ready(nodes: &Api<Node>) -> Result<()> {
    let t = Instant::now();
    loop {
        if let Ok(n) = nodes.get(NODE).await {
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                return Ok(());
            }
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("node {NODE} did not become Ready in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Latency {
    p50: Duration,
    p99: Duration,
}

async fn sequential(
    pods: &Api<Pod>,
    seen: &Seen,
    prefix: &str,
    n: usize,
    node: &str,
    mark: bool,
    token: bool,
) -> Result<Latency> {
    let mut lat = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}{i}");
        let t = Instant::now();
        pods.create(&PostParams::default(), &pod_with_token(&name, node, token))
            .await?;
        if mark {
            let status = json!({"status": {"phase": "Running"}});
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
        }
        let at = seen.wait(&name, Duration::from_secs(60)).await?;
        lat.push(at.saturating_duration_since(t));
    }
    // The first pod of an image compiles it: "image cached" is the rest.
    if lat.len() > 1 {
        lat.remove(0);
    }
    lat.sort();
    Ok(Latency {
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    })
}

async fn delete_all(pods: &Api<Pod>) -> Result<()> {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    pods.delete_collection(&dp, &ListParams::default().labels("bench=wasm"))
        .await?;
    let t = Instant::now();
    while !pods
        .list(&ListParams::default().labels("bench=wasm"))
        .await?
        .items
        .is_empty()
    {
        if t.elapsed() > Duration::from_secs(300) {
            bail!("pods still there after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

pub async fn run(a: WasmArgs) -> Result<()> {
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let cfg = apiserver::server::Config::new(a.dir.join("api"), "127.0.0.1:0".parse()?);
    let running = apiserver::server::start(cfg).await?;
    let ca = a.dir.join("ca.pem");
    std::fs::write(&ca, &running.ca_pem)?;
    let server = format!("https://{}", running.addr);
    let client =
        crate::commands::node::client(&server, &running.ca_pem, &running.admin_token).await?;
    let max_pods = a.density_pods.max(a.replicas).max(a.latency_pods) + 16;
    let node = start_node(&a.dir, &server, &running.admin_token, &ca, max_pods)?;
    let nodes: Api<Node> = Api::all(client.clone());
    wait_ready(&nodes).await?;
    let rc: RuntimeClass =
        serde_json::from_value(json!({"metadata": {"name": "wasmtime"}, "handler": "wasmtime"}))?;
    Api::<RuntimeClass>::all(client.clone())
        .create(&PostParams::default(), &rc)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let seen = Arc::new(Seen::default());
    tokio::spawn(watch_running(pods.clone(), seen.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = node.rss_kib();
    let idle_maps = node.maps();
    println!("skiff bench wasm: node process RSS idle {idle_rss} KiB, {idle_maps} mappings");

    // Start latency, skiff beside the floor.
    let floor = sequential(
        &pods,
        &seen,
        "floor-",
        a.latency_pods,
        "no-such-node",
        true,
        true,
    )
    .await?;
    let skiff = sequential(&pods, &seen, "start-", a.latency_pods, NODE, false, true).await?;
    let tokenless = sequential(&pods, &seen, "bare-", a.latency_pods, NODE, false, false).await?;
    println!();
    println!("| Wasm pod create → Running seen by a watch, image cached ({} pods, one at a time) | p50 ms | p99 ms |", a.latency_pods);
    println!("|---|---:|---:|");
    println!(
        "| skiff node agent (wasmtime) | {:.2} | {:.2} |",
        ms(skiff.p50),
        ms(skiff.p99)
    );
    println!(
        "| skiff node agent, `automountServiceAccountToken: false` | {:.2} | {:.2} |",
        ms(tokenless.p50),
        ms(tokenless.p99)
    );
    println!(
        "| floor: the benchmark marks the pod Running itself (peer) | {:.2} | {:.2} |",
        ms(floor.p50),
        ms(floor.p99)
    );
    println!(
        "ratio skiff / floor at p50: {:.2}x",
        skiff.p50.as_secs_f64() / floor.p50.as_secs_f64().max(1e-9)
    );
    delete_all(&pods).await?;

    if a.density_pods > 0 {
        density(&a, &pods, &seen, &node, idle_rss, idle_maps).await?;
    }
    if a.replicas > 0 {
        deployment(&client, &seen, a.replicas, !a.no_service_account_token).await?;
    }
    drop(node);
    Ok(())
}

async fn density(
    a: &WasmArgs,
    pods: &Api<Pod>,
    seen: &Seen,
    node: &NodeProcess,
    idle_rss: u64,
    idle_maps: usize,
) -> Result<()> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = node.rss_kib();
    let t = Instant::now();
    futures::stream::iter(0..a.density_pods)
        .map(|i| {
            let pods = pods.clone();
            async move {
                pods.create(&PostParams::default(), &pod(&format!("dense-{i}"), NODE))
                    .await
            }
        })
        .buffer_unordered(a.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let created = t.elapsed();
    let last = seen
        .wait_count("dense-", a.density_pods, Duration::from_secs(600))
        .await?;
    let all = last.saturating_duration_since(t);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = node.rss_kib();
    let maps = node.maps();
    let per_pod = (after.saturating_sub(before)) as f64 / a.density_pods.max(1) as f64;
    println!();
    println!("| {} idle Wasm pods on one node | value |", a.density_pods);
    println!("|---|---:|");
    println!(
        "| created (API, {} in flight) | {:.2} s |",
        a.concurrency,
        created.as_secs_f64()
    );
    println!(
        "| all Running | {:.2} s ({:.0} pods/s) |",
        all.as_secs_f64(),
        a.density_pods as f64 / all.as_secs_f64()
    );
    println!("| node RSS idle → with pods | {idle_rss} KiB → {after} KiB |");
    println!("| node RSS per pod | {per_pod:.1} KiB |");
    println!(
        "| node memory mappings | {idle_maps} → {maps} ({:.2} per pod) |",
        (maps.saturating_sub(idle_maps)) as f64 / a.density_pods.max(1) as f64
    );
    delete_all(pods).await
}

async fn deployment(
    client: &kube::Client,
    seen: &Seen,
    replicas: usize,
    token: bool,
) -> Result<()> {
    let c = client.clone();
    let controllers =
        tokio::spawn(async move { controllers::run_all(c, Default::default()).await });
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "fleet"},
        "spec": {
            "replicas": 0,
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "selector": {"matchLabels": {"app": "fleet"}},
            "template": {
                "metadata": {"labels": {"app": "fleet", "bench": "wasm"}},
                "spec": {"runtimeClassName": "wasmtime", "terminationGracePeriodSeconds": 0, "automountServiceAccountToken": token,
                         "containers": [{"name": "idle", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                         "env": [{"name": "REVISION", "value": "1"}],
                                         "resources": {"limits": {"memory": "1Mi"}}}]}
            }
        }
    }))?;
    deploys.create(&PostParams::default(), &d).await?;
    wait_rolled_out(&deploys, 0, Duration::from_secs(60)).await?;

    // Scale 0 → N: from the scale request to the last pod seen Running.
    let t = Instant::now();
    let scale = json!({"spec": {"replicas": replicas}});
    deploys
        .patch_scale("fleet", &PatchParams::default(), &Patch::Merge(&scale))
        .await?;
    let last = seen
        .wait_count("fleet-", replicas, Duration::from_secs(600))
        .await?;
    let scaled = last.saturating_duration_since(t);
    wait_rolled_out(&deploys, replicas, Duration::from_secs(600)).await?;

    // A rollout of every replica (25% surge, 25% unavailable): from the
    // template change until `kubectl rollout status` would return.
    let t = Instant::now();
    let change = json!({"spec": {"template": {"spec": {"containers": [{"name": "idle", "env": [{"name": "REVISION", "value": "2"}]}]}}}});
    deploys
        .patch("fleet", &PatchParams::default(), &Patch::Strategic(&change))
        .await?;
    wait_rolled_out(&deploys, replicas, Duration::from_secs(900)).await?;
    let rolled = t.elapsed();
    println!();
    println!("| {replicas}-replica Wasm Deployment (scheduler, ReplicaSet, Deployment controllers, one node) | s | pods/s |");
    println!("|---|---:|---:|");
    println!(
        "| scale 0 → {replicas}: every pod Running | {:.2} | {:.0} |",
        scaled.as_secs_f64(),
        replicas as f64 / scaled.as_secs_f64()
    );
    println!("| rollout of all {replicas} (maxSurge 25%, maxUnavailable 25%) until rollout status is done | {:.2} | {:.0} |", rolled.as_secs_f64(), replicas as f64 / rolled.as_secs_f64());
    controllers.abort();
    Ok(())
}

/// What `kubectl rollout status` waits for: the controller saw the latest
/// spec, and every replica is updated and available, with no old ones.
async fn wait_rolled_out(
    deploys: &Api<Deployment>,
    replicas: usize,
    limit: Duration,
) -> Result<()> {
    let t = Instant::now();
    loop {
        let d = deploys.get("fleet").await?;
        let generation = d.metadata.generation.unwrap_or(0);
        let st = d.status.unwrap_or_default();
        let want = i32::try_from(replicas).unwrap_or(i32::MAX);
        let done = st.observed_generation.unwrap_or(0) >= generation
            && st.updated_replicas.unwrap_or(0) == want
            && st.replicas.unwrap_or(0) == want
            && st.available_replicas.unwrap_or(0) == want;
        if done {
            return Ok(());
        }
        if t.elapsed() > limit {
            bail!("the Deployment did not roll out in {limit:?}: {st:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
