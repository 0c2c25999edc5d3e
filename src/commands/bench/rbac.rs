//! `skiff bench rbac`: what authorization costs with many RoleBindings.
//!
//! One namespace holds `--bindings` RoleBindings (each a ServiceAccount
//! bound to `view`); a ServiceAccount among them reads a ConfigMap as
//! fast as `--clients` connections are answered. Peers in the same run:
//! the admin doing the same reads (`system:masters`, no lookup), and a
//! refused read (a Secret, which `view` does not give).
//!
//! Then a node (`system:node:NAME`, joined with a bootstrap token) with
//! `--pods` pods spread over 100 nodes in the store: its reads of a
//! ConfigMap one of its pods uses are answered by the Node authorizer's
//! graph, and of one no pod of it uses refused, whatever the pod count.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use futures::{stream, StreamExt, TryStreamExt};
use http::{Method, StatusCode};
use serde_json::json;

use super::{bootstrap_token, load, pod_using, post, start, LoadStats};
use crate::client::Client;

#[derive(Debug, Args)]
pub struct RbacArgs {
    /// RoleBindings in the namespace.
    #[arg(long, default_value_t = 10_000)]
    bindings: usize,
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// How long each phase runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Pods in the store for the node phase (bound to 100 nodes).
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Where the API server's store goes (a fresh directory per phase).
    #[arg(long, default_value = "/tmp/skiff-bench-rbac")]
    dir: std::path::PathBuf,
}

/// GETs of `path` that must answer `want` (see [`load`]).
async fn reads(
    client: &Client,
    path: &str,
    want: StatusCode,
    clients: usize,
    secs: u64,
) -> Result<LoadStats> {
    let path = path.to_string();
    load(
        client,
        clients,
        Duration::from_secs(secs),
        None,
        want,
        move |_, _| (Method::GET, path.clone(), None),
    )
    .await
}

pub async fn run(a: RbacArgs) -> Result<()> {
    println!(
        "skiff bench rbac: {} RoleBindings, {} clients, {} s per phase",
        a.bindings, a.clients, a.seconds
    );
    let server = start(a.dir.clone(), apiserver::store::redb::MAX_BATCH).await?;
    let admin = &server.client;
    post(
        admin,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}),
    )
    .await?;
    post(admin, "/api/v1/namespaces/bench/configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}, "data": {"k": "v"}})).await?;
    post(
        admin,
        "/api/v1/namespaces/bench/serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}),
    )
    .await?;
    let made = Instant::now();
    stream::iter(0..a.bindings)
        .map(|i| {
            let subject = if i + 1 == a.bindings { "reader".to_string() } else { format!("sa-{i}") };
            post(admin, "/apis/rbac.authorization.k8s.io/v1/namespaces/bench/rolebindings", json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": format!("rb-{i}")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": subject, "namespace": "bench"}],
            }))
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    println!(
        "  {} RoleBindings created in {:.1} s",
        a.bindings,
        made.elapsed().as_secs_f64()
    );
    let token = post(
        admin,
        "/api/v1/namespaces/bench/serviceaccounts/reader/token",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    )
    .await?;
    let token = token["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let reader = Client::new(server.running.addr, &server.running.ca_pem, &token)?;
    // Let the cache catch up with the last binding.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let target = "/api/v1/namespaces/bench/configmaps/target";
    let denied = "/api/v1/namespaces/bench/secrets";
    let rows = [
        (
            "admin (system:masters, no lookup; peer)",
            reads(admin, target, StatusCode::OK, a.clients, a.seconds).await?,
        ),
        (
            "ServiceAccount allowed by RBAC (cache)",
            reads(&reader, target, StatusCode::OK, a.clients, a.seconds).await?,
        ),
        (
            "ServiceAccount refused (403 from the cache)",
            reads(&reader, denied, StatusCode::FORBIDDEN, a.clients, a.seconds).await?,
        ),
    ];
    let node = node_client(&server, &a).await?;
    let unused = "/api/v1/namespaces/bench/configmaps/unused";
    let node_rows = [
        (
            "node allowed by the Node authorizer (graph)",
            reads(&node, target, StatusCode::OK, a.clients, a.seconds).await?,
        ),
        (
            "node refused (no pod of it uses the ConfigMap)",
            reads(&node, unused, StatusCode::FORBIDDEN, a.clients, a.seconds).await?,
        ),
    ];
    let rows: Vec<_> = rows.into_iter().chain(node_rows).collect();
    println!();
    println!(
        "| GET with {} RoleBindings, {} clients | requests/s | p50 ms | p99 ms |",
        a.bindings, a.clients
    );
    println!("|---|---:|---:|---:|");
    for (label, p) in &rows {
        println!(
            "| {label} | {:.0} | {:.2} | {:.2} |",
            p.rate(),
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "allowed / admin: {:.2}x requests/s; node / admin: {:.2}x ({} pods)",
        rows[1].1.rate() / rows[0].1.rate(),
        rows[3].1.rate() / rows[0].1.rate(),
        a.pods
    );
    Ok(())
}

/// `--pods` pods over 100 nodes, each reading a ConfigMap of its own
/// (`bench-node-0`'s first reads `target`), and a client that is
/// `bench-node-0`, joined as `skiff node --token` joins.
async fn node_client(server: &super::Server, a: &RbacArgs) -> Result<Client> {
    let admin = &server.client;
    let made = Instant::now();
    stream::iter(0..a.pods)
        .map(|i| {
            let cm = if i == 0 {
                "target".to_string()
            } else {
                format!("cm-{i}")
            };
            async move {
                pod_using(
                    admin,
                    "bench",
                    &format!("pod-{i}"),
                    &format!("bench-node-{}", i % 100),
                    &cm,
                )
                .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    println!(
        "  {} pods created in {:.1} s",
        a.pods,
        made.elapsed().as_secs_f64()
    );
    let ca = &server.running.ca_pem;
    let hash = apiserver::pki::ca_cert_hash(ca).map_err(|e| anyhow::anyhow!(e))?;
    let token = bootstrap_token(admin, 0).await?;
    let pki = a.dir.join("node");
    let _ = std::fs::remove_dir_all(&pki);
    crate::commands::join::connect(
        &format!("https://{}", server.running.addr),
        &pki,
        "bench-node-0",
        Some(&token),
        None,
        Some(&hash),
    )
    .await?;
    let read = |f: &str| std::fs::read_to_string(pki.join(f));
    Client::with_certificate(
        server.running.addr,
        ca,
        &read("node.crt")?,
        &read("node.key")?,
    )
}
