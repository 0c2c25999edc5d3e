//! `skiff bench tls`: what a client pays to be let in, and how long a node
//! takes to join.
//!
//! Each "new connection" sample is a TCP connect, a TLS 1.3 handshake with
//! the cluster CA verified, and one authenticated GET of a ConfigMap,
//! as a kubectl process makes it: as the admin (token, no RBAC lookup), as
//! a ServiceAccount bound to `view` (JWT verified, RBAC evaluated) and as a
//! node with its client certificate (verified in the handshake, then the
//! Node authorizer, since a pod of the node uses the ConfigMap). The peer in the same run is the same GET on a
//! connection already open. The join samples run what `skiff node --token
//! --ca-cert-hash` runs before it starts its agent: read and pin the CA,
//! ask for a certificate with the bootstrap token, and make the first
//! request with it.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use http::{Method, StatusCode};
use serde_json::json;

use super::{bootstrap_token, percentile, pod_using, post, start};
use crate::client::Client;

#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Samples per connection kind.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Nodes joined one after another.
    #[arg(long, default_value_t = 20)]
    joins: usize,
    /// Where the API server's store and the nodes' credentials go.
    #[arg(long, default_value = "/tmp/skiff-bench-tls")]
    dir: std::path::PathBuf,
}

const TARGET: &str = "/api/v1/namespaces/default/configmaps/target";

/// Latencies of `n` GETs, each on a new connection or all on one.
async fn sample(client: &Client, n: usize, fresh: bool) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    let mut kept = if fresh {
        None
    } else {
        Some(client.connect().await?)
    };
    for _ in 0..n {
        let t = Instant::now();
        let (status, _) = match kept.as_mut() {
            Some(c) => c.call(Method::GET, TARGET, None).await?,
            None => {
                client
                    .connect()
                    .await?
                    .call(Method::GET, TARGET, None)
                    .await?
            }
        };
        if status != StatusCode::OK {
            bail!("GET {TARGET}: {status}");
        }
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub async fn run(a: TlsArgs) -> Result<()> {
    println!(
        "skiff bench tls: {} samples per kind, {} joins",
        a.requests, a.joins
    );
    let server = start(a.dir.join("server"), apiserver::store::redb::MAX_BATCH).await?;
    let admin = &server.client;
    let addr = server.running.addr;
    let ca = server.running.ca_pem.clone();
    post(admin, "/api/v1/namespaces/default/configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}, "data": {"k": "v"}})).await?;
    post(
        admin,
        "/api/v1/namespaces/default/serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}),
    )
    .await?;
    post(admin, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}],
    })).await?;
    let token = post(
        admin,
        "/api/v1/namespaces/default/serviceaccounts/reader/token",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    )
    .await?["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let reader = Client::new(addr, &ca, &token)?;

    // Joins: a bootstrap token each, as `skiff token create` makes them.
    let hash = apiserver::pki::ca_cert_hash(&ca).map_err(|e| anyhow::anyhow!(e))?;
    let server_url = format!("https://{addr}");
    let mut joins = Vec::with_capacity(a.joins);
    let mut node_cred = None;
    for i in 0..a.joins {
        let token = bootstrap_token(admin, i).await?;
        let pki = a.dir.join(format!("node-{i}"));
        let _ = std::fs::remove_dir_all(&pki);
        let name = format!("bench-node-{i}");
        // A pod of the node uses the ConfigMap, so the Node authorizer
        // lets the node read it.
        pod_using(admin, "default", &format!("reader-{i}"), &name, "target").await?;
        let t = Instant::now();
        let (client, _) = crate::commands::join::connect(
            &server_url,
            &pki,
            &name,
            Some(&token),
            None,
            Some(&hash),
        )
        .await?;
        // The first request as the node.
        kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, "default")
            .get("target")
            .await?;
        joins.push(t.elapsed());
        if node_cred.is_none() {
            let read = |f: &str| std::fs::read_to_string(pki.join(f));
            node_cred = Some((read("node.crt")?, read("node.key")?));
        }
    }
    joins.sort();
    let (cert, key) = node_cred.ok_or_else(|| anyhow::anyhow!("no join ran (--joins 0)"))?;
    let node = Client::with_certificate(addr, &ca, &cert, &key)?;

    // Warm up every path once.
    for c in [admin, &reader, &node] {
        sample(c, 10, true).await?;
    }
    let kinds = [
        (
            "new connection, admin token",
            sample(admin, a.requests, true).await?,
        ),
        (
            "new connection, ServiceAccount token + RBAC",
            sample(&reader, a.requests, true).await?,
        ),
        (
            "new connection, node client certificate + Node authorizer",
            sample(&node, a.requests, true).await?,
        ),
        (
            "open connection, admin token (peer)",
            sample(admin, a.requests, false).await?,
        ),
    ];
    let floor = percentile(&kinds[3].1, 0.5);
    println!(
        "  {:<58} {:>9} {:>9} {:>8}",
        "GET one ConfigMap", "p50 ms", "p99 ms", "p50 ×"
    );
    for (what, d) in &kinds {
        let p50 = percentile(d, 0.5);
        println!(
            "  {what:<58} {:>9.3} {:>9.3} {:>8.1}",
            ms(p50),
            ms(percentile(d, 0.99)),
            p50.as_secs_f64() / floor.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "  node join (pin the CA, CSR with a bootstrap token, first request): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {}",
        ms(percentile(&joins, 0.5)),
        ms(percentile(&joins, 0.99)),
        ms(joins.last().copied().unwrap_or_default()),
        joins.len()
    );
    let _ = std::fs::remove_dir_all(&a.dir);
    Ok(())
}
