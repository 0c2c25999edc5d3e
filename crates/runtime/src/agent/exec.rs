//! `kubectl exec` on the node: the running containers one can exec into,
//! and the WebSocket session that carries a command's streams.
//!
//! The API server authorizes `pods/exec` and passes the client's upgrade
//! request through to `GET /exec/{namespace}/{pod}/{uid}/{container}`
//! here, then splices the two connections. The session speaks Kubernetes'
//! remote-command protocol over WebSocket (`v5.channel.k8s.io`, and
//! `v4.channel.k8s.io`, which lacks only the close message): every binary
//! message starts with a channel byte, 0 stdin, 1 stdout, 2 stderr,
//! 3 the final `Status`, 4 terminal resize (`{"Width":…,"Height":…}`),
//! and in v5 255 closes the channel named by the next byte (stdin's end).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;

use crate::cri::{Exec, ExecProcess, ExecSpec};

/// The remote-command subprotocols served, most preferred first.
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// How long output still being copied may take once the command ended
/// (something it started in the background may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);

type Entry = (u64, Result<Exec, String>);

/// The containers running on this node, by pod uid and container name,
/// with how to exec into each (or why one cannot).
#[derive(Default)]
pub struct Execs {
    running: Mutex<HashMap<(String, String), Entry>>,
    next: AtomicU64,
}

/// Removes its container from [`Execs`] when dropped (the container ended).
pub struct Registration {
    execs: Arc<Execs>,
    key: (String, String),
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut running = self.execs.running.lock().unwrap_or_else(|p| p.into_inner());
        // A restarted container registers anew: only remove our own.
        if running.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            running.remove(&self.key);
        }
    }
}

impl Execs {
    /// Record a running container until the returned guard is dropped.
    pub fn register(
        self: &Arc<Self>,
        pod_uid: &str,
        container: &str,
        exec: Result<Exec, String>,
    ) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let key = (pod_uid.to_string(), container.to_string());
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), (id, exec));
        Registration {
            execs: self.clone(),
            key,
            id,
        }
    }

    /// How to exec into a running container; None when it is not running.
    pub fn get(&self, pod_uid: &str, container: &str) -> Option<Result<Exec, String>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(pod_uid.to_string(), container.to_string()))
            .map(|(_, e)| e.clone())
    }
}

/// The query of an exec request: `command` (repeated), `stdin`, `stdout`,
/// `stderr`, `tty`.
pub fn parse_query(q: &str) -> ExecSpec {
    let mut spec = ExecSpec::default();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        let on = super::server::flag(&v);
        match &*k {
            "command" => spec.command.push(v.into_owned()),
            "stdin" | "input" => spec.stdin = on,
            "stdout" | "output" => spec.stdout = on,
            "stderr" | "error" => spec.stderr = on,
            "tty" => spec.tty = on,
            _ => {}
        }
    }
    if spec.tty {
        // One terminal carries both outputs.
        spec.stderr = false;
    }
    spec
}

/// The Status sent on channel 3 when the command has ended.
pub fn final_status(command: &[String], exit: &Result<i32, String>) -> serde_json::Value {
    match exit {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": e,
            "reason": "InternalError",
        }),
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut m = Vec::with_capacity(data.len() + 1);
    m.push(channel);
    m.extend_from_slice(data);
    Message::Binary(m.into())
}

/// Run one exec session on an upgraded connection: start the command, copy
/// its streams both ways, and end with its Status. The client going away
/// kills the command.
pub async fn session<S>(io: S, exec: Exec, spec: ExecSpec, v5: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut incoming) = ws.split();
    let command = spec.command.clone();
    let p = match exec(spec).await {
        Ok(p) => p,
        Err(e) => {
            let status = final_status(&command, &Err(e));
            let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
            let _ = sink.send(Message::Close(None)).await;
            return;
        }
    };
    let ExecProcess {
        stdin,
        stdout,
        stderr,
        resize,
        exit,
        kill,
    } = p;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(16);
    for (channel, stream) in [(1u8, stdout), (2u8, stderr)] {
        let Some(mut stream) = stream else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(frame(channel, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    let mut stdin = stdin;
    let mut exit = exit;
    let mut code: Option<Result<i32, String>> = None;
    let mut outputs_done = false;
    let drain = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain);
    loop {
        if code.is_some() && outputs_done {
            break;
        }
        tokio::select! {
            m = rx.recv(), if !outputs_done => match m {
                Some(m) => {
                    if sink.send(m).await.is_err() {
                        kill();
                        return;
                    }
                }
                None => outputs_done = true,
            },
            c = &mut exit, if code.is_none() => {
                code = Some(c);
                drain.as_mut().reset(tokio::time::Instant::now() + DRAIN);
            }
            () = &mut drain, if code.is_some() => break,
            m = incoming.next() => match m {
                Some(Ok(Message::Binary(b))) => match b.split_first() {
                    Some((0, data)) => {
                        if let Some(w) = stdin.as_mut() {
                            if w.write_all(data).await.is_err() || w.flush().await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Some((4, data)) => {
                        if let (Some(r), Ok(size)) =
                            (&resize, serde_json::from_slice::<serde_json::Value>(data))
                        {
                            let dim = |k: &str| size[k].as_u64().and_then(|v| u16::try_from(v).ok());
                            if let (Some(w), Some(h)) = (dim("Width"), dim("Height")) {
                                r(w, h);
                            }
                        }
                    }
                    Some((255, [0, ..])) if v5 => {
                        if let Some(mut w) = stdin.take() {
                            let _ = w.shutdown().await;
                        }
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    kill();
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let code = code.unwrap_or_else(|| Err("the command's end was not seen".into()));
    let status = final_status(&command, &code);
    let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_read_as_kubectl_sends_them() {
        let s = parse_query("command=sh&command=-c&command=echo%20hi%3B%20exit%203&stdin=true&stdout=true&stderr=true&tty=false");
        assert_eq!(s.command, ["sh", "-c", "echo hi; exit 3"]);
        assert!(s.stdin && s.stdout && s.stderr && !s.tty);
        let t = parse_query("command=sh&stdin=True&stdout=True&stderr=True&tty=True");
        assert!(t.tty && !t.stderr, "a terminal has one output stream");
    }

    #[test]
    fn statuses_carry_the_exit_code_as_kubectl_reads_it() {
        let cmd = vec!["false".to_string()];
        assert_eq!(final_status(&cmd, &Ok(0))["status"], "Success");
        let s = final_status(&cmd, &Ok(3));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(final_status(&cmd, &Err("boom".into()))["message"], "boom");
    }

    #[test]
    fn a_restarted_container_is_not_removed_by_its_predecessor() {
        let execs = Arc::new(Execs::default());
        let first = execs.register("uid", "c", Err("first".into()));
        let second = execs.register("uid", "c", Err("second".into()));
        drop(first);
        assert_eq!(
            execs.get("uid", "c").map(|e| e.err()),
            Some(Some("second".into()))
        );
        drop(second);
        assert!(execs.get("uid", "c").is_none());
    }
}
