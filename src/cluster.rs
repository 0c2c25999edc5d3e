//! Clients of a skiff cluster's API, for the components `skiff up` and
//! `skiff node` run: the same kube-rs client whether the API server is in
//! this process or across the network.

use anyhow::{Context, Result};
use base64::Engine;

/// A kube-rs client for `server` trusting `ca_pem` and sending `token`.
pub async fn client(server: &str, ca_pem: &str, token: &str) -> Result<kube::Client> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: skiff\n  user:\n    token: {token}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: skiff\ncurrent-context: skiff\n"
    );
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).context("building a kubeconfig")?;
    let cfg = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .context("reading the kubeconfig")?;
    kube::Client::try_from(cfg).context("creating the API client")
}
