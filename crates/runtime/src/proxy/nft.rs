//! Loading a ruleset with the `nft` command (Debian package `nftables`),
//! as [`crate::agent::network`] drives links with `ip`.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::ruleset::TABLE;

/// Why a ruleset did not load.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// No `nft` on the PATH.
    #[error("the nft command is missing (install the nftables package)")]
    Missing,
    /// `nft` could not be started or fed.
    #[error("running nft: {0}")]
    Run(#[source] std::io::Error),
    /// `nft` ran and refused (no CAP_NET_ADMIN, no nf_tables in the
    /// kernel, or a rule it does not understand).
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
}

/// Where rules go: the agent's own network namespace, or (tests) a named
/// one through `ip netns exec`.
#[derive(Debug, Clone, Default)]
pub struct Nft {
    /// A namespace made with `ip netns add`.
    pub netns: Option<String>,
}

impl Nft {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns, "nft"]);
                c
            }
            None => tokio::process::Command::new("nft"),
        };
        c.args(args).kill_on_drop(true);
        c
    }

    /// Whether `nft` can be run at all ([`NftError::Missing`] if not).
    pub async fn available(&self) -> Result<(), NftError> {
        self.command(&["--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map(|_| ())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => NftError::Missing,
                _ => NftError::Run(e),
            })
    }

    /// Load `text` as one transaction (`nft -f -`): all of it or nothing.
    pub async fn load(&self, text: &str) -> Result<(), NftError> {
        let mut child = self
            .command(&["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => NftError::Missing,
                _ => NftError::Run(e),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .await
                .map_err(NftError::Run)?;
            // Dropping stdin closes it: nft reads to the end, then commits.
        }
        let out = child.wait_with_output().await.map_err(NftError::Run)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NftError::Refused(first_lines(&String::from_utf8_lossy(
                &out.stderr,
            ))))
        }
    }

    /// Whether skiff's table is in the kernel (someone may have flushed
    /// the whole ruleset, e.g. a firewall reload).
    pub async fn table_present(&self) -> bool {
        self.command(&["list", "table", "ip", TABLE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    /// Remove skiff's table (tests and benchmarks clean up with it; the
    /// agent leaves its rules in place when it stops).
    pub async fn delete_table(&self) -> Result<(), NftError> {
        self.load(&format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"))
            .await
    }
}

/// nft's error output, shortened for a log line: its messages point at
/// the offending line with two more lines of context each.
fn first_lines(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).take(6).collect();
    lines.join(" | ")
}
