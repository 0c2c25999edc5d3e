//! Linux-image pods end to end: a busybox image built here (one layer:
//! the host's static busybox and its applet links) is pushed to a loopback
//! registry and run by the local node's `linux` handler as real
//! containers. kubectl sees their logs, exit codes, OOM kills; a fork bomb
//! stops at the node's pids limit; two pods reach each other by pod IP;
//! a malicious layer is refused with an Event; and deleting the pods
//! leaves no network namespace, veth, cgroup or mount behind.
//!
//! Needs root, iproute2, `busybox-static` and `docker-registry`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::{eventually, require, Skiff};
use crate::registry::Registry;

const PIDS_MAX: u64 = 64;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn write_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let d = digest(bytes);
    std::fs::write(dir.join("blobs/sha256").join(&d["sha256:".len()..]), bytes)
        .expect("write blob");
    json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

/// An OCI layout of a one-layer image (`layer`, a tar) under `parent/name`.
fn layout(parent: &Path, name: &str, layer: &[u8]) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let layer_desc = write_blob(&dir, "application/vnd.oci.image.layer.v1.tar", layer);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin", "FROM_IMAGE=yes"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
    });
    let config_desc = write_blob(
        &dir,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    });
    let top = write_blob(
        &dir,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
    std::fs::write(
        dir.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [top]}).to_string(),
    )
    .expect("index.json");
    dir
}

fn dir_entry(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_cksum();
    b.append_data(&mut h, path, std::io::empty()).expect("dir");
}

/// /bin/busybox, a link per applet the tests use, /etc/passwd, /tmp.
fn busybox_layer() -> Vec<u8> {
    let busybox = require("/bin/busybox", "apt-get install busybox-static");
    let bytes = std::fs::read(&busybox).expect("read busybox");
    let mut b = tar::Builder::new(Vec::new());
    for d in ["bin", "etc", "tmp", "proc", "dev", "sys"] {
        dir_entry(&mut b, d);
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "bin/busybox", bytes.as_slice())
        .expect("busybox");
    for applet in [
        "sh", "echo", "sleep", "ping", "tail", "cat", "true", "hostname", "id", "ls", "mkdir",
        "httpd", "wget", "nslookup", "awk",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .expect("link");
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(passwd.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "etc/passwd", &passwd[..])
        .expect("passwd");
    b.into_inner().expect("tar")
}

/// A layer whose one file climbs out of the extraction directory.
fn escaping_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"escaped\n";
    let mut h = tar::Header::new_gnu();
    // Written into the header by hand: tar's own path setter refuses `..`.
    let name = b"../../skiff-e2e-escaped";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &data[..]).expect("entry");
    b.into_inner().expect("tar")
}

fn push(s: &Skiff, dir: &Path, reference: &str) {
    s.skiff(&[
        "image",
        "push",
        &dir.display().to_string(),
        reference,
        "--insecure",
    ])
    .ok();
}

fn pod_json(s: &Skiff, name: &str) -> Value {
    let out = s.kubectl("1.33", &["get", "pod", name, "-o", "json"]);
    serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
}

fn container_status(p: &Value) -> &Value {
    &p["status"]["containerStatuses"][0]
}

fn apply_pod(s: &Skiff, name: &str, image: &str, script: &str, extra: &str) {
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", {script:?}]
{extra}"#
    );
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&yaml))
        .ok();
}

/// What a pod leaves on the host, by its uid.
#[derive(Debug, PartialEq, Eq)]
struct Traces {
    netns: bool,
    ipcns: bool,
    veth: bool,
    cgroup: bool,
    mounts: usize,
}

fn short(uid: &str) -> String {
    uid.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect()
}

fn traces(uid: &str, data: &Path) -> Traces {
    let links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let data = data.display().to_string();
    Traces {
        netns: Path::new("/run/netns")
            .join(format!("skiff-{}", short(uid)))
            .exists(),
        ipcns: Path::new("/run/skiff/ipcns")
            .join(format!("skiff-{}", short(uid)))
            .exists(),
        veth: String::from_utf8_lossy(&links.stdout).contains(&format!("vsk{}", short(uid))),
        cgroup: ["memory", "pids", "cpu", "unified"].iter().any(|h| {
            Path::new("/sys/fs/cgroup")
                .join(h)
                .join("skiff")
                .join(format!("pod{uid}"))
                .exists()
        }),
        mounts: mounts
            .lines()
            .filter(|l| l.contains(&format!("{data}/linux/pods/{uid}")))
            .count(),
    }
}

const GONE: Traces = Traces {
    netns: false,
    ipcns: false,
    veth: false,
    cgroup: false,
    mounts: 0,
};

/// Removes what a failed test left behind: the server is SIGKILLed on
/// drop, and Linux containers outlive it by design. Processes in the
/// pods' cgroups are killed, overlay roots under the data dir unmounted,
/// the cgroups and network namespaces removed. (Declared after the
/// server that owns the data dir, so it runs before that dir is removed.)
struct Leftovers {
    uids: Vec<String>,
    data: PathBuf,
}

impl Leftovers {
    /// `/sys/fs/cgroup/<hierarchy>/skiff/pod<uid>` of every hierarchy
    /// (one for cgroup v2).
    fn cgroups(uid: &str) -> Vec<PathBuf> {
        let pod = format!("pod{uid}");
        let mut dirs = vec![Path::new("/sys/fs/cgroup/skiff").join(&pod)];
        if let Ok(hs) = std::fs::read_dir("/sys/fs/cgroup") {
            dirs.extend(hs.flatten().map(|h| h.path().join("skiff").join(&pod)));
        }
        dirs.into_iter().filter(|d| d.is_dir()).collect()
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for uid in &self.uids {
            for pod in Leftovers::cgroups(uid) {
                for e in std::fs::read_dir(&pod).into_iter().flatten().flatten() {
                    let procs =
                        std::fs::read_to_string(e.path().join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines() {
                        let _ = Command::new("kill").args(["-9", pid]).status();
                    }
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let root = format!("{}/linux/pods/", self.data.display());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
            if m.starts_with(&root) {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
        for uid in &self.uids {
            for pod in Leftovers::cgroups(uid) {
                for e in std::fs::read_dir(&pod).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_dir(e.path());
                }
                let _ = std::fs::remove_dir(&pod);
            }
            let ns = format!("skiff-{}", short(uid));
            if Path::new("/run/netns").join(&ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        }
    }
}

#[test]
fn linux_pods_run_as_containers_and_leave_nothing_behind() {
    require("/usr/sbin/ip", "apt-get install iproute2");
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")),
        "Linux pods need root (namespaces, cgroups, mounts)"
    );
    let reg = Registry::start();
    let pids = PIDS_MAX.to_string();
    let flags = [
        "--insecure-registry",
        reg.host.as_str(),
        "--pod-max-pids",
        pids.as_str(),
    ];
    let mut first = Skiff::start_with(&flags);
    let s = &first;
    let tmp = tempfile::tempdir().expect("tmp");
    let image = format!("{}/e2e/busybox:v1", reg.host);
    push(s, &layout(tmp.path(), "busybox", &busybox_layer()), &image);
    let evil = format!("{}/e2e/evil:v1", reg.host);
    push(s, &layout(tmp.path(), "evil", &escaping_layer()), &evil);
    let mut left = Leftovers {
        uids: Vec::new(),
        data: first.dir.clone(),
    };
    let uid_of = |s: &Skiff, name: &str| {
        eventually(30, "the pod's uid", || {
            pod_json(s, name)["metadata"]["uid"]
                .as_str()
                .map(str::to_string)
        })
    };

    // Logs, env from the image and the pod, a pod IP from the node's range.
    apply_pod(
        s,
        "hello",
        &image,
        "echo hello from $(hostname) image=$FROM_IMAGE; sleep 2; echo > /tmp/ready; sleep 3600",
        "    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1}\n",
    );
    left.uids.push(uid_of(s, "hello"));
    let p = eventually(60, "hello running", || {
        let p = pod_json(s, "hello");
        container_status(&p)["state"]["running"]
            .is_object()
            .then_some(p)
    });
    let hello_ip = p["status"]["podIP"].as_str().expect("podIP").to_string();
    assert!(hello_ip.starts_with("10."), "{p}");
    assert_ne!(
        p["status"]["podIP"], p["status"]["hostIP"],
        "a pod IP of its own"
    );
    let logs = eventually(20, "hello's output in kubectl logs", || {
        let out = s.kubectl("1.33", &["logs", "hello"]).stdout;
        out.contains("hello from hello image=yes").then_some(out)
    });
    assert_eq!(logs.lines().count(), 1, "{logs}");

    // An exec readiness probe runs in the container: failing first, then
    // passing once the file is there.
    eventually(30, "hello ready", || {
        let p = pod_json(s, "hello");
        (container_status(&p)["ready"] == true).then_some(())
    });
    let events = s
        .kubectl(
            "1.33",
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=hello",
            ],
        )
        .stdout;
    assert!(
        events.contains("Unhealthy") && events.contains("/tmp/ready"),
        "{events}"
    );

    // The container outlives its agent and is adopted by the next one.
    let id = container_status(&pod_json(s, "hello"))["containerID"].clone();
    // And one that ends while no agent watches: its exit is found.
    apply_pod(s, "brief", &image, "echo bye; sleep 2; exit 5", "");
    left.uids.push(uid_of(s, "brief"));
    eventually(60, "brief running", || {
        let p = pod_json(s, "brief");
        container_status(&p)["state"]["running"]
            .is_object()
            .then_some(())
    });
    first.kill();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let mut second = Skiff::start_in_with(&first.dir, &flags);
    let s = &second;
    let p = eventually(60, "hello adopted", || {
        let p = pod_json(s, "hello");
        let c = container_status(&p);
        (c["containerID"] == id && c["ready"] == true).then_some(p)
    });
    assert_eq!(container_status(&p)["restartCount"], 0, "{p}");
    assert_eq!(p["status"]["podIP"], hello_ip.as_str(), "{p}");
    let logs = s.kubectl("1.33", &["logs", "hello"]).ok().stdout;
    assert_eq!(logs.lines().count(), 1, "{logs}");
    let p = eventually(30, "brief's exit found", || {
        let p = pod_json(s, "brief");
        container_status(&p)["state"]["terminated"]
            .is_object()
            .then_some(p)
    });
    let c = container_status(&p);
    assert_eq!(c["state"]["terminated"]["exitCode"], 5, "{p}");
    assert_eq!(c["restartCount"], 0, "restartPolicy Never: {p}");
    assert_eq!(p["status"]["phase"], "Failed", "{p}");
    let logs = s.kubectl("1.33", &["logs", "brief"]).ok().stdout;
    assert_eq!(logs, "bye\n");

    // An exit code, as kubectl reports it.
    apply_pod(s, "three", &image, "exit 3", "");
    left.uids.push(uid_of(s, "three"));
    let p = eventually(60, "three terminated", || {
        let p = pod_json(s, "three");
        container_status(&p)["state"]["terminated"]
            .is_object()
            .then_some(p)
    });
    let t = &container_status(&p)["state"]["terminated"];
    assert_eq!(
        (t["exitCode"].as_i64(), t["reason"].as_str()),
        (Some(3), Some("Error")),
        "{p}"
    );
    assert_eq!(p["status"]["phase"], "Failed");

    // Past its memory limit: OOMKilled.
    apply_pod(
        s,
        "hog",
        &image,
        "tail /dev/zero",
        "    resources: {limits: {memory: 32Mi}}\n",
    );
    left.uids.push(uid_of(s, "hog"));
    let p = eventually(90, "hog terminated", || {
        let p = pod_json(s, "hog");
        container_status(&p)["state"]["terminated"]
            .is_object()
            .then_some(p)
    });
    let t = &container_status(&p)["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{p}");
    assert_eq!(t["exitCode"], 137, "{p}");

    // A fork bomb stops at the pids limit; PID 1 (exec'd sleep) lives on.
    apply_pod(s, "bomb", &image, "f(){ f | f & }; f; exec sleep 3600", "");
    let bomb_uid = uid_of(s, "bomb");
    left.uids.push(bomb_uid.clone());
    eventually(60, "bomb running", || {
        let p = pod_json(s, "bomb");
        container_status(&p)["state"]["running"]
            .is_object()
            .then_some(())
    });
    let cg = Path::new("/sys/fs/cgroup/pids/skiff")
        .join(format!("pod{bomb_uid}"))
        .join("main");
    let cg = if cg.exists() {
        cg
    } else {
        Path::new("/sys/fs/cgroup/skiff")
            .join(format!("pod{bomb_uid}"))
            .join("main")
    };
    let max = std::fs::read_to_string(cg.join("pids.max")).expect("pids.max");
    assert_eq!(max.trim(), pids);
    eventually(30, "the bomb to hit pids.max", || {
        let events = std::fs::read_to_string(cg.join("pids.events")).unwrap_or_default();
        let hits: u64 = events
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (hits > 0).then_some(())
    });
    let current: u64 = std::fs::read_to_string(cg.join("pids.current"))
        .expect("pids.current")
        .trim()
        .parse()
        .expect("number");
    assert!(current <= PIDS_MAX, "{current} tasks");
    s.kubectl(
        "1.33",
        &["delete", "pod", "bomb", "--wait=true", "--timeout=60s"],
    )
    .ok();
    eventually(30, "the bomb's traces to go", || {
        (traces(&bomb_uid, &s.dir) == GONE).then_some(())
    });

    // Pod to pod by IP: `b` reaches `hello`, then `c` reaches `b`.
    apply_pod(
        s,
        "b",
        &image,
        &format!("ping -c1 -W5 {hello_ip} && sleep 3600"),
        "",
    );
    left.uids.push(uid_of(s, "b"));
    let b = eventually(60, "b running", || {
        let p = pod_json(s, "b");
        container_status(&p)["state"]["running"]
            .is_object()
            .then_some(p)
    });
    let out = eventually(30, "b's ping to hello to end", || {
        let out = s.kubectl("1.33", &["logs", "b"]).stdout;
        out.contains("packets received").then_some(out)
    });
    assert!(
        out.contains("1 packets received"),
        "b could not reach hello: {out}"
    );
    let b_ip = b["status"]["podIP"].as_str().expect("b's IP").to_string();
    assert_ne!(b_ip, hello_ip);
    apply_pod(s, "c", &image, &format!("ping -c1 -W5 {b_ip}"), "");
    left.uids.push(uid_of(s, "c"));
    let p = eventually(60, "c done", || {
        let p = pod_json(s, "c");
        container_status(&p)["state"]["terminated"]
            .is_object()
            .then_some(p)
    });
    assert_eq!(
        container_status(&p)["state"]["terminated"]["exitCode"],
        0,
        "{p}"
    );

    // The pod's /etc files: cluster DNS on the bridge gateway, its own
    // name and address; the user from securityContext.
    apply_pod(
        s,
        "files",
        &image,
        "cat /etc/resolv.conf /etc/hosts; id -u",
        "    securityContext: {runAsUser: 65534}\n",
    );
    left.uids.push(uid_of(s, "files"));
    let p = eventually(60, "files done", || {
        let p = pod_json(s, "files");
        container_status(&p)["state"]["terminated"]
            .is_object()
            .then_some(p)
    });
    let ip = p["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let out = s.kubectl("1.33", &["logs", "files"]).ok().stdout;
    let gateway = format!("{}.1", ip.rsplit_once('.').map_or("", |(net, _)| net));
    assert!(out.contains(&format!("nameserver {gateway}")), "{out}");
    assert!(
        out.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{out}"
    );
    assert!(out.contains("options ndots:5"), "{out}");
    assert!(out.contains(&format!("{ip}\tfiles")), "{out}");
    assert!(out.ends_with("65534\n"), "{out}");

    // A pod deleted while its node agent is down: the next agent removes
    // its container, cgroup, mounts and sandbox once it has listed pods.
    apply_pod(s, "orphan", &image, "exec sleep 3600", "");
    let orphan = uid_of(s, "orphan");
    left.uids.push(orphan.clone());
    eventually(60, "orphan running", || {
        let p = pod_json(s, "orphan");
        container_status(&p)["state"]["running"]
            .is_object()
            .then_some(())
    });
    assert!(traces(&orphan, &s.dir).netns, "a sandbox to leak");
    second.kill();
    let mut api = Skiff::start_in_with(&first.dir, &["--api-only"]);
    api.kubectl(
        "1.33",
        &["delete", "pod", "orphan", "--grace-period=0", "--force"],
    )
    .ok();
    api.kill();
    let third = Skiff::start_in_with(&first.dir, &flags);
    let s = &third;
    eventually(30, "the orphan's traces to go", || {
        (traces(&orphan, &s.dir) == GONE).then_some(())
    });

    // A layer climbing out of its directory: refused, nothing written.
    apply_pod(s, "evil", &evil, "true", "");
    left.uids.push(uid_of(s, "evil"));
    let event = eventually(60, "a Failed event for evil", || {
        let out = s
            .kubectl(
                "1.33",
                &[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=evil",
                    "-o",
                    "json",
                ],
            )
            .stdout;
        let v: Value = serde_json::from_str(&out).ok()?;
        v["items"].as_array()?.iter().find_map(|e| {
            let m = e["message"].as_str()?;
            (e["reason"] == "Failed" && m.contains("root file system")).then(|| m.to_string())
        })
    });
    assert!(event.contains("layer sha256:"), "{event}");
    let p = pod_json(s, "evil");
    assert_eq!(
        container_status(&p)["state"]["waiting"]["reason"],
        "CreateContainerError",
        "{p}"
    );
    let escaped = walk_for(s.dir.parent().unwrap_or(&s.dir), "skiff-e2e-escaped");
    assert!(escaped.is_empty(), "written outside the layer: {escaped:?}");

    // Every pod deleted: nothing left of any of them.
    let uids = left.uids.clone();
    s.kubectl(
        "1.33",
        &["delete", "pod", "--all", "--wait=true", "--timeout=90s"],
    )
    .ok();
    for uid in &uids {
        eventually(30, "a deleted pod's traces to go", || {
            (traces(uid, &s.dir) == GONE).then_some(())
        });
    }
    let linux_pods = s.dir.join("linux/pods");
    let rest: Vec<_> = std::fs::read_dir(&linux_pods)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(rest.is_empty(), "pod directories left: {rest:?}");
    s.assert_no_panics();
}

#[test]
fn a_linux_service_is_reached_by_its_dns_name_from_another_pod() {
    let reg = Registry::start();
    let s = Skiff::start_with(&["--insecure-registry", &reg.host]);
    let tmp = tempfile::tempdir().expect("tmp");
    let image = format!("{}/e2e/busybox:v1", reg.host);
    push(&s, &layout(tmp.path(), "busybox", &busybox_layer()), &image);
    // A web server pod behind a headless Service: the cluster DNS answers
    // its name with the pod's address (the e2e servers run without the
    // nftables service proxy, which parallel clusters would share).
    let web = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{name: http, port: 8080, targetPort: http}}]
"#
    );
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&web))
        .ok();
    let web_ip = eventually(60, "web running with an address", || {
        let p = pod_json(&s, "web");
        container_status(&p)["state"]["running"]
            .is_object()
            .then(|| p["status"]["podIP"].as_str().map(str::to_string))
            .flatten()
    });
    // busybox's nslookup asks the pod's nameserver (the node's DNS on the
    // bridge gateway, from /etc/resolv.conf); wget fetches from the answer.
    apply_pod(
        &s,
        "client",
        &image,
        "nslookup web.default.svc.cluster.local > /tmp/ns 2>&1; cat /tmp/ns; ip=$(awk '/^Address: / {a=$2} END {print a}' /tmp/ns); echo resolved=$ip; wget -qO- http://$ip:8080/",
        "",
    );
    let p = eventually(90, "the client done", || {
        let p = pod_json(&s, "client");
        container_status(&p)["state"]["terminated"]
            .is_object()
            .then_some(p)
    });
    let out = s.kubectl("1.33", &["logs", "client"]).stdout;
    assert_eq!(
        container_status(&p)["state"]["terminated"]["exitCode"],
        0,
        "{out}\n{p}"
    );
    assert!(out.contains(&format!("resolved={web_ip}")), "{out}");
    assert!(out.contains("hello-from-web"), "{out}");
    for name in ["client", "web"] {
        s.kubectl(
            "1.33",
            &["delete", "pod", name, "--wait=true", "--timeout=60s"],
        )
        .ok();
    }
}

/// Files named `name` under `dir`.
fn walk_for(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if e.file_name() == name {
                found.push(e.path());
            }
        }
    }
    found
}

/// `kubectl exec` into a Linux container: the command runs in the
/// container's namespaces, its output and exit code come back, stdin
/// reaches it; RBAC guards it (`create` on `pods/exec`); clients that only
/// speak SPDY hear which protocol to use; the Python client's WebSocket
/// (v4 protocol) runs a command on a terminal; and the node endpoint
/// completes TLS only with the API server's client certificate.
#[test]
fn kubectl_exec_runs_commands_in_linux_containers() {
    let python = require("python3", "install Python 3 and `pip install kubernetes`");
    let reg = Registry::start();
    let s = Skiff::start_with(&["--insecure-registry", &reg.host]);
    let tmp = tempfile::tempdir().expect("tmp");
    let image = format!("{}/e2e/busybox:v1", reg.host);
    push(&s, &layout(tmp.path(), "busybox", &busybox_layer()), &image);
    apply_pod(&s, "shell", &image, "exec sleep 3600", "");
    eventually(60, "shell running", || {
        let p = pod_json(&s, "shell");
        container_status(&p)["state"]["running"]
            .is_object()
            .then_some(())
    });

    // Output, the container's own namespaces (uts: its hostname; pid: its
    // PID 1 is the pod's command), and the exit code as kubectl's own.
    let out = s.kubectl(
        "1.33",
        &[
            "exec",
            "shell",
            "--",
            "sh",
            "-c",
            "echo out $(hostname) $(cat /proc/1/cmdline | tr '\\0' ' '); echo err >&2; exit 3",
        ],
    );
    assert_eq!(out.code, 3, "exit code of the command: {out:?}");
    assert_eq!(out.stdout.trim(), "out shell sleep 3600", "{out:?}");
    assert!(out.stderr.contains("err"), "{out:?}");
    let ok = s.kubectl("1.33", &["exec", "shell", "--", "true"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    // stdin reaches the command, and its end ends `cat`.
    let cat = s
        .kubectl_stdin(
            "1.33",
            &["exec", "-i", "shell", "--", "cat"],
            Some("piped through exec\n"),
        )
        .ok();
    assert_eq!(cat.stdout, "piped through exec\n");
    // A command that does not exist: 127 and the reason.
    let missing = s.kubectl("1.33", &["exec", "shell", "--", "/bin/nope"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    assert!(missing.stderr.contains("/bin/nope"), "{missing:?}");
    // A container the pod does not have.
    let bad = s
        .kubectl("1.33", &["exec", "shell", "-c", "ghost", "--", "true"])
        .failed();
    assert!(
        bad.stderr
            .contains("container ghost is not valid for pod shell"),
        "{bad:?}"
    );

    // The containers of a pod share its IPC namespace: a POSIX message
    // queue one makes is seen by the other (and not by another pod).
    let pair = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: pair}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: {image}
    command: ["sh", "-c", "touch /dev/mqueue/from-a && exec sleep 3600"]
  - name: b
    image: {image}
    command: ["sleep", "3600"]
"#
    );
    s.kubectl_stdin("1.33", &["apply", "-f", "-"], Some(&pair))
        .ok();
    eventually(60, "both containers of pair running", || {
        let p = pod_json(&s, "pair");
        let st = p["status"]["containerStatuses"].as_array()?;
        (st.len() == 2 && st.iter().all(|c| c["state"]["running"].is_object())).then_some(())
    });
    let seen = eventually(30, "the queue seen from the other container", || {
        let o = s.kubectl(
            "1.33",
            &["exec", "pair", "-c", "b", "--", "ls", "/dev/mqueue"],
        );
        o.stdout.contains("from-a").then_some(o)
    });
    assert_eq!(seen.code, 0, "{seen:?}");
    let other = s
        .kubectl("1.33", &["exec", "shell", "--", "ls", "/dev/mqueue"])
        .ok();
    assert!(
        !other.stdout.contains("from-a"),
        "another pod's IPC namespace: {other:?}"
    );
    let pair_uid = pod_json(&s, "pair")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let deleted = s.kubectl(
        "1.33",
        &["delete", "pod", "pair", "--wait=true", "--timeout=60s"],
    );
    assert_eq!(
        deleted.code,
        0,
        "{deleted:?}\nthe pod now (gone, or stuck terminating?): {}",
        pod_json(&s, "pair")
    );
    let t = eventually(30, "pair's sandbox gone", || {
        let t = traces(&pair_uid, &s.dir);
        (t == GONE).then_some(t)
    });
    assert_eq!(t, GONE);

    // kubectl 1.27 speaks SPDY only: it is told what to use instead.
    let old = s.kubectl("1.27", &["exec", "shell", "--", "true"]).failed();
    assert!(
        old.stderr.contains("WebSocket") && old.stderr.contains("kubectl 1.30"),
        "{old:?}"
    );

    // RBAC: `view` may read pods but not run commands in them.
    s.kubectl("1.33", &["create", "serviceaccount", "reader"])
        .ok();
    s.kubectl(
        "1.33",
        &[
            "create",
            "rolebinding",
            "reader-view",
            "--clusterrole=view",
            "--serviceaccount=default:reader",
        ],
    )
    .ok();
    let token = s
        .kubectl("1.33", &["create", "token", "reader"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let flag = format!("--token={token}");
    s.kubectl("1.33", &[&flag, "get", "pod", "shell"]).ok();
    let denied = s
        .kubectl("1.33", &[&flag, "exec", "shell", "--", "true"])
        .failed();
    assert!(
        denied
            .stderr
            .contains("cannot create resource \"pods/exec\" in API group \"\""),
        "{denied:?}"
    );

    // The Python client (v4.channel.k8s.io) with a terminal: the command's
    // stdin is a pty, stdout and stderr one stream.
    let script = r#"
import sys
from kubernetes import config, client
from kubernetes.stream import stream
config.load_kube_config(sys.argv[1])
api = client.CoreV1Api()
ws = stream(api.connect_get_namespaced_pod_exec, "shell", "default",
            command=["sh", "-c", "tty; echo to-stderr >&2; exit 4"],
            stdin=False, stdout=True, stderr=True, tty=True, _preload_content=False)
ws.run_forever(timeout=30)
out = ws.read_stdout() + ws.read_stderr()
print("exec said: " + out.replace("\r", "").replace("\n", " | "))
print("exit code: %s" % ws.returncode)
"#;
    let mut py = Command::new(&python);
    py.args(["-c", script]).arg(s.kubeconfig());
    let out = crate::harness::run(py, None, std::time::Duration::from_secs(60));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("exec said: /dev/pts/")
            && out.stdout.contains("to-stderr")
            && out.stdout.contains("exit code: 4"),
        "{out:?}"
    );

    // Anyone else reaching the node endpoint gets no TLS session.
    let node = s.get_json("/api/v1/nodes");
    let port = node["items"][0]["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .expect("the node endpoint's port");
    let mut curl = Command::new("curl");
    curl.args(["-sk", "--max-time", "10"])
        .arg(format!("https://127.0.0.1:{port}/healthz"));
    let direct = crate::harness::run(curl, None, std::time::Duration::from_secs(20));
    assert_ne!(
        direct.code, 0,
        "the node endpoint served a stranger: {direct:?}"
    );

    s.kubectl(
        "1.33",
        &["delete", "pod", "shell", "--wait=true", "--timeout=60s"],
    )
    .ok();
    s.assert_no_panics();
}
