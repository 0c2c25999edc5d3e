//! The `linux` handler: pods' Linux images run as real containers, started
//! by skiff itself with the [`container`] launcher (no containerd, no runc).
//!
//! # Files
//!
//! Everything lives under the runtime's root (`DATA/linux`):
//!
//! ```text
//! pods/<pod uid>/etc/{hosts,hostname,resolv.conf}   bind-mounted into each container
//! pods/<pod uid>/<container>/fs/{rootfs,upper,work} the overlay root (LayerStore::rootfs)
//! pods/<pod uid>/<container>/state/                 the launcher's spec, pid, status
//! pods/<pod uid>/<container>/{stdout,stderr}        raw output, tailed into the CRI log
//! pods/<pod uid>/<container>/meta.json              how to clean up (overlay or copy)
//! ```
//!
//! Each container gets the cgroup `skiff/pod<uid>/<container>` with its
//! limits, the node's pids limit and its CPU request as a weight; it joins
//! the pod's network namespace, which the agent made (see
//! `agent::sandbox`).
//!
//! # Lifetime
//!
//! A container is a separate process tree (the shim and its PID 1), so it
//! survives an agent restart. [`LinuxRuntime::start`] therefore first looks
//! for a running container of the same pod and name and adopts it; a dead
//! one is cleaned up and started again. When a container ends, its
//! cgroup, root (the overlay is unmounted) and directory are removed once
//! its output has been copied; the pod's directory and cgroup go with
//! [`ContainerRuntime::remove_pod`], and pods deleted while the agent was
//! down with [`ContainerRuntime::retain_pods`].

pub mod exec;
pub mod logs;
pub mod spec;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cri::{self, ContainerConfig, ContainerRuntime, ExitReason, RuntimeError};
use crate::images::layers::{LayerStore, RootKind, Rootfs};
use crate::logs::LogFile;

/// The RuntimeClass handler name.
pub const HANDLER: &str = "linux";
/// The kubelet's `--pod-max-pids` analogue skiff applies by default, per
/// container: enough for any ordinary workload, low enough that a fork
/// bomb stops.
pub const DEFAULT_PIDS_MAX: u64 = 1024;

/// How the node runs Linux containers.
#[derive(Debug, Clone)]
pub struct LinuxOptions {
    /// The runtime's directory (`DATA/linux`).
    pub root: PathBuf,
    /// Where image layers are extracted (the image store's `layers/`).
    pub layers: LayerStore,
    /// Whether `securityContext.privileged: true` may run (off by default:
    /// a privileged container owns the node).
    pub allow_privileged: bool,
    /// `pids.max` of every container; None for no limit.
    pub pids_max: Option<u64>,
    /// The executable re-executed as shim and init (`/proc/self/exe`, the
    /// skiff binary, when None).
    pub exe: Option<PathBuf>,
}

impl LinuxOptions {
    /// Defaults: no privileged containers, [`DEFAULT_PIDS_MAX`].
    pub fn new(root: impl Into<PathBuf>, layers: LayerStore) -> LinuxOptions {
        LinuxOptions {
            root: root.into(),
            layers,
            allow_privileged: false,
            pids_max: Some(DEFAULT_PIDS_MAX),
            exe: None,
        }
    }
}

/// The `linux` [`ContainerRuntime`].
pub struct LinuxRuntime {
    opts: Arc<LinuxOptions>,
}

impl LinuxRuntime {
    /// A runtime keeping its files under `opts.root` (created when
    /// missing).
    pub fn new(opts: LinuxOptions) -> std::io::Result<LinuxRuntime> {
        std::fs::create_dir_all(opts.root.join("pods"))?;
        Ok(LinuxRuntime {
            opts: Arc::new(opts),
        })
    }
}

/// The directories of one container.
#[derive(Debug, Clone)]
struct Dirs {
    etc: PathBuf,
    container: PathBuf,
    state: PathBuf,
    fs: PathBuf,
}

fn dirs(root: &Path, pod_uid: &str, name: &str) -> Dirs {
    let pod = pod_dir(root, pod_uid);
    let container = pod.join(name);
    Dirs {
        etc: pod.join("etc"),
        state: container.join("state"),
        fs: container.join("fs"),
        container,
    }
}

fn pod_dir(root: &Path, pod_uid: &str) -> PathBuf {
    root.join("pods").join(pod_uid)
}

/// What a later agent needs to clean a container up.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    overlay: bool,
    cgroup: PathBuf,
}

fn internal(what: &str) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |e| RuntimeError::Internal(format!("{what}: {e}"))
}

/// A started (or adopted) container, before it is wrapped for the agent.
enum Process {
    Owned(container::Container),
    Adopted,
}

impl ContainerRuntime for LinuxRuntime {
    fn handler(&self) -> &'static str {
        HANDLER
    }

    fn start(
        &self,
        config: ContainerConfig,
    ) -> BoxFuture<'_, Result<Box<dyn cri::Container>, RuntimeError>> {
        let opts = self.opts.clone();
        Box::pin(async move {
            let log = LogFile::open(&config.log_path).map_err(internal("opening the log file"))?;
            let d = dirs(&opts.root, &config.pod_uid, &config.container_name);
            let d2 = d.clone();
            let (process, pid) =
                tokio::task::spawn_blocking(move || start_blocking(&opts, &config, &d2))
                    .await
                    .map_err(|e| {
                        RuntimeError::Internal(format!("starting the container: {e}"))
                    })??;
            Ok(Box::new(LinuxContainer::supervise(process, pid, d, log))
                as Box<dyn cri::Container>)
        })
    }

    fn exited_while_away(
        &self,
        pod_uid: &str,
        container_name: &str,
        log_path: &Path,
    ) -> BoxFuture<'_, Option<cri::ExitStatus>> {
        let d = dirs(&self.opts.root, pod_uid, container_name);
        let log_path = log_path.to_path_buf();
        Box::pin(async move {
            let status = container::read_status(&d.state).ok().flatten()?;
            if let Ok(log) = LogFile::open(&log_path) {
                let (_, done) = watch::channel(true);
                logs::copy(d.container.clone(), log, done).await;
            }
            let d2 = d.clone();
            let _ = tokio::task::spawn_blocking(move || cleanup_container(&d2)).await;
            Some(exit_status(Some(status), false))
        })
    }

    fn remove_pod(&self, pod_uid: &str) -> BoxFuture<'_, ()> {
        let (root, uid) = (self.opts.root.clone(), pod_uid.to_string());
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || remove_pod_blocking(&root, &uid)).await;
        })
    }

    fn retain_pods(&self, keep: &HashSet<String>) -> BoxFuture<'_, ()> {
        let (root, keep) = (self.opts.root.clone(), keep.clone());
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || {
                let Ok(entries) = std::fs::read_dir(root.join("pods")) else {
                    return;
                };
                for e in entries.flatten() {
                    let uid = e.file_name().to_string_lossy().into_owned();
                    if !keep.contains(&uid) {
                        tracing::info!(pod_uid = %uid, "removing the containers of a pod that is gone");
                        remove_pod_blocking(&root, &uid);
                    }
                }
            })
            .await;
        })
    }
}

/// Adopt the running container of this pod and name, or start it.
fn start_blocking(
    opts: &LinuxOptions,
    config: &ContainerConfig,
    d: &Dirs,
) -> Result<(Process, u32), RuntimeError> {
    let linux = config.linux.as_ref().ok_or_else(|| {
        RuntimeError::InvalidImage(format!(
            "image {} is not a Linux container image",
            config.image_digest
        ))
    })?;
    if let Some(pid) = running(d) {
        tracing::info!(pod = %config.pod_name, container = %config.container_name, pid, "adopting a running container");
        return Ok((Process::Adopted, pid));
    }
    cleanup_container(d);
    if linux.security.privileged && !opts.allow_privileged {
        return Err(RuntimeError::Config(
            "privileged containers are not allowed on this node (start it with --allow-privileged)"
                .into(),
        ));
    }
    std::fs::create_dir_all(&d.etc).map_err(internal("creating the pod's directory"))?;
    let etc_files = [
        ("hosts", linux.hosts.as_str()),
        ("hostname", &format!("{}\n", linux.hostname)),
        ("resolv.conf", linux.resolv_conf.as_str()),
    ];
    for (name, text) in etc_files {
        std::fs::write(d.etc.join(name), text).map_err(internal("writing the pod's /etc files"))?;
    }
    std::fs::create_dir_all(&d.container)
        .map_err(internal("creating the container's directory"))?;
    let rootfs = opts.layers.rootfs(&linux.layers, &d.fs).map_err(|e| {
        let _ = std::fs::remove_dir_all(&d.container);
        RuntimeError::InvalidImage(format!("creating the container's root file system: {e}"))
    })?;
    let result = launch(opts, config, linux, d, &rootfs);
    if result.is_err() {
        let _ = LayerStore::remove(&rootfs);
        let _ = std::fs::remove_dir_all(&d.container);
    }
    result
}

fn launch(
    opts: &LinuxOptions,
    config: &ContainerConfig,
    linux: &cri::LinuxConfig,
    d: &Dirs,
    rootfs: &Rootfs,
) -> Result<(Process, u32), RuntimeError> {
    let node = spec::NodeLimits {
        pids_max: opts.pids_max,
        exe: opts.exe.clone(),
    };
    let paths = spec::Paths {
        rootfs: &rootfs.path,
        state: &d.state,
        etc: &d.etc,
    };
    let spec = spec::build(config, linux, &paths, &node)?;
    let meta = Meta {
        overlay: rootfs.kind == RootKind::Overlay,
        cgroup: spec
            .cgroup
            .as_ref()
            .map(|c| c.path.clone())
            .unwrap_or_default(),
    };
    let meta_json = serde_json::to_vec(&meta).map_err(|e| RuntimeError::Internal(e.to_string()))?;
    std::fs::write(d.container.join("meta.json"), meta_json)
        .map_err(internal("writing meta.json"))?;
    let (out, err, _) = logs::files(&d.container);
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(internal("creating the output files"))
    };
    let io = container::Stdio3 {
        stdin: std::process::Stdio::null(),
        stdout: open(&out)?.into(),
        stderr: open(&err)?.into(),
    };
    let c = container::start(&spec, io).map_err(|e| RuntimeError::Config(e.to_string()))?;
    let pid = c.pid();
    Ok((Process::Owned(c), pid))
}

/// The pid of this directory's container if it is still running (a
/// previous agent started it).
fn running(d: &Dirs) -> Option<u32> {
    if !matches!(container::read_status(&d.state), Ok(None)) {
        return None;
    }
    let pid = container::read_pid(&d.state).ok()?;
    let meta = read_meta(&d.container)?;
    // The pid must still be the container's: in its cgroup.
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let cg = meta.cgroup.to_string_lossy().into_owned();
    (!cg.is_empty() && cgroups.contains(&cg)).then_some(pid)
}

fn read_meta(dir: &Path) -> Option<Meta> {
    let bytes = std::fs::read(dir.join("meta.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process(pid, sig);
}

/// SIGKILL `pid` and its descendants (children first found, then killed
/// top-down so none is left to fork again).
fn kill_tree(pid: u32) {
    signal(pid, rustix::process::Signal::STOP);
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    signal(pid, rustix::process::Signal::KILL);
    for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        kill_tree(c);
    }
}

fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// Kill what is left of a container and remove its cgroup, root and
/// directory. Nothing there is not an error.
fn cleanup_container(d: &Dirs) {
    if !d.container.exists() {
        return;
    }
    if let Some(pid) = running(d) {
        signal(pid, rustix::process::Signal::KILL);
        for _ in 0..200 {
            if !alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let meta = read_meta(&d.container);
    if let Some(m) = &meta {
        if !m.cgroup.as_os_str().is_empty() {
            let h = container::Hierarchy::detect();
            if let Err(e) = container::cgroups::remove_path(&h, &m.cgroup) {
                // Usually already removed with the container.
                tracing::debug!(cgroup = %m.cgroup.display(), error = %e, "removing a container's cgroup");
            }
        }
    }
    let rootfs = Rootfs {
        path: d.fs.join("rootfs"),
        dir: d.fs.clone(),
        // Unmounting what is not mounted is harmless; always try.
        kind: RootKind::Overlay,
    };
    if let Err(e) = LayerStore::remove(&rootfs) {
        tracing::warn!(dir = %d.fs.display(), error = %e, "removing a container's root");
    }
    let _ = std::fs::remove_dir_all(&d.container);
}

/// Remove every container of a pod, its cgroup and its directory.
fn remove_pod_blocking(root: &Path, uid: &str) {
    let pod = pod_dir(root, uid);
    if let Ok(entries) = std::fs::read_dir(&pod) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name != "etc" {
                cleanup_container(&dirs(root, uid, &name));
            }
        }
    }
    let h = container::Hierarchy::detect();
    let _ = container::cgroups::remove_path(&h, &spec::pod_cgroup(uid));
    let _ = std::fs::remove_dir_all(&pod);
}

/// A running Linux container as the agent sees it.
struct LinuxContainer {
    exit: watch::Receiver<Option<cri::ExitStatus>>,
    /// The launcher's state dir (for exec) and the container's env.
    state: PathBuf,
    env: Vec<String>,
    pid: u32,
    exited: Arc<AtomicBool>,
    forced: Arc<AtomicBool>,
    adopted: bool,
}

impl LinuxContainer {
    /// Start the tasks that copy its output, wait for it and clean up.
    fn supervise(process: Process, pid: u32, d: Dirs, log: LogFile) -> LinuxContainer {
        let (exit_tx, exit) = watch::channel(None);
        let exited = Arc::new(AtomicBool::new(false));
        let forced = Arc::new(AtomicBool::new(false));
        let adopted = matches!(process, Process::Adopted);
        let env = std::fs::read(d.state.join("spec.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<container::Spec>(&b).ok())
            .map(|s| s.env)
            .unwrap_or_default();
        let state = d.state.clone();
        let (done_tx, done_rx) = watch::channel(false);
        let copier = tokio::spawn(logs::copy(d.container.clone(), log, done_rx));
        let (ex, fo) = (exited.clone(), forced.clone());
        tokio::spawn(async move {
            let status = match process {
                Process::Owned(mut c) => {
                    let waited = tokio::task::spawn_blocking(move || {
                        let s = c.wait();
                        (s, c)
                    })
                    .await;
                    match waited {
                        Ok((s, c)) => {
                            ex.store(true, Ordering::SeqCst);
                            let _ = tokio::task::spawn_blocking(move || c.delete()).await;
                            s.ok()
                        }
                        Err(_) => None,
                    }
                }
                Process::Adopted => {
                    let s = wait_adopted(&d.state, pid).await;
                    ex.store(true, Ordering::SeqCst);
                    s
                }
            };
            ex.store(true, Ordering::SeqCst);
            let _ = done_tx.send(true);
            let _ = copier.await;
            let d2 = d.clone();
            let _ = tokio::task::spawn_blocking(move || cleanup_container(&d2)).await;
            let _ = exit_tx.send(Some(exit_status(status, fo.load(Ordering::SeqCst))));
        });
        LinuxContainer {
            exit,
            state,
            env,
            pid,
            exited,
            forced,
            adopted,
        }
    }
}

/// Poll an adopted container (not our child) until its shim records how
/// it ended, or it is gone without a word.
async fn wait_adopted(state: &Path, pid: u32) -> Option<container::ExitStatus> {
    loop {
        match container::read_status(state) {
            Ok(Some(s)) => return Some(s),
            Ok(None) if alive(pid) => {}
            // Gone: give the shim a moment to write the status.
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return container::read_status(state).ok().flatten();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The launcher's exit status as Kubernetes reports it.
pub fn exit_status(status: Option<container::ExitStatus>, forced: bool) -> cri::ExitStatus {
    let Some(s) = status else {
        return cri::ExitStatus {
            code: 137,
            reason: ExitReason::Error,
            message: Some("the container's shim ended without recording an exit status".into()),
        };
    };
    let (reason, message) = if s.oom_killed {
        (
            ExitReason::OOMKilled,
            Some("the container exceeded its memory limit".to_string()),
        )
    } else if forced && s.signal == Some(9) {
        (ExitReason::Killed, None)
    } else if s.code == 0 {
        (ExitReason::Completed, None)
    } else {
        (ExitReason::Error, None)
    };
    cri::ExitStatus {
        code: s.code,
        reason,
        message,
    }
}

impl cri::Container for LinuxContainer {
    fn wait(&mut self) -> BoxFuture<'_, cri::ExitStatus> {
        Box::pin(async move {
            match self.exit.wait_for(Option::is_some).await {
                Ok(s) => s.clone().unwrap_or_else(|| exit_status(None, false)),
                Err(_) => exit_status(None, false),
            }
        })
    }

    fn stop(&self, grace: Duration) {
        if self.exited.load(Ordering::SeqCst) {
            return;
        }
        let (pid, exited, forced, mut exit) = (
            self.pid,
            self.exited.clone(),
            self.forced.clone(),
            self.exit.clone(),
        );
        signal(pid, rustix::process::Signal::TERM);
        tokio::spawn(async move {
            let ended = tokio::time::timeout(grace, exit.wait_for(Option::is_some)).await;
            if ended.is_err() && !exited.load(Ordering::SeqCst) {
                forced.store(true, Ordering::SeqCst);
                signal(pid, rustix::process::Signal::KILL);
            }
        });
    }

    fn adopted(&self) -> bool {
        self.adopted
    }

    fn exec_probe(&self) -> Option<cri::ExecProbe> {
        let (state, env) = (self.state.clone(), self.env.clone());
        Some(Arc::new(move |args: Vec<String>, timeout: Duration| {
            Box::pin(exec::probe(state.clone(), env.clone(), args, timeout))
                as BoxFuture<'static, _>
        }))
    }

    fn exec(&self) -> Result<cri::Exec, String> {
        let (state, env) = (self.state.clone(), self.env.clone());
        Ok(Arc::new(move |spec: cri::ExecSpec| {
            Box::pin(exec::start(state.clone(), env.clone(), spec)) as BoxFuture<'static, _>
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(code: i32, signal: Option<i32>, oom: bool) -> Option<container::ExitStatus> {
        Some(container::ExitStatus {
            code,
            signal,
            oom_killed: oom,
        })
    }

    #[test]
    fn exit_statuses_map_to_kubernetes_reasons() {
        assert_eq!(
            exit_status(st(0, None, false), false).reason,
            ExitReason::Completed
        );
        let e = exit_status(st(3, None, false), false);
        assert_eq!((e.code, e.reason), (3, ExitReason::Error));
        let e = exit_status(st(137, Some(9), true), false);
        assert_eq!((e.code, e.reason), (137, ExitReason::OOMKilled));
        let e = exit_status(st(137, Some(9), false), true);
        assert_eq!((e.code, e.reason), (137, ExitReason::Killed));
        let e = exit_status(st(143, Some(15), false), false);
        assert_eq!((e.code, e.reason), (143, ExitReason::Error));
        assert_eq!(exit_status(None, false).code, 137);
    }

    #[test]
    fn nothing_to_clean_is_fine() {
        let tmp = tempfile::tempdir().expect("tmp");
        remove_pod_blocking(tmp.path(), "nope");
        let d = dirs(tmp.path(), "u", "c");
        cleanup_container(&d);
        assert!(running(&d).is_none());
    }
}
