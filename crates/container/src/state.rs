//! Files in a container's state dir, shared by the caller, the shim, the
//! init and the exec helper. Writes go through a temporary name and a
//! rename, so a reader never sees half a file.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::spec::Spec;

/// `spec.json`: the spec as given to [`crate::start`].
pub(crate) const SPEC: &str = "spec.json";
/// `cgroup.json`: the cgroup [`crate::start`] made, if any.
pub(crate) const CGROUP: &str = "cgroup.json";
/// `pid`: the container process's pid in the host pid namespace.
pub(crate) const PID: &str = "pid";
/// `status.json`: how the container process ended, written by the shim.
pub(crate) const STATUS: &str = "status.json";
/// `sync`: the FIFO the init waits on until the shim put it in its cgroup.
pub(crate) const SYNC: &str = "sync";

/// How a container's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, or 128 + the signal number for a killed process
    /// (Kubernetes' `exitCode`).
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The cgroup's OOM killer killed a task of the container
    /// (Kubernetes' `OOMKilled` reason).
    pub oom_killed: bool,
}

pub(crate) fn path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(name)
}

pub(crate) fn write_atomic(state_dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = state_dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, bytes).ctx(|| format!("write {}", tmp.display()))?;
    let dst = state_dir.join(name);
    fs::rename(&tmp, &dst).ctx(|| format!("rename to {}", dst.display()))
}

pub(crate) fn write_json<T: Serialize>(state_dir: &Path, name: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|source| Error::Json {
        what: name.to_string(),
        source,
    })?;
    write_atomic(state_dir, name, &bytes)
}

pub(crate) fn read_json<T: DeserializeOwned>(state_dir: &Path, name: &str) -> Result<T> {
    let p = state_dir.join(name);
    let bytes = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        what: p.display().to_string(),
        source,
    })
}

pub(crate) fn read_spec(state_dir: &Path) -> Result<Spec> {
    read_json(state_dir, SPEC)
}

pub(crate) fn read_cgroup(state_dir: &Path) -> Result<Option<Cgroup>> {
    if state_dir.join(CGROUP).exists() {
        read_json(state_dir, CGROUP).map(Some)
    } else {
        Ok(None)
    }
}

/// The container's host pid, once the shim recorded it.
pub fn read_pid(state_dir: &Path) -> Result<u32> {
    let p = state_dir.join(PID);
    let text = fs::read_to_string(&p).ctx(|| format!("read {}", p.display()))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Start(format!("bad pid file {}: {text:?}", p.display())))
}

/// The exit status the shim recorded, if the container has ended.
pub fn read_status(state_dir: &Path) -> Result<Option<ExitStatus>> {
    if state_dir.join(STATUS).exists() {
        read_json(state_dir, STATUS).map(Some)
    } else {
        Ok(None)
    }
}
