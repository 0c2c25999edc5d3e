//! `skiff kubectl …`: kubectl with the cluster's kubeconfig.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct KubectlArgs {
    /// Directory `skiff up` keeps its kubeconfig in.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
    /// Arguments passed to kubectl as they are.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run(a: KubectlArgs) -> anyhow::Result<ExitCode> {
    let kubeconfig = a.data_dir.join("kubeconfig.yaml");
    if !kubeconfig.exists() {
        anyhow::bail!(
            "{} does not exist: start the cluster with `skiff up --data-dir {}` first",
            kubeconfig.display(),
            a.data_dir.display()
        );
    }
    let status = std::process::Command::new("kubectl")
        .args(&a.args)
        .env("KUBECONFIG", &kubeconfig)
        .status()
        .context("running kubectl (is it installed and on PATH?)")?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
