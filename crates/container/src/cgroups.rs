//! Per-pod and per-container cgroups on cgroup v1 and v2 hosts.
//!
//! The tree is `<hierarchy>/skiff/pod<uid>/<container>`: on v1 that path is
//! made in each controller skiff uses (memory, cpu, cpuacct, pids), on v2
//! once in the unified hierarchy with the controllers enabled in every
//! ancestor's `cgroup.subtree_control`. A host counts as v2 when
//! `/sys/fs/cgroup/cgroup.controllers` exists; on a v1 host a hybrid
//! `/sys/fs/cgroup/unified` (often holding no controller) is ignored.
//!
//! Limits follow the kubelet's conversions: CPU requests become v1 shares
//! (`milli * 1024 / 1000`, at least 2) or v2 weight (`1 + (shares - 2) *
//! 9999 / 262142`); CPU limits become a CFS quota over a 100 ms period.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// The default mount point of the cgroup hierarchies.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The CFS period the kubelet uses, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// v1 controllers skiff places containers in. `cpu` and `cpuacct` are often
/// one hierarchy (`cpu,cpuacct`); duplicates are dropped by real path.
const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids"];

/// v2 controllers skiff enables for its subtree.
const V2_CONTROLLERS: &[&str] = &["memory", "cpu", "pids"];

/// Limits and weights of a cgroup, in Kubernetes' units.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// `limits.memory` in bytes.
    pub memory_limit: Option<u64>,
    /// `limits.cpu` in millicores: the CFS quota.
    pub cpu_limit_milli: Option<u64>,
    /// `requests.cpu` in millicores: shares (v1) or weight (v2).
    pub cpu_request_milli: Option<u64>,
    /// Maximum number of tasks (the kubelet's `podPidsLimit`).
    pub pids_max: Option<u64>,
}

/// v1 `cpu.shares` for a CPU request, as the kubelet computes it.
pub fn cpu_shares(milli: u64) -> u64 {
    (milli.saturating_mul(1024) / 1000).max(2)
}

/// v2 `cpu.weight` for v1 shares, as the kubelet converts them.
pub fn cpu_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// CFS quota in microseconds per [`CPU_PERIOD_US`] for a CPU limit; the
/// kernel's minimum is 1 ms.
pub fn cpu_quota_us(milli: u64) -> u64 {
    (milli.saturating_mul(CPU_PERIOD_US) / 1000).max(1000)
}

/// Which cgroup layout the host has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hierarchy {
    /// One directory per controller under the root.
    V1 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
    /// The unified hierarchy.
    V2 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
}

impl Hierarchy {
    /// Detects the layout under [`CGROUP_ROOT`].
    pub fn detect() -> Hierarchy {
        Self::detect_at(Path::new(CGROUP_ROOT))
    }

    /// Detects the layout under `root`.
    pub fn detect_at(root: &Path) -> Hierarchy {
        let root = root.to_path_buf();
        if root.join("cgroup.controllers").exists() {
            Hierarchy::V2 { root }
        } else {
            Hierarchy::V1 { root }
        }
    }

    /// The directories that make up `rel` in this hierarchy: one per v1
    /// controller, deduplicated, or the single v2 directory.
    fn dirs(&self, rel: &Path) -> Vec<(String, PathBuf)> {
        match self {
            Hierarchy::V2 { root } => vec![("unified".to_string(), root.join(rel))],
            Hierarchy::V1 { root } => {
                let mut seen: Vec<PathBuf> = Vec::new();
                let mut out = Vec::new();
                for c in V1_CONTROLLERS {
                    let mount = root.join(c);
                    let Ok(real) = fs::canonicalize(&mount) else {
                        continue;
                    };
                    if seen.contains(&real) {
                        continue;
                    }
                    seen.push(real.clone());
                    out.push((c.to_string(), real.join(rel)));
                }
                out
            }
        }
    }
}

/// A cgroup skiff made: its directories and how to limit, join, inspect and
/// remove it. Serializable so the shim and exec helper can use the same one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// The layout this cgroup lives in.
    pub hierarchy: Hierarchy,
    /// Path relative to the hierarchy root(s).
    pub path: PathBuf,
    /// `(controller, directory)`; one entry `("unified", dir)` on v2.
    pub dirs: Vec<(String, PathBuf)>,
}

impl Cgroup {
    /// Makes (or reuses) `path` and applies `resources`.
    pub fn create(hierarchy: &Hierarchy, path: &Path, resources: &Resources) -> Result<Cgroup> {
        let dirs = hierarchy.dirs(path);
        if dirs.is_empty() {
            return Err(Error::Spec(format!(
                "no cgroup controllers found for {path:?}"
            )));
        }
        if let Hierarchy::V2 { root } = hierarchy {
            enable_v2_controllers(root, path)?;
        }
        for (_, dir) in &dirs {
            fs::create_dir_all(dir).ctx(|| format!("mkdir {}", dir.display()))?;
        }
        let cg = Cgroup {
            hierarchy: hierarchy.clone(),
            path: path.to_path_buf(),
            dirs,
        };
        cg.apply(resources)?;
        Ok(cg)
    }

    /// The directory of one v1 controller (or the v2 directory).
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c == controller || c == "unified")
            .map(|(_, d)| d.as_path())
    }

    fn write(&self, controller: &str, file: &str, value: &str) -> Result<()> {
        let Some(dir) = self.dir(controller) else {
            return Ok(());
        };
        let p = dir.join(file);
        fs::write(&p, value).ctx(|| format!("write {value:?} to {}", p.display()))
    }

    /// Writes the limits; unset fields are left at the kernel's defaults.
    pub fn apply(&self, r: &Resources) -> Result<()> {
        let v2 = matches!(self.hierarchy, Hierarchy::V2 { .. });
        if let Some(bytes) = r.memory_limit {
            if v2 {
                self.write("memory", "memory.max", &bytes.to_string())?;
                // Swap would let a hog outlive its limit; Kubernetes runs without it.
                let _ = self.write("memory", "memory.swap.max", "0");
            } else {
                self.write("memory", "memory.limit_in_bytes", &bytes.to_string())?;
                let _ = self.write("memory", "memory.memsw.limit_in_bytes", &bytes.to_string());
                let _ = self.write("memory", "memory.swappiness", "0");
            }
        }
        if let Some(milli) = r.cpu_limit_milli {
            let quota = cpu_quota_us(milli);
            if v2 {
                self.write("cpu", "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
            } else {
                self.write("cpu", "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                self.write("cpu", "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        if let Some(milli) = r.cpu_request_milli {
            let shares = cpu_shares(milli);
            if v2 {
                self.write("cpu", "cpu.weight", &cpu_weight(shares).to_string())?;
            } else {
                self.write("cpu", "cpu.shares", &shares.to_string())?;
            }
        }
        if let Some(max) = r.pids_max {
            self.write("pids", "pids.max", &max.to_string())?;
        }
        Ok(())
    }

    /// Moves process `pid` (a host pid) into every directory of the cgroup.
    pub fn add_pid(&self, pid: u32) -> Result<()> {
        for (_, dir) in &self.dirs {
            let p = dir.join("cgroup.procs");
            fs::write(&p, pid.to_string()).ctx(|| format!("add pid {pid} to {}", p.display()))?;
        }
        Ok(())
    }

    /// Processes in the cgroup (host pids), from every directory.
    pub fn pids(&self) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for (_, dir) in &self.dirs {
            let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) else {
                continue;
            };
            for pid in text.lines().filter_map(|l| l.trim().parse().ok()) {
                if !out.contains(&pid) {
                    out.push(pid);
                }
            }
        }
        out
    }

    /// How many times the kernel's OOM killer killed a task in this cgroup:
    /// v2 `memory.events` `oom_kill`, v1 `memory.oom_control` `oom_kill`
    /// (kernel 4.13+), else v1 `memory.failcnt` as a hint that the limit was hit.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = self.dir("memory") else {
            return 0;
        };
        let field = |file: &str, key: &str| -> Option<u64> {
            let text = fs::read_to_string(dir.join(file)).ok()?;
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        };
        match self.hierarchy {
            Hierarchy::V2 { .. } => field("memory.events", "oom_kill").unwrap_or(0),
            Hierarchy::V1 { .. } => field("memory.oom_control", "oom_kill").unwrap_or_else(|| {
                fs::read_to_string(dir.join("memory.failcnt"))
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0)
            }),
        }
    }

    /// SIGKILLs everything in the cgroup (v2 `cgroup.kill` when the kernel
    /// has it) and removes its directories, retrying while the kernel still
    /// counts exiting tasks. A cgroup already gone is not an error.
    pub fn remove(&self) -> Result<()> {
        let mut last_err = None;
        for attempt in 0..200 {
            self.kill_all();
            last_err = None;
            for (_, dir) in &self.dirs {
                match fs::remove_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => last_err = Some((dir.clone(), e)),
                }
            }
            if last_err.is_none() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(if attempt < 20 { 1 } else { 10 }));
        }
        match last_err {
            Some((dir, e)) => Err(e).ctx(|| format!("rmdir {}", dir.display())),
            None => Ok(()),
        }
    }

    fn kill_all(&self) {
        if let Hierarchy::V2 { .. } = self.hierarchy {
            if let Some(dir) = self.dir("unified") {
                if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                    return;
                }
            }
        }
        for pid in self.pids() {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// Whether any of the cgroup's directories still exists.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|(_, d)| d.exists())
    }
}

/// Enables skiff's controllers in `subtree_control` of the root and of every
/// ancestor of `rel`, so the leaf gets `memory.max`, `cpu.max`, `pids.max`.
fn enable_v2_controllers(root: &Path, rel: &Path) -> Result<()> {
    let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = V2_CONTROLLERS
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let line = wanted.join(" ");
    let mut dir = root.to_path_buf();
    let mut parents: Vec<PathBuf> = vec![dir.clone()];
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        dir.push(c);
        parents.push(dir.clone());
    }
    for p in parents {
        fs::create_dir_all(&p).ctx(|| format!("mkdir {}", p.display()))?;
        let ctl = p.join("cgroup.subtree_control");
        match fs::write(&ctl, &line) {
            Ok(()) => {}
            // Busy: the root cgroup has processes of its own and a domain
            // controller cannot be enabled below it; the leaf then lacks it.
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {}
            Err(e) => return Err(e).ctx(|| format!("write {line:?} to {}", ctl.display())),
        }
    }
    Ok(())
}

/// Removes a cgroup directory tree path that has no processes left (e.g. a
/// pod's cgroup after its containers), deepest first. Missing is fine.
pub fn remove_path(hierarchy: &Hierarchy, path: &Path) -> Result<()> {
    let cg = Cgroup {
        hierarchy: hierarchy.clone(),
        path: path.to_path_buf(),
        dirs: hierarchy.dirs(path),
    };
    cg.remove()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_conversions() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(100), 102);
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(cpu_quota_us(500), 50_000);
        assert_eq!(cpu_quota_us(1), 1000);
    }

    #[test]
    fn detects_layout_from_cgroup_controllers() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            Hierarchy::detect_at(d.path()),
            Hierarchy::V1 { .. }
        ));
        fs::write(d.path().join("cgroup.controllers"), "cpu memory pids\n").expect("write");
        assert!(matches!(
            Hierarchy::detect_at(d.path()),
            Hierarchy::V2 { .. }
        ));
    }
}
