//! The rendered rules under real traffic, in a fresh network namespace
//! (never the host's). Needs root, `nft`, `ip`, `python3` (the endpoints:
//! `http.server`) and `curl` (the client); fails, saying which is missing, without them.
//!
//! The namespace holds a veth pair with two "pod" addresses, a "node"
//! address and a default route through it (as a node has), and one HTTP
//! server per pod address answering `/who` with its own name.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::index::Index;
use super::nft::Nft;
use super::ruleset::render;

const POD_A: &str = "10.244.0.2";
const POD_B: &str = "10.244.0.3";
const NODE: &str = "192.0.2.50";

fn missing_tool() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root for network namespaces".into());
    }
    for tool in ["nft", "ip", "python3", "curl"] {
        let found = Command::new(tool).arg("--version").output().is_ok();
        if !found {
            return Some(format!("needs {tool}"));
        }
    }
    None
}

/// A network namespace, deleted on drop (with the servers in it).
struct Netns {
    name: String,
    servers: Vec<std::process::Child>,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("skiff-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = Netns {
            name,
            servers: Vec::new(),
        };
        for cmd in [
            "ip link set lo up",
            "ip link add p0 type veth peer name p1",
            "ip link set p0 up",
            "ip link set p1 up",
            &format!("ip addr add {POD_A}/32 dev p0"),
            &format!("ip addr add {POD_B}/32 dev p0"),
            &format!("ip addr add {NODE}/24 dev p0"),
            "ip route add default dev p0",
        ] {
            ns.exec(&cmd.split(' ').collect::<Vec<_>>());
        }
        ns
    }

    fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// An HTTP server on `ip:8080` answering `/who` with `name`.
    fn serve(&mut self, ip: &str, name: &str, dir: &Path) {
        let root = dir.join(name);
        std::fs::create_dir_all(&root).expect("server dir");
        std::fs::write(root.join("who"), name).expect("who");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-m", "http.server"])
            .args(["--bind", ip, "8080", "--directory"])
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 http.server");
        self.servers.push(child);
    }

    fn nft(&self) -> Nft {
        Nft {
            netns: Some(self.name.clone()),
        }
    }

    /// `curl` in the namespace: Ok(body) or Err(curl's exit code).
    async fn get(&self, url: &str) -> Result<String, i32> {
        let out = tokio::process::Command::new("ip")
            .args([
                "netns", "exec", &self.name, "curl", "-s", "-f", "-m", "5", url,
            ])
            .output()
            .await
            .expect("run curl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(out.status.code().unwrap_or(-1))
        }
    }

    /// Wait until the server at `url` answers (python takes a few seconds
    /// to start on a busy machine).
    async fn wait_for(&self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.get(url).await.is_err() {
            assert!(Instant::now() < deadline, "{url} never answered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn service(name: &str, ip: &str, node_port: u16, extra: serde_json::Value) -> Arc<Service> {
    let mut spec = json!({"type": "NodePort", "clusterIP": ip, "clusterIPs": [ip],
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": node_port}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    Arc::new(
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
        )
        .expect("service"),
    )
}

fn slice(svc: &str, ips: &[&str]) -> Arc<EndpointSlice> {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": format!("{svc}-1"), "namespace": "default",
                "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}))
        .expect("slice"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ips_and_node_ports_reach_endpoints_and_empty_services_refuse() {
    if let Some(why) = missing_tool() {
        panic!("this test {why} (apt-get install nftables iproute2 python3 curl; run as root)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ns = Netns::new("proxy");
    ns.serve(POD_A, "a", dir.path());
    ns.serve(POD_B, "b", dir.path());

    let services = [
        service("web", "10.96.0.10", 30080, json!({})),
        service("empty", "10.96.0.11", 30081, json!({})),
        service(
            "sticky",
            "10.96.0.12",
            30082,
            json!({"sessionAffinity": "ClientIP"}),
        ),
    ];
    let slices = [
        slice("web", &[POD_A, POD_B]),
        slice("sticky", &[POD_A, POD_B]),
    ];
    let text = render(&Index::build(&services, &slices));
    let nft = ns.nft();
    nft.load(&text).await.expect("load the ruleset");
    // Loading the same text again replaces it without complaint.
    nft.load(&text).await.expect("reload the ruleset");
    ns.wait_for(&format!("http://{POD_A}:8080/who")).await;
    ns.wait_for(&format!("http://{POD_B}:8080/who")).await;

    // ClusterIP from the node: both endpoints answer, picked at random
    // (missing one in 40 tries has odds of 2^-39).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.insert(
            ns.get("http://10.96.0.10/who")
                .await
                .expect("through the ClusterIP"),
        );
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a", "b"]);

    // NodePorts on the node's address and on loopback.
    for url in [
        format!("http://{NODE}:30080/who"),
        "http://127.0.0.1:30080/who".into(),
    ] {
        let who = ns
            .get(&url)
            .await
            .unwrap_or_else(|c| panic!("{url}: curl exit {c}"));
        assert!(who == "a" || who == "b", "{url}: {who}");
    }

    // No ready endpoint: refused at once (curl 7, "couldn't connect"),
    // not a timeout (curl 28).
    for url in [
        "http://10.96.0.11/who".to_string(),
        "http://127.0.0.1:30081/who".into(),
    ] {
        let t = Instant::now();
        assert_eq!(ns.get(&url).await, Err(7), "{url}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{url} took {:?}",
            t.elapsed()
        );
    }
    // An address no Service has is left alone (nothing listens: refused
    // by the kernel, not by us; the route points into the veth).
    assert!(ns.get(&format!("http://{NODE}:30099/")).await.is_err());

    // ClientIP affinity: one client, one endpoint.
    let first = ns.get("http://10.96.0.12/who").await.expect("sticky");
    for _ in 0..15 {
        assert_eq!(
            ns.get("http://10.96.0.12/who").await.as_deref(),
            Ok(first.as_str())
        );
    }

    // Reloads under traffic: the endpoint set flips back and forth while
    // requests go on; none fails.
    let only_a = render(&Index::build(&services, &[slice("web", &[POD_A])]));
    let ns = Arc::new(ns);
    let client = {
        let ns = ns.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..60 {
                if let Err(c) = ns.get("http://10.96.0.10/who").await {
                    failures.push(c);
                }
            }
            failures
        })
    };
    for i in 0..30 {
        let t = if i % 2 == 0 { &only_a } else { &text };
        nft.load(t).await.expect("reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        client.await.expect("client"),
        Vec::<i32>::new(),
        "requests failed during reloads"
    );

    // With only pod a left, only a answers.
    nft.load(&only_a).await.expect("reload");
    for _ in 0..5 {
        assert_eq!(ns.get("http://10.96.0.10/who").await.as_deref(), Ok("a"));
    }
    nft.delete_table().await.expect("delete the table");
    assert!(!nft.table_present().await);
}

/// The agent's loop against a real API server: a Service and its
/// EndpointSlice become rules in the namespace, and losing the endpoint
/// turns them into a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_follows_services_and_endpoint_slices() {
    use kube::api::{Api, DeleteParams, PostParams};

    if let Some(why) = missing_tool() {
        panic!("this test {why} (apt-get install nftables iproute2 python3 curl; run as root)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_running, client) = crate::agent::tests_api::api_server(dir.path()).await;

    let mut ns = Netns::new("proxyloop");
    ns.serve(POD_A, "a", dir.path());
    let proxy = tokio::spawn(super::run_with(client.clone(), ns.nft()));

    let svc: Service =
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}))
        .expect("service");
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .expect("create the Service");
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP");
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default");
    slices
        .create(&PostParams::default(), &slice("web", &[POD_A]))
        .await
        .expect("create the slice");

    ns.wait_for(&format!("http://{POD_A}:8080/who")).await;
    let url = format!("http://{ip}/who");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ns.get(&url).await {
            Ok(who) => {
                assert_eq!(who, "a");
                break;
            }
            Err(_) => assert!(
                Instant::now() < deadline,
                "{url} never reached the endpoint"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    slices
        .delete("web-1", &DeleteParams::default())
        .await
        .expect("delete the slice");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ns.get(&url).await != Err(7) {
        assert!(
            Instant::now() < deadline,
            "{url} still answers without endpoints"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.abort();
}
