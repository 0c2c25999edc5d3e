//! The `wasmtime` handler: Wasm pods run in-process.
//!
//! One [`wasmtime::Engine`] per node, shared by every pod:
//!
//! - **Compiled once per digest.** A module or component is compiled the
//!   first time a pod uses its image digest, on a blocking thread, and kept
//!   as an `InstancePre` (imports resolved once) for every later pod of the
//!   image; concurrent first uses wait for one compilation. Compiled
//!   artifacts also go to wasmtime's on-disk cache under the node's data
//!   directory, keyed by the module's hash and the engine's configuration
//!   and version, so an agent restart does not recompile ([`prepare`]).
//! - **Pooled instances.** Linear memories, tables, instance state and
//!   async stacks come from a pooling allocator sized up front
//!   ([`pool::Sizing`]): the number of slots is what the node can hold
//!   without running out of memory mappings (`vm.max_map_count`), which
//!   would abort the whole process, not just fail one pod.
//! - **Limits.** `resources.limits.memory` caps linear memory: a guest
//!   growing past it is stopped and its container reported `OOMKilled`.
//!   `resources.limits.cpu` is enforced with epoch interruption: every
//!   10 ms tick a running guest yields to the node's other tasks, and a
//!   guest with a CPU limit sleeps in proportion to the time it ran
//!   ([`guest::CpuMeter`]), as CFS quota throttles a Linux container.
//! - **Stop.** WASI has no signals: the runtime creates the file named by
//!   `SKIFF_SHUTDOWN_FILE` (what the sdk watches) when the pod stops, and
//!   drops the instance when the grace period ends (exit code 137).
//!
//! WASI preview 1 command modules (`_start`) and preview 2 command
//! components (`wasi:cli/run`) are both run; see [`guest`].

pub mod guest;
pub mod http;
pub mod pool;
pub mod prepare;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::cri::{self, ContainerConfig, RuntimeError};

/// The interval of the epoch ticker: how often a running guest yields,
/// and the granularity of CPU limits.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How the node's Wasm runtime is set up.
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// Compiled artifacts (wasmtime's cache) and per-container scratch
    /// directories live here.
    pub data_dir: PathBuf,
    /// Instances the node may hold at once (pods' containers). Capped by
    /// what the host's memory-mapping limit allows: see [`pool::Sizing`].
    pub max_instances: u32,
    /// The largest linear memory any guest may have, whatever its limit
    /// says. Every instance slot reserves this much address space.
    pub max_memory: u64,
}

impl WasmConfig {
    /// 1,000 instances of at most 1 GiB each.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        WasmConfig {
            data_dir: data_dir.into(),
            max_instances: 1000,
            max_memory: 1 << 30,
        }
    }
}

/// Why the runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("configuring wasmtime: {0}")]
    Engine(String),
    #[error("preparing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The `wasmtime` RuntimeClass handler.
pub struct WasmRuntime {
    engine: wasmtime::Engine,
    linkers: guest::Linkers,
    /// Prepared modules and components by image digest.
    prepared: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<prepare::Prepared>>>>>,
    sizing: pool::Sizing,
    cfg: WasmConfig,
    ticker_stop: Arc<AtomicBool>,
    functions: Arc<http::Functions>,
}

impl WasmRuntime {
    /// Build the engine (pooling allocator sized for this host, epoch
    /// interruption, the on-disk compilation cache) and start the epoch
    /// ticker.
    pub fn new(cfg: WasmConfig) -> Result<WasmRuntime, SetupError> {
        let scratch = cfg.data_dir.join("run");
        let cache_dir = cfg.data_dir.join("compiled");
        for dir in [&scratch, &cache_dir] {
            std::fs::create_dir_all(dir).map_err(|source| SetupError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let files = pool::raise_open_files_limit();
        tracing::debug!(limit = ?files, "open files");
        let sizing = pool::Sizing::for_host(cfg.max_instances, cfg.max_memory);
        let engine =
            engine(&sizing, &cache_dir).map_err(|e| SetupError::Engine(format!("{e:#}")))?;
        let linkers =
            guest::Linkers::new(&engine).map_err(|e| SetupError::Engine(format!("{e:#}")))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        start_ticker(engine.clone(), ticker_stop.clone());
        Ok(WasmRuntime {
            engine,
            linkers,
            prepared: Mutex::new(HashMap::new()),
            sizing,
            cfg,
            ticker_stop,
            functions: Arc::default(),
        })
    }

    /// The HTTP functions this runtime serves, by pod IP and port (the
    /// node's gateway calls them in-process).
    pub fn functions(&self) -> Arc<http::Functions> {
        self.functions.clone()
    }

    /// How the instance pool was sized.
    pub fn sizing(&self) -> &pool::Sizing {
        &self.sizing
    }

    /// The prepared module or component for an image, compiling it (once,
    /// however many pods ask at the same time) if this node has not yet.
    pub async fn prepare(
        &self,
        digest: &str,
        path: &std::path::Path,
    ) -> Result<Arc<prepare::Prepared>, RuntimeError> {
        let cell = {
            let mut map = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(digest.to_string()).or_default().clone()
        };
        let result = cell
            .get_or_try_init(|| async {
                let engine = self.engine.clone();
                let linkers = self.linkers.clone();
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || prepare::prepare(&engine, &linkers, &path))
                    .await
                    .map_err(|e| RuntimeError::Internal(format!("compiling: {e}")))?
                    .map(Arc::new)
            })
            .await
            .cloned();
        if result.is_err() {
            // A failed compilation is not cached: a corrected image under
            // the same digest cannot exist, but a transient I/O error can.
            let mut map = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
            map.remove(digest);
        }
        result
    }
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl cri::ContainerRuntime for WasmRuntime {
    fn handler(&self) -> &'static str {
        "wasmtime"
    }

    fn start(
        &self,
        config: ContainerConfig,
    ) -> BoxFuture<'_, Result<Box<dyn cri::Container>, RuntimeError>> {
        Box::pin(async move {
            if let Some(limit) = config.limits.memory_bytes {
                if limit > self.cfg.max_memory {
                    return Err(RuntimeError::Config(format!(
                        "memory limit {limit} bytes is more than this node's largest Wasm memory ({} bytes)",
                        self.cfg.max_memory
                    )));
                }
            }
            let prepared = self
                .prepare(&config.image_digest, &config.module_path)
                .await?;
            if !config.ports.is_empty() {
                // A containerPort makes it an HTTP function: an instance per
                // request instead of one long-running `main`.
                let c = http::start(&self.engine, prepared, config, self.functions.clone()).await?;
                return Ok(Box::new(c) as Box<dyn cri::Container>);
            }
            let scratch = self.cfg.data_dir.join("run");
            let c = guest::start(&self.engine, &prepared, config, &scratch).await?;
            Ok(Box::new(c) as Box<dyn cri::Container>)
        })
    }
}

/// The node's engine.
fn engine(
    sizing: &pool::Sizing,
    cache_dir: &std::path::Path,
) -> wasmtime::Result<wasmtime::Engine> {
    let mut c = wasmtime::Config::new();
    c.epoch_interruption(true)
        .wasm_component_model(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    sizing.apply(&mut c);
    let mut cache = wasmtime::CacheConfig::new();
    cache.with_directory(cache_dir);
    c.cache(Some(wasmtime::Cache::new(cache)?));
    wasmtime::Engine::new(&c)
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the runtime is
/// dropped. A plain thread: it must tick even when every tokio worker is
/// busy running guests.
fn start_ticker(engine: wasmtime::Engine, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        // Without ticks guests still run; they just never yield or throttle.
        tracing::error!("starting the epoch ticker: {e}");
    }
}

#[cfg(test)]
mod tests;
