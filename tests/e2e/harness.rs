//! Starting skiff and running clients against it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";
/// The oldest and newest kubectl skiff supports.
pub const VERSIONS: &[&str] = &["1.27", "1.33"];

/// A running `skiff up` on a loopback port of its own.
pub struct Skiff {
    child: Option<Child>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
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

pub fn kubectl_path(version: &str) -> String {
    require(
        &format!("{KUBECTL_DIR}/kubectl.{version}"),
        "install the Google Cloud SDK's kubectl bundles (kubectl.1.27 … kubectl.1.33)",
    )
}

impl Skiff {
    /// Start on a fresh data directory.
    pub fn start() -> Skiff {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = Skiff::start_in(&dir);
        s._tmp = Some(tmp);
        s
    }

    /// Start on a fresh data directory with extra `skiff up` flags.
    pub fn start_with(extra: &[&str]) -> Skiff {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = Skiff::start_in_with(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Start on `dir` (which may hold a previous run's state).
    pub fn start_in(dir: &Path) -> Skiff {
        Skiff::start_in_with(dir, &[])
    }

    fn start_in_with(dir: &Path, extra: &[&str]) -> Skiff {
        let log = std::fs::File::create(dir.with_extension("stderr.log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["up", "--data-dir"])
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start skiff");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains("ready") => {
                    let url = line
                        .split_whitespace()
                        .find(|w| w.starts_with("https://"))
                        .expect("ready line names the URL");
                    break url.to_string();
                }
                Ok(_) => {}
                Err(_) if Instant::now() > deadline => {
                    let _ = child.kill();
                    panic!(
                        "skiff did not get ready: {}",
                        std::fs::read_to_string(dir.with_extension("stderr.log"))
                            .unwrap_or_default()
                    );
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "skiff exited with {status}: {}",
                            std::fs::read_to_string(dir.with_extension("stderr.log"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        };
        Skiff {
            child: Some(child),
            dir: dir.to_path_buf(),
            _tmp: None,
            url,
        }
    }

    /// Kill the server (SIGKILL: nothing gets a chance to flush) and keep
    /// its data directory.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig.yaml")
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("pki/admin.token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    /// Run kubectl `version` ("1.27", "1.33", or "" for `/usr/bin/kubectl`).
    pub fn kubectl(&self, version: &str, args: &[&str]) -> Out {
        self.kubectl_stdin(version, args, None)
    }

    pub fn kubectl_stdin(&self, version: &str, args: &[&str], stdin: Option<&str>) -> Out {
        let bin = if version.is_empty() {
            require("/usr/bin/kubectl", "install kubectl")
        } else {
            kubectl_path(version)
        };
        let mut child = Command::new(bin)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.join("home"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("kubectl output");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A raw HTTPS request with curl: returns (status code, body).
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        token: bool,
    ) -> (u16, String) {
        let curl = require("curl", "apt-get install curl");
        let body_file = self.dir.join("curl-body");
        let mut cmd = Command::new(curl);
        cmd.args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "--cacert",
        ])
        .arg(self.dir.join("pki/ca.crt"))
        .arg(format!("{}{}", self.url, path));
        if token {
            cmd.args(["-H", &format!("Authorization: Bearer {}", self.token())]);
        }
        if let Some(ct) = content_type {
            cmd.args(["-H", &format!("Content-Type: {ct}")]);
        }
        if let Some(b) = body {
            std::fs::write(&body_file, b).expect("body file");
            cmd.arg("--data-binary")
                .arg(format!("@{}", body_file.display()));
        }
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text
            .rsplit_once('\n')
            .expect("curl printed the status code");
        (code.trim().parse().expect("status code"), body.to_string())
    }

    /// Run the skiff binary itself (`skiff image push …`).
    pub fn skiff(&self, args: &[&str]) -> Out {
        let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(args)
            .output()
            .expect("run skiff");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// GET a path and parse the JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.curl("GET", path, None, None, true);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }
}

impl Drop for Skiff {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Wait until `f` returns Some, or panic with `what` after `secs`.
#[track_caller]
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
