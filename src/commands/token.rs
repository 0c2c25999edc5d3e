//! `skiff token create`: a bootstrap token for joining nodes, and the
//! command that joins one.
//!
//! The token is kept as Kubernetes keeps bootstrap tokens (a Secret
//! `kube-system/bootstrap-token-ID` of type `bootstrap.kubernetes.io/token`)
//! and authenticates as `system:bootstrap:ID` in `system:bootstrappers`,
//! which may do one thing: ask for a node client certificate. Deleting the
//! Secret revokes it; it expires after `--ttl`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::Api;

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a bootstrap token and print the `skiff node` command that joins
    /// a node with it (`--ca-cert-hash` pins the cluster CA).
    Create(CreateArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// How long the token may be used to join, e.g. `30m`, `24h`, `7d`.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    ttl: Duration,
    /// What the token is for, kept on its Secret.
    #[arg(long)]
    description: Option<String>,
    /// Directory `skiff up` keeps its kubeconfig and CA in.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
}

/// `30s`, `30m`, `24h`, `7d`.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?}: give a unit, e.g. 30m, 24h or 7d"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: want a number and a unit (30m, 24h, 7d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: the unit is one of s, m, h, d")),
    };
    if secs == 0 {
        return Err("a token that expires at once joins nothing".into());
    }
    Ok(Duration::from_secs(secs))
}

/// `len` characters of `[a-z0-9]`, from the OS's random source.
fn random_id(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

pub fn run(a: TokenArgs) -> anyhow::Result<ExitCode> {
    let TokenCommand::Create(a) = a.command;
    let kubeconfig = a.data_dir.join("kubeconfig.yaml");
    let ca_path = a.data_dir.join("pki").join("ca.crt");
    if !kubeconfig.exists() || !ca_path.exists() {
        bail!(
            "{} has no cluster (no kubeconfig.yaml or pki/ca.crt): run this where `skiff up --data-dir {}` runs",
            a.data_dir.display(),
            a.data_dir.display()
        );
    }
    let ca = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("reading {}", ca_path.display()))?;
    let hash = apiserver::pki::ca_cert_hash(&ca)
        .map_err(|e| anyhow::anyhow!("{}: {e}", ca_path.display()))?;
    let yaml = std::fs::read_to_string(&kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).context("reading the kubeconfig")?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .context("reading the kubeconfig")?;
        let server = cfg.cluster_url.to_string();
        let client = kube::Client::try_from(cfg).context("building the API client")?;
        let (id, secret) = (random_id(6), random_id(16));
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(a.ttl).context("--ttl is too long")?;
        let expires = expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut data = serde_json::json!({
            "token-id": b64(&id),
            "token-secret": b64(&secret),
            "expiration": b64(&expires),
            "usage-bootstrap-authentication": b64("true"),
            "usage-bootstrap-signing": b64("true"),
            "auth-extra-groups": b64("system:bootstrappers:skiff:default-node-token"),
        });
        if let Some(d) = &a.description {
            data["description"] = serde_json::json!(b64(d));
        }
        let obj: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
            "type": "bootstrap.kubernetes.io/token",
            "data": data,
        }))
        .context("building the token's Secret")?;
        Api::<Secret>::namespaced(client, "kube-system")
            .create(&PostParams::default(), &obj)
            .await
            .context("storing the token")?;
        let token = format!("{id}.{secret}");
        println!("{token}");
        eprintln!(
            "\nJoin a node with it until {expires}:\n\n    skiff node --server {server} --token {token} \\\n        --ca-cert-hash {hash} --name NODE\n"
        );
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_as_people_write_them() {
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_ttl("10").is_err());
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("1w").is_err());
    }

    #[test]
    fn ids_are_bootstrap_token_characters() {
        let id = random_id(16);
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert!(
            apiserver::authn::parse_bootstrap_token(&format!("{}.{id}", random_id(6))).is_some()
        );
    }
}
