//! Commands run in a running Linux container: `kubectl exec` sessions and
//! exec probes.
//!
//! Both go through [`start`]: the launcher's exec helper
//! (`skiff __container exec`) joins the container's namespaces and cgroup
//! and runs the command as its child, with pipes for the streams asked for
//! or, with a terminal, a pty the helper opens on the container's own
//! `/dev/pts` and whose master it sends back through a socket on its stdin
//! ([`container::receive_terminal`]).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::cri::{ExecProcess, ExecSpec};

/// Start `spec.command` in the container whose launcher state is `state`,
/// with the container's environment `env`.
pub async fn start(
    state: PathBuf,
    env: Vec<String>,
    spec: ExecSpec,
) -> Result<ExecProcess, String> {
    if spec.command.is_empty() {
        return Err("no command to run".into());
    }
    let req = container::ExecRequest {
        args: spec.command.clone(),
        env,
        cwd: PathBuf::new(),
        tty: spec.tty,
    };
    let command = spec.command.join(" ");
    let e = |e: std::io::Error| format!("exec streams: {e}");
    // With a terminal the helper opens it in the container and sends the
    // master back through a socket on its stdin.
    let socket = if spec.tty {
        Some(std::os::unix::net::UnixStream::pair().map_err(e)?)
    } else {
        None
    };
    let pipe_if = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let io = match socket.as_ref() {
        Some((_, theirs)) => container::Stdio3 {
            stdin: Stdio::from(OwnedFd::from(theirs.try_clone().map_err(e)?)),
            stdout: Stdio::null(),
            stderr: Stdio::piped(),
        },
        None => container::Stdio3 {
            stdin: pipe_if(spec.stdin),
            stdout: pipe_if(spec.stdout),
            stderr: pipe_if(spec.stderr),
        },
    };
    let mut child = tokio::task::spawn_blocking(move || container::exec(&state, &req, io))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("exec {command:?}: {e}"))?;
    let pid = child.id();
    let mut process = ExecProcess {
        stdin: None,
        stdout: None,
        stderr: None,
        resize: None,
        exit: Box::pin(async { Ok(0) }),
        kill: Box::new(move || super::kill_tree(pid)),
    };
    match socket {
        Some((ours, theirs)) => {
            drop(theirs);
            let received = tokio::task::spawn_blocking(move || container::receive_terminal(&ours))
                .await
                .map_err(|e| e.to_string())?;
            let master = match received {
                Ok(Some(m)) => m,
                failed => {
                    // The helper ended first: its stderr and status say why.
                    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("exec {command:?}: {e}"))?;
                    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
                    return Err(match failed {
                        Err(e) => format!("exec {command:?}: receiving its terminal: {e}; {said}"),
                        _ => format!("exec {command:?}: {said}"),
                    });
                }
            };
            // Its stderr is the terminal from here on.
            drop(child.stderr.take());
            let master = Arc::new(master);
            let file = |m: &OwnedFd| {
                m.try_clone()
                    .map(|f| tokio::fs::File::from_std(File::from(f)))
            };
            if spec.stdin {
                process.stdin = Some(Box::pin(file(&master).map_err(e)?));
            }
            process.stdout = Some(Box::pin(PtyReader(file(&master).map_err(e)?)));
            let m = master.clone();
            process.resize = Some(Box::new(move |cols, rows| {
                let size = rustix::termios::Winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                let _ = rustix::termios::tcsetwinsize(&*m, size);
            }));
        }
        None => {
            if let Some(s) = child.stdin.take() {
                process.stdin = Some(Box::pin(
                    tokio::process::ChildStdin::from_std(s).map_err(e)?,
                ));
            }
            if let Some(s) = child.stdout.take() {
                process.stdout = Some(Box::pin(
                    tokio::process::ChildStdout::from_std(s).map_err(e)?,
                ));
            }
            if let Some(s) = child.stderr.take() {
                process.stderr = Some(Box::pin(
                    tokio::process::ChildStderr::from_std(s).map_err(e)?,
                ));
            }
        }
    }
    process.exit = Box::pin(async move {
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("waiting for the exec helper: {e}"))?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    });
    Ok(process)
}

/// The master side of a pty as a stream that ends when the other side is
/// closed: Linux reports that as EIO, not as end of file.
struct PtyReader(tokio::fs::File);

impl tokio::io::AsyncRead for PtyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e))
                if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
            {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// An exec probe: the command runs with its output captured, and is
/// killed at the timeout; what it printed is the failure message.
pub async fn probe(
    state: PathBuf,
    env: Vec<String>,
    args: Vec<String>,
    timeout: Duration,
) -> Result<(), String> {
    let command = args.join(" ");
    let spec = ExecSpec {
        command: args,
        stdout: true,
        stderr: true,
        ..ExecSpec::default()
    };
    let mut p = start(state, env, spec).await?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let run = async {
        let (code, (), ()) = tokio::join!(
            &mut p.exit,
            read_all(p.stdout.take(), &mut out),
            read_all(p.stderr.take(), &mut err)
        );
        code
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(code)) => {
            let mut text = String::from_utf8_lossy(&out).into_owned();
            text.push_str(&String::from_utf8_lossy(&err));
            Err(format!(
                "command {command:?} exited with {code}: {}",
                text.trim()
            ))
        }
        Ok(Err(e)) => Err(format!("exec {command:?}: {e}")),
        Err(_) => {
            // The helper runs the command as its child: both go.
            (p.kill)();
            Err(format!(
                "command {command:?} timed out after {}s",
                timeout.as_secs()
            ))
        }
    }
}

async fn read_all(
    s: Option<std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>>,
    buf: &mut Vec<u8>,
) {
    if let Some(mut s) = s {
        let _ = s.read_to_end(buf).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pty pair: the master (the agent's side) and the slave (the command's
    /// stdin, stdout and stderr).
    fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
        use rustix::fs::{Mode, OFlags};
        use rustix::pty::OpenptFlags;
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok((master, slave))
    }

    #[tokio::test]
    async fn a_terminal_carries_output_until_its_last_writer_is_gone() {
        let (master, slave) = open_pty().expect("pty");
        let dup = |f: &OwnedFd| f.try_clone().map(Stdio::from).expect("dup");
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "tty; echo to-stderr >&2; exit 4"])
            .stdin(dup(&slave))
            .stdout(dup(&slave))
            .stderr(dup(&slave))
            .spawn()
            .expect("sh");
        drop(slave);
        let mut reader = PtyReader(tokio::fs::File::from_std(File::from(master)));
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut out))
            .await
            .expect("the end of the terminal's output")
            .expect("read");
        let out = String::from_utf8_lossy(&out).replace('\r', "");
        assert!(out.starts_with("/dev/pts/"), "{out:?}");
        assert!(out.contains("to-stderr\n"), "{out:?}");
        assert_eq!(child.wait().expect("wait").code(), Some(4));
    }
}
