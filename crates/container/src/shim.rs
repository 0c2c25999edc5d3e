//! The shim: the container's parent for its whole life.
//!
//! Started by [`crate::start`] as `<exe> __container shim <state-dir>` with
//! the report pipe on stdin. It makes a new pid namespace for its one child,
//! spawns the init in it, puts the init in the container's cgroup, releases
//! it through the `sync` FIFO, records the pid, then waits and records the
//! exit status (and whether the cgroup saw an OOM kill), exiting with it.
//!
//! Signals are not forwarded: callers signal the container's pid (from the
//! pid file, host pid namespace) directly, which is one hop fewer and works
//! the same when the caller is not the shim's parent (an agent restarted).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sched::{unshare, CloneFlags};

use crate::error::{Context, Result};
use crate::state::{self, ExitStatus};
use crate::{report, HIDDEN_COMMAND};

pub(crate) fn main(state_dir: &Path) -> i32 {
    let mut report = match report::take_from_stdin() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skiff container shim: {e}");
            return 125;
        }
    };
    match run(state_dir, &mut report) {
        Ok(code) => code,
        Err(e) => {
            if let Some(r) = report.as_mut() {
                let _ = writeln!(r, "error {e}");
            }
            125
        }
    }
}

fn run(state_dir: &Path, report: &mut Option<std::fs::File>) -> Result<i32> {
    let spec = state::read_spec(state_dir)?;
    let cgroup = state::read_cgroup(state_dir)?;
    // Held read-write so the init's open for reading never blocks; if this
    // shim dies, the init's parent-death signal ends it.
    let sync_path = state::path(state_dir, state::SYNC);
    let mut sync = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&sync_path)
        .ctx(|| format!("open {}", sync_path.display()))?;

    unshare(CloneFlags::CLONE_NEWPID).ctx(|| "unshare pid namespace".to_string())?;
    let exe = spec.exe.clone().unwrap_or_else(|| "/proc/self/exe".into());
    // The init gets the report pipe as its stdin, like this shim did.
    let init_stdin = match report.as_ref() {
        Some(r) => Stdio::from(r.try_clone().ctx(|| "dup the report pipe".to_string())?),
        None => Stdio::null(),
    };
    let mut child = Command::new(&exe)
        .arg(HIDDEN_COMMAND)
        .arg("init")
        .arg(state_dir)
        .stdin(init_stdin)
        .spawn()
        .ctx(|| format!("spawn the init ({})", exe.display()))?;
    let pid = child.id();
    let oom_before = cgroup.as_ref().map(|c| c.oom_kills()).unwrap_or(0);
    if let Some(cg) = &cgroup {
        if let Err(e) = cg.add_pid(pid) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    state::write_atomic(state_dir, state::PID, pid.to_string().as_bytes())?;
    sync.write_all(b"1")
        .ctx(|| "release the init".to_string())?;
    if let Some(r) = report.as_mut() {
        writeln!(r, "pid {pid}").ctx(|| "report the pid".to_string())?;
    }
    // From here only the init's copy of the report pipe is open, so the
    // caller's read ends exactly when the workload's exec succeeds.
    *report = None;

    let status = child.wait().ctx(|| "wait for the init".to_string())?;
    // Kept open until now: a FIFO's data is discarded once no one has it
    // open, and the init may open it only after the byte was written.
    drop(sync);
    let oom_killed = cgroup
        .as_ref()
        .map(|c| c.oom_kills() > oom_before)
        .unwrap_or(false);
    let exit = ExitStatus {
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        signal: status.signal(),
        oom_killed,
    };
    state::write_json(state_dir, state::STATUS, &exit)?;
    Ok(exit.code)
}
