//! Starting skiff and running clients against it.
//!
//! Every test gets a server of its own: the real `skiff up` binary on a
//! loopback port the kernel picks (`--listen 127.0.0.1:0`, the URL is read
//! back from the `ready` line, so two tests can never race for a port), with
//! a temporary data directory. Clients (kubectl, curl, python) only ever see
//! what `skiff up` wrote to `DIR/kubeconfig.yaml`, as a user would. Every
//! client run has a deadline: a hung kubectl fails its test instead of
//! hanging the suite.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;

pub const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";
/// The oldest and newest kubectl skiff supports.
pub const VERSIONS: &[&str] = &["1.27", "1.33"];
/// How long any one client command may take before its test fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `skiff up` may take to print its `ready` line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `skiff up` on a loopback port of its own.
pub struct Skiff {
    child: Option<Child>,
    /// The data directory (`--data-dir`).
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// `https://127.0.0.1:PORT`, from the `ready` line.
    pub url: String,
}

/// What a client printed.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Panic with everything printed unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panic unless the command failed.
    #[track_caller]
    pub fn failed(self) -> Out {
        assert_ne!(
            self.code, 0,
            "command should have failed\nstdout:\n{}",
            self.stdout
        );
        self
    }
}

/// A raw HTTP exchange made with curl.
#[derive(Debug)]
pub struct Response {
    pub code: u16,
    /// The response header block as received (lower-case names with HTTP/2).
    pub headers: String,
    pub body: String,
}

impl Response {
    /// Every value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// The body as JSON, or a panic showing it.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), HTTP {}: {}", self.code, self.body))
    }
}

/// One curl run, before it is read as a [`Response`].
struct CurlOut {
    code: i32,
    stdout: String,
    stderr: String,
    headers: String,
}

impl CurlOut {
    #[track_caller]
    fn response(self) -> Response {
        let parsed = self
            .stdout
            .rsplit_once('\n')
            .and_then(|(body, code)| Some((body, code.trim().parse::<u16>().ok()?)))
            .filter(|(_, code)| *code != 0);
        let Some((body, code)) = parsed else {
            panic!(
                "curl got no HTTP answer (exit {}): {}\n{}",
                self.code, self.stderr, self.stdout
            );
        };
        Response {
            code,
            headers: self.headers,
            body: body.to_string(),
        }
    }
}

/// What `skiff up` wrote to its kubeconfig.
#[derive(Debug)]
pub struct KubeConfig {
    pub server: String,
    pub ca_pem: String,
    pub token: String,
}

/// A tool the tests need, or a failure saying how to get it.
#[track_caller]
pub fn require(path: &str, install: &str) -> String {
    let found = if path.contains('/') {
        Path::new(path).exists()
    } else {
        Command::new("sh")
            .args(["-c", &format!("command -v {path}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(found, "{path} is needed for this test: {install}");
    path.to_string()
}

#[track_caller]
pub fn kubectl_path(version: &str) -> String {
    if version.is_empty() {
        return require(
            "/usr/bin/kubectl",
            "install the kubectl dispatcher at /usr/bin/kubectl (Google Cloud SDK kubectl component)",
        );
    }
    require(
        &format!("{KUBECTL_DIR}/kubectl.{version}"),
        "install the Google Cloud SDK's kubectl bundles (kubectl.1.27 … kubectl.1.33)",
    )
}

/// Run `cmd` to completion with `stdin`, failing the test after `timeout`
/// with whatever it printed so far.
#[track_caller]
pub fn run(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Out {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if let Some(input) = stdin {
        // A client that exits early closes its stdin: not our failure.
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for client") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {} s\nstdout:\n{}\nstderr:\n{}",
                timeout.as_secs(),
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Read a pipe to its end on a thread of its own, so that a chatty client
/// never blocks on a full pipe while we wait for it.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Skiff {
    /// Start on a fresh data directory.
    pub fn start() -> Skiff {
        Skiff::start_with(&[])
    }

    /// The API server alone (`--api-only`): no scheduler, controllers or
    /// node write to the objects a test checks byte for byte or revision
    /// for revision.
    pub fn api_only() -> Skiff {
        Skiff::start_with(&["--api-only"])
    }

    /// Start on a fresh data directory with extra `skiff up` flags.
    pub fn start_with(extra: &[&str]) -> Skiff {
        let tmp = tempfile::tempdir().expect("temp dir");
        // The data dir is a child of the temp dir so that the server's log
        // (a sibling, see `log_path`) is removed with it.
        let dir = tmp.path().join("data");
        let mut s = Skiff::start_in_with(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Start on `dir` (which may hold a previous run's state).
    pub fn start_in(dir: &Path) -> Skiff {
        Skiff::start_in_with(dir, &[])
    }

    /// Where the server's stderr goes: next to the data dir, appended to
    /// across restarts so a failure shows every run.
    pub fn log_path(dir: &Path) -> PathBuf {
        dir.with_extension("stderr.log")
    }

    /// `127.0.0.1:PORT` of this server.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("https://").to_string()
    }

    /// Start on `dir` with extra `skiff up` flags.
    pub fn start_in_with(dir: &Path, extra: &[&str]) -> Skiff {
        let log_path = Skiff::log_path(dir);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log file");
        let _ = writeln!(log, "==== skiff up --data-dir {}", dir.display());
        // Port 0 unless told: the kernel picks a free port, and the ready
        // line says which, so parallel tests never race for one.
        let listen: &[&str] = if extra.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        // The local node's endpoint likewise: 10250 is one per host.
        let node_port: &[&str] = if extra.contains(&"--node-port") {
            &[]
        } else {
            &["--node-port", "0"]
        };
        // The gateway likewise, and a pod network (bridge and cluster
        // range) of this server's own: parallel servers share the host's
        // network namespace.
        let gateway: &[&str] = if extra.contains(&"--gateway-port") {
            &[]
        } else {
            &["--gateway-port", "0", "--gateway-tls-port", "0"]
        };
        // No service proxy: it owns one nftables table per network
        // namespace, and parallel test clusters share the host's.
        let proxy: &[&str] = &["--no-service-proxy"];
        let (bridge, cidr) = pod_network_of(dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["up", "--data-dir"])
            .arg(dir)
            .args(listen)
            .args(node_port)
            .args(gateway)
            .args(["--pod-bridge", &bridge, "--cluster-cidr", &cidr])
            .args(proxy)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start skiff");
        let url = wait_ready(&mut child, &log_path);
        let s = Skiff {
            child: Some(child),
            dir: dir.to_path_buf(),
            _tmp: None,
            url,
        };
        let kc = s.kubeconfig_parts();
        assert_eq!(
            kc.server, s.url,
            "the kubeconfig names the server the ready line announced"
        );
        s
    }

    /// The server's gateway address, from its Node's annotation.
    pub fn gateway(&self) -> String {
        eventually(30, "the node's gateway annotation", || {
            let nodes = self.get_json("/api/v1/nodes");
            nodes["items"][0]["metadata"]["annotations"]["skiff.dev/gateway"]
                .as_str()
                .map(str::to_string)
        })
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(Skiff::log_path(&self.dir)).unwrap_or_default()
    }

    /// Fail if the server panicked at any point (the issue: "never a panic").
    #[track_caller]
    pub fn assert_no_panics(&self) {
        let log = self.log();
        assert!(!log.contains("panicked at"), "the server panicked:\n{log}");
    }

    /// Kill the server (SIGKILL: nothing gets a chance to flush) and keep
    /// its data directory.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop the server as a person would (Ctrl-C, SIGINT) and return how it
    /// exited; fails the test if it does not exit within 20 s.
    #[track_caller]
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("the server is running");
        // The shell's kill builtin: no signal crate needed, and no `unsafe`.
        let sent = Command::new("sh")
            .args(["-c", &format!("kill -INT {}", c.id())])
            .status()
            .expect("send SIGINT");
        assert!(sent.success(), "could not send SIGINT to skiff");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = c.try_wait().expect("wait for skiff") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("skiff did not exit within 20 s of SIGINT:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig.yaml")
    }

    /// The server URL, CA and admin token, read from the kubeconfig the way
    /// kubectl reads them (current context → cluster and user).
    #[track_caller]
    pub fn kubeconfig_parts(&self) -> KubeConfig {
        parse_kubeconfig(&self.kubeconfig())
    }

    /// Run kubectl `version` ("1.27", "1.33", or "" for `/usr/bin/kubectl`).
    #[track_caller]
    pub fn kubectl(&self, version: &str, args: &[&str]) -> Out {
        self.kubectl_stdin(version, args, None)
    }

    #[track_caller]
    pub fn kubectl_stdin(&self, version: &str, args: &[&str], stdin: Option<&str>) -> Out {
        self.kubectl_with(version, &self.kubeconfig(), args, stdin)
    }

    /// Run kubectl with a kubeconfig of the caller's choice.
    #[track_caller]
    pub fn kubectl_with(
        &self,
        version: &str,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Out {
        run(
            self.kubectl_command(version, kubeconfig, args),
            stdin,
            CLIENT_TIMEOUT,
        )
    }

    /// A kubectl command ready to spawn (for long-running ones such as `-w`).
    #[track_caller]
    pub fn kubectl_command(&self, version: &str, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_path(version));
        cmd.args(args)
            .env("KUBECONFIG", kubeconfig)
            // A fresh HOME: no discovery cache shared between tests.
            .env("HOME", self.dir.with_extension("home"));
        cmd
    }

    /// A raw HTTPS request with curl: returns (status code, body).
    #[track_caller]
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        token: bool,
    ) -> (u16, String) {
        let r = self.request(method, path, content_type, body, token);
        (r.code, r.body)
    }

    /// A raw HTTPS request with curl, trusting only the kubeconfig's CA and
    /// sending the kubeconfig's token when `token`.
    #[track_caller]
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        token: bool,
    ) -> Response {
        let out = self.curl_once(method, path, content_type, body, token, false);
        if out.code != 92 {
            return out.response();
        }
        // curl 7.88 (Debian 12) reports "Stream error in the HTTP/2 framing
        // layer" (exit 92) when the server answers before reading a small
        // body and then resets the stream, as it may (RFC 9113 §8.1). The
        // test is about the answer, so ask again over HTTP/1.1 and say so.
        eprintln!(
            "note: curl {method} {path} over HTTP/2 failed ({}); retrying over HTTP/1.1",
            out.stderr.trim()
        );
        self.curl_once(method, path, content_type, body, token, true)
            .response()
    }

    fn curl_once(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        token: bool,
        http1: bool,
    ) -> CurlOut {
        let curl = require("curl", "apt-get install curl");
        let kc = self.kubeconfig_parts();
        let scratch = self.dir.with_extension("curl");
        std::fs::create_dir_all(&scratch).expect("curl scratch dir");
        let ca = scratch.join("ca.pem");
        std::fs::write(&ca, &kc.ca_pem).expect("write CA");
        let headers = scratch.join("headers");
        let _ = std::fs::remove_file(&headers);
        let mut cmd = Command::new(curl);
        cmd.args(["-s", "-S", "--max-time", "60", "-o", "-"])
            .args(["-w", "\n%{http_code}", "-X", method, "-D"])
            .arg(&headers)
            .arg("--cacert")
            .arg(&ca)
            .arg(format!("{}{}", kc.server, path));
        if http1 {
            cmd.arg("--http1.1");
        }
        if token {
            cmd.args(["-H", &format!("Authorization: Bearer {}", kc.token)]);
        }
        if let Some(ct) = content_type {
            cmd.args(["-H", &format!("Content-Type: {ct}")]);
        }
        if let Some(b) = body {
            let body_file = scratch.join("body");
            std::fs::write(&body_file, b).expect("body file");
            cmd.arg("--data-binary")
                .arg(format!("@{}", body_file.display()));
        }
        let out = run(cmd, None, CLIENT_TIMEOUT);
        CurlOut {
            code: out.code,
            stdout: out.stdout,
            stderr: out.stderr,
            headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        }
    }

    /// Run the skiff binary itself (`skiff image push …`).
    #[allow(dead_code)] // for the node tests
    pub fn skiff(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.args(args);
        run(cmd, None, CLIENT_TIMEOUT)
    }

    /// GET a path and parse the JSON.
    #[track_caller]
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.curl("GET", path, None, None, true);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }
}

/// Wait for the `ready` line and return the URL it names; fail with the
/// server's stderr if it exits or takes too long.
fn wait_ready(child: &mut Child, log_path: &Path) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep reading after `ready` so the server never blocks on stdout.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let log = || std::fs::read_to_string(log_path).unwrap_or_default();
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("ready") => {
                return line
                    .split_whitespace()
                    .find(|w| w.starts_with("https://"))
                    .unwrap_or_else(|| panic!("the ready line names no https URL: {line}"))
                    .to_string();
            }
            Ok(_) => {}
            Err(_) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "skiff did not print ready within {} s; its stderr:\n{}",
                    READY_TIMEOUT.as_secs(),
                    log()
                );
            }
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "skiff exited with {status} before ready; its stderr:\n{}",
                        log()
                    );
                }
            }
        }
    }
}

/// Read the parts of a kubeconfig that kubectl uses for the current context.
#[track_caller]
pub fn parse_kubeconfig(path: &Path) -> KubeConfig {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let kc: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig is YAML");
    let current = kc["current-context"].as_str().expect("current-context");
    let named = |list: &str, name: &str| -> serde_yaml::Value {
        kc[list]
            .as_sequence()
            .and_then(|s| s.iter().find(|e| e["name"].as_str() == Some(name)))
            .unwrap_or_else(|| panic!("kubeconfig has no {list} entry {name:?}:\n{text}"))
            .clone()
    };
    let ctx = named("contexts", current);
    let cluster = named(
        "clusters",
        ctx["context"]["cluster"].as_str().expect("cluster"),
    );
    let user = named("users", ctx["context"]["user"].as_str().expect("user"));
    let server = cluster["cluster"]["server"]
        .as_str()
        .expect("server")
        .to_string();
    assert!(
        server.starts_with("https://"),
        "kubectl sends tokens only over https: {server}"
    );
    let ca = cluster["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("certificate-authority-data");
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca.trim())
        .expect("CA data is base64");
    KubeConfig {
        server,
        ca_pem: String::from_utf8(ca_pem).expect("CA is PEM"),
        token: user["user"]["token"].as_str().expect("token").to_string(),
    }
}

impl Drop for Skiff {
    fn drop(&mut self) {
        self.kill();
        // A server on a directory of its own is not restarted: its bridge
        // (and with it the pod addresses) goes too.
        if self._tmp.is_some() {
            let (bridge, _) = pod_network_of(&self.dir);
            let _ = Command::new("ip")
                .args(["link", "del", &bridge])
                .stderr(Stdio::null())
                .status();
            // And the node's masquerade table for Linux pods, named after it.
            let table = format!("skiff_nat_{}", bridge.replace('-', "_"));
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", &table])
                .stderr(Stdio::null())
                .status();
        }
        if std::thread::panicking() && !self.log().trim().is_empty() {
            // The test failed: the server's side of the story helps.
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- skiff stderr (last 60 lines) ----");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Wait until `f` returns Some, or panic with `what` after `secs`.
#[track_caller]
/// A bridge and cluster range per data directory, the same for a restart
/// of the same server: `sktPID-N` and `10.(100+N).0.0/16`.
pub fn pod_network_of(dir: &Path) -> (String, String) {
    static SEEN: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(remove_stale_pod_networks);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let n = match seen.iter().position(|d| d == dir) {
        Some(n) => n,
        None => {
            seen.push(dir.to_path_buf());
            seen.len() - 1
        }
    };
    assert!(n < 150, "more skiff servers than pod ranges for them");
    (
        format!("skt{}-{n}", std::process::id() % 100_000),
        format!("10.{}.0.0/16", 100 + n),
    )
}

/// Bridges (and their masquerade tables) that earlier test runs left: a
/// run's restarted servers keep theirs, and a killed run removes nothing.
/// Their ranges are the ones this run hands out again, so they must go
/// before the first server starts. Only `sktPID-N` bridges of processes
/// that are gone are touched.
fn remove_stale_pod_networks() {
    let Ok(out) = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split(": ").nth(1).map(|n| n.trim_end_matches(':')) else {
            continue;
        };
        let Some((pid, _)) = name.strip_prefix("skt").and_then(|r| r.split_once('-')) else {
            continue;
        };
        let alive = pid.parse::<u32>().is_ok_and(|p| {
            p == std::process::id() % 100_000 || Path::new(&format!("/proc/{p}")).exists()
        });
        if alive {
            continue;
        }
        let _ = Command::new("ip")
            .args(["link", "del", name])
            .stderr(Stdio::null())
            .status();
        let table = format!("skiff_nat_{}", name.replace('-', "_"));
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &table])
            .stderr(Stdio::null())
            .status();
    }
}

pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A long-running client (`kubectl get -w`) whose stdout lines arrive on a
/// channel; killed on drop.
pub struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    pub fn spawn(mut cmd: Command) -> Streaming {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start streaming client");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait up to `secs` for a line satisfying `pred`; fails the test with
    /// every line seen so far.
    #[track_caller]
    pub fn expect_line(&mut self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if pred(&line) {
                    return line;
                }
            }
        }
        panic!(
            "timed out after {secs} s waiting for {what}; lines seen:\n{}",
            self.seen.join("\n")
        );
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The busybox OCI image layout `scripts/build-examples` makes from the
/// host's busybox-static (the `mixed` example's back end).
pub fn example_busybox_image() -> String {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/examples/busybox");
    assert!(
        p.join("index.json").exists(),
        "{} is missing: run scripts/build-examples (needs apt-get install busybox-static)",
        p.display()
    );
    p.display().to_string()
}

/// A guest built by `scripts/build-examples` (`examples/<name>/main.rs` or
/// a fixture), as a path string for `skiff image push|import`.
pub fn example_module(name: &str) -> String {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/wasm32-wasi/examples/{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-examples (needs apt-get install rustc libstd-rust-dev-wasm32 lld-14)",
        p.display()
    );
    p.display().to_string()
}
