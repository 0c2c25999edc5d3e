//! `skiff bench`: benchmarks that run the real server in-process and
//! drive it over HTTPS, each beside a peer in the same run so that the
//! numbers can be compared on a noisy machine; `linux-cycles` starts the
//! real `skiff up` instead and checks what Linux pods leave behind.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use http::Method;
use http_body_util::BodyExt;
use serde_json::json;

use crate::client::Client;

mod linux_cycles;
mod rbac;
mod scheduler;
mod tls;
mod wasm;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Durable creates per second and their latency with concurrent
    /// clients, with group commit and (as the peer) without; then watch
    /// fan-out to many watchers.
    Api(ApiArgs),
    /// Wasm pods on a node agent: start latency beside the API floor,
    /// density and node memory, a many-replica Deployment.
    Wasm(wasm::WasmArgs),
    /// Scheduler throughput: many nodes, many pending pods, binds/s beside
    /// one bind at a time.
    Scheduler(scheduler::SchedulerArgs),
    /// Authorization cost with many RoleBindings, beside the admin's reads.
    Rbac(rbac::RbacArgs),
    /// A new connection's TLS handshake and authentication (token, RBAC,
    /// client certificate) beside an open one's; node join time.
    Tls(tls::TlsArgs),
    /// Linux pod create/delete cycles through the API of a real `skiff up`,
    /// and a check that mounts, cgroups, network namespaces, veths and
    /// shims return to where they started.
    LinuxCycles(linux_cycles::LinuxCyclesArgs),
}

#[derive(Debug, Args)]
struct ApiArgs {
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// How long each create phase runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Watchers in the fan-out phase.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Objects created in the fan-out phase (each reaches every watcher).
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Where the benchmark's stores go (a fresh directory per phase).
    #[arg(long, default_value = "/tmp/skiff-bench")]
    dir: PathBuf,
}

pub fn run(a: BenchArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match a.what {
        What::Api(args) => rt.block_on(api(args))?,
        What::Wasm(args) => rt.block_on(wasm::run(args))?,
        What::Scheduler(args) => rt.block_on(scheduler::run(args))?,
        What::Rbac(args) => rt.block_on(rbac::run(args))?,
        What::Tls(args) => rt.block_on(tls::run(args))?,
        What::LinuxCycles(args) => rt.block_on(linux_cycles::run(args))?,
    }
    Ok(ExitCode::SUCCESS)
}

struct Server {
    client: Client,
    running: apiserver::server::Running,
}

async fn start(dir: PathBuf, max_batch: usize) -> Result<Server> {
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = apiserver::server::Config::new(dir, "127.0.0.1:0".parse()?);
    cfg.max_batch = max_batch;
    let running = apiserver::server::start(cfg).await?;
    let client = Client::new(running.addr, &running.ca_pem, &running.admin_token)?;
    Ok(Server { client, running })
}

/// POST `body` on a connection of its own; the created (or answered)
/// object.
/// A bootstrap token (`ID.SECRET`) made as `skiff token create` makes
/// them, the `i`th of the run.
async fn bootstrap_token(admin: &Client, i: usize) -> Result<String> {
    use base64::Engine as _;
    let (id, secret) = (format!("b{i:05}"), format!("{i:016}"));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    post(
        admin,
        "/api/v1/namespaces/kube-system/secrets",
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": format!("bootstrap-token-{id}")},
            "data": {"token-id": b64(&id), "token-secret": b64(&secret),
                     "usage-bootstrap-authentication": b64("true")},
        }),
    )
    .await?;
    Ok(format!("{id}.{secret}"))
}

/// A pod bound to `node` that reads ConfigMap `configmap` (in `ns`), so
/// that the Node authorizer lets the node read it.
async fn pod_using(
    admin: &Client,
    ns: &str,
    name: &str,
    node: &str,
    configmap: &str,
) -> Result<()> {
    post(
        admin,
        &format!("/api/v1/namespaces/{ns}/pods"),
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "example.local/c:v1",
                "envFrom": [{"configMapRef": {"name": configmap}}]}]},
        }),
    )
    .await?;
    Ok(())
}

async fn post(client: &Client, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
    let mut conn = client.connect().await?;
    let (status, bytes) = conn
        .call(Method::POST, path, Some(body.to_string().into_bytes()))
        .await?;
    if status != http::StatusCode::CREATED && status != http::StatusCode::OK {
        anyhow::bail!("POST {path}: {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

fn configmap(name: &str) -> Vec<u8> {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"bench": "api"}},
           "data": {"payload": "x".repeat(256)}})
    .to_string()
    .into_bytes()
}

/// What a load phase measured.
struct LoadStats {
    ops: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl LoadStats {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(sorted.len() - 1)]
}

/// One request of a load phase: method, path and body.
type Request = (Method, String, Option<Vec<u8>>);

/// `clients` connections, each sending `request(client, i)` as fast as it
/// is answered until `duration` passes (or `limit` requests were sent in
/// all); every answer must be `want`.
async fn load<F>(
    client: &Client,
    clients: usize,
    duration: Duration,
    limit: Option<usize>,
    want: http::StatusCode,
    request: F,
) -> Result<LoadStats>
where
    F: Fn(usize, usize) -> Request + Clone + Send + 'static,
{
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let counter = counter.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = client.connect().await?;
            let mut lat = Vec::new();
            let mut i = 0;
            while start.elapsed() < duration {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if limit.is_some_and(|l| n >= l) {
                    break;
                }
                let (method, path, body) = request(c, i);
                let t = Instant::now();
                let (status, answer) = conn.call(method.clone(), &path, body).await?;
                if status != want {
                    bail!(
                        "{method} {path} answered {status}: {}",
                        String::from_utf8_lossy(&answer)
                    );
                }
                lat.push(t.elapsed());
                i += 1;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    Ok(LoadStats {
        ops: all.len(),
        elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    })
}

/// `clients` connections creating ConfigMaps in `ns` (see [`load`]).
async fn create_load(
    client: &Client,
    ns: &str,
    clients: usize,
    duration: Duration,
    limit: Option<usize>,
) -> Result<LoadStats> {
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    load(
        client,
        clients,
        duration,
        limit,
        http::StatusCode::CREATED,
        move |c, i| {
            (
                Method::POST,
                path.clone(),
                Some(configmap(&format!("c{c}-{i}"))),
            )
        },
    )
    .await
}

async fn api(a: ApiArgs) -> Result<()> {
    let dur = Duration::from_secs(a.seconds);
    println!(
        "skiff bench api: {} clients, {} s per phase, data under {}",
        a.clients,
        a.seconds,
        a.dir.display()
    );
    let mut rows = Vec::new();
    for (label, batch) in [
        (
            "group commit (skiff default)",
            apiserver::store::redb::MAX_BATCH,
        ),
        ("one fsync per write (peer)", 1),
    ] {
        let server = start(a.dir.join(format!("create-{batch}")), batch).await?;
        let before = server.running.store.stats();
        let s = create_load(&server.client, "default", a.clients, dur, None).await?;
        let after = server.running.store.stats();
        let commits = (after.commits - before.commits).max(1);
        let per_commit = (after.writes - before.writes) as f64 / commits as f64;
        println!(
            "  {label}: {} creates in {:.1} s, {per_commit:.1} writes per commit",
            s.ops,
            s.elapsed.as_secs_f64()
        );
        rows.push((label, s, per_commit));
    }
    println!();
    println!(
        "| durable creates, {} clients | creates/s | p50 ms | p99 ms | writes per fsync'd commit |",
        a.clients
    );
    println!("|---|---:|---:|---:|---:|");
    for (label, s, per_commit) in &rows {
        println!(
            "| {label} | {:.0} | {:.2} | {:.2} | {per_commit:.1} |",
            s.rate(),
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "ratio group commit / one fsync per write: {:.1}x creates/s",
        rows[0].1.rate() / rows[1].1.rate().max(1e-9)
    );

    let server = start(a.dir.join("fanout"), apiserver::store::redb::MAX_BATCH).await?;
    fanout(&server.client, a.watchers, a.events, a.clients).await?;
    Ok(())
}

/// `watchers` watches on one collection, then `events` creates: how fast
/// do all watchers receive all events?
async fn fanout(client: &Client, watchers: usize, events: usize, clients: usize) -> Result<()> {
    let (rv_status, rv_body) = client
        .connect()
        .await?
        .call(
            Method::GET,
            "/api/v1/namespaces/default/configmaps?limit=1",
            None,
        )
        .await?;
    if !rv_status.is_success() {
        bail!("list answered {rv_status}");
    }
    let rv = serde_json::from_slice::<serde_json::Value>(&rv_body)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(watchers);
    for _ in 0..watchers {
        let client = client.clone();
        let ready = ready_tx.clone();
        let path = format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}");
        tasks.push(tokio::spawn(async move {
            let mut conn = client.connect().await?;
            let resp = conn.send(Method::GET, &path, None).await?;
            let mut body = resp.into_body();
            ready.send(()).await.ok();
            let mut seen = 0;
            while seen < events {
                let frame = body.frame().await.context("watch ended early")??;
                if let Some(d) = frame.data_ref() {
                    seen += d.iter().filter(|b| **b == b'\n').count();
                }
            }
            Ok::<_, anyhow::Error>(Instant::now())
        }));
    }
    for _ in 0..watchers {
        ready_rx.recv().await.context("a watcher failed to start")?;
    }
    let start = Instant::now();
    let writes = create_load(
        client,
        "default",
        clients,
        Duration::from_secs(600),
        Some(events),
    )
    .await?;
    let mut last = start;
    for t in tasks {
        last = last.max(t.await??);
    }
    let elapsed = last - start;
    let delivered = (watchers * events) as f64;
    println!();
    println!("| watch fan-out | watchers | events | delivered events/s | all delivered after |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| configmaps, {clients} writers | {watchers} | {events} | {:.0} | {:.2} s (writes took {:.2} s) |",
        delivered / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        writes.elapsed.as_secs_f64()
    );
    Ok(())
}
