//! What to run: the container spec, written as JSON into the state dir so the
//! re-executed shim and init read exactly what the caller decided.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cgroups::Resources;

/// The `PATH` used to resolve argv[0] when the spec's env has none (the
/// Kubernetes/OCI default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the launcher needs to start one Linux container.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Spec {
    /// Container id, used for the cgroup name; `[A-Za-z0-9_.-]` only.
    pub id: String,
    /// Where the launcher keeps this container's spec, pid, status and FIFO.
    /// Created if missing; must not be inside the rootfs.
    pub state_dir: PathBuf,
    /// The prepared root filesystem (see `runtime::images::layers`).
    pub rootfs: PathBuf,
    /// argv; argv[0] is resolved through the env's `PATH` inside the rootfs.
    pub args: Vec<String>,
    /// The whole environment, `KEY=value`; nothing else is passed.
    pub env: Vec<String>,
    /// Working directory inside the container; `/` when empty.
    pub cwd: PathBuf,
    /// Hostname in the container's UTS namespace; the id when `None`.
    pub hostname: Option<String>,
    /// Who the process runs as.
    pub user: User,
    /// Capabilities on top of, or taken from, the default set.
    pub capabilities: Capabilities,
    /// All capabilities, `/sys` writable, no `no_new_privs`.
    pub privileged: bool,
    /// Remount the root read-only after the mounts are in place.
    pub readonly_rootfs: bool,
    /// Bind mounts (volumes, `/etc/hosts`, `/etc/resolv.conf`, …), in order.
    pub mounts: Vec<Mount>,
    /// Namespaces of the pod to join instead of making new ones.
    pub namespaces: Namespaces,
    /// The cgroup to run in; none means the shim's own cgroup (tests only).
    pub cgroup: Option<CgroupSpec>,
    /// The executable to re-execute as shim and init; `/proc/self/exe` when
    /// `None`. It must call [`crate::dispatch`] (or [`crate::main_hidden`])
    /// first thing in `main`.
    pub exe: Option<PathBuf>,
}

/// The user and groups of the container process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    /// `runAsUser`.
    pub uid: u32,
    /// `runAsGroup`; the primary group.
    pub gid: u32,
    /// `supplementalGroups` (and `fsGroup`).
    pub additional_gids: Vec<u32>,
}

/// `securityContext.capabilities`: names without the `CAP_` prefix, as
/// Kubernetes writes them (`NET_ADMIN`), or `ALL`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// Added to the default set.
    pub add: Vec<String>,
    /// Removed from the default set (after `add`; `ALL` removes everything).
    pub drop: Vec<String>,
}

/// One bind mount.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
    /// A host path (a directory or a file).
    pub source: PathBuf,
    /// An absolute path inside the container; created if missing.
    pub destination: PathBuf,
    /// Mount it read-only.
    pub readonly: bool,
}

/// Existing namespaces to join, e.g. the pod's under `/run/skiff/netns/…`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Namespaces {
    /// Network namespace file; a new, empty one when `None`.
    pub network: Option<PathBuf>,
    /// IPC namespace file; a new one when `None`.
    pub ipc: Option<PathBuf>,
}

/// Where in the cgroup tree the container goes, and its limits.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CgroupSpec {
    /// Path relative to each hierarchy's root, e.g. `skiff/pod<uid>/<name>`.
    pub path: PathBuf,
    /// Limits and weights.
    pub resources: Resources,
}

impl Spec {
    /// The `PATH` from the env, or [`DEFAULT_PATH`].
    pub(crate) fn path_var(&self) -> &str {
        self.env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
    }

    /// Refuses specs the init could only half apply.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::Error::Spec(m));
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad(format!("id {:?} must be [A-Za-z0-9_.-]+", self.id));
        }
        if self.args.is_empty() {
            return bad("args is empty".into());
        }
        if !self.rootfs.is_absolute() || !self.state_dir.is_absolute() {
            return bad("rootfs and state_dir must be absolute paths".into());
        }
        for m in &self.mounts {
            if !m.destination.is_absolute() {
                return bad(format!(
                    "mount destination {:?} is not absolute",
                    m.destination
                ));
            }
        }
        if let Some(cg) = &self.cgroup {
            if cg.path.is_absolute()
                || cg
                    .path
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return bad(format!(
                    "cgroup path {:?} must be relative, without ..",
                    cg.path
                ));
            }
        }
        Ok(())
    }
}
