//! Nodes joining with a bootstrap token: `skiff token create`, then `skiff
//! node --token … --ca-cert-hash …` with no CA file. A wrong hash and an
//! expired token are refused with words a person can act on; a good join
//! leaves the node a credential of its own (`system:node:NAME`) that runs
//! pods and serves their logs, that NodeRestriction keeps to the node's
//! own Node and pods, and that the Node authorizer lets read only the
//! Secrets and ConfigMaps its pods use. The node's endpoint serves a
//! certificate from the cluster CA it asked for itself, and a worn client
//! certificate is renewed at the next start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{eventually, example_module, pod_network_of, run, Out, Skiff};

/// `skiff token create` against the server in `dir`: the token, and the
/// `--ca-cert-hash` it printed.
pub fn token_create(dir: &Path, ttl: &str) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(["token", "create", "--ttl", ttl, "--data-dir"])
        .arg(dir);
    let out = run(cmd, None, Duration::from_secs(30));
    assert_eq!(out.code, 0, "{out:?}");
    let token = out.stdout.trim().to_string();
    let hash = out
        .stderr
        .split_whitespace()
        .skip_while(|w| *w != "--ca-cert-hash")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{out:?}");
    (token, hash)
}

fn node_cmd(s: &Skiff, data: &Path, name: &str, token: &str, hash: &str) -> Command {
    let (bridge, _) = pod_network_of(data);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args([
        "node",
        "--server",
        &s.url,
        "--token",
        token,
        "--ca-cert-hash",
        hash,
    ])
    .args([
        "--name",
        name,
        "--node-port",
        "0",
        "--no-gateway",
        "--no-service-proxy",
    ])
    .args(["--pod-bridge", &bridge, "--data-dir"])
    .arg(data);
    cmd
}

/// A node that did not join: exits on its own with its reason.
fn refused(mut cmd: Command) -> Out {
    cmd.stdin(Stdio::null());
    run(cmd, None, Duration::from_secs(60))
}

struct NodeProc(Child);

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A kubeconfig holding the node's own credential from `DATA/pki`.
fn node_kubeconfig(server: &str, data: &Path) -> PathBuf {
    use base64::Engine;
    let b64 = |f: &str| {
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(data.join("pki").join(f)).expect("node credential file"))
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: joined-node\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: joined-node\ncurrent-context: c\n",
        b64("ca.crt"),
        b64("node.crt"),
        b64("node.key")
    );
    let path = data.join("node-kubeconfig.yaml");
    std::fs::write(&path, yaml).expect("write kubeconfig");
    path
}

/// The certificate a TLS endpoint presents, as `openssl x509 -text`
/// prints it (subject, issuer, names); None when there is no answer.
fn endpoint_certificate(addr: &str) -> Option<String> {
    let mut connect = Command::new("openssl");
    connect.args(["s_client", "-connect", addr, "-showcerts"]);
    let out = run(connect, None, Duration::from_secs(20));
    let pem: String = out
        .stdout
        .split_inclusive('\n')
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
        .chain(std::iter::once("-----END CERTIFICATE-----\n"))
        .collect();
    if !pem.starts_with("-----BEGIN") {
        return None;
    }
    let mut text = Command::new("openssl");
    text.args([
        "x509",
        "-noout",
        "-subject",
        "-issuer",
        "-ext",
        "subjectAltName",
    ]);
    let out = run(text, Some(&pem), Duration::from_secs(20));
    (out.code == 0).then(|| out.stdout.replace(" = ", "="))
}

/// A node client certificate for the key in `key_path`, from the cluster
/// CA of the control plane in `server_dir`, three hours into a four-hour
/// life: due for renewal, still valid.
fn worn_client_certificate(server_dir: &Path, key_path: &Path) -> String {
    let read = |p: PathBuf| std::fs::read_to_string(&p).expect("read pki file");
    let ca_key =
        rcgen::KeyPair::from_pem(&read(server_dir.join("pki").join("ca.key"))).expect("CA key");
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&read(server_dir.join("pki").join("ca.crt")), ca_key)
            .expect("CA");
    let key = rcgen::KeyPair::from_pem(&read(key_path.to_path_buf())).expect("node key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:node:joined");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
    params.not_before = now - Duration::from_secs(3 * 3600);
    params.not_after = now + Duration::from_secs(3600);
    params.signed_by(&key, &issuer).expect("sign").pem()
}

#[test]
fn nodes_join_with_a_token_and_keep_to_their_own() {
    let s = Skiff::start_with(&["--no-node"]);
    let tmp = tempfile::tempdir().expect("tmp");

    // A wrong CA hash: nothing is trusted, nothing is sent.
    let (token, hash) = token_create(&s.dir, "1h");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = refused(node_cmd(&s, &tmp.path().join("w"), "wrong", &token, &wrong));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("refusing to join") && out.stderr.contains(&hash),
        "{out:?}"
    );
    // An expired token.
    let (old, _) = token_create(&s.dir, "1s");
    std::thread::sleep(Duration::from_secs(2));
    let out = refused(node_cmd(&s, &tmp.path().join("x"), "late", &old, &hash));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("refused the join token (unknown or expired)"),
        "{out:?}"
    );

    // A good join.
    let data = tmp.path().join("joined");
    let mut cmd = node_cmd(&s, &data, "joined", &token, &hash);
    let log = tmp.path().join("joined.log");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    let _node = NodeProc(cmd.spawn().expect("skiff node"));
    let ready = eventually(60, "node joined Ready", || {
        let n = s.kubectl("1.33", &["get", "node", "joined", "-o", "json"]);
        let v: Value = serde_json::from_str(&n.stdout).ok()?;
        v["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            .then_some(v)
    });
    assert_eq!(ready["metadata"]["name"], "joined");
    let csrs = s.kubectl("1.33", &["get", "csr"]).ok().stdout;
    assert!(
        csrs.contains("node-csr-joined-") && csrs.contains("Approved,Issued"),
        "{csrs}"
    );
    // Its endpoint's serving certificate comes from the cluster CA, through
    // a kubelet-serving request the API server signed because the node
    // asked for its own name and addresses.
    let serving = eventually(60, "the node's serving certificate", || {
        let o = s.kubectl("1.33", &["get", "csr", "-o", "json"]);
        let v: Value = serde_json::from_str(&o.stdout).ok()?;
        v["items"]
            .as_array()?
            .iter()
            .find(|c| {
                c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
                    && c["status"]["certificate"].is_string()
            })
            .cloned()
    });
    assert_eq!(serving["spec"]["username"], "system:node:joined");
    assert_eq!(serving["status"]["conditions"][0]["type"], "Approved");
    let csrs = s.kubectl("1.33", &["get", "csr"]).ok().stdout;
    assert!(
        csrs.lines()
            .any(|l| l.contains("kubernetes.io/kubelet-serving")
                && l.contains("system:node:joined")
                && l.contains("Approved,Issued")),
        "{csrs}"
    );
    let stored = std::fs::metadata(data.join("pki").join("node-serving.pem")).expect("kept");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&stored.permissions()) & 0o777,
        0o600
    );
    let ip = ready["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .expect("InternalIP")
        .to_string();
    let port = ready["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .expect("port");
    let presented = eventually(30, "the endpoint presents the CA's certificate", || {
        let cert = endpoint_certificate(&format!("{ip}:{port}"))?;
        cert.contains("CN=system:node:joined").then_some(cert)
    });
    assert!(
        presented.contains("issuer=CN=skiff-ca") && presented.contains(&format!("IP Address:{ip}")),
        "{presented}"
    );
    let kc = node_kubeconfig(&s.url, &data);
    let as_node = |args: &[&str]| s.kubectl_with("1.33", &kc, args, None);
    let who = as_node(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(who.stdout.trim(), "system:node:joined", "{who:?}");

    // It runs a Wasm pod, and its logs come through the API server (which
    // the node's endpoint accepts by the API server's client certificate).
    // The pod's greeting comes from a ConfigMap and it needs a Secret: the
    // Node authorizer lets the agent read both because the pod uses them.
    let mut import = Command::new(env!("CARGO_BIN_EXE_skiff"));
    import
        .args([
            "image",
            "import",
            &example_module("hello"),
            "--name",
            "example.local/hello:v1",
            "--data-dir",
        ])
        .arg(&data);
    assert_eq!(run(import, None, Duration::from_secs(60)).code, 0);
    let pod = r#"apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: wasmtime}
handler: wasmtime
---
apiVersion: v1
kind: ConfigMap
metadata: {name: greeting}
data: {text: hello from a joined node}
---
apiVersion: v1
kind: Secret
metadata: {name: hello-token}
stringData: {token: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: unused}
stringData: {token: not-for-nodes}
---
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  nodeName: joined
  runtimeClassName: wasmtime
  restartPolicy: Never
  containers:
  - name: hello
    image: example.local/hello:v1
    imagePullPolicy: Never
    env:
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: greeting, key: text}}}
    - {name: TOKEN, valueFrom: {secretKeyRef: {name: hello-token, key: token}}}
"#;
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(pod))
        .ok();
    let logs = eventually(60, "hello's logs", || {
        let o = s.kubectl("1.33", &["logs", "hello"]);
        o.stdout.contains("hello from a joined node").then_some(o)
    });
    assert_eq!(logs.code, 0);
    // The pod got its ServiceAccount token from the node's TokenRequest,
    // which a node may make only for its own pods.
    let hello = s
        .kubectl(
            "1.33",
            &[
                "get",
                "pod",
                "hello",
                "-o",
                "jsonpath={.spec.volumes[0].name}",
            ],
        )
        .ok();
    assert!(hello.stdout.starts_with("kube-api-access-"), "{hello:?}");
    let o = as_node(&["create", "token", "default"]).failed();
    assert!(
        o.stderr.contains("node requested token not bound to a pod"),
        "{o:?}"
    );
    as_node(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=hello",
    ])
    .ok();

    // NodeRestriction: its own Node yes, another's no; pods bound
    // elsewhere and Deployments are not its business.
    as_node(&["label", "node", "joined", "edge=yes"]).ok();
    let other = r#"apiVersion: v1
kind: Node
metadata: {name: other}
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere}
spec:
  nodeName: other
  containers: [{name: c, image: example.local/hello:v1}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: example.local/hello:v1}]}
"#;
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(other))
        .ok();
    let o = as_node(&["label", "node", "other", "edge=yes"]).failed();
    assert!(
        o.stderr
            .contains("node \"joined\" is not allowed to modify node \"other\""),
        "{o:?}"
    );
    let o = as_node(&["delete", "pod", "elsewhere", "--wait=false"]).failed();
    assert!(
        o.stderr
            .contains("node \"joined\" can only delete pods with spec.nodeName set to itself"),
        "{o:?}"
    );
    let o = as_node(&["annotate", "deployment", "web", "x=y"]).failed();
    assert!(
        o.stderr.contains("Forbidden") || o.stderr.contains("forbidden"),
        "{o:?}"
    );
    let o = as_node(&["create", "deployment", "mine", "--image=x"]).failed();
    assert!(o.stderr.contains("forbidden"), "{o:?}");
    let o = as_node(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=elsewhere",
    ])
    .failed();
    assert!(
        o.stderr
            .contains("node requested token bound to a pod scheduled on a different node"),
        "{o:?}"
    );

    // The Node authorizer: a node reads the Secrets and ConfigMaps its
    // pods use, one by one, and no others.
    as_node(&["get", "secret", "hello-token"]).ok();
    as_node(&["get", "configmap", "greeting"]).ok();
    let o = as_node(&["get", "secret", "unused"]).failed();
    assert!(
        o.stderr.contains(
            "secrets \"unused\" is forbidden: User \"system:node:joined\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'joined' and this object"
        ),
        "{o:?}"
    );
    let o = as_node(&["get", "configmap", "kube-root-ca.crt", "-n", "kube-system"]).failed();
    assert!(o.stderr.contains("no relationship found"), "{o:?}");
    for ns in [&["-n", "kube-system"][..], &["-A"][..]] {
        let o = as_node(&[&["get", "secrets"][..], ns].concat()).failed();
        assert!(
            o.stderr
                .contains("cannot list resource \"secrets\" in API group \"\""),
            "{o:?}"
        );
    }
    // Only the gateway's view: the TLS Secrets.
    as_node(&[
        "get",
        "secrets",
        "-A",
        "--field-selector",
        "type=kubernetes.io/tls",
    ])
    .ok();
    // `kubectl auth can-i` says the same.
    assert_eq!(
        as_node(&["auth", "can-i", "get", "secret/hello-token"]).code,
        0
    );
    assert_ne!(as_node(&["auth", "can-i", "get", "secret/unused"]).code, 0);

    // A restart needs no token: the credential is on disk. A client
    // certificate past 70% of its life is renewed at that start, for the
    // same key.
    drop(_node);
    let crt = data.join("pki").join("node.crt");
    let worn = worn_client_certificate(&s.dir, &data.join("pki").join("node.key"));
    std::fs::write(&crt, &worn).expect("write node.crt");
    let mut again = Command::new(env!("CARGO_BIN_EXE_skiff"));
    let (bridge, _) = pod_network_of(&data);
    again
        .args([
            "node",
            "--server",
            &s.url,
            "--name",
            "joined",
            "--node-port",
            "0",
        ])
        .args([
            "--no-gateway",
            "--no-service-proxy",
            "--pod-bridge",
            &bridge,
            "--data-dir",
        ])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut restarted = NodeProc(again.spawn().expect("skiff node again"));
    let stdout = restarted.0.stdout.take().expect("stdout");
    let mut said = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.unwrap_or_default();
        said.push_str(&line);
        said.push('\n');
        if line.contains("skiff node joined ready") {
            break;
        }
    }
    assert!(
        said.contains("renewed its client certificate") && said.contains("skiff node joined ready"),
        "{said}"
    );
    let renewed = std::fs::read_to_string(&crt).expect("node.crt");
    assert_ne!(renewed, worn);
    let mode = std::fs::metadata(&crt).expect("node.crt").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    // The renewed credential works: the restarted node is Ready again.
    let kc = node_kubeconfig(&s.url, &data);
    let who = s.kubectl_with(
        "1.33",
        &kc,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    );
    assert_eq!(who.stdout.trim(), "system:node:joined", "{who:?}");
    drop(restarted);
    s.assert_no_panics();
}
