//! The serverless pattern from the `http-hello` example, as a user runs
//! it: a RuntimeClass with a nodeSelector, a 3-replica Deployment of an
//! HTTP Wasm function built with the sdk, a ClusterIP Service and an
//! Ingress on `/`, answering `curl` through the node's gateway with a
//! fresh instance per request.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{eventually, example_module, run, Skiff};
use crate::registry::Registry;

fn repo_file(path: &str) -> String {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `curl` with a method and optional body: status code and body.
fn curl(url: &str, method: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-S",
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    cmd.arg(url);
    let out = run(cmd, None, Duration::from_secs(30));
    let text = out.stdout;
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json(s: &Skiff, ns: &str, what: &[&str]) -> Value {
    let mut args = vec!["-n", ns, "get"];
    args.extend(what);
    args.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl("1.33", &args).ok().stdout).expect("JSON")
}

#[test]
fn http_hello_answers_through_the_gateway_with_a_fresh_instance_per_request() {
    let reg = Registry::start();
    let s = Skiff::start_with(&["--insecure-registry", &reg.host, "--node-label", "wasm=yes"]);
    s.skiff(&[
        "image",
        "push",
        &example_module("http-hello"),
        &format!("{}/skiff/http-hello:v1", reg.host),
        "--insecure",
    ])
    .ok();
    let ns = "serverless";
    s.kubectl("1.33", &["create", "namespace", ns]).ok();
    for f in ["runtimeclass", "deployment", "service", "ingress"] {
        let yaml = repo_file(&format!("examples/http-hello/{f}.yaml"))
            .replace("localhost:5000/", &format!("{}/", reg.host));
        s.kubectl_stdin("1.33", &["-n", ns, "apply", "-f", "-"], Some(&yaml))
            .ok();
    }
    s.kubectl(
        "1.33",
        &[
            "-n",
            ns,
            "rollout",
            "status",
            "deployment/http-hello",
            "--timeout=90s",
        ],
    )
    .ok();

    // Three pods, each with an address of its own from the node's podCIDR.
    let pods = json(&s, ns, &["pods", "-l", "app=http-hello"]);
    let items = pods["items"].as_array().expect("pods");
    assert_eq!(items.len(), 3, "{pods}");
    let node = s.get_json("/api/v1/nodes");
    let cidr = node["items"][0]["spec"]["podCIDR"]
        .as_str()
        .expect("the node has a podCIDR")
        .to_string();
    let prefix = cidr.trim_end_matches(".0/24");
    let mut ips: Vec<String> = items
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap_or("").to_string())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "three distinct pod IPs: {ips:?}");
    for ip in &ips {
        assert!(
            ip.starts_with(&format!("{prefix}.")),
            "{ip} is not in {cidr}"
        );
    }

    // A Wasm container has no process to exec into: kubectl says so.
    let exec = s
        .kubectl(
            "1.33",
            &["-n", ns, "exec", "deployment/http-hello", "--", "ls"],
        )
        .failed();
    assert!(
        exec.stderr
            .contains("cannot exec into a WebAssembly container"),
        "{exec:?}"
    );

    // Each pod answers on its own address, as a Service's endpoints are
    // reached.
    let (code, body) = curl(&format!("http://{}:8080/direct", ips[0]), "GET", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("hello from skiff: GET /direct"), "{body}");

    // The Service's endpoints are the three pods at the named targetPort.
    let slices = eventually(30, "three ready endpoints", || {
        let v = json(
            &s,
            ns,
            &[
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=http-hello",
            ],
        );
        let ready: usize = v["items"]
            .as_array()?
            .iter()
            .flat_map(|sl| sl["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .count();
        (ready == 3).then_some(v)
    });
    assert_eq!(slices["items"][0]["ports"][0]["port"], 8080, "{slices}");

    // Through the gateway, on path `/` of any host.
    let gw = s.gateway();
    let (code, body) = eventually(30, "the gateway routes to the function", || {
        let r = curl(&format!("http://{gw}/some/path?x=1"), "GET", None);
        (r.0 == 200).then_some(r)
    });
    assert_eq!(code, 200);
    assert!(body.contains("hello from skiff: GET /some/path"), "{body}");
    let (code, body) = curl(&format!("http://{gw}/echo"), "POST", Some("ping"));
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("POST /echo") && body.contains("ping"),
        "{body}"
    );

    // Requests are spread over the replicas: after a dozen, every pod's log
    // has requests in it (the sdk logs one line per request to stderr).
    for i in 0..12 {
        let (code, _) = curl(&format!("http://{gw}/spread/{i}"), "GET", None);
        assert_eq!(code, 200);
    }
    for p in items {
        let name = p["metadata"]["name"].as_str().expect("name");
        let log = s.kubectl("1.33", &["-n", ns, "logs", name]).ok().stdout;
        assert!(
            log.contains("path=/spread/"),
            "{name} got no requests:\n{log}"
        );
    }

    // No ready endpoint: 503 with the reason, and back when scaled up.
    s.kubectl(
        "1.33",
        &["-n", ns, "scale", "deployment/http-hello", "--replicas=0"],
    )
    .ok();
    let (code, body) = eventually(60, "503 once the replicas are gone", || {
        let r = curl(&format!("http://{gw}/"), "GET", None);
        (r.0 == 503).then_some(r)
    });
    assert_eq!(code, 503);
    assert!(body.contains("no ready endpoints"), "{body}");
    s.kubectl(
        "1.33",
        &["-n", ns, "scale", "deployment/http-hello", "--replicas=1"],
    )
    .ok();
    eventually(60, "answers again after scaling up", || {
        (curl(&format!("http://{gw}/again"), "GET", None).0 == 200).then_some(())
    });

    // A host no rule serves: the Ingress has no host, so every host
    // matches; a second Ingress for one host takes that host's paths.
    let only = r#"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "exact"},
        "spec": {"ingressClassName": "skiff", "rules": [{"host": "api.example.com",
          "http": {"paths": [{"path": "/v1", "pathType": "Exact",
            "backend": {"service": {"name": "nowhere", "port": {"number": 80}}}}]}}]}}"#;
    s.kubectl_stdin("1.33", &["-n", ns, "apply", "-f", "-"], Some(only))
        .ok();
    eventually(30, "the host rule takes /v1 of api.example.com", || {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: api.example.com",
        ])
        .arg(format!("http://{gw}/v1"));
        let out = run(cmd, None, Duration::from_secs(30));
        (out.stdout.trim() == "503").then_some(())
    });
    let (code, _) = curl(&format!("http://{gw}/v1"), "GET", None);
    assert_eq!(code, 200, "other hosts still reach http-hello");

    // HTTPS: an Ingress naming a TLS Secret for its host is served with
    // that certificate (chosen by SNI); a name without one gets no
    // handshake rather than a wrong certificate.
    let dir = tempfile::tempdir().expect("tmp");
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    ])
    .args([
        "-subj",
        "/CN=secure.example.com",
        "-addext",
        "subjectAltName=DNS:secure.example.com",
    ])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&crt);
    run(cmd, None, Duration::from_secs(60)).ok();
    s.kubectl(
        "1.33",
        &[
            "-n",
            ns,
            "create",
            "secret",
            "tls",
            "secure",
            "--cert",
            crt.to_str().expect("path"),
            "--key",
            key.to_str().expect("path"),
        ],
    )
    .ok();
    let secure = r#"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "secure"},
        "spec": {"tls": [{"hosts": ["secure.example.com"], "secretName": "secure"}],
          "rules": [{"host": "secure.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "http-hello", "port": {"name": "http"}}}}]}}]}}"#;
    s.kubectl_stdin("1.33", &["-n", ns, "apply", "-f", "-"], Some(secure))
        .ok();
    let tls_addr = eventually(30, "the gateway's https address", || {
        let nodes = s.get_json("/api/v1/nodes");
        nodes["items"][0]["metadata"]["annotations"]["skiff.dev/gateway-tls"]
            .as_str()
            .map(str::to_string)
    });
    let (ip, port) = tls_addr.rsplit_once(':').expect("ip:port");
    let https = |host: &str, extra: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "--max-time", "20", "-w", "\n%{http_code}"])
            .args(["--resolve", &format!("{host}:{port}:{ip}")])
            .arg("--cacert")
            .arg(&crt)
            .args(extra)
            .arg(format!("https://{host}:{port}/tls"));
        run(cmd, None, Duration::from_secs(30))
    };
    let out = eventually(30, "https with the Secret's certificate", || {
        let o = https("secure.example.com", &[]);
        o.stdout.ends_with("200").then_some(o)
    });
    assert!(
        out.stdout.contains("hello from skiff: GET /tls"),
        "{}",
        out.stdout
    );
    let out = https("other.example.com", &["-k"]);
    assert_ne!(
        out.code, 0,
        "no certificate for other.example.com: {}",
        out.stderr
    );

    // Scale to zero: idle for 2 s, the Deployment drops to 0 replicas and
    // remembers it had 1; a request wakes it and is answered.
    s.kubectl(
        "1.33",
        &[
            "-n",
            ns,
            "annotate",
            "deployment/http-hello",
            "skiff.dev/scale-to-zero=2s",
        ],
    )
    .ok();
    let zero = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = json(&s, ns, &["deployment", "http-hello"]);
        let pods = json(&s, ns, &["pods", "-l", "app=http-hello"]);
        if d["spec"]["replicas"] == 0
            && d["metadata"]["annotations"]["skiff.dev/scaled-from"] == "1"
            && pods["items"].as_array().is_some_and(|p| p.is_empty())
        {
            break;
        }
        let last = format!(
            "deployment replicas {} annotations {}; pods {}",
            d["spec"]["replicas"], d["metadata"]["annotations"], pods["items"]
        );
        if std::time::Instant::now() > zero {
            let rs = s.kubectl("1.33", &["-n", ns, "get", "rs,pods", "-o", "wide"]);
            let ev = s.kubectl("1.33", &["-n", ns, "get", "events"]);
            panic!(
                "not scaled to zero with no pods left after 60 s: {last}\n{}\n{}",
                rs.stdout, ev.stdout
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = std::time::Instant::now();
    let (code, body) = curl(&format!("http://{gw}/wake"), "GET", None);
    let took = started.elapsed();
    assert_eq!(
        code, 200,
        "the request that wakes the function is answered: {body}"
    );
    assert!(body.contains("hello from skiff: GET /wake"), "{body}");
    let d = json(&s, ns, &["deployment", "http-hello"]);
    assert_eq!(d["spec"]["replicas"], 1, "{d}");
    assert!(
        d["metadata"]["annotations"]["skiff.dev/scaled-from"].is_null(),
        "{d}"
    );
    eprintln!("activation from zero answered in {took:?}");
    s.assert_no_panics();
}
