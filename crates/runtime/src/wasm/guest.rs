//! One Wasm container: its WASI context, its store with limits, and the
//! task that runs it to its end.
//!
//! - argv and the environment are the container's (`command`/`args`,
//!   `env`, `envFrom`, already resolved by the agent), plus
//!   `SKIFF_SHUTDOWN_FILE`.
//! - volumeMounts are preopened directories at their `mountPath`,
//!   read-only where the mount says so; `/run/skiff` (read-only) holds the
//!   shutdown file.
//! - stdout and stderr go to the container's CRI log file; stdin is empty.
//! - The exit code is the guest's `proc_exit` code (0 when `_start`
//!   returns); a trap is exit code 134, as an aborted Linux process reports
//!   it, with the trap as the message; a memory limit hit is 137
//!   `OOMKilled`; a forced stop is 137 `Killed`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::sync::watch;
use wasmtime::{CallHook, Store, StoreContextMut, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{
    FsPerms, I32Exit, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::prepare::Prepared;
use crate::cri::{self, ContainerConfig, ExitReason, ExitStatus, RuntimeError};
use crate::logs::{CriLog, LogFile, Stream};

/// The variable the sdk reads to find the shutdown file.
pub const SHUTDOWN_ENV: &str = "SKIFF_SHUTDOWN_FILE";
/// Where the guest sees the runtime's directory.
pub const RUN_DIR: &str = "/run/skiff";
/// Exit code of a trapping guest: SIGABRT's, as for an aborted process.
pub const TRAP_EXIT: i32 = 134;
/// Exit code of a guest stopped by force or for memory: SIGKILL's.
pub const KILL_EXIT: i32 = 137;

/// A guest's store data: its WASI context and its limits.
pub struct Guest<W> {
    pub wasi: W,
    memory: MemoryLimit,
    cpu: Option<CpuMeter>,
}

impl<W> Guest<W> {
    /// Whether the guest asked for more memory than its limit.
    pub fn memory_exceeded(&self) -> bool {
        self.memory.exceeded
    }
}

/// WASI preview 2 state of a component guest.
pub struct P2Ctx {
    pub(super) ctx: WasiCtx,
    pub(super) table: ResourceTable,
}

impl WasiView for Guest<P2Ctx> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}

/// The WASI linkers, built once per engine.
#[derive(Clone)]
pub struct Linkers {
    pub p1: Arc<wasmtime::Linker<Guest<WasiP1Ctx>>>,
    pub p2: Arc<wasmtime::component::Linker<Guest<P2Ctx>>>,
}

impl Linkers {
    pub fn new(engine: &wasmtime::Engine) -> wasmtime::Result<Linkers> {
        let mut p1 = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut p1, |g: &mut Guest<WasiP1Ctx>| &mut g.wasi)?;
        let mut p2 = wasmtime::component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut p2)?;
        Ok(Linkers {
            p1: Arc::new(p1),
            p2: Arc::new(p2),
        })
    }
}

/// `resources.limits.memory` on linear memory.
struct MemoryLimit {
    limit: Option<usize>,
    /// The guest asked for more than its limit.
    exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        match self.limit {
            Some(limit) if desired > limit => {
                self.exceeded = true;
                // Trapping at once (rather than failing memory.grow) stops
                // the guest where it crossed the limit, as the kernel's OOM
                // killer stops a process.
                Err(wasmtime::format_err!(
                    "memory limit of {limit} bytes exceeded (the guest asked for {desired})"
                ))
            }
            _ => Ok(true),
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// CPU time a guest spent in Wasm, for `resources.limits.cpu`.
///
/// Time is counted only while the guest runs Wasm code: host calls
/// (sleeping, I/O) and waiting for a tokio worker do not count. At each
/// epoch tick the guest is made to sleep `ran × (1000 − m) / m` for a limit
/// of `m` millicores, so over any stretch it gets at most `m/1000` of a
/// core.
pub struct CpuMeter {
    millis: u64,
    ran: Duration,
    /// When the guest last entered Wasm; `None` while it is in the host.
    /// Shared with the yield future, which restarts the clock when the
    /// guest is resumed after a throttle.
    since: Arc<Mutex<Option<Instant>>>,
}

impl CpuMeter {
    fn new(millis: u64) -> CpuMeter {
        CpuMeter {
            millis: millis.max(1),
            ran: Duration::ZERO,
            since: Arc::new(Mutex::new(None)),
        }
    }

    fn enter(&mut self) {
        *self.since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn leave(&mut self) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = since.take() {
            self.ran += t.elapsed();
        }
    }

    /// The pause owed for the Wasm time run since the last tick.
    fn throttle(&mut self) -> Duration {
        self.leave();
        let ran = std::mem::take(&mut self.ran);
        if self.millis >= 1000 {
            return Duration::ZERO;
        }
        throttle_for(ran, self.millis)
    }
}

/// How long a guest limited to `millis` millicores sleeps after running
/// `ran`.
pub fn throttle_for(ran: Duration, millis: u64) -> Duration {
    if millis >= 1000 {
        return Duration::ZERO;
    }
    let millis = millis.max(1);
    let nanos = ran.as_nanos() * u128::from(1000 - millis) / u128::from(millis);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

fn track_cpu<W>(mut cx: StoreContextMut<'_, Guest<W>>, hook: CallHook) -> wasmtime::Result<()> {
    if let Some(cpu) = cx.data_mut().cpu.as_mut() {
        if hook.entering_host() {
            cpu.leave();
        } else {
            cpu.enter();
        }
    }
    Ok(())
}

fn on_epoch<W>(mut cx: StoreContextMut<'_, Guest<W>>) -> wasmtime::Result<UpdateDeadline> {
    let Some(cpu) = cx.data_mut().cpu.as_mut() else {
        // No CPU limit: yield so the node's other tasks and guests run.
        return Ok(UpdateDeadline::Yield(1));
    };
    let pause = cpu.throttle();
    let since = cpu.since.clone();
    Ok(UpdateDeadline::YieldCustom(
        1,
        Box::pin(async move {
            if pause.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(pause).await;
            }
            *since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }),
    ))
}

pub(super) fn store<W: Send + 'static>(
    engine: &wasmtime::Engine,
    wasi: W,
    cfg: &ContainerConfig,
) -> Store<Guest<W>> {
    let memory = MemoryLimit {
        limit: cfg
            .limits
            .memory_bytes
            .map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
        exceeded: false,
    };
    let cpu = cfg
        .limits
        .cpu_millis
        .filter(|m| *m < 1000)
        .map(CpuMeter::new);
    let metered = cpu.is_some();
    let mut store = Store::new(engine, Guest { wasi, memory, cpu });
    store.limiter(|g| &mut g.memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(on_epoch);
    if metered {
        store.call_hook(track_cpu);
    }
    store
}

/// The guest's per-container directory (the shutdown file lives there).
fn run_dir(scratch: &Path, cfg: &ContainerConfig) -> PathBuf {
    scratch.join(format!("{}_{}", cfg.pod_uid, cfg.container_name))
}

fn wasi_ctx(
    cfg: &ContainerConfig,
    run_dir: &Path,
    stdout: &CriLog,
    stderr: &CriLog,
) -> Result<WasiCtxBuilder, RuntimeError> {
    let mut b = WasiCtxBuilder::new();
    b.args(&cfg.args)
        .envs(&cfg.env)
        .env(SHUTDOWN_ENV, format!("{RUN_DIR}/shutdown"))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    preopen_mounts(&mut b, cfg)?;
    b.preopened_dir(run_dir, RUN_DIR, FsPerms::ReadOnly)
        .map_err(|e| RuntimeError::Internal(format!("preparing {RUN_DIR}: {e:#}")))?;
    Ok(b)
}

/// The container's volumeMounts as preopened directories.
pub(super) fn preopen_mounts(
    b: &mut WasiCtxBuilder,
    cfg: &ContainerConfig,
) -> Result<(), RuntimeError> {
    for m in &cfg.mounts {
        let perms = if m.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&m.host_path, &m.container_path, perms)
            .map_err(|e| {
                RuntimeError::Config(format!(
                    "mounting {} at {}: {e:#}",
                    m.host_path.display(),
                    m.container_path
                ))
            })?;
    }
    Ok(())
}

/// A running Wasm container.
pub struct WasmContainer {
    exit: watch::Receiver<Option<ExitStatus>>,
    kill_at: watch::Sender<Option<Instant>>,
    shutdown_file: PathBuf,
    task: tokio::task::AbortHandle,
}

/// Instantiate the guest and start running it. Returns once it runs;
/// errors here are the container's CreateContainerError.
pub async fn start(
    engine: &wasmtime::Engine,
    prepared: &Prepared,
    cfg: ContainerConfig,
    scratch: &Path,
) -> Result<WasmContainer, RuntimeError> {
    let dir = run_dir(scratch, &cfg);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| RuntimeError::Internal(format!("creating {}: {e}", dir.display())))?;
    let log = LogFile::open(&cfg.log_path).map_err(|e| {
        RuntimeError::Internal(format!("opening the log {}: {e}", cfg.log_path.display()))
    })?;
    let (stdout, stderr) = (log.stream(Stream::Stdout), log.stream(Stream::Stderr));
    let mut wasi = wasi_ctx(&cfg, &dir, &stdout, &stderr)?;
    let run: BoxFuture<'static, ExitStatus> = match prepared {
        Prepared::Module(pre) => {
            let mut store = store(engine, wasi.build_p1(), &cfg);
            let instance = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| instantiate_error(e, &store))?;
            let entry = instance
                .get_typed_func::<(), ()>(&mut store, "_start")
                .map_err(|e| RuntimeError::InvalidImage(format!("_start: {e:#}")))?;
            Box::pin(async move {
                let r = entry.call_async(&mut store, ()).await;
                exit_status(r.map(|()| 0), store.data().memory.exceeded)
            })
        }
        Prepared::Component(pre) => {
            let p2 = P2Ctx {
                ctx: wasi.build(),
                table: ResourceTable::new(),
            };
            let mut store = store(engine, p2, &cfg);
            let command = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| instantiate_error(e, &store))?;
            Box::pin(async move {
                let r = command.wasi_cli_run().call_run(&mut store).await;
                // `run` returning `err` is exit code 1, as in wasmtime's CLI.
                let r = r.map(|res| if res.is_ok() { 0 } else { 1 });
                exit_status(r, store.data().memory.exceeded)
            })
        }
    };
    let (exit_tx, exit) = watch::channel(None);
    let (kill_at, kill_rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let status = tokio::select! {
            s = run => s,
            () = killed(kill_rx) => ExitStatus {
                code: KILL_EXIT,
                reason: ExitReason::Killed,
                message: Some("stopped after its grace period".into()),
            },
        };
        let _ = stdout.finish();
        let _ = stderr.finish();
        let _ = std::fs::remove_dir_all(&dir);
        let _ = exit_tx.send(Some(status));
    });
    Ok(WasmContainer {
        exit,
        kill_at,
        shutdown_file: run_dir(scratch, &cfg).join("shutdown"),
        task: task.abort_handle(),
    })
}

pub(super) fn instantiate_error<W>(e: wasmtime::Error, store: &Store<Guest<W>>) -> RuntimeError {
    if store.data().memory.exceeded {
        return RuntimeError::Config(format!(
            "the module's initial memory is larger than the container's memory limit: {e:#}"
        ));
    }
    let msg = format!("{e:#}");
    if msg.contains("maximum concurrent") || msg.contains("limit reached") {
        return RuntimeError::Exhausted(format!(
            "this node runs as many Wasm instances as its pool holds: {msg}"
        ));
    }
    RuntimeError::Config(format!("instantiating: {msg}"))
}

/// Resolves once the forced-stop deadline set by [`cri::Container::stop`]
/// has passed.
pub(super) async fn killed(mut rx: watch::Receiver<Option<Instant>>) {
    loop {
        let deadline = *rx.borrow_and_update();
        match deadline {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => return,
                    changed = rx.changed() => if changed.is_err() { std::future::pending::<()>().await },
                }
            }
            None => {
                if rx.changed().await.is_err() {
                    // The container handle is gone: nobody can stop it now
                    // except by dropping it, which aborts the task.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// The container's end from how the guest's entry point returned.
pub fn exit_status(r: wasmtime::Result<i32>, memory_exceeded: bool) -> ExitStatus {
    if memory_exceeded {
        return ExitStatus {
            code: KILL_EXIT,
            reason: ExitReason::OOMKilled,
            message: r.err().map(|e| format!("{e:#}")),
        };
    }
    match r {
        Ok(code) => by_code(code, None),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(I32Exit(code)) => by_code(*code, None),
            None => ExitStatus {
                code: TRAP_EXIT,
                reason: ExitReason::Error,
                message: Some(trap_message(&e)),
            },
        },
    }
}

fn by_code(code: i32, message: Option<String>) -> ExitStatus {
    ExitStatus {
        code,
        reason: if code == 0 {
            ExitReason::Completed
        } else {
            ExitReason::Error
        },
        message,
    }
}

/// The trap and the innermost frames: enough to find the bug, short
/// enough for `kubectl describe`.
fn trap_message(e: &wasmtime::Error) -> String {
    let mut msg = format!("wasm trap: {e:#}");
    if msg.len() > 1024 {
        let mut cut = 1024;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    msg
}

/// The exit a container's task reports; `Killed` if the task is gone
/// without one (aborted).
pub(super) async fn wait_exit(exit: &mut watch::Receiver<Option<ExitStatus>>) -> ExitStatus {
    let r = exit.wait_for(|e| e.is_some()).await;
    r.ok().and_then(|e| e.clone()).unwrap_or(ExitStatus {
        code: KILL_EXIT,
        reason: ExitReason::Killed,
        message: None,
    })
}

/// Set the forced-stop deadline to `at`: a second stop can shorten the
/// deadline, never extend it.
pub(super) fn stop_by(deadline: &watch::Sender<Option<Instant>>, at: Instant) {
    deadline.send_if_modified(|k| match k {
        Some(old) if *old <= at => false,
        _ => {
            *k = Some(at);
            true
        }
    });
}

impl cri::Container for WasmContainer {
    fn wait(&mut self) -> BoxFuture<'_, ExitStatus> {
        Box::pin(wait_exit(&mut self.exit))
    }

    fn stop(&self, grace: Duration) {
        let deadline = SystemTime::now() + grace;
        let secs = deadline
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // The sdk sees the file and returns from main; the content is the
        // deadline (Unix seconds). Written whole then renamed, so the
        // guest never reads half of it.
        let tmp = self.shutdown_file.with_extension("tmp");
        if std::fs::write(&tmp, secs.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.shutdown_file);
        }
        stop_by(&self.kill_at, Instant::now() + grace);
    }

    fn exec(&self) -> Result<cri::Exec, String> {
        Err(NO_EXEC.into())
    }
}

/// Why `kubectl exec` into a Wasm container is refused.
pub(crate) const NO_EXEC: &str = "cannot exec into a WebAssembly container: it runs one module in wasmtime, with no shell or other programs to start; use kubectl logs, or run a Linux container (runtimeClassName: linux) to debug from";

impl Drop for WasmContainer {
    /// A container nobody holds any more (the agent itself stopping) does
    /// not outlive its handle.
    fn drop(&mut self) {
        self.task.abort();
    }
}
