//! A throughput benchmark: fake Ready nodes, many pending pods, the
//! scheduler binding them, binds per second until every pod is bound.
//! `skiff bench scheduler` runs it against a live API server.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::json;

use super::{run, Config};

/// Requests in flight while creating nodes and pods.
const CREATE_CONCURRENCY: usize = 64;
/// Label marking the benchmark's objects, so a run can be told apart.
const BENCH_LABEL: &str = "skiff.dev/bench";

/// What a benchmark run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Nodes created.
    pub nodes: usize,
    /// Pods created.
    pub pods: usize,
    /// Pods seen bound when the run ended.
    pub bound: usize,
    /// From the scheduler's start to the last pod bound.
    pub elapsed: Duration,
    /// `bound / elapsed`.
    pub binds_per_sec: f64,
}

/// Create `nodes` Ready nodes and `pods` pending pods, run the scheduler,
/// and measure until all pods are bound.
pub async fn bench(client: kube::Client, nodes: usize, pods: usize) -> anyhow::Result<BenchReport> {
    bench_with(client, nodes, pods, Config::default()).await
}

/// [`bench`] with a scheduler configured as `cfg` (e.g. one bind at a
/// time, as the peer of a run).
pub async fn bench_with(
    client: kube::Client,
    nodes: usize,
    pods: usize,
    cfg: Config,
) -> anyhow::Result<BenchReport> {
    let run_id = format!("{:x}", chrono::Utc::now().timestamp_millis());
    create_nodes(&client, &run_id, nodes).await?;
    create_pods(&client, &run_id, pods).await?;
    let start = Instant::now();
    let scheduler = tokio::spawn(run(client.clone(), cfg));
    let bound = wait_bound(&client, &run_id, pods).await;
    let elapsed = start.elapsed();
    scheduler.abort();
    let bound = bound?;
    Ok(BenchReport {
        nodes,
        pods,
        bound,
        elapsed,
        binds_per_sec: bound as f64 / elapsed.as_secs_f64().max(1e-9),
    })
}

async fn create_nodes(client: &kube::Client, run_id: &str, n: usize) -> anyhow::Result<()> {
    let api = Api::<Node>::all(client.clone());
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let name = format!("bench-{run_id}-node-{i}");
            async move {
                let node: Node = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {BENCH_LABEL: run_id, "kubernetes.io/hostname": name}},
                    "spec": {},
                }))?;
                api.create(&PostParams::default(), &node).await?;
                let status = json!({"status": {
                    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                    "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "lastHeartbeatTime": chrono::Utc::now().to_rfc3339(),
                                    "lastTransitionTime": chrono::Utc::now().to_rfc3339()}],
                    "runtimeHandlers": [{"name": "wasmtime", "features": {}}],
                }});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

async fn create_pods(client: &kube::Client, run_id: &str, n: usize) -> anyhow::Result<()> {
    let api = Api::<Pod>::namespaced(client.clone(), "default");
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("bench-{run_id}-pod-{i}"), "labels": {BENCH_LABEL: run_id}},
                    "spec": {"containers": [{"name": "c", "image": "bench",
                             "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
                }))?;
                api.create(&PostParams::default(), &pod).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Watch the benchmark's pods until every one is bound; a watch, not
/// repeated lists, so measuring does not load the API server.
async fn wait_bound(client: &kube::Client, run_id: &str, want: usize) -> anyhow::Result<usize> {
    let api = Api::<Pod>::namespaced(client.clone(), "default");
    let cfg = watcher::Config::default().labels(&format!("{BENCH_LABEL}={run_id}"));
    let mut events = std::pin::pin!(watcher::watcher(api, cfg).default_backoff());
    let mut bound = HashSet::new();
    while bound.len() < want {
        let next = tokio::time::timeout(Duration::from_secs(60), events.next()).await;
        let event = match next {
            Err(_) => anyhow::bail!(
                "no progress for a minute: {}/{want} pods bound",
                bound.len()
            ),
            Ok(None) => anyhow::bail!("the pod watch ended"),
            Ok(Some(e)) => e?,
        };
        if let Event::Apply(p) | Event::InitApply(p) = event {
            if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                bound.insert(p.metadata.name.unwrap_or_default());
            }
        }
    }
    Ok(bound.len())
}
