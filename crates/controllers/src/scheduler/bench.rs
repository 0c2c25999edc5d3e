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
    /// For [`Shape::Spread`]: the largest difference, over apps, between
    /// an app's most and least populated zone (the constraint says ≤ 1).
    pub max_zone_skew: Option<i64>,
}

/// Create `nodes` Ready nodes and `pods` pending pods, run the scheduler,
/// and measure until all pods are bound.
pub async fn bench(client: kube::Client, nodes: usize, pods: usize) -> anyhow::Result<BenchReport> {
    bench_with(client, nodes, pods, Config::default()).await
}

/// What the pods ask of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Requests only: the filters and scores every pod runs.
    Plain,
    /// Also, as a service fleet would: pods in 100 apps, each spread
    /// across 10 zones (`DoNotSchedule`, maxSkew 1) and over hostnames
    /// (`ScheduleAnyway`), with preferred anti-affinity to its app's
    /// other pods on the same host.
    Spread,
}

/// Zones the nodes of a [`Shape::Spread`] run are in.
const ZONES: usize = 10;
/// Apps the pods of a [`Shape::Spread`] run belong to.
const APPS: usize = 100;

/// [`bench`] with a scheduler configured as `cfg` (e.g. one bind at a
/// time, as the peer of a run).
pub async fn bench_with(
    client: kube::Client,
    nodes: usize,
    pods: usize,
    cfg: Config,
) -> anyhow::Result<BenchReport> {
    bench_shaped(client, nodes, pods, cfg, Shape::Plain).await
}

/// [`bench_with`] for pods of a given [`Shape`].
pub async fn bench_shaped(
    client: kube::Client,
    nodes: usize,
    pods: usize,
    cfg: Config,
    shape: Shape,
) -> anyhow::Result<BenchReport> {
    let run_id = format!("{:x}", chrono::Utc::now().timestamp_millis());
    create_nodes(&client, &run_id, nodes).await?;
    create_pods(&client, &run_id, pods, shape).await?;
    let start = Instant::now();
    let scheduler = tokio::spawn(run(client.clone(), cfg));
    let bound = wait_bound(&client, &run_id, pods).await;
    let elapsed = start.elapsed();
    scheduler.abort();
    let bound = bound?;
    let max_zone_skew = match shape {
        Shape::Plain => None,
        Shape::Spread => Some(zone_skew(&client, &run_id).await?),
    };
    Ok(BenchReport {
        nodes,
        pods,
        bound,
        elapsed,
        binds_per_sec: bound as f64 / elapsed.as_secs_f64().max(1e-9),
        max_zone_skew,
    })
}

/// The worst zone skew of any app after a [`Shape::Spread`] run.
async fn zone_skew(client: &kube::Client, run_id: &str) -> anyhow::Result<i64> {
    let api = Api::<Pod>::namespaced(client.clone(), "default");
    let list = api
        .list(&kube::api::ListParams::default().labels(&format!("{BENCH_LABEL}={run_id}")))
        .await?;
    let mut counts: std::collections::HashMap<String, [i64; ZONES]> = Default::default();
    for p in list.items {
        let app = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .cloned()
            .unwrap_or_default();
        let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
        let index: usize = node
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        counts.entry(app).or_insert([0; ZONES])[index % ZONES] += 1;
    }
    Ok(counts
        .values()
        .map(|z| z.iter().max().unwrap_or(&0) - z.iter().min().unwrap_or(&0))
        .max()
        .unwrap_or(0))
}

async fn create_nodes(client: &kube::Client, run_id: &str, n: usize) -> anyhow::Result<()> {
    let api = Api::<Node>::all(client.clone());
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let name = format!("bench-{run_id}-node-{i}");
            async move {
                let node: Node = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {
                        BENCH_LABEL: run_id,
                        "kubernetes.io/hostname": name,
                        "topology.kubernetes.io/zone": format!("zone-{}", i % ZONES),
                    }},
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

async fn create_pods(
    client: &kube::Client,
    run_id: &str,
    n: usize,
    shape: Shape,
) -> anyhow::Result<()> {
    let api = Api::<Pod>::namespaced(client.clone(), "default");
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let app = format!("app-{}", i % APPS);
                let mut spec = json!({"containers": [{"name": "c", "image": "bench",
                         "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]});
                if shape == Shape::Spread {
                    let mine = json!({"matchLabels": {"app": app}});
                    spec["topologySpreadConstraints"] = json!([
                        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                         "whenUnsatisfiable": "DoNotSchedule", "labelSelector": mine},
                        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                         "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": mine},
                    ]);
                    spec["affinity"] = json!({"podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
                            "podAffinityTerm": {"labelSelector": mine, "topologyKey": "kubernetes.io/hostname"}}]}});
                }
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("bench-{run_id}-pod-{i}"),
                                 "labels": {BENCH_LABEL: run_id, "app": app}},
                    "spec": spec,
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
