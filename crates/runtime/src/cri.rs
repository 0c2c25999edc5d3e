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
    /// Start a container. Returns once it is running.
    fn start(
        &self,
        config: ContainerConfig,
    ) -> BoxFuture<'_, Result<Box<dyn Container>, RuntimeError>>;
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
}
