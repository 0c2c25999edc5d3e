//! skiff's Linux container launcher: a process in fresh namespaces, in its
//! cgroup, on a prepared rootfs — with no container daemon, no runc and no
//! `unsafe`.
//!
//! # How a container starts
//!
//! The workspace forbids `unsafe`, so there is no fork, clone or pre-exec
//! hook. Instead skiff re-executes itself with a hidden subcommand
//! ([`HIDDEN_COMMAND`]) at each point where a fresh, single-threaded process
//! is needed:
//!
//! ```text
//! caller ── start(spec) ── writes <state>/spec.json, makes the cgroup and the sync FIFO
//!   └─ <exe> __container shim <state>     unshare(pid); stays as the parent; records
//!        │                                pid and exit status (status.json)
//!        └─ <exe> __container init <state> PID 1: waits on the FIFO until it is in its
//!                                         cgroup, joins/unshares namespaces, mounts,
//!                                         pivot_root, user, caps, exec(argv)
//! ```
//!
//! A pipe from the caller, handed down as stdin and kept close-on-exec,
//! carries the pid or an error back; it closes exactly when the workload's
//! exec succeeds, so [`start`] returns with the workload running or with a
//! message such as `exec "/bin/nope": no such file or directory`.
//!
//! The binary that is re-executed ([`Spec::exe`], `/proc/self/exe` by
//! default) must hand its arguments to [`dispatch`] before it starts any
//! thread: the skiff binary does so for `skiff __container …`, and this
//! crate's tests and benchmark do it in their own `main`.
//!
//! # Example
//!
//! ```no_run
//! # fn main() -> container::Result<()> {
//! let spec = container::Spec {
//!     id: "web".into(),
//!     state_dir: "/run/skiff/containers/web".into(),
//!     rootfs: "/var/lib/skiff/rootfs/web".into(),
//!     args: vec!["sh".into(), "-c".into(), "echo hi".into()],
//!     env: vec!["PATH=/bin".into()],
//!     ..Default::default()
//! };
//! let mut c = container::start(&spec, container::Stdio3::default())?;
//! let status = c.wait()?;
//! c.delete()?;
//! # let _ = status; Ok(()) }
//! ```
//!
//! Modules: [`cgroups`] (v1 and v2 limits, OOM counts, removal), `mounts`
//! (the filesystem view), `security` (capabilities and user), [`exec`]
//! (joining a running container), [`bench`] (start latency next to crun).

pub mod bench;
pub mod cgroups;
mod error;
pub mod exec;
mod init;
mod mounts;
pub mod namespaces;
mod report;
pub mod security;
mod shim;
mod spec;
mod state;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub use cgroups::{Cgroup, Hierarchy, Resources};
pub use error::{Error, Result};
pub use exec::{exec, receive_terminal, ExecRequest, Stdio3};
pub use spec::{Capabilities, CgroupSpec, Mount, Namespaces, Spec, User, DEFAULT_PATH};
pub use state::{read_pid, read_status, ExitStatus};

use error::Context;

/// The hidden first argument under which skiff runs the shim, the init and
/// the exec helper: `skiff __container {shim|init|exec} …`.
pub const HIDDEN_COMMAND: &str = "__container";

/// A started container: its shim (whose exit is the container's), its pid
/// in the host pid namespace and its cgroup.
#[derive(Debug)]
pub struct Container {
    id: String,
    state_dir: PathBuf,
    pid: u32,
    shim: Child,
    cgroup: Option<Cgroup>,
    status: Option<ExitStatus>,
}

/// Starts `spec` and returns once its workload has been exec'd (or with the
/// reason it could not be). stdout and stderr go where `io` says (files or
/// pipes the caller reads, e.g. for CRI logs). The workload's stdin is
/// always `/dev/null`: the stdin slot carries the report pipe, so
/// `io.stdin` is not used (attach/`stdin: true` is not supported yet).
///
/// Descriptors the caller left without close-on-exec are inherited by the
/// workload (Rust's std opens everything close-on-exec).
///
/// Blocking; async callers run it with `spawn_blocking`.
pub fn start(spec: &Spec, io: Stdio3) -> Result<Container> {
    spec.validate()?;
    let dir = &spec.state_dir;
    std::fs::create_dir_all(dir).ctx(|| format!("mkdir {}", dir.display()))?;
    for stale in [state::PID, state::STATUS, state::SYNC, state::CGROUP] {
        let _ = std::fs::remove_file(state::path(dir, stale));
    }
    state::write_json(dir, state::SPEC, spec)?;
    let sync = state::path(dir, state::SYNC);
    nix::unistd::mkfifo(&sync, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .ctx(|| format!("mkfifo {}", sync.display()))?;
    let cgroup = match &spec.cgroup {
        Some(c) => {
            let cg = Cgroup::create(&Hierarchy::detect(), &c.path, &c.resources)?;
            state::write_json(dir, state::CGROUP, &cg)?;
            Some(cg)
        }
        None => None,
    };
    match launch(spec, io) {
        Ok((shim, pid)) => Ok(Container {
            id: spec.id.clone(),
            state_dir: dir.clone(),
            pid,
            shim,
            cgroup,
            status: None,
        }),
        Err(e) => {
            if let Some(cg) = &cgroup {
                let _ = cg.remove();
            }
            Err(e)
        }
    }
}

/// Spawns the shim and reads the report pipe to its end.
fn launch(spec: &Spec, io: Stdio3) -> Result<(Child, u32)> {
    let exe = spec.exe.clone().unwrap_or_else(|| "/proc/self/exe".into());
    let (reader, writer) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".to_string())?;
    let mut reader = std::fs::File::from(reader);
    let mut cmd = Command::new(&exe);
    cmd.arg(HIDDEN_COMMAND)
        .arg("shim")
        .arg(&spec.state_dir)
        .stdin(writer)
        .stdout(io.stdout)
        .stderr(io.stderr);
    let spawned = cmd.spawn();
    // The Command holds our copy of the write end; without dropping it the
    // read below would never see the end of the pipe.
    drop(cmd);
    let mut shim = spawned.ctx(|| format!("spawn the shim ({})", exe.display()))?;
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .ctx(|| "read the report pipe".to_string())?;
    let report = report::parse(&text);
    match (report.pid, report.error) {
        (Some(pid), None) => Ok((shim, pid)),
        (_, Some(msg)) => {
            let _ = shim.wait();
            Err(Error::Start(msg))
        }
        (None, None) => {
            let status = shim.wait().ctx(|| "wait for the shim".to_string())?;
            Err(Error::Start(format!(
                "the container shim exited ({status}) without starting it"
            )))
        }
    }
}

impl Container {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its pid in the host pid namespace (it is PID 1 in its own).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its state dir.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Its cgroup, if the spec asked for one.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// Sends `signal` to the container's process unless it has ended.
    /// PID 1 of a pid namespace ignores signals it has no handler for,
    /// except SIGKILL: a shell as PID 1 does not die of SIGTERM.
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
        match nix::sys::signal::kill(pid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("kill -{signal} {}", self.pid)),
        }
    }

    /// Waits for the container's process to end.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        self.shim.wait().ctx(|| "wait for the shim".to_string())?;
        self.finish()
    }

    /// The exit status if the container has ended, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        match self
            .shim
            .try_wait()
            .ctx(|| "wait for the shim".to_string())?
        {
            Some(_) => self.finish().map(Some),
            None => Ok(None),
        }
    }

    fn finish(&mut self) -> Result<ExitStatus> {
        let status = read_status(&self.state_dir)?.ok_or_else(|| {
            Error::Start(format!(
                "the shim of {} exited without recording a status",
                self.id
            ))
        })?;
        self.status = Some(status);
        Ok(status)
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(s) = self.try_wait()? {
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.signal(Signal::SIGKILL)?;
        self.wait()
    }

    /// Kills whatever is left, waits for the shim, removes the cgroup and the
    /// state dir.
    pub fn delete(mut self) -> Result<()> {
        if self.try_wait()?.is_none() {
            self.signal(Signal::SIGKILL)?;
            self.wait()?;
        }
        if let Some(cg) = &self.cgroup {
            cg.remove()?;
        }
        std::fs::remove_dir_all(&self.state_dir)
            .ctx(|| format!("remove {}", self.state_dir.display()))
    }
}

/// Runs the hidden subcommand if this process was started as one
/// (`argv[1] == "__container"`) and returns its exit code; `None` otherwise.
/// Call it first thing in `main`, before any thread exists.
pub fn dispatch() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != HIDDEN_COMMAND {
        return None;
    }
    Some(main_hidden(args.collect()))
}

/// Runs a hidden subcommand given the arguments after [`HIDDEN_COMMAND`]:
/// `shim <state-dir>`, `init <state-dir>` or `exec <state-dir> <json>`.
/// Returns the process's exit code.
pub fn main_hidden(args: Vec<OsString>) -> i32 {
    let mut it = args.into_iter();
    let role = it.next();
    let dir = it.next().map(PathBuf::from);
    match (role.as_ref().and_then(|r| r.to_str()), dir) {
        (Some("shim"), Some(d)) => shim::main(&d),
        (Some("init"), Some(d)) => init::main(&d),
        (Some("exec"), Some(d)) => match it.next().and_then(|r| r.into_string().ok()) {
            Some(req) => exec::main(&d, &req),
            None => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> i32 {
    eprintln!("usage: {HIDDEN_COMMAND} shim|init <state-dir> | exec <state-dir> <request-json>");
    2
}
