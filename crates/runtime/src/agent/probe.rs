//! Startup, liveness and readiness probes, as the kubelet runs them.
//!
//! - A **startup** probe gates the other two: until it succeeds the
//!   container is not `started`, and `failureThreshold` failures in a row
//!   restart it.
//! - A **liveness** probe restarts the container after `failureThreshold`
//!   failures in a row.
//! - A **readiness** probe decides `ready`: false until `successThreshold`
//!   successes, false again after `failureThreshold` failures. A container
//!   with no readiness probe is ready once started.
//!
//! Handlers: `httpGet` (plain HTTP; 200–399 is success) and `tcpSocket`
//! connect to the pod IP (for in-process Wasm pods, the node's address).
//! `exec` has no meaning for a Wasm guest (there is no process to exec
//! into), nor do `grpc` and HTTPS probes yet: such a probe is reported once
//! with a Warning Event and otherwise ignored, as if it were not there.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// A probe with Kubernetes' defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub kind: Kind,
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Http {
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: Option<String>,
        port: u16,
    },
    /// A command run in the container (Linux containers only): healthy
    /// when it exits 0.
    Exec(Vec<String>),
    /// Not something this runtime can run; the text says why.
    Unsupported(String),
}

/// The message for an exec probe on a container with no process to run
/// it in (a Wasm guest).
pub const EXEC_NEEDS_A_PROCESS: &str = "exec probes have no meaning for a Wasm container (there is no process to run a command in); use httpGet or tcpSocket";

fn secs(v: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(v.and_then(|s| u64::try_from(s).ok()).unwrap_or(default))
}

fn threshold(v: Option<i32>, default: u32) -> u32 {
    v.and_then(|s| u32::try_from(s).ok())
        .filter(|s| *s > 0)
        .unwrap_or(default)
}

/// A named or numbered port of the container.
fn port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .ok_or_else(|| format!("the container has no port named {name:?}")),
    }
}

fn action(c: &Container, p: &Probe) -> Action {
    if let Some(h) = &p.http_get {
        if h.scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
        {
            return Action::Unsupported("HTTPS probes are not supported yet".into());
        }
        return match port(c, &h.port) {
            Ok(port) => Action::Http {
                host: h.host.clone(),
                port,
                path: h.path.clone().unwrap_or_else(|| "/".into()),
                headers: h
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            },
            Err(e) => Action::Unsupported(e),
        };
    }
    if let Some(t) = &p.tcp_socket {
        return match port(c, &t.port) {
            Ok(port) => Action::Tcp {
                host: t.host.clone(),
                port,
            },
            Err(e) => Action::Unsupported(e),
        };
    }
    if let Some(e) = &p.exec {
        let command = e.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Action::Unsupported("the exec probe has no command".into());
        }
        return Action::Exec(command);
    }
    Action::Unsupported("grpc probes are not supported yet".into())
}

/// The container's probes, Kubernetes' defaults applied (period 10 s,
/// timeout 1 s, success 1, failure 3).
pub fn specs(c: &Container) -> Vec<Spec> {
    [
        (Kind::Startup, &c.startup_probe),
        (Kind::Liveness, &c.liveness_probe),
        (Kind::Readiness, &c.readiness_probe),
    ]
    .into_iter()
    .filter_map(|(kind, p)| {
        let p = p.as_ref()?;
        Some(Spec {
            kind,
            action: action(c, p),
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            // Liveness and startup probes must have a success threshold of 1.
            success_threshold: if kind == Kind::Readiness {
                threshold(p.success_threshold, 1)
            } else {
                1
            },
            failure_threshold: threshold(p.failure_threshold, 3),
        })
    })
    .collect()
}

/// Run one probe attempt against `pod_ip`. `Err` carries the failure as
/// the kubelet words it in the Unhealthy event.
pub async fn check(
    action: &Action,
    pod_ip: &str,
    timeout: Duration,
    exec: Option<&crate::cri::ExecProbe>,
) -> Result<(), String> {
    let attempt = async {
        match action {
            Action::Http {
                host,
                port,
                path,
                headers,
            } => http_get(host.as_deref().unwrap_or(pod_ip), *port, path, headers).await,
            Action::Tcp { host, port } => {
                let host = host.as_deref().unwrap_or(pod_ip);
                tokio::net::TcpStream::connect((host, *port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
            }
            Action::Exec(command) => match exec {
                Some(run) => run(command.clone(), timeout).await,
                None => Err(EXEC_NEEDS_A_PROCESS.to_string()),
            },
            Action::Unsupported(why) => Err(why.clone()),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers) after {}s",
            timeout.as_secs()
        )),
    }
}

async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let url = format!("http://{host}:{port}{path}");
    let mut s = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("Get \"{url}\": dial tcp {host}:{port}: {e}"))?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut head = [0u8; 64];
    let n = s
        .read(&mut head)
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// Consecutive results of one probe, deciding when it flips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    successes: u32,
    failures: u32,
}

/// A probe's verdict after a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `successThreshold` successes in a row.
    Passed,
    /// `failureThreshold` failures in a row.
    Failed,
    /// Neither yet.
    Undecided,
}

impl Counter {
    pub fn record(&mut self, ok: bool, spec: &Spec) -> Verdict {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= spec.success_threshold {
                return Verdict::Passed;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= spec.failure_threshold {
                return Verdict::Failed;
            }
        }
        Verdict::Undecided
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).expect("container")
    }

    #[test]
    fn kubernetes_defaults_and_named_ports() {
        let c = container(
            json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}},
            "livenessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 2, "failureThreshold": 1, "successThreshold": 5}}),
        );
        let s = specs(&c);
        assert_eq!(s.len(), 2);
        let live = &s[0];
        assert_eq!(live.kind, Kind::Liveness);
        assert_eq!(live.period, Duration::from_secs(2));
        assert_eq!(
            live.success_threshold, 1,
            "liveness success threshold is always 1"
        );
        assert_eq!(live.failure_threshold, 1);
        let ready = &s[1];
        assert_eq!(ready.period, Duration::from_secs(10));
        assert_eq!(ready.timeout, Duration::from_secs(1));
        assert_eq!(ready.failure_threshold, 3);
        assert!(matches!(&ready.action, Action::Http { port: 8080, path, .. } if path == "/ready"));
    }

    #[test]
    fn exec_probes_carry_their_command_and_unknown_ports_are_unsupported() {
        let c = container(
            json!({"name": "w", "livenessProbe": {"exec": {"command": ["true"]}},
            "readinessProbe": {"httpGet": {"port": "nope"}}}),
        );
        let s = specs(&c);
        assert!(matches!(&s[0].action, Action::Exec(c) if c == &["true".to_string()]));
        assert!(
            matches!(&s[1].action, Action::Unsupported(w) if w.contains("no port named \"nope\""))
        );
    }

    #[test]
    fn thresholds_count_consecutive_results() {
        let c = container(
            json!({"name": "w", "readinessProbe": {"tcpSocket": {"port": 1}, "successThreshold": 2, "failureThreshold": 2}}),
        );
        let spec = &specs(&c)[0];
        let mut n = Counter::default();
        assert_eq!(n.record(true, spec), Verdict::Undecided);
        assert_eq!(
            n.record(false, spec),
            Verdict::Undecided,
            "a failure resets successes"
        );
        assert_eq!(n.record(false, spec), Verdict::Failed);
        assert_eq!(n.record(true, spec), Verdict::Undecided);
        assert_eq!(n.record(true, spec), Verdict::Passed);
    }

    #[tokio::test]
    async fn http_and_tcp_checks_against_real_sockets() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = l.accept().await {
                n += 1;
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let code = if n == 1 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let http = Action::Http {
            host: None,
            port,
            path: "/healthz".into(),
            headers: vec![],
        };
        let t = Duration::from_secs(2);
        assert_eq!(check(&http, "127.0.0.1", t, None).await, Ok(()));
        let err = check(&http, "127.0.0.1", t, None)
            .await
            .expect_err("503 fails");
        assert!(err.contains("statuscode: 503"), "{err}");
        assert_eq!(
            check(&Action::Tcp { host: None, port }, "127.0.0.1", t, None).await,
            Ok(())
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let dead = closed.local_addr().expect("addr").port();
        drop(closed);
        let err = check(
            &Action::Tcp {
                host: None,
                port: dead,
            },
            "127.0.0.1",
            t,
            None,
        )
        .await
        .expect_err("refused");
        assert!(err.contains("dial tcp"), "{err}");
    }
}
