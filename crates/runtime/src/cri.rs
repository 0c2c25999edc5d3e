//! The contract between the node agent and a container runtime.
//!
//! The agent resolves everything Kubernetes-shaped (image, command and
//! args, env incl. `valueFrom`, volumes) into a [`ContainerConfig`] and
//! hands it to the runtime registered for the pod's RuntimeClass handler.
//! The runtime starts the container and gives back a [`Container`] the
//! agent can wait on and stop. Runtimes know nothing of the API.

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;

/// One container of a pod, fully resolved by the agent.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub container_name: String,
    /// Content digest of the image (`sha256:…`).
    pub image_digest: String,
    /// The Wasm module or component (for the wasmtime handler) on disk,
    /// content-addressed and verified by the image store.
    pub module_path: PathBuf,
    /// argv, `argv[0]` first (the container's command and args merged as
    /// Kubernetes merges them with the image's entrypoint).
    pub args: Vec<String>,
    /// Environment in order, later entries winning.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub limits: Limits,
    /// Where stdout and stderr go, in the CRI log format ([`crate::logs`]).
    pub log_path: PathBuf,
    /// Ports the container declares (HTTP Wasm workloads listen on these).
    pub ports: Vec<u16>,
    /// The pod's IP: where the container's ports are served.
    pub pod_ip: std::net::IpAddr,
    /// The pod's labels (the gateway finds a waking function's pod by them).
    pub pod_labels: std::collections::BTreeMap<String, String>,
    /// What only Linux containers need (the `linux` handler); None for
    /// Wasm images.
    pub linux: Option<LinuxConfig>,
}

/// The Linux-only part of a container's config: the image's layers and
/// defaults, the securityContext as resolved for this container, and the
/// pod's sandbox.
#[derive(Debug, Clone, Default)]
pub struct LinuxConfig {
    /// Layers, bottom first.
    pub layers: Vec<crate::images::Layer>,
    /// The image's Entrypoint/Cmd/Env/WorkingDir/User. `args` above are
    /// already merged with the entrypoint; `env` above comes after the
    /// image's.
    pub image: crate::images::ImageConfig,
    /// `workingDir`, when the container sets one.
    pub working_dir: Option<String>,
    /// The container's securityContext merged over the pod's.
    pub security: Security,
    /// `resources.requests.cpu`, millicores.
    pub cpu_request_millis: Option<u64>,
    /// The pod's network namespace (a file under `/run/netns`); a fresh,
    /// empty one when None.
    pub netns: Option<PathBuf>,
    /// The pod's IPC namespace (a file under `/run/skiff/ipcns`), shared by
    /// its containers; a fresh one when None.
    pub ipcns: Option<PathBuf>,
    /// The pod's hostname.
    pub hostname: String,
    /// `/etc/hosts` content for the pod.
    pub hosts: String,
    /// `/etc/resolv.conf` content for the pod.
    pub resolv_conf: String,
}

/// A container's effective securityContext.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    /// `runAsNonRoot`: refuse to start as uid 0.
    pub run_as_non_root: bool,
    /// `supplementalGroups` and `fsGroup`.
    pub supplemental_groups: Vec<u32>,
    pub read_only_root_filesystem: bool,
    pub privileged: bool,
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
}

/// A host directory the container sees at `container_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

/// Resource limits from the pod spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `resources.limits.memory`, bytes.
    pub memory_bytes: Option<u64>,
    /// `resources.limits.cpu`, millicores.
    pub cpu_millis: Option<u64>,
}

/// Why a container stopped, as Kubernetes reports it in
/// `state.terminated.reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// A non-zero exit code or a trap.
    Error,
    /// Went past its memory limit.
    OOMKilled,
    /// Stopped by the agent (deletion, liveness failure).
    Killed,
}

impl ExitReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::OOMKilled => "OOMKilled",
            ExitReason::Killed => "Killed",
        }
    }
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: i32,
    pub reason: ExitReason,
    /// A short human message (the trap, "memory limit of 64Mi exceeded").
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is not something this runtime runs (a Linux image for the
    /// wasmtime handler, a corrupt module). Reported as CreateContainerError.
    #[error("{0}")]
    InvalidImage(String),
    /// The container could not be set up (a mount missing, a limit
    /// invalid). Reported as CreateContainerError.
    #[error("{0}")]
    Config(String),
    /// The node cannot run more right now.
    #[error("{0}")]
    Exhausted(String),
    #[error("{0}")]
    Internal(String),
}

/// A runtime the agent can start containers with: one per RuntimeClass
/// handler the node advertises in `status.runtimeHandlers`.
pub trait ContainerRuntime: Send + Sync {
    /// The RuntimeClass handler name (`wasmtime`).
    fn handler(&self) -> &'static str;
    /// Start a container. Returns once it is running. A runtime whose
    /// containers outlive the agent (`linux`) adopts the one still running
    /// for this pod and container name instead of starting another
    /// ([`Container::adopted`]).
    fn start(
        &self,
        config: ContainerConfig,
    ) -> BoxFuture<'_, Result<Box<dyn Container>, RuntimeError>>;
    /// After an agent restart, for a container the pod's record shows
    /// running: if it ended while no agent watched (a runtime whose
    /// containers outlive the agent), copy what it printed to `log_path`,
    /// clean it up and say how it ended, so the restart policy decides
    /// what comes next. None when it is still running or unknown.
    fn exited_while_away(
        &self,
        pod_uid: &str,
        container_name: &str,
        log_path: &std::path::Path,
    ) -> BoxFuture<'_, Option<ExitStatus>> {
        let _ = (pod_uid, container_name, log_path);
        Box::pin(async { None })
    }
    /// The pod is gone: remove whatever the runtime kept for it beyond its
    /// containers (a pod cgroup, a pod directory).
    fn remove_pod(&self, pod_uid: &str) -> BoxFuture<'_, ()> {
        let _ = pod_uid;
        Box::pin(async {})
    }
    /// At agent start: remove containers and files of pods not in `keep`
    /// (deleted while the agent was down).
    fn retain_pods(&self, keep: &std::collections::HashSet<String>) -> BoxFuture<'_, ()> {
        let _ = keep;
        Box::pin(async {})
    }
}

/// A started container.
pub trait Container: Send + Sync {
    /// Wait for it to end. Cancel-safe: may be called again after a
    /// dropped future.
    fn wait(&mut self) -> BoxFuture<'_, ExitStatus>;
    /// Ask it to stop (SIGTERM for Linux containers). After `grace` the
    /// runtime stops it by force; [`Container::wait`] then reports
    /// [`ExitReason::Killed`] unless it exited by itself.
    fn stop(&self, grace: Duration);
    /// Whether this is a container that was already running when the agent
    /// started (re-attached rather than started).
    fn adopted(&self) -> bool {
        false
    }
    /// How to run an exec probe in this container; None where there is no
    /// process to run a command in (Wasm guests).
    fn exec_probe(&self) -> Option<ExecProbe> {
        None
    }
    /// How to run `kubectl exec` commands in this container, or why it
    /// cannot be done (said to the user as it is).
    fn exec(&self) -> Result<Exec, String> {
        Err("this container's runtime cannot run commands in it".into())
    }
}

/// What `kubectl exec` asks to run, and which streams it attaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// A terminal: stdout and stderr are one stream, the client may resize
    /// it.
    pub tty: bool,
}

/// A process [`Exec`] started. The streams are there when asked for (with
/// a terminal, `stdout` carries both outputs and `stderr` is None).
pub struct ExecProcess {
    pub stdin: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    pub stdout: Option<std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>>,
    pub stderr: Option<std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>>,
    /// Set the terminal's size (columns, rows); None without a terminal.
    pub resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
    /// Its exit code (128 + signal when killed).
    pub exit: BoxFuture<'static, Result<i32, String>>,
    /// Kill it and whatever it started (the client went away).
    pub kill: Box<dyn Fn() + Send + Sync>,
}

/// Starts a command in a running container.
pub type Exec = std::sync::Arc<
    dyn Fn(ExecSpec) -> BoxFuture<'static, Result<ExecProcess, String>> + Send + Sync,
>;

/// Runs `argv` in a container within the timeout: `Ok` when it exits 0,
/// else what it said, as the kubelet puts it in the Unhealthy event.
pub type ExecProbe = std::sync::Arc<
    dyn Fn(Vec<String>, Duration) -> BoxFuture<'static, Result<(), String>> + Send + Sync,
>;
