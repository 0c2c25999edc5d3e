//! The init: PID 1 of the container's pid namespace, which becomes the
//! workload by exec.
//!
//! Started by the shim as `<exe> __container init <state-dir>`. It waits on
//! the `sync` FIFO until the shim has put it in the container's cgroup, so
//! nothing of the workload runs outside it; then joins the pod's network and
//! IPC namespaces if named, unshares mount, UTS, cgroup (and IPC, network
//! when not joined), builds the filesystem view, sets the hostname, becomes
//! the container's user and execs argv with exactly the spec's env.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Context, Error, Result};
use crate::spec::Spec;
use crate::{mounts, report, security, state};

pub(crate) fn main(state_dir: &Path) -> i32 {
    let mut report = match report::take_from_stdin() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skiff container init: {e}");
            return 125;
        }
    };
    // Only returns on failure: success is an exec.
    let e = run(state_dir);
    match report.as_mut() {
        Some(r) => {
            let _ = writeln!(r, "error {e}");
        }
        None => eprintln!("skiff container init: {e}"),
    }
    match e {
        Error::Start(_) => 127,
        _ => 126,
    }
}

fn run(state_dir: &Path) -> Error {
    match prepare(state_dir) {
        Ok((spec, program)) => exec(&spec, &program),
        Err(e) => e,
    }
}

fn prepare(state_dir: &Path) -> Result<(Spec, PathBuf)> {
    // If the shim dies, so does the container: nobody would reap it.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .ctx(|| "set the parent-death signal".to_string())?;
    let spec = state::read_spec(state_dir)?;
    wait_for_release(state_dir)?;

    let mut flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWCGROUP;
    match &spec.namespaces.network {
        Some(p) => join(p, CloneFlags::CLONE_NEWNET)?,
        None => flags |= CloneFlags::CLONE_NEWNET,
    }
    match &spec.namespaces.ipc {
        Some(p) => join(p, CloneFlags::CLONE_NEWIPC)?,
        None => flags |= CloneFlags::CLONE_NEWIPC,
    }
    unshare(flags).ctx(|| "unshare namespaces".to_string())?;

    mounts::setup(&spec)?;
    let hostname = spec.hostname.clone().unwrap_or_else(|| spec.id.clone());
    nix::unistd::sethostname(&hostname).ctx(|| format!("sethostname {hostname:?}"))?;

    let cwd = if spec.cwd.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        spec.cwd.clone()
    };
    if !cwd.exists() {
        std::fs::create_dir_all(&cwd).ctx(|| format!("mkdir working dir {}", cwd.display()))?;
    }
    security::apply(&spec)?;
    nix::unistd::chdir(&cwd).ctx(|| format!("chdir to working dir {}", cwd.display()))?;
    let program = resolve_program(&spec.args[0], spec.path_var())?;
    Ok((spec, program))
}

fn wait_for_release(state_dir: &Path) -> Result<()> {
    let p = state::path(state_dir, state::SYNC);
    let mut fifo = File::open(&p).ctx(|| format!("open {}", p.display()))?;
    let mut byte = [0u8; 1];
    let n = fifo
        .read(&mut byte)
        .ctx(|| format!("read {}", p.display()))?;
    if n == 0 {
        return Err(Error::Start(
            "the shim closed the sync FIFO before releasing the container".into(),
        ));
    }
    Ok(())
}

fn join(path: &Path, kind: CloneFlags) -> Result<()> {
    let f = File::open(path).ctx(|| format!("open namespace {}", path.display()))?;
    setns(&f, kind).ctx(|| format!("join namespace {}", path.display()))
}

/// argv[0] as the kernel will run it: a path as is, a bare name through
/// `PATH` (of the spec's env) in the container's root.
pub(crate) fn resolve_program(argv0: &str, path_var: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if argv0.contains('/') {
        return match std::fs::metadata(argv0) {
            Ok(_) => Ok(PathBuf::from(argv0)),
            Err(e) => Err(Error::Start(format!(
                "exec {argv0:?}: {}",
                crate::error::errno_text(&e)
            ))),
        };
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(argv0);
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(Error::Start(format!(
        "exec {argv0:?}: executable file not found in $PATH"
    )))
}

fn exec(spec: &Spec, program: &Path) -> Error {
    let env = spec.env.iter().filter_map(|kv| kv.split_once('='));
    let e = Command::new(program)
        .arg0(&spec.args[0])
        .args(&spec.args[1..])
        .env_clear()
        .envs(env)
        .exec();
    Error::Start(format!(
        "exec {:?}: {}",
        spec.args[0],
        crate::error::errno_text(&e)
    ))
}
