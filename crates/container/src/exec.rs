//! Running another process in a running container (`kubectl exec`, exec
//! probes).
//!
//! [`exec`] spawns `<exe> __container exec <state-dir> <request-json>`. The
//! helper joins the container's cgroup and its ipc, uts, net, cgroup, pid and
//! mount namespaces through `/proc/<pid>/ns/*` of the container's pid, takes
//! the container's user, capabilities and `no_new_privs`, and spawns the
//! command: joining a pid namespace applies to children only, so the helper
//! stays as the command's parent and exits with its status (128 + signal
//! when killed). A helper failure exits 126 (127: command not found) with
//! `skiff exec: <message>` on its stderr.

use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sched::{setns, CloneFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::{init, security, state, HIDDEN_COMMAND};

/// A command to run in a running container.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecRequest {
    /// argv; argv[0] is resolved through `PATH` of `env` in the container.
    pub args: Vec<String>,
    /// The whole environment, `KEY=value`.
    pub env: Vec<String>,
    /// Working directory; the container's when empty.
    pub cwd: PathBuf,
    /// Run the command on a terminal. The helper's stdin must then be a
    /// Unix socket: inside the container it opens a pty on the
    /// container's own `/dev/pts` (so `tty` names it there), sends the
    /// master over the socket ([`receive_terminal`]), starts a new session
    /// with the slave as its controlling terminal and as stdin, stdout and
    /// stderr. Errors before that are on the helper's stderr.
    pub tty: bool,
}

/// The three standard streams of a process the caller starts.
#[derive(Debug)]
pub struct Stdio3 {
    /// Standard input.
    pub stdin: Stdio,
    /// Standard output.
    pub stdout: Stdio,
    /// Standard error.
    pub stderr: Stdio,
}

impl Default for Stdio3 {
    /// `/dev/null` for all three.
    fn default() -> Self {
        Stdio3 {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// Starts `req` in the container whose state dir is `state_dir`; the
/// returned child's exit status is the command's.
pub fn exec(state_dir: &Path, req: &ExecRequest, stdio: Stdio3) -> Result<Child> {
    if req.args.is_empty() {
        return Err(Error::Spec("exec: args is empty".into()));
    }
    let spec = state::read_spec(state_dir)?;
    let exe = spec.exe.clone().unwrap_or_else(|| "/proc/self/exe".into());
    let json = serde_json::to_string(req).map_err(|source| Error::Json {
        what: "exec request".into(),
        source,
    })?;
    Command::new(&exe)
        .arg(HIDDEN_COMMAND)
        .arg("exec")
        .arg(state_dir)
        .arg(json)
        .stdin(stdio.stdin)
        .stdout(stdio.stdout)
        .stderr(stdio.stderr)
        .spawn()
        .ctx(|| format!("spawn the exec helper ({})", exe.display()))
}

/// In the container's namespaces: open a pty there, hand the master to the
/// caller through the socket on stdin, and make the slave this process's
/// controlling terminal and its stdin, stdout and stderr (the command
/// inherits them).
fn terminal(uid: u32) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::OpenptFlags;
    let sys = |what: &'static str| {
        move |e: rustix::io::Errno| Error::Sys {
            what: what.to_string(),
            source: std::io::Error::from(e),
        }
    };
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(sys("open /dev/ptmx in the container"))?;
    rustix::pty::grantpt(&master).map_err(sys("grantpt"))?;
    rustix::pty::unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = rustix::pty::ptsname(&master, Vec::new()).map_err(sys("ptsname"))?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open the terminal's slave"))?;
    // The command's user owns its terminal, as login does.
    rustix::fs::fchown(&slave, Some(rustix::fs::Uid::from_raw(uid)), None)
        .map_err(sys("chown the terminal"))?;
    rustix::process::setsid().map_err(sys("setsid"))?;
    rustix::process::ioctl_tiocsctty(&slave).map_err(sys("set the controlling terminal"))?;
    let fds = [rustix::fd::AsFd::as_fd(&master)];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        std::io::stdin(),
        &[std::io::IoSlice::new(b"t")],
        &mut control,
        rustix::net::SendFlags::empty(),
    )
    .map_err(sys("send the terminal to the node agent"))?;
    drop(master);
    rustix::stdio::dup2_stdin(&slave).map_err(sys("dup2 the terminal"))?;
    rustix::stdio::dup2_stdout(&slave).map_err(sys("dup2 the terminal"))?;
    rustix::stdio::dup2_stderr(&slave).map_err(sys("dup2 the terminal"))?;
    Ok(())
}

/// The caller's side of a terminal exec: the pty master the helper sends
/// through `socket` (its stdin); None when the helper ended without
/// sending one (its stderr says why).
pub fn receive_terminal(
    socket: &std::os::unix::net::UnixStream,
) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = rustix::net::recvmsg(
        socket,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes == 0 {
        return Ok(None);
    }
    for msg in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(Some(fd));
            }
        }
    }
    Ok(None)
}

pub(crate) fn main(state_dir: &Path, request: &str) -> i32 {
    match run(state_dir, request) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("skiff exec: {e}");
            if matches!(e, Error::Start(_)) {
                127
            } else {
                126
            }
        }
    }
}

/// Namespaces joined, in order: mount last, since it changes the root that
/// `/proc/<pid>` is found in.
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

fn run(state_dir: &Path, request: &str) -> Result<i32> {
    let req: ExecRequest = serde_json::from_str(request).map_err(|source| Error::Json {
        what: "exec request".into(),
        source,
    })?;
    let spec = state::read_spec(state_dir)?;
    if state::read_status(state_dir)?.is_some() {
        return Err(Error::Spec(format!("container {} is not running", spec.id)));
    }
    let pid = state::read_pid(state_dir)?;
    let files = NAMESPACES
        .iter()
        .map(|(name, kind)| {
            let p = format!("/proc/{pid}/ns/{name}");
            File::open(&p)
                .ctx(|| format!("open {p}"))
                .map(|f| (f, *kind, p))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(cg) = state::read_cgroup(state_dir)? {
        cg.add_pid(std::process::id())?;
    }
    for (f, kind, p) in &files {
        setns(f, *kind).ctx(|| format!("join {p}"))?;
    }
    drop(files);
    if req.tty {
        terminal(spec.user.uid)?;
    }
    security::apply(&spec)?;
    let cwd = if !req.cwd.as_os_str().is_empty() {
        req.cwd.clone()
    } else if !spec.cwd.as_os_str().is_empty() {
        spec.cwd.clone()
    } else {
        PathBuf::from("/")
    };
    nix::unistd::chdir(&cwd).ctx(|| format!("chdir {}", cwd.display()))?;
    let path_var = req
        .env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(crate::spec::DEFAULT_PATH);
    let program = init::resolve_program(&req.args[0], path_var)?;
    let env = req.env.iter().filter_map(|kv| kv.split_once('='));
    let status = Command::new(&program)
        .arg0(&req.args[0])
        .args(&req.args[1..])
        .env_clear()
        .envs(env)
        .status()
        .map_err(|e| {
            Error::Start(format!(
                "exec {:?}: {}",
                req.args[0],
                crate::error::errno_text(&e)
            ))
        })?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
