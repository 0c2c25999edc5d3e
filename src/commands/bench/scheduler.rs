//! `skiff bench scheduler`: binds per second with many nodes and many
//! pending pods, against the real API server in this process. The peer in
//! the same run is the same scheduler binding one pod at a time.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Ready nodes (Node objects only: nothing runs the pods).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Pending pods to bind.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Where the API servers' stores go (a fresh directory per phase).
    #[arg(long, default_value = "/tmp/skiff-bench-scheduler")]
    dir: PathBuf,
}

pub async fn run(a: SchedulerArgs) -> Result<()> {
    println!(
        "skiff bench scheduler: {} nodes, {} pending pods, data under {}",
        a.nodes,
        a.pods,
        a.dir.display()
    );
    let mut rows = Vec::new();
    use controllers::scheduler::bench::Shape;
    for (label, parallelism, shape) in [
        ("skiff scheduler, 64 binds in flight", 64, Shape::Plain),
        ("one bind at a time (peer)", 1, Shape::Plain),
        (
            "64 in flight, every pod with zone spread, host spread and anti-affinity",
            64,
            Shape::Spread,
        ),
    ] {
        let dir = a.dir.join(format!("p{parallelism}-{shape:?}"));
        let _ = std::fs::remove_dir_all(&dir);
        let running =
            apiserver::server::start(apiserver::server::Config::new(dir, "127.0.0.1:0".parse()?))
                .await?;
        let server = format!("https://{}", running.addr);
        let client =
            crate::commands::node::client(&server, &running.ca_pem, &running.admin_token).await?;
        let cfg = controllers::scheduler::Config {
            parallelism,
            ..Default::default()
        };
        let r = controllers::scheduler::bench::bench_shaped(client, a.nodes, a.pods, cfg, shape)
            .await?;
        println!(
            "  {label}: {} of {} bound in {:.2} s{}",
            r.bound,
            r.pods,
            r.elapsed.as_secs_f64(),
            r.max_zone_skew
                .map(|s| format!(" (worst zone skew of an app: {s})"))
                .unwrap_or_default()
        );
        rows.push((label, r));
    }
    println!();
    println!(
        "| {} nodes, {} pending pods | pods bound/s | all bound in s |",
        a.nodes, a.pods
    );
    println!("|---|---:|---:|");
    for (label, r) in &rows {
        println!(
            "| {label} | {:.0} | {:.2} |",
            r.binds_per_sec,
            r.elapsed.as_secs_f64()
        );
    }
    println!(
        "ratio: {:.1}x",
        rows[0].1.binds_per_sec / rows[1].1.binds_per_sec.max(1e-9)
    );
    Ok(())
}
