//! `skiff up`: the whole control plane in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory for the store, certificates and kubeconfig.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
    /// Address and port the API server listens on (https).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Watch events kept in memory so that watches can resume.
    #[arg(long, default_value_t = 100_000)]
    watch_history: usize,
}

pub fn run(a: UpArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut cfg = apiserver::server::Config::new(a.data_dir.clone(), a.listen);
        cfg.history = a.watch_history;
        let running = apiserver::server::start(cfg).await.with_context(|| {
            format!(
                "starting the API server with data in {}",
                a.data_dir.display()
            )
        })?;
        println!(
            "skiff ready: API server on https://{} (kubeconfig {})",
            running.addr,
            running.kubeconfig.display()
        );
        println!(
            "  use it with: export KUBECONFIG={}; kubectl get namespaces",
            running.kubeconfig.display()
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for ctrl-c")?;
        eprintln!("skiff: shutting down");
        Ok(ExitCode::SUCCESS)
    })
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SKIFF_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
