//! The wasmtime handler on real modules: WAT fixtures for each way a guest
//! can end, and the sdk-built examples when `scripts/build-examples` has
//! built them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::cri::{ContainerConfig, ContainerRuntime, ExitReason, ExitStatus, Limits, Mount};

/// Writes "hello from wat\n" to stdout and returns.
const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wat\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 15))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Exits with code 3 through proc_exit.
const EXIT3: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;

/// Traps.
const TRAP: &str = r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#;

/// Grows memory a page at a time forever.
const GROW: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (drop (memory.grow (i32.const 1))) (br $l))))"#;

/// Spins forever without calling the host.
const SPIN: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;

/// A library, not a command.
const REACTOR: &str = r#"(module (memory (export "memory") 1) (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;

/// A WASI preview 2 command component whose `run` returns `ok` (or `err`
/// with `$code` = 1).
fn component(code: u8) -> String {
    format!(
        r#"(component
  (core module $m (func (export "run") (result i32) i32.const {code}))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run-inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-inst)))"#
    )
}

struct Node {
    rt: WasmRuntime,
    dir: tempfile::TempDir,
}

fn node() -> Node {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = WasmConfig::new(dir.path().join("wasm"));
    cfg.max_instances = 64;
    cfg.max_memory = 64 << 20;
    Node {
        rt: WasmRuntime::new(cfg).expect("runtime"),
        dir,
    }
}

impl Node {
    fn module(&self, name: &str, wat: &str) -> (String, PathBuf) {
        let bytes = wat::parse_str(wat).expect("valid WAT");
        self.bytes(name, &bytes)
    }

    fn bytes(&self, name: &str, bytes: &[u8]) -> (String, PathBuf) {
        use sha2::Digest;
        let path = self.dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).expect("write");
        (format!("sha256:{:x}", sha2::Sha256::digest(bytes)), path)
    }

    fn config(&self, name: &str, image: (String, PathBuf)) -> ContainerConfig {
        ContainerConfig {
            namespace: "default".into(),
            pod_name: name.into(),
            pod_uid: format!("uid-{name}"),
            container_name: "main".into(),
            image_digest: image.0,
            module_path: image.1,
            args: vec![name.into()],
            env: vec![],
            mounts: vec![],
            limits: Limits::default(),
            log_path: self.dir.path().join(format!("{name}.log")),
            ports: vec![],
            pod_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            pod_labels: Default::default(),
            linux: None,
        }
    }

    async fn run(&self, cfg: ContainerConfig) -> (ExitStatus, String) {
        let log = cfg.log_path.clone();
        let mut c = self.rt.start(cfg).await.expect("start");
        let status = tokio::time::timeout(Duration::from_secs(30), c.wait())
            .await
            .expect("the guest ends");
        (status, std::fs::read_to_string(log).unwrap_or_default())
    }
}

fn example(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasi/examples")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-examples (needs apt-get install rustc libstd-rust-dev-wasm32 lld-14)",
        p.display()
    );
    p
}

#[tokio::test]
async fn a_command_module_writes_cri_logs_and_completes() {
    let n = node();
    let cfg = n.config("hello", n.module("hello", HELLO));
    let (status, log) = n.run(cfg).await;
    assert_eq!(status.code, 0);
    assert_eq!(status.reason, ExitReason::Completed);
    let line = log.lines().next().expect("a log line");
    assert!(line.ends_with(" stdout F hello from wat"), "{line}");
}

#[tokio::test]
async fn proc_exit_codes_become_the_exit_code() {
    let n = node();
    let (status, _) = n.run(n.config("exit3", n.module("exit3", EXIT3))).await;
    assert_eq!((status.code, status.reason), (3, ExitReason::Error));
}

#[tokio::test]
async fn a_trap_is_an_error_with_the_trap_as_message() {
    let n = node();
    let (status, _) = n.run(n.config("trap", n.module("trap", TRAP))).await;
    assert_eq!((status.code, status.reason), (134, ExitReason::Error));
    let msg = status.message.expect("message");
    assert!(msg.contains("unreachable"), "{msg}");
}

#[tokio::test]
async fn growing_past_the_memory_limit_is_oomkilled() {
    let n = node();
    let mut cfg = n.config("grow", n.module("grow", GROW));
    cfg.limits.memory_bytes = Some(1 << 20);
    let (status, _) = n.run(cfg).await;
    assert_eq!((status.code, status.reason), (137, ExitReason::OOMKilled));
    assert!(status.message.is_some_and(|m| m.contains("memory limit")));
}

#[tokio::test]
async fn a_limit_above_the_nodes_largest_memory_is_refused() {
    let n = node();
    let mut cfg = n.config("big", n.module("hello", HELLO));
    cfg.limits.memory_bytes = Some(1 << 40);
    let err = n.rt.start(cfg).await.err().expect("refused");
    assert!(matches!(err, RuntimeError::Config(_)), "{err}");
    assert!(err.to_string().contains("largest Wasm memory"), "{err}");
}

#[tokio::test]
async fn a_spinning_guest_is_stopped_at_the_end_of_its_grace_period() {
    let n = node();
    let mut c =
        n.rt.start(n.config("spin", n.module("spin", SPIN)))
            .await
            .expect("start");
    // It keeps running, and yields: this test's timer still fires.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    cri::Container::stop(&*c, Duration::from_millis(200));
    let status = tokio::time::timeout(Duration::from_secs(10), c.wait())
        .await
        .expect("stopped");
    assert_eq!((status.code, status.reason), (137, ExitReason::Killed));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "not before the grace period: {took:?}"
    );
}

#[tokio::test]
async fn many_spinning_guests_do_not_starve_the_node() {
    // More spinning guests than worker threads: epoch yields keep timers
    // and other tasks running.
    let n = node();
    let mut guests = Vec::new();
    for i in 0..8 {
        let mut cfg = n.config(&format!("spin{i}"), n.module("spin", SPIN));
        cfg.limits.cpu_millis = if i % 2 == 0 { Some(100) } else { None };
        guests.push(n.rt.start(cfg).await.expect("start"));
    }
    let t = Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "timers starved: {:?}",
        t.elapsed()
    );
    for g in &guests {
        cri::Container::stop(&**g, Duration::ZERO);
    }
    for g in &mut guests {
        assert_eq!(g.wait().await.reason, ExitReason::Killed);
    }
}

#[tokio::test]
async fn not_wasm_and_not_a_command_are_invalid_images() {
    let n = node();
    let elf = n.bytes("elf", b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    let err =
        n.rt.start(n.config("elf", elf))
            .await
            .err()
            .expect("refused");
    assert!(matches!(err, RuntimeError::InvalidImage(_)), "{err}");
    assert!(
        err.to_string().contains("not a WebAssembly binary"),
        "{err}"
    );

    let corrupt = n.bytes("corrupt", b"\0asm\x01\0\0\0\x01\xff\xff");
    let err =
        n.rt.start(n.config("corrupt", corrupt))
            .await
            .err()
            .expect("refused");
    assert!(err.to_string().contains("invalid Wasm module"), "{err}");

    let reactor = n.module("reactor", REACTOR);
    let err =
        n.rt.start(n.config("reactor", reactor))
            .await
            .err()
            .expect("refused");
    assert!(err.to_string().contains("no _start"), "{err}");

    let imports = n.module(
        "imports",
        r#"(module (import "env" "mystery" (func)) (func (export "_start")))"#,
    );
    let err =
        n.rt.start(n.config("imports", imports))
            .await
            .err()
            .expect("refused");
    assert!(err.to_string().contains("mystery"), "{err}");
}

#[tokio::test]
async fn components_run_through_wasi_cli_run() {
    let n = node();
    let ok = n.bytes("ok", &wat::parse_str(component(0)).expect("component"));
    let (status, _) = n.run(n.config("ok", ok)).await;
    assert_eq!((status.code, status.reason), (0, ExitReason::Completed));
    let fail = n.bytes("fail", &wat::parse_str(component(1)).expect("component"));
    let (status, _) = n.run(n.config("fail", fail)).await;
    assert_eq!((status.code, status.reason), (1, ExitReason::Error));
}

#[tokio::test]
async fn one_compilation_serves_many_pods() {
    let n = node();
    let image = n.module("hello", HELLO);
    let a = n.rt.prepare(&image.0, &image.1).await.expect("prepare");
    let b = n.rt.prepare(&image.0, &image.1).await.expect("prepare");
    assert!(
        Arc::ptr_eq(&a, &b),
        "the digest's prepared module is reused"
    );
}

#[tokio::test]
async fn the_sdk_examples_see_args_env_volumes_and_shutdown() {
    let n = node();
    let hello = example("hello");
    let image = n.bytes("hello-example", &std::fs::read(&hello).expect("read"));
    let mut cfg = n.config("hello-example", image);
    cfg.env = vec![("GREETING".into(), "hi from a test".into())];
    let (status, log) = n.run(cfg).await;
    assert_eq!(status.reason, ExitReason::Completed, "{log}");
    assert!(log.contains("hi from a test"), "{log}");

    // The sensor reads its config volume and stops cleanly on shutdown.
    let config = n.dir.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(config.join("SENSOR_ID"), "from-volume").expect("write");
    std::fs::write(config.join("INTERVAL_MS"), "50").expect("write");
    let sensor = std::fs::read(example("sensor")).expect("read");
    let mut cfg = n.config("sensor", n.bytes("sensor", &sensor));
    cfg.mounts = vec![Mount {
        host_path: config,
        container_path: "/etc/config".into(),
        read_only: true,
    }];
    let log_path = cfg.log_path.clone();
    let mut c = n.rt.start(cfg).await.expect("start");
    let t = Instant::now();
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("from-volume")
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no reading from the sensor"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cri::Container::stop(&*c, Duration::from_secs(20));
    let status = tokio::time::timeout(Duration::from_secs(10), c.wait())
        .await
        .expect("stops on the shutdown file, well before the grace period");
    assert_eq!(status.reason, ExitReason::Completed, "{status:?}");
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(log.contains("sensor stopped"), "{log}");
}

/// An HTTP function that counts its calls in a global and answers the
/// count: always 1 when every request gets a fresh instance.
const COUNTER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (data (i32.const 16) "Status: 201\nX-Fresh: yes\n\n0")
  (func (export "_start")
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store8 (i32.const 42) (i32.add (i32.const 48) (global.get $n)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 27))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// One HTTP/1.1 request over a fresh connection: status line and body.
async fn http_request(addr: std::net::SocketAddr, head: &str, body: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{head}\r\nHost: fn.test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let (headers, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (headers.to_string(), body.to_string())
}

#[tokio::test]
async fn a_container_with_a_port_answers_each_request_with_a_fresh_instance() {
    let n = node();
    let mut cfg = n.config("counter", n.module("counter", COUNTER));
    cfg.ports = vec![0];
    let log_path = cfg.log_path.clone();
    let mut c = n.rt.start(cfg).await.expect("start");
    let addr = n.rt.functions().addresses()[0];
    for _ in 0..3 {
        let (head, body) = http_request(addr, "GET /x HTTP/1.1", "").await;
        assert!(head.starts_with("HTTP/1.1 201"), "{head}");
        assert!(head.to_ascii_lowercase().contains("x-fresh: yes"), "{head}");
        assert_eq!(
            body, "1",
            "a fresh instance per request: the global starts at 0 every time"
        );
    }
    assert_eq!(n.rt.functions().get(&addr).map(|f| f.served()), Some(3));
    cri::Container::stop(&*c, Duration::from_secs(5));
    let status = tokio::time::timeout(Duration::from_secs(5), c.wait())
        .await
        .expect("stops");
    assert_eq!(status.reason, ExitReason::Completed, "{status:?}");
    assert!(
        n.rt.functions().is_empty(),
        "a stopped function leaves the table"
    );
    // And stops listening. The freed port may already be another parallel
    // test's (ephemeral ports are reused), so what is checked is that
    // nothing answers as the function there.
    if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut out = Vec::new();
        let probe = async {
            s.write_all(b"GET /x HTTP/1.1\r\nHost: fn.test\r\nConnection: close\r\n\r\n")
                .await?;
            s.read_to_end(&mut out).await
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), probe).await;
        let answer = String::from_utf8_lossy(&out).to_ascii_lowercase();
        assert!(
            !answer.contains("x-fresh"),
            "the stopped function still answers: {answer}"
        );
    }
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(log.contains("serving HTTP on 127.0.0.1:"), "{log}");

    // A handler that traps answers 500 and says why in the pod's log.
    let mut cfg = n.config("trapper", n.module("trapper", TRAP));
    cfg.ports = vec![0];
    let log_path = cfg.log_path.clone();
    let c = n.rt.start(cfg).await.expect("start");
    let addr = n.rt.functions().addresses()[0];
    let (head, _) = http_request(addr, "GET /boom HTTP/1.1", "").await;
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(log.contains("GET /boom failed: wasm trap"), "{log}");
    drop(c);
}

#[tokio::test]
async fn the_sdk_http_example_answers_requests() {
    let n = node();
    let wasm = std::fs::read(example("http-hello")).expect("read");
    let mut cfg = n.config("http-hello", n.bytes("http-hello", &wasm));
    cfg.ports = vec![0];
    let log_path = cfg.log_path.clone();
    let _c = n.rt.start(cfg).await.expect("start");
    let addr = n.rt.functions().addresses()[0];
    let (head, body) = http_request(addr, "GET /some/path?q=1 HTTP/1.1", "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("hello from skiff: GET /some/path"), "{body}");
    let (_, body) = http_request(addr, "POST /echo HTTP/1.1", "ping").await;
    assert!(
        body.contains("POST /echo") && body.contains("ping"),
        "{body}"
    );
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        log.contains("path=/some/path"),
        "the sdk logs each request to stderr: {log}"
    );
}

#[test]
fn cpu_limits_throttle_in_proportion() {
    let ran = Duration::from_millis(10);
    assert_eq!(guest::throttle_for(ran, 100), Duration::from_millis(90));
    assert_eq!(guest::throttle_for(ran, 500), Duration::from_millis(10));
    assert_eq!(guest::throttle_for(ran, 1000), Duration::ZERO);
    assert_eq!(guest::throttle_for(ran, 2000), Duration::ZERO);
    assert_eq!(guest::throttle_for(ran, 0), Duration::from_millis(9990));
}

#[test]
fn exit_statuses_as_kubernetes_reports_them() {
    let s = guest::exit_status(Ok(0), false);
    assert_eq!((s.code, s.reason), (0, ExitReason::Completed));
    let s = guest::exit_status(Err(wasmtime_wasi::I32Exit(0).into()), false);
    assert_eq!(s.reason, ExitReason::Completed, "proc_exit(0) is success");
    let s = guest::exit_status(Err(wasmtime::format_err!("boom")), true);
    assert_eq!((s.code, s.reason), (137, ExitReason::OOMKilled));
}
